//! Live views on the terminal, redrawn in place: the trace view (per hop, like mtr and
//! trippy) and the board of many targets. Drawn with ratatui on crossterm.
//!
//! - `terminal`: the guard that enters and always restores the terminal, the frame limiter
//! - `keys`: keys and actions as plain values (the views' `handle` is pure)
//! - `theme`: styles by role, `NO_COLOR`; `spark`: bounded rings of recent RTTs, sparklines
//! - `columns`: table columns declared once (header and widths), milliseconds in a cell
//! - `trace`: the trace view and its view model; `trace_feed`: trace's state into that model
//! - `board`: the board of many targets (worst first, filter, scrolling)
//!
//! A caller owns the loop: enter a [`TerminalGuard`], feed the view after each cycle or
//! probe, poll keys with [`keys::poll_input`] and pass them to the view's `handle`, draw when
//! the [`FrameLimiter`] says a frame is due, and leave on [`Action::Quit`] or a stop signal.

pub mod board;
pub mod columns;
pub mod keys;
pub mod spark;
pub mod terminal;
pub mod theme;
pub mod trace;
pub mod trace_feed;

#[cfg(test)]
mod tests;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::{Frame, Terminal};

pub use keys::{Action, Input, Key};
pub use terminal::{restore_terminal, FrameLimiter, TerminalGuard};
pub use theme::{Palette, Tone};

/// Draw one frame of `width` × `height` off screen (ratatui's test backend) and return the
/// cells: for render tests, and to measure what a frame costs.
pub fn render_offscreen(width: u16, height: u16, render: impl FnOnce(&mut Frame)) -> Buffer {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    match terminal.draw(render) {
        Ok(_) => {}
        Err(never) => match never {},
    }
    terminal.backend().buffer().clone()
}
