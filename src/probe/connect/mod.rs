//! The connect probe: one TCP connection per ping (or one for all), request, echo, verdict.
//!
//! Every ping binds its own local port before its SYN leaves and registers it, so an ICMP
//! error quoting that port is attributed to it by the listener thread, which wakes the
//! prober at once: an error concludes a ping when it arrives, not when the timeout expires.
//! With the packet socket, the registration also carries the connection's sequence window
//! (our ISN, as the SYN left, and the bytes sent since), which a quoted segment must fall in.
//!
//! [`ConnectProber`] keeps any number of pings in flight on non-blocking sockets in one
//! event loop (mio): one target pinged once a second, or thousands at once, with no thread
//! per ping or per target. A persistent connection, once open, carries its target's pings
//! pipelined ([`Pipe`]): each request leaves when its ping starts, each echo names its ping
//! by the sequence number it carries, and each ping keeps its own bytes of the stream (for
//! ICMP quotes) and transmit timestamp (OPT_ID). Each ping is a small state machine:
//! connecting, then waiting for its echo, then (when the kernel's error queue reported an
//! ICMP error first) waiting a moment for the raw socket's copy of it.
//!
//! - [`flight`]: one ping on its own connection, a state machine;
//! - [`control`]: the small control ping that tells a path MTU black hole from a dead path;
//! - [`echo`]: judging the echo, and the fallback for targets that do not speak it;
//! - [`pipe`]: the persistent connection, its pings pipelined;
//! - [`icmp`]: an error the kernel reported, handed over to the ping (or pings) it concerns;
//! - [`size`]: the request's size (`-s`) and Don't Fragment (`-M`);
//! - [`socket`]: the probe socket, opened the same way by trace's `ttl_connect`;
//! - this module: the prober and its event loop.

mod control;
mod echo;
mod flight;
mod icmp;
mod pipe;
mod size;
mod socket;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::tap::WireTap;
use super::{IcmpTally, Mode, PingResult, ProbeSpec, Prober, Shape, Status};
use crate::icmp::correlate::Unmatched;
use crate::icmp::listener::Capture;
use crate::icmp::parse::IcmpError;
use crate::icmp::{Phase, Registry};
use crate::net::{self, Waker};
use crate::timing;
use echo::Speaks;
use flight::{Flight, Stage};
use pipe::{Pipe, Waiting};
use socket::Conn;

pub use echo::{judge_reply, not_echo, CLOSED_BEFORE_ECHO, UNEXPECTED_REPLY};
pub use size::{on_wire, path_mtu, Pmtud, MAX_SIZE, MIN_SIZE, SMALL};
pub(crate) use socket::probe_socket;

/// How long back-to-back pings (-i 0) poll without sleeping before they wait: a CPU that
/// went idle takes tens of microseconds to wake on a virtual machine, longer than a
/// loopback round trip.
const SPIN: Duration = Duration::from_micros(250);

/// How long a ping waits for the raw socket's copy of an error the kernel already reported.
const RAW_GRACE: Duration = Duration::from_millis(50);

/// Longest answer read: more is an error (the echo of the largest `-s`, and room to spare).
const MAX_REPLY: usize = 2 * MAX_SIZE;

/// The event-loop token of the wake-up channel (signals, ICMP attributions); pings count
/// from 1.
const WAKER: Token = Token(0);

/// Pings waiting on one opening persistent connection, at most (more are not `ready`).
const MAX_WAITING: usize = 1024;

/// Pings with TCP connections, any number in flight.
pub struct ConnectProber {
    mode: Mode,
    timeout: Duration,
    spin: bool,
    /// The echo mode's fallback: a target that does not speak the echo protocol has its
    /// handshake timed instead (off with `--echo`: such answers are errors).
    fallback: bool,
    /// What each target's answers showed (echo mode only; one entry per target).
    speaks: HashMap<SocketAddr, Speaks>,
    registry: Arc<Registry>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Whether raw ICMP sockets are being read (see `Stage::AwaitRaw`), and the listener.
    raw_capture: bool,
    capture: Option<Capture>,
    /// Keeps the kernel's timestamping switched on between pings (see `timing`).
    _timestamping: Option<std::net::UdpSocket>,
    /// Wire timestamps of the handshakes, when privileged (see `tap`).
    wire: Option<WireTap>,
    poll: Poll,
    events: Events,
    flights: HashMap<Token, Flight>,
    /// Local port -> ping, for the packet socket's SYNs and the listener's attributions.
    by_port: HashMap<u16, Token>,
    next_token: usize,
    /// Pings' deadlines in the order they were set: the timeout is the same for all, so
    /// this is their order in time too. A concluded ping's entry is taken out when it is
    /// the newest (one ping at a time: the queue stays empty between pings), else skipped
    /// when it comes up: the queue holds at most the pings of one timeout.
    deadlines: VecDeque<(Instant, Token)>,
    /// Deadlines of the pings awaiting the raw copy of an error (`Stage::AwaitRaw`): few.
    graces: Vec<(Instant, Token)>,
    /// Persistent connections once open, under their event-loop token: each carries its
    /// target's pings, several at once when -W is longer than -i.
    pipes: HashMap<Token, Pipe>,
    /// Pings that came due while their target's persistent connection was being opened, in
    /// order, with their start: they wait on that connection (the same SYN) until it opens
    /// (their requests then go out on it), fails (its verdict is theirs), or their own
    /// deadline passes (a timeout while connecting).
    waiting: HashMap<SocketAddr, VecDeque<Waiting>>,
    /// A persistent connection just opened: its target is `ready` for more pings, which
    /// `poll` returns to say (the scheduler waits for verdicts otherwise).
    readied: bool,
    /// Our source address toward each target (the route's), looked up once.
    sources: HashMap<IpAddr, Option<IpAddr>>,
    /// Verdicts reached while sending (a socket that could not be opened, a refused connect).
    early: Vec<PingResult>,
    chunk: Box<[u8; 2048]>,
    /// IP_TOS / IPV6_TCLASS of every socket (`with_tos`; 0: the system's).
    tos: u8,
    /// The requests' size (`-s`) and Don't Fragment (`-M`) of the pings sent from now on.
    shape: Shape,
    /// Targets found behind a path MTU black hole (said once each).
    black_holes: std::collections::HashSet<SocketAddr>,
}

impl ConnectProber {
    /// A prober for `mode` (echo, connect-only or persistent) with timeout `timeout`.
    pub fn new(
        mode: Mode,
        timeout: Duration,
        registry: Arc<Registry>,
        waker: Arc<Waker>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let wfd = waker.fd();
        poll.registry()
            .register(&mut SourceFd(&wfd), WAKER, Interest::READABLE)?;
        Ok(ConnectProber {
            mode,
            timeout,
            spin: false,
            fallback: false,
            speaks: HashMap::new(),
            registry,
            waker,
            stop,
            raw_capture: false,
            capture: None,
            _timestamping: timing::hold_timestamping_on(),
            wire: None,
            poll,
            events: Events::with_capacity(1024),
            flights: HashMap::new(),
            by_port: HashMap::new(),
            next_token: 1,
            deadlines: VecDeque::new(),
            graces: Vec::new(),
            pipes: HashMap::new(),
            waiting: HashMap::new(),
            readied: false,
            sources: HashMap::new(),
            early: Vec::new(),
            chunk: Box::new([0; 2048]),
            tos: 0,
            shape: Shape::default(),
            black_holes: Default::default(),
        })
    }

    /// Time handshakes on the wire with this packet socket.
    pub fn with_wire_tap(mut self, tap: Option<WireTap>) -> Self {
        self.wire = tap;
        self
    }

    /// Keep the raw ICMP capture that attributes errors in our registry, running as long
    /// as the prober (None: no capture; errors come from the kernel's error queue).
    pub fn with_capture(mut self, capture: Option<Capture>) -> Self {
        self.raw_capture = capture.is_some();
        self.capture = capture;
        self
    }

    /// In the echo mode, time the handshake of a target that answers anything but the echo
    /// protocol (a banner, another protocol's answer, a close after the request) instead of
    /// calling each ping an error: the ping that finds out carries [`Notice::NotEcho`]. A
    /// target that stays silent is hinted about once ([`Notice::NoEcho`]).
    pub fn with_echo_fallback(mut self, on: bool) -> Self {
        self.fallback = on && self.mode == Mode::Echo;
        self
    }

    /// Poll without sleeping for a moment before waiting (for -i 0).
    pub fn with_spin(mut self, on: bool) -> Self {
        self.spin = on;
        self
    }

    /// Every socket's IPv4 TOS / IPv6 traffic class (`--tos`): IP_TOS / IPV6_TCLASS. (Linux
    /// keeps the ECN bits of a TCP socket's packets to itself: the DSCP is what goes out.)
    pub fn with_tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }

    /// Leave from `src` toward `target` (instead of asking the route).
    pub fn with_source(mut self, target: IpAddr, src: Option<IpAddr>) -> Self {
        self.sources.insert(target, src);
        self
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn source_for(&mut self, target: SocketAddr) -> Option<IpAddr> {
        *self
            .sources
            .entry(target.ip())
            .or_insert_with(|| net::source_address_for(target).ok())
    }

    fn open_socket(&mut self, spec: &ProbeSpec) -> io::Result<Conn> {
        let source = self.source_for(spec.target);
        let sock = probe_socket(spec.target, spec.ttl, source, 0)?;
        if self.tos != 0 {
            if spec.target.is_ipv6() {
                sock.set_tclass_v6(u32::from(self.tos))?;
            } else {
                sock.set_tos(u32::from(self.tos))?;
            }
        }
        sock.set_nodelay(true)?;
        size::set_pmtud(sock.as_raw_fd(), spec.target.is_ipv6(), self.shape.pmtud)?;
        let local = sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        Ok(Conn {
            sock,
            local,
            isn: None,
            sent: 0,
        })
    }

    /// Handle what the event loop reported.
    fn dispatch(&mut self, tok: Token, readable: bool, writable: bool, error: bool) {
        if self.pipes.contains_key(&tok) {
            if error {
                self.pipe_error_queue(tok);
            }
            if readable || error {
                self.pipe_read(tok);
            }
            return;
        }
        let Some(f) = self.flights.get(&tok) else {
            return;
        };
        match f.stage {
            Stage::Connecting { t0, .. } => {
                if !(writable || error || readable) {
                    return;
                }
                let took = t0.elapsed();
                match f.conn.sock.take_error() {
                    Ok(None) => {
                        // Writable without an error: connected (or a spurious wake-up).
                        match f.conn.sock.peer_addr() {
                            Ok(_) => self.connected(tok, took),
                            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
                            Err(e) => {
                                let v = self.socket_error(tok, e, Phase::Connect);
                                self.settle(tok, v);
                            }
                        }
                    }
                    Ok(Some(e)) | Err(e) => {
                        let v = self.socket_error(tok, e, Phase::Connect);
                        self.settle(tok, v);
                    }
                }
            }
            Stage::Echo { .. } => {
                if readable {
                    self.on_readable(tok);
                }
                if error {
                    self.on_error_queue(tok);
                }
            }
            Stage::AwaitRaw { .. } | Stage::AwaitControl => {}
        }
    }

    /// Conclude the pings whose deadline passed.
    fn expire(&mut self, now: Instant) {
        let due: Vec<Token> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.next_deadline().is_some_and(|d| d <= now))
            .map(|(t, _)| *t)
            .collect();
        for tok in due {
            self.pipe_expire(tok, now);
        }
        while let Some(&(at, tok)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            let Some(f) = self.flights.get(&tok) else {
                continue;
            };
            // A persistent connection's token comes back with its next ping's deadline;
            // a ping waiting for the raw copy of its error is ended by its grace instead.
            if f.deadline == at && !matches!(f.stage, Stage::AwaitRaw { .. }) {
                let opening = matches!(f.stage, Stage::Connecting { .. });
                if opening && self.hand_over(tok) {
                    continue;
                }
                if self.start_control(tok) {
                    continue;
                }
                self.hint_if_silent(tok);
                self.conclude(tok, Status::Timeout);
            }
        }
        self.expire_waiting(now);
        let mut i = 0;
        while i < self.graces.len() {
            let (until, tok) = self.graces[i];
            if until > now {
                i += 1;
                continue;
            }
            self.graces.swap_remove(i);
            if let Some(Flight {
                stage:
                    Stage::AwaitRaw {
                        fallback, until: u, ..
                    },
                ..
            }) = self.flights.get(&tok)
            {
                if *u == until {
                    let st = fallback.clone();
                    self.conclude(tok, st);
                }
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let piped = self.pipes.values().filter_map(Pipe::next_deadline).min();
        // Entries of pings already concluded are dropped here rather than waited for.
        while let Some(&(at, tok)) = self.deadlines.front() {
            match self.flights.get(&tok) {
                Some(f) if f.deadline == at => break,
                _ => {
                    self.deadlines.pop_front();
                }
            }
        }
        let first = self.deadlines.front().map(|&(at, _)| at);
        let grace = self.graces.iter().map(|&(at, _)| at).min();
        let waiting = self
            .waiting
            .values()
            .filter_map(|q| q.front().map(|w| w.start + self.timeout))
            .min();
        [first, grace, piped, waiting].into_iter().flatten().min()
    }
}

impl Prober for ConnectProber {
    fn ready(&self, target: SocketAddr) -> bool {
        // New connections any number; a persistent connection once open any number, and
        // while it is being opened the pings that come due wait on it, up to a bound.
        self.mode != Mode::Persistent
            || self.waiting.get(&target).map_or(0, VecDeque::len) < MAX_WAITING
    }

    fn send(&mut self, spec: ProbeSpec) {
        if !self.wait_on_opening(&spec) {
            self.begin(spec);
        }
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        let spin_until = self.spin.then(|| Instant::now() + SPIN);
        // Whether the event loop was looked at once: even past `until`, what is ready is
        // handled before returning.
        let mut checked = false;
        loop {
            let now = Instant::now();
            self.expire(now);
            if std::mem::take(&mut self.readied) || !self.early.is_empty() {
                done.append(&mut self.early);
                return Ok(());
            }
            if self.stopped() {
                return Ok(());
            }
            let wake = self.next_deadline().map_or(until, |d| d.min(until));
            if wake <= now && checked {
                return Ok(());
            }
            checked = true;
            let spinning = spin_until.is_some_and(|t| now < t);
            let wait = if spinning || wake <= now {
                // Look at what is ready without sleeping.
                Duration::ZERO
            } else {
                // Round up: a wait must not end before its deadline.
                (wake - now).max(Duration::from_micros(1))
            };
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let ready: Vec<(Token, bool, bool, bool)> = self
                .events
                .iter()
                .map(|e| (e.token(), e.is_readable(), e.is_writable(), e.is_error()))
                .collect();
            for (tok, r, w, err) in ready {
                if tok == WAKER {
                    self.waker.drain();
                    self.take_attributed();
                } else {
                    self.dispatch(tok, r, w, err);
                }
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.flights.len()
            + self.pipes.values().map(Pipe::live).sum::<usize>()
            + self.waiting.values().map(VecDeque::len).sum::<usize>()
            + self.early.len()
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        done.append(&mut self.early);
        let mut pipes: Vec<Token> = self.pipes.keys().copied().collect();
        pipes.sort();
        for tok in pipes {
            self.pipe_conclude_all(tok, |_| Status::Interrupted);
        }
        let mut toks: Vec<(Instant, Token)> =
            self.flights.iter().map(|(t, f)| (f.start, *t)).collect();
        toks.sort();
        for (_, tok) in toks {
            self.conclude(tok, Status::Interrupted);
        }
        done.append(&mut self.early);
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

    fn set_shape(&mut self, shape: Shape) -> bool {
        self.shape = shape;
        true
    }
}
