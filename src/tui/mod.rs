//! Live views on the terminal, redrawn in place: the trace view (per hop, like mtr and
//! trippy) and the board of many targets. Drawn with ratatui on crossterm.
//!
//! - `terminal`: the guard that enters and always restores the terminal, the frame limiter
//! - `live`: the loop that drives a view (keys, redraws, stop signals) for the command feeding it
//! - `keys`: keys and actions as plain values (the views' `handle` is pure)
//! - `theme`: styles by role, `NO_COLOR`; `spark`: bounded rings of recent RTTs, sparklines
//! - `columns`: table columns declared once (header and widths), milliseconds in a cell
//! - `trace`: the trace view and its view model; (trace's state into that model: `cmd::trace::live`)
//! - `board`: the board of many targets (worst first, filter, scrolling); `board_feed`: a
//!   probe's result into the board's state
//!
//! The command that feeds a view owns the loop: [`Live::start`] takes the terminal; after each
//! cycle or probe it updates the view and calls [`Live::changed`]; [`Live::step`] handles keys
//! and redraws while it waits for the next; it leaves on [`Action::Quit`] (`q`, Ctrl-C, a
//! stop signal), and the terminal is restored however it leaves.

pub mod board;
pub mod board_feed;
pub mod columns;
pub mod keys;
pub mod live;
pub mod spark;
pub mod terminal;
pub mod theme;
pub mod trace;

#[cfg(test)]
mod pty_tests;
#[cfg(test)]
mod tests;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::{Frame, Terminal};

pub use keys::{Action, Input, Key};
pub use live::{Live, View};
pub use terminal::{restore_terminal, FrameLimiter, StopSignals, TerminalGuard};
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
