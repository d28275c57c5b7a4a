//! The connect probe: one TCP connection per ping (or one for all), request, echo, verdict.
//!
//! Every ping binds its own local port before its SYN leaves and registers it, so an ICMP
//! error quoting that port is attributed to it by the listener thread, which wakes the ping
//! at once: an error concludes a ping when it arrives, not when the timeout expires. With
//! the packet socket, the registration also carries the connection's sequence window (our
//! ISN, as the SYN left, and the bytes sent since), which a quoted segment must fall in.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::wire::{Handshake, WireTap};
use super::{Clock, IcmpTally, PingResult, ProbeSpec, Prober, Status};
use crate::cli::{ClientConfig, Mode};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::icmp::recverr::{read_error_queue, ErrEntry, QueuedError};
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

enum Waited {
    Ready(net::Ready),
    Woken,
    TimedOut,
}

/// Pings one target, one ping at a time.
pub struct Pinger {
    cfg: ClientConfig,
    src_ip: Option<IpAddr>,
    registry: Arc<Registry>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    conn: Option<Conn>,
    buf: Vec<u8>,
    /// Whether raw ICMP sockets are being read (see `recverr_report`).
    raw_capture: bool,
    /// Keeps the kernel's timestamping switched on between pings (see `timing`).
    _timestamping: Option<std::net::UdpSocket>,
    /// Wire timestamps of the handshake, when privileged (see `wire`).
    wire: Option<WireTap>,
    /// The verdict of the probe `send` ran, until `poll` hands it over.
    finished: Option<PingResult>,
}

/// How long a back-to-back ping polls without sleeping before it waits (see `wait`).
const SPIN: Duration = Duration::from_micros(250);

/// How long a ping waits for the raw socket's copy of an error the kernel already reported.
const RAW_GRACE: Duration = Duration::from_millis(50);

impl Pinger {
    /// `src_ip` is the address our pings leave from (None: let the kernel choose per ping).
    pub fn new(
        cfg: ClientConfig,
        src_ip: Option<IpAddr>,
        registry: Arc<Registry>,
        waker: Arc<Waker>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Pinger {
            cfg,
            src_ip,
            registry,
            waker,
            stop,
            conn: None,
            buf: Vec::with_capacity(2048),
            raw_capture: false,
            _timestamping: timing::hold_timestamping_on(),
            wire: None,
            finished: None,
        }
    }

    /// Time handshakes on the wire with this packet socket.
    pub fn with_wire_tap(mut self, tap: Option<WireTap>) -> Self {
        self.wire = tap;
        self
    }

    /// Tell the pinger that raw ICMP capture is running.
    pub fn with_raw_capture(mut self, on: bool) -> Self {
        self.raw_capture = on;
        self
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Wait for `fd` (writable or readable) or a wake-up, until `deadline`.
    fn wait(&self, fd: RawFd, write: bool, deadline: Instant) -> io::Result<Waited> {
        // Back-to-back pings (-i 0): look without sleeping for a short while first. A CPU
        // that went idle takes tens of microseconds to wake on a virtual machine, longer
        // than a loopback round trip.
        let spin_until = (self.cfg.interval.is_zero()).then(|| Instant::now() + SPIN);
        loop {
            let left = net::remaining(deadline);
            if left.is_zero() {
                return Ok(Waited::TimedOut);
            }
            let spinning = spin_until.is_some_and(|t| Instant::now() < t);
            let timeout = if spinning { Duration::ZERO } else { left };
            let r = net::poll(&[(fd, write), (self.waker.fd(), false)], Some(timeout))?;
            if r[1].read {
                self.waker.drain();
                return Ok(Waited::Woken);
            }
            if r[0].read || r[0].write || r[0].error {
                return Ok(Waited::Ready(r[0]));
            }
        }
    }

    /// Sleep until `until`, or until interrupted. Returns false when interrupted.
    pub fn pause_until(&self, until: Instant) -> bool {
        while !self.stopped() {
            let left = net::remaining(until);
            if left.is_zero() {
                return true;
            }
            match net::poll(&[(self.waker.fd(), false)], Some(left)) {
                Ok(r) if r[0].read => self.waker.drain(),
                Ok(_) => {}
                Err(_) => std::thread::sleep(left),
            }
        }
        false
    }

    fn open_socket(&self) -> io::Result<Conn> {
        let target = self.cfg.target;
        let v6 = target.is_ipv6();
        let sock = Socket::new(
            Domain::for_address(target),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        sock.set_nodelay(true)?;
        // Close with RST: no TIME_WAIT left behind, so a million pings never run out of ports.
        sock.set_linger(Some(Duration::ZERO))?;
        net::set_recverr(sock.as_raw_fd(), v6)?;
        // Kernel timestamps make the echo time exact; without them user-space times remain.
        let _ = timing::enable_timestamping(sock.as_raw_fd());
        if let Some(ttl) = self.cfg.ttl {
            if v6 {
                sock.set_unicast_hops_v6(u32::from(ttl))?;
            } else {
                sock.set_ttl(u32::from(ttl))?;
            }
        }
        let ip = self.src_ip.unwrap_or(if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        // Bind first: the ping's source port is known before its SYN leaves.
        sock.bind(&SocketAddr::new(ip, 0).into())?;
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
    fn seq_window(&self, conn: &Conn) {
        if let Some(isn) = conn.isn {
            self.registry
                .set_seq_window(conn.local.port(), isn, conn.seq_used());
        }
    }

    /// Read the packet socket into `hs`; the first time it shows our SYN, the connection's
    /// ISN is kept and its sequence window registered. While it has not, the registry is
    /// told the window is unknown (errors waiting for it are judged by the 4-tuple).
    fn watch_handshake(&self, conn: &mut Conn, hs: &mut Option<Handshake>) {
        let (Some(tap), Some(hs)) = (self.wire.as_ref(), hs.as_mut()) else {
            return;
        };
        tap.update(hs);
        if conn.isn.is_none() {
            match hs.isn() {
                Some(isn) => {
                    conn.isn = Some(isn);
                    self.seq_window(conn);
                }
                None => self.registry.seq_window_unknown(conn.local.port()),
            }
        }
    }

    /// The handshake's times, once it completed: the wire's when the packet socket saw
    /// both SYN and SYN-ACK, else the kernel's.
    fn handshake_times(
        &self,
        conn: &mut Conn,
        hs: &mut Option<Handshake>,
        user: Duration,
    ) -> Timed {
        self.watch_handshake(conn, hs);
        let fd = conn.sock.as_raw_fd();
        Timed {
            kernel: hs
                .as_ref()
                .and_then(Handshake::time)
                .map(|d| (d, Clock::Wire))
                .or_else(|| timing::handshake_rtt(fd).map(|d| (d, Clock::Kernel))),
            user,
        }
    }

    /// The first ICMP (or local) error on the socket's error queue; transmit timestamps
    /// met on the way are kept in `tx`.
    fn queued_error(&self, fd: RawFd, tx: &mut Option<Duration>) -> Option<QueuedError> {
        while let Ok(Some(entry)) = read_error_queue(fd) {
            match entry {
                ErrEntry::TxTimestamp(t) => *tx = Some(t),
                ErrEntry::Error(e) => return Some(e),
            }
        }
        None
    }

    /// An ICMP error from the kernel's error queue, as a verdict. When raw capture is on,
    /// the raw socket already holds its copy of the same error (the kernel delivers to raw
    /// sockets before TCP): give the listener a moment to attribute it, so one error is
    /// reported once, from the raw socket, and never counted again as someone else's.
    fn recverr_report(
        &self,
        port: u16,
        q: &QueuedError,
        phase: Phase,
        start: Instant,
    ) -> Option<Status> {
        if !q.is_icmp() {
            return None;
        }
        if self.raw_capture {
            let give_up = Instant::now() + RAW_GRACE;
            loop {
                if let Some(rep) = self.registry.report(port) {
                    return Some(Status::Icmp(rep));
                }
                let left = net::remaining(give_up);
                if left.is_zero() {
                    break;
                }
                if let Ok(r) = net::poll(&[(self.waker.fd(), false)], Some(left)) {
                    if r[0].read {
                        self.waker.drain();
                    }
                }
            }
        }
        Some(Status::Icmp(IcmpReport {
            icmp_type: q.icmp_type,
            code: q.code,
            v6: q.is_v6(),
            info: q.info,
            from: q.offender.unwrap_or(self.cfg.target.ip()),
            after: start.elapsed(),
            phase,
            source: Source::RecvErr,
            extensions: None,
        }))
    }

    /// A failed socket: attribute it to the ICMP error behind it when there is one.
    fn socket_error(&self, conn: &Conn, err: io::Error, phase: Phase, start: Instant) -> Status {
        if let Some(rep) = self.registry.report(conn.local.port()) {
            return Status::Icmp(rep);
        }
        let mut tx = None;
        if let Some(st) = self
            .queued_error(conn.sock.as_raw_fd(), &mut tx)
            .and_then(|q| self.recverr_report(conn.local.port(), &q, phase, start))
        {
            return st;
        }
        if err.kind() == io::ErrorKind::ConnectionRefused {
            Status::Refused
        } else {
            Status::Error(describe_io(&err))
        }
    }

    /// Send ping `seq` and wait for its verdict. None: a stop was requested before it
    /// started; a ping interrupted once under way is `Status::Interrupted`.
    pub fn ping(&mut self, seq: u64) -> Option<PingResult> {
        if self.stopped() {
            return None;
        }
        let start = Instant::now();
        let deadline = start + self.cfg.timeout;
        let target = self.cfg.target;
        let mut result = PingResult::new(seq, Status::Timeout);

        let mut conn = match self.conn.take() {
            Some(c) => {
                self.registry.register(seq, c.local, target, start);
                self.seq_window(&c);
                c
            }
            None => {
                let mut conn = match self.open_socket() {
                    Ok(c) => c,
                    Err(e) => {
                        result.status = Status::Error(format!("open socket: {}", describe_io(&e)));
                        return Some(result);
                    }
                };
                self.registry.register(seq, conn.local, target, start);
                match self.connect(&mut conn, deadline, start) {
                    Ok(Some(t)) => {
                        let (d, clock) = t.best();
                        result.connect = Some(d);
                        result.connect_clock = Some(clock);
                        result.connect_user = Some(t.user);
                    }
                    Ok(None) => {
                        self.registry.unregister(conn.local.port());
                        result.local_port = Some(conn.local.port());
                        result.status = Status::Interrupted;
                        return Some(result);
                    }
                    Err(status) => {
                        result.local_port = Some(conn.local.port());
                        result.status = status;
                        self.registry.unregister(conn.local.port());
                        return Some(result);
                    }
                }
                conn
            }
        };
        result.local_port = Some(conn.local.port());

        if self.cfg.mode == Mode::ConnectOnly {
            self.registry.unregister(conn.local.port());
            result.status = Status::Reply;
            return Some(result);
        }

        self.registry.set_phase(conn.local.port(), Phase::Echo);
        let outcome = self.echo(&mut conn, seq, deadline, start);
        self.registry.unregister(conn.local.port());
        let (status, rtt) = outcome;
        if let Some(t) = rtt {
            let (d, clock) = t.best();
            result.rtt = Some(d);
            result.rtt_clock = Some(clock);
            result.rtt_user = Some(t.user);
        }
        let keep = matches!(status, Status::Reply | Status::Lost);
        result.status = status;
        if self.cfg.mode == Mode::Persistent && keep {
            self.conn = Some(conn);
        }
        Some(result)
    }

    /// Connect. Ok(Some(handshake times)), Ok(None) when interrupted, Err(verdict) on failure.
    fn connect(
        &self,
        conn: &mut Conn,
        deadline: Instant,
        start: Instant,
    ) -> Result<Option<Timed>, Status> {
        let fd = conn.sock.as_raw_fd();
        let mut hs = self
            .wire
            .as_ref()
            .map(|_| Handshake::new(conn.local.port()));
        if hs.is_some() {
            // Errors about the SYN that arrive before we read its ISN wait for it.
            self.registry.await_seq_window(conn.local.port());
        }
        let t0 = Instant::now();
        let connected = conn.sock.connect(&self.cfg.target.into());
        let took = t0.elapsed();
        // The SYN has left: its copy is waiting on the packet socket, with our ISN. Read it
        // at once, whatever connect() said: this settles the awaited window.
        self.watch_handshake(conn, &mut hs);
        match connected {
            Ok(()) => return Ok(Some(self.handshake_times(conn, &mut hs, took))),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(self.socket_error(conn, e, Phase::Connect, start)),
        }
        loop {
            match self.wait(fd, true, deadline) {
                Err(e) => {
                    return Err(Status::Error(format!(
                        "wait for connect: {}",
                        describe_io(&e)
                    )))
                }
                Ok(Waited::TimedOut) => return Err(Status::Timeout),
                Ok(Waited::Woken) => {
                    if self.stopped() {
                        return Ok(None);
                    }
                    if let Some(rep) = self.registry.report(conn.local.port()) {
                        return Err(Status::Icmp(rep));
                    }
                }
                Ok(Waited::Ready(_)) => {
                    let took = t0.elapsed();
                    return match conn.sock.take_error() {
                        Ok(None) => Ok(Some(self.handshake_times(conn, &mut hs, took))),
                        Ok(Some(e)) | Err(e) => {
                            Err(self.socket_error(conn, e, Phase::Connect, start))
                        }
                    };
                }
            }
        }
    }

    /// Send the request and wait for the echo; the times are there when an answer (echo or
    /// LOST) came.
    fn echo(
        &mut self,
        conn: &mut Conn,
        seq: u64,
        deadline: Instant,
        start: Instant,
    ) -> (Status, Option<Timed>) {
        let fd = conn.sock.as_raw_fd();
        let request = format!("ping {seq} {}\n", net::wall_timestamp());
        // Timestamps of earlier pings on a persistent connection are not ours.
        let mut tx = None;
        if self.cfg.mode == Mode::Persistent {
            if let Some(q) = self.queued_error(fd, &mut tx) {
                if let Some(st) = self.recverr_report(conn.local.port(), &q, Phase::Echo, start) {
                    return (st, None);
                }
            }
            tx = None;
        }
        let sent_at = Instant::now();
        match conn.sock.send(request.as_bytes()) {
            Ok(n) => {
                conn.sent += n as u64;
                self.seq_window(conn);
                if n != request.len() {
                    return (Status::Error("send: request only partly sent".into()), None);
                }
            }
            Err(e) => return (self.socket_error(conn, e, Phase::Echo, start), None),
        }
        self.buf.clear();
        let mut chunk = [0u8; 2048];
        loop {
            let ready = match self.wait(fd, false, deadline) {
                Err(e) => {
                    return (
                        Status::Error(format!("wait for echo: {}", describe_io(&e))),
                        None,
                    )
                }
                Ok(Waited::TimedOut) => return (Status::Timeout, None),
                Ok(Waited::Woken) => {
                    if self.stopped() {
                        return (Status::Interrupted, None);
                    }
                    if let Some(rep) = self.registry.report(conn.local.port()) {
                        return (Status::Icmp(rep), None);
                    }
                    continue;
                }
                Ok(Waited::Ready(r)) => r,
            };
            if ready.error && !ready.read {
                // The error queue: our transmit timestamp, or an ICMP error.
                if let Some(q) = self.queued_error(fd, &mut tx) {
                    if let Some(st) = self.recverr_report(conn.local.port(), &q, Phase::Echo, start)
                    {
                        return (st, None);
                    }
                }
                continue;
            }
            match timing::recv_with_timestamp(fd, &mut chunk) {
                Ok((0, _)) => {
                    return (
                        Status::Error("connection closed by the server before the echo".into()),
                        None,
                    )
                }
                Ok((n, rx)) => {
                    let user = sent_at.elapsed();
                    self.buf.extend_from_slice(&chunk[..n]);
                    if let Some(status) = judge_reply(request.as_bytes(), &self.buf) {
                        if tx.is_none() {
                            self.queued_error(fd, &mut tx);
                        }
                        let kernel = match (tx, rx) {
                            (Some(tx), Some(rx)) if rx > tx => Some((rx - tx, Clock::Kernel)),
                            _ => None,
                        };
                        return (status, Some(Timed { kernel, user }));
                    }
                    if self.buf.len() > 4096 {
                        return (Status::Error("reply longer than 4096 bytes".into()), None);
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (self.socket_error(conn, e, Phase::Echo, start), None),
            }
        }
    }
}

/// The connect probe runs one probe at a time: `send` takes it from its SYN to its verdict
/// (waking for ICMP errors and signals on the way), `poll` hands the verdict over, or waits
/// for the next probe's time.
impl Prober for Pinger {
    fn ready(&self, _target: SocketAddr) -> bool {
        self.finished.is_none()
    }

    fn send(&mut self, spec: ProbeSpec) {
        self.finished = self.ping(spec.seq).map(|mut r| {
            r.target = Some(spec.target);
            r.ttl = spec.ttl;
            r
        });
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        if let Some(r) = self.finished.take() {
            done.push(r);
        } else {
            self.pause_until(until);
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        usize::from(self.finished.is_some())
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        // A probe under way was concluded by `ping` itself (as interrupted).
        done.extend(self.finished.take());
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
