//! The terminal while a live view runs: [`TerminalGuard`] enters raw mode and the alternate
//! screen and hides the cursor, and puts everything back when dropped, when the program
//! panics (a panic hook restores first, then runs the previous hook, so the panic message
//! lands on the normal screen), or when the caller calls [`restore_terminal`] (after a
//! SIGINT/SIGTERM seen through [`StopSignals`]: a signal handler itself must not write to the
//! terminal). Restoring is idempotent. [`FrameLimiter`] caps redraws (10 per second).

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::{Frame, Terminal};

/// Whether the terminal is in the live view's state (raw, alternate screen, no cursor).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Redraws per second at most.
pub const MAX_FPS: u32 = 10;

/// Owns the terminal while a live view is drawn; restores it when dropped.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enter raw mode and the alternate screen, hide the cursor, install the panic hook.
    /// On failure the terminal is restored before the error is returned.
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // Cleared with an escape sequence: ratatui's `clear` asks the terminal where its
        // cursor is, and waits for the answer.
        let entered = execute!(
            io::stdout(),
            EnterAlternateScreen,
            Hide,
            Clear(ClearType::All)
        )
        .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                let _ = restore_terminal();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }

    /// Draw one frame (the terminal's size is read each time: a resize is followed).
    pub fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> io::Result<()> {
        self.terminal.draw(render).map(|_| ())
    }

    /// Restore now (dropping the guard does the same, ignoring errors).
    pub fn restore(self) -> io::Result<()> {
        restore_terminal()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = restore_terminal();
    }
}

/// Leave raw mode and the alternate screen, show the cursor. Does nothing when the terminal
/// is not in the live view's state (so it may be called from every exit path).
pub fn restore_terminal() -> io::Result<()> {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode();
    let screen = write_restore(&mut io::stdout());
    raw.and(screen)
}

/// The escape sequences that leave the alternate screen and show the cursor.
pub fn write_restore(w: &mut impl Write) -> io::Result<()> {
    execute!(w, LeaveAlternateScreen, Show)
}

/// Whether a [`TerminalGuard`] holds the terminal (and no restore happened since).
pub fn terminal_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Install, once per process, the panic hook that restores the terminal.
pub fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        chain_panic_hook(|| {
            let _ = restore_terminal();
        })
    });
}

/// Put a hook in front of the current panic hook: `restore` runs first, then the previous
/// hook (which prints the message, now on the normal screen).
pub fn chain_panic_hook(restore: impl Fn() + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// SIGINT, SIGTERM and SIGHUP raise a flag while this lives (the registrations are removed
/// when it drops). The view's loop checks [`StopSignals::raised`] and leaves, dropping the
/// guard. In raw mode Ctrl-C arrives as a key, not a signal; the flag covers `kill` and a
/// closed terminal.
pub struct StopSignals {
    flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl StopSignals {
    pub fn register() -> io::Result<StopSignals> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            ids.push(signal_hook::flag::register(sig, Arc::clone(&flag))?);
        }
        Ok(StopSignals { flag, ids })
    }

    pub fn raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Caps redraws: a frame is due when something changed and the last frame is at least one
/// interval old.
#[derive(Clone, Debug)]
pub struct FrameLimiter {
    interval: Duration,
    last: Option<Instant>,
    dirty: bool,
}

impl Default for FrameLimiter {
    fn default() -> Self {
        FrameLimiter::new(MAX_FPS)
    }
}

impl FrameLimiter {
    pub fn new(per_second: u32) -> FrameLimiter {
        FrameLimiter {
            interval: Duration::from_secs(1) / per_second.max(1),
            last: None,
            dirty: true,
        }
    }

    /// Something changed (new data, a key, a resize).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether to draw now; when it says yes, the frame counts as drawn.
    pub fn due(&mut self, now: Instant) -> bool {
        let ready = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        if self.dirty && ready {
            self.dirty = false;
            self.last = Some(now);
            return true;
        }
        false
    }

    /// How long to wait for input before a pending frame is due (`idle` when none is pending).
    pub fn wait(&self, now: Instant, idle: Duration) -> Duration {
        match (self.dirty, self.last) {
            (true, Some(t)) => self
                .interval
                .saturating_sub(now.saturating_duration_since(t))
                .min(idle),
            (true, None) => Duration::ZERO,
            (false, _) => idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    /// Panic hooks are global to the process: tests that swap them take turns.
    static HOOKS: Mutex<()> = Mutex::new(());

    #[test]
    fn the_panic_hook_restores_first_then_chains_to_the_previous_hook() {
        let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
        let saved = std::panic::take_hook();
        let step = Arc::new(AtomicUsize::new(0));
        let (restored_at, previous_at) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        {
            let (step, previous_at) = (Arc::clone(&step), Arc::clone(&previous_at));
            std::panic::set_hook(Box::new(move |_| {
                previous_at.store(step.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            }));
        }
        {
            let (step, restored_at) = (Arc::clone(&step), Arc::clone(&restored_at));
            chain_panic_hook(move || {
                restored_at.store(step.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            });
        }
        let caught = std::panic::catch_unwind(|| panic!("boom"));
        std::panic::set_hook(saved);
        assert!(caught.is_err());
        assert_eq!(restored_at.load(Ordering::SeqCst), 1, "restore runs first");
        assert_eq!(
            previous_at.load(Ordering::SeqCst),
            2,
            "then the previous hook"
        );
    }

    #[test]
    fn restoring_leaves_the_alternate_screen_shows_the_cursor_and_is_idempotent() {
        let mut out = Vec::new();
        write_restore(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\x1b[?1049l"),
            "leaves the alternate screen: {text:?}"
        );
        assert!(text.contains("\x1b[?25h"), "shows the cursor: {text:?}");
        // Not entered: nothing to do, no error, and still not active.
        assert!(!terminal_active());
        restore_terminal().unwrap();
        restore_terminal().unwrap();
        assert!(!terminal_active());
    }

    #[test]
    fn frames_are_capped_and_drawn_only_when_something_changed() {
        let t0 = Instant::now();
        let mut f = FrameLimiter::new(10);
        assert!(f.due(t0), "the first frame is due at once");
        assert!(!f.due(t0 + Duration::from_millis(500)), "nothing changed");
        f.mark_dirty();
        assert!(
            !f.due(t0 + Duration::from_millis(50)),
            "too soon after the last frame"
        );
        assert_eq!(
            f.wait(t0 + Duration::from_millis(50), Duration::from_secs(1)),
            Duration::from_millis(50)
        );
        assert!(f.due(t0 + Duration::from_millis(100)));
        assert_eq!(
            f.wait(t0 + Duration::from_millis(100), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
