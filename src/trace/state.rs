//! Per-hop accounting of a trace: what the strategy concluded, folded into statistics over
//! cycles (loss, last/avg/best/worst/stddev of the round-trip times, as mtr reports them),
//! the routers seen at each hop and which flows saw them, their MPLS labels and interface
//! information. Pure: fed [`HopDone`]s, read by the verdict and the output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::engine::{Answer, HopDone, Outcome};
use super::mda::{rules, HopRule, Paths};
use super::middlebox::Middlebox;
use crate::icmp::extension::{InterfaceInfo, MplsLabel};
use crate::stats::Summary;

/// Distinct label stacks / interfaces kept per router.
const KEPT: usize = 4;

/// An ICMP error that ended probes at a hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpSeen {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub info: u32,
    pub count: u64,
}

/// One address that answered at a hop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Router {
    pub addr: Option<IpAddr>,
    /// Answers from it at this hop.
    pub count: u64,
    /// The flows whose probes it answered.
    pub flows: BTreeSet<u16>,
    pub time_exceeded: u64,
    /// The target's answers: SYN-ACK / RST.
    pub open: u64,
    pub closed: u64,
    /// Other ICMP errors (destination unreachable, ...).
    pub errors: Vec<IcmpSeen>,
    /// Distinct MPLS label stacks it reported.
    pub mpls: Vec<Vec<MplsLabel>>,
    /// Distinct interface information it reported.
    pub interfaces: Vec<InterfaceInfo>,
    pub rtt: Summary,
}

/// One flow at one hop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowHop {
    pub sent: u64,
    pub received: u64,
    /// Routers that answered time exceeded.
    pub routers: BTreeSet<IpAddr>,
    /// The target answered (open when any SYN-ACK came).
    pub reached: Option<bool>,
    /// The first other ICMP error: (from, v6, type, code, info).
    pub error: Option<(IpAddr, bool, u8, u8, u32)>,
}

/// One hop over every cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hop {
    pub hop: u8,
    /// Queries with a verdict (timeouts included, interrupted ones not).
    pub sent: u64,
    pub received: u64,
    pub rtt: Summary,
    pub routers: Vec<Router>,
    pub flows: BTreeMap<u16, FlowHop>,
    /// Local errors (a probe that could not be sent), distinct.
    pub local_errors: Vec<String>,
    /// The last cycle's verdicts, in query then flow order (for traceroute-style lines).
    pub last_cycle: Vec<Outcome>,
}

impl Hop {
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * (self.sent - self.received) as f64 / self.sent as f64
    }

    /// Flows that got any answer at this hop.
    pub fn flows_answered(&self) -> usize {
        self.flows.values().filter(|f| f.received > 0).count()
    }

    /// Distinct answering addresses.
    pub fn next_hops(&self) -> usize {
        self.routers.iter().filter(|r| r.addr.is_some()).count()
    }

    fn router_mut(&mut self, addr: IpAddr) -> &mut Router {
        let i = match self.routers.iter().position(|r| r.addr == Some(addr)) {
            Some(i) => i,
            None => {
                self.routers.push(Router {
                    addr: Some(addr),
                    ..Router::default()
                });
                self.routers.len() - 1
            }
        };
        &mut self.routers[i]
    }

    fn record(&mut self, o: &Outcome) {
        self.sent += 1;
        let flow = self.flows.entry(o.flow).or_default();
        flow.sent += 1;
        if let Answer::Error(e) = &o.answer {
            if !self.local_errors.contains(e) {
                self.local_errors.push(e.clone());
            }
            return;
        }
        let (Some(from), true) = (o.from, o.answer.answered()) else {
            return;
        };
        self.received += 1;
        flow.received += 1;
        match &o.answer {
            Answer::TimeExceeded(_) => {
                flow.routers.insert(from);
            }
            Answer::Reached { open } => {
                flow.reached = Some(flow.reached.unwrap_or(false) || *open);
            }
            Answer::Unreachable(rep) if flow.error.is_none() => {
                flow.error = Some((from, rep.v6, rep.icmp_type, rep.code, rep.info));
            }
            _ => {}
        }
        if let Some(d) = o.rtt {
            self.rtt.record(d);
        }
        let r = self.router_mut(from);
        r.count += 1;
        r.flows.insert(o.flow);
        if let Some(d) = o.rtt {
            r.rtt.record(d);
        }
        match &o.answer {
            Answer::TimeExceeded(_) => r.time_exceeded += 1,
            Answer::Reached { open: true } => r.open += 1,
            Answer::Reached { open: false } => r.closed += 1,
            Answer::Unreachable(rep) => {
                match r
                    .errors
                    .iter_mut()
                    .find(|e| (e.icmp_type, e.code, e.v6) == (rep.icmp_type, rep.code, rep.v6))
                {
                    Some(e) => e.count += 1,
                    None => r.errors.push(IcmpSeen {
                        v6: rep.v6,
                        icmp_type: rep.icmp_type,
                        code: rep.code,
                        info: rep.info,
                        count: 1,
                    }),
                }
            }
            _ => {}
        }
        if let Some(ext) = o.answer.icmp().and_then(|rep| rep.extensions.as_deref()) {
            if !ext.mpls.is_empty() && !r.mpls.contains(&ext.mpls) && r.mpls.len() < KEPT {
                r.mpls.push(ext.mpls.clone());
            }
            for i in &ext.interfaces {
                if !r.interfaces.contains(i) && r.interfaces.len() < KEPT {
                    r.interfaces.push(i.clone());
                }
            }
        }
    }

    /// The most frequent answering address.
    pub fn main_router(&self) -> Option<IpAddr> {
        self.routers
            .iter()
            .filter(|r| r.addr.is_some())
            .max_by_key(|r| r.count)
            .and_then(|r| r.addr)
    }
}

/// Everything a trace has concluded.
#[derive(Clone, Debug)]
pub struct TraceState {
    pub target: SocketAddr,
    pub max_hops: u8,
    pub queries: u16,
    pub flows: u16,
    pub hops: BTreeMap<u8, Hop>,
    /// Cycles whose every hop was reported.
    pub cycles_done: u64,
    /// The failure probability the flows are counted against (1 - the confidence).
    pub alpha: f64,
    /// The adaptive search (`--multipath`) made the hops.
    pub multipath: bool,
    /// Flows the search took to cross the only router of a hop without probing them there:
    /// (flow, hop, router).
    pub assumed: Vec<(u16, u8, IpAddr)>,
    /// Flows the search had no need to probe up to where they end: no verdict of their own.
    pub unfinished: BTreeSet<u16>,
    /// What the routers' quotes show of middleboxes (SYN probes: `Middlebox::probing`).
    pub middlebox: Middlebox,
}

impl TraceState {
    pub fn new(target: SocketAddr, max_hops: u8, queries: u16, flows: u16) -> TraceState {
        TraceState {
            target,
            max_hops,
            queries,
            flows: flows.max(1),
            hops: BTreeMap::new(),
            cycles_done: 0,
            alpha: MDA_ALPHA,
            multipath: false,
            assumed: Vec::new(),
            unfinished: BTreeSet::new(),
            middlebox: Middlebox::default(),
        }
    }

    /// Take one hop's verdicts of one cycle.
    pub fn record(&mut self, done: &HopDone) {
        let hop = self.hops.entry(done.hop).or_insert_with(|| Hop {
            hop: done.hop,
            ..Hop::default()
        });
        for o in &done.outcomes {
            hop.record(o);
        }
        hop.last_cycle = done.outcomes.clone();
        self.middlebox.record(self.target, done);
    }

    /// Hops from 1 up to the last one reported, in order.
    pub fn hops(&self) -> impl Iterator<Item = &Hop> {
        self.hops.values()
    }

    /// Each flow's hops: who answered it at each hop probed (None: silent).
    pub fn paths(&self) -> Paths {
        let mut paths = Paths::new();
        for (&hop, h) in &self.hops {
            for (&f, fh) in &h.flows {
                let seen = if fh.received == 0 {
                    None
                } else if let Some(r) = fh.routers.first() {
                    Some(*r)
                } else if fh.reached.is_some() {
                    Some(self.target.ip())
                } else {
                    fh.error.map(|e| e.0)
                };
                paths.entry(f).or_default().insert(hop, seen);
            }
        }
        for &(f, hop, addr) in &self.assumed {
            paths.entry(f).or_default().entry(hop).or_insert(Some(addr));
        }
        paths
    }

    /// The stopping rule of the multipath detection algorithm applied per router (see
    /// [`mda`](super::mda)), at each hop: None with one flow.
    pub fn flow_rules(&self) -> Option<BTreeMap<u8, HopRule>> {
        let assumed = self.assumed.iter().map(|&(f, h, _)| (f, h)).collect();
        (self.flows > 1 || self.multipath).then(|| rules(&self.paths(), self.alpha, &assumed))
    }

    /// Whether a hop rate-limits its ICMP rather than breaking the path: it lost some of its
    /// probes (not all) while a later hop lost a smaller share.
    pub fn rate_limited(&self, hop: u8) -> bool {
        let Some(h) = self.hops.get(&hop) else {
            return false;
        };
        let loss = h.loss_pct();
        loss > 0.0
            && h.received > 0
            && self
                .hops
                .range(hop.saturating_add(1)..)
                .any(|(_, later)| later.received > 0 && later.loss_pct() < loss)
    }
}

pub use super::mda::flows_needed;

/// The confidence the stopping rule is used with.
pub const MDA_ALPHA: f64 = 0.05;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_points_of_the_multipath_detection_algorithm() {
        // Two next hops hidden behind one seen: 2 * (1/2)^n <= 0.05 first at n = 6.
        assert_eq!(flows_needed(1, 0.05), 6);
        let table: Vec<usize> = (1..=6).map(|k| flows_needed(k, 0.05)).collect();
        assert_eq!(table, [6, 11, 16, 21, 27, 33]);
        // Stricter confidence needs more flows; more next hops need more flows.
        assert!(flows_needed(1, 0.01) > 6);
        assert!(table.windows(2).all(|w| w[0] < w[1]));
    }
}
