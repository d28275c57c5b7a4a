//! Many targets on a terminal, live: [`LiveBoard`] draws the board (`crate::tui::board`: one
//! row per target, its last probe coloured by verdict, loss and RTT over a window, worst
//! first) in place of the line per probe, which is dropped (`cmd::screen`). NDJSON, the
//! metrics and `--plot` are as without it; the summaries and the closing table print on the
//! normal screen once the board is gone. Its keys are the board's (`/` filter, `s` sort, `r`
//! reset, scrolling); `q` and Ctrl-C stop the run as Ctrl-C does without the board.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use super::targets::TargetLine;
use super::Config;
use crate::cli::Output;
use crate::probe::PingResult;
use crate::tui::board::{Board, WINDOW};
use crate::tui::board_feed::probe_of;
use crate::tui::{Action, Live, Palette};

/// How often the event loop lets the board read keys and redraw (it draws at most 10 times a
/// second; the loop wakes at least every 100 ms).
const STEP: Duration = Duration::from_millis(25);

/// Whether the run draws the board: stdout is a terminal, the output is for people and not
/// quiet, and `--no-tui` is not given.
pub fn wanted(cfg: &Config) -> bool {
    let t = &cfg.template;
    cfg.tui && t.output == Output::Human && !t.quiet && io::stdout().is_terminal()
}

/// The board on the terminal.
pub struct LiveBoard {
    live: Live,
    board: Board,
    stepped: Instant,
}

impl LiveBoard {
    /// Take the terminal and draw the empty board.
    pub fn start() -> io::Result<LiveBoard> {
        let mut b = LiveBoard {
            // SIGHUP reads the targets file again, as without the board.
            live: Live::start_with(false)?,
            board: Board::new(WINDOW, Palette::from_env()),
            stepped: Instant::now(),
        };
        b.live.step(&mut b.board, Duration::ZERO)?;
        Ok(b)
    }

    /// A target joined: its row (id) on the board.
    pub fn add(&mut self, line: &TargetLine) -> usize {
        let labels = line
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.live.changed();
        self.board.add(line.name.as_str(), labels)
    }

    /// A target left.
    pub fn remove(&mut self, id: usize) {
        self.board.remove(id);
        self.live.changed();
    }

    /// A probe of target `id` concluded.
    pub fn record(&mut self, id: usize, r: &PingResult) {
        if let Some(p) = probe_of(r) {
            self.board.record(id, p);
            self.live.changed();
        }
    }

    /// Read the keys pressed and redraw if a frame is due, at most every [`STEP`]. Returns
    /// whether to stop the run (`q`, Ctrl-C, a signal).
    pub fn step(&mut self) -> io::Result<bool> {
        let now = Instant::now();
        if now.saturating_duration_since(self.stepped) < STEP {
            return Ok(false);
        }
        self.stepped = now;
        // `r` cleared the board's figures; the run's own statistics (the summaries) stay.
        Ok(self.live.step(&mut self.board, Duration::ZERO)? == Action::Quit)
    }

    /// Give the terminal back.
    pub fn finish(self) -> io::Result<()> {
        self.live.finish()
    }
}
