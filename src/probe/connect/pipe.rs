//! The persistent connection (`--persistent`): one connection per target carries its
//! pings pipelined ([`Pipe`]); pings that come due while it opens wait on it; each echo
//! names its ping by the sequence number it carries.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::Token;

use super::echo::{CLOSED_BEFORE_ECHO, UNEXPECTED_REPLY};
use super::flight::{Stage, Timed};
use super::size;
use super::socket::{read_later, Conn};
use super::{ConnectProber, MAX_REPLY, RAW_GRACE};
use crate::icmp::Phase;
use crate::net;
use crate::probe::{Clock, Mode, PingResult, ProbeSpec, Status};
use crate::timing;

/// Whether the ICMP listener attributed an error on the pipe's connection a moment ago:
/// the errno the kernel sets for the same error is that one's.
pub(super) fn p_attributed_lately(p: Option<&Pipe>) -> bool {
    p.and_then(|p| p.attributed_at)
        .is_some_and(|t| t.elapsed() < 2 * RAW_GRACE)
}

/// A request sent on a persistent connection and not answered yet, in send order.
pub(super) struct Req {
    pub(super) seq: u64,
    /// The request line (with its newline).
    pub(super) request: Vec<u8>,
    /// Its bytes in the connection's stream: offsets `lo..hi` from the first data byte.
    pub(super) lo: u64,
    pub(super) hi: u64,
    pub(super) sent_at: Instant,
    /// Its transmit timestamp (OPT_ID), once read from the error queue.
    pub(super) tx: Option<Duration>,
    /// The ping waiting for its answer; None once concluded (a timeout, an ICMP error):
    /// the answer, if it comes, is late.
    pub(super) ping: Option<Box<Piped>>,
}

/// A ping waiting on its target's opening persistent connection.
pub(super) struct Waiting {
    pub(super) spec: ProbeSpec,
    pub(super) result: PingResult,
    pub(super) start: Instant,
}

/// A ping waiting on a persistent connection.
pub(super) struct Piped {
    pub(super) result: PingResult,
    pub(super) start: Instant,
    pub(super) deadline: Instant,
    /// Its request got no echo within the timeout and a control ping decides its notice
    /// (see `control`): an echo arriving now is late, the ping a timeout.
    pub(super) awaiting_control: bool,
}

/// A persistent connection, open: its pings are pipelined (each request leaves when its
/// ping starts) and the server answers them in order. An echo names its ping by the
/// sequence number it carries; `LOST` names none and answers the oldest request.
pub(super) struct Pipe {
    pub(super) conn: Conn,
    pub(super) target: SocketAddr,
    /// When the connection was registered in the ICMP registry (its reports count from it).
    pub(super) registered: Instant,
    /// Transmit timestamps carry ids (OPT_ID, switched on before the first request).
    pub(super) ids: bool,
    /// Bytes received and not yet judged.
    pub(super) buf: Vec<u8>,
    /// When the ICMP listener's last report on the connection was attributed.
    pub(super) attributed_at: Option<Instant>,
    /// A receive failed (the errno in words) with no raw copy of its ICMP error attributed
    /// yet: acted on when the copy is attributed or at this deadline, whichever is first.
    pub(super) failed: Option<(String, Instant)>,
    pub(super) reqs: VecDeque<Req>,
}

/// Most requests without an answer remembered on a persistent connection (answers to older
/// ones are dropped as late answers are).
const PIPE_KEPT: usize = 1024;

impl Pipe {
    #[inline]
    pub(super) fn live(&self) -> usize {
        self.reqs.iter().filter(|r| r.ping.is_some()).count()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
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
    pub(super) fn next_answer(&mut self) -> Option<Answer> {
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
pub(super) enum Answer {
    /// The echo of the request with this sequence number (`right`: exactly the echo).
    Echo { seq: u64, right: bool },
    /// The server's loss: the oldest request's.
    Lost,
    /// Not an answer of the protocol (escaped, cut short).
    Other(String),
}

impl ConnectProber {
    pub(super) fn pipe_of(&self, target: SocketAddr) -> Option<Token> {
        self.pipes
            .iter()
            .find(|(_, p)| p.target == target)
            .map(|(t, _)| *t)
    }

    /// A persistent connection's first ping connected: the connection becomes its target's
    /// pipe, and the ping its first request.
    pub(super) fn open_pipe(&mut self, tok: Token) {
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
    pub(super) fn wait_on_opening(&mut self, spec: &ProbeSpec) -> bool {
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
    pub(super) fn hand_over(&mut self, tok: Token) -> bool {
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
    pub(super) fn fail_waiting(
        &mut self,
        target: SocketAddr,
        status: &Status,
        local_port: Option<u16>,
    ) {
        for mut w in self.waiting.remove(&target).unwrap_or_default() {
            w.result.status = status.clone();
            w.result.phase = Phase::Connect;
            w.result.local_port = local_port;
            self.early.push(w.result);
        }
    }

    /// Waiting pings whose deadline passed: timeouts while connecting.
    pub(super) fn expire_waiting(&mut self, now: Instant) {
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
    pub(super) fn pipe_send(
        &mut self,
        tok: Token,
        spec: ProbeSpec,
        start: Instant,
        mut result: PingResult,
    ) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        result.local_port = Some(p.conn.local.port());
        result.phase = Phase::Echo;
        let deadline = start + self.timeout;
        let request = size::request(spec.seq, &net::wall_timestamp(), self.shape.size);
        let lo = p.conn.sent;
        let sent_at = Instant::now();
        let sent = p.conn.sock.send(&request);
        let piped = |result| {
            Some(Box::new(Piped {
                result,
                start,
                deadline,
                awaiting_control: false,
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
    pub(super) fn pipe_conclude(
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
        // Past its timeout, waiting on its control ping: a timeout, whatever ends the wait
        // (an echo now is late; Ctrl-C or the connection's end came after its deadline).
        let (status, rx) = if ping.awaiting_control {
            (Status::Timeout, None)
        } else {
            (status, rx)
        };
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
    pub(super) fn pipe_conclude_all(&mut self, tok: Token, why: impl Fn(Instant) -> Status) {
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
    pub(super) fn close_pipe(&mut self, tok: Token, why: impl Fn(Instant) -> Status) {
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

    /// Read what the connection has: answers (each concluding its ping), an error, the end.
    pub(super) fn pipe_read(&mut self, tok: Token) {
        loop {
            let Some(p) = self.pipes.get_mut(&tok) else {
                return;
            };
            let fd = p.conn.sock.as_raw_fd();
            match timing::recv_with_timestamp(fd, &mut self.chunk[..]) {
                Ok((0, _)) => {
                    self.close_pipe(tok, |_| Status::Error(CLOSED_BEFORE_ECHO.into()));
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
                        Status::Error(format!(
                            "{UNEXPECTED_REPLY}: an echo that is not the request"
                        ))
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
                            Status::Error(format!("{UNEXPECTED_REPLY}: {saw}")),
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

    /// Pings on the pipe whose time ran out waiting for their echo: timeouts; their
    /// requests stay remembered, so a late echo is not taken for a later ping's.
    pub(super) fn pipe_expire(&mut self, tok: Token, now: Instant) {
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
            if self.start_pipe_control(tok, i) {
                continue;
            }
            self.pipe_conclude(tok, i, Status::Timeout, None);
        }
    }
}
