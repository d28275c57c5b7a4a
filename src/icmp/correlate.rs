//! Which ping does an ICMP error belong to? Pure bookkeeping, testable without root.
//!
//! Every ping binds its own local port before its SYN leaves and is registered under it.
//! An ICMP error is attributed to a ping only when the TCP header it quotes carries that
//! ping's exact 4-tuple: our source address and port, the target's address and port.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::parse::IcmpError;

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
}

impl IcmpReport {
    pub fn describe(&self) -> super::parse::Description {
        super::parse::describe(self.v6, self.icmp_type, self.code, self.info)
    }

    /// The MTU the error reports: "fragmentation needed" (ICMP 3/4) or "packet too big"
    /// (ICMPv6 2); None for other errors.
    pub fn mtu(&self) -> Option<u32> {
        ((self.v6 && self.icmp_type == 2) || (!self.v6 && self.icmp_type == 3 && self.code == 4))
            .then_some(self.info)
    }
}

/// Why an ICMP error was not attributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// It quotes no TCP header (UDP, another protocol, or too short).
    NotTcp,
    /// The quoted destination is not our target.
    OtherDestination,
    /// No ping is registered on the quoted source port (another program, or a ping that ended).
    NoSuchPing,
    /// The quoted source address is not ours (spoofed, or another host's traffic).
    OtherSource,
    /// It quotes a ping of ours that has already ended (a late copy, or a retransmission).
    Late,
}

impl Unmatched {
    pub fn as_str(self) -> &'static str {
        match self {
            Unmatched::NotTcp => "quotes no TCP segment",
            Unmatched::OtherDestination => "quotes another destination",
            Unmatched::NoSuchPing => "quotes a port of no current ping",
            Unmatched::OtherSource => "quotes another source address",
            Unmatched::Late => "quotes a ping that already ended",
        }
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
}

/// How many unattributed errors are kept for `-v`.
const UNMATCHED_KEPT: usize = 256;
/// How many ended pings are remembered, to tell late errors from foreign ones.
const ENDED_KEPT: usize = 64;

/// The pings in flight, shared by the pinging thread and the ICMP listener.
#[derive(Debug)]
pub struct Registry {
    probes: Mutex<HashMap<u16, Probe>>,
    /// Whether unattributed errors are kept for `-v` (not worth the copies otherwise).
    keep_unmatched: bool,
    unmatched_log: Mutex<VecDeque<(IcmpError, Unmatched)>>,
    unmatched: AtomicU64,
    /// 4-tuples (local, remote) of recently ended pings.
    ended: Mutex<VecDeque<(SocketAddr, SocketAddr)>>,
    late: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            probes: Mutex::default(),
            keep_unmatched: true,
            unmatched_log: Mutex::default(),
            unmatched: AtomicU64::default(),
            ended: Mutex::default(),
            late: AtomicU64::default(),
        }
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep (or not) the unattributed errors for `drain_unmatched`; they are counted anyway.
    pub fn with_unmatched_log(mut self, keep: bool) -> Self {
        self.keep_unmatched = keep;
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
            },
        );
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
            if why == Unmatched::Late {
                self.late.fetch_add(1, Ordering::Relaxed);
            } else {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
            }
            if !self.keep_unmatched {
                return m;
            }
            let mut log = self.unmatched_log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == UNMATCHED_KEPT {
                log.pop_front();
            }
            log.push_back((err.clone(), why));
        }
        m
    }

    fn attribute(&self, err: &IcmpError, at: Instant) -> Match {
        let Some(q) = err.quoted else {
            return Match::Unmatched(Unmatched::NotTcp);
        };
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
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
        // The first error decides; a router may repeat itself for retransmissions.
        if probe.report.is_none() {
            probe.report = Some(IcmpReport {
                icmp_type: err.icmp_type,
                code: err.code,
                v6: err.v6,
                info: err.info,
                from: err.from,
                after: at.saturating_duration_since(probe.started),
                phase: probe.phase,
                source: Source::Raw,
            });
        }
        Match::Ping { seq: probe.seq }
    }

    /// ICMP errors seen that quote none of our pings.
    pub fn unmatched_count(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// ICMP errors that quote one of our pings after it ended (not attributed either).
    pub fn late_count(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Take the unattributed errors kept since the last call (for `-v`).
    pub fn drain_unmatched(&self) -> Vec<(IcmpError, Unmatched)> {
        let mut log = self.unmatched_log.lock().unwrap_or_else(|e| e.into_inner());
        log.drain(..).collect()
    }
}
