//! Matching: the probes in flight, and what the packet socket saw ([`Seen`]) matched to
//! them. Pure bookkeeping (no sockets, no clock reads), tested on captured bytes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::classify::{AnswerKind, Seen};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::icmp::unmatched::{Ledger, WhenFull};
use crate::icmp::{IcmpReport, Phase};
use crate::probe::{Clock, IcmpTally, PingResult, ProbeSpec, Status};

/// Unattributed ICMP errors kept for -v.
const UNMATCHED_KEPT: usize = 256;
/// Recently ended probes remembered, to tell late answers from foreign ones.
const ENDED_KEPT: usize = 1024;

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
    /// Bytes of data the SYN carried (trace's `--size`): a reset acknowledges them too.
    data: u32,
}

/// A probe is known by its source port and sequence number.
pub(super) type Key = (u16, u32);

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
#[derive(Debug)]
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
    pub(super) ack_answers: bool,
    /// ICMP errors attributed to no probe: counted, the first ones kept for -v when asked.
    unmatched: Ledger,
    /// Probes whose SYN carried data, by the key a reset acknowledging all of it names:
    /// (port, seq + data) to the probe's own key.
    by_data_end: HashMap<Key, Key>,
}

impl Matcher {
    pub fn new(keep_unmatched: bool) -> Self {
        Matcher {
            flights: HashMap::new(),
            deadlines: VecDeque::new(),
            per_target: HashMap::new(),
            per_port: HashMap::new(),
            ended: VecDeque::new(),
            ended_set: HashMap::new(),
            inserted: 0,
            ack_answers: false,
            unmatched: Ledger::new(keep_unmatched, UNMATCHED_KEPT, WhenFull::KeepFirst),
            by_data_end: HashMap::new(),
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
                data: 0,
            },
        );
    }

    /// The SYN of probe `key` carried `data` bytes (trace's `--size`). A reset from a
    /// closed port acknowledges them with the SYN (ack = seq + 1 + data, RFC 9293 3.10.7.1);
    /// a SYN-ACK acknowledges the SYN alone.
    pub fn carried(&mut self, key: Key, data: u32) {
        if data == 0 {
            return;
        }
        if let Some(f) = self.flights.get_mut(&key) {
            f.data = data;
            self.by_data_end
                .insert((key.0, key.1.wrapping_add(data)), key);
        }
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
        if f.data > 0 {
            self.by_data_end
                .remove(&(key.0, key.1.wrapping_add(f.data)));
        }
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
                let mut key = (to.port(), ack.wrapping_sub(1));
                if kind == AnswerKind::Ack {
                    return self.on_ack(from, to, key, at, now);
                }
                if kind == AnswerKind::Rst && !self.flights.contains_key(&key) {
                    key = *self.by_data_end.get(&key)?;
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
            Some(q) => match q.seq.map(|seq| self.quoted_key((q.src.port(), seq), &err)) {
                Some(key) if self.flights.contains_key(&key) => {
                    let f = &self.flights[&key];
                    if f.spec.target != q.dst {
                        Unmatched::OtherDestination
                    } else if f.src.ip() != q.src.ip() && !nat_of_ours(&err, key) {
                        Unmatched::OtherSource
                    } else {
                        let f = self.end(key)?;
                        let after = match (f.left, at) {
                            (Some(a), Some(b)) if b >= a => b - a,
                            _ => now.saturating_duration_since(f.sent),
                        };
                        let report = IcmpReport::of(&err, after, Phase::Connect);
                        let mut r = f.result(key, Status::Icmp(report));
                        r.seen = err.quote;
                        return Some(r);
                    }
                }
                Some(key) if self.ended_set.contains_key(&key) => Unmatched::Late,
                None => Unmatched::NoSequence,
                Some(_) if self.port_busy(q.src.port()) => Unmatched::OtherSequence,
                Some(_) => Unmatched::NoSuchPing,
            },
        };
        self.unmatched.record(&err, why);
        None
    }

    /// The probe an error quotes: by port and sequence number, or, when a middlebox
    /// rewrote the sequence number (a firewall randomising ISNs), by the timestamp value
    /// (`build_syn` sends the sequence number there too) of a whole quote.
    fn quoted_key(&self, key: Key, err: &IcmpError) -> Key {
        if self.flights.contains_key(&key) {
            return key;
        }
        match err.quote.and_then(|h| h.options).and_then(|o| o.timestamps) {
            Some((value, _)) if self.flights.contains_key(&(key.0, value)) => (key.0, value),
            _ => key,
        }
    }

    pub fn tally(&self) -> IcmpTally {
        self.unmatched.tally()
    }

    pub fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        self.unmatched.drain()
    }
}

/// A quote of our SYN whose source address a NAT rewrote: besides the port and sequence
/// number (`key`), its timestamp value is ours (`build_syn` sends the sequence number there).
fn nat_of_ours(err: &IcmpError, key: Key) -> bool {
    err.quote
        .and_then(|h| h.options)
        .and_then(|o| o.timestamps)
        .is_some_and(|(value, _)| value == key.1)
}

impl Matcher {
    /// End one probe now (its SYN could not be sent), as interrupted; the caller sets the
    /// verdict.
    pub(super) fn interrupt_one(&mut self, key: Key, done: &mut Vec<PingResult>) {
        if let Some(f) = self.end(key) {
            done.push(f.result(key, Status::Interrupted));
        }
    }
}
