//! The loop of a live view, for the command that feeds it: [`Live`] holds the terminal (a
//! [`TerminalGuard`]), the frame limiter and the stop signals; [`Live::step`] waits for keys
//! for a while, passes them to the view, redraws when a frame is due, and returns what the
//! caller must act on (quit, reset, pause). Between steps the caller feeds the view and calls
//! [`Live::changed`].

use std::io;
use std::time::{Duration, Instant};

use ratatui::Frame;

use super::board::Board;
use super::keys::{poll_input, Action, Input, Key};
use super::terminal::{FrameLimiter, StopSignals, TerminalGuard};
use super::trace::TraceView;

/// A view the loop can drive.
pub trait View {
    fn handle(&mut self, key: Key) -> Action;
    fn render(&mut self, frame: &mut Frame);
}

impl View for TraceView {
    fn handle(&mut self, key: Key) -> Action {
        TraceView::handle(self, key)
    }
    fn render(&mut self, frame: &mut Frame) {
        TraceView::render(self, frame)
    }
}

impl View for Board {
    fn handle(&mut self, key: Key) -> Action {
        Board::handle(self, key)
    }
    fn render(&mut self, frame: &mut Frame) {
        Board::render(self, frame)
    }
}

/// A live view on the terminal. Dropping it restores the terminal.
pub struct Live {
    // Field order: the guard restores the terminal before the signals are unregistered.
    guard: TerminalGuard,
    stop: StopSignals,
    limiter: FrameLimiter,
}

impl Live {
    /// Take the terminal (raw mode, alternate screen, cursor hidden) and watch for SIGINT,
    /// SIGTERM and SIGHUP.
    pub fn start() -> io::Result<Live> {
        let stop = StopSignals::register()?;
        let guard = TerminalGuard::enter()?;
        Ok(Live {
            guard,
            stop,
            limiter: FrameLimiter::default(),
        })
    }

    /// The view's data changed: draw it at the next step (at most 10 frames a second).
    pub fn changed(&mut self) {
        self.limiter.mark_dirty();
    }

    /// Wait up to `timeout` for keys, handling them and redrawing as needed. Returns early
    /// with any action other than [`Action::None`] and [`Action::Redraw`] (a stop signal is
    /// [`Action::Quit`]); [`Action::None`] when the time is up.
    pub fn step(&mut self, view: &mut impl View, timeout: Duration) -> io::Result<Action> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stop.raised() {
                return Ok(Action::Quit);
            }
            let now = Instant::now();
            if self.limiter.due(now) {
                self.guard.draw(|f| view.render(f))?;
            }
            let left = deadline.saturating_duration_since(now);
            // Wake at least every 100 ms to see the stop flag.
            let wait = self.limiter.wait(now, left).min(Duration::from_millis(100));
            match poll_input(wait)? {
                Some(Input::Key(k)) => match view.handle(k) {
                    Action::None => {}
                    Action::Redraw => self.limiter.mark_dirty(),
                    other => {
                        self.limiter.mark_dirty();
                        return Ok(other);
                    }
                },
                Some(Input::Resize(..)) => self.limiter.mark_dirty(),
                None => {}
            }
            if Instant::now() >= deadline {
                return Ok(Action::None);
            }
        }
    }

    /// Restore the terminal now (dropping does the same).
    pub fn finish(self) -> io::Result<()> {
        let Live { guard, stop, .. } = self;
        let restored = guard.restore();
        drop(stop);
        restored
    }
}
