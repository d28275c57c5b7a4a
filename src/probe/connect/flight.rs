//! One ping on its own connection, as a state machine ([`Stage`]): connecting (its SYN
//! seen on the wire tap), then the request and its echo, then the verdict; the deadline
//! and the wire, kernel and user-space times of each step.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::echo::{judge_reply, Speaks, CLOSED_BEFORE_ECHO};
use super::icmp::Verdict;
use super::size;
use super::socket::{queued_error, read_later, Conn};
use super::{ConnectProber, MAX_REPLY, RAW_GRACE};
use crate::icmp::{Phase, Registry};
use crate::net::{self, describe_io};
use crate::probe::tap::Handshake;
use crate::probe::{Clock, Mode, PingResult, ProbeSpec, Status};
use crate::timing;

/// Where a ping is.
pub(super) enum Stage {
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
    /// A large request got no echo within the timeout: a small control ping to the same
    /// target tells a path MTU black hole from a dead path (`control`); its answer is read
    /// no more, and its verdict (a timeout) waits for the control's.
    AwaitControl,
}

/// One ping in flight.
pub(super) struct Flight {
    pub(super) spec: ProbeSpec,
    pub(super) result: PingResult,
    pub(super) conn: Conn,
    pub(super) start: Instant,
    pub(super) deadline: Instant,
    pub(super) stage: Stage,
    /// It times only the handshake: `--connect-only`, or a target known not to echo.
    pub(super) handshake_only: bool,
    /// Its request's size (`-s`; None: the protocol's line as it is).
    pub(super) size: Option<usize>,
    /// A control ping's: the ping whose verdict waits for it (see `control`).
    pub(super) control_of: Option<ControlOf>,
}

/// The ping a control ping was sent for (see `control`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ControlOf {
    /// A ping on its own connection (its flight's token).
    Ping(Token),
    /// A ping on a persistent connection: the pipe's token and the ping's sequence number.
    Piped(Token, u64),
}

/// A time measured twice: by the wire or kernel (when they could) and by user space.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timed {
    pub(super) kernel: Option<(Duration, Clock)>,
    pub(super) user: Duration,
}

impl Timed {
    /// The best measurement and its clock.
    #[inline]
    pub(super) fn best(&self) -> (Duration, Clock) {
        self.kernel.unwrap_or((self.user, Clock::User))
    }
}

impl ConnectProber {
    /// Tell the registry which sequence numbers the connection has used, once its ISN is
    /// known: errors quoting others are not attributed. Call after each `register`.
    pub(super) fn seq_window(registry: &Registry, conn: &Conn) {
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
    pub(super) fn begin(&mut self, spec: ProbeSpec) {
        self.begin_flight(spec, self.shape.size, None);
    }

    /// Begin a ping of request size `size`; `control_of`: a control ping's (on its own
    /// connection, whatever the mode), for that ping.
    pub(super) fn begin_flight(
        &mut self,
        spec: ProbeSpec,
        size: Option<usize>,
        control_of: Option<ControlOf>,
    ) -> Option<Token> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut result = PingResult::of(&spec, Status::Timeout);
        result.sent_at = std::time::SystemTime::now();
        if let Some(tok) = self.pipe_of(spec.target).filter(|_| control_of.is_none()) {
            self.pipe_send(tok, spec, start, result);
            return None;
        }
        let tok = Token(self.next_token);
        self.next_token += 1;
        let mut conn = match self.open_socket(&spec) {
            Ok(c) => c,
            Err(e) => {
                result.status = Status::Error(format!("open socket: {}", describe_io(&e)));
                if control_of.is_none() {
                    self.early.push(result);
                }
                return None;
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
            handshake_only: handshake_only && control_of.is_none(),
            size,
            control_of,
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
        Some(tok)
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
    pub(super) fn connected(&mut self, tok: Token, took: Duration) {
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
        } else if self.mode == Mode::Persistent && f.control_of.is_none() {
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
        let request = size::request(f.spec.seq, &net::wall_timestamp(), f.size);
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
    pub(super) fn on_readable(&mut self, tok: Token) {
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
                        let st = Status::Error(CLOSED_BEFORE_ECHO.into());
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
                        if status == Status::Reply && self.raw_capture && self.shrunk(tok) {
                            // A "packet too big" about this request came before its echo
                            // (the kernel resent it smaller): the error names the router.
                            self.settle(tok, Verdict::AwaitRaw(status, Phase::Echo));
                            return;
                        }
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

    /// Act on a verdict: conclude now, or wait for the raw socket's copy of the error.
    pub(super) fn settle(&mut self, tok: Token, v: Verdict) {
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
    pub(super) fn conclude(&mut self, tok: Token, status: Status) {
        let Some(mut f) = self.flights.remove(&tok) else {
            return;
        };
        match f.control_of {
            Some(ControlOf::Ping(parent)) => self.control_done(parent, &status),
            Some(ControlOf::Piped(pipe, seq)) => self.pipe_control_done(pipe, seq, &status),
            None => {}
        }
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
            Stage::AwaitControl => Phase::Echo,
        };
        let opening = self.mode == Mode::Persistent && f.result.phase == Phase::Connect;
        if opening {
            // The connection the waiting pings were waiting on will not open.
            self.fail_waiting(f.spec.target, &status, f.result.local_port);
        }
        // Past its timeout, waiting on its control ping: a timeout, whatever ends the wait.
        f.result.status = if matches!(f.stage, Stage::AwaitControl) {
            Status::Timeout
        } else {
            status
        };
        if f.control_of.is_none() {
            self.early.push(f.result);
        }
        let fd = f.conn.sock.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }
}
