//! Names resolved off the event loop: a few threads call the system resolver (which
//! blocks, for seconds when a name server does not answer) and hand the answers back
//! through a channel, waking the loop. A name that fails is retried by the loop, with
//! backoff (`schedule::backoff`), and never holds up the other targets.

use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::cli::{self, Family};

/// Threads resolving at once.
const THREADS: usize = 4;

/// A request: which slot (and its generation) wants which name.
pub type Request = (usize, u32, String);
/// An answer: the slot, its generation, the address or the error in words.
pub type Answer = (usize, u32, Result<SocketAddr, String>);

pub struct Resolver {
    requests: Option<Sender<Request>>,
    answers: Receiver<Answer>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Resolver {
    /// Start the threads; each answer writes to `wake`.
    pub fn start(family: Option<Family>, wake: &UnixStream) -> std::io::Result<Resolver> {
        let (req_tx, req_rx) = mpsc::channel::<Request>();
        let (ans_tx, ans_rx) = mpsc::channel::<Answer>();
        let req_rx = Arc::new(Mutex::new(req_rx));
        let mut threads = Vec::new();
        for i in 0..THREADS {
            let rx = Arc::clone(&req_rx);
            let tx = ans_tx.clone();
            let wake = wake.try_clone()?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("resolve{i}"))
                    .spawn(move || loop {
                        let next = rx.lock().map(|r| r.recv());
                        let Ok(Ok((slot, generation, name))) = next else {
                            return;
                        };
                        let got = cli::resolve(&name, family).map_err(|e| e.to_string());
                        if tx.send((slot, generation, got)).is_err() {
                            return;
                        }
                        crate::net::wake(&wake);
                    })?,
            );
        }
        Ok(Resolver {
            requests: Some(req_tx),
            answers: ans_rx,
            threads,
        })
    }

    pub fn ask(&self, slot: usize, generation: u32, name: &str) {
        if let Some(tx) = &self.requests {
            let _ = tx.send((slot, generation, name.to_string()));
        }
    }

    /// The answers that came since the last call.
    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Closing the channel ends the idle threads; one inside a slow lookup is left to
        // finish on its own (the process is exiting).
        self.requests = None;
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
