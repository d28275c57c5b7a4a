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
//! ICMP quotes) and transmit timestamp (OPT_ID). Each ping is a small state machine: connecting, then waiting for
//! its echo, then (when the kernel's error queue reported an ICMP error first) waiting a
//! moment for the raw socket's copy of it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::wire::{Handshake, WireTap};
use super::{Clock, IcmpTally, Mode, Notice, PingResult, ProbeSpec, Prober, Status};
use crate::icmp::correlate::Unmatched;
use crate::icmp::listener::Capture;
use crate::icmp::parse::IcmpError;
use crate::icmp::recverr::{read_error_queue, read_error_queue_id, ErrEntry, QueuedError};
use crate::icmp::{IcmpReport, Phase, Registry, Source};
use crate::net::{self, describe_io, Waker};
use crate::timing;

/// Judge the bytes received so far against the request sent.
/// None: incomplete, keep reading.
///
/// The answer is one line: the request uppercased (the echo), or `LOST` (the server's
/// simulated loss), each with or without the newline. Line ends left over from an earlier
/// answer (a server that sent its newline separately) are skipped. An answer without a
/// newline is complete as soon as it is the whole echo or exactly `LOST`: a server that
/// strips the newline is answered at once, not after the timeout.
pub fn judge_reply(request: &[u8], got: &[u8]) -> Option<Status> {
    const LOST: &[u8] = b"LOST";
    let got = &got[got
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()..];
    let line_of = |b: &[u8]| -> (usize, bool) {
        match b.iter().position(|&c| c == b'\n') {
            Some(i) => (i, true),
            None => (b.len(), false),
        }
    };
    let strip_cr = |b: &[u8]| -> Vec<u8> { b.strip_suffix(b"\r").unwrap_or(b).to_vec() };
    let (end, has_newline) = line_of(got);
    let have = strip_cr(&got[..end]);
    let want = strip_cr(&request[..line_of(request).0]).to_ascii_uppercase();
    if !has_newline {
        // Still arriving: a part of the echo, or of LOST. Anything else is wrong already.
        let complete = have == want || have == LOST;
        if !complete && (want.starts_with(&have) || LOST.starts_with(&have)) {
            return None;
        }
    }
    if have == LOST {
        Some(Status::Lost)
    } else if have == want {
        Some(Status::Reply)
    } else {
        Some(Status::Error(format!(
            "unexpected reply: {}",
            net::escape_bytes(&have[..have.len().min(80)])
        )))
    }
}

struct Conn {
    sock: Socket,
    local: SocketAddr,
    /// Our initial sequence number, when the packet socket saw the SYN leave.
    isn: Option<u32>,
    /// Data bytes sent on the connection, over all its pings.
    sent: u64,
}

impl Conn {
    /// Sequence numbers used from the ISN on: the SYN, then every byte sent (all of them
    /// once 2^32 are: the window then covers every sequence number).
    fn seq_used(&self) -> u32 {
        u32::try_from(1 + self.sent).unwrap_or(u32::MAX)
    }
}

/// How long back-to-back pings (-i 0) poll without sleeping before they wait: a CPU that
/// went idle takes tens of microseconds to wake on a virtual machine, longer than a
/// loopback round trip.
const SPIN: Duration = Duration::from_micros(250);

/// How long a ping waits for the raw socket's copy of an error the kernel already reported.
const RAW_GRACE: Duration = Duration::from_millis(50);

/// Longest answer read: more is an error.
const MAX_REPLY: usize = 4096;

/// The event-loop token of the wake-up channel (signals, ICMP attributions); pings count
/// from 1.
const WAKER: Token = Token(0);

/// Where a ping is.
enum Stage {
    /// The SYN has left; `connect()` has not completed.
    Connecting { t0: Instant, hs: Option<Handshake> },
    /// The request has left; waiting for the echo.
    Echo {
        request: Vec<u8>,
        sent_at: Instant,
        buf: Vec<u8>,
        /// The request's transmit timestamp, once read from the error queue.
        tx: Option<Duration>,
    },
    /// The kernel reported an ICMP error (on the error queue, or as the errno of an open
    /// connection, which queues nothing); the raw socket's copy (with the listener's
    /// attribution) is awaited until `until`, then `fallback` is the verdict.
    AwaitRaw {
        fallback: Status,
        phase: Phase,
        until: Instant,
    },
}

/// Pings waiting on one opening persistent connection, at most (more are not `ready`).
const MAX_WAITING: usize = 1024;

/// A ping waiting on its target's opening persistent connection.
struct Waiting {
    spec: ProbeSpec,
    result: PingResult,
    start: Instant,
}

/// One ping in flight.
struct Flight {
    spec: ProbeSpec,
    result: PingResult,
    conn: Conn,
    start: Instant,
    deadline: Instant,
    stage: Stage,
    /// It times only the handshake: `--connect-only`, or a target known not to echo.
    handshake_only: bool,
}

/// What the echo mode has learnt about a target's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Speaks {
    /// It echoed (or answered LOST): it is an echo server; other answers are errors.
    Echo,
    /// It answered something else, or closed after the request: its pings time the
    /// handshake.
    NotEcho,
    /// It stayed silent once and was hinted about; nothing known yet.
    Hinted,
}

/// Most bytes of a non-echo answer quoted in the notice.
const SAW_MAX: usize = 40;

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
    /// Wire timestamps of the handshakes, when privileged (see `wire`).
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
        let sock = probe_socket(spec.target, spec.ttl, source)?;
        sock.set_nodelay(true)?;
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

    /// Tell the registry which sequence numbers the connection has used, once its ISN is
    /// known: errors quoting others are not attributed. Call after each `register`.
    fn seq_window(registry: &Registry, conn: &Conn) {
        if let Some(isn) = conn.isn {
            registry.set_seq_window(conn.local.port(), isn, conn.seq_used());
        }
    }

    /// Read the packet socket, handing each SYN to the handshake of the ping it belongs
    /// to. A ping whose SYN has been seen learns its ISN (and registers its sequence
    /// window); `settle` (the ping whose `connect()` just returned) is told "unknown" when
    /// its SYN was not seen, so errors waiting for its ISN are judged by the 4-tuple.
    fn read_wire(&mut self, settle: Option<Token>) {
        let Some(tap) = self.wire.as_ref() else {
            return;
        };
        let (flights, by_port) = (&mut self.flights, &self.by_port);
        tap.drain(|syn| {
            let port = if syn.outgoing {
                syn.src_port
            } else {
                syn.dst_port
            };
            if let Some(f) = by_port.get(&port).and_then(|t| flights.get_mut(t)) {
                if let Stage::Connecting { hs: Some(hs), .. } = &mut f.stage {
                    hs.observe(&syn);
                }
            }
            true
        });
        let registry = &self.registry;
        for (tok, f) in self.flights.iter_mut() {
            if f.conn.isn.is_some() {
                continue;
            }
            let Stage::Connecting { hs: Some(hs), .. } = &f.stage else {
                continue;
            };
            match hs.isn() {
                Some(isn) => {
                    f.conn.isn = Some(isn);
                    Self::seq_window(registry, &f.conn);
                }
                None if settle == Some(*tok) => registry.seq_window_unknown(f.conn.local.port()),
                None => {}
            }
        }
    }

    /// Begin a ping: a new connection (its SYN leaves now), or the target's persistent
    /// connection (its request leaves now).
    fn begin(&mut self, spec: ProbeSpec) {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut result = PingResult::of(&spec, Status::Timeout);
        result.sent_at = std::time::SystemTime::now();
        if let Some(tok) = self.pipe_of(spec.target) {
            self.pipe_send(tok, spec, start, result);
            return;
        }
        let tok = Token(self.next_token);
        self.next_token += 1;
        let mut conn = match self.open_socket(&spec) {
            Ok(c) => c,
            Err(e) => {
                result.status = Status::Error(format!("open socket: {}", describe_io(&e)));
                self.early.push(result);
                return;
            }
        };
        let port = conn.local.port();
        result.local_port = Some(port);
        self.registry
            .register(spec.seq, conn.local, spec.target, start);
        let hs = self.wire.as_ref().map(|_| Handshake::new(port));
        if hs.is_some() {
            // Errors about the SYN that arrive before we read its ISN wait for it.
            self.registry.await_seq_window(port);
        }
        let handshake_only = self.mode == Mode::ConnectOnly
            || (self.fallback && self.speaks.get(&spec.target) == Some(&Speaks::NotEcho));
        let t0 = Instant::now();
        let connected = conn.sock.connect(&spec.target.into());
        let took = t0.elapsed();
        conn.isn = None;
        let f = Flight {
            spec,
            result,
            conn,
            start,
            deadline,
            stage: Stage::Connecting { t0, hs },
            handshake_only,
        };
        self.install(tok, f);
        // The SYN has left: its copy is waiting on the packet socket, with our ISN. Read it
        // at once, whatever connect() said: this settles the awaited window.
        self.read_wire(Some(tok));
        match connected {
            Ok(()) => self.connected(tok, took),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                let st = self.socket_error(tok, e, Phase::Connect);
                self.settle(tok, st);
            }
        }
    }

    /// Register a ping in the event loop (writable while connecting, readable after).
    fn install(&mut self, tok: Token, f: Flight) {
        let fd = f.conn.sock.as_raw_fd();
        self.deadlines.push_back((f.deadline, tok));
        self.by_port.insert(f.conn.local.port(), tok);
        self.flights.insert(tok, f);
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            tok,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.conclude(
                tok,
                Status::Error(format!("wait for the socket: {}", describe_io(&e))),
            );
        }
    }

    /// The handshake completed (`took`: as user space saw it).
    fn connected(&mut self, tok: Token, took: Duration) {
        self.read_wire(None);
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        let fd = f.conn.sock.as_raw_fd();
        let wire = match &f.stage {
            Stage::Connecting { hs: Some(hs), .. } => hs.time(),
            _ => None,
        };
        let t = Timed {
            kernel: wire
                .map(|d| (d, Clock::Wire))
                .or_else(|| timing::handshake_rtt(fd).map(|d| (d, Clock::Kernel))),
            user: took,
        };
        let (d, clock) = t.best();
        f.result.connect = Some(d);
        f.result.connect_clock = Some(clock);
        f.result.connect_user = Some(t.user);
        if f.handshake_only {
            f.result.handshake_only = true;
            self.conclude(tok, Status::Reply);
        } else if self.mode == Mode::Persistent {
            self.open_pipe(tok);
        } else {
            self.start_echo(tok);
        }
    }

    /// Send the request; the echo is awaited.
    fn start_echo(&mut self, tok: Token) {
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        let fd = f.conn.sock.as_raw_fd();
        let port = f.conn.local.port();
        self.registry.set_phase(port, Phase::Echo);
        let request = format!("ping {} {}\n", f.spec.seq, net::wall_timestamp()).into_bytes();
        // Timestamps and errors of earlier pings on a persistent connection are not ours.
        let mut tx = None;
        let mut stale = None;
        if f.conn.sent > 0 {
            stale = queued_error(fd, &mut tx);
        }
        if let Some(q) = stale {
            if let Some(st) = self.recverr_status(tok, &q, Phase::Echo) {
                self.settle(tok, st);
                return;
            }
        }
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        let sent_at = Instant::now();
        match f.conn.sock.send(&request) {
            Ok(n) => {
                f.conn.sent += n as u64;
                Self::seq_window(&self.registry, &f.conn);
                if n != request.len() {
                    self.conclude(tok, Status::Error("send: request only partly sent".into()));
                    return;
                }
            }
            Err(e) => {
                let st = self.socket_error(tok, e, Phase::Echo);
                self.settle(tok, st);
                return;
            }
        }
        if let Some(f) = self.flights.get_mut(&tok) {
            f.stage = Stage::Echo {
                request,
                sent_at,
                buf: Vec::new(),
                tx: None,
            };
        }
        // The answer may be here already (loopback): look before waiting for an event.
        self.on_readable(tok);
    }

    /// Read what the socket has: the echo (judged), an error, or the end.
    fn on_readable(&mut self, tok: Token) {
        loop {
            let Some(f) = self.flights.get_mut(&tok) else {
                return;
            };
            let Stage::Echo {
                request,
                sent_at,
                buf,
                ..
            } = &mut f.stage
            else {
                return;
            };
            let fd = f.conn.sock.as_raw_fd();
            match timing::recv_with_timestamp(fd, &mut self.chunk[..]) {
                Ok((0, _)) => {
                    let saw = (!buf.is_empty()).then(|| buf.clone());
                    if !self.not_echo(tok, saw) {
                        let st =
                            Status::Error("connection closed by the server before the echo".into());
                        self.conclude(tok, st);
                    }
                    return;
                }
                Ok((n, rx)) => {
                    let user = sent_at.elapsed();
                    buf.extend_from_slice(&self.chunk[..n]);
                    if let Some(status) = judge_reply(request, buf) {
                        let target = f.spec.target;
                        if matches!(status, Status::Error(_)) {
                            let saw = buf.clone();
                            if self.not_echo(tok, Some(saw)) {
                                return;
                            }
                        } else if self.fallback {
                            self.speaks.insert(target, Speaks::Echo);
                        }
                        let Some(f) = self.flights.get_mut(&tok) else {
                            return;
                        };
                        let Stage::Echo { tx, .. } = &mut f.stage else {
                            return;
                        };
                        if tx.is_none() {
                            queued_error(fd, tx);
                        }
                        let kernel = match (*tx, rx) {
                            (Some(tx), Some(rx)) if rx > tx => Some((rx - tx, Clock::Kernel)),
                            _ => None,
                        };
                        let t = Timed { kernel, user };
                        let (d, clock) = t.best();
                        f.result.rtt = Some(d);
                        f.result.rtt_clock = Some(clock);
                        f.result.rtt_user = Some(t.user);
                        self.conclude(tok, status);
                        return;
                    }
                    if buf.len() > MAX_REPLY {
                        self.conclude(
                            tok,
                            Status::Error(format!("reply longer than {MAX_REPLY} bytes")),
                        );
                        return;
                    }
                }
                Err(e) if read_later(&e) => return,
                Err(e) => {
                    let st = self.socket_error(tok, e, Phase::Echo);
                    self.settle(tok, st);
                    return;
                }
            }
        }
    }

    /// A ping's target answered `saw` (None: closed the connection without a byte), not
    /// the echo protocol. With the fallback, and unless the target has echoed before, the
    /// ping is a reply timed by its handshake, and the target's next pings time only the
    /// handshake; the first ping that finds out carries the notice. False: an error as
    /// before (`--echo`, or an echo server answering wrongly).
    fn not_echo(&mut self, tok: Token, saw: Option<Vec<u8>>) -> bool {
        if !self.fallback {
            return false;
        }
        let Some(f) = self.flights.get_mut(&tok) else {
            return false;
        };
        let target = f.spec.target;
        let before = self.speaks.get(&target).copied();
        if before == Some(Speaks::Echo) {
            return false;
        }
        self.speaks.insert(target, Speaks::NotEcho);
        f.result.handshake_only = true;
        if before != Some(Speaks::NotEcho) {
            let saw = saw.map(|b| net::escape_bytes(&b[..b.len().min(SAW_MAX)]));
            f.result.notice = Some(Notice::NotEcho { saw });
        }
        self.conclude(tok, Status::Reply);
        true
    }

    /// The error queue of a ping waiting for its echo: its transmit timestamp, or an ICMP
    /// error about it.
    fn on_error_queue(&mut self, tok: Token) {
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        let Stage::Echo { tx, .. } = &mut f.stage else {
            return;
        };
        let fd = f.conn.sock.as_raw_fd();
        if let Some(q) = queued_error(fd, tx) {
            if let Some(st) = self.recverr_status(tok, &q, Phase::Echo) {
                self.settle(tok, st);
            }
        } else if let Ok(Some(e)) = f.conn.sock.take_error() {
            // An error with nothing queued (an ICMP error on an open connection sets only
            // the errno): the same verdict as when a read meets it.
            let v = self.socket_error(tok, e, Phase::Echo);
            self.settle(tok, v);
        }
    }

    /// An ICMP error from the kernel's error queue, as a verdict. When raw capture is on,
    /// the raw socket already holds its copy of the same error (the kernel delivers to raw
    /// sockets before TCP): the listener's attribution is awaited a moment (`AwaitRaw`), so
    /// one error is reported once, from the raw socket, and never counted again as someone
    /// else's. None: not an ICMP error.
    fn recverr_status(&mut self, tok: Token, q: &QueuedError, phase: Phase) -> Option<Verdict> {
        if !q.is_icmp() {
            return None;
        }
        let f = self.flights.get(&tok)?;
        if let Some(rep) = self.registry.report(f.conn.local.port()) {
            return Some(Verdict::Now(Status::Icmp(rep)));
        }
        let report = IcmpReport {
            icmp_type: q.icmp_type,
            code: q.code,
            v6: q.is_v6(),
            info: q.info,
            from: q.offender.unwrap_or(f.spec.target.ip()),
            after: f.start.elapsed(),
            phase,
            source: Source::RecvErr,
            extensions: None,
        };
        Some(if self.raw_capture {
            Verdict::AwaitRaw(Status::Icmp(report), phase)
        } else {
            Verdict::Now(Status::Icmp(report))
        })
    }

    /// A failed socket: attribute it to the ICMP error behind it when there is one.
    fn socket_error(&mut self, tok: Token, err: io::Error, phase: Phase) -> Verdict {
        let Some(f) = self.flights.get(&tok) else {
            return Verdict::Now(Status::Error(describe_io(&err)));
        };
        if let Some(rep) = self.registry.report(f.conn.local.port()) {
            return Verdict::Now(Status::Icmp(rep));
        }
        let mut tx = None;
        let fd = f.conn.sock.as_raw_fd();
        if let Some(v) = queued_error(fd, &mut tx).and_then(|q| self.recverr_status(tok, &q, phase))
        {
            return v;
        }
        // On an open connection Linux turns an ICMP error into the socket's errno and queues
        // nothing (tcp_v4_err calls ip_icmp_error only while connecting): the raw socket's
        // copy, which names the router, is on its way; wait for it as for a queued error.
        if self.raw_capture && phase == Phase::Echo && icmp_errno(&err) {
            return Verdict::AwaitRaw(Status::Error(describe_io(&err)), phase);
        }
        Verdict::Now(if err.kind() == io::ErrorKind::ConnectionRefused {
            Status::Refused
        } else {
            Status::Error(describe_io(&err))
        })
    }

    /// Act on a verdict: conclude now, or wait for the raw socket's copy of the error.
    fn settle(&mut self, tok: Token, v: Verdict) {
        match v {
            Verdict::Now(st) => self.conclude(tok, st),
            Verdict::AwaitRaw(fallback, phase) => {
                if let Some(f) = self.flights.get_mut(&tok) {
                    let until = Instant::now() + RAW_GRACE;
                    f.stage = Stage::AwaitRaw {
                        fallback,
                        phase,
                        until,
                    };
                    self.graces.push((until, tok));
                }
            }
        }
    }

    /// The ping's verdict: it leaves the event loop and the registry; a persistent
    /// connection that answered waits for the target's next ping.
    fn conclude(&mut self, tok: Token, status: Status) {
        let Some(mut f) = self.flights.remove(&tok) else {
            return;
        };
        if self.deadlines.back() == Some(&(f.deadline, tok)) {
            self.deadlines.pop_back();
        }
        let port = f.conn.local.port();
        self.by_port.remove(&port);
        self.registry.unregister(port);
        f.result.phase = match &f.stage {
            _ if f.result.handshake_only => Phase::Connect,
            Stage::Connecting { .. } => Phase::Connect,
            Stage::Echo { .. } => Phase::Echo,
            Stage::AwaitRaw { phase, .. } => *phase,
        };
        let opening = self.mode == Mode::Persistent && f.result.phase == Phase::Connect;
        if opening {
            // The connection the waiting pings were waiting on will not open.
            self.fail_waiting(f.spec.target, &status, f.result.local_port);
        }
        f.result.status = status;
        self.early.push(f.result);
        let fd = f.conn.sock.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
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
            Stage::AwaitRaw { .. } => {}
        }
    }

    /// Pings whose report the ICMP listener just attributed.
    fn take_attributed(&mut self) {
        for port in self.registry.take_attributed() {
            let Some(&tok) = self.by_port.get(&port) else {
                continue;
            };
            if self.pipes.contains_key(&tok) {
                self.pipe_attributed(tok, port);
                continue;
            }
            if let Some(rep) = self.registry.report(port) {
                self.conclude(tok, Status::Icmp(rep));
            }
        }
    }

    /// A ping about to time out waiting for its echo: when its target has never answered
    /// (echo mode, with the fallback), it carries the hint that the target may not be an
    /// echo server, once per target.
    fn hint_if_silent(&mut self, tok: Token) {
        if !self.fallback {
            return;
        }
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        if matches!(f.stage, Stage::Echo { .. }) && !self.speaks.contains_key(&f.spec.target) {
            self.speaks.insert(f.spec.target, Speaks::Hinted);
            f.result.notice = Some(Notice::NoEcho);
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

/// Whether the ICMP listener attributed an error on the pipe's connection a moment ago:
/// the errno the kernel sets for the same error is that one's.
fn p_attributed_lately(p: Option<&Pipe>) -> bool {
    p.and_then(|p| p.attributed_at)
        .is_some_and(|t| t.elapsed() < 2 * RAW_GRACE)
}

/// A request sent on a persistent connection and not answered yet, in send order.
struct Req {
    seq: u64,
    /// The request line (with its newline).
    request: Vec<u8>,
    /// Its bytes in the connection's stream: offsets `lo..hi` from the first data byte.
    lo: u64,
    hi: u64,
    sent_at: Instant,
    /// Its transmit timestamp (OPT_ID), once read from the error queue.
    tx: Option<Duration>,
    /// The ping waiting for its answer; None once concluded (a timeout, an ICMP error):
    /// the answer, if it comes, is late.
    ping: Option<Box<Piped>>,
}

/// A ping waiting on a persistent connection.
struct Piped {
    result: PingResult,
    start: Instant,
    deadline: Instant,
}

/// A persistent connection, open: its pings are pipelined (each request leaves when its
/// ping starts) and the server answers them in order. An echo names its ping by the
/// sequence number it carries; `LOST` names none and answers the oldest request.
struct Pipe {
    conn: Conn,
    target: SocketAddr,
    /// When the connection was registered in the ICMP registry (its reports count from it).
    registered: Instant,
    /// Transmit timestamps carry ids (OPT_ID, switched on before the first request).
    ids: bool,
    /// Bytes received and not yet judged.
    buf: Vec<u8>,
    /// When the ICMP listener's last report on the connection was attributed.
    attributed_at: Option<Instant>,
    /// A receive failed (the errno in words) with no raw copy of its ICMP error attributed
    /// yet: acted on when the copy is attributed or at this deadline, whichever is first.
    failed: Option<(String, Instant)>,
    reqs: VecDeque<Req>,
}

/// Most requests without an answer remembered on a persistent connection (answers to older
/// ones are dropped as late answers are).
const PIPE_KEPT: usize = 1024;

impl Pipe {
    fn live(&self) -> usize {
        self.reqs.iter().filter(|r| r.ping.is_some()).count()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let failed = self.failed.as_ref().map(|&(_, until)| until);
        self.reqs
            .iter()
            .filter_map(|r| r.ping.as_ref().map(|p| p.deadline))
            .chain(failed)
            .min()
    }

    /// The echo the server sends for a request: the request line uppercased.
    fn echo_of(req: &[u8]) -> Vec<u8> {
        let line = req.strip_suffix(b"\n").unwrap_or(req);
        line.strip_suffix(b"\r")
            .unwrap_or(line)
            .to_ascii_uppercase()
    }

    /// Cut the next answer off the received bytes. None: none is complete yet.
    fn next_answer(&mut self) -> Option<Answer> {
        const LOST: &[u8] = b"LOST";
        let skip = self
            .buf
            .iter()
            .take_while(|&&c| c == b'\r' || c == b'\n')
            .count();
        self.buf.drain(..skip);
        if self.buf.is_empty() {
            return None;
        }
        if let Some(nl) = self.buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = &line[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Some(self.judge_line(line));
        }
        // No newline (yet): complete when it begins with LOST alone or a whole echo (a
        // server that strips newlines); wait while it can still become one.
        if self.buf == LOST {
            self.buf.clear();
            return Some(Answer::Lost);
        }
        let whole = self.reqs.iter().find_map(|r| {
            let e = Self::echo_of(&r.request);
            self.buf.starts_with(&e).then_some((r.seq, e.len()))
        });
        if let Some((seq, n)) = whole {
            self.buf.drain(..n);
            return Some(Answer::Echo { seq, right: true });
        }
        let could = LOST.starts_with(&self.buf)
            || self
                .reqs
                .iter()
                .any(|r| Self::echo_of(&r.request).starts_with(&self.buf))
            || (self.buf.len() < MAX_REPLY && self.echo_seq(&self.buf).is_none() && {
                // An echo of a request we no longer remember: wait for its newline.
                let b = &self.buf;
                b"PING ".starts_with(&b[..b.len().min(5)])
            });
        if could {
            return None;
        }
        let line = std::mem::take(&mut self.buf);
        Some(self.judge_line(&line))
    }

    /// The sequence number an echo line carries (`PING <seq> ...`).
    fn echo_seq(&self, line: &[u8]) -> Option<u64> {
        let rest = line.strip_prefix(b"PING ")?;
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || rest.get(digits) != Some(&b' ') {
            return None;
        }
        std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
    }

    fn judge_line(&self, line: &[u8]) -> Answer {
        if line == b"LOST" {
            return Answer::Lost;
        }
        match self.echo_seq(line) {
            Some(seq) => {
                let right = self
                    .reqs
                    .iter()
                    .find(|r| r.seq == seq)
                    .is_none_or(|r| Self::echo_of(&r.request) == line);
                Answer::Echo { seq, right }
            }
            None => Answer::Other(net::escape_bytes(&line[..line.len().min(80)])),
        }
    }
}

/// One answer read on a persistent connection.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The echo of the request with this sequence number (`right`: exactly the echo).
    Echo { seq: u64, right: bool },
    /// The server's loss: the oldest request's.
    Lost,
    /// Not an answer of the protocol (escaped, cut short).
    Other(String),
}

impl ConnectProber {
    fn pipe_of(&self, target: SocketAddr) -> Option<Token> {
        self.pipes
            .iter()
            .find(|(_, p)| p.target == target)
            .map(|(t, _)| *t)
    }

    /// A persistent connection's first ping connected: the connection becomes its target's
    /// pipe, and the ping its first request.
    fn open_pipe(&mut self, tok: Token) {
        let Some(f) = self.flights.remove(&tok) else {
            return;
        };
        let fd = f.conn.sock.as_raw_fd();
        // Ids count bytes from now: nothing has been sent yet, so an id is a byte offset.
        let ids = f.conn.sent == 0 && timing::enable_timestamping_with_id(fd).is_ok();
        self.registry.set_phase(f.conn.local.port(), Phase::Echo);
        let pipe = Pipe {
            conn: f.conn,
            target: f.spec.target,
            registered: f.start,
            ids,
            buf: Vec::new(),
            attributed_at: None,
            failed: None,
            reqs: VecDeque::new(),
        };
        self.pipes.insert(tok, pipe);
        self.readied = true;
        let target = f.spec.target;
        self.pipe_send(tok, f.spec, f.start, f.result);
        // The pings that waited on this connection: their requests go out now, each with
        // its own deadline (a ping whose deadline passed concluded already, in `expire`).
        for w in self.waiting.remove(&target).unwrap_or_default() {
            self.pipe_send(tok, w.spec, w.start, w.result);
        }
    }

    /// A ping due while its target's persistent connection is being opened: it waits on
    /// that connection. False: none is being opened.
    fn wait_on_opening(&mut self, spec: &ProbeSpec) -> bool {
        if self.mode != Mode::Persistent
            || self.pipe_of(spec.target).is_some()
            || !self.flights.values().any(|f| {
                f.spec.target == spec.target && matches!(f.stage, Stage::Connecting { .. })
            })
        {
            return false;
        }
        let mut result = PingResult::of(spec, Status::Timeout);
        result.sent_at = std::time::SystemTime::now();
        self.waiting
            .entry(spec.target)
            .or_default()
            .push_back(Waiting {
                spec: *spec,
                result,
                start: Instant::now(),
            });
        true
    }

    /// The opening connection's ping `tok` timed out: the next ping waiting on it takes it
    /// over (the kernel keeps sending the same SYN), with its own deadline. False: none waits.
    fn hand_over(&mut self, tok: Token) -> bool {
        let Some(f) = self.flights.get(&tok) else {
            return false;
        };
        let target = f.spec.target;
        let Some(w) = self.waiting.get_mut(&target).and_then(VecDeque::pop_front) else {
            return false;
        };
        let f = self.flights.get_mut(&tok).expect("looked up above");
        let mut old = std::mem::replace(&mut f.result, w.result);
        let old_seq = std::mem::replace(&mut f.spec, w.spec).seq;
        f.result.local_port = old.local_port;
        f.start = w.start;
        f.deadline = w.start + self.timeout;
        let (local, deadline, seq) = (f.conn.local, f.deadline, f.spec.seq);
        // In order (the queue is kept sorted): other targets' pings may have started since.
        let at = self
            .deadlines
            .iter()
            .rposition(|&(d, _)| d <= deadline)
            .map_or(0, |i| i + 1);
        self.deadlines.insert(at, (deadline, tok));
        // ICMP errors about the SYN are now the new ping's.
        self.registry.register(seq, local, target, w.start);
        old.status = Status::Timeout;
        old.phase = Phase::Connect;
        debug_assert_eq!(old.seq, old_seq);
        self.early.push(old);
        true
    }

    /// The opening persistent connection to `target` ended without opening (`status`):
    /// the pings that waited on it have the same verdict about the same SYN.
    fn fail_waiting(&mut self, target: SocketAddr, status: &Status, local_port: Option<u16>) {
        for mut w in self.waiting.remove(&target).unwrap_or_default() {
            w.result.status = status.clone();
            w.result.phase = Phase::Connect;
            w.result.local_port = local_port;
            self.early.push(w.result);
        }
    }

    /// Waiting pings whose deadline passed: timeouts while connecting.
    fn expire_waiting(&mut self, now: Instant) {
        let timeout = self.timeout;
        for q in self.waiting.values_mut() {
            while q.front().is_some_and(|w| w.start + timeout <= now) {
                let mut w = q.pop_front().expect("front exists");
                w.result.status = Status::Timeout;
                w.result.phase = Phase::Connect;
                self.early.push(w.result);
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
    }

    /// Send a ping's request on its target's open connection.
    fn pipe_send(&mut self, tok: Token, spec: ProbeSpec, start: Instant, mut result: PingResult) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        result.local_port = Some(p.conn.local.port());
        result.phase = Phase::Echo;
        let deadline = start + self.timeout;
        let request = format!("ping {} {}\n", spec.seq, net::wall_timestamp()).into_bytes();
        let lo = p.conn.sent;
        let sent_at = Instant::now();
        let sent = p.conn.sock.send(&request);
        let piped = |result| {
            Some(Box::new(Piped {
                result,
                start,
                deadline,
            }))
        };
        match sent {
            Ok(n) => {
                p.conn.sent += n as u64;
                Self::seq_window(&self.registry, &p.conn);
                p.reqs.push_back(Req {
                    seq: spec.seq,
                    hi: lo + n as u64,
                    request,
                    lo,
                    sent_at,
                    tx: None,
                    ping: piped(result),
                });
                if n != p.reqs.back().map_or(0, |r| r.request.len()) {
                    // The stream is cut mid-request: no later answer can be trusted.
                    self.close_pipe(tok, |_| {
                        Status::Error("send: request only partly sent".into())
                    });
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Nothing of it left, the stream is intact: the earlier requests fill the
                // send buffer, unacknowledged (a path that went black). This ping fails.
                result.status = Status::Error(
                    "send: the connection's send buffer is full (earlier requests unacknowledged)"
                        .into(),
                );
                self.early.push(result);
                return;
            }
            Err(e) => {
                p.reqs.push_back(Req {
                    seq: spec.seq,
                    request,
                    lo,
                    hi: lo,
                    sent_at,
                    tx: None,
                    ping: piped(result),
                });
                self.pipe_failed(tok, e);
                return;
            }
        }
        while self
            .pipes
            .get(&tok)
            .is_some_and(|p| p.reqs.len() > PIPE_KEPT)
        {
            if let Some(p) = self.pipes.get_mut(&tok) {
                if p.reqs.front().is_some_and(|r| r.ping.is_some()) {
                    break;
                }
                p.reqs.pop_front();
            }
        }
        // The answer may be here already (loopback): look before waiting for an event.
        self.pipe_read(tok);
    }

    /// Conclude the ping of request `i` on the pipe.
    fn pipe_conclude(
        &mut self,
        tok: Token,
        i: usize,
        status: Status,
        rx: Option<Option<Duration>>,
    ) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        let Some(req) = p.reqs.get_mut(i) else {
            return;
        };
        let Some(ping) = req.ping.take() else {
            return;
        };
        let mut result = ping.result;
        if let Some(rx) = rx {
            let kernel = match (req.tx, rx) {
                (Some(tx), Some(rx)) if rx > tx => Some((rx - tx, Clock::Kernel)),
                _ => None,
            };
            let t = Timed {
                kernel,
                user: req.sent_at.elapsed(),
            };
            let (d, clock) = t.best();
            result.rtt = Some(d);
            result.rtt_clock = Some(clock);
            result.rtt_user = Some(t.user);
        }
        result.phase = Phase::Echo;
        result.status = status;
        self.early.push(result);
    }

    /// Conclude every ping waiting on the pipe with the status `why` gives it (by its
    /// start: an ICMP report's time counts from each ping's own start).
    fn pipe_conclude_all(&mut self, tok: Token, why: impl Fn(Instant) -> Status) {
        let Some(p) = self.pipes.get(&tok) else {
            return;
        };
        let live: Vec<(usize, Instant)> = p
            .reqs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.ping.as_ref().map(|g| (i, g.start)))
            .collect();
        for (i, start) in live {
            self.pipe_conclude(tok, i, why(start), None);
        }
    }

    /// The connection is over: its pings in flight end with the status `why` gives each;
    /// the target's next ping opens a new connection.
    fn close_pipe(&mut self, tok: Token, why: impl Fn(Instant) -> Status) {
        self.pipe_conclude_all(tok, why);
        let Some(p) = self.pipes.remove(&tok) else {
            return;
        };
        let port = p.conn.local.port();
        self.by_port.remove(&port);
        self.registry.unregister(port);
        let fd = p.conn.sock.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// An ICMP report, moved to count from the start of the ping it concludes.
    fn report_for(report: &IcmpReport, registered: Instant, start: Instant) -> IcmpReport {
        let mut r = report.clone();
        r.after = (registered + report.after).saturating_duration_since(start);
        r.phase = Phase::Echo;
        r
    }

    /// A receive failed (`e`). An ICMP error the kernel reported on a connection it keeps
    /// concludes the ping it is about (see `pipe_attributed`; without raw capture the error
    /// queue already gave it to the oldest ping waiting). A connection that is over (reset,
    /// or an error that ended it) concludes every ping on it, with the ICMP error behind
    /// the failure when there is one.
    ///
    /// The kernel delivers an ICMP error to raw sockets before TCP, but the listener thread
    /// may not have attributed its copy yet: then the failure waits for it (`Pipe::failed`),
    /// at most [`RAW_GRACE`], without holding up the event loop.
    fn pipe_failed(&mut self, tok: Token, e: io::Error) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        if p.failed.is_some() {
            return; // already waiting for the raw copy
        }
        let port = p.conn.local.port();
        let report = self.registry.take_report(port);
        if report.is_none() && self.raw_capture && icmp_errno(&e) {
            p.failed = Some((describe_io(&e), Instant::now() + RAW_GRACE));
            return;
        }
        self.pipe_failed_with(tok, report, describe_io(&e));
    }

    /// A pending receive failure whose raw copy was attributed (`report`) or whose wait ran
    /// out (None).
    fn pipe_failed_settle(&mut self, tok: Token) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        let Some((words, _)) = p.failed.take() else {
            return;
        };
        let port = p.conn.local.port();
        let report = self.registry.take_report(port);
        self.pipe_failed_with(tok, report, words);
    }

    /// A receive failed (the errno in `words`), with the listener's report when it has one.
    fn pipe_failed_with(
        &mut self,
        tok: Token,
        report: Option<(IcmpReport, Option<u32>)>,
        words: String,
    ) {
        let Some(p) = self.pipes.get(&tok) else {
            return;
        };
        let registered = p.registered;
        let target = p.target;
        let fd = p.conn.sock.as_raw_fd();
        if timing::tcp_established(fd) {
            match report {
                Some((r, quoted)) => self.pipe_attribute(tok, r, quoted),
                // The raw copy was attributed already (by the listener's wake-up) ...
                None if p_attributed_lately(self.pipes.get(&tok)) => {}
                // ... or there is none (no capture; Linux queues nothing for an open
                // connection): the errno, for the oldest ping waiting.
                None => {
                    let oldest = self
                        .pipes
                        .get(&tok)
                        .and_then(|p| p.reqs.iter().position(|r| r.ping.is_some()));
                    if let Some(i) = oldest {
                        self.pipe_conclude(tok, i, Status::Error(words), None);
                    }
                }
            }
            return;
        }
        let report = match report {
            Some((r, _)) => Some(r),
            None => {
                let mut tx = None;
                queued_error(fd, &mut tx)
                    .filter(QueuedError::is_icmp)
                    .map(|q| IcmpReport {
                        icmp_type: q.icmp_type,
                        code: q.code,
                        v6: q.is_v6(),
                        info: q.info,
                        from: q.offender.unwrap_or(target.ip()),
                        after: registered.elapsed(),
                        phase: Phase::Echo,
                        source: Source::RecvErr,
                        extensions: None,
                    })
            }
        };
        match report {
            Some(r) => self.close_pipe(tok, |start| {
                Status::Icmp(Self::report_for(&r, registered, start))
            }),
            None => self.close_pipe(tok, |_| Status::Error(words.clone())),
        }
    }

    /// Read what the connection has: answers (each concluding its ping), an error, the end.
    fn pipe_read(&mut self, tok: Token) {
        loop {
            let Some(p) = self.pipes.get_mut(&tok) else {
                return;
            };
            let fd = p.conn.sock.as_raw_fd();
            match timing::recv_with_timestamp(fd, &mut self.chunk[..]) {
                Ok((0, _)) => {
                    self.close_pipe(tok, |_| {
                        Status::Error("connection closed by the server before the echo".into())
                    });
                    return;
                }
                Ok((n, rx)) => {
                    p.buf.extend_from_slice(&self.chunk[..n]);
                    self.pipe_answers(tok, rx);
                    if self
                        .pipes
                        .get(&tok)
                        .is_some_and(|p| p.buf.len() > MAX_REPLY)
                    {
                        self.close_pipe(tok, |_| {
                            Status::Error(format!("reply longer than {MAX_REPLY} bytes"))
                        });
                        return;
                    }
                }
                Err(e) if read_later(&e) => return,
                Err(e) => {
                    self.pipe_failed(tok, e);
                    return;
                }
            }
        }
    }

    /// Judge the complete answers received; each concludes the ping it names.
    fn pipe_answers(&mut self, tok: Token, rx: Option<Duration>) {
        // Transmit timestamps first: the kernel queued them before the answers came.
        self.pipe_error_queue(tok);
        loop {
            let Some(p) = self.pipes.get_mut(&tok) else {
                return;
            };
            let Some(answer) = p.next_answer() else {
                return;
            };
            let (i, status) = match answer {
                Answer::Lost => (Some(0).filter(|_| !p.reqs.is_empty()), Status::Lost),
                Answer::Echo { seq, right } => {
                    let i = p.reqs.iter().position(|r| r.seq == seq);
                    let status = if right {
                        Status::Reply
                    } else {
                        Status::Error("unexpected reply: an echo that is not the request".into())
                    };
                    (i, status)
                }
                Answer::Other(saw) => {
                    // Names no ping: the oldest waiting one gets it.
                    let i = p.reqs.iter().position(|r| r.ping.is_some());
                    if let Some(i) = i {
                        self.pipe_conclude(
                            tok,
                            i,
                            Status::Error(format!("unexpected reply: {saw}")),
                            None,
                        );
                    }
                    continue;
                }
            };
            let Some(i) = i else {
                // An answer to a request no longer remembered: late.
                continue;
            };
            self.pipe_conclude(tok, i, status, Some(rx));
            // The server answers in order: requests before this one that were concluded will
            // never be answered (swallowed); those still waiting time out.
            let Some(p) = self.pipes.get_mut(&tok) else {
                return;
            };
            let mut at = 0;
            p.reqs.retain(|r| {
                let keep = at > i || (at < i && r.ping.is_some());
                at += 1;
                keep
            });
        }
    }

    /// The pipe's error queue: transmit timestamps (matched to requests by id) and ICMP
    /// errors (without raw capture: about the oldest request waiting; with it, the raw
    /// copy of the same error is attributed by its quoted sequence number instead).
    fn pipe_error_queue(&mut self, tok: Token) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        let fd = p.conn.sock.as_raw_fd();
        let mut icmp = None;
        while let Ok(Some((entry, id))) = read_error_queue_id(fd) {
            match entry {
                ErrEntry::TxTimestamp(t) => {
                    if !p.ids {
                        continue;
                    }
                    let last = u64::from(id);
                    // Ids wrap at 2^32 bytes: compare the low bits.
                    if let Some(r) = p
                        .reqs
                        .iter_mut()
                        .find(|r| r.hi > r.lo && ((r.hi - 1) & 0xffff_ffff) == last)
                    {
                        r.tx.get_or_insert(t);
                    }
                }
                ErrEntry::Error(q) if q.is_icmp() && icmp.is_none() => icmp = Some(q),
                ErrEntry::Error(_) => {}
            }
        }
        let Some(q) = icmp else {
            return;
        };
        if self.raw_capture {
            return;
        }
        let Some(i) = p.reqs.iter().position(|r| r.ping.is_some()) else {
            self.registry.note_late();
            return;
        };
        let start = p.reqs[i].ping.as_ref().map_or(p.registered, |g| g.start);
        let report = IcmpReport {
            icmp_type: q.icmp_type,
            code: q.code,
            v6: q.is_v6(),
            info: q.info,
            from: q.offender.unwrap_or(p.target.ip()),
            after: start.elapsed(),
            phase: Phase::Echo,
            source: Source::RecvErr,
            extensions: None,
        };
        self.pipe_conclude(tok, i, Status::Icmp(report), None);
    }

    /// The ICMP listener attributed an error to the pipe's connection: it concludes the ping
    /// whose bytes it quotes (the oldest waiting when the quote cannot tell); an error about
    /// a ping already concluded is late.
    fn pipe_attributed(&mut self, tok: Token, port: u16) {
        if self.pipes.get(&tok).is_some_and(|p| p.failed.is_some()) {
            // The copy a pending receive failure was waiting for.
            self.pipe_failed_settle(tok);
            return;
        }
        if let Some((report, quoted)) = self.registry.take_report(port) {
            self.pipe_attribute(tok, report, quoted);
        }
    }

    /// Conclude the ping whose request bytes an ICMP error quotes (`quoted`: offset from the
    /// ISN; None: the oldest ping waiting); late when that ping has ended.
    fn pipe_attribute(&mut self, tok: Token, report: IcmpReport, quoted: Option<u32>) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        p.attributed_at = Some(Instant::now());
        let p = &*p;
        let i = match quoted {
            // Offset 0 is the SYN; data byte b is at offset b + 1. A quote of the next byte
            // to send (Linux accepts it too) is the last request's.
            Some(0) => None,
            Some(off) => {
                // Sequence numbers wrap at 2^32 bytes: compare offsets modulo 2^32.
                let b = off - 1;
                let from = |at: u64| b.wrapping_sub(at as u32);
                p.reqs
                    .iter()
                    .position(|r| u64::from(from(r.lo)) < r.hi - r.lo)
                    .or_else(|| {
                        p.reqs
                            .back()
                            .filter(|r| r.hi == p.conn.sent && from(r.hi) == 0)
                            .map(|_| p.reqs.len() - 1)
                    })
            }
            None => p.reqs.iter().position(|r| r.ping.is_some()),
        };
        let ping = i.and_then(|i| p.reqs[i].ping.as_ref().map(|g| (i, g.start)));
        let Some((i, start)) = ping else {
            self.registry.note_late();
            return;
        };
        let r = Self::report_for(&report, p.registered, start);
        self.pipe_conclude(tok, i, Status::Icmp(r), None);
    }

    /// Pings on the pipe whose time ran out waiting for their echo: timeouts; their
    /// requests stay remembered, so a late echo is not taken for a later ping's.
    fn pipe_expire(&mut self, tok: Token, now: Instant) {
        // A receive failure whose raw copy never came: the errno, before any timeout.
        if self
            .pipes
            .get(&tok)
            .is_some_and(|p| p.failed.as_ref().is_some_and(|&(_, until)| until <= now))
        {
            self.pipe_failed_settle(tok);
        }
        let Some(p) = self.pipes.get(&tok) else {
            return;
        };
        let due: Vec<usize> = p
            .reqs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.ping.as_ref().is_some_and(|g| g.deadline <= now))
            .map(|(i, _)| i)
            .collect();
        for i in due {
            self.pipe_conclude(tok, i, Status::Timeout, None);
        }
    }
}

/// What to do about a failure.
enum Verdict {
    Now(Status),
    /// An ICMP error the kernel reported: wait a moment for the raw socket's copy, then
    /// conclude with this status (in this phase).
    AwaitRaw(Status, Phase),
}

/// Whether an open connection's errno is one an ICMP error sets (Linux's icmp_err_convert:
/// unreachable codes, time exceeded, parameter problem, fragmentation needed).
fn icmp_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ECONNREFUSED
                | libc::ENOPROTOOPT
                | libc::EMSGSIZE
                | libc::EOPNOTSUPP
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EPROTO
        )
    )
}

/// The first ICMP (or local) error on the socket's error queue; transmit timestamps met on
/// the way are kept in `tx`.
fn queued_error(fd: RawFd, tx: &mut Option<Duration>) -> Option<QueuedError> {
    while let Ok(Some(entry)) = read_error_queue(fd) {
        match entry {
            ErrEntry::TxTimestamp(t) => *tx = Some(t),
            ErrEntry::Error(e) => return Some(e),
        }
    }
    None
}

/// Nothing to read now (or a signal came): the socket is read again when it is readable.
fn read_later(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// A non-blocking TCP socket for one probe to `target`, as every connect() probe opens it:
/// closed with RST (SO_LINGER 0: no TIME_WAIT left behind, so a million probes never run out
/// of ports), ICMP errors about it on its error queue, kernel timestamps when it can have
/// them (else user space's times remain), `ttl` when given, and bound to `source` (None: any
/// address of the family) so that its source port is known before its SYN leaves.
pub(crate) fn probe_socket(
    target: SocketAddr,
    ttl: Option<u8>,
    source: Option<IpAddr>,
) -> io::Result<Socket> {
    let v6 = target.is_ipv6();
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sock.set_linger(Some(Duration::ZERO))?;
    net::set_recverr(sock.as_raw_fd(), v6)?;
    let _ = timing::enable_timestamping(sock.as_raw_fd());
    if let Some(ttl) = ttl {
        if v6 {
            sock.set_unicast_hops_v6(u32::from(ttl))?;
        } else {
            sock.set_ttl(u32::from(ttl))?;
        }
    }
    let ip = source.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    sock.bind(&SocketAddr::new(ip, 0).into())?;
    Ok(sock)
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
}

/// A time measured twice: by the wire or kernel (when they could) and by user space.
#[derive(Clone, Copy, Debug)]
struct Timed {
    kernel: Option<(Duration, Clock)>,
    user: Duration,
}

impl Timed {
    /// The best measurement and its clock.
    fn best(&self) -> (Duration, Clock) {
        self.kernel.unwrap_or((self.user, Clock::User))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"ping 3 1700000000.123456\n";

    #[test]
    fn echo_with_and_without_newline() {
        assert_eq!(
            judge_reply(REQ, b"PING 3 1700000000.123456\n"),
            Some(Status::Reply)
        );
        // A server that answers the bytes it got uppercased echoes our newline too; one that
        // strips it is complete once it is as long as the request.
        assert_eq!(
            judge_reply(REQ, b"PING 3 1700000000.123456\r\n"),
            Some(Status::Reply)
        );
        assert_eq!(judge_reply(REQ, b"PING 3 17000"), None);
    }

    #[test]
    fn an_echo_without_its_newline_is_complete_when_whole() {
        assert_eq!(
            judge_reply(REQ, b"PING 3 1700000000.123456"),
            Some(Status::Reply)
        );
        // The newline that follows on its own is skipped by the next ping's judging.
        assert_eq!(
            judge_reply(b"ping 4 1\n", b"\nPING 4 1\n"),
            Some(Status::Reply)
        );
        assert_eq!(judge_reply(b"ping 4 1\n", b"\r\nLOST"), Some(Status::Lost));
    }

    #[test]
    fn only_lost_as_the_whole_answer_is_loss() {
        for bad in [
            &b"LOSTX"[..],
            b"LOSTX\n",
            b"LOST, or maybe not\n",
            b"LOST 3\n",
        ] {
            let s = judge_reply(REQ, bad).unwrap();
            assert!(
                matches!(s, Status::Error(ref m) if m.contains("unexpected reply")),
                "{:?}: {s:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(judge_reply(REQ, b"LOST\r\n"), Some(Status::Lost));
        // Garbage that cannot become an answer is judged at once, not at the timeout.
        assert!(matches!(judge_reply(REQ, b"HELLO"), Some(Status::Error(_))));
    }

    #[test]
    fn lost_in_pieces() {
        assert_eq!(judge_reply(REQ, b"LO"), None);
        assert_eq!(judge_reply(REQ, b"LOST"), Some(Status::Lost));
        assert_eq!(judge_reply(REQ, b"LOST\n"), Some(Status::Lost));
    }

    /// A pipe (not connected: only its answer parsing is used) with requests 1..=n sent.
    fn pipe_with(n: u64) -> Pipe {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut reqs = VecDeque::new();
        for seq in 1..=n {
            let request = format!("ping {seq} 1700000000.00000{seq}\n").into_bytes();
            reqs.push_back(Req {
                seq,
                lo: 0,
                hi: 0,
                request,
                sent_at: Instant::now(),
                tx: None,
                ping: None,
            });
        }
        Pipe {
            conn: Conn {
                sock,
                local,
                isn: None,
                sent: 0,
            },
            target: local,
            registered: Instant::now(),
            ids: false,
            buf: Vec::new(),
            attributed_at: None,
            failed: None,
            reqs,
        }
    }

    fn answers(p: &mut Pipe, got: &[u8]) -> Vec<Answer> {
        p.buf.extend_from_slice(got);
        std::iter::from_fn(|| p.next_answer()).collect()
    }

    #[test]
    fn pipelined_echoes_name_their_ping_by_sequence_number() {
        let mut p = pipe_with(3);
        let echo = |seq: u64| Answer::Echo { seq, right: true };
        // Out of order, split anywhere, with and without newlines.
        assert_eq!(
            answers(&mut p, b"PING 2 1700000000.000002\nPING 1 1700"),
            vec![echo(2)]
        );
        assert_eq!(answers(&mut p, b"000000.000001\r\n"), vec![echo(1)]);
        // A server that strips newlines: echoes back to back.
        assert_eq!(
            answers(&mut p, b"PING 3 1700000000.000003PING 1 1700000000.000001"),
            vec![echo(3), echo(1)]
        );
        assert_eq!(answers(&mut p, b"LOST\nLO"), vec![Answer::Lost]);
        assert_eq!(answers(&mut p, b"ST"), vec![Answer::Lost]);
        // The echo of an unknown ping names it (late); a wrong echo of a known one is wrong.
        assert_eq!(
            answers(&mut p, b"PING 9 1\nPING 2 1700000000.999999\n"),
            vec![
                Answer::Echo {
                    seq: 9,
                    right: true
                },
                Answer::Echo {
                    seq: 2,
                    right: false
                }
            ]
        );
        assert!(matches!(
            answers(&mut p, b"LOSTX\n").as_slice(),
            [Answer::Other(s)] if s == "LOSTX"
        ));
        assert!(matches!(
            answers(&mut p, b"SSH-2.0").as_slice(),
            [Answer::Other(_)]
        ));
    }

    #[test]
    fn wrong_answers() {
        let s = judge_reply(REQ, b"PING 4 1700000000.123456\n").unwrap();
        assert!(
            matches!(s, Status::Error(ref m) if m.contains("unexpected reply")),
            "{s:?}"
        );
        let s = judge_reply(REQ, b"ERROR request is not UTF-8 text\n").unwrap();
        assert!(matches!(s, Status::Error(_)));
        let s = judge_reply(REQ, b"\xff\xfe\n").unwrap();
        assert!(matches!(s, Status::Error(_)));
    }
}
