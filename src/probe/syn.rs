//! The SYN probe: one hand-built SYN per probe (pnet's packet builders, checksums included),
//! answered by SYN-ACK (port open), RST (closed), an ICMP error, or nothing (timeout).
//! Nothing is opened in the target's application: our kernel answers its SYN-ACK with RST,
//! because no socket of ours is connected on that port.
//!
//! - Sending: a raw IP socket (`IPPROTO_RAW`: we write the IP header too), one buffer reused
//!   for every probe.
//! - Answers: one packet socket ([`PacketSocket`], [`answers_filter`]) sees our SYN leave and
//!   the SYN-ACK, RST or ICMP error arrive, with the kernel's timestamps at the device: the
//!   time is the wire's.
//! - Matching ([`Matcher`], pure, tested on captured bytes): an answer belongs to the probe
//!   whose 4-tuple it carries and whose sequence number it acknowledges (ack = seq + 1); an
//!   ICMP error to the probe whose 4-tuple *and* sequence number it quotes.
//! - Flows: by default every probe of a target has the same 5-tuple (a constant flow, as
//!   Paris traceroute keeps it, so a load balancer hashing the flow keeps them on one path)
//!   and probes are told apart by sequence number and IPv4 ID. With `Flow::PerProbe` each
//!   probe takes the next port of a reserved pool, as classic tools do.
//! - The source ports are reserved for the run by TCP sockets bound to them: the kernel never
//!   gives them to another connection, and answers to them are ours.
//!
//! Several probes on one flow: until our RST reaches the target (about one round trip after
//! its SYN-ACK left), it holds a half-open connection for the 4-tuple, and a second SYN that
//! meets it is out of that connection's window: Linux answers it with a pure ACK
//! acknowledging the earlier SYN (ack = earlier seq + 1; `tcp_check_req`), not with
//! SYN-ACK. The matcher takes that ACK as the answer of the oldest later probe of the flow
//! in flight ([`Matcher::with_ack_answers`]: the port is open, `answer` says "ack"). So with
//! an interval (`SynProber::with_interval`) a constant flow starts a probe every interval
//! whatever is in flight (up to `MAX_OVERLAP` per target); back to back (-i 0) it sends its
//! next probe once the previous one concluded ("as fast as answers can be matched").
//! Per-probe flows keep up to one probe in flight per reserved port.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::{LaxIpv6Slice, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};
use pnet_packet::MutablePacket;
use socket2::{Domain, Protocol, Socket, Type};

use super::packet::{answers_filter, PacketSocket, SNAP};
use super::{Clock, IcmpTally, PingResult, ProbeSpec, Prober, Status};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::{parse_icmpv4_packet, parse_icmpv6_message, IcmpError};
use crate::icmp::{IcmpReport, Phase, Source};
use crate::net::{self, Waker};

/// TCP options of our SYN, as Linux sends them: MSS, SACK permitted, timestamps, NOP,
/// window scale (20 bytes).
const TCP_LEN: usize = 40;
/// Length of an IPv4 SYN (no IP options) and of an IPv6 SYN (no extension headers).
pub const V4_LEN: usize = 20 + TCP_LEN;
pub const V6_LEN: usize = 40 + TCP_LEN;

/// Distance between the sequence numbers of two probes of a flow: more than any receive
/// window, so a SYN that overlaps another probe's half-open connection is out of its window.
const SEQ_STEP: u32 = 1_000_003;
/// Ports reserved for per-probe flows: at most this many probes in flight.
pub const PER_PROBE_PORTS: usize = 256;
/// Unattributed ICMP errors kept for -v.
const UNMATCHED_KEPT: usize = 256;
/// Recently ended probes remembered, to tell late answers from foreign ones.
const ENDED_KEPT: usize = 1024;

/// The fields of one SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynFields {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    /// IPv4 identification (unused for IPv6).
    pub ip_id: u16,
    /// TTL / hop limit.
    pub ttl: u8,
}

/// Why a SYN could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// Source and destination are not of one family.
    MixedFamilies,
    /// The buffer is shorter than the packet.
    ShortBuffer,
}

/// Build the SYN into `buf` (IP header, TCP header with options, checksums) with pnet's
/// packet builders; returns its length.
pub fn build_syn(buf: &mut [u8], f: &SynFields) -> Result<usize, BuildError> {
    let (ip_len, len) = match (f.src.ip(), f.dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (20, V4_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => (40, V6_LEN),
        _ => return Err(BuildError::MixedFamilies),
    };
    let buf = buf.get_mut(..len).ok_or(BuildError::ShortBuffer)?;
    buf.fill(0);
    {
        let mut tcp = MutableTcpPacket::new(&mut buf[ip_len..]).ok_or(BuildError::ShortBuffer)?;
        tcp.set_source(f.src.port());
        tcp.set_destination(f.dst.port());
        tcp.set_data_offset((TCP_LEN / 4) as u8);
        tcp.set_flags(TcpFlags::SYN);
        tcp.set_window(64240);
        let mss = if ip_len == 20 { 1460 } else { 1440 };
        tcp.set_options(&[
            TcpOption::mss(mss),
            TcpOption::sack_perm(),
            TcpOption::timestamp(f.seq, 0),
            TcpOption::nop(),
            TcpOption::wscale(7),
        ]);
    }
    match (f.src.ip(), f.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = MutableIpv4Packet::new(buf).ok_or(BuildError::ShortBuffer)?;
            ip.set_version(4);
            ip.set_header_length(5);
            ip.set_total_length(len as u16);
            ip.set_flags(Ipv4Flags::DontFragment);
            ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
            ip.set_source(s);
            ip.set_destination(d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = MutableIpv6Packet::new(buf).ok_or(BuildError::ShortBuffer)?;
            ip.set_version(6);
            ip.set_payload_length(TCP_LEN as u16);
            ip.set_next_header(IpNextHeaderProtocols::Tcp);
            ip.set_source(s);
            ip.set_destination(d);
        }
        _ => return Err(BuildError::MixedFamilies),
    }
    restamp(buf, f.seq, f.ip_id, f.ttl);
    Ok(len)
}

/// Give a SYN built by `build_syn` another sequence number (and timestamp value), IPv4 ID
/// and TTL, and recompute its checksums: the per-probe work, with no allocation.
pub fn restamp(pkt: &mut [u8], seq: u32, ip_id: u16, ttl: u8) {
    let v6 = pkt.first().is_some_and(|b| b >> 4 == 6);
    let ip_len = if v6 { 40 } else { 20 };
    if pkt.len() < ip_len + TCP_LEN {
        return;
    }
    let (ip_bytes, tcp_bytes) = pkt.split_at_mut(ip_len);
    let Some(mut tcp) = MutableTcpPacket::new(tcp_bytes) else {
        return;
    };
    tcp.set_sequence(seq);
    // The timestamp option's value (bytes 4..8 of the option at offset 8 of the options).
    tcp.set_checksum(0);
    let opts = 20 + 4 + 2 + 2;
    tcp.packet_mut()[opts..opts + 4].copy_from_slice(&seq.to_be_bytes());
    if v6 {
        let Some(mut ip) = MutableIpv6Packet::new(ip_bytes) else {
            return;
        };
        ip.set_hop_limit(ttl);
        let (s, d) = (ip.get_source(), ip.get_destination());
        let sum = tcp::ipv6_checksum(&tcp.to_immutable(), &s, &d);
        tcp.set_checksum(sum);
    } else {
        let Some(mut ip) = MutableIpv4Packet::new(ip_bytes) else {
            return;
        };
        ip.set_identification(ip_id);
        ip.set_ttl(ttl);
        ip.set_checksum(0);
        let sum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(sum);
        let (s, d) = (ip.get_source(), ip.get_destination());
        let sum = tcp::ipv4_checksum(&tcp.to_immutable(), &s, &d);
        tcp.set_checksum(sum);
    }
}

/// What an answer says about the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// SYN-ACK: the port is open.
    SynAck,
    /// RST: closed.
    Rst,
    /// A pure ACK (no SYN, no RST), acknowledging an earlier probe's SYN: the target still
    /// held that probe's half-open connection when a later SYN of the flow met it, and
    /// answered the later SYN with this ACK. The port is open.
    Ack,
}

impl AnswerKind {
    /// Its name in JSON (`"answer"`).
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::SynAck => "syn-ack",
            AnswerKind::Rst => "rst",
            AnswerKind::Ack => "ack",
        }
    }
}

/// A packet the packet socket showed, as far as SYN probing cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A SYN leaving this host (ours, when its 4-tuple and sequence number are a probe's).
    Syn {
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
    },
    /// A SYN-ACK, an RST with ACK, or a pure ACK arriving.
    Answer {
        from: SocketAddr,
        to: SocketAddr,
        ack: u32,
        kind: AnswerKind,
    },
    /// An ICMP or ICMPv6 error arriving.
    Icmp(IcmpError),
}

/// Read one packet (from its IP header on; possibly cut at the snap length) as the packet
/// socket gave it. None: nothing a SYN probe looks at (or malformed).
pub fn classify(pkt: &[u8], outgoing: bool) -> Option<Seen> {
    match pkt.first()? >> 4 {
        4 if pkt.get(9) == Some(&1) => {
            return (!outgoing)
                .then(|| parse_icmpv4_packet(pkt).ok().flatten().map(Seen::Icmp))
                .flatten();
        }
        6 if !outgoing => {
            let (ip, _) = LaxIpv6Slice::from_slice(pkt).ok()?;
            let payload = ip.payload();
            if payload.ip_number == etherparse::IpNumber::IPV6_ICMP {
                let from = ip.header().source_addr();
                return parse_icmpv6_message(payload.payload, from)
                    .ok()
                    .flatten()
                    .map(Seen::Icmp);
            }
        }
        4 | 6 => {}
        _ => return None,
    }
    let p = LaxSlicedPacket::from_ip(pkt).ok()?;
    let (src, dst) = match p.net? {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        return None;
    };
    let src = SocketAddr::new(src, t.source_port());
    let dst = SocketAddr::new(dst, t.destination_port());
    match (outgoing, t.syn(), t.ack(), t.rst()) {
        (true, true, false, false) => Some(Seen::Syn {
            src,
            dst,
            seq: t.sequence_number(),
        }),
        (false, true, true, false) => Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.acknowledgment_number(),
            kind: AnswerKind::SynAck,
        }),
        (false, false, true, true) => Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.acknowledgment_number(),
            kind: AnswerKind::Rst,
        }),
        (false, false, true, false) if !t.fin() => Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.acknowledgment_number(),
            kind: AnswerKind::Ack,
        }),
        _ => None,
    }
}

/// A probe in flight.
#[derive(Clone, Debug)]
struct Flight {
    spec: ProbeSpec,
    /// Our address and port of its flow.
    src: SocketAddr,
    /// When `send` sent it, and the same on the wall clock (for the record).
    sent: Instant,
    sent_wall: std::time::SystemTime,
    /// When the packet socket saw it leave (kernel clock, since the Unix epoch).
    left: Option<std::time::Duration>,
    deadline: Instant,
    /// Its place in sending order (the matcher's count of probes inserted).
    order: u64,
}

/// A probe is known by its source port and sequence number.
type Key = (u16, u32);

impl Flight {
    /// The probe's verdict: when it left, from which port, with which sequence number.
    fn result(&self, key: Key, status: Status) -> PingResult {
        let mut r = PingResult::of(&self.spec, status);
        r.sent_at = self.sent_wall;
        r.local_port = Some(self.src.port());
        r.tcp_seq = Some(key.1);
        r
    }

    /// The verdict of a probe answered by `kind` at kernel time `at` (`now` on our clock),
    /// timed from its own departure.
    fn answered(
        &self,
        key: Key,
        kind: AnswerKind,
        at: Option<Duration>,
        now: Instant,
    ) -> PingResult {
        let status = match kind {
            AnswerKind::SynAck | AnswerKind::Ack => Status::Reply,
            AnswerKind::Rst => Status::Refused,
        };
        let mut r = self.result(key, status);
        let user = now.saturating_duration_since(self.sent);
        let (time, clock) = match (self.left, at) {
            (Some(a), Some(b)) if b >= a => (b - a, Clock::Wire),
            _ => (user, Clock::User),
        };
        r.connect = Some(time);
        r.connect_clock = Some(clock);
        r.connect_user = Some(user);
        r.answer = Some(kind);
        r
    }
}

/// The probes in flight and the matching of what the packet socket sees to them. Pure
/// bookkeeping: no sockets, no clock reads.
#[derive(Debug, Default)]
pub struct Matcher {
    flights: HashMap<Key, Flight>,
    /// Deadlines in sending order (a constant timeout keeps them sorted); entries of probes
    /// that ended are skipped when met.
    deadlines: VecDeque<(Instant, Key)>,
    /// Probes in flight per target and per port.
    per_target: HashMap<SocketAddr, usize>,
    per_port: HashMap<u16, usize>,
    /// Recently ended probes, oldest first, and the same as a map to their target and place
    /// in sending order.
    ended: VecDeque<Key>,
    ended_set: HashMap<Key, (SocketAddr, u64)>,
    /// Probes inserted so far.
    inserted: u64,
    /// Whether a pure ACK acknowledging an earlier probe's SYN answers a later probe of its
    /// flow (see [`Matcher::with_ack_answers`]).
    ack_answers: bool,
    keep_unmatched: bool,
    unmatched_log: Vec<(IcmpError, Unmatched)>,
    tally: IcmpTally,
}

impl Matcher {
    pub fn new(keep_unmatched: bool) -> Self {
        Matcher {
            keep_unmatched,
            ..Self::default()
        }
    }

    /// Take a pure ACK from a target, acknowledging an earlier probe's SYN (ack = its
    /// seq + 1), as the answer to the oldest later probe of that flow in flight and sent
    /// before the ACK arrived: the later SYN met the half-open connection the target still
    /// held for the earlier one, and Linux answers such an out-of-window SYN with an ACK
    /// (`tcp_check_req`), not with SYN-ACK. The port is open. For probes sent to reach the
    /// target itself (ping, many targets), not for trace, whose probes of one flow have
    /// different TTLs: which of them reached the target would be a guess.
    pub fn with_ack_answers(mut self, on: bool) -> Self {
        self.ack_answers = on;
        self
    }

    /// A probe left (`sent`), from `src`, with sequence number `seq`.
    pub fn insert(
        &mut self,
        spec: ProbeSpec,
        src: SocketAddr,
        seq: u32,
        sent: Instant,
        timeout: Duration,
    ) {
        let key = (src.port(), seq);
        let deadline = sent + timeout;
        self.inserted += 1;
        self.deadlines.push_back((deadline, key));
        *self.per_target.entry(spec.target).or_default() += 1;
        *self.per_port.entry(src.port()).or_default() += 1;
        self.flights.insert(
            key,
            Flight {
                spec,
                src,
                sent,
                sent_wall: std::time::SystemTime::now(),
                left: None,
                deadline,
                order: self.inserted,
            },
        );
    }

    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    pub fn in_flight_to(&self, target: &SocketAddr) -> usize {
        self.per_target.get(target).copied().unwrap_or(0)
    }

    /// Whether the probe from `port` is still in flight (its port is busy).
    pub fn port_busy(&self, port: u16) -> bool {
        self.per_port.contains_key(&port)
    }

    /// The earliest deadline of a probe in flight.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(at, key)) = self.deadlines.front() {
            match self.flights.get(&key) {
                Some(f) if f.deadline == at => return Some(at),
                _ => {
                    self.deadlines.pop_front();
                }
            }
        }
        None
    }

    fn end(&mut self, key: Key) -> Option<Flight> {
        let f = self.flights.remove(&key)?;
        fn less<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: K) {
            if let Some(n) = m.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&k);
                }
            }
        }
        less(&mut self.per_target, f.spec.target);
        less(&mut self.per_port, key.0);
        if self.ended.len() == ENDED_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.ended_set.remove(&old);
            }
        }
        self.ended.push_back(key);
        self.ended_set.insert(key, (f.spec.target, f.order));
        Some(f)
    }

    /// Conclude the probes whose deadline passed at `now` as timeouts.
    pub fn expire(&mut self, now: Instant, done: &mut Vec<PingResult>) {
        while let Some(at) = self.next_deadline() {
            if at > now {
                break;
            }
            let (_, key) = self.deadlines.pop_front().expect("a front deadline");
            if let Some(f) = self.end(key) {
                done.push(f.result(key, Status::Timeout));
            }
        }
    }

    /// Conclude every probe in flight as interrupted.
    pub fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        let mut keys: Vec<(Instant, Key)> =
            self.flights.iter().map(|(k, f)| (f.sent, *k)).collect();
        keys.sort();
        for (_, key) in keys {
            if let Some(f) = self.end(key) {
                done.push(f.result(key, Status::Interrupted));
            }
        }
        self.deadlines.clear();
    }

    /// Take what the packet socket saw at kernel time `at` (`now` on our clock): our SYN's
    /// departure time is noted; an answer or ICMP error concludes its probe.
    pub fn on_seen(
        &mut self,
        seen: Seen,
        at: Option<Duration>,
        now: Instant,
    ) -> Option<PingResult> {
        match seen {
            Seen::Syn { src, dst, seq } => {
                if let Some(f) = self.flights.get_mut(&(src.port(), seq)) {
                    if f.src == src && f.spec.target == dst && f.left.is_none() {
                        f.left = at;
                    }
                }
                None
            }
            Seen::Answer {
                from,
                to,
                ack,
                kind,
            } => {
                let key = (to.port(), ack.wrapping_sub(1));
                if kind == AnswerKind::Ack {
                    return self.on_ack(from, to, key, at, now);
                }
                let f = self.flights.get(&key)?;
                if f.spec.target != from || f.src.ip() != to.ip() {
                    return None;
                }
                let f = self.end(key)?;
                Some(f.answered(key, kind, at, now))
            }
            Seen::Icmp(err) => self.on_icmp(err, at, now),
        }
    }

    /// A pure ACK from `from` to `to` acknowledging the SYN of probe `earlier`: see
    /// [`Matcher::with_ack_answers`].
    fn on_ack(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        earlier: Key,
        at: Option<Duration>,
        now: Instant,
    ) -> Option<PingResult> {
        if !self.ack_answers {
            return None;
        }
        // The probe whose half-open connection the target held: in flight or recently
        // ended, of this flow.
        let since = match self.flights.get(&earlier) {
            Some(f) if f.spec.target == from && f.src.ip() == to.ip() => f.order,
            Some(_) => return None,
            None => match self.ended_set.get(&earlier) {
                Some(&(target, order)) if target == from => order,
                _ => return None,
            },
        };
        // The oldest later probe of the flow still in flight that had left when the ACK
        // arrived.
        let key = self
            .flights
            .iter()
            .filter(|(k, f)| {
                k.0 == earlier.0
                    && f.order > since
                    && f.spec.target == from
                    && f.src.ip() == to.ip()
                    && match (f.left, at) {
                        (Some(left), Some(at)) => left <= at,
                        _ => f.sent <= now,
                    }
            })
            .min_by_key(|(_, f)| f.order)
            .map(|(k, _)| *k)?;
        let f = self.end(key)?;
        Some(f.answered(key, AnswerKind::Ack, at, now))
    }

    fn on_icmp(
        &mut self,
        err: IcmpError,
        at: Option<Duration>,
        now: Instant,
    ) -> Option<PingResult> {
        let why = match err.quoted {
            None => Unmatched::NotTcp,
            Some(q) => match q.seq.map(|seq| (q.src.port(), seq)) {
                Some(key) if self.flights.contains_key(&key) => {
                    let f = &self.flights[&key];
                    if f.spec.target != q.dst {
                        Unmatched::OtherDestination
                    } else if f.src.ip() != q.src.ip() {
                        Unmatched::OtherSource
                    } else {
                        let f = self.end(key)?;
                        let after = match (f.left, at) {
                            (Some(a), Some(b)) if b >= a => b - a,
                            _ => now.saturating_duration_since(f.sent),
                        };
                        let r = f.result(
                            key,
                            Status::Icmp(IcmpReport {
                                icmp_type: err.icmp_type,
                                code: err.code,
                                v6: err.v6,
                                info: err.info,
                                from: err.from,
                                after,
                                phase: Phase::Connect,
                                source: Source::Raw,
                                extensions: err.extensions.clone(),
                            }),
                        );
                        return Some(r);
                    }
                }
                Some(key) if self.ended_set.contains_key(&key) => Unmatched::Late,
                None => Unmatched::NoSequence,
                Some(_) if self.port_busy(q.src.port()) => Unmatched::OtherSequence,
                Some(_) => Unmatched::NoSuchPing,
            },
        };
        if why == Unmatched::Late {
            self.tally.late += 1;
        } else {
            self.tally.unmatched += 1;
        }
        if self.keep_unmatched && self.unmatched_log.len() < UNMATCHED_KEPT {
            self.unmatched_log.push((err, why));
        }
        None
    }

    pub fn tally(&self) -> IcmpTally {
        self.tally
    }

    pub fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        std::mem::take(&mut self.unmatched_log)
    }
}

/// How the probes of a target are spread over source ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// One source port (a constant 5-tuple) for every probe of a target.
    Constant,
    /// The next port of a reserved pool for every probe.
    PerProbe,
}

/// The privileged part of a SYN prober: open it before dropping privileges.
pub struct SynSockets {
    send4: Option<Socket>,
    send6: Option<Socket>,
    tap: PacketSocket,
    /// The target port the filter passes (None: any).
    port: Option<u16>,
}

impl SynSockets {
    /// Raw sockets to send hand-built IPv4 and/or IPv6 packets, and a packet socket for the
    /// answers (SYN/RST segments to or from `port` when given, ICMP errors). Needs
    /// CAP_NET_RAW.
    pub fn open(v4: bool, v6: bool, port: Option<u16>) -> io::Result<SynSockets> {
        // IPPROTO_RAW: we give the IP header (IP_HDRINCL / IPV6_HDRINCL implied).
        let raw = |domain| -> io::Result<Socket> {
            let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let send4 = v4.then(|| raw(Domain::IPV4)).transpose()?;
        let send6 = v6.then(|| raw(Domain::IPV6)).transpose()?;
        let tap = PacketSocket::open(&answers_filter(port, &[]))?;
        Ok(SynSockets {
            send4,
            send6,
            tap,
            port,
        })
    }
}

/// Probes a target (or several) with hand-built SYNs.
pub struct SynProber {
    send4: Option<Socket>,
    send6: Option<Socket>,
    tap: PacketSocket,
    /// Our source address toward each target address (the route's), looked up once.
    sources: HashMap<IpAddr, IpAddr>,
    flow: Flow,
    /// Reserved source ports, and the bound sockets that hold them.
    ports: Vec<(u16, Socket)>,
    next_port: usize,
    matcher: Matcher,
    timeout: Duration,
    /// First sequence number of the run (random): another run's probes are not ours.
    seq_base: u32,
    /// The SYN last built, and the flow it was built for (`restamp` reuses it).
    pkt: [u8; V6_LEN],
    built: Option<(u16, SocketAddr, usize)>,
    /// Verdicts found while sending (a send that failed).
    early: Vec<PingResult>,
    buf: Box<[u8; SNAP as usize]>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Back-to-back probing (-i 0): look for answers without sleeping for a moment first.
    spin: bool,
    /// Most probes a constant flow carries to one target at once (see `with_interval`).
    overlap: usize,
    /// Packets the packet socket's queue dropped, so far.
    drops: u64,
}

/// Most probes a constant flow carries to one target at once.
pub const MAX_OVERLAP: usize = 64;

/// How many probes a constant flow carries to one target at once when one starts every
/// `interval` and each waits `timeout`: see `SynProber::with_interval`.
fn overlap(timeout: Duration, interval: Duration) -> usize {
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

impl SynProber {
    /// A prober with the given sockets; reserves its source ports (on every local address
    /// of the families it sends): one per flow (`flows`, a probe picks its flow with
    /// `ProbeSpec::flow`) for `Flow::Constant`, a pool of `PER_PROBE_PORTS` for
    /// `Flow::PerProbe`. Each probe leaves from the address the route to its target gives.
    pub fn new(
        sockets: SynSockets,
        flow: Flow,
        flows: usize,
        timeout: Duration,
        verbose: bool,
        waker: Arc<Waker>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<SynProber> {
        let n = match flow {
            Flow::Constant => flows.max(1),
            Flow::PerProbe => PER_PROBE_PORTS,
        };
        let (v4, v6) = (sockets.send4.is_some(), sockets.send6.is_some());
        let ports = (0..n)
            .map(|_| reserve_port(v4, v6))
            .collect::<io::Result<Vec<_>>>()?;
        // Now that our ports are known, the filter passes only our segments: other runs'
        // traffic costs us nothing and cannot fill our queue.
        let ours: Vec<u16> = ports.iter().map(|p| p.0).collect();
        sockets
            .tap
            .set_filter(&answers_filter(sockets.port, &ours))?;
        Ok(SynProber {
            send4: sockets.send4,
            send6: sockets.send6,
            tap: sockets.tap,
            sources: HashMap::new(),
            flow,
            ports,
            next_port: 0,
            matcher: Matcher::new(verbose),
            timeout,
            seq_base: rand::random(),
            pkt: [0; V6_LEN],
            built: None,
            early: Vec::new(),
            buf: Box::new([0; SNAP as usize]),
            waker,
            stop,
            spin: false,
            overlap: 1,
            drops: 0,
        })
    }

    /// Probes start every `interval` (ping's -i): a constant flow carries to a target as
    /// many at once as start within the timeout (and one more, for the probe due as the
    /// oldest one's time runs out), at most `MAX_OVERLAP`; with 0 (back to back), one at a
    /// time, sent as soon as the previous one concluded. Either way a pure ACK for an
    /// earlier probe answers a later one ([`Matcher::with_ack_answers`]). Without this call
    /// (trace, whose probes of a flow differ in TTL), one probe at a time and no ACK rule.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.overlap = overlap(self.timeout, interval);
        self.matcher.ack_answers = true;
        self
    }

    /// Poll without sleeping for a moment before waiting (for -i 0).
    pub fn with_spin(mut self, on: bool) -> Self {
        self.spin = on;
        self
    }

    /// The reserved source ports.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.iter().map(|p| p.0).collect()
    }

    fn seq_of(&self, n: u64) -> u32 {
        self.seq_base
            .wrapping_add((n as u32).wrapping_mul(SEQ_STEP))
    }

    /// The port a probe on `flow` leaves from: the flow's, or the next free one of the pool.
    fn free_port(&self, flow: u16) -> Option<u16> {
        match self.flow {
            Flow::Constant => Some(self.ports[usize::from(flow) % self.ports.len()].0),
            Flow::PerProbe => (0..self.ports.len())
                .map(|i| self.ports[(self.next_port + i) % self.ports.len()].0)
                .find(|&p| !self.matcher.port_busy(p)),
        }
    }

    /// Read every waiting packet and take it into account.
    fn read_answers(&mut self, done: &mut Vec<PingResult>) {
        loop {
            let got = match self.tap.recv(&mut self.buf[..]) {
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let now = Instant::now();
            let pkt = &self.buf[..got.len];
            if let Some(seen) = classify(pkt, got.outgoing) {
                done.extend(self.matcher.on_seen(seen, got.at, now));
            }
        }
    }
}

/// Hold a source port for the run, on every local address of the families used: a TCP
/// socket bound to it (not listening, not connected), dual-stack for both families.
fn reserve_port(v4: bool, v6: bool) -> io::Result<(u16, Socket)> {
    let any: SocketAddr = if v6 {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let s = Socket::new(Domain::for_address(any), Type::STREAM, Some(Protocol::TCP))?;
    if v6 {
        s.set_only_v6(!v4)?;
    }
    s.bind(&any.into())?;
    let port = s
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| io::Error::other("bound socket has no port"))?;
    Ok((port, s))
}

impl Prober for SynProber {
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
            None => match net::source_address_for(spec.target) {
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
                match build_syn(&mut self.pkt, &fields) {
                    Ok(len) => {
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
        // Raw sockets take the destination without a port.
        let to = SocketAddr::new(spec.target.ip(), 0);
        let sock = if spec.target.is_ipv6() {
            self.send6.as_ref()
        } else {
            self.send4.as_ref()
        };
        let Some(sock) = sock else {
            let mut r = PingResult::of(
                &spec,
                Status::Error("no raw socket of this address family was opened".into()),
            );
            r.local_port = Some(port);
            self.early.push(r);
            return;
        };
        let sent = Instant::now();
        self.matcher.insert(spec, src, seq, sent, self.timeout);
        if let Err(e) = sock.send_to(&self.pkt[..len], &to.into()) {
            // No route, a local firewall: the verdict is known at once.
            let mut gone = Vec::new();
            self.matcher.interrupt_one((port, seq), &mut gone);
            for mut r in gone {
                r.status = Status::Error(format!("send the SYN: {}", net::describe_io(&e)));
                self.early.push(r);
            }
        }
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
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
            let r = net::poll(
                &[(self.tap.fd(), false), (self.waker.fd(), false)],
                Some(wait),
            )?;
            if r[1].read {
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
        done.append(&mut self.early);
        self.matcher.interrupt(done);
    }

    fn icmp_tally(&self) -> IcmpTally {
        self.matcher.tally()
    }

    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        self.matcher.drain_unmatched()
    }

    fn capture_drops(&mut self) -> u64 {
        self.drops += self.tap.drops();
        self.drops
    }
}

impl Matcher {
    /// End one probe now (its SYN could not be sent), as interrupted; the caller sets the
    /// verdict.
    fn interrupt_one(&mut self, key: Key, done: &mut Vec<PingResult>) {
        if let Some(f) = self.end(key) {
            done.push(f.result(key, Status::Interrupted));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TcpOptionElement};

    /// The captured packets of tests/fixtures/syn-captured.txt: (name, outgoing, bytes).
    fn fixtures() -> Vec<(String, bool, Vec<u8>)> {
        include_str!("../../tests/fixtures/syn-captured.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let hex = f[2];
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (f[0].to_string(), f[1] == "out", bytes)
            })
            .collect()
    }

    fn fixture(name: &str) -> (bool, Vec<u8>) {
        let (_, out, b) = fixtures()
            .into_iter()
            .find(|f| f.0 == name)
            .unwrap_or_else(|| panic!("no fixture {name}"));
        (out, b)
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// What etherparse reads back of a SYN we built.
    fn read_back(pkt: &[u8]) -> (SocketAddr, SocketAddr, u32, bool, Vec<TcpOptionElement>) {
        let p = SlicedPacket::from_ip(pkt).expect("a whole, valid packet");
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("not TCP")
        };
        let (src, dst, sum_ok) = match p.net.unwrap() {
            NetSlice::Ipv4(ip) => {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
                let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                (
                    IpAddr::V4(h.source.into()),
                    IpAddr::V4(h.destination.into()),
                    want == t.checksum(),
                )
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header().to_header();
                let want = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
                (
                    IpAddr::V6(h.source.into()),
                    IpAddr::V6(h.destination.into()),
                    want == t.checksum(),
                )
            }
        };
        assert!(
            t.syn() && !t.ack() && !t.rst() && !t.fin(),
            "flags: SYN only"
        );
        let opts = t.options_iterator().map(|o| o.unwrap()).collect();
        (
            SocketAddr::new(src, t.source_port()),
            SocketAddr::new(dst, t.destination_port()),
            t.sequence_number(),
            sum_ok,
            opts,
        )
    }

    #[test]
    fn what_pnet_builds_etherparse_reads_back_with_valid_checksums() {
        for (src, dst) in [
            ("10.0.0.1:40000", "10.0.0.2:443"),
            ("[fd00::1]:40000", "[fd00::2]:443"),
        ] {
            let f = SynFields {
                src: sa(src),
                dst: sa(dst),
                seq: 0xfeed_f00d,
                ip_id: 7,
                ttl: 3,
            };
            let mut buf = [0u8; 128];
            let n = build_syn(&mut buf, &f).unwrap();
            let (s, d, seq, sum_ok, opts) = read_back(&buf[..n]);
            assert_eq!((s, d, seq, sum_ok), (f.src, f.dst, f.seq, true));
            assert!(matches!(
                opts[0],
                TcpOptionElement::MaximumSegmentSize(1460 | 1440)
            ));
            assert_eq!(opts[1], TcpOptionElement::SelectiveAcknowledgementPermitted);
            assert_eq!(opts[2], TcpOptionElement::Timestamp(0xfeed_f00d, 0));
            assert_eq!(opts[4], TcpOptionElement::WindowScale(7));
            if f.src.is_ipv4() {
                assert_eq!(buf[8], 3, "TTL");
                assert_eq!(u16::from_be_bytes([buf[4], buf[5]]), 7, "IPv4 ID");
            } else {
                assert_eq!(buf[7], 3, "hop limit");
            }
            // The next probe of the flow: only the sequence number, ID and TTL change.
            restamp(&mut buf[..n], 0x0000_0001, 8, 64);
            let (s2, d2, seq2, sum_ok2, _) = read_back(&buf[..n]);
            assert_eq!((s2, d2, seq2, sum_ok2), (f.src, f.dst, 1, true));
        }
        let mixed = SynFields {
            src: sa("10.0.0.1:1"),
            dst: sa("[::1]:2"),
            seq: 0,
            ip_id: 0,
            ttl: 1,
        };
        assert_eq!(
            build_syn(&mut [0; 128], &mixed),
            Err(BuildError::MixedFamilies)
        );
        let v6 = SynFields {
            src: sa("[::1]:1"),
            dst: sa("[::1]:2"),
            ..mixed
        };
        assert_eq!(build_syn(&mut [0; 60], &v6), Err(BuildError::ShortBuffer));
    }

    #[test]
    fn our_built_syn_is_the_syn_that_was_captured() {
        // The captured SYN was built by this code; rebuilding it from its fields gives the
        // same bytes (so what we send is what the wire saw).
        let (_, cap) = fixture("v4_syn");
        let f = SynFields {
            src: sa("10.99.0.1:38515"),
            dst: sa("10.99.0.2:12001"),
            seq: 0x2356_f0e5,
            ip_id: 1,
            ttl: 64,
        };
        let mut buf = [0u8; 128];
        let n = build_syn(&mut buf, &f).unwrap();
        assert_eq!(&buf[..n], &cap[..]);
    }

    #[test]
    fn captured_packets_are_classified() {
        let c = |name: &str| {
            let (out, b) = fixture(name);
            classify(&b, out)
        };
        assert_eq!(
            c("v4_syn"),
            Some(Seen::Syn {
                src: sa("10.99.0.1:38515"),
                dst: sa("10.99.0.2:12001"),
                seq: 0x2356_f0e5
            })
        );
        assert_eq!(
            c("v4_synack"),
            Some(Seen::Answer {
                from: sa("10.99.0.2:12001"),
                to: sa("10.99.0.1:38515"),
                ack: 0x2356_f0e6,
                kind: AnswerKind::SynAck
            })
        );
        // Our kernel's RST to the SYN-ACK, leaving: nothing to match.
        assert_eq!(c("v4_our_rst"), None);
        assert_eq!(
            c("v4_closed_rst"),
            Some(Seen::Answer {
                from: sa("10.99.0.2:12999"),
                to: sa("10.99.0.1:49671"),
                ack: 0x77d4_bc95,
                kind: AnswerKind::Rst
            })
        );
        match c("v4_reject_icmp") {
            Some(Seen::Icmp(e)) => {
                assert_eq!((e.icmp_type, e.code), (3, 13));
                let q = e.quoted.unwrap();
                assert_eq!(q.src, sa("10.99.0.1:50337"));
                assert_eq!(q.seq, Some(0xb487_215b));
            }
            other => panic!("{other:?}"),
        }
        match c("v6_reject_icmp") {
            Some(Seen::Icmp(e)) => {
                assert_eq!((e.v6, e.icmp_type, e.code), (true, 1, 1));
                assert_eq!(e.from, "fd99::2".parse::<IpAddr>().unwrap());
                let q = e.quoted.unwrap();
                assert_eq!(q.src, sa("[fd99::1]:54641"));
                assert_eq!(q.seq, Some(0x0304_d556));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c("v6_synack"),
            Some(Seen::Answer {
                kind: AnswerKind::SynAck,
                ack: 0xa120_67ea,
                ..
            })
        ));
        assert!(matches!(
            c("v6_closed_rst"),
            Some(Seen::Answer {
                kind: AnswerKind::Rst,
                ack: 0xecc9_1a55,
                ..
            })
        ));
        // An answer seen leaving (loopback's other copy, or a server on this host) is not one.
        let (_, synack) = fixture("v4_synack");
        assert_eq!(classify(&synack, true), None);
    }

    #[test]
    fn truncated_and_garbage_packets_are_skipped() {
        for (name, out, b) in fixtures() {
            for n in 0..b.len() {
                // Any prefix: no panic; a prefix without the TCP flags is not an answer.
                let seen = classify(&b[..n], out);
                if n < 20 {
                    assert_eq!(seen, None, "{name} cut at {n}");
                }
            }
        }
        let mut x: u32 = 0x1234_5678;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = classify(&junk, false);
            let _ = classify(&junk, true);
        }
    }

    fn spec(seq: u64, target: &str) -> ProbeSpec {
        ProbeSpec {
            seq,
            target: sa(target),
            ttl: None,
            flow: 0,
        }
    }

    fn at(us: u64) -> Option<Duration> {
        Some(Duration::from_micros(1_700_000_000_000_000 + us))
    }

    fn seen(name: &str) -> Seen {
        let (out, b) = fixture(name);
        classify(&b, out).unwrap()
    }

    #[test]
    fn the_syn_ack_concludes_its_probe_with_the_wire_time_once() {
        let t0 = Instant::now();
        let mut m = Matcher::new(true);
        m.insert(
            spec(1, "10.99.0.2:12001"),
            sa("10.99.0.1:38515"),
            0x2356_f0e5,
            t0,
            Duration::from_secs(1),
        );
        assert_eq!(m.in_flight_to(&sa("10.99.0.2:12001")), 1);
        assert!(m.on_seen(seen("v4_syn"), at(0), t0).is_none());
        // A SYN-ACK for another probe's sequence number (the second probe's): not this one.
        assert!(m.on_seen(seen("v4_synack2"), at(10), t0).is_none());
        let r = m.on_seen(seen("v4_synack"), at(24), t0).unwrap();
        assert_eq!(r.status, Status::Reply);
        assert_eq!(r.seq, 1);
        assert_eq!(r.connect, Some(Duration::from_micros(24)));
        assert_eq!(r.connect_clock, Some(Clock::Wire));
        assert_eq!(r.local_port, Some(38515));
        // A duplicate SYN-ACK concludes nothing more.
        assert!(m.on_seen(seen("v4_synack"), at(30), t0).is_none());
        assert_eq!(m.in_flight(), 0);
        assert_eq!(m.tally(), IcmpTally::default());
    }

    #[test]
    fn a_verdict_is_stamped_with_the_time_its_probe_left() {
        let t0 = Instant::now();
        let mut m = Matcher::new(false);
        let before = std::time::SystemTime::now();
        m.insert(
            spec(1, "10.99.0.2:12001"),
            sa("10.99.0.1:38515"),
            0x2356_f0e5,
            t0,
            Duration::from_secs(1),
        );
        let after = std::time::SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        let r = m.on_seen(seen("v4_synack"), at(24), t0).unwrap();
        assert!(
            r.sent_at >= before && r.sent_at <= after,
            "stamped when answered"
        );
    }

    #[test]
    fn answers_to_another_port_or_from_another_host_are_not_ours() {
        let t0 = Instant::now();
        let mut m = Matcher::new(true);
        // Same sequence number, another source port: the SYN-ACK is for port 38515.
        m.insert(
            spec(1, "10.99.0.2:12001"),
            sa("10.99.0.1:38516"),
            0x2356_f0e5,
            t0,
            Duration::from_secs(1),
        );
        assert!(m.on_seen(seen("v4_synack"), at(24), t0).is_none());
        // The right port and sequence number, another target.
        let mut m = Matcher::new(true);
        m.insert(
            spec(1, "10.99.0.3:12001"),
            sa("10.99.0.1:38515"),
            0x2356_f0e5,
            t0,
            Duration::from_secs(1),
        );
        assert!(m.on_seen(seen("v4_synack"), at(24), t0).is_none());
        assert_eq!(m.in_flight(), 1);
    }

    #[test]
    fn rst_means_closed_and_icmp_needs_the_quoted_sequence_number() {
        let t0 = Instant::now();
        let mut m = Matcher::new(true);
        m.insert(
            spec(5, "10.99.0.2:12999"),
            sa("10.99.0.1:49671"),
            0x77d4_bc94,
            t0,
            Duration::from_secs(1),
        );
        let r = m.on_seen(seen("v4_closed_rst"), at(30), t0).unwrap();
        assert_eq!(r.status, Status::Refused);

        // Two probes on the flow the ICMP error is about; it quotes the first one's number.
        let mut m = Matcher::new(true);
        let src = sa("10.99.0.1:50337");
        m.insert(
            spec(2, "10.99.0.2:12007"),
            src,
            0xb487_215b_u32.wrapping_add(SEQ_STEP),
            t0,
            Duration::from_secs(1),
        );
        assert!(
            m.on_seen(seen("v4_reject_icmp"), at(100), t0).is_none(),
            "quotes another probe"
        );
        assert_eq!(m.tally().unmatched, 1);
        assert_eq!(m.drain_unmatched()[0].1, Unmatched::OtherSequence);
        m.insert(
            spec(1, "10.99.0.2:12007"),
            src,
            0xb487_215b,
            t0,
            Duration::from_secs(1),
        );
        m.on_seen(seen("v4_reject_syn"), at(0), t0);
        let r = m.on_seen(seen("v4_reject_icmp"), at(146), t0).unwrap();
        assert_eq!(r.seq, 1);
        match r.status {
            Status::Icmp(rep) => {
                assert_eq!((rep.icmp_type, rep.code), (3, 13));
                assert_eq!(rep.from, "10.99.0.2".parse::<IpAddr>().unwrap());
                assert_eq!(rep.after, Duration::from_micros(146));
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(m.in_flight(), 1, "the other probe is still waiting");
        // The same error again: its probe has ended.
        assert!(m.on_seen(seen("v4_reject_icmp"), at(200), t0).is_none());
        assert_eq!(m.tally().late, 1);
    }

    #[test]
    fn icmpv6_errors_are_matched_the_same_way() {
        let t0 = Instant::now();
        let mut m = Matcher::new(false);
        m.insert(
            spec(1, "[fd99::2]:12007"),
            sa("[fd99::1]:54641"),
            0x0304_d556,
            t0,
            Duration::from_secs(1),
        );
        m.on_seen(seen("v6_reject_syn"), at(0), t0);
        let r = m.on_seen(seen("v6_reject_icmp"), at(57), t0).unwrap();
        assert!(matches!(r.status, Status::Icmp(ref rep) if rep.v6 && rep.code == 1));
    }

    /// A captured IPv4 segment with other TCP flags (checksums are not checked by `classify`).
    fn with_flags(name: &str, flags: u8) -> Seen {
        let (out, mut b) = fixture(name);
        b[20 + 13] = flags;
        classify(&b, out).unwrap()
    }

    #[test]
    fn a_pure_ack_arriving_is_an_answer_of_its_own_kind() {
        // The target's ACK for probe 1's SYN (what Linux sends to a SYN that meets probe 1's
        // half-open connection): the SYN-ACK's ports and ack, flags ACK only.
        assert_eq!(
            with_flags("v4_synack", 0x10),
            Seen::Answer {
                from: sa("10.99.0.2:12001"),
                to: sa("10.99.0.1:38515"),
                ack: 0x2356_f0e6,
                kind: AnswerKind::Ack
            }
        );
        let (_, mut b) = fixture("v4_synack");
        b[33] = 0x11; // FIN-ACK: not an answer to a SYN
        assert_eq!(classify(&b, false), None);
        b[33] = 0x10;
        assert_eq!(classify(&b, true), None, "an ACK leaving");
        assert_eq!(AnswerKind::Ack.as_str(), "ack");
    }

    /// Three probes on one flow, 10 ms apart: (matcher, target, source, first seq).
    fn three_on_one_flow(
        t0: Instant,
        target: &str,
        src: &str,
        first: u32,
    ) -> (Matcher, SocketAddr, SocketAddr, [u32; 3]) {
        let mut m = Matcher::new(true).with_ack_answers(true);
        let (dst, src) = (sa(target), sa(src));
        let seqs = [0u32, 1, 2].map(|k| first.wrapping_add(k.wrapping_mul(SEQ_STEP)));
        for (k, seq) in seqs.iter().enumerate() {
            let sent = t0 + Duration::from_millis(10 * k as u64);
            m.insert(
                spec(k as u64 + 1, target),
                src,
                *seq,
                sent,
                Duration::from_secs(1),
            );
            m.on_seen(
                Seen::Syn {
                    src,
                    dst,
                    seq: *seq,
                },
                at(10_000 * k as u64),
                sent,
            );
        }
        assert_eq!(m.in_flight_to(&dst), 3);
        (m, dst, src, seqs)
    }

    #[test]
    fn several_in_flight_on_one_flow_syn_ack_to_the_first_ack_to_the_later_ones() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (mut m, _, _, seqs) =
            three_on_one_flow(t0, "10.99.0.2:12001", "10.99.0.1:38515", 0x2356_f0e5);
        // -i shorter than the round trip: probe 1's SYN-ACK comes after 2 and 3 left.
        let r = m
            .on_seen(seen("v4_synack"), at(25_000), t0 + ms(25))
            .unwrap();
        assert_eq!(
            (r.seq, &r.status, r.answer),
            (1, &Status::Reply, Some(AnswerKind::SynAck))
        );
        assert_eq!(r.connect, Some(ms(25)));
        // The target still held probe 1's half-open connection when probe 2's SYN came:
        // its ACK of probe 1's SYN is probe 2's answer, timed from probe 2's departure.
        let dup = with_flags("v4_synack", 0x10);
        let r = m.on_seen(dup.clone(), at(36_000), t0 + ms(36)).unwrap();
        assert_eq!(
            (r.seq, &r.status, r.answer),
            (2, &Status::Reply, Some(AnswerKind::Ack))
        );
        assert_eq!(r.connect, Some(ms(26)));
        assert_eq!(r.connect_clock, Some(Clock::Wire));
        assert_eq!((r.local_port, r.tcp_seq), (Some(38515), Some(seqs[1])));
        // Probe 3's SYN met it too.
        let r = m.on_seen(dup.clone(), at(47_000), t0 + ms(47)).unwrap();
        assert_eq!((r.seq, r.answer), (3, Some(AnswerKind::Ack)));
        assert_eq!(r.connect, Some(ms(27)));
        // A duplicate ACK, a late SYN-ACK: nothing left for them.
        assert!(m.on_seen(dup, at(50_000), t0 + ms(50)).is_none());
        assert!(m
            .on_seen(seen("v4_synack2"), at(51_000), t0 + ms(51))
            .is_none());
        assert_eq!(m.in_flight(), 0);
        assert_eq!(m.tally(), IcmpTally::default());
    }

    #[test]
    fn an_ack_answers_only_a_later_probe_of_its_flow_that_had_left() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let dup = with_flags("v4_synack", 0x10);
        // Probe 2 leaves after the ACK arrived: not its answer. Nor is it probe 1's.
        let mut m = Matcher::new(false).with_ack_answers(true);
        let (src, dst) = (sa("10.99.0.1:38515"), sa("10.99.0.2:12001"));
        let s1 = 0x2356_f0e5_u32;
        m.insert(spec(1, "10.99.0.2:12001"), src, s1, t0, ms(1000));
        m.insert(
            spec(2, "10.99.0.2:12001"),
            src,
            s1.wrapping_add(SEQ_STEP),
            t0,
            ms(1000),
        );
        m.on_seen(Seen::Syn { src, dst, seq: s1 }, at(0), t0);
        let seq2 = s1.wrapping_add(SEQ_STEP);
        m.on_seen(
            Seen::Syn {
                src,
                dst,
                seq: seq2,
            },
            at(50_000),
            t0,
        );
        assert!(m.on_seen(dup.clone(), at(40_000), t0 + ms(40)).is_none());
        assert_eq!(m.in_flight(), 2);
        // An ACK of the later probe's SYN does not answer the earlier one.
        let ack2 = with_flags("v4_synack2", 0x10);
        assert!(m.on_seen(ack2, at(60_000), t0 + ms(60)).is_none());
        // An ACK of a SYN we never sent, or from another host: not ours.
        let Seen::Answer { from, to, .. } = dup.clone() else {
            unreachable!()
        };
        for (from, ack) in [(from, 12345), (sa("10.99.0.3:12001"), s1.wrapping_add(1))] {
            let kind = AnswerKind::Ack;
            assert!(m
                .on_seen(
                    Seen::Answer {
                        from,
                        to,
                        ack,
                        kind
                    },
                    at(70_000),
                    t0
                )
                .is_none());
        }
        assert_eq!(m.in_flight(), 2);
        // trace's matcher (probes of a flow with different TTLs) takes no ACK as an answer.
        let (mut m, ..) = three_on_one_flow(t0, "10.99.0.2:12001", "10.99.0.1:38515", s1);
        m.ack_answers = false;
        assert!(m.on_seen(seen("v4_synack"), at(25_000), t0).is_some());
        assert!(m.on_seen(dup, at(36_000), t0).is_none());
        assert_eq!(m.in_flight(), 2);
    }

    #[test]
    fn rst_and_icmp_errors_find_their_own_probe_among_several_on_the_flow() {
        let t0 = Instant::now();
        // Closed port: the RST acknowledges the second probe's SYN.
        let (mut m, dst, ..) = three_on_one_flow(
            t0,
            "10.99.0.2:12999",
            "10.99.0.1:49671",
            0x77d4_bc94_u32.wrapping_sub(SEQ_STEP),
        );
        let r = m.on_seen(seen("v4_closed_rst"), at(30_000), t0).unwrap();
        assert_eq!(
            (r.seq, &r.status, r.answer),
            (2, &Status::Refused, Some(AnswerKind::Rst))
        );
        assert_eq!(m.in_flight_to(&dst), 2);
        // The ICMP error quotes the second probe's sequence number.
        let (mut m, dst, ..) = three_on_one_flow(
            t0,
            "10.99.0.2:12007",
            "10.99.0.1:50337",
            0xb487_215b_u32.wrapping_sub(SEQ_STEP),
        );
        let r = m.on_seen(seen("v4_reject_icmp"), at(30_000), t0).unwrap();
        assert_eq!(r.seq, 2);
        assert!(matches!(r.status, Status::Icmp(ref rep) if rep.code == 13));
        assert_eq!(r.answer, None);
        assert_eq!(m.in_flight_to(&dst), 2);
        // Again: late.
        assert!(m.on_seen(seen("v4_reject_icmp"), at(40_000), t0).is_none());
        assert_eq!(m.tally().late, 1);
        // Ctrl-C: the two still in flight, in sending order.
        let mut done = Vec::new();
        m.interrupt(&mut done);
        let seqs: Vec<u64> = done.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert!(done.iter().all(|r| r.status == Status::Interrupted));
    }

    #[test]
    fn a_constant_flow_carries_the_probes_that_start_within_the_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(overlap(ms(500), ms(100)), 6);
        assert_eq!(overlap(ms(500), ms(300)), 3);
        assert_eq!(overlap(ms(1000), ms(1000)), 2);
        assert_eq!(overlap(ms(200), ms(1000)), 2);
        assert_eq!(overlap(Duration::from_secs(60), ms(1)), MAX_OVERLAP);
        // Back to back: one at a time.
        assert_eq!(overlap(ms(500), Duration::ZERO), 1);
    }

    #[test]
    fn deadlines_conclude_as_timeouts_in_order_and_interrupt_ends_the_rest() {
        let t0 = Instant::now();
        let mut m = Matcher::new(false);
        let w = Duration::from_millis(100);
        m.insert(spec(1, "10.0.0.2:80"), sa("10.0.0.1:1000"), 10, t0, w);
        m.insert(
            spec(2, "10.0.0.2:80"),
            sa("10.0.0.1:1001"),
            20,
            t0 + w / 2,
            w,
        );
        m.insert(spec(3, "10.0.0.3:80"), sa("10.0.0.1:1002"), 30, t0 + w, w);
        assert_eq!(m.next_deadline(), Some(t0 + w));
        let mut done = Vec::new();
        m.expire(t0 + w * 3 / 2, &mut done);
        let seqs: Vec<u64> = done.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert!(done.iter().all(|r| r.status == Status::Timeout));
        assert_eq!(m.in_flight_to(&sa("10.0.0.2:80")), 0);
        done.clear();
        m.interrupt(&mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, Status::Interrupted);
        assert_eq!(m.next_deadline(), None);
    }
}
