//! SIGHUP in a many-targets run: the targets file is read again on a thread of its own
//! ([`Run::reload`]), and the difference applied on the event loop ([`Run::reloaded`]):
//! added targets start, removed ones end with their summary.

use std::io::Write;
use std::sync::mpsc::{self, Receiver, TryRecvError};

use super::event_loop::Run;
use super::targets::{self, Parsed, TargetLine};
use super::{read_targets, schedule};
use crate::error::Error;
use crate::net;

/// A reading of the targets file started at SIGHUP, off the event loop (a FIFO, a slow
/// disk or a million lines never hold up the probes).
pub(super) struct Reload {
    answer: Receiver<Result<Parsed, String>>,
    /// Another SIGHUP came meanwhile: read again once this one is applied.
    again: bool,
}

impl<W: Write> Run<'_, W> {
    /// SIGHUP: read the file again on a thread of its own; [`Run::reloaded`] applies it.
    pub(super) fn reload(&mut self) {
        let Some(path) = self.cfg.file.clone() else {
            eprintln!("tcpping-diag: SIGHUP: no targets file (-f) to read again");
            return;
        };
        if let Some(r) = &mut self.reload {
            r.again = true;
            return;
        }
        let (tx, rx) = mpsc::channel();
        let cli = self.cfg.cli_targets.clone();
        let wake = match self.wake.try_clone() {
            Ok(w) => w,
            Err(e) => {
                eprintln!(
                    "tcpping-diag: SIGHUP: {}; the targets stay as they were",
                    Error::io("create wake-up channel", e)
                );
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let _ = tx.send(read_targets(&cli, Some(&path)));
                net::wake(&wake);
            });
        match spawned {
            Ok(_) => {
                self.reload = Some(Reload {
                    answer: rx,
                    again: false,
                })
            }
            Err(e) => eprintln!(
                "tcpping-diag: SIGHUP: {}; the targets stay as they were",
                Error::io("start the thread reading the targets file", e)
            ),
        }
    }

    /// A reading started at SIGHUP is done: apply the difference (and read again if another
    /// SIGHUP came meanwhile).
    pub(super) fn reloaded(&mut self) {
        let Some(r) = &self.reload else {
            return;
        };
        let got = match r.answer.try_recv() {
            Ok(got) => got,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err("the thread reading it ended".to_string()),
        };
        let again = r.again;
        self.reload = None;
        self.apply(got);
        if again {
            self.reload();
        }
    }

    /// Apply a new reading of the targets file.
    fn apply(&mut self, got: Result<Parsed, String>) {
        let path = self.cfg.file.clone().unwrap_or_default();
        let parsed = match got {
            Ok(p) => p,
            Err(e) => {
                eprintln!("tcpping-diag: SIGHUP: {e}; the targets stay as they were");
                return;
            }
        };
        self.cfg.report(&parsed);
        let lines = parsed.targets;
        let current: Vec<(usize, &TargetLine)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, &s.line)))
            .collect();
        let old: Vec<&TargetLine> = current.iter().map(|(_, l)| *l).collect();
        let (stop, start) = targets::diff(&old, &lines);
        let stop: Vec<usize> = stop.iter().map(|&k| current[k].0).collect();
        for &i in &stop {
            self.remove(i);
        }
        // Lines that moved keep their target; their line number is updated.
        for t in &lines {
            for s in self.slots.iter_mut().flatten() {
                if s.line.name == t.name && s.line.labels == t.labels {
                    s.line.line = t.line;
                }
            }
        }
        let n_start = start.len();
        let interval = self.cfg.template.interval;
        for k in start {
            let t = lines[k].clone();
            let off = schedule::offset_of(&t.name, interval);
            self.add(t, off);
        }
        eprintln!(
            "tcpping-diag: SIGHUP: read {}: {} targets, {} started, {} stopped",
            path.display(),
            self.slots.iter().flatten().count(),
            n_start,
            stop.len()
        );
    }
}
