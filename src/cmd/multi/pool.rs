//! Connect probes (echo, `--connect-only`, `--persistent`) for many targets, until the
//! connect prober drives its connections from an event loop itself: a fixed pool of worker
//! threads, each running today's blocking [`Pinger`] one probe at a time, behind the
//! [`Prober`] interface the scheduler drives.
//!
//! What this gives, and its bound:
//! - [`WORKERS`] probes in flight at most, whatever the number of targets (no thread per
//!   target); a target always goes to the same worker (a persistent connection lives there).
//! - A worker is busy for a probe's whole duration: a target that times out holds its
//!   worker for `-W`. The scheduler sends only to an idle worker, so a probe that has to
//!   wait for one is late, and its lag is counted (`tcpping_send_lag_seconds`).
//! - One raw ICMP listener for all: errors are matched by the probe's local port in one
//!   shared registry, and every worker is woken to look.
//! - Handshakes are timed by the kernel (TCP_INFO), not by a packet socket.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::{ClientConfig, Mode};
use crate::icmp::correlate::Unmatched;
use crate::icmp::listener::{Capture, RawIcmp};
use crate::icmp::parse::IcmpError;
use crate::icmp::Registry;
use crate::net::{self, Waker};
use crate::privilege;
use crate::probe::connect::Pinger;
use crate::probe::{IcmpTally, PingResult, ProbeSpec, Prober, Status};

/// Worker threads: probes in flight at most.
pub const WORKERS: usize = 64;
/// Persistent connections one worker keeps (one per target it serves); past it, the
/// least recently used is closed.
const KEPT_PER_WORKER: usize = 1024;

/// The raw ICMP sockets, opened while privileged.
pub struct PoolSockets {
    raw: Vec<RawIcmp>,
}

impl PoolSockets {
    /// Open the raw ICMP sockets of both families (with `icmp`); without the privilege, the
    /// one-line notice and none.
    pub fn open(icmp: bool) -> PoolSockets {
        if !icmp {
            return PoolSockets { raw: Vec::new() };
        }
        let mut raw = Vec::new();
        let mut denied = false;
        for v6 in [false, true] {
            match RawIcmp::open(v6) {
                Ok(s) => raw.push(s),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
                Err(_) => {}
            }
        }
        if denied && raw.is_empty() {
            eprintln!("{}", privilege::NO_RAW_NOTICE);
        }
        PoolSockets { raw }
    }
}

struct Worker {
    jobs: Sender<ProbeSpec>,
    waker: Arc<Waker>,
    busy: bool,
    thread: Option<JoinHandle<()>>,
}

pub struct PoolProber {
    workers: Vec<Worker>,
    results: Receiver<(usize, PingResult)>,
    in_flight: usize,
    /// The loop's waker: a worker writes to it when a verdict is ready.
    waker: Arc<Waker>,
    registry: Arc<Registry>,
    /// Wakes every worker when the ICMP listener attributed an error.
    relay: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    _capture: Option<Capture>,
    stop: Arc<AtomicBool>,
}

fn worker_of(target: &SocketAddr, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut h);
    (h.finish() % n as u64) as usize
}

impl PoolProber {
    /// Start the workers and the ICMP listener (call after dropping privileges).
    pub fn start(
        template: &ClientConfig,
        sockets: PoolSockets,
        waker: &Arc<Waker>,
        stop: &Arc<AtomicBool>,
    ) -> io::Result<PoolProber> {
        let registry = Arc::new(Registry::new().with_unmatched_log(template.verbose));
        let (res_tx, res_rx) = mpsc::channel();
        let mut workers = Vec::with_capacity(WORKERS);
        for w in 0..WORKERS {
            let (tx, rx) = mpsc::channel::<ProbeSpec>();
            let wk = Arc::new(Waker::new()?);
            let ctx = WorkerCtx {
                id: w,
                template: template.clone(),
                registry: Arc::clone(&registry),
                waker: Arc::clone(&wk),
                stop: Arc::clone(stop),
                done: res_tx.clone(),
                main: waker.sender()?,
                raw: !sockets.raw.is_empty(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("connect{w}"))
                .stack_size(256 * 1024)
                .spawn(move || ctx.run(rx))?;
            workers.push(Worker {
                jobs: tx,
                waker: wk,
                busy: false,
                thread: Some(thread),
            });
        }
        let (relay, capture) = if sockets.raw.is_empty() {
            (None, None)
        } else {
            let relay_waker = Waker::new()?;
            let capture =
                Capture::start(sockets.raw, Arc::clone(&registry), relay_waker.sender()?)?;
            let quit = Arc::new(AtomicBool::new(false));
            let q = Arc::clone(&quit);
            let targets: Vec<Arc<Waker>> = workers.iter().map(|w| Arc::clone(&w.waker)).collect();
            let thread = std::thread::Builder::new()
                .name("icmp-relay".into())
                .spawn(move || {
                    while !q.load(Ordering::Relaxed) {
                        if let Ok(r) = net::poll(
                            &[(relay_waker.fd(), false)],
                            Some(Duration::from_millis(200)),
                        ) {
                            if r[0].read {
                                relay_waker.drain();
                                for t in &targets {
                                    t.wake();
                                }
                            }
                        }
                    }
                })?;
            (Some((quit, thread)), Some(capture))
        };
        Ok(PoolProber {
            workers,
            results: res_rx,
            in_flight: 0,
            waker: Arc::clone(waker),
            registry,
            relay,
            _capture: capture,
            stop: Arc::clone(stop),
        })
    }

    fn take_results(&mut self, done: &mut Vec<PingResult>) {
        for (w, r) in self.results.try_iter() {
            self.workers[w].busy = false;
            self.in_flight = self.in_flight.saturating_sub(1);
            done.push(r);
        }
    }
}

struct WorkerCtx {
    id: usize,
    template: ClientConfig,
    registry: Arc<Registry>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    done: Sender<(usize, PingResult)>,
    main: std::os::unix::net::UnixStream,
    raw: bool,
}

impl WorkerCtx {
    fn pinger(&self, target: SocketAddr) -> Pinger {
        let mut cfg = self.template.clone();
        cfg.target = target;
        Pinger::new(
            cfg,
            None,
            Arc::clone(&self.registry),
            Arc::clone(&self.waker),
            Arc::clone(&self.stop),
        )
        .with_raw_capture(self.raw)
    }

    fn run(self, jobs: Receiver<ProbeSpec>) {
        // Persistent connections, one per target, with the time each was last used.
        let mut kept: HashMap<SocketAddr, (Pinger, Instant)> = HashMap::new();
        for spec in jobs {
            let result = if self.template.mode == Mode::Persistent {
                if !kept.contains_key(&spec.target) && kept.len() >= KEPT_PER_WORKER {
                    let oldest = kept.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        kept.remove(&k);
                    }
                }
                let (p, used) = kept
                    .entry(spec.target)
                    .or_insert_with(|| (self.pinger(spec.target), Instant::now()));
                *used = Instant::now();
                p.ping(spec.seq)
            } else {
                self.pinger(spec.target).ping(spec.seq)
            };
            let mut r = result.unwrap_or_else(|| PingResult::new(spec.seq, Status::Interrupted));
            r.target = Some(spec.target);
            r.ttl = spec.ttl;
            if self.done.send((self.id, r)).is_err() {
                return;
            }
            net::wake(&self.main);
        }
    }
}

impl Prober for PoolProber {
    /// Ready when the target's worker is idle (a probe is never queued behind another).
    fn ready(&self, target: SocketAddr) -> bool {
        !self.workers[worker_of(&target, self.workers.len())].busy
    }

    fn send(&mut self, spec: ProbeSpec) {
        let w = worker_of(&spec.target, self.workers.len());
        let worker = &mut self.workers[w];
        if worker.jobs.send(spec).is_ok() {
            worker.busy = true;
            self.in_flight += 1;
        }
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        loop {
            self.take_results(done);
            if !done.is_empty() || self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let left = net::remaining(until);
            if left.is_zero() {
                return Ok(());
            }
            let r = net::poll(&[(self.waker.fd(), false)], Some(left))?;
            if r[0].read {
                self.waker.drain();
                self.take_results(done);
                return Ok(());
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        // The workers see the stop flag when woken and conclude their probe as
        // interrupted; wait for those verdicts (a worker in a blocking call ends it within
        // its timeout).
        for w in &self.workers {
            w.waker.wake();
        }
        let give_up = Instant::now()
            + self
                .workers
                .first()
                .map_or(Duration::ZERO, |_| Duration::from_secs(2));
        while self.in_flight > 0 && Instant::now() < give_up {
            match self.results.recv_timeout(Duration::from_millis(50)) {
                Ok((w, r)) => {
                    self.workers[w].busy = false;
                    self.in_flight -= 1;
                    done.push(r);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn icmp_tally(&self) -> IcmpTally {
        IcmpTally {
            unmatched: self.registry.unmatched_count(),
            late: self.registry.late_count(),
        }
    }

    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        self.registry.drain_unmatched()
    }
}

impl Drop for PoolProber {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing the job channel ends the worker after its current probe.
            let (tx, _) = mpsc::channel();
            w.jobs = tx;
            w.waker.wake();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        if let Some((quit, t)) = self.relay.take() {
            quit.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}
