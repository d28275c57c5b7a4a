//! The verdict of a trace, in words and as fields: reached (open or closed), the path ends at
//! a router that refuses, the packets circle between routers (a routing loop), it goes
//! silent after the last hop that answers, or nothing answered; and partial: some flows
//! reach the target while others break, grouped by the branch where they break.
//! Pure: computed from a [`TraceState`] per flow, then combined ([`verdict`]); a single
//! flow that broke is weighed against a few other flows ([`with_other_flows`]).
//!
//! A hop that answers some probes and not others while later hops answer is rate-limiting
//! its ICMP (common: routers answer time exceeded from a slow path with a token bucket),
//! not breaking the path: only what answers last matters for where the path stops.

use std::net::{IpAddr, SocketAddr};

use super::engine::{find_loop, Answer};
use super::state::TraceState;
use crate::icmp::parse::describe;

/// How the trace ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The target answered at `hop`: SYN-ACK (open) or RST (closed).
    Reached { hop: u8, open: bool },
    /// `router` refused probes sent past it with an ICMP error (destination unreachable,
    /// prohibited): the error came to probes of hop `probe_hop`; `hop` is where the router
    /// sits (the hop below when it also answered time exceeded there).
    PathEnds {
        hop: u8,
        probe_hop: u8,
        router: IpAddr,
        v6: bool,
        icmp_type: u8,
        code: u8,
        info: u32,
    },
    /// A routing loop: from hop `hop` on, the probes meet `routers` over and over (seen
    /// twice in a row up to hop `until`), until their TTL runs out.
    Loop {
        hop: u8,
        routers: Vec<IpAddr>,
        until: u8,
    },
    /// `hop` (router `router`) is the last that answers; nothing beyond it does.
    SilentAfter { hop: u8, router: Option<IpAddr> },
    /// Every hop up to the last probed one forwards (time exceeded): the target is further.
    TooFar { hop: u8, router: Option<IpAddr> },
    /// Nothing answered at all (or no probe could be sent: `error`).
    Nothing { error: Option<String> },
    /// Some flows reached the target (at `hop`, the lowest; None when only flows probed
    /// straight at the target did, [`with_other_flows`]), the others broke: `broken`, one
    /// entry per branch, the largest first.
    Partial {
        hop: Option<u8>,
        open: bool,
        broken: Vec<Branch>,
    },
}

/// How the flows of a broken branch fail.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum How {
    /// Nothing answers beyond the branch's hop (or, hop 0, nothing answered at all).
    Silent,
    /// Its router refuses them with this ICMP error.
    Refused {
        v6: bool,
        icmp_type: u8,
        code: u8,
        info: u32,
    },
    /// They circle between these routers.
    Loop { routers: Vec<IpAddr> },
}

impl How {
    /// Its name in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            How::Silent => "silent",
            How::Refused { .. } => "refused",
            How::Loop { .. } => "loop",
        }
    }
}

/// Flows that break the same way at the same place: a branch of a load-balanced path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branch {
    /// Where they break: the last hop that answers (silent), the refusing router's hop, the
    /// loop's first hop; 0 when nothing answered them at all.
    pub hop: u8,
    /// The router at that hop.
    pub router: Option<IpAddr>,
    pub how: How,
    pub flows: Vec<u16>,
}

impl Branch {
    /// The branch a flow's own verdict puts it on (None: it reached).
    fn of(kind: &Kind, flow: u16) -> Option<Branch> {
        let (hop, router, how) = match kind {
            Kind::Reached { .. } | Kind::Partial { .. } => return None,
            Kind::SilentAfter { hop, router } | Kind::TooFar { hop, router } => {
                (*hop, *router, How::Silent)
            }
            Kind::PathEnds { hop, router, .. } => (*hop, Some(*router), refusal(kind)),
            Kind::Loop { hop, routers, .. } => (
                *hop,
                routers.first().copied(),
                How::Loop {
                    routers: routers.clone(),
                },
            ),
            Kind::Nothing { .. } => (0, None, How::Silent),
        };
        Some(Branch {
            hop,
            router,
            how,
            flows: vec![flow],
        })
    }

    fn same_place(&self, other: &Branch) -> bool {
        (self.hop, self.router, &self.how) == (other.hop, other.router, &other.how)
    }

    /// "the 6 through 10.78.13.2 (hop 2) are silent after hop 2 (10.78.13.2): it drops TCP
    /// to port 12011".
    fn text(&self, target: SocketAddr) -> String {
        let n = self.flows.len();
        let (who, are) = if n == 1 {
            ("the one".to_string(), "is")
        } else {
            (format!("the {n}"), "are")
        };
        let at = match self.router {
            Some(r) => format!("{who} through {r} (hop {})", self.hop),
            None => format!(
                "{who} on flow{} {}",
                if n == 1 { "" } else { "s" },
                flow_list(&self.flows)
            ),
        };
        let port = target.port();
        match (&self.how, self.router) {
            (How::Silent, _) if self.hop == 0 => {
                format!("{at} {are} answered by nothing, not even hop 1")
            }
            (How::Silent, r) => {
                let r = r.map(|r| format!(" ({r})")).unwrap_or_default();
                format!(
                    "{at} {are} silent after hop {}{r}: it drops TCP to port {port}",
                    self.hop
                )
            }
            (
                How::Refused {
                    v6,
                    icmp_type,
                    code,
                    info,
                },
                r,
            ) => {
                let reason = describe(*v6, *icmp_type, *code, *info).reason;
                let r = r.map_or("a router".to_string(), |r| r.to_string());
                format!("{at} {are} refused at hop {}: {r} says {reason}", self.hop)
            }
            (How::Loop { routers }, _) => {
                let circle = if n == 1 { "circles" } else { "circle" };
                format!(
                    "{at} {circle} in a routing loop between {}",
                    and_list(routers)
                )
            }
        }
    }
}

/// How a refusing router's flows fail (its ICMP error); silent for another verdict.
fn refusal(kind: &Kind) -> How {
    match *kind {
        Kind::PathEnds {
            v6,
            icmp_type,
            code,
            info,
            ..
        } => How::Refused {
            v6,
            icmp_type,
            code,
            info,
        },
        _ => How::Silent,
    }
}

/// Flows the same way the other flows of a trace are told: "0,2,4".
fn flow_list(flows: &[u16]) -> String {
    let s: Vec<String> = flows.iter().map(u16::to_string).collect();
    s.join(",")
}

/// Group flows' verdicts into branches, the largest first (then by hop).
fn branches(per_flow: &[(u16, Kind)]) -> Vec<Branch> {
    let mut out: Vec<Branch> = Vec::new();
    for (f, k) in per_flow {
        let Some(b) = Branch::of(k, *f) else {
            continue;
        };
        match out.iter_mut().find(|x| x.same_place(&b)) {
            Some(x) => x.flows.push(*f),
            None => out.push(b),
        }
    }
    out.sort_by_key(|b| (std::cmp::Reverse(b.flows.len()), b.hop));
    out
}

impl Kind {
    /// The verdict's name in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Reached { .. } => "reached",
            Kind::Partial { .. } => "partial",
            Kind::PathEnds { .. } => "path_ends",
            Kind::Loop { .. } => "loop",
            Kind::SilentAfter { .. } => "silent_after",
            Kind::TooFar { .. } | Kind::Nothing { .. } => "not_reached",
        }
    }

    /// The hop the verdict is about (where it was reached, or broke).
    pub fn hop(&self) -> Option<u8> {
        match self {
            Kind::Reached { hop, .. }
            | Kind::PathEnds { hop, .. }
            | Kind::Loop { hop, .. }
            | Kind::SilentAfter { hop, .. }
            | Kind::TooFar { hop, .. } => Some(*hop),
            Kind::Partial { hop, .. } => *hop,
            Kind::Nothing { .. } => None,
        }
    }

    /// Where the path breaks (the largest broken branch's hop for a partial path); None when
    /// reached, or when nothing answered.
    pub fn break_hop(&self) -> Option<u8> {
        match self {
            Kind::Reached { .. } => None,
            Kind::Partial { broken, .. } => broken.first().map(|b| b.hop).filter(|h| *h > 0),
            k => k.hop(),
        }
    }

    /// The router where the path breaks.
    pub fn router(&self) -> Option<IpAddr> {
        match self {
            Kind::PathEnds { router, .. } => Some(*router),
            Kind::SilentAfter { router, .. } => *router,
            Kind::Loop { routers, .. } => routers.first().copied(),
            Kind::Partial { broken, .. } => broken.first().and_then(|b| b.router),
            _ => None,
        }
    }
}

/// The verdict of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: Kind,
    /// Flows that reached the target, of all flows that got a verdict.
    pub flows_reached: usize,
    pub flows: usize,
    /// The verdict of each flow that disagrees with `kind` (flow, verdict).
    pub dissent: Vec<(u16, Kind)>,
    /// Where the flows reached the target, when not all at the same hop: each hop, its
    /// flows, and the branch they took there (the first hop where their routers are
    /// none of the other flows': hop, router).
    pub lengths: Vec<Length>,
    /// After a single flow broke: other flows tried, and how many reached the target.
    pub other_flows: Option<(usize, usize)>,
    pub text: String,
    /// `trace --size`: what the sized SYNs found about the MTU (set by the driver).
    pub mtu: Option<super::mtu::MtuFinding>,
}

/// Flows that reached the target at one hop, when others reached it at another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Length {
    pub hop: u8,
    pub flows: Vec<u16>,
    /// (hop, router): where their branch leaves the others'.
    pub through: Option<(u8, IpAddr)>,
}

impl Verdict {
    pub fn reached(&self) -> bool {
        matches!(self.kind, Kind::Reached { .. })
    }

    /// Some flows reached the target, others broke.
    pub fn partial(&self) -> bool {
        matches!(self.kind, Kind::Partial { .. })
    }

    /// Flows that did not reach the target.
    pub fn flows_broken(&self) -> usize {
        self.flows - self.flows_reached
    }

    /// The exit status it makes: 0 reached, 3 partial, 1 not reached.
    pub fn exit_status(&self) -> i32 {
        match self.kind {
            Kind::Reached { .. } => 0,
            Kind::Partial { .. } => 3,
            _ => 1,
        }
    }
}

fn hops_word(n: u8) -> &'static str {
    if n == 1 {
        "hop"
    } else {
        "hops"
    }
}

/// The verdict of one flow (or of all together: `flow` None).
fn judge(state: &TraceState, flow: Option<u16>) -> Kind {
    let mut reached: Option<(u8, bool)> = None;
    let mut refused: Option<(u8, IpAddr, bool, u8, u8, u32)> = None;
    let mut last_answer: Option<u8> = None;
    let mut errors: Option<String> = None;
    for h in state.hops() {
        let flows: Vec<_> = h
            .flows
            .iter()
            .filter(|(f, _)| flow.is_none_or(|x| x == **f))
            .map(|(_, fh)| fh)
            .collect();
        for fh in &flows {
            if let Some(open) = fh.reached {
                if reached.is_none_or(|(rh, _)| rh == h.hop) {
                    let was = reached.is_some_and(|(_, o)| o);
                    reached = Some((h.hop, was || open));
                }
            }
            if let (Some((from, v6, t, c, info)), None) = (fh.error, refused) {
                refused = Some((h.hop, from, v6, t, c, info));
            }
            if fh.received > 0 {
                last_answer = Some(h.hop);
            }
        }
        if errors.is_none() {
            errors = h.local_errors.first().cloned();
        }
    }
    if let (None, None) = (reached, refused) {
        if let Some(l) = find_loop(&single_routers(state, flow)) {
            return Kind::Loop {
                hop: l.from_hop,
                routers: l.routers,
                until: l.certain_at,
            };
        }
    }
    match (reached, refused) {
        (Some((hop, open)), r) if r.is_none_or(|r| hop <= r.0) => Kind::Reached { hop, open },
        (_, Some((probe_hop, router, v6, icmp_type, code, info))) => {
            // A router that refuses after the TTL check answered time exceeded one hop
            // lower: that is where it sits.
            let below = probe_hop.checked_sub(1).and_then(|b| state.hops.get(&b));
            let seen_below = below.is_some_and(|b| {
                b.flows
                    .iter()
                    .filter(|(f, _)| flow.is_none_or(|x| x == **f))
                    .any(|(_, fh)| fh.routers.contains(&router))
            });
            Kind::PathEnds {
                hop: if seen_below { probe_hop - 1 } else { probe_hop },
                probe_hop,
                router,
                v6,
                icmp_type,
                code,
                info,
            }
        }
        _ => match last_answer {
            Some(hop) => {
                let router = state.hops.get(&hop).and_then(|h| {
                    h.routers
                        .iter()
                        .filter(|r| flow.is_none_or(|f| r.flows.contains(&f)))
                        .max_by_key(|r| r.count)
                        .and_then(|r| r.addr)
                });
                if hop >= state.max_hops {
                    Kind::TooFar { hop, router }
                } else {
                    Kind::SilentAfter { hop, router }
                }
            }
            None => Kind::Nothing { error: errors },
        },
    }
}

/// Each hop's one router (of `flow`, or of all flows), from hop 1 on: None where the hop
/// was silent, reached the target, was refused, or had several routers.
fn single_routers(state: &TraceState, flow: Option<u16>) -> Vec<Option<IpAddr>> {
    let last = state.hops.keys().next_back().copied().unwrap_or(0);
    (1..=last)
        .map(|hop| {
            let h = state.hops.get(&hop)?;
            let mut one: Option<IpAddr> = None;
            let mut any = false;
            for (_, fh) in h
                .flows
                .iter()
                .filter(|(f, _)| flow.is_none_or(|x| x == **f))
            {
                if fh.reached.is_some() || fh.error.is_some() || fh.routers.len() > 1 {
                    return None;
                }
                for r in &fh.routers {
                    if one.is_some_and(|o| o != *r) {
                        return None;
                    }
                    one = Some(*r);
                    any = true;
                }
            }
            one.filter(|_| any)
        })
        .collect()
}

/// "A and B", "A, B and C".
fn and_list(items: &[IpAddr]) -> String {
    let s: Vec<String> = items.iter().map(IpAddr::to_string).collect();
    match s.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn text_of(kind: &Kind, target: SocketAddr, timeout_text: &str) -> String {
    let port = target.port();
    match kind {
        Kind::Reached { hop, open } => format!(
            "reached {target} ({}) in {hop} {}",
            if *open { "open" } else { "closed" },
            hops_word(*hop)
        ),
        Kind::PathEnds {
            hop,
            router,
            v6,
            icmp_type,
            code,
            info,
            ..
        } => {
            let reason = describe(*v6, *icmp_type, *code, *info).reason;
            let who = if *router == target.ip() {
                format!("{router} (the target itself)")
            } else {
                router.to_string()
            };
            format!("path ends at hop {hop}: {who} says {reason}")
        }
        Kind::Loop { hop, routers, .. } => format!(
            "routing loop between {} from hop {hop}: packets to {target} circle until their TTL runs out",
            and_list(routers)
        ),
        Kind::SilentAfter { hop, router } => {
            let who = router.map_or(String::new(), |r| format!(" ({r})"));
            format!(
                "silent after hop {hop}{who}: nothing answers beyond it; something between hop {hop} and hop {} drops TCP to port {port}",
                hop + 1
            )
        }
        Kind::TooFar { hop, router } => {
            let who = router.map_or(String::new(), |r| format!(" ({r})"));
            format!(
                "not reached in {hop} {}: hop {hop}{who} still forwards toward {target}; try a larger --max-hops",
                hops_word(*hop)
            )
        }
        Kind::Partial { broken, .. } => {
            let parts: Vec<String> = broken.iter().map(|b| b.text(target)).collect();
            parts.join("; ")
        }
        Kind::Nothing { error: Some(e) } => format!("not reached: no probe could be sent: {e}"),
        Kind::Nothing { error: None } => format!(
            "not reached: nothing answered within {timeout_text}, not even hop 1; this host's firewall or the first hop drops TCP to port {port}, or no router on the way answers"
        ),
    }
}

/// The verdict over every flow. `timeout_text` is the timeout as the user gave it (for the
/// "nothing answered within ..." sentence).
pub fn verdict(state: &TraceState, timeout_text: &str) -> Verdict {
    let flows: Vec<u16> = {
        let mut v: Vec<u16> = state.hops().flat_map(|h| h.flows.keys().copied()).collect();
        // Flows the multipath search had no need to probe further say nothing of the path.
        v.retain(|f| !state.unfinished.contains(f));
        v.sort_unstable();
        v.dedup();
        v
    };
    let per_flow: Vec<(u16, Kind)> = flows.iter().map(|&f| (f, judge(state, Some(f)))).collect();
    let reached_at: Vec<(u16, u8)> = per_flow
        .iter()
        .filter_map(|(f, k)| match k {
            Kind::Reached { hop, .. } => Some((*f, *hop)),
            _ => None,
        })
        .collect();
    let flows_reached = reached_at.len();
    // The overall verdict: reached, at the lowest hop over all flows, when every flow
    // reached; partial when some did; else what all flows together say.
    let kind = if flows_reached > 0 {
        let hop = reached_at.iter().map(|(_, h)| *h).min().unwrap_or(0);
        let open = per_flow
            .iter()
            .any(|(_, k)| matches!(k, Kind::Reached { open: true, .. }));
        if flows_reached < per_flow.len() {
            Kind::Partial {
                hop: Some(hop),
                open,
                broken: branches(&per_flow),
            }
        } else {
            Kind::Reached { hop, open }
        }
    } else {
        judge(state, None)
    };
    let dissent: Vec<(u16, Kind)> = per_flow
        .iter()
        .filter(|(_, k)| match &kind {
            Kind::Partial { .. } => !matches!(k, Kind::Reached { .. }),
            kind => k.name() != kind.name(),
        })
        .cloned()
        .collect();
    let lengths = lengths(state, &reached_at);
    let mut text = text_of(&kind, state.target, timeout_text);
    match &kind {
        Kind::Partial { .. } => {
            text = format!(
                "reached {} on {flows_reached} of {} flows; {text}",
                state.target,
                per_flow.len()
            );
        }
        Kind::Reached { open, .. } if lengths.len() > 1 => {
            text = reached_text(state.target, *open, &lengths);
        }
        _ => {}
    }
    if flows.len() > 1 && !dissent.is_empty() && !matches!(kind, Kind::Partial { .. }) {
        let n = flows.len();
        text.push_str(&format!(" on {} of {n} flows", n - dissent.len()));
        for (f, k) in dissent.iter().take(3) {
            let t = text_of(k, state.target, timeout_text);
            let t = t.split(';').next().unwrap_or(&t).to_string();
            text.push_str(&format!("; flow {f}: {t}"));
        }
        if dissent.len() > 3 {
            text.push_str(&format!("; {} more flows likewise", dissent.len() - 3));
        }
    }
    Verdict {
        kind,
        flows_reached,
        // The flows judged (see `probed_above`).
        flows: per_flow.len(),
        dissent,
        lengths,
        other_flows: None,
        text,
        mtu: None,
    }
}

/// Where the flows reached the target, when not all at one hop (else empty): by hop, each
/// with the branch its flows took.
fn lengths(state: &TraceState, reached_at: &[(u16, u8)]) -> Vec<Length> {
    let mut out: Vec<Length> = Vec::new();
    for &(f, hop) in reached_at {
        match out.iter_mut().find(|l| l.hop == hop) {
            Some(l) => l.flows.push(f),
            None => out.push(Length {
                hop,
                flows: vec![f],
                through: None,
            }),
        }
    }
    if out.len() < 2 {
        return Vec::new();
    }
    out.sort_by_key(|l| l.hop);
    let lowest = out[0].hop;
    let routers = |h: u8, flows: &dyn Fn(u16) -> bool| -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = state.hops.get(&h).map_or(Vec::new(), |hop| {
            hop.flows
                .iter()
                .filter(|(f, _)| flows(**f))
                .flat_map(|(_, fh)| fh.routers.iter().copied())
                .collect()
        });
        v.sort();
        v.dedup();
        v
    };
    let reached: Vec<u16> = reached_at.iter().map(|(f, _)| *f).collect();
    for l in &mut out {
        let mine = &l.flows;
        l.through = (1..lowest).find_map(|h| {
            let own = routers(h, &|f| mine.contains(&f));
            let others = routers(h, &|f| reached.contains(&f) && !mine.contains(&f));
            match own.first() {
                Some(r) if own.iter().all(|a| !others.contains(a)) => Some((h, *r)),
                _ => None,
            }
        });
    }
    out
}

/// "reached 10.0.9.5:443 (open) in 4–5 hops: 4 for the 3 flows through 10.0.12.2 (hop 2),
/// 5 for the 3 through 10.0.13.2 (hop 2)".
fn reached_text(target: SocketAddr, open: bool, lengths: &[Length]) -> String {
    let (lo, hi) = (lengths[0].hop, lengths[lengths.len() - 1].hop);
    let parts: Vec<String> = lengths
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let n = l.flows.len();
            let who = match (n, i) {
                (1, _) => "the one flow".to_string(),
                (_, 0) => format!("the {n} flows"),
                _ => format!("the {n}"),
            };
            match l.through {
                Some((h, r)) => format!("{} for {who} through {r} (hop {h})", l.hop),
                None => format!(
                    "{} for flow{} {}",
                    l.hop,
                    if n == 1 { "" } else { "s" },
                    flow_list(&l.flows)
                ),
            }
        })
        .collect();
    format!(
        "reached {target} ({}) in {lo}\u{2013}{hi} hops: {}",
        if open { "open" } else { "closed" },
        parts.join(", ")
    )
}

/// What other flows said after a single flow broke (see [`with_other_flows`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherFlow {
    pub flow: u16,
    /// Who answered time exceeded at the hop where the first flow broke.
    pub router: Option<IpAddr>,
    /// The target answered (either probe of the flow).
    pub reached: Option<bool>,
    /// A refusal on the way: (router, v6, type, code, info).
    pub refused: Option<(IpAddr, bool, u8, u8, u32)>,
}

impl OtherFlow {
    /// A flow and its two answers: at the break hop, and at the target.
    pub fn of(flow: u16, at_hop: Option<&Answer>, at_target: Option<&Answer>) -> OtherFlow {
        let mut o = OtherFlow {
            flow,
            router: None,
            reached: None,
            refused: None,
        };
        for a in [at_hop, at_target].into_iter().flatten() {
            match a {
                Answer::TimeExceeded(rep) if o.router.is_none() => o.router = Some(rep.from),
                Answer::Reached { open } => o.reached = Some(o.reached.unwrap_or(false) || *open),
                Answer::Unreachable(rep) if o.refused.is_none() => {
                    o.refused = Some((rep.from, rep.v6, rep.icmp_type, rep.code, rep.info));
                }
                _ => {}
            }
        }
        o
    }
}

/// The hop to probe other flows at when a single flow broke there (silent after it, refused
/// at it, a loop from it); None when the verdict does not name one.
pub fn break_to_retry(kind: &Kind) -> Option<u8> {
    match kind {
        Kind::SilentAfter { hop, .. } | Kind::PathEnds { hop, .. } | Kind::Loop { hop, .. } => {
            Some(*hop)
        }
        _ => None,
    }
}

/// A single flow's verdict `v`, weighed against other flows probed at its break hop and at
/// the target: some of them reach it: partial (a load-balanced branch breaks); none: the
/// verdict stands, saying so.
pub fn with_other_flows(mut v: Verdict, others: &[OtherFlow], target: SocketAddr) -> Verdict {
    let tried = others.len();
    let reached = others.iter().filter(|o| o.reached.is_some()).count();
    v.other_flows = Some((tried, reached));
    let Some(mut first) = Branch::of(&v.kind, 0) else {
        return v;
    };
    let port = target.port();
    if reached == 0 {
        v.text = format!("{}; none of {tried} other flows reach the target", v.text);
        return v;
    }
    let own_flows: Vec<u16> = (0..u16::try_from(v.flows).unwrap_or(1)).collect();
    first.flows = own_flows;
    let mut broken = vec![first.clone()];
    for o in others.iter().filter(|o| o.reached.is_none()) {
        let b = match o.refused {
            Some((r, v6, icmp_type, code, info)) => Branch {
                hop: first.hop,
                router: Some(r),
                how: How::Refused {
                    v6,
                    icmp_type,
                    code,
                    info,
                },
                flows: vec![o.flow],
            },
            None => Branch {
                hop: first.hop,
                router: o.router.or(first.router),
                how: match &first.how {
                    How::Refused { .. } => How::Silent,
                    h => h.clone(),
                },
                flows: vec![o.flow],
            },
        };
        match broken.iter_mut().find(|x| x.same_place(&b)) {
            Some(x) => x.flows.push(o.flow),
            None => broken.push(b),
        }
    }
    broken.sort_by_key(|b| (std::cmp::Reverse(b.flows.len()), b.hop));
    let here = match &v.kind {
        Kind::SilentAfter { hop, router } => {
            let r = router.map(|r| format!(" ({r})")).unwrap_or_default();
            format!("silent after hop {hop}{r}")
        }
        k @ Kind::PathEnds { .. } => {
            let t = text_of(k, target, "");
            t.split(';').next().unwrap_or(&t).to_string()
        }
        Kind::Loop { hop, routers, .. } => {
            format!("routing loop between {} from hop {hop}", and_list(routers))
        }
        _ => String::new(),
    };
    let does = match &first.how {
        How::Silent => format!("drops TCP to port {port}"),
        How::Refused { .. } => format!("refuses TCP to port {port}"),
        How::Loop { .. } => "loops".to_string(),
    };
    let through = first
        .router
        .map_or(format!("after hop {}", first.hop), |r| {
            format!("through {r}")
        });
    v.text = format!(
        "{here} on this flow; {reached} of {tried} other flows reach the target: a load-balanced branch {through} {does}"
    );
    let open = others.iter().any(|o| o.reached == Some(true));
    v.flows += tried;
    v.flows_reached = reached;
    v.kind = Kind::Partial {
        hop: None,
        open,
        broken,
    };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn broken_flows_are_grouped_by_where_and_how_they_break_largest_first() {
        let target: SocketAddr = "10.0.9.5:443".parse().unwrap();
        let silent = Kind::SilentAfter {
            hop: 2,
            router: Some(ip("10.0.13.2")),
        };
        let refused = Kind::PathEnds {
            hop: 3,
            probe_hop: 4,
            router: ip("10.0.16.2"),
            v6: false,
            icmp_type: 3,
            code: 13,
            info: 0,
        };
        let looped = Kind::Loop {
            hop: 3,
            routers: vec![ip("10.0.7.1"), ip("10.0.8.1")],
            until: 6,
        };
        let reached = Kind::Reached { hop: 4, open: true };
        let per_flow: Vec<(u16, Kind)> = vec![
            (0, reached.clone()),
            (1, refused.clone()),
            (2, silent.clone()),
            (3, refused.clone()),
            (4, looped.clone()),
            (5, refused),
            (6, silent),
            (7, Kind::Nothing { error: None }),
        ];
        let b = branches(&per_flow);
        let got: Vec<(u8, Option<IpAddr>, &str, Vec<u16>)> = b
            .iter()
            .map(|b| (b.hop, b.router, b.how.name(), b.flows.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (3, Some(ip("10.0.16.2")), "refused", vec![1, 3, 5]),
                (2, Some(ip("10.0.13.2")), "silent", vec![2, 6]),
                (0, None, "silent", vec![7]),
                (3, Some(ip("10.0.7.1")), "loop", vec![4]),
            ]
        );
        let kind = Kind::Partial {
            hop: Some(4),
            open: true,
            broken: b,
        };
        assert_eq!(kind.break_hop(), Some(3));
        assert_eq!(kind.router(), Some(ip("10.0.16.2")));
        assert_eq!(
            text_of(&kind, target, "1s"),
            "the 3 through 10.0.16.2 (hop 3) are refused at hop 3: 10.0.16.2 says communication administratively prohibited; \
             the 2 through 10.0.13.2 (hop 2) are silent after hop 2 (10.0.13.2): it drops TCP to port 443; \
             the one on flow 7 is answered by nothing, not even hop 1; \
             the one through 10.0.7.1 (hop 3) circles in a routing loop between 10.0.7.1 and 10.0.8.1"
        );
        assert_eq!(branches(&[(0, reached)]), []);
    }

    #[test]
    fn a_refused_flow_weighed_against_others_that_get_through_or_are_refused_elsewhere() {
        let target: SocketAddr = "10.0.9.5:443".parse().unwrap();
        let kind = Kind::PathEnds {
            hop: 2,
            probe_hop: 3,
            router: ip("10.0.13.2"),
            v6: false,
            icmp_type: 3,
            code: 13,
            info: 0,
        };
        let v = Verdict {
            text: text_of(&kind, target, "1s"),
            kind,
            flows_reached: 0,
            flows: 1,
            dissent: Vec::new(),
            lengths: Vec::new(),
            other_flows: None,
            mtu: None,
        };
        let reached = |flow| OtherFlow {
            flow,
            router: Some(ip("10.0.12.2")),
            reached: Some(false),
            refused: None,
        };
        let refused = |flow, by: &str| OtherFlow {
            flow,
            router: Some(ip(by)),
            reached: None,
            refused: Some((ip(by), false, 3, 13, 0)),
        };
        let others = [
            reached(1),
            refused(2, "10.0.13.2"),
            reached(3),
            refused(4, "10.0.14.2"),
        ];
        let w = with_other_flows(v.clone(), &others, target);
        assert_eq!(
            w.text,
            "path ends at hop 2: 10.0.13.2 says communication administratively prohibited on this flow; 2 of 4 other flows reach the target: a load-balanced branch through 10.0.13.2 refuses TCP to port 443"
        );
        assert_eq!(w.exit_status(), 3);
        assert_eq!(
            (w.flows, w.flows_reached, w.other_flows),
            (5, 2, Some((4, 2)))
        );
        match &w.kind {
            Kind::Partial { hop, open, broken } => {
                assert_eq!((*hop, *open), (None, false), "closed: RST only");
                let got: Vec<(Option<IpAddr>, Vec<u16>)> =
                    broken.iter().map(|b| (b.router, b.flows.clone())).collect();
                assert_eq!(
                    got,
                    [
                        (Some(ip("10.0.13.2")), vec![0, 2]),
                        (Some(ip("10.0.14.2")), vec![4]),
                    ]
                );
                assert!(broken.iter().all(|b| b.how.name() == "refused"));
            }
            k => panic!("{k:?}"),
        }
        // None through: the verdict stands.
        let w = with_other_flows(v.clone(), &others[1..2], target);
        assert_eq!(w.kind, v.kind);
        assert!(w
            .text
            .ends_with("prohibited; none of 1 other flows reach the target"));
        // The answers of one flow: its router at the break hop, and the target's answer on
        // either probe (a short branch's target answers the break hop's probe).
        let te = Answer::TimeExceeded(crate::icmp::IcmpReport {
            icmp_type: 11,
            code: 0,
            v6: false,
            info: 0,
            from: ip("10.0.12.2"),
            after: std::time::Duration::from_micros(200),
            phase: crate::icmp::Phase::Connect,
            source: crate::icmp::Source::Raw,
            extensions: None,
        });
        let open = Answer::Reached { open: true };
        assert_eq!(
            OtherFlow::of(1, Some(&te), Some(&open)),
            reached(1).with_open()
        );
        assert_eq!(
            OtherFlow::of(1, Some(&open), Some(&Answer::Timeout)).reached,
            Some(true)
        );
        assert_eq!(OtherFlow::of(1, None, Some(&Answer::Timeout)).reached, None);
    }

    impl OtherFlow {
        fn with_open(mut self) -> OtherFlow {
            self.reached = Some(true);
            self
        }
    }
}
