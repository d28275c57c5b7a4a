//! The verdict of a trace, in words and as fields: reached (open or closed), the path ends at
//! a router that refuses, the packets circle between routers (a routing loop), it goes
//! silent after the last hop that answers, or nothing answered.
//! Pure: computed from a [`TraceState`] per flow, then combined.
//!
//! A hop that answers some probes and not others while later hops answer is rate-limiting
//! its ICMP (common: routers answer time exceeded from a slow path with a token bucket),
//! not breaking the path: only what answers last matters for where the path stops.

use std::net::{IpAddr, SocketAddr};

use super::engine::find_loop;
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
}

impl Kind {
    /// The verdict's name in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Reached { .. } => "reached",
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
            Kind::Nothing { .. } => None,
        }
    }

    /// The router where the path breaks.
    pub fn router(&self) -> Option<IpAddr> {
        match self {
            Kind::PathEnds { router, .. } => Some(*router),
            Kind::SilentAfter { router, .. } => *router,
            Kind::Loop { routers, .. } => routers.first().copied(),
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
    pub text: String,
    /// `trace --size`: what the sized SYNs found about the MTU (set by the driver).
    pub mtu: Option<super::mtu::MtuFinding>,
}

impl Verdict {
    pub fn reached(&self) -> bool {
        matches!(self.kind, Kind::Reached { .. })
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
        v.sort_unstable();
        v.dedup();
        v
    };
    let per_flow: Vec<(u16, Kind)> = flows.iter().map(|&f| (f, judge(state, Some(f)))).collect();
    let flows_reached = per_flow
        .iter()
        .filter(|(_, k)| matches!(k, Kind::Reached { .. }))
        .count();
    // The overall verdict: the first flow that reached (at the lowest hop over all flows),
    // else what all flows together say.
    let kind = if flows_reached > 0 {
        let hop = per_flow
            .iter()
            .filter_map(|(_, k)| match k {
                Kind::Reached { hop, .. } => Some(*hop),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        let open = per_flow
            .iter()
            .any(|(_, k)| matches!(k, Kind::Reached { open: true, .. }));
        Kind::Reached { hop, open }
    } else {
        judge(state, None)
    };
    let dissent: Vec<(u16, Kind)> = per_flow
        .iter()
        .filter(|(_, k)| k.name() != kind.name())
        .cloned()
        .collect();
    let mut text = text_of(&kind, state.target, timeout_text);
    if flows.len() > 1 && !dissent.is_empty() {
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
        flows: flows.len(),
        dissent,
        text,
        mtu: None,
    }
}
