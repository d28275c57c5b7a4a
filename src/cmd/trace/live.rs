//! Trace's per-hop state ([`TraceState`], read only) and its [`Verdict`] turned into the
//! trace view's rows. The only file of the live views that knows trace's types; names come
//! from the caller (trace's reverse-DNS cache), so the view never waits on DNS.

use std::net::IpAddr;

use super::state::{Hop, Router, TraceState};
use super::verdict::{Kind, Verdict};
use crate::icmp::extension::MplsLabel;
use crate::icmp::parse::describe;
use crate::stats::Summary;
use crate::tui::theme::Tone;
use crate::tui::trace::{HopRow, RouterRow, VerdictLine};

/// The rows of every hop of `state`; `name` gives an address's reverse-DNS name (or None).
pub fn hop_rows(state: &TraceState, mut name: impl FnMut(IpAddr) -> Option<String>) -> Vec<HopRow> {
    state
        .hops()
        .map(|h| hop_row(h, state.rate_limited(h.hop), &mut name))
        .collect()
}

/// One hop's row.
pub fn hop_row(
    h: &Hop,
    rate_limited: bool,
    name: &mut impl FnMut(IpAddr) -> Option<String>,
) -> HopRow {
    let mut routers: Vec<&Router> = h.routers.iter().filter(|r| r.addr.is_some()).collect();
    routers.sort_by(|a, b| b.count.cmp(&a.count).then(a.addr.cmp(&b.addr)));
    let [last, avg, best, worst, stddev] = figures(&h.rtt);
    HopRow {
        hop: h.hop,
        sent: h.sent,
        received: h.received,
        last,
        avg,
        best,
        worst,
        stddev,
        routers: routers.into_iter().map(|r| router_row(r, name)).collect(),
        rate_limited,
        error: h.local_errors.first().cloned(),
    }
}

fn router_row(r: &Router, name: &mut impl FnMut(IpAddr) -> Option<String>) -> RouterRow {
    let [last, avg, best, worst, stddev] = figures(&r.rtt);
    let note = if r.open > 0 {
        Some("[open]".to_string())
    } else if r.closed > 0 {
        Some("[closed]".to_string())
    } else {
        r.errors
            .first()
            .map(|e| format!("[{}]", describe(e.v6, e.icmp_type, e.code, e.info).reason))
    };
    RouterRow {
        addr: r.addr,
        name: r.addr.and_then(&mut *name),
        count: r.count,
        flows: r.flows.iter().copied().collect(),
        mpls: r.mpls.iter().map(|stack| mpls_text(stack)).collect(),
        note,
        last,
        avg,
        best,
        worst,
        stddev,
    }
}

/// Last, avg, best, worst, stddev in milliseconds.
fn figures(s: &Summary) -> [Option<f64>; 5] {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    [ms(s.last()), s.avg(), s.min(), s.max(), s.mdev()]
}

/// A label stack in a table cell: its labels, top first (`24001/16`); the traffic class and
/// TTL are in the final report.
pub fn mpls_text(stack: &[MplsLabel]) -> String {
    stack
        .iter()
        .map(|l| l.label.to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The verdict line: reached is good, a loop or a refusing router bad, silence a warning.
pub fn verdict_line(v: &Verdict) -> VerdictLine {
    let tone = match v.kind {
        Kind::Reached { .. } => Tone::Good,
        Kind::PathEnds { .. } | Kind::Loop { .. } | Kind::Nothing { .. } => Tone::Bad,
        Kind::SilentAfter { .. } | Kind::TooFar { .. } => Tone::Warn,
    };
    VerdictLine {
        text: v.text.clone(),
        tone,
    }
}
