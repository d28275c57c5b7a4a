//! Multipath tracing: the per-router stopping rule and the adaptive search of `trace
//! --multipath`. Pure: fed [`PingResult`]s, asked for [`ProbeSpec`]s round by round, driven
//! by `cmd::trace` over a prober.
//!
//! **The rule, per router** (Veitch, Augustin, Teixeira, Friedman: "Failure Control in
//! Multipath Route Tracing", INFOCOM 2009). A router (or the source, at hop 1) that hashes
//! flows uniformly over its next hops, `k` of them seen, has a `k + 1`-th ruled out once
//! `n_k` of the flows that crossed *it* were answered one hop further ([`flows_needed`]).
//! Counting the flows of a whole hop instead is wrong as soon as the hop before has several
//! routers: the routers behind a branch that gets a sixth of the flows see only that sixth.
//! A flow's router at a hop is whoever answered its probe there (time exceeded, the target,
//! an unreachable); a silent hop is skipped (the flow's predecessor is the last router that
//! answered below it), and a router whose every probed flow is silent one hop on has one
//! (anonymous) next hop. A trace misses something when any of its routers hides a next hop,
//! and only a router that branches can: the bound per router is the trace's `alpha` divided
//! among the routers seen branching, plus one for a branching not seen (Bonferroni), so the
//! whole trace keeps the stated confidence.
//!
//! **The search** (after Vermeulen et al., "Multilevel MDA-Lite Paris Traceroute", IMC
//! 2018): hop by hop, in rounds. A round sends, at once, what the rule still lacks at the
//! hops reached so far: first the flows already known to cross a router (they were probed
//! at the hops below), then new flows where a router has too few of them. A new flow is
//! probed from the router's own hop up (so which router it crosses is known in the same
//! round); the number sent is the shortfall over the router's share of the flows at its hop
//! (node control, as full MDA does, only where a router is short: a branch that gets a
//! smaller share). A router met only on flows whose lower hops were not probed gets one of
//! them probed one hop lower, until its link is known. A round ends when every probe that
//! still matters has its answer: a probe above the hop where its flow reached the target is
//! not waited for. The search ends when no flow goes further (every flow reached the target
//! or an unreachable, or was silent on [`GAP`] hops in a row, or `max_hops`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use super::engine::{Answer, HopDone, Outcome};
use crate::probe::{PingResult, ProbeSpec};

/// Silent hops in a row after which a flow is given up.
pub const GAP: u8 = 3;

/// The flows a trace can use at most (source ports reserved for `--multipath`).
pub const MAX_FLOWS: u16 = 256;

/// New flows sent for one router in one round, at most.
const NEW_PER_ROUND: usize = 64;

/// Flows aimed for above a router's shortfall when new flows are sent for it: half a flow,
/// so that a round more often finishes the router than leaves it one flow short. Measured on
/// the simulated graphs: with no margin the most rounds of a run grew by up to 6; with a
/// margin of one flow the median probes grew by 1-2 %, with two by 4-9 %.
const MARGIN: f64 = 0.5;

/// The stopping rule (Veitch et al.): with `k` next hops seen, the number of flows (each
/// hashed independently and uniformly over the next hops) that must have been answered to
/// reject, with failure probability at most `alpha`, the hypothesis that there are `k + 1`:
/// the smallest n for which the chance that n flows spread over k + 1 equally likely next
/// hops miss at least one of them is at most `alpha` (inclusion-exclusion: sum over i of
/// (-1)^(i+1) C(k+1, i) (1 - i/(k+1))^n).
pub fn flows_needed(k: usize, alpha: f64) -> usize {
    let m = (k.max(1) + 1) as f64;
    let miss = |n: i32| -> f64 {
        let mut p = 0.0;
        let mut c = 1.0; // C(m, i)
        for i in 1..=(m as i32) {
            c = c * (m - f64::from(i) + 1.0) / f64::from(i);
            let term = c * (1.0 - f64::from(i) / m).powi(n);
            p += if i % 2 == 1 { term } else { -term };
        }
        p
    };
    (1..10_000).find(|&n| miss(n) <= alpha).unwrap_or(10_000) as usize
}

/// What a flow met at one hop: the address that answered, or None (silent).
pub type Seen = Option<IpAddr>;

/// Every flow's hops: flow, then hop, then what answered there (hops not probed are absent).
pub type Paths = BTreeMap<u16, BTreeMap<u8, Seen>>;

/// The router a flow crossed before a hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pred {
    /// The flow's first hop: the sender itself.
    Source,
    /// The router at (hop, address).
    Node(u8, IpAddr),
}

impl Pred {
    pub fn hop(self) -> u8 {
        match self {
            Pred::Source => 0,
            Pred::Node(h, _) => h,
        }
    }
}

/// The router `flow` crossed before `hop`: the last one that answered below it (silent hops
/// skipped), the source when none did, None when a hop below it was not probed on the flow.
pub fn pred(hops: &BTreeMap<u8, Seen>, hop: u8) -> Option<Pred> {
    for j in (1..hop).rev() {
        match hops.get(&j)? {
            Some(a) => return Some(Pred::Node(j, *a)),
            None => continue,
        }
    }
    Some(Pred::Source)
}

/// The flows a router sent one hop on (to one hop), and what they met there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// Flows crossing the router probed at the hop.
    pub probed: BTreeSet<u16>,
    /// Of them, those answered.
    pub answered: usize,
    /// The next hops seen (addresses).
    pub next: BTreeSet<IpAddr>,
}

impl Group {
    /// Next hops, a silent one counted when nothing else answered.
    pub fn k(&self) -> usize {
        if self.next.is_empty() && !self.probed.is_empty() {
            1
        } else {
            self.next.len()
        }
    }

    /// Flows that count for the rule: the answered ones, or the silent ones when none was.
    pub fn have(&self) -> usize {
        if self.answered == 0 {
            self.probed.len()
        } else {
            self.answered
        }
    }
}

/// (flow, hop) taken to cross the only router of the hop without a probe there: they say
/// whom the flow crossed below the hop above, never what the hop itself has.
pub type Assumed = BTreeSet<(u16, u8)>;

/// The groups of one hop: per router of the hops below, its flows probed at `hop`.
pub fn groups(paths: &Paths, hop: u8, assumed: &Assumed) -> BTreeMap<Pred, Group> {
    let mut out: BTreeMap<Pred, Group> = BTreeMap::new();
    for (&f, hops) in paths {
        let Some(seen) = hops.get(&hop) else { continue };
        if assumed.contains(&(f, hop)) {
            continue;
        }
        let Some(p) = pred(hops, hop) else { continue };
        let g = out.entry(p).or_default();
        g.probed.insert(f);
        if let Some(a) = seen {
            g.answered += 1;
            g.next.insert(*a);
        }
    }
    out
}

/// The rule applied to one hop.
#[derive(Clone, Debug, PartialEq)]
pub struct HopRule {
    /// The most flows one router of the hop before needs answered through it here.
    pub needed: usize,
    /// Every router of the hop before had as many of its flows answered here as it needs.
    pub enough: bool,
    /// Per router of the hop before: its flows here.
    pub routers: BTreeMap<Pred, RouterRule>,
}

/// The rule applied to one router's flows at the next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterRule {
    /// Next hops seen.
    pub next: usize,
    /// Flows needed to rule out one more.
    pub needed: usize,
    /// Flows that count (answered, or silent when none was).
    pub have: usize,
}

/// The bound per router: `alpha` shared among the routers seen branching, and one more.
pub fn router_alpha(paths: &Paths, alpha: f64, assumed: &Assumed) -> f64 {
    let hops: BTreeSet<u8> = paths.values().flat_map(|h| h.keys().copied()).collect();
    let branching = hops
        .iter()
        .flat_map(|&h| groups(paths, h, assumed).into_values())
        .filter(|g| g.next.len() >= 2)
        .count();
    alpha / (branching + 1) as f64
}

/// The per-router rule at every hop probed.
pub fn rules(paths: &Paths, alpha: f64, assumed: &Assumed) -> BTreeMap<u8, HopRule> {
    let a = router_alpha(paths, alpha, assumed);
    let hops: BTreeSet<u8> = paths.values().flat_map(|h| h.keys().copied()).collect();
    hops.into_iter()
        .map(|h| {
            let routers: BTreeMap<Pred, RouterRule> = groups(paths, h, assumed)
                .into_iter()
                .map(|(p, g)| {
                    let r = RouterRule {
                        next: g.k(),
                        needed: flows_needed(g.k(), a),
                        have: g.have(),
                    };
                    (p, r)
                })
                .collect();
            let needed = routers.values().map(|r| r.needed).max().unwrap_or(0);
            let enough = routers.values().all(|r| r.have >= r.needed);
            (
                h,
                HopRule {
                    needed,
                    enough,
                    routers,
                },
            )
        })
        .collect()
}

/// The share of all flows that cross `p` if every router hashed flows uniformly over the
/// next hops seen from it: 1 for the source; for a router, the sum over the routers below
/// that lead to it of their share over their number of next hops. None when no flow that
/// met `p` was probed at the hops below it (nothing says whom it hangs off).
pub fn model_share(paths: &Paths, p: Pred, assumed: &Assumed) -> Option<f64> {
    fn share(
        paths: &Paths,
        p: Pred,
        assumed: &Assumed,
        memo: &mut HashMap<Pred, Option<f64>>,
    ) -> Option<f64> {
        let Pred::Node(j, addr) = p else {
            return Some(1.0);
        };
        if let Some(s) = memo.get(&p) {
            return *s;
        }
        let mut sum = None;
        for (below, g) in groups(paths, j, assumed) {
            if g.next.contains(&addr) {
                if let Some(s) = share(paths, below, assumed, memo) {
                    *sum.get_or_insert(0.0) += s / g.next.len() as f64;
                }
            }
        }
        memo.insert(p, sum);
        sum
    }
    share(paths, p, assumed, &mut HashMap::new())
}

/// A probe out in the current round.
#[derive(Clone, Copy, Debug)]
struct Out {
    hop: u8,
    flow: u16,
    sent: Option<SystemTime>,
}

/// The adaptive search's state.
pub struct Mda {
    target: SocketAddr,
    max_hops: u8,
    alpha: f64,
    max_flows: u16,
    paths: Paths,
    /// The hop where each flow ended (reached the target, an unreachable).
    dest: HashMap<u16, u8>,
    outcomes: BTreeMap<(u8, u16), Outcome>,
    out: HashMap<u64, Out>,
    outbox: Vec<ProbeSpec>,
    next_seq: u64,
    next_flow: u16,
    /// The hop the search has reached.
    hop: u8,
    rounds: u64,
    sent: u64,
    done: bool,
    /// New flows taken to cross the only router of a hop without a probe there.
    assumed: Vec<(u16, u8, IpAddr)>,
    /// Probes that mattered and timed out.
    timeouts: u64,
}

impl Mda {
    /// A search to `target` up to `max_hops`, at confidence `1 - alpha`, with flows 0 to
    /// `max_flows - 1`.
    pub fn new(target: SocketAddr, max_hops: u8, alpha: f64, max_flows: u16) -> Mda {
        Mda {
            target,
            max_hops: max_hops.max(1),
            alpha,
            max_flows: max_flows.max(1),
            paths: Paths::new(),
            dest: HashMap::new(),
            outcomes: BTreeMap::new(),
            out: HashMap::new(),
            outbox: Vec::new(),
            next_seq: 1,
            next_flow: 0,
            hop: 1,
            rounds: 0,
            sent: 0,
            done: false,
            assumed: Vec::new(),
            timeouts: 0,
        }
    }

    /// Probes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Rounds started so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Flows used so far.
    pub fn flows_used(&self) -> u16 {
        self.next_flow
    }

    /// New flows taken to cross the only router of a hop, unprobed there: (flow, hop,
    /// router).
    pub fn assumed(&self) -> &[(u16, u8, IpAddr)] {
        &self.assumed
    }

    /// Flows not probed up to where they end (the target, an unreachable, [`GAP`] silent
    /// hops, `max_hops`): the rule needed no more of them.
    pub fn unfinished(&self) -> BTreeSet<u16> {
        self.paths
            .iter()
            .filter(|(f, hops)| {
                let top = hops.keys().next_back().copied().unwrap_or(0);
                top < self.max_hops && self.alive(**f, top + 1)
            })
            .map(|(f, _)| *f)
            .collect()
    }

    fn assumed_set(&self) -> Assumed {
        self.assumed.iter().map(|&(f, h, _)| (f, h)).collect()
    }

    /// Probes that mattered to a round and timed out (a round that waited for a timeout).
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Whether the search is over.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Whether a round is under way (probes that matter still out).
    pub fn in_round(&self) -> bool {
        self.out.iter().any(|(_, o)| self.matters(o))
    }

    /// Probes out that still matter.
    pub fn waiting(&self) -> usize {
        self.out.values().filter(|o| self.matters(o)).count()
    }

    fn matters(&self, o: &Out) -> bool {
        self.dest.get(&o.flow).is_none_or(|&d| o.hop <= d)
    }

    /// Take the probes to send now, in order.
    pub fn take_sends(&mut self) -> Vec<ProbeSpec> {
        std::mem::take(&mut self.outbox)
    }

    /// The driver sent probe `seq` at `at`.
    pub fn sent_at(&mut self, seq: u64, at: SystemTime) {
        if let Some(o) = self.out.get_mut(&seq) {
            o.sent = Some(at);
        }
    }

    /// A verdict from the prober (an interrupted probe concludes nothing).
    pub fn on_result(&mut self, r: PingResult) {
        let Some(o) = self.out.remove(&r.seq) else {
            return;
        };
        let Some(answer) = Answer::of(&r.status) else {
            return;
        };
        if !self.matters(&o) {
            return;
        }
        let from = match (&answer, &r.status) {
            (Answer::Reached { .. }, _) => Some(self.target.ip()),
            (_, crate::probe::Status::Icmp(rep)) => Some(rep.from),
            _ => None,
        };
        let rtt = match &answer {
            Answer::Reached { .. } => r.connect,
            a => a.icmp().map(|rep| rep.after),
        };
        if matches!(answer, Answer::Reached { .. } | Answer::Unreachable(_)) {
            let d = self.dest.entry(o.flow).or_insert(o.hop);
            *d = (*d).min(o.hop);
        }
        let answered = answer.answered();
        if answer == Answer::Timeout {
            self.timeouts += 1;
        }
        if let (Some(&d), Some(hops)) = (self.dest.get(&o.flow), self.paths.get_mut(&o.flow)) {
            // Answers above where the flow ended (they came first) do not count.
            hops.retain(|&h, _| h <= d);
        }
        self.outcomes.insert(
            (o.hop, o.flow),
            Outcome {
                cycle: 1,
                hop: o.hop,
                flow: o.flow,
                query: 0,
                seq: r.seq,
                reprobe: false,
                answer,
                from,
                rtt,
                sent_at: o.sent.unwrap_or(r.sent_at),
                local_port: r.local_port,
                tcp_seq: r.tcp_seq,
                seen: r.seen,
            },
        );
        self.paths
            .entry(o.flow)
            .or_default()
            .insert(o.hop, if answered { from } else { None });
        // A probe where the flow was taken to cross a router: it says where it did.
        self.assumed.retain(|&(f, h, _)| (f, h) != (o.flow, o.hop));
    }

    /// Between rounds: plan the next one (its probes go to the outbox), or end the search.
    /// Returns false when the search is over.
    pub fn next_round(&mut self) -> bool {
        if self.done {
            return false;
        }
        loop {
            let wants = self.plan();
            if !wants.is_empty() {
                self.rounds += 1;
                for (hop, flow) in wants {
                    self.send(hop, flow);
                }
                return true;
            }
            // This hop is as done as it gets: on to the next, if any flow goes on.
            if self.hop >= self.max_hops || !self.any_alive(self.hop + 1) {
                self.done = true;
                return false;
            }
            self.hop += 1;
        }
    }

    /// The hops each concluded (in hop order, outcomes in flow order), once the search is
    /// over: what the per-hop accounting and the output take.
    pub fn hops_done(&self) -> Vec<HopDone> {
        let mut by_hop: BTreeMap<u8, Vec<Outcome>> = BTreeMap::new();
        for ((hop, flow), o) in &self.outcomes {
            if self.dest.get(flow).is_none_or(|d| hop <= d) {
                by_hop.entry(*hop).or_default().push(o.clone());
            }
        }
        by_hop
            .into_iter()
            .map(|(hop, outcomes)| HopDone {
                cycle: 1,
                hop,
                outcomes,
            })
            .collect()
    }

    fn send(&mut self, hop: u8, flow: u16) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sent += 1;
        self.out.insert(
            seq,
            Out {
                hop,
                flow,
                sent: None,
            },
        );
        self.outbox.push(ProbeSpec {
            seq,
            target: self.target,
            ttl: Some(hop),
            flow,
        });
    }

    /// Whether `flow` may be probed at `hop`: it has not ended below, nor been silent on
    /// [`GAP`] probed hops in a row just below.
    fn alive(&self, flow: u16, hop: u8) -> bool {
        if self.dest.get(&flow).is_some_and(|&d| d < hop) {
            return false;
        }
        let Some(hops) = self.paths.get(&flow) else {
            return true;
        };
        let silent = (1..hop)
            .rev()
            .take(usize::from(GAP))
            .filter(|j| matches!(hops.get(j), Some(None)))
            .count();
        silent < usize::from(GAP)
    }

    fn any_alive(&self, hop: u8) -> bool {
        self.paths.keys().any(|&f| self.alive(f, hop))
    }

    /// The probes the rule still lacks at hops 1 to the current one: (hop, flow).
    fn plan(&mut self) -> Vec<(u8, u16)> {
        self.drop_broken_assumptions();
        let assumed = self.assumed_set();
        let a = router_alpha(&self.paths, self.alpha, &assumed);
        let mut wants: BTreeSet<(u8, u16)> = BTreeSet::new();
        for hop in 1..=self.hop {
            let gs = groups(&self.paths, hop, &assumed);
            // Routers below this hop whose flows go on to it: each gets its group.
            let mut preds: BTreeSet<Pred> = gs.keys().copied().collect();
            if hop == 1 {
                preds.insert(Pred::Source);
            }
            for (&f, hops) in &self.paths {
                if !hops.contains_key(&hop) && self.alive(f, hop) {
                    if let Some(p) = pred(hops, hop) {
                        preds.insert(p);
                    }
                }
            }
            // New flows wanted, per hop of the routers short of flows: the most any of them
            // needs (the new flows land on every router of that hop, each its share).
            let mut demand: BTreeMap<u8, (Pred, usize)> = BTreeMap::new();
            for p in preds {
                let g = gs.get(&p).cloned().unwrap_or_default();
                let need = flows_needed(g.k(), a);
                let mut short = need.saturating_sub(g.have());
                if short == 0 {
                    continue;
                }
                // Flows known to cross it, not probed here yet.
                for (&f, hops) in &self.paths {
                    if short == 0 {
                        break;
                    }
                    if !hops.contains_key(&hop)
                        && self.alive(f, hop)
                        && pred(hops, hop) == Some(p)
                        && wants.insert((hop, f))
                    {
                        short -= 1;
                    }
                }
                if short > 0 {
                    let n = self.new_needed(p, short, &assumed);
                    let d = demand.entry(p.hop()).or_insert((p, 0));
                    d.1 = d.1.max(n);
                }
            }
            for (p, n) in demand.into_values() {
                self.new_flows(p, hop, n, &mut wants);
            }
            self.fill_links(hop, &mut wants);
        }
        wants.into_iter().collect()
    }

    /// A hop taken to have one router has more now (the rule missed one there, as it may
    /// at its bound): the flows taken to cross it without a probe no longer say whom they
    /// crossed.
    fn drop_broken_assumptions(&mut self) {
        let paths = &self.paths;
        let broken: Vec<(u16, u8)> = self
            .assumed
            .iter()
            .filter(|&&(_, j, addr)| {
                paths
                    .values()
                    .any(|h| h.get(&j).is_some_and(|s| *s != Some(addr)))
            })
            .map(|&(f, j, _)| (f, j))
            .collect();
        for (f, j) in broken {
            if let Some(h) = self.paths.get_mut(&f) {
                h.remove(&j);
            }
            self.assumed.retain(|x| (x.0, x.1) != (f, j));
        }
    }

    /// `short` more flows through `p` are needed: how many new flows it takes for `short` of
    /// them to cross `p`, by `p`'s share of the flows under the rule's own model (every
    /// router hashes flows uniformly over its next hops seen: [`model_share`]), or, where
    /// nothing says whom `p` hangs off, an even share of its hop's routers. Not the share
    /// the flows so far show: on a few flows it strays far from the model (one of 17 flows
    /// through a branch of three), and dividing by it sent up to 64 new flows where 18 were
    /// due. Aimed at [`MARGIN`] above the shortfall, unless every flow crosses `p`. Where a
    /// router truly gets less than the model says, the next round finds it still short and
    /// sends more: rounds, never confidence.
    fn new_needed(&self, p: Pred, short: usize, assumed: &Assumed) -> usize {
        let share = model_share(&self.paths, p, assumed).unwrap_or_else(|| {
            let routers: BTreeSet<IpAddr> = self
                .paths
                .values()
                .filter_map(|h| h.get(&p.hop()).copied().flatten())
                .collect();
            1.0 / routers.len().max(1) as f64
        });
        if share >= 1.0 {
            // Every new flow crosses it.
            return short.min(NEW_PER_ROUND);
        }
        (((short as f64 + MARGIN) / share.max(1.0 / 32.0)).ceil() as usize).min(NEW_PER_ROUND)
    }

    /// `n` new flows through `p`'s hop, probed from there (from the hop above, when `p` is
    /// the only router of its hop: they cross it) up to `hop`; or, when `p`'s hop is the one
    /// below and has several routers, only there (which router they cross decides whether
    /// they are worth a probe at `hop`).
    fn new_flows(&mut self, p: Pred, hop: u8, n: usize, wants: &mut BTreeSet<(u8, u16)>) {
        // The only router of its hop: every flow crosses it, no need to probe there.
        let only = match p {
            Pred::Node(j, addr) => self
                .paths
                .values()
                .filter_map(|h| h.get(&j))
                .all(|s| *s == Some(addr)),
            Pred::Source => false,
        };
        let from = if only { p.hop() + 1 } else { p.hop().max(1) };
        // Where the hop below has several routers, a new flow is probed there first: the
        // next round takes on only those that crossed a router still short of flows.
        let to = if !only && p.hop() + 1 == hop && p.hop() >= 1 {
            p.hop()
        } else {
            hop
        };
        for _ in 0..n {
            if self.next_flow >= self.max_flows {
                return;
            }
            let f = self.next_flow;
            self.next_flow += 1;
            let path = self.paths.entry(f).or_default();
            if let (true, Pred::Node(j, addr)) = (only, p) {
                path.insert(j, Some(addr));
                self.assumed.push((f, j, addr));
            }
            for h in from..=to {
                wants.insert((h, f));
            }
        }
    }

    /// A router at `hop` met only on flows whose hops below were not probed (or were taken
    /// to cross the only router of a hop, unprobed: a router seen on them alone might hang
    /// off one that the rule missed there): one of those flows probed at the highest hop
    /// below that it lacks, or was assumed at, so that the router's link is known.
    fn fill_links(&self, hop: u8, wants: &mut BTreeSet<(u8, u16)>) {
        let mut known: BTreeSet<IpAddr> = BTreeSet::new();
        let mut unknown: BTreeMap<IpAddr, (u16, u8)> = BTreeMap::new();
        for (&f, hops) in &self.paths {
            let Some(Some(a)) = hops.get(&hop) else {
                continue;
            };
            let below = match pred(hops, hop) {
                Some(Pred::Node(j, _)) if self.assumed.iter().any(|x| (x.0, x.1) == (f, j)) => {
                    Some(j)
                }
                Some(_) => None,
                None => (1..hop).rev().find(|j| !hops.contains_key(j)),
            };
            match below {
                None => {
                    known.insert(*a);
                }
                Some(j) => {
                    unknown.entry(*a).or_insert((f, j));
                }
            }
        }
        for (a, (f, j)) in unknown {
            if !known.contains(&a) {
                wants.insert((j, f));
            }
        }
    }
}

#[cfg(test)]
#[path = "mda_tests.rs"]
mod tests;
