//! A probe that needs no privilege: a non-blocking `connect()` with a TTL (IP_TTL /
//! IPV6_UNICAST_HOPS), as tracepath probes unprivileged. The kernel reports what a router
//! said about the SYN on the socket's error queue (IP_RECVERR / IPV6_RECVERR): the offender's
//! address, type and code of a time exceeded or an unreachable, and fails the connection with
//! it. A completed connection is the target's SYN-ACK (port open), a refused one its RST.
//!
//! Each probe has its own socket and so its own source port: probes never collide at the
//! target, but they are not a constant flow (a load balancer may send each its own way), and
//! an answered probe is a real connection, closed at once with RST (SO_LINGER 0). ICMP
//! extensions are not available (the kernel does not pass them on).
//!
//! Times are the kernel's where it gives them without privilege:
//! - an ICMP error: from the clock read just before `connect()` (CLOCK_REALTIME, the
//!   stamps' clock) to the ICMP message's software receive timestamp, which the error
//!   queue carries (SO_TIMESTAMPING on the socket; the host-wide switch is held on by the
//!   caller, `timing::RxStamping`). Not the time the verdict is read: probes leave in a
//!   burst and their errors are read in turn, so read times grow along the burst, not
//!   along the path. (The SYN itself gets no transmit timestamp: Linux stamps only data
//!   sent with `sendmsg()`, and `connect()` sends the SYN within the call, so the clock
//!   read before it is a few microseconds early at most.)
//! - the target's SYN-ACK: TCP_INFO's `tcpi_rtt`, the kernel's SYN to SYN-ACK measure;
//! - its RST (closed port), or when the kernel gave no stamp: user space's, from before
//!   `connect()` to the verdict read.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::timing;

use socket2::Socket;

use super::connect::probe_socket;
use super::{Clock, IcmpTally, PingResult, ProbeSpec, Prober, Status};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::icmp::recverr::{read_error_queue, ErrEntry, QueuedError};
use crate::icmp::Phase;
use crate::net::{self, describe_io, Waker};

struct Flight {
    spec: ProbeSpec,
    sock: Socket,
    port: Option<u16>,
    sent: Instant,
    /// The realtime clock just before `connect()` (the kernel stamps' clock).
    sent_wall: Duration,
    deadline: Instant,
}

/// connect() probes with a TTL, many in flight, one socket each.
pub struct TtlConnectProber {
    flights: Vec<Flight>,
    timeout: Duration,
    /// Verdicts known when sending (the socket could not be opened, no route).
    early: Vec<PingResult>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl TtlConnectProber {
    pub fn new(timeout: Duration, waker: Arc<Waker>, stop: Arc<AtomicBool>) -> Self {
        TtlConnectProber {
            flights: Vec::new(),
            timeout,
            early: Vec::new(),
            waker,
            stop,
        }
    }

    fn open(spec: &ProbeSpec) -> io::Result<(Socket, Option<u16>)> {
        // Any source address: the route's, which the kernel picks.
        let sock = probe_socket(spec.target, spec.ttl, None)?;
        let port = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port());
        Ok((sock, port))
    }

    /// The verdict of a probe whose socket is ready (connected or failed), or None.
    fn verdict(f: &Flight, now: Instant) -> Option<Status> {
        let fd = f.sock.as_raw_fd();
        // An ICMP error first: the error queue says who and what.
        while let Ok(Some(entry)) = read_error_queue(fd) {
            if let ErrEntry::Error(q) = entry {
                if q.is_icmp() {
                    return Some(icmp_status(&q, f, now));
                }
            }
        }
        match f.sock.take_error() {
            Ok(None) => {
                // Writable without error: connected, unless not connected yet.
                match f.sock.peer_addr() {
                    Ok(_) => Some(Status::Reply),
                    Err(_) => None,
                }
            }
            Ok(Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Some(Status::Refused),
            Ok(Some(e)) => Some(Status::Error(describe_io(&e))),
            Err(e) => Some(Status::Error(format!(
                "read the socket error: {}",
                describe_io(&e)
            ))),
        }
    }

    fn result(f: &Flight, status: Status, now: Instant) -> PingResult {
        let mut r = PingResult::of(&f.spec, status);
        r.local_port = f.port;
        if matches!(r.status, Status::Reply | Status::Refused) {
            let user = now.saturating_duration_since(f.sent);
            let kernel = match r.status {
                Status::Reply => timing::handshake_rtt(f.sock.as_raw_fd()),
                _ => None,
            };
            r.connect = Some(kernel.unwrap_or(user));
            r.connect_clock = Some(if kernel.is_some() {
                Clock::Kernel
            } else {
                Clock::User
            });
            r.connect_user = Some(user);
        }
        r
    }
}

/// The time from a probe's `connect()` to its ICMP error: to the kernel's receive stamp of
/// the ICMP when there is one (not before the send), else to `now`.
fn icmp_after(
    received: Option<Duration>,
    sent_wall: Duration,
    sent: Instant,
    now: Instant,
) -> Duration {
    match received {
        Some(rx) if rx >= sent_wall => rx - sent_wall,
        _ => now.saturating_duration_since(sent),
    }
}

fn icmp_status(q: &QueuedError, f: &Flight, now: Instant) -> Status {
    Status::Icmp(q.report(
        f.spec.target.ip(),
        icmp_after(q.received, f.sent_wall, f.sent, now),
        Phase::Connect,
    ))
}

impl Prober for TtlConnectProber {
    fn ready(&self, _target: SocketAddr) -> bool {
        true
    }

    fn send(&mut self, spec: ProbeSpec) {
        let (sock, port) = match Self::open(&spec) {
            Ok(s) => s,
            Err(e) => {
                self.early.push(PingResult::of(
                    &spec,
                    Status::Error(format!("open a socket: {}", describe_io(&e))),
                ));
                return;
            }
        };
        let sent_wall = timing::realtime_now();
        let sent = Instant::now();
        match sock.connect(&spec.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                let mut r = PingResult::of(
                    &spec,
                    Status::Error(format!("connect: {}", describe_io(&e))),
                );
                r.local_port = port;
                self.early.push(r);
                return;
            }
        }
        self.flights.push(Flight {
            spec,
            sock,
            port,
            sent,
            sent_wall,
            deadline: sent + self.timeout,
        });
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        done.append(&mut self.early);
        loop {
            let now = Instant::now();
            // Deadlines first: a probe past its time is a timeout even if ready now.
            let mut i = 0;
            while i < self.flights.len() {
                if self.flights[i].deadline <= now {
                    let f = self.flights.swap_remove(i);
                    done.push(Self::result(&f, Status::Timeout, now));
                } else {
                    i += 1;
                }
            }
            if !done.is_empty() || self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let wake = self
                .flights
                .iter()
                .map(|f| f.deadline)
                .min()
                .map_or(until, |d| d.min(until));
            if wake <= now {
                return Ok(());
            }
            let mut fds: Vec<(i32, bool)> = self
                .flights
                .iter()
                .map(|f| (f.sock.as_raw_fd(), true))
                .collect();
            fds.push((self.waker.fd(), false));
            let ready = net::poll(&fds, Some(wake - now))?;
            if ready.last().is_some_and(|r| r.read) {
                self.waker.drain();
            }
            let now = Instant::now();
            let mut k = 0;
            let mut idx = 0;
            while idx < self.flights.len() {
                let r = ready[k];
                k += 1;
                if r.write || r.error || r.read {
                    if let Some(status) = Self::verdict(&self.flights[idx], now) {
                        let f = self.flights.remove(idx);
                        done.push(Self::result(&f, status, now));
                        continue;
                    }
                }
                idx += 1;
            }
            if !done.is_empty() {
                return Ok(());
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.flights.len() + self.early.len()
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        done.append(&mut self.early);
        let now = Instant::now();
        for f in self.flights.drain(..) {
            done.push(Self::result(&f, Status::Interrupted, now));
        }
    }

    fn icmp_tally(&self) -> IcmpTally {
        IcmpTally::default()
    }

    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_icmp_error_is_timed_to_its_kernel_receive_stamp() {
        let sent = Instant::now();
        let now = sent + Duration::from_millis(3);
        let wall = Duration::from_secs(1_800_000_000);
        // Read 3 ms after the send (late in a burst); it arrived 41 µs after it.
        let rx = wall + Duration::from_micros(41);
        assert_eq!(
            icmp_after(Some(rx), wall, sent, now),
            Duration::from_micros(41)
        );
        // No stamp, or one before the send (a clock step): the read time.
        assert_eq!(icmp_after(None, wall, sent, now), Duration::from_millis(3));
        let early = wall - Duration::from_micros(5);
        assert_eq!(
            icmp_after(Some(early), wall, sent, now),
            Duration::from_millis(3)
        );
    }
}
