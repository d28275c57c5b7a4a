//! A probe that needs no privilege: a non-blocking `connect()` with a TTL (IP_TTL /
//! IPV6_UNICAST_HOPS), as tracepath probes unprivileged. The kernel reports what a router
//! said about the SYN on the socket's error queue (IP_RECVERR / IPV6_RECVERR): the offender's
//! address, type and code of a time exceeded or an unreachable, and fails the connection with
//! it. A completed connection is the target's SYN-ACK (port open), a refused one its RST.
//! ICMP extensions are not available (the kernel does not pass them on).
//!
//! Constant flows (Paris traceroute) without a raw socket: each flow has a source port,
//! reserved for the run by a socket bound to it (SO_REUSEADDR, never listening, so no other
//! program's connect() picks it), and every probe of the flow binds that port too, so that
//! all of them share the 5-tuple and a load balancer hashing it sends them the same way.
//! The kernel keeps one connection per 4-tuple, so a flow's probes leave one at a time
//! ([`Lanes`]): the next when the previous is concluded, its socket gone. It goes at once:
//! an ICMP error fails a connection still opening (the kernel drops it), a refused one is
//! gone, and a completed one or a timed-out one is closed with RST (SO_LINGER 0), so no
//! TIME_WAIT holds the 4-tuple. Flows run side by side. A late ICMP error about an earlier
//! probe of the flow never lands on the next one: the kernel checks the sequence number it
//! quotes against the socket's (its ISN differs).
//!
//! Over IPv6 the probes carry no flow label (IPV6_AUTOFLOWLABEL off: the kernel's label is a
//! random hash per socket). The skb hash our kernel draws per socket never leaves the host,
//! so routers hash the headers alone; but a Linux router that gets our packets with that
//! hash still on them (a veth into a namespace on this host) balances on it with
//! `fib_multipath_hash_policy` 1, and so the lab's multipath routers use policy 3 with the
//! 5-tuple fields.
//!
//! The price: a silent hop costs every probe of a flow the timeout, one after the other.
//!
//! Times are the kernel's where it gives them without privilege:
//! - an ICMP error: from the clock read just before `connect()` (CLOCK_REALTIME, the
//!   stamps' clock) to the ICMP message's software receive timestamp, which the error
//!   queue carries (SO_TIMESTAMPING on the socket; the host-wide switch is held on by the
//!   caller, `timing::RxStamping`). Not the time the verdict is read: probes leave in a
//!   burst and their errors are read in turn, so read times grow along the burst, not
//!   along the path. (The SYN itself gets no transmit timestamp: Linux stamps only data
//!   sent with `sendmsg()`, so the time includes the kernel's path to the wire inside
//!   `connect()`: a few microseconds warm, tens cold, and a flow's probes leave one at a
//!   time, so often cold. The README gives the lab's figures.)
//! - the target's SYN-ACK: TCP_INFO's `tcpi_rtt`, the kernel's SYN to SYN-ACK measure;
//! - its RST (closed port), or when the kernel gave no stamp: user space's, from before
//!   `connect()` to the verdict read.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::timing;

use socket2::{Domain, Protocol, Socket, Type};

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

/// The probes waiting for their flow: each flow sends one probe at a time, in the order
/// given, and the flows side by side. Pure bookkeeping, tested without sockets.
#[derive(Debug, Default)]
pub struct Lanes {
    queues: Vec<VecDeque<ProbeSpec>>,
    busy: Vec<bool>,
}

impl Lanes {
    pub fn new(flows: usize) -> Lanes {
        Lanes {
            queues: vec![VecDeque::new(); flows],
            busy: vec![false; flows],
        }
    }

    /// Queue a probe on its flow; Err(spec) when the flow does not exist.
    pub fn push(&mut self, spec: ProbeSpec) -> Result<(), ProbeSpec> {
        match self.queues.get_mut(usize::from(spec.flow)) {
            Some(q) => {
                q.push_back(spec);
                Ok(())
            }
            None => Err(spec),
        }
    }

    /// The next probe that may leave now (its flow idle), its flow marked busy.
    pub fn take_next(&mut self) -> Option<ProbeSpec> {
        let f = (0..self.queues.len()).find(|&f| !self.busy[f] && !self.queues[f].is_empty())?;
        self.busy[f] = true;
        self.queues[f].pop_front()
    }

    /// The probe in flight on `flow` is concluded (its socket closed): the flow is idle.
    pub fn done(&mut self, flow: u16) {
        if let Some(b) = self.busy.get_mut(usize::from(flow)) {
            *b = false;
        }
    }

    /// Probes waiting, not sent yet.
    pub fn waiting(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Take every probe waiting.
    pub fn drain(&mut self) -> Vec<ProbeSpec> {
        self.queues.iter_mut().flat_map(|q| q.drain(..)).collect()
    }
}

/// connect() probes with a TTL on constant flows: one socket per probe, one probe in flight
/// per flow.
pub struct TtlConnectProber {
    flights: Vec<Flight>,
    lanes: Lanes,
    /// Each flow's source port, and the socket that holds it for the run.
    ports: Vec<u16>,
    _held: Vec<Socket>,
    timeout: Duration,
    /// Verdicts known when sending (the socket could not be opened, no route).
    early: Vec<PingResult>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

/// A TCP socket of `target`'s family bound to a free port of any address, that others of
/// ours may bind too (SO_REUSEADDR): it holds the port for a flow.
fn hold_port(target: SocketAddr) -> io::Result<(u16, Socket)> {
    let any = match target {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let held = Socket::new(Domain::for_address(any), Type::STREAM, Some(Protocol::TCP))?;
    held.set_reuse_address(true)?;
    held.bind(&any.into())?;
    let bound = held.local_addr()?.as_socket();
    match bound.map(|a| a.port()) {
        Some(p) if p != 0 => Ok((p, held)),
        _ => Err(io::Error::other("the bound socket has no port")),
    }
}

impl TtlConnectProber {
    /// A prober of `flows` constant flows (at least one) to `target`'s family: reserves
    /// their source ports.
    pub fn new(
        target: SocketAddr,
        flows: usize,
        timeout: Duration,
        waker: Arc<Waker>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let flows = flows.max(1);
        let (ports, held) = (0..flows)
            .map(|_| hold_port(target))
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        Ok(TtlConnectProber {
            flights: Vec::new(),
            lanes: Lanes::new(flows),
            ports,
            _held: held,
            timeout,
            early: Vec::new(),
            waker,
            stop,
        })
    }

    /// The flows' source ports.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.clone()
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

    /// Conclude flight `i`: its verdict to `done`, its socket closed (RST), its flow free.
    fn conclude(&mut self, i: usize, status: Status, now: Instant, done: &mut Vec<PingResult>) {
        let f = self.flights.swap_remove(i);
        done.push(Self::result(&f, status, now));
        self.lanes.done(f.spec.flow);
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

    /// Send every probe whose flow is idle.
    fn pump(&mut self) {
        while let Some(spec) = self.lanes.take_next() {
            if let Err(r) = self.launch(spec) {
                self.early.push(*r);
                self.lanes.done(spec.flow);
            }
        }
    }

    /// Open the probe's socket on its flow's port and start its connect(); Err: its verdict.
    fn launch(&mut self, spec: ProbeSpec) -> Result<(), Box<PingResult>> {
        let port = self.ports[usize::from(spec.flow)];
        let sock = probe_socket(spec.target, spec.ttl, None, port).map_err(|e| {
            Box::new(PingResult::of(
                &spec,
                Status::Error(format!(
                    "open a socket on source port {port}: {}",
                    describe_io(&e)
                )),
            ))
        })?;
        if spec.target.is_ipv6() {
            // No automatic flow label (the kernel's is a random hash per socket, and routers
            // that balance on the flow label would split the flow): 0 on every probe, as
            // the SYN probes send. Kernels before 4.10 lack the option: left as it is.
            let _ = net::setsockopt_int(
                sock.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_AUTOFLOWLABEL,
                0,
            );
        }
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
                r.local_port = Some(port);
                return Err(Box::new(r));
            }
        }
        self.flights.push(Flight {
            spec,
            sock,
            port: Some(port),
            sent,
            sent_wall,
            deadline: sent + self.timeout,
        });
        Ok(())
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
        if let Err(spec) = self.lanes.push(spec) {
            self.early.push(PingResult::of(
                &spec,
                Status::Error(format!(
                    "no flow {} (the prober has {})",
                    spec.flow,
                    self.ports.len()
                )),
            ));
        }
        self.pump();
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        done.append(&mut self.early);
        loop {
            let now = Instant::now();
            // Deadlines first: a probe past its time is a timeout even if ready now.
            let mut i = 0;
            while i < self.flights.len() {
                if self.flights[i].deadline <= now {
                    self.conclude(i, Status::Timeout, now, done);
                } else {
                    i += 1;
                }
            }
            // The next probe of every flow concluded leaves now.
            self.pump();
            done.append(&mut self.early);
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
            // From the last: swap_remove leaves the flights below in place.
            for idx in (0..self.flights.len()).rev() {
                let r = ready[idx];
                if r.write || r.error || r.read {
                    if let Some(status) = Self::verdict(&self.flights[idx], now) {
                        self.conclude(idx, status, now, done);
                    }
                }
            }
            self.pump();
            done.append(&mut self.early);
            if !done.is_empty() {
                return Ok(());
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.flights.len() + self.early.len() + self.lanes.waiting()
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        done.append(&mut self.early);
        let now = Instant::now();
        for f in self.flights.drain(..) {
            done.push(Self::result(&f, Status::Interrupted, now));
        }
        for spec in self.lanes.drain() {
            done.push(PingResult::of(&spec, Status::Interrupted));
        }
        self.lanes = Lanes::new(self.ports.len());
    }

    fn icmp_tally(&self) -> IcmpTally {
        IcmpTally::default()
    }

    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        Vec::new()
    }
}

#[cfg(test)]
#[path = "ttl_connect_tests.rs"]
mod tests;
