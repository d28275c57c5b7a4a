//! Names resolved off the event loop, by the system resolver (getaddrinfo: /etc/hosts,
//! then DNS), which blocks, for seconds when a name server does not answer.
//!
//! A slow name never holds up the others:
//! - lookup threads are started on demand, one per name waiting for one, up to
//!   [`MAX_THREADS`]; one idle for a minute ends;
//! - names asked for the first time go before retries, and retries (names that failed or
//!   were slow before) may occupy at most half of the threads: a new name finds a thread
//!   unless [`MAX_THREADS`]/2 new names are all slow at once;
//! - a lookup has [`DEADLINE`]: past it the waiting target is told it failed (and retries
//!   with backoff, `schedule::backoff`); the late answer is dropped, and while a name's
//!   lookup is still running no second one of the same name starts.
//!
//! The lookup itself is a function given to [`Resolver::start`], so that the scheduling is
//! tested with a fake slow resolver.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cli::{self, Family};

/// Lookups running at once, at most.
pub const MAX_THREADS: usize = 64;
/// Retries running at once, at most (the other threads are kept for new names).
const RETRY_THREADS: usize = MAX_THREADS / 2;
/// A lookup not answered within this counts as failed.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// A lookup thread idle this long ends.
const IDLE_END: Duration = Duration::from_secs(60);
/// Stack of a lookup thread (getaddrinfo and its NSS modules need little).
const STACK: usize = 512 * 1024;

/// A request's answer: the slot, its generation, the address or the error in words.
pub type Answer = (usize, u32, Result<SocketAddr, String>);
/// The lookup of `HOST:PORT`: blocking, called on a lookup thread.
pub type Lookup = Arc<dyn Fn(&str) -> Result<SocketAddr, String> + Send + Sync>;

/// The system resolver's lookup: the first address of the wanted family.
pub fn system_lookup(family: Option<Family>) -> Lookup {
    Arc::new(move |name: &str| {
        let (host, port) = cli::split_host_port(name).map_err(|e| e.to_string())?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        // The name is shown with the error already: not repeated here.
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve host: {e}"))?;
        cli::first_of_family(addrs, family).map_err(|why| format!("host {why}"))
    })
}

struct Waiter {
    slot: usize,
    generation: u32,
    since: Instant,
}

#[derive(Default)]
struct State {
    /// Names asked for the first time, and retries, waiting for a thread.
    fresh: VecDeque<String>,
    retry: VecDeque<String>,
    /// Every name queued or being looked up, with the targets waiting for it (those past
    /// the deadline are taken off; the name stays until its lookup ends).
    waiting: HashMap<String, Vec<Waiter>>,
    threads: usize,
    busy: usize,
    busy_retries: usize,
    closed: bool,
}

impl State {
    /// Jobs a free thread could take now.
    fn takeable(&self) -> usize {
        self.fresh.len()
            + self
                .retry
                .len()
                .min(RETRY_THREADS.saturating_sub(self.busy_retries))
    }
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    lookup: Lookup,
    answers: Mutex<Sender<Answer>>,
    wake: UnixStream,
    max_threads: usize,
    deadline: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Resolver {
    shared: Arc<Shared>,
    answers: Receiver<Answer>,
}

impl Resolver {
    /// The system resolver; each answer writes to `wake`. No thread starts before the first
    /// name is asked.
    pub fn start(family: Option<Family>, wake: &UnixStream) -> std::io::Result<Resolver> {
        Self::with_lookup(system_lookup(family), wake, MAX_THREADS, DEADLINE)
    }

    /// With a lookup function, a thread cap and a deadline of one's own.
    pub fn with_lookup(
        lookup: Lookup,
        wake: &UnixStream,
        max_threads: usize,
        deadline: Duration,
    ) -> std::io::Result<Resolver> {
        let (tx, rx) = mpsc::channel();
        Ok(Resolver {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                lookup,
                answers: Mutex::new(tx),
                wake: wake.try_clone()?,
                max_threads: max_threads.max(1),
                deadline,
            }),
            answers: rx,
        })
    }

    /// Ask for `name` on behalf of a slot; `retry`: it failed before (retries go after new
    /// names). A name already being looked up is not looked up twice: the slot gets that
    /// lookup's answer.
    pub fn ask(&self, slot: usize, generation: u32, name: &str, retry: bool) {
        let waiter = Waiter {
            slot,
            generation,
            since: Instant::now(),
        };
        let mut st = self.shared.lock();
        if let Some(ws) = st.waiting.get_mut(name) {
            if !ws
                .iter()
                .any(|w| w.slot == slot && w.generation == generation)
            {
                ws.push(waiter);
            }
            return;
        }
        st.waiting.insert(name.to_string(), vec![waiter]);
        if retry {
            st.retry.push_back(name.to_string());
        } else {
            st.fresh.push_back(name.to_string());
        }
        let free = st.threads - st.busy;
        if free < st.takeable() && st.threads < self.shared.max_threads {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("resolve{}", st.threads))
                .stack_size(STACK)
                .spawn(move || worker(&shared));
            // Without a thread the name's deadline passes: it is retried then.
            if spawned.is_ok() {
                st.threads += 1;
            }
        }
        drop(st);
        self.shared.work.notify_one();
    }

    /// The answers that came since the last call, and a failure for every target whose
    /// lookup passed its deadline.
    pub fn answers(&self) -> Vec<Answer> {
        let now = Instant::now();
        let deadline = self.shared.deadline;
        let mut out: Vec<Answer> = Vec::new();
        {
            let mut st = self.shared.lock();
            for ws in st.waiting.values_mut() {
                ws.retain(|w| {
                    let late = now.saturating_duration_since(w.since) >= deadline;
                    if late {
                        out.push((
                            w.slot,
                            w.generation,
                            Err(format!(
                                "no answer from the resolver within {}",
                                humantime::format_duration(deadline)
                            )),
                        ));
                    }
                    !late
                });
            }
        }
        out.extend(self.answers.try_iter());
        out
    }

    /// Threads started and not ended (for tests).
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.shared.lock().threads
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Idle threads end; one inside a slow lookup ends when it returns (its answer goes
        // nowhere): the process is exiting.
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
    }
}

fn worker(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.closed {
            st.threads -= 1;
            return;
        }
        let job = match st.fresh.pop_front() {
            Some(n) => Some((n, false)),
            None if st.busy_retries < RETRY_THREADS => st.retry.pop_front().map(|n| (n, true)),
            None => None,
        };
        let Some((name, retry)) = job else {
            let (guard, timeout) = shared
                .work
                .wait_timeout(st, IDLE_END)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if timeout.timed_out() && st.takeable() == 0 && !st.closed {
                st.threads -= 1;
                return;
            }
            continue;
        };
        st.busy += 1;
        if retry {
            st.busy_retries += 1;
        }
        drop(st);
        let got = (shared.lookup)(&name);
        st = shared.lock();
        st.busy -= 1;
        if retry {
            st.busy_retries -= 1;
            // A retry's place is free: another queued retry may go.
            shared.work.notify_one();
        }
        let waiters = st.waiting.remove(&name).unwrap_or_default();
        if !waiters.is_empty() {
            let tx = shared.answers.lock().unwrap_or_else(|e| e.into_inner());
            for w in &waiters {
                let _ = tx.send((w.slot, w.generation, got.clone()));
            }
            drop(tx);
            crate::net::wake(&shared.wake);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake resolver: names starting with "slow" block until the test ends (the sender is
    /// dropped); the others answer at once. Counts the lookups.
    fn fake(release: Arc<Mutex<Receiver<()>>>, calls: Arc<AtomicUsize>) -> Lookup {
        Arc::new(move |name: &str| {
            calls.fetch_add(1, Ordering::SeqCst);
            if name.starts_with("slow") {
                // Returns when the test drops its sender.
                let _ = release.lock().unwrap().recv();
                return Err("timed out".into());
            }
            Ok("127.0.0.1:80".parse().unwrap())
        })
    }

    /// A resolver over [`fake`] with this deadline: the sender whose drop releases the
    /// slow lookups, the count of lookups, and the far end of its wake-up channel.
    fn resolver(deadline: Duration) -> (Resolver, mpsc::Sender<()>, Arc<AtomicUsize>, UnixStream) {
        let (hold, release) = mpsc::channel::<()>();
        let calls = Arc::new(AtomicUsize::new(0));
        let (wake, peer) = UnixStream::pair().unwrap();
        let r = Resolver::with_lookup(
            fake(Arc::new(Mutex::new(release)), Arc::clone(&calls)),
            &wake,
            MAX_THREADS,
            deadline,
        )
        .unwrap();
        (r, hold, calls, peer)
    }

    fn wait_for(r: &Resolver, slot: usize, within: Duration) -> Option<Answer> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(a) = r.answers().into_iter().find(|a| a.0 == slot) {
                return Some(a);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn twenty_slow_names_first_do_not_hold_up_a_good_one() {
        let (r, hold, _calls, _peer) = resolver(Duration::from_secs(60));
        for i in 0..20 {
            r.ask(i, 0, &format!("slow{i}.example:80"), false);
        }
        r.ask(20, 0, "good.example:80", false);
        let got = wait_for(&r, 20, Duration::from_secs(1)).expect("the good name answered");
        assert_eq!(got.2, Ok("127.0.0.1:80".parse().unwrap()));
        assert_eq!(r.threads(), 21);
        drop(hold);
    }

    #[test]
    fn retries_never_take_every_thread_from_new_names() {
        let (r, hold, calls, _peer) = resolver(Duration::from_secs(60));
        // More slow retries than threads.
        for i in 0..MAX_THREADS + 10 {
            r.ask(i, 0, &format!("slow{i}.example:80"), true);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(calls.load(Ordering::SeqCst), RETRY_THREADS);
        r.ask(999, 0, "good.example:80", false);
        assert!(wait_for(&r, 999, Duration::from_secs(1)).is_some());
        drop(hold);
    }

    #[test]
    fn a_slow_lookup_fails_at_its_deadline_and_is_not_started_twice() {
        let (r, hold, calls, _peer) = resolver(Duration::from_millis(300));
        r.ask(1, 7, "slow.example:80", false);
        let t = Instant::now();
        let got = wait_for(&r, 1, Duration::from_secs(2)).expect("a failure at the deadline");
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(got.1, 7);
        assert!(got.2.unwrap_err().contains("within 300ms"));
        // Asked again while the first lookup still runs: no second lookup.
        r.ask(1, 7, "slow.example:80", true);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // When it ends, the waiting target gets its answer (once).
        drop(hold);
        let got = wait_for(&r, 1, Duration::from_secs(2)).expect("the late answer");
        assert_eq!(got.2, Err("timed out".to_string()));
        assert!(wait_for(&r, 1, Duration::from_millis(100)).is_none());
    }
}
