//! The probing strategy of `trace`: which probe leaves when, and which answers count. Pure
//! bookkeeping over [`ProbeSpec`]s going out and [`PingResult`]s coming back, so that it is
//! tested with a simulated network and no sockets (trippy's strategy/state split: this is the
//! strategy; `state` folds what it concludes into per-hop statistics).
//!
//! A cycle sends, at once, `queries` probes on each of `flows` flows for every hop from 1 to
//! the top (`max_hops`, or the destination hop a previous cycle found): all hops in flight
//! together, each concluded by its answer or at the prober's timeout. The order is hop by
//! hop, then query, then flow: a router that rate-limits its ICMP answers the first probes
//! it gets, so the lowest hops and one probe of every flow come first.
//!
//! The destination hop `L` of a flow is the lowest hop whose probe reached the target (SYN-ACK
//! or RST) or was refused on the way (destination unreachable). Probes with a TTL above `L`
//! are irrelevant: they are never waited for nor reported, as traceroute shows no hop beyond
//! the destination.
//!
//! Constant flows collide at the target: all probes of a flow share one 4-tuple, and while
//! the target holds the half-open connection of the SYN it answered (until our kernel's RST
//! reaches it) it drops the others (their sequence numbers are out of its window). So once a
//! flow's SYN-ACK arrives, the other queries of the destination hop on that flow that have
//! no answer are probed again, one at a time (each after the previous one's verdict), and a
//! query takes the first answer of its attempts. Later cycles send the destination hop's
//! first query with the burst and the others one at a time after it. A closed port (RST)
//! holds no state, and unreachables come from routers: neither needs this.
//!
//! A prober that sends a flow's probes one at a time (connect() probes: the kernel keeps one
//! connection per 4-tuple) gets them that way from the engine too ([`Plan::gap`]): in order,
//! hop by hop, the next when the previous is concluded. A silent hop then costs the timeout
//! once per query, in turn, so a flow unanswered at `gap` hops in a row is given up for the
//! cycle: its hops above are not probed (the multipath search does the same, `mda::GAP`),
//! and nothing above its destination hop is sent at all.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use crate::icmp::IcmpReport;
use crate::probe::{PingResult, ProbeSpec, Status};

/// What to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub target: SocketAddr,
    pub max_hops: u8,
    /// Queries per hop and flow.
    pub queries: u16,
    pub flows: u16,
    /// All probes of a flow share the 4-tuple (SYN probes): the target answers one at a
    /// time. False for probes with a socket (and port) each.
    pub constant_flows: bool,
    /// The prober sends a flow's probes one at a time (see the module's documentation):
    /// hand them over so, and give a flow up after this many silent hops in a row. None: all
    /// at once.
    pub gap: Option<u8>,
}

impl Plan {
    /// Probes in the first cycle (every hop, query and flow).
    pub fn probes_per_cycle(&self) -> u64 {
        u64::from(self.max_hops) * u64::from(self.queries) * u64::from(self.flows)
    }
}

/// What one probe's verdict says about the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// ICMP time exceeded: the router at this hop.
    TimeExceeded(IcmpReport),
    /// The target answered: SYN-ACK (open) or RST (closed).
    Reached { open: bool },
    /// Another ICMP error (destination unreachable, prohibited, ...): the path ends there.
    Unreachable(IcmpReport),
    /// Nothing within the timeout.
    Timeout,
    /// The probe could not be sent, or failed locally.
    Error(String),
}

impl Answer {
    /// The answer in a verdict; None for a probe interrupted by a signal (not counted).
    pub fn of(status: &Status) -> Option<Answer> {
        Some(match status {
            Status::Reply | Status::Lost => Answer::Reached { open: true },
            Status::Refused => Answer::Reached { open: false },
            Status::Timeout => Answer::Timeout,
            Status::Icmp(rep) if is_time_exceeded(rep) => Answer::TimeExceeded(rep.clone()),
            Status::Icmp(rep) => Answer::Unreachable(rep.clone()),
            Status::Error(e) => Answer::Error(e.clone()),
            Status::Interrupted => return None,
        })
    }

    /// Whether something answered (a router or the target).
    pub fn answered(&self) -> bool {
        matches!(
            self,
            Answer::TimeExceeded(_) | Answer::Reached { .. } | Answer::Unreachable(_)
        )
    }

    pub fn icmp(&self) -> Option<&IcmpReport> {
        match self {
            Answer::TimeExceeded(r) | Answer::Unreachable(r) => Some(r),
            _ => None,
        }
    }
}

/// ICMP time exceeded (IPv4 type 11, ICMPv6 type 3).
pub fn is_time_exceeded(rep: &IcmpReport) -> bool {
    rep.kind().is_time_exceeded()
}

/// One query's final verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub cycle: u64,
    pub hop: u8,
    pub flow: u16,
    pub query: u16,
    /// The probe (sequence number) whose verdict this is.
    pub seq: u64,
    /// Sent again after a collision at the target (see the module's documentation).
    pub reprobe: bool,
    pub answer: Answer,
    /// Who answered: the router, or the target.
    pub from: Option<IpAddr>,
    pub rtt: Option<Duration>,
    pub sent_at: SystemTime,
    pub local_port: Option<u16>,
    /// The SYN probe's sequence number, and the headers its answer showed (`PingResult::seen`):
    /// for the middlebox report (`super::middlebox`).
    pub tcp_seq: Option<u32>,
    pub seen: Option<crate::packet::diff::Headers>,
}

impl Outcome {
    fn new(meta: &Meta, r: PingResult, answer: Answer, target: SocketAddr) -> Outcome {
        let (from, rtt) = match (&answer, &r.status) {
            (Answer::Reached { .. }, _) => (Some(target.ip()), r.connect),
            (_, Status::Icmp(rep)) => (Some(rep.from), Some(rep.after)),
            _ => (None, None),
        };
        Outcome {
            cycle: meta.cycle,
            hop: meta.hop,
            flow: meta.flow,
            query: meta.query,
            seq: r.seq,
            reprobe: meta.reprobe,
            answer,
            from,
            rtt,
            // When it left (the prober's own stamp is when its verdict was made).
            sent_at: meta.sent.unwrap_or(r.sent_at),
            local_port: r.local_port,
            tcp_seq: r.tcp_seq,
            seen: r.seen,
        }
    }
}

/// Every query of one hop in one cycle has its verdict (in query, then flow order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopDone {
    pub cycle: u64,
    pub hop: u8,
    pub outcomes: Vec<Outcome>,
}

/// How a flow's destination hop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestKind {
    Open,
    Closed,
    Unreachable,
    /// The hop where a routing loop became certain (see [`find_loop`]): the hops above it
    /// would only repeat it.
    Loop,
}

/// A routing loop in a sequence of hops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopAt {
    /// The hop where the loop's first router is met.
    pub from_hop: u8,
    /// The routers of the loop, in the order the packets meet them.
    pub routers: Vec<IpAddr>,
    /// The last hop of the second full period: where the repetition is certain.
    pub certain_at: u8,
}

/// The routing loop in `hops` (`hops[i]`: the one router that answered time exceeded at
/// hop i + 1, None when the hop was silent, answered otherwise, or by several routers):
/// the first place where a sequence of two or more distinct routers is seen twice in a row,
/// with no other address in between (a path does not meet the same router again further
/// on unless its packets circle). None when there is none.
pub fn find_loop(hops: &[Option<IpAddr>]) -> Option<LoopAt> {
    // Most paths meet no router twice: nothing to look for.
    let mut seen = std::collections::HashSet::new();
    if hops.iter().flatten().all(|a| seen.insert(*a)) {
        return None;
    }
    // The lowest hop at which two full periods end: for it, the lowest start too.
    for end in 3..hops.len() {
        // Two full periods fit in hops 0..=end.
        for period in (2..=end).filter(|p| 2 * p <= end + 1) {
            let start = end + 1 - 2 * period;
            let window = &hops[start..=end];
            if window.iter().any(Option::is_none) {
                continue;
            }
            if !(0..period).all(|i| window[i] == window[i + period]) {
                continue;
            }
            let first: Vec<IpAddr> = window[..period].iter().flatten().copied().collect();
            if (0..period).all(|i| !first[..i].contains(&first[i])) {
                return Some(LoopAt {
                    from_hop: u8::try_from(start + 1).ok()?,
                    routers: first,
                    certain_at: u8::try_from(end + 1).ok()?,
                });
            }
        }
    }
    None
}

/// A flow's destination hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dest {
    pub hop: u8,
    pub kind: DestKind,
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    cycle: u64,
    hop: u8,
    flow: u16,
    query: u16,
    reprobe: bool,
    /// When it left (the driver's clock, see [`Engine::sent_at`]).
    sent: Option<SystemTime>,
}

#[derive(Clone, Debug, Default)]
struct Slot {
    /// Attempts in flight.
    attempts: u16,
    /// An attempt waits in its flow's lane.
    queued: bool,
    /// The verdict (the slot is done).
    outcome: Option<Outcome>,
}

/// Probes of a flow's destination hop sent one at a time.
#[derive(Clone, Debug, Default)]
struct Lane {
    /// (hop, query, a re-probe)
    queue: VecDeque<(u8, u16, bool)>,
    /// The probe whose verdict the next one waits for.
    busy: Option<u64>,
}

/// The strategy's state.
pub struct Engine {
    plan: Plan,
    next_seq: u64,
    cycle: u64,
    metas: HashMap<u64, Meta>,
    slots: HashMap<(u8, u16, u16), Slot>,
    dest: Vec<Option<Dest>>,
    /// Highest hop probed this cycle, per flow.
    top: Vec<u8>,
    lanes: Vec<Lane>,
    outbox: Vec<ProbeSpec>,
    /// The next hop to report in this cycle.
    next_hop: u8,
    sent: u64,
    reprobes: u64,
    in_cycle: bool,
}

impl Engine {
    pub fn new(plan: Plan) -> Engine {
        let flows = usize::from(plan.flows.max(1));
        Engine {
            plan,
            next_seq: 1,
            cycle: 0,
            metas: HashMap::new(),
            slots: HashMap::new(),
            dest: vec![None; flows],
            top: vec![0; flows],
            lanes: vec![Lane::default(); flows],
            outbox: Vec::new(),
            next_hop: 1,
            sent: 0,
            reprobes: 0,
            in_cycle: false,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The cycle under way (or last finished), from 1.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Each flow's destination hop, as far as known.
    pub fn dests(&self) -> &[Option<Dest>] {
        &self.dest
    }

    /// Probes sent so far, and how many of them were re-probes after a collision.
    pub fn sent(&self) -> (u64, u64) {
        (self.sent, self.reprobes)
    }

    /// The sequence number the next probe would get (a driver that sends probes of its own
    /// after the cycles numbers them from here).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether a cycle is under way (started, not every answer in).
    pub fn in_cycle(&self) -> bool {
        self.in_cycle
    }

    /// Take the probes to send now, in order.
    pub fn take_sends(&mut self) -> Vec<ProbeSpec> {
        std::mem::take(&mut self.outbox)
    }

    fn flows(&self) -> u16 {
        self.plan.flows.max(1)
    }

    fn send(&mut self, hop: u8, flow: u16, query: u16, reprobe: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sent += 1;
        if reprobe {
            self.reprobes += 1;
        }
        self.metas.insert(
            seq,
            Meta {
                cycle: self.cycle,
                hop,
                flow,
                query,
                reprobe,
                sent: None,
            },
        );
        if let Some(s) = self.slots.get_mut(&(hop, flow, query)) {
            s.attempts += 1;
            s.queued = false;
        }
        self.outbox.push(ProbeSpec {
            seq,
            target: self.plan.target,
            ttl: Some(hop),
            flow,
        });
        seq
    }

    /// Start the next cycle: the burst goes to the outbox.
    pub fn start_cycle(&mut self) {
        self.cycle += 1;
        self.slots.clear();
        self.next_hop = 1;
        self.in_cycle = true;
        for l in &mut self.lanes {
            *l = Lane::default();
        }
        let flows = self.flows();
        for f in 0..flows {
            self.top[usize::from(f)] =
                self.dest[usize::from(f)].map_or(self.plan.max_hops, |d| d.hop);
        }
        let highest = self.top.iter().copied().max().unwrap_or(0);
        if self.plan.gap.is_some() {
            // One at a time per flow, hop by hop, through the lanes.
            for hop in 1..=highest {
                for q in 0..self.plan.queries {
                    for f in 0..flows {
                        if hop <= self.top[usize::from(f)] {
                            self.queue(hop, f, q);
                        }
                    }
                }
            }
            self.pump_lanes();
            return;
        }
        let mut first_at_dest: Vec<Option<u64>> = vec![None; usize::from(flows)];
        for hop in 1..=highest {
            for q in 0..self.plan.queries {
                for f in 0..flows {
                    let fi = usize::from(f);
                    if hop > self.top[fi] {
                        continue;
                    }
                    self.slots.insert((hop, f, q), Slot::default());
                    let one_at_a_time = self.plan.constant_flows
                        && self.dest[fi].is_some_and(|d| d.hop == hop && d.kind == DestKind::Open);
                    if one_at_a_time && q > 0 {
                        self.lanes[fi].queue.push_back((hop, q, false));
                        if let Some(s) = self.slots.get_mut(&(hop, f, q)) {
                            s.queued = true;
                        }
                    } else {
                        let seq = self.send(hop, f, q, false);
                        if one_at_a_time {
                            first_at_dest[fi] = Some(seq);
                        }
                    }
                }
            }
        }
        for (fi, first) in first_at_dest.into_iter().enumerate() {
            if !self.lanes[fi].queue.is_empty() {
                self.lanes[fi].busy = first;
            }
        }
    }

    /// Whether (hop, flow) counts in this cycle.
    fn relevant(&self, hop: u8, flow: u16) -> bool {
        let fi = usize::from(flow);
        hop >= 1 && hop <= self.top[fi] && self.dest[fi].is_none_or(|d| hop <= d.hop)
    }

    fn any_relevant(&self, hop: u8) -> bool {
        (0..self.flows()).any(|f| self.relevant(hop, f))
    }

    /// A verdict from the prober. Returns the hops whose every query is now concluded, in
    /// order (each hop once per cycle, only after every hop below it). Call [`settle`] after
    /// the last verdict of a batch.
    ///
    /// [`settle`]: Engine::settle
    pub fn on_result(&mut self, r: PingResult) -> Vec<HopDone> {
        let Some(meta) = self.metas.remove(&r.seq) else {
            return Vec::new();
        };
        let fi = usize::from(meta.flow);
        if meta.cycle == self.cycle && self.lanes[fi].busy == Some(r.seq) {
            self.lanes[fi].busy = None;
        }
        let answer = Answer::of(&r.status);
        if self.plan.constant_flows && answer == Some(Answer::Reached { open: true }) {
            // Whatever its hop: the target held a half-open connection for this flow.
            let arrived = meta.sent.map(|t| t + r.connect.unwrap_or_default());
            self.doom_check(meta.flow, r.seq, arrived);
        }
        if meta.cycle == self.cycle {
            if let Some(answer) = answer {
                self.conclude(meta, r, answer);
            } else if let Some(s) = self.slots.get_mut(&(meta.hop, meta.flow, meta.query)) {
                s.attempts = s.attempts.saturating_sub(1);
            }
        }
        self.ready_hops()
    }

    /// The driver sent probe `seq` at `at` (its clock: the one answers' times add to).
    pub fn sent_at(&mut self, seq: u64, at: SystemTime) {
        if let Some(m) = self.metas.get_mut(&seq) {
            m.sent = Some(at);
        }
    }

    /// A SYN-ACK of probe `answered` on `flow` arrived at `arrived`. The lane's probe in
    /// flight, if it left before that, met the half-open connection the answered SYN made
    /// (it reached the target before our RST did: both took the same way, the lane's probe
    /// first): it will not be answered. Probe its query again, next.
    fn doom_check(&mut self, flow: u16, answered: u64, arrived: Option<SystemTime>) {
        let fi = usize::from(flow);
        let (Some(busy), Some(arrived)) = (self.lanes[fi].busy, arrived) else {
            return;
        };
        let Some(m) = self.metas.get(&busy).copied() else {
            return;
        };
        if busy == answered || m.cycle != self.cycle || m.sent.is_none_or(|t| t >= arrived) {
            return;
        }
        self.lanes[fi].busy = None;
        if let Some(s) = self.slots.get_mut(&(m.hop, m.flow, m.query)) {
            if s.outcome.is_none() && !s.queued {
                s.queued = true;
                self.lanes[fi].queue.push_front((m.hop, m.query, true));
            }
        }
    }

    /// After a batch of verdicts (everything the prober had): send the next probe of every
    /// idle lane (a query that was answered in the meantime is not probed again) and report
    /// the hops that are complete now.
    pub fn settle(&mut self) -> Vec<HopDone> {
        self.pump_lanes();
        self.ready_hops()
    }

    fn conclude(&mut self, meta: Meta, r: PingResult, answer: Answer) {
        let key = (meta.hop, meta.flow, meta.query);
        let relevant = self.relevant(meta.hop, meta.flow);
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        slot.attempts = slot.attempts.saturating_sub(1);
        if slot.outcome.is_some() || !relevant {
            return;
        }
        if answer == Answer::Timeout && (slot.attempts > 0 || slot.queued) {
            // Another attempt of this query is on its way: its verdict decides.
            return;
        }
        let fi = usize::from(meta.flow);
        let kind = match &answer {
            Answer::Reached { open: true } => Some(DestKind::Open),
            Answer::Reached { open: false } => Some(DestKind::Closed),
            Answer::Unreachable(_) => Some(DestKind::Unreachable),
            _ => None,
        };
        let grew = matches!(answer, Answer::TimeExceeded(_))
            && self.dest[fi].is_some_and(|d| d.hop == meta.hop && d.kind != DestKind::Loop);
        slot.outcome = Some(Outcome::new(&meta, r, answer, self.plan.target));
        // The lane's probe for this query is of no use now: do not wait for it.
        if let Some(b) = self.lanes[fi].busy {
            if self
                .metas
                .get(&b)
                .is_some_and(|m| (m.hop, m.query) == (meta.hop, meta.query) && m.flow == meta.flow)
            {
                self.lanes[fi].busy = None;
            }
        }
        if let Some(kind) = kind {
            self.set_dest(meta.flow, meta.hop, kind);
            if kind == DestKind::Open && self.plan.constant_flows {
                self.reprobe_collided(meta.hop, meta.flow);
            }
        } else if grew {
            // The path got longer: what was the destination hop forwards now.
            self.extend(meta.flow);
        } else if self.all_concluded(meta.hop, meta.flow) {
            // A hop of the flow is complete: does the flow circle now?
            self.check_loop(meta.flow);
        }
    }

    /// Every query of (hop, flow) has its verdict in this cycle.
    fn all_concluded(&self, hop: u8, flow: u16) -> bool {
        (0..self.plan.queries).all(|q| {
            self.slots
                .get(&(hop, flow, q))
                .is_some_and(|s| s.outcome.is_some())
        })
    }

    /// The one router that answered time exceeded at (hop, flow) in this cycle, once every
    /// query there has its verdict (time exceeded from it, or a timeout).
    fn single_router(&self, hop: u8, flow: u16) -> Option<IpAddr> {
        let mut addr = None;
        for q in 0..self.plan.queries {
            let o = self.slots.get(&(hop, flow, q))?.outcome.as_ref()?;
            match &o.answer {
                Answer::TimeExceeded(rep) if addr.is_none_or(|a| a == rep.from) => {
                    addr = Some(rep.from);
                }
                Answer::Timeout => {}
                _ => return None,
            }
        }
        addr
    }

    /// Whether the hops of `flow` so far circle: then the hop where that is certain is its
    /// destination hop (nothing above it is waited for). A flow whose loop was found in an
    /// earlier cycle and whose hops up to there all have their verdict and show none now
    /// is probed above it again (the routing was fixed).
    fn check_loop(&mut self, flow: u16) {
        let fi = usize::from(flow);
        let top = self.top[fi];
        let hops: Vec<Option<IpAddr>> = (1..=top).map(|h| self.single_router(h, flow)).collect();
        match (find_loop(&hops), self.dest[fi]) {
            (Some(l), None) => self.set_dest(flow, l.certain_at, DestKind::Loop),
            (Some(l), Some(d)) if d.kind == DestKind::Loop && l.certain_at < d.hop => {
                self.dest[fi] = Some(Dest {
                    hop: l.certain_at,
                    kind: DestKind::Loop,
                });
            }
            (None, Some(d))
                if d.kind == DestKind::Loop && (1..=d.hop).all(|h| self.all_concluded(h, flow)) =>
            {
                self.extend(flow);
            }
            _ => {}
        }
    }

    fn set_dest(&mut self, flow: u16, hop: u8, kind: DestKind) {
        let fi = usize::from(flow);
        match self.dest[fi] {
            Some(d) if d.hop < hop => {}
            Some(d) if d.hop == hop && d.kind != DestKind::Unreachable => {
                // The first answer of a cycle says open or closed; keep the latest.
                self.dest[fi] = Some(Dest { hop, kind });
            }
            Some(d) if d.hop == hop => {}
            _ => {
                self.dest[fi] = Some(Dest { hop, kind });
                // Nothing above it waits in the lane.
                self.lanes[fi].queue.retain(|&(h, _, _)| h <= hop);
            }
        }
    }

    /// The target answered a SYN of `flow` at `hop` with SYN-ACK: the other queries of that
    /// hop and flow still without a verdict collided with it; probe them again, one at a time.
    fn reprobe_collided(&mut self, hop: u8, flow: u16) {
        let fi = usize::from(flow);
        for q in 0..self.plan.queries {
            if let Some(s) = self.slots.get_mut(&(hop, flow, q)) {
                if s.outcome.is_none() && !s.queued && s.attempts > 0 {
                    s.queued = true;
                    self.lanes[fi].queue.push_back((hop, q, true));
                }
            }
        }
    }

    /// The destination hop of `flow` answered time exceeded: probe the hops above it too.
    fn extend(&mut self, flow: u16) {
        let fi = usize::from(flow);
        self.dest[fi] = None;
        let from = self.top[fi];
        self.top[fi] = self.plan.max_hops;
        if self.plan.gap.is_some() {
            for hop in from.saturating_add(1)..=self.plan.max_hops {
                for q in 0..self.plan.queries {
                    self.queue(hop, flow, q);
                }
            }
            self.pump_lanes();
            return;
        }
        let waiting: Vec<(u8, u16, bool)> = self.lanes[fi].queue.drain(..).collect();
        for (h, q, re) in waiting {
            self.send(h, flow, q, re);
        }
        for hop in from.saturating_add(1)..=self.plan.max_hops {
            for q in 0..self.plan.queries {
                self.slots.insert((hop, flow, q), Slot::default());
                self.send(hop, flow, q, false);
            }
        }
    }

    /// Send the next probe of every idle lane.
    fn pump_lanes(&mut self) {
        for f in 0..self.flows() {
            let fi = usize::from(f);
            while self.lanes[fi].busy.is_none() {
                let Some((hop, q, re)) = self.lanes[fi].queue.pop_front() else {
                    break;
                };
                let wanted = self.relevant(hop, f)
                    && self
                        .slots
                        .get(&(hop, f, q))
                        .is_some_and(|s| s.outcome.is_none());
                if !wanted {
                    if let Some(s) = self.slots.get_mut(&(hop, f, q)) {
                        s.queued = false;
                    }
                    continue;
                }
                if let Some(gap) = self.plan.gap {
                    if self.silent_below(hop, f, gap) {
                        // Given up: nothing above the last silent hop is probed this cycle.
                        self.top[fi] = hop - 1;
                        self.lanes[fi].queue.clear();
                        break;
                    }
                }
                let seq = self.send(hop, f, q, re);
                self.lanes[fi].busy = Some(seq);
            }
        }
    }

    /// A new query (hop, flow, q) of this cycle, waiting in its flow's lane.
    fn queue(&mut self, hop: u8, flow: u16, q: u16) {
        self.slots.insert(
            (hop, flow, q),
            Slot {
                queued: true,
                ..Slot::default()
            },
        );
        self.lanes[usize::from(flow)]
            .queue
            .push_back((hop, q, false));
    }

    /// Every query of `flow` at the `gap` hops right below `hop` concluded unanswered.
    fn silent_below(&self, hop: u8, flow: u16, gap: u8) -> bool {
        gap > 0
            && hop > gap
            && (hop - gap..hop).all(|h| {
                (0..self.plan.queries).all(|q| {
                    self.slots
                        .get(&(h, flow, q))
                        .and_then(|s| s.outcome.as_ref())
                        .is_some_and(|o| o.answer == Answer::Timeout)
                })
            })
    }

    fn hop_complete(&self, hop: u8) -> bool {
        (0..self.flows())
            .filter(|&f| self.relevant(hop, f))
            .all(|f| {
                (0..self.plan.queries).all(|q| {
                    self.slots
                        .get(&(hop, f, q))
                        .is_none_or(|s| s.outcome.is_some())
                })
            })
    }

    fn ready_hops(&mut self) -> Vec<HopDone> {
        let mut out = Vec::new();
        if !self.in_cycle {
            return out;
        }
        while self.any_relevant(self.next_hop) && self.hop_complete(self.next_hop) {
            let hop = self.next_hop;
            let mut outcomes = Vec::new();
            for q in 0..self.plan.queries {
                for f in 0..self.flows() {
                    if !self.relevant(hop, f) {
                        continue;
                    }
                    if let Some(o) = self.slots.get(&(hop, f, q)).and_then(|s| s.outcome.clone()) {
                        outcomes.push(o);
                    }
                }
            }
            out.push(HopDone {
                cycle: self.cycle,
                hop,
                outcomes,
            });
            self.next_hop = hop.saturating_add(1);
            if hop == u8::MAX {
                break;
            }
        }
        if !self.any_relevant(self.next_hop)
            && self
                .lanes
                .iter()
                .all(|l| l.busy.is_none() && l.queue.is_empty())
            && self.outbox.is_empty()
        {
            self.in_cycle = false;
        }
        out
    }

    /// Probes of this cycle still waited for (for a driver that must not wait forever).
    pub fn waiting(&self) -> usize {
        self.slots
            .iter()
            .filter(|(&(h, f, _), s)| s.outcome.is_none() && self.relevant(h, f))
            .count()
    }
}
