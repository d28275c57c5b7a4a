//! The SYN prober's driver ([`SynProber`]): picks each probe's source port and sequence
//! number, builds or re-stamps its SYN and sends it, then reads what the capture saw,
//! matches it ([`Matcher`]) and concludes timeouts. Its sockets sit behind [`SynIo`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::classify::classify;
use super::matcher::Matcher;
use super::sockets::{Outbox, SynIo, SynSockets, BATCH};
use super::Flow;
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::net::{self, Waker};
use crate::packet::build::{
    build_syn_sized, mark_syn, restamp, Marks, SynFields, MAX_SYN_LEN, V4_LEN, V6_LEN,
};
use crate::packet::diff::Headers;
use crate::probe::capture::Received;
use crate::probe::{IcmpTally, PingResult, ProbeSpec, Prober, Status};

/// Distance between the sequence numbers of two probes of a flow: more than any receive
/// window, so a SYN that overlaps another probe's half-open connection is out of its window.
pub(crate) const SEQ_STEP: u32 = 1_000_003;
/// Ports reserved for per-probe flows: at most this many probes in flight.
pub const PER_PROBE_PORTS: usize = 256;

/// Probes a target (or several) with hand-built SYNs.
pub struct SynProber<S: SynIo = SynSockets> {
    io: S,
    /// The families `io` sends: (IPv4, IPv6).
    families: (bool, bool),
    /// Our source address toward each target address (the route's), looked up once.
    sources: HashMap<IpAddr, IpAddr>,
    flow: Flow,
    /// Reserved source ports (`io` holds them).
    ports: Vec<u16>,
    next_port: usize,
    matcher: Matcher,
    timeout: Duration,
    /// First sequence number of the run (random): another run's probes are not ours.
    seq_base: u32,
    /// The SYN last built, and the flow it was built for (`restamp` reuses it).
    pkt: Box<[u8]>,
    built: Option<(u16, SocketAddr, usize)>,
    /// The SYNs' length in all (trace's `--size`; None: no payload).
    size: Option<usize>,
    /// Verdicts found while sending (a send that failed).
    early: Vec<PingResult>,
    /// SYNs built and waiting to leave together (one `sendmmsg`): sent when full and
    /// whenever the prober polls.
    outbox: Outbox,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Back-to-back probing (-i 0): look for answers without sleeping for a moment first.
    spin: bool,
    /// Many targets: a wait shorter than `NAP` is a nap (see `with_nap`).
    nap: bool,
    /// Most probes a constant flow carries to one target at once (see `with_interval`).
    overlap: usize,
    /// Back to back (-i 0) on a constant flow: `overlap` is a window that grows while every
    /// probe sent is concluded by the time its send returns, and falls back to 1 when not.
    adaptive: bool,
    /// Packets the packet socket's queue dropped, so far.
    drops: u64,
    /// TOS and ECN setup of every SYN (`with_marks`).
    marks: Marks,
    /// Keep the headers of SYN-ACKs in their verdicts (`with_headers`).
    headers: bool,
}

/// Most probes a constant flow carries to one target at once.
pub const MAX_OVERLAP: usize = 64;
/// Most probes a constant flow carries to one target at once back to back (-i 0): a window,
/// so that SYNs leave in batches and answers are read in batches (see `with_interval`).
pub const BACK_TO_BACK: usize = 32;

/// How many probes a constant flow carries to one target at once when one starts every
/// `interval` and each waits `timeout`: see `SynProber::with_interval`.
pub(crate) fn overlap(timeout: Duration, interval: Duration) -> usize {
    if interval.is_zero() {
        return 1;
    }
    let fit = timeout.as_nanos().div_ceil(interval.as_nanos());
    usize::try_from(fit)
        .unwrap_or(MAX_OVERLAP)
        .saturating_add(1)
        .min(MAX_OVERLAP)
}

/// How long back-to-back probing looks for answers without sleeping (see `connect::SPIN`).
const SPIN: Duration = Duration::from_micros(250);
/// The longest nap (see `with_nap`).
const NAP: Duration = Duration::from_millis(2);

impl<S: SynIo> SynProber<S> {
    /// A prober with the given sockets; reserves its source ports (on every local address
    /// of the families it sends): one per flow (`flows`, a probe picks its flow with
    /// `ProbeSpec::flow`) for `Flow::Constant`, a pool of `PER_PROBE_PORTS` for
    /// `Flow::PerProbe`. Each probe leaves from the address the route to its target gives.
    pub fn new(
        mut io: S,
        flow: Flow,
        flows: usize,
        timeout: Duration,
        verbose: bool,
        waker: Arc<Waker>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<SynProber<S>> {
        let n = match flow {
            Flow::Constant => flows.max(1),
            Flow::PerProbe => PER_PROBE_PORTS,
        };
        let ports = (0..n)
            .map(|_| io.reserve_port())
            .collect::<io::Result<Vec<_>>>()?;
        // Now that our ports are known, the filter passes only our segments: other runs'
        // traffic costs us nothing and cannot fill our queue.
        io.capture_ports(&ports)?;
        Ok(SynProber {
            families: io.families(),
            io,
            sources: HashMap::new(),
            flow,
            ports,
            next_port: 0,
            matcher: Matcher::new(verbose),
            timeout,
            seq_base: rand::random(),
            pkt: vec![0; MAX_SYN_LEN].into_boxed_slice(),
            built: None,
            size: None,
            early: Vec::new(),
            outbox: Outbox::default(),
            waker,
            stop,
            spin: false,
            nap: false,
            overlap: 1,
            adaptive: false,
            drops: 0,
            marks: Marks::default(),
            headers: false,
        })
    }

    /// Probes start every `interval` (ping's -i): a constant flow carries to a target as
    /// many at once as start within the timeout (and one more, for the probe due as the
    /// oldest one's time runs out), at most `MAX_OVERLAP`; with 0 (back to back), each
    /// probe sent as soon as one concluded, in a window: one at a time, and while every
    /// probe is concluded by the time its send returns (the kernel carried the SYN, the
    /// answer and our RST within the send: loopback, namespaces), twice as many each time, up
    /// to `BACK_TO_BACK`; back to one as soon as an answer has to be waited for (a real
    /// network, where a second SYN of the flow in flight would meet the first one's
    /// half-open connection and get at best a rate-limited ACK). Either way a pure ACK for
    /// an earlier probe answers a later one ([`Matcher::with_ack_answers`]). Without this
    /// call (trace, whose probes of a flow differ in TTL), one probe at a time and no ACK
    /// rule.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.overlap = overlap(self.timeout, interval);
        self.adaptive = interval.is_zero() && self.flow == Flow::Constant;
        self.matcher.ack_answers = true;
        self
    }

    /// Send every SYN with `marks` (TOS / traffic class, ECN setup).
    pub fn with_marks(mut self, marks: Marks) -> Self {
        self.marks = marks;
        self
    }

    /// Keep the headers of the target's SYN-ACK in its verdict (`PingResult::seen`: what it
    /// offers, for trace's middlebox report); ICMP errors' quotes are kept anyway.
    pub fn with_headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// Many targets: when the next thing to do (a probe due, a deadline) is less than `NAP`
    /// away, sleep until then without being woken by each answer captured. The answers wait
    /// in the ring and are read at the next turn: their times are the kernel's stamps, so
    /// reading them up to `NAP` later changes no figure, and at 50,000 probes a second the
    /// loop wakes once per turn rather than once per packet.
    pub fn with_nap(mut self, on: bool) -> Self {
        self.nap = on;
        self
    }

    /// Poll without sleeping for a moment before waiting (for -i 0).
    pub fn with_spin(mut self, on: bool) -> Self {
        self.spin = on;
        self
    }

    /// Carry `n` probes of a constant flow at once, for now (tests: a window already grown).
    #[cfg(test)]
    pub(crate) fn with_overlap(mut self, n: usize) -> Self {
        self.overlap = n;
        self
    }

    /// Start the run's sequence numbers at `base` (tests: to meet captured packets).
    #[cfg(test)]
    pub(crate) fn with_seq_base(mut self, base: u32) -> Self {
        self.seq_base = base;
        self
    }

    /// The reserved source ports.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.clone()
    }

    fn seq_of(&self, n: u64) -> u32 {
        self.seq_base
            .wrapping_add((n as u32).wrapping_mul(SEQ_STEP))
    }

    /// The port a probe on `flow` leaves from: the flow's, or the next free one of the pool.
    fn free_port(&self, flow: u16) -> Option<u16> {
        match self.flow {
            Flow::Constant => Some(self.ports[usize::from(flow) % self.ports.len()]),
            Flow::PerProbe => (0..self.ports.len())
                .map(|i| self.ports[(self.next_port + i) % self.ports.len()])
                .find(|&p| !self.matcher.port_busy(p)),
        }
    }

    /// Read every waiting packet and take it into account.
    fn read_answers(&mut self, done: &mut Vec<PingResult>) {
        let matcher = &mut self.matcher;
        let headers = self.headers;
        let mut take = |pkt: &[u8], got: Received| {
            if let Some(seen) = classify(pkt, got.outgoing) {
                let synack = headers
                    && matches!(
                        seen,
                        super::Seen::Answer {
                            kind: super::AnswerKind::SynAck,
                            ..
                        }
                    );
                if let Some(mut r) = matcher.on_seen(seen, got.at, Instant::now()) {
                    if synack {
                        r.seen = Headers::parse(pkt);
                    }
                    done.push(r);
                }
            }
        };
        loop {
            match self.io.recv_batch(READ_BATCH, &mut take) {
                Ok(n) if n == READ_BATCH => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => return,
            }
        }
    }

    /// Send the SYNs waiting in the outbox. One that cannot leave (no route, a local
    /// firewall) gets its verdict at once.
    fn flush(&mut self) {
        if !self.outbox.is_empty() {
            match self.io.send_later(&mut self.outbox) {
                Ok(true) => return,
                Ok(false) => {}
                // The thread is gone: every packet fails alike.
                Err(e) => {
                    for i in 0..self.outbox.len() {
                        let key = self.outbox.key(i);
                        self.send_failed(key, &e);
                    }
                    self.outbox.clear();
                    return;
                }
            }
        }
        let mut from = 0;
        while from < self.outbox.len() {
            let err = match self.io.send_batch(&self.outbox, from) {
                Ok(0) => io::Error::other("the kernel took no packet"),
                Ok(n) => {
                    from += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            self.send_failed(self.outbox.key(from), &err);
            from += 1;
        }
        self.outbox.clear();
    }

    /// The probe `key`'s SYN did not leave: its verdict, at once.
    fn send_failed(&mut self, key: (u16, u32), err: &io::Error) {
        let mut gone = Vec::new();
        self.matcher.interrupt_one(key, &mut gone);
        for mut r in gone {
            r.status = Status::Error(format!("send the SYN: {}", net::describe_io(err)));
            self.early.push(r);
        }
    }
}

/// Most captured packets read before the matcher's timeouts are looked at again.
const READ_BATCH: usize = 4 * BATCH;

impl<S: SynIo> Prober for SynProber<S> {
    fn ready(&self, target: SocketAddr) -> bool {
        self.early.is_empty()
            && match self.flow {
                // As many as `with_interval` allows: see the module's documentation.
                Flow::Constant => self.matcher.in_flight_to(&target) < self.overlap,
                Flow::PerProbe => self.free_port(0).is_some(),
            }
    }

    fn send(&mut self, spec: ProbeSpec) {
        let Some(port) = self.free_port(spec.flow) else {
            return;
        };
        if self.flow == Flow::PerProbe {
            self.next_port = (self.next_port + 1) % self.ports.len();
        }
        let ip = match self.sources.get(&spec.target.ip()) {
            Some(ip) => *ip,
            None => match self.io.source_for(spec.target) {
                Ok(ip) => *self.sources.entry(spec.target.ip()).or_insert(ip),
                Err(e) => {
                    let mut r = PingResult::of(
                        &spec,
                        Status::Error(format!("find a route: {}", net::describe_io(&e))),
                    );
                    r.local_port = Some(port);
                    self.early.push(r);
                    return;
                }
            },
        };
        let src = SocketAddr::new(ip, port);
        let seq = self.seq_of(spec.seq);
        let ttl = spec.ttl.unwrap_or(64);
        let len = match self.built {
            Some((p, t, len)) if p == port && t == spec.target => {
                restamp(&mut self.pkt[..len], seq, spec.seq as u16, ttl);
                len
            }
            _ => {
                let fields = SynFields {
                    src,
                    dst: spec.target,
                    seq,
                    ip_id: spec.seq as u16,
                    ttl,
                };
                match build_syn_sized(&mut self.pkt, &fields, self.size) {
                    Ok(len) => {
                        if self.marks != Marks::default() {
                            mark_syn(&mut self.pkt[..len], self.marks);
                        }
                        self.built = Some((port, spec.target, len));
                        len
                    }
                    Err(e) => {
                        let mut r =
                            PingResult::of(&spec, Status::Error(format!("build the SYN: {e:?}")));
                        r.local_port = Some(port);
                        self.early.push(r);
                        return;
                    }
                }
            }
        };
        let can = if spec.target.is_ipv6() {
            self.families.1
        } else {
            self.families.0
        };
        if !can {
            let mut r = PingResult::of(
                &spec,
                Status::Error("no raw socket of this address family was opened".into()),
            );
            r.local_port = Some(port);
            self.early.push(r);
            return;
        }
        let to = spec.target.ip();
        if !self.outbox.push(&self.pkt[..len], to, (port, seq)) {
            self.flush();
            self.outbox.push(&self.pkt[..len], to, (port, seq));
        }
        let bare = if spec.target.is_ipv6() {
            V6_LEN
        } else {
            V4_LEN
        };
        self.matcher
            .insert(spec, src, seq, Instant::now(), self.timeout);
        self.matcher
            .carried((port, seq), u32::try_from(len - bare).unwrap_or(0));
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        let sent = !self.outbox.is_empty();
        self.flush();
        for (key, err) in self.io.send_failures() {
            self.send_failed(key, &err);
        }
        if self.adaptive && sent {
            // Were they all concluded within their send? Then the window may grow.
            self.read_answers(done);
            self.overlap = if self.matcher.in_flight() == 0 {
                (self.overlap * 2).min(BACK_TO_BACK)
            } else {
                1
            };
        }
        done.append(&mut self.early);
        let spin_until = self.spin.then(|| Instant::now() + SPIN);
        loop {
            self.read_answers(done);
            let now = Instant::now();
            self.matcher.expire(now, done);
            if !done.is_empty() || self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let wake = self.matcher.next_deadline().map_or(until, |d| d.min(until));
            if wake <= now {
                return Ok(());
            }
            let spinning = spin_until.is_some_and(|t| now < t);
            let wait = if spinning { Duration::ZERO } else { wake - now };
            let woken = if self.nap && wait <= NAP {
                self.io.nap(&self.waker, wait)?
            } else {
                self.io.wait(&self.waker, wait)?
            };
            if woken {
                self.waker.drain();
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.matcher.in_flight() + self.early.len()
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        self.outbox.clear();
        done.append(&mut self.early);
        self.matcher.interrupt(done);
    }

    fn icmp_tally(&self) -> IcmpTally {
        self.matcher.tally()
    }

    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        self.matcher.drain_unmatched()
    }

    fn set_shape(&mut self, shape: crate::probe::Shape) -> bool {
        self.size = shape.size;
        self.built = None;
        true
    }

    fn capture_drops(&mut self) -> u64 {
        self.drops += self.io.drops();
        self.drops
    }
}
