//! Which ping does an ICMP error belong to? Pure bookkeeping, testable without root.
//!
//! Every ping binds its own local port before its SYN leaves and is registered under it.
//! An ICMP error is attributed to a ping only when the TCP header it quotes carries that
//! ping's exact 4-tuple: our source address and port, the target's address and port.
//!
//! When the ping's initial sequence number is known (the packet socket saw its SYN leave,
//! see `probe::tap`), the quoted sequence number must also be one the connection has used, from
//! the ISN to the ISN plus the SYN and every byte sent, as Linux's tcp_v4_err /
//! tcp_v6_err check it (there between snd_una and snd_nxt): an off-path forger who guessed
//! the port still has to guess a sequence number within that window. The ISN is read right
//! after `connect()` returns, but an error can be handled sooner (on a fast path the router's
//! answer is processed while `connect()` is still in the kernel): an error quoting a ping
//! whose ISN is awaited waits for it, up to `AWAIT_ISN`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::parse::IcmpError;
pub use super::unmatched::Unmatched;
use super::unmatched::{IcmpTally, Ledger, WhenFull};
use crate::packet::icmp::IcmpType;

/// When, in a ping's life, the error arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// During the TCP handshake.
    Connect,
    /// After the handshake, while waiting for the echo.
    Echo,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Echo => "echo",
        }
    }
}

/// Where the report came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The raw ICMP socket.
    Raw,
    /// The kernel's per-socket error queue (IP_RECVERR), available without privileges.
    RecvErr,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Raw => "raw",
            Source::RecvErr => "recverr",
        }
    }
}

/// An ICMP error attributed to a ping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpReport {
    pub icmp_type: u8,
    pub code: u8,
    pub v6: bool,
    pub info: u32,
    pub from: IpAddr,
    /// Time from the ping's start to the error's arrival.
    pub after: Duration,
    pub phase: Phase,
    pub source: Source,
    /// RFC 4884 extensions the error carried (MPLS labels, interface information), from
    /// raw capture only (the kernel's error queue does not pass them on).
    pub extensions: Option<Box<super::extension::Extensions>>,
}

impl IcmpReport {
    /// The report of `err`, captured raw, attributed to a probe that it reached `after` the
    /// probe started, in `phase`.
    pub fn of(err: &IcmpError, after: Duration, phase: Phase) -> IcmpReport {
        IcmpReport {
            icmp_type: err.icmp_type,
            code: err.code,
            v6: err.v6,
            info: err.info,
            from: err.from,
            after,
            phase,
            source: Source::Raw,
            extensions: err.extensions.clone(),
        }
    }

    /// Its type, named, with its family.
    pub fn kind(&self) -> IcmpType {
        IcmpType::of(self.v6, self.icmp_type)
    }

    pub fn describe(&self) -> super::parse::Description {
        super::parse::describe(self.v6, self.icmp_type, self.code, self.info)
    }

    /// The MTU the error reports: "fragmentation needed" (ICMP 3/4) or "packet too big"
    /// (ICMPv6 2); None for other errors.
    pub fn mtu(&self) -> Option<u32> {
        self.kind().is_too_big(self.code).then_some(self.info)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Ping { seq: u64 },
    Unmatched(Unmatched),
}

#[derive(Debug)]
struct Probe {
    seq: u64,
    local: SocketAddr,
    remote: SocketAddr,
    started: Instant,
    phase: Phase,
    report: Option<IcmpReport>,
    /// The quoted sequence number of the report's error, as an offset from our ISN (0: the
    /// SYN, 1: the first data byte), when the window was known.
    quoted: Option<u32>,
    window: Window,
}

/// What is known of the sequence numbers a ping's connection has used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// Nothing (no packet socket, or it missed the SYN): the 4-tuple decides.
    Unknown,
    /// The SYN is leaving; its ISN will be read as soon as `connect()` returns.
    Awaited,
    /// From our ISN to `isn + used` (1 for the SYN plus every data byte sent).
    Known { isn: u32, used: u32 },
}

/// How long an error quoting a ping whose ISN is awaited waits for it, by default (the
/// ping thread reads it microseconds after the SYN left; this bounds a descheduled thread).
/// Past it the 4-tuple decides.
pub const AWAIT_ISN: Duration = Duration::from_millis(20);

/// How many unattributed errors are kept for `-v` (the latest ones).
const UNMATCHED_KEPT: usize = 256;
/// How many ended pings are remembered, to tell late errors from foreign ones.
const ENDED_KEPT: usize = 64;

/// The pings in flight, shared by the pinging thread and the ICMP listener.
#[derive(Debug)]
pub struct Registry {
    probes: Mutex<HashMap<u16, Probe>>,
    /// Signalled when an awaited window is settled.
    window_settled: Condvar,
    /// Errors waiting on `window_settled` (changed only with `probes` locked): a window
    /// settles for every ping, a wake-up system call is only worth it when one waits.
    waiters: AtomicUsize,
    /// How long an error waits for an awaited window (`AWAIT_ISN`).
    isn_wait: Duration,
    /// Unattributed errors, counted, and kept for `-v` when asked (not worth the copies
    /// otherwise).
    unmatched: Mutex<Ledger>,
    /// 4-tuples (local, remote) of recently ended pings.
    ended: Mutex<VecDeque<(SocketAddr, SocketAddr)>>,
    /// Ports of pings that got their report since the last `take_attributed`.
    attributed: Mutex<Vec<u16>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            probes: Mutex::default(),
            window_settled: Condvar::new(),
            waiters: AtomicUsize::new(0),
            isn_wait: AWAIT_ISN,
            unmatched: Mutex::new(Ledger::new(true, UNMATCHED_KEPT, WhenFull::KeepLatest)),
            ended: Mutex::default(),
            attributed: Mutex::default(),
        }
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep (or not) the unattributed errors for `drain_unmatched`; they are counted anyway.
    pub fn with_unmatched_log(self, keep: bool) -> Self {
        self.ledger().set_keep(keep);
        self
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.unmatched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long an error quoting a ping whose ISN is awaited waits for it (default
    /// `AWAIT_ISN`).
    pub fn with_isn_wait(mut self, wait: Duration) -> Self {
        self.isn_wait = wait;
        self
    }

    /// Register a ping before its first packet leaves (or re-register a persistent
    /// connection for the next ping).
    pub fn register(&self, seq: u64, local: SocketAddr, remote: SocketAddr, started: Instant) {
        let mut p = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        p.insert(
            local.port(),
            Probe {
                seq,
                local,
                remote,
                started,
                phase: Phase::Connect,
                report: None,
                quoted: None,
                window: Window::Unknown,
            },
        );
    }

    /// The ping's SYN is about to leave and the packet socket will show its ISN: errors
    /// quoting the ping wait (up to `AWAIT_ISN`) for `set_seq_window` or
    /// `seq_window_unknown`, which the caller must call as soon as `connect()` returns.
    pub fn await_seq_window(&self, port: u16) {
        self.settle(port, |_| Some(Window::Awaited));
    }

    /// The ISN could not be read (the packet socket did not see the SYN): errors waiting
    /// for it, and later ones, are judged by the 4-tuple. A known window is kept.
    pub fn seq_window_unknown(&self, port: u16) {
        self.settle(port, |w| (w == Window::Awaited).then_some(Window::Unknown));
    }

    /// Change the window of the ping on `port` to what `f` says (None: keep it); wake the
    /// errors waiting for it if it was awaited.
    fn settle(&self, port: u16, f: impl FnOnce(Window) -> Option<Window>) {
        let mut p = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(probe) = p.get_mut(&port) else {
            return;
        };
        let was = probe.window;
        if let Some(w) = f(was) {
            probe.window = w;
        }
        let wake = was == Window::Awaited && self.waiters.load(Ordering::Relaxed) > 0;
        drop(p);
        if wake {
            self.window_settled.notify_all();
        }
    }

    /// The sequence numbers the ping's connection has used: `isn` (our SYN's) up to
    /// `isn + used` (`used` = 1 for the SYN + the data bytes sent so far). Errors quoting
    /// its 4-tuple with a sequence number outside that window are not attributed. Until this
    /// is called for a registration (unprivileged: no packet socket; or the SYN was missed)
    /// the 4-tuple alone decides (after `await_seq_window`, errors wait for it first).
    /// `register` forgets the window: a persistent connection sets it again for each ping.
    pub fn set_seq_window(&self, port: u16, isn: u32, used: u32) {
        self.settle(port, |_| Some(Window::Known { isn, used }));
    }

    pub fn set_phase(&self, port: u16, phase: Phase) {
        let mut p = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(probe) = p.get_mut(&port) {
            probe.phase = phase;
        }
    }

    /// The report attributed to the ping on `port`, if any.
    pub fn report(&self, port: u16) -> Option<IcmpReport> {
        let p = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        p.get(&port).and_then(|probe| probe.report.clone())
    }

    /// Take the report attributed to the connection on `port`, with the quoted sequence
    /// number as an offset from our ISN (when the window was known): the next error quoting
    /// the connection is attributed again. For a connection carrying several pings at once,
    /// which tells by the offset which ping the error is about.
    pub fn take_report(&self, port: u16) -> Option<(IcmpReport, Option<u32>)> {
        let mut p = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let probe = p.get_mut(&port)?;
        let report = probe.report.take()?;
        Some((report, probe.quoted.take()))
    }

    /// Count an error attributed to a connection whose ping had already ended (see
    /// `take_report`) as late.
    pub fn note_late(&self) {
        self.ledger().note_late();
    }

    /// The ping ended: later errors quoting its port are not attributed.
    pub fn unregister(&self, port: u16) -> Option<IcmpReport> {
        let probe = {
            let mut p = self.probes.lock().unwrap_or_else(|e| e.into_inner());
            p.remove(&port)
        }?;
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() == ENDED_KEPT {
            ended.pop_front();
        }
        ended.push_back((probe.local, probe.remote));
        probe.report
    }

    /// Attribute an ICMP error, received at `at`, to the ping whose 4-tuple it quotes.
    pub fn on_icmp(&self, err: &IcmpError, at: Instant) -> Match {
        let m = self.attribute(err, at);
        if let Match::Unmatched(why) = m {
            self.ledger().record(err, why);
        }
        m
    }

    fn attribute(&self, err: &IcmpError, at: Instant) -> Match {
        let Some(q) = err.quoted else {
            return Match::Unmatched(Unmatched::NotTcp);
        };
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let awaited = |p: &mut HashMap<u16, Probe>| {
            p.get(&q.src.port())
                .is_some_and(|probe| probe.window == Window::Awaited)
        };
        if awaited(&mut probes) {
            self.waiters.fetch_add(1, Ordering::Relaxed);
            probes = self
                .window_settled
                .wait_timeout_while(probes, self.isn_wait, awaited)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            self.waiters.fetch_sub(1, Ordering::Relaxed);
        }
        let Some(probe) = probes.get_mut(&q.src.port()) else {
            drop(probes);
            let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            let ours = |&(l, r): &(SocketAddr, SocketAddr)| {
                r == q.dst
                    && l.port() == q.src.port()
                    && (l.ip() == q.src.ip() || l.ip().is_unspecified())
            };
            return Match::Unmatched(if ended.iter().any(ours) {
                Unmatched::Late
            } else {
                Unmatched::NoSuchPing
            });
        };
        if q.dst != probe.remote {
            return Match::Unmatched(Unmatched::OtherDestination);
        }
        if q.src.ip() != probe.local.ip() && !probe.local.ip().is_unspecified() {
            return Match::Unmatched(Unmatched::OtherSource);
        }
        // Inclusive at the top, as Linux's between(seq, snd_una, snd_nxt): an error about
        // the first segment of a send may arrive before the window is widened for it.
        if let (Some(seq), Window::Known { isn, used }) = (q.seq, probe.window) {
            if seq.wrapping_sub(isn) > used {
                return Match::Unmatched(Unmatched::OtherSequence);
            }
        }
        // The first error decides; a router may repeat itself for retransmissions.
        if probe.report.is_none() {
            probe.quoted = match (q.seq, probe.window) {
                (Some(seq), Window::Known { isn, .. }) => Some(seq.wrapping_sub(isn)),
                _ => None,
            };
            self.attributed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(probe.local.port());
            let after = at.saturating_duration_since(probe.started);
            probe.report = Some(IcmpReport::of(err, after, probe.phase));
        }
        Match::Ping { seq: probe.seq }
    }

    /// The ports of pings attributed a report since the last call (a prober with many pings
    /// in flight looks at those only).
    pub fn take_attributed(&self) -> Vec<u16> {
        std::mem::take(&mut *self.attributed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// ICMP errors seen that quote none of our pings.
    pub fn unmatched_count(&self) -> u64 {
        self.ledger().tally().unmatched
    }

    /// ICMP errors that quote one of our pings after it ended (not attributed either).
    pub fn late_count(&self) -> u64 {
        self.ledger().tally().late
    }

    /// Both counts at once.
    pub fn tally(&self) -> IcmpTally {
        self.ledger().tally()
    }

    /// Take the unattributed errors kept since the last call (for `-v`).
    pub fn drain_unmatched(&self) -> Vec<(IcmpError, Unmatched)> {
        self.ledger().drain()
    }
}
