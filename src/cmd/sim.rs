//! Test support: a simulated network behind the [`Prober`] trait, so that every driver (the
//! trace engine's [`drive`](super::trace::drive), the ping scheduler
//! [`schedule`](super::ping::schedule) and the many-targets event loop) is tested without
//! sockets or privileges.
//!
//! - Probes with a TTL (trace) cross a scripted path ([`Net`]): routers that answer time
//!   exceeded (or not, or only so often), a router that refuses, a silent drop,
//!   load-balanced branches, a routing loop, a slow last link, and a target that, like a
//!   real TCP stack, holds a half-open connection per 4-tuple and drops other SYNs of that
//!   flow until our answer to its SYN-ACK (the RST our kernel sends) is out. Their answers
//!   come on the next poll, timed by a simulated clock ([`Sim::clock`]).
//! - Probes without a TTL (ping, many targets) go to a scripted host ([`Host`]): each probe
//!   in turn gets its [`Fate`] (a reply after a delay, a loss that times out, a refusal,
//!   an ICMP error, a failed send), in real time, so that the schedulers' own clocks see
//!   them. The delays are short and the tests assert counts and lower bounds, never how
//!   fast a busy machine runs.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;

use crate::cli::Cli;
use crate::icmp::correlate::Unmatched;
use crate::icmp::extension::Extensions;
use crate::icmp::parse::IcmpError;
use crate::icmp::{IcmpReport, Phase, Source};
use crate::probe::{IcmpTally, PingResult, ProbeSpec, Prober, Status};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The command line `tcpping-diag --connect-only --json ARGS…`, parsed (the scripted hosts
/// answer handshakes; the events are read back).
pub fn cli(args: &[&str]) -> Cli {
    let argv = ["tcpping-diag", "--connect-only", "--json"]
        .into_iter()
        .chain(args.iter().copied());
    Cli::try_parse_from(argv).unwrap()
}

/// The target of the trace tests.
pub const TARGET: &str = "10.0.9.5:443";

/// The network the probes cross.
#[derive(Clone, Debug, Default)]
pub struct Net {
    /// Routers of each branch, hop 1 first; a flow takes branch `flow % branches`. The
    /// target is one hop after the last router.
    pub branches: Vec<Vec<IpAddr>>,
    pub open: bool,
    /// The router at this hop refuses (type, code) every probe it would forward.
    pub refuse_at: Option<(u8, u8, u8)>,
    /// Probes that would go past this hop vanish.
    pub drop_after: Option<u8>,
    /// The same on one branch only: (branch, hop).
    pub branch_drop_after: Option<(usize, u8)>,
    /// The target refuses with this ICMP error instead of answering.
    pub target_refuses: Option<(u8, u8)>,
    /// Hops whose router never answers time exceeded.
    pub mute: HashSet<u8>,
    /// Time exceeded answers left per hop (a rate limiter's tokens).
    pub tokens: HashMap<u8, u32>,
    /// Extensions on the time exceeded of a hop.
    pub ext: HashMap<u8, Extensions>,
    /// Probes whose sending fails.
    pub send_error: bool,
    /// A routing loop after the branch's routers: the packets circle through these routers
    /// (each answers time exceeded) and never reach the target.
    pub loop_routers: Vec<IpAddr>,
    /// The link into the target is slow (a token-bucket shaper with this many packets of
    /// burst): past the burst, SYNs and our RSTs queue on it and cross one per poll, 600 µs
    /// apart. So the burst's SYNs reach the target long after the first one's SYN-ACK came
    /// back, and our kernel's RST (sent as the SYN-ACK arrives, before we read it) waits
    /// behind the SYNs queued before it.
    pub slow_last_link: Option<u32>,
    /// Hosts that probes without a TTL reach (ping, many targets); a probe to an address
    /// not here is lost.
    pub hosts: HashMap<SocketAddr, Host>,
    /// The path as a graph of load balancers (replaces `branches` when set).
    pub graph: Option<Graph>,
}

/// A load-balanced network as a graph: the source and each router send a flow to one of
/// their next hops, picked by a hash of (seed, router, flow), as a per-flow ECMP router does.
/// Nested splits, branches of unequal length, diamonds in a row.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The source's next hops (the routers of hop 1).
    pub first: Vec<IpAddr>,
    /// Each router's next hops; none: the target.
    pub next: HashMap<IpAddr, Vec<IpAddr>>,
    /// The flow hash's seed.
    pub seed: u64,
    /// Routers that answer time exceeded from another address (off the path).
    pub answer_from: HashMap<IpAddr, IpAddr>,
    /// Routers that never answer time exceeded.
    pub silent: HashSet<IpAddr>,
    /// Routers that drop every probe they would forward.
    pub drops: HashSet<IpAddr>,
}

/// splitmix64: the flow hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Graph {
    fn pick(&self, at: Option<IpAddr>, choices: &[IpAddr], flow: u16) -> IpAddr {
        let node = match at {
            Some(IpAddr::V4(a)) => u64::from(u32::from(a)),
            Some(IpAddr::V6(a)) => u128::from(a) as u64,
            None => 0,
        };
        let h = mix(self.seed ^ mix(node ^ (u64::from(flow) << 40)));
        choices[(h % choices.len() as u64) as usize]
    }

    /// The routers a flow crosses, hop 1 first (the target after the last).
    pub fn path(&self, flow: u16) -> Vec<IpAddr> {
        let mut path = Vec::new();
        let mut choices = &self.first;
        while !choices.is_empty() && path.len() < 64 {
            let r = self.pick(path.last().copied(), choices, flow);
            path.push(r);
            choices = self.next.get(&r).map_or(&EMPTY, |n| n);
        }
        path
    }

    /// Every (hop, address that answers there) and every link between two hops' answers
    /// (hop of the first), over all paths: what a complete trace finds (silent routers and
    /// what lies past a router that drops left out; the target not included).
    pub fn truth(&self) -> Truth {
        let mut nodes = HashSet::new();
        let mut links = HashSet::new();
        let mut stack: Vec<(Vec<IpAddr>, &Vec<IpAddr>)> = vec![(Vec::new(), &self.first)];
        while let Some((path, choices)) = stack.pop() {
            for &r in choices {
                let mut p = path.clone();
                p.push(r);
                if !self.drops.contains(&r) {
                    stack.push((p.clone(), self.next.get(&r).map_or(&EMPTY, |n| n)));
                }
                let seen: Vec<(u8, IpAddr)> = p
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !self.silent.contains(r))
                    .map(|(i, r)| (i as u8 + 1, *self.answer_from.get(r).unwrap_or(r)))
                    .collect();
                nodes.extend(seen.iter().copied());
                for w in seen.windows(2) {
                    links.insert((w[0].0, w[0].1, w[1].1));
                }
            }
        }
        (nodes, links)
    }
}

static EMPTY: Vec<IpAddr> = Vec::new();

/// The routers per hop and the links (hop of the first router) a trace can find.
pub type Truth = (HashSet<(u8, IpAddr)>, HashSet<(u8, IpAddr, IpAddr)>);

/// A path of `routers` routers, 10.0.1.1, 10.0.2.1, …, then the open target.
pub fn net(routers: u8) -> Net {
    Net {
        branches: vec![line_path(routers)],
        open: true,
        ..Net::default()
    }
}

fn line_path(n: u8) -> Vec<IpAddr> {
    (1..=n).map(|i| ip(&format!("10.0.{i}.1"))).collect()
}

/// Two branches after hop 1 (10.0.12.2, 10.0.15.2 and 10.0.13.2, 10.0.16.2), then the open
/// target: even flows take the first.
pub fn diamond() -> Net {
    Net {
        branches: vec![
            vec![ip("10.0.1.1"), ip("10.0.12.2"), ip("10.0.15.2")],
            vec![ip("10.0.1.1"), ip("10.0.13.2"), ip("10.0.16.2")],
        ],
        open: true,
        ..Net::default()
    }
}

/// What becomes of one probe to a scripted host.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// The handshake completes after this round trip.
    Reply(Duration),
    /// Nothing comes back: the probe times out after [`Sim::timeout`].
    Lost,
    /// RST, after this round trip.
    Refused(Duration),
    /// A router answers with an ICMP error (type, code), after this round trip.
    Icmp {
        from: IpAddr,
        icmp_type: u8,
        code: u8,
        after: Duration,
    },
    /// The reply comes only once the next probe to the same host has left (so the prober
    /// holds two at once); a timeout after [`Sim::timeout`] if none leaves.
    ReplyAfterNext,
    /// The probe cannot be sent (no route).
    SendError,
}

/// A scripted host.
#[derive(Clone, Debug, Default)]
pub struct Host {
    /// What becomes of each probe in turn; the last one repeats (none: every probe is lost).
    pub fates: Vec<Fate>,
    /// The prober carries at most this many probes to it at once (`ready` says no beyond),
    /// as a persistent connection carries none but its first while it opens.
    pub max_in_flight: Option<usize>,
}

impl Host {
    /// A host whose every probe meets `fate`.
    pub fn always(fate: Fate) -> Host {
        Host {
            fates: vec![fate],
            max_in_flight: None,
        }
    }
}

/// Net with hosts only (for ping and many targets).
pub fn hosts(hosts: impl IntoIterator<Item = (SocketAddr, Host)>) -> Net {
    Net {
        hosts: hosts.into_iter().collect(),
        ..Net::default()
    }
}

/// What crosses the slow link.
#[derive(Clone, Copy, Debug)]
enum Crossing {
    Syn(ProbeSpec),
    Rst(u16),
}

/// When a scripted host's answer is due.
#[derive(Clone, Copy, Debug)]
enum Due {
    At(Instant),
    /// When another probe to the host leaves, or at this time (a timeout) if none does.
    NextSend(SocketAddr, Instant),
}

/// The simulated network as a prober.
pub struct Sim {
    pub net: Net,
    target: SocketAddr,
    answers: VecDeque<PingResult>,
    lost: Vec<PingResult>,
    /// Flows with a half-open connection at the target.
    half_open: HashSet<u16>,
    /// Every probe sent, in order, and when (real time).
    pub sent: Vec<ProbeSpec>,
    pub sent_when: Vec<Instant>,
    /// The simulation's clock (the trace driver stamps its sends with it).
    pub clock: Rc<Cell<SystemTime>>,
    sent_at: HashMap<u64, SystemTime>,
    slow: VecDeque<Crossing>,
    /// Timeouts handed out (the driver had to wait for the timeout).
    pub timeouts_given: usize,
    /// How long a lost probe to a scripted host takes to time out.
    pub timeout: Duration,
    /// Answers of scripted hosts on their way, and probes sent to each.
    timed: Vec<(Due, PingResult)>,
    per_host: HashMap<SocketAddr, usize>,
    /// The most probes in flight at once, seen at a send.
    pub max_in_flight: usize,
    /// Raise this flag as the Nth probe leaves (a Ctrl-C or a SIGHUP in the middle of a run).
    pub raise_after: Option<(usize, Arc<AtomicBool>)>,
}

impl Sim {
    pub fn new(net: Net) -> Sim {
        Sim {
            net,
            target: TARGET.parse().unwrap(),
            answers: VecDeque::new(),
            lost: Vec::new(),
            half_open: HashSet::new(),
            sent: Vec::new(),
            sent_when: Vec::new(),
            clock: Rc::new(Cell::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )),
            sent_at: HashMap::new(),
            slow: VecDeque::new(),
            timeouts_given: 0,
            timeout: Duration::from_millis(30),
            timed: Vec::new(),
            per_host: HashMap::new(),
            max_in_flight: 0,
            raise_after: None,
        }
    }

    /// Something crosses the slow link: at once while the burst lasts, else it queues.
    fn cross(&mut self, c: Crossing) {
        match &mut self.net.slow_last_link {
            Some(0) => self.slow.push_back(c),
            Some(n) => {
                *n -= 1;
                self.crossed(c);
            }
            None => self.crossed(c),
        }
    }

    fn crossed(&mut self, c: Crossing) {
        match c {
            Crossing::Syn(spec) => self.arrive(spec),
            Crossing::Rst(flow) => {
                self.half_open.remove(&flow);
            }
        }
    }

    /// A SYN reaches the target.
    fn arrive(&mut self, spec: ProbeSpec) {
        let status = if !self.net.open {
            Status::Refused
        } else if self.half_open.insert(spec.flow) {
            Status::Reply
        } else {
            // Out of the half-open connection's window: dropped (a challenge ACK at most).
            self.lost.push(PingResult::of(&spec, Status::Timeout));
            return;
        };
        let status_is_reply = status == Status::Reply;
        let mut r = PingResult::of(&spec, status);
        let fake = Duration::from_micros(100 * u64::from(spec.ttl.unwrap_or(1)));
        // On the slow link: the time it waited there too.
        let waited = self
            .clock
            .get()
            .duration_since(self.sent_at[&spec.seq])
            .unwrap_or_default();
        r.connect = Some(fake + waited);
        r.local_port = Some(40000 + spec.flow);
        self.answers.push_back(r);
        if status_is_reply && self.net.slow_last_link.is_some() {
            // Our kernel's RST, as the SYN-ACK comes in.
            self.cross(Crossing::Rst(spec.flow));
        }
    }

    fn icmp(spec: &ProbeSpec, from: IpAddr, t: u8, c: u8, ext: Option<Extensions>) -> PingResult {
        let after = Duration::from_micros(100 * u64::from(spec.ttl.unwrap_or(1)));
        Self::icmp_after(spec, from, t, c, after, ext)
    }

    fn icmp_after(
        spec: &ProbeSpec,
        from: IpAddr,
        t: u8,
        c: u8,
        after: Duration,
        ext: Option<Extensions>,
    ) -> PingResult {
        PingResult::of(
            spec,
            Status::Icmp(IcmpReport {
                icmp_type: t,
                code: c,
                v6: false,
                info: 0,
                from,
                after,
                phase: Phase::Connect,
                source: Source::Raw,
                extensions: ext.map(Box::new),
            }),
        )
    }

    /// A probe through the scripted path (trace: it carries a TTL).
    fn send_on_path(&mut self, spec: ProbeSpec) {
        if self.net.send_error {
            self.answers.push_back(PingResult::of(
                &spec,
                Status::Error("send the SYN: No route to host".into()),
            ));
            return;
        }
        let ttl = spec.ttl.expect("trace probes carry a TTL");
        let path = match &self.net.graph {
            Some(g) => {
                let path = g.path(spec.flow);
                let past = &path[..usize::from(ttl - 1).min(path.len())];
                if past.iter().any(|r| g.drops.contains(r)) {
                    self.lost.push(PingResult::of(&spec, Status::Timeout));
                    return;
                }
                if let Some(r) = path.get(usize::from(ttl) - 1) {
                    if g.silent.contains(r) {
                        self.lost.push(PingResult::of(&spec, Status::Timeout));
                        return;
                    }
                    let from = *g.answer_from.get(r).unwrap_or(r);
                    self.answers.push_back(Self::icmp(&spec, from, 11, 0, None));
                    return;
                }
                path
            }
            None => self.net.branches[usize::from(spec.flow) % self.net.branches.len()].clone(),
        };
        let routers = path.len() as u8;
        if let Some((k, t, c)) = self.net.refuse_at {
            if ttl > k {
                let r = Self::icmp(&spec, path[usize::from(k) - 1], t, c, None);
                self.answers.push_back(r);
                return;
            }
        }
        let branch = usize::from(spec.flow) % self.net.branches.len().max(1);
        let branch_drop = self
            .net
            .branch_drop_after
            .is_some_and(|(b, k)| b == branch && ttl > k);
        if branch_drop || self.net.drop_after.is_some_and(|k| ttl > k) {
            self.lost.push(PingResult::of(&spec, Status::Timeout));
            return;
        }
        if ttl <= routers {
            let tokens = self.net.tokens.get_mut(&ttl);
            let limited = match tokens {
                Some(0) => true,
                Some(n) => {
                    *n -= 1;
                    false
                }
                None => false,
            };
            if self.net.mute.contains(&ttl) || limited {
                self.lost.push(PingResult::of(&spec, Status::Timeout));
                return;
            }
            let ext = self.net.ext.get(&ttl).cloned();
            let r = Self::icmp(&spec, path[usize::from(ttl) - 1], 11, 0, ext);
            self.answers.push_back(r);
            return;
        }
        if !self.net.loop_routers.is_empty() {
            let lp = &self.net.loop_routers;
            let at = lp[usize::from(ttl - routers - 1) % lp.len()];
            self.answers.push_back(Self::icmp(&spec, at, 11, 0, None));
            return;
        }
        if let Some((t, c)) = self.net.target_refuses {
            let r = Self::icmp(&spec, self.target.ip(), t, c, None);
            self.answers.push_back(r);
            return;
        }
        self.cross(Crossing::Syn(spec));
    }

    /// A probe to a scripted host (ping, many targets: no TTL).
    fn send_to_host(&mut self, spec: ProbeSpec) {
        let now = Instant::now();
        // The probes held until this one left are answered now.
        for (due, _) in &mut self.timed {
            if matches!(*due, Due::NextSend(to, _) if to == spec.target) {
                *due = Due::At(now);
            }
        }
        let k = self.per_host.entry(spec.target).or_default();
        let fate = self
            .net
            .hosts
            .get(&spec.target)
            .and_then(|h| h.fates.get(*k).or(h.fates.last()).cloned())
            .unwrap_or(Fate::Lost);
        *k += 1;
        let timeout = now + self.timeout;
        let reply = |status: Status, rtt: Duration| {
            let mut r = PingResult::of(&spec, status);
            r.connect = Some(rtt);
            r.handshake_only = true;
            r
        };
        let (due, r) = match fate {
            Fate::Reply(rtt) => (Due::At(now + rtt), reply(Status::Reply, rtt)),
            Fate::Refused(rtt) => (Due::At(now + rtt), reply(Status::Refused, rtt)),
            Fate::Lost => (Due::At(timeout), PingResult::of(&spec, Status::Timeout)),
            Fate::Icmp {
                from,
                icmp_type,
                code,
                after,
            } => (
                Due::At(now + after),
                Self::icmp_after(&spec, from, icmp_type, code, after, None),
            ),
            Fate::ReplyAfterNext => (
                Due::NextSend(spec.target, timeout),
                reply(Status::Reply, Duration::from_millis(1)),
            ),
            Fate::SendError => (
                Due::At(now),
                PingResult::of(&spec, Status::Error("connect: No route to host".into())),
            ),
        };
        self.timed.push((due, r));
    }

    /// Conclude the scripted hosts' answers due by `now`: true when any was.
    fn deliver_timed(&mut self, now: Instant, done: &mut Vec<PingResult>) -> bool {
        let before = done.len();
        let mut k = 0;
        while k < self.timed.len() {
            let (due, _) = self.timed[k];
            let at = match due {
                Due::At(t) => t,
                Due::NextSend(_, timeout) => timeout,
            };
            if at <= now {
                let (due, mut r) = self.timed.remove(k);
                if let Due::NextSend(..) = due {
                    // Nothing left after it: it timed out.
                    r.status = Status::Timeout;
                    r.connect = None;
                }
                done.push(r);
            } else {
                k += 1;
            }
        }
        done.len() > before
    }

    /// When the next scripted answer is due.
    fn next_due(&self) -> Option<Instant> {
        self.timed
            .iter()
            .map(|(due, _)| match *due {
                Due::At(t) | Due::NextSend(_, t) => t,
            })
            .min()
    }
}

impl Prober for Sim {
    fn ready(&self, target: SocketAddr) -> bool {
        let Some(max) = self.net.hosts.get(&target).and_then(|h| h.max_in_flight) else {
            return true;
        };
        let to = |r: &PingResult| r.target == Some(target);
        self.timed.iter().filter(|(_, r)| to(r)).count() < max
    }

    fn send(&mut self, spec: ProbeSpec) {
        self.sent.push(spec);
        self.sent_when.push(Instant::now());
        self.sent_at.insert(spec.seq, self.clock.get());
        if spec.ttl.is_some() {
            self.send_on_path(spec);
        } else {
            self.send_to_host(spec);
        }
        self.max_in_flight = self.max_in_flight.max(self.in_flight());
        if let Some((n, flag)) = &self.raise_after {
            if self.sent.len() == *n {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        if !self.timed.is_empty() || self.answers.is_empty() && self.in_flight() == 0 {
            // Real time for the scripted hosts: wait for the first answer due, or `until`.
            if !self.deliver_timed(Instant::now(), done) {
                let wake = self.next_due().map_or(until, |t| t.min(until));
                std::thread::sleep(wake.saturating_duration_since(Instant::now()));
                self.deliver_timed(Instant::now(), done);
            }
            if self.lost.is_empty() && self.slow.is_empty() {
                return Ok(());
            }
        }
        if let Some(c) = self.slow.pop_front() {
            self.clock
                .set(self.clock.get() + Duration::from_micros(600));
            self.crossed(c);
        }
        if self.answers.is_empty() {
            if self.slow.is_empty() {
                // Nothing more will answer: the timeouts expire.
                self.timeouts_given += self.lost.len();
                done.append(&mut self.lost);
            }
            return Ok(());
        }
        for r in self.answers.drain(..) {
            // The answer arrives one round trip after its probe left.
            let rtt = match &r.status {
                Status::Icmp(rep) => Some(rep.after),
                _ => r.connect,
            };
            if let (Some(rtt), Some(sent)) = (rtt, self.sent_at.get(&r.seq)) {
                self.clock.set(self.clock.get().max(*sent + rtt));
            }
            if r.status == Status::Reply && self.net.slow_last_link.is_none() {
                // Our kernel answers the SYN-ACK with RST: the target forgets the flow one
                // round trip after its SYN-ACK (here: when we read it).
                let f = r.local_port.map_or(0, |p| p - 40000);
                self.half_open.remove(&f);
            }
            done.push(r);
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        let syns = self
            .slow
            .iter()
            .filter(|c| matches!(c, Crossing::Syn(_)))
            .count();
        self.answers.len() + self.lost.len() + syns + self.timed.len()
    }

    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        let timed = self.timed.drain(..).map(|(_, r)| r);
        for mut r in self
            .answers
            .drain(..)
            .chain(self.lost.drain(..))
            .chain(timed)
        {
            r.status = Status::Interrupted;
            done.push(r);
        }
        for c in self.slow.drain(..) {
            if let Crossing::Syn(spec) = c {
                done.push(PingResult::of(&spec, Status::Interrupted));
            }
        }
    }

    fn icmp_tally(&self) -> IcmpTally {
        IcmpTally::default()
    }

    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        Vec::new()
    }
}
