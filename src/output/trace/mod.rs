//! What `trace` prints, one sink per format behind [`TraceSink`]: [`human`] (traceroute-style
//! hop lines for the first cycle, an mtr-style report after several cycles, the verdict in
//! words) or [`json`] (NDJSON events), from the trace's state and verdict (`crate::trace`).

pub mod human;
pub mod json;

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::output::Output;
use crate::trace::dns::Names;
use crate::trace::engine::HopDone;
use crate::trace::mda::Pred;
use crate::trace::state::{Hop, TraceState};
use crate::trace::verdict::Verdict;
use crate::trace::TraceRun;

/// How the trace probes, for the start line.
#[derive(Clone, Debug)]
pub struct Setup {
    /// "syn" or "connect".
    pub probe: &'static str,
    pub source: Option<IpAddr>,
    /// Our source port of each flow (SYN probes).
    pub ports: Vec<u16>,
}

/// traceroute's mark after an unreachable's time: !N, !H, !X, ...
pub fn unreachable_mark(v6: bool, t: u8, code: u8) -> String {
    let m = match (v6, t, code) {
        (false, 3, 0) | (true, 1, 0) => "!N",
        (false, 3, 1) | (true, 1, 3) => "!H",
        (false, 3, 2 | 3) | (true, 1, 4) => "!P",
        (false, 3, 4) => "!F",
        (false, 3, 5) => "!S",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "!X",
        (false, 3, 14) => "!V",
        (false, 3, 15) => "!C",
        _ => return format!("!<{t}/{code}>"),
    };
    m.to_string()
}

/// Totals of the run that are not in the state.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunTotals {
    pub probes_sent: u64,
    pub reprobes: u64,
    pub unmatched_icmp: u64,
    pub late_icmp: u64,
    pub elapsed: Duration,
}

/// The end of a trace.
pub struct End<'a> {
    pub cfg: &'a TraceRun,
    pub state: &'a TraceState,
    pub verdict: &'a Verdict,
    pub totals: RunTotals,
}

/// Where a trace goes. Errors are write errors (a closed pipe).
pub trait TraceSink<W> {
    /// The start of the trace.
    fn start(&mut self, cfg: &TraceRun, setup: &Setup) -> io::Result<()>;
    /// One hop of one cycle has every verdict.
    fn hop_done(&mut self, done: &HopDone, target: SocketAddr, flows: u16) -> io::Result<()>;
    /// A cycle is over.
    fn cycle_done(&mut self, _cycle: u64) -> io::Result<()> {
        Ok(())
    }
    /// The end: the hops over every cycle, and the verdict.
    fn end(&mut self, end: &End) -> io::Result<()>;
    /// `end`, of its parts.
    fn finish(
        &mut self,
        cfg: &TraceRun,
        state: &TraceState,
        verdict: &Verdict,
        totals: RunTotals,
    ) -> io::Result<()> {
        let end = End {
            cfg,
            state,
            verdict,
            totals,
        };
        self.end(&end)
    }
    /// The sink's output (for tests).
    fn into_inner(self: Box<Self>) -> W;
}

/// Writes a trace in the chosen format (it derefs to the format's [`TraceSink`]).
pub struct TraceWriter<W: Write> {
    sink: Box<dyn TraceSink<W>>,
}

impl<W: Write + 'static> TraceWriter<W> {
    pub fn new(out: W, cfg: &TraceRun, output: Output) -> Self {
        let names = Names::new(cfg.resolve);
        let sink: Box<dyn TraceSink<W>> = match output {
            Output::Human => Box::new(human::Lines::new(out, names)),
            Output::Json => Box::new(json::Events::new(out, names)),
        };
        TraceWriter { sink }
    }

    /// The writer's output (for tests).
    pub fn into_inner(self) -> W {
        self.sink.into_inner()
    }
}

impl<W: Write> std::ops::Deref for TraceWriter<W> {
    type Target = dyn TraceSink<W>;
    fn deref(&self) -> &Self::Target {
        &*self.sink
    }
}

impl<W: Write> std::ops::DerefMut for TraceWriter<W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.sink
    }
}

/// Whether a router at this hop forwards (answered time exceeded): only there can the
/// flows branch. At the destination hop (only the target, or refusals) the multipath
/// stopping rule means nothing: no note, and no `flows_needed`.
pub fn forwards(h: &Hop) -> bool {
    h.routers.iter().any(|r| r.time_exceeded > 0)
}

/// Notes under the hops: rate-limiting routers, and hops where the flows were too few for
/// the multipath detection algorithm's confidence (hops that forward only).
pub fn notes(state: &TraceState) -> Vec<String> {
    let mut out = Vec::new();
    let rules = state.flow_rules();
    for h in state.hops() {
        if state.rate_limited(h.hop) {
            let who = h
                .main_router()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            out.push(format!(
                "note: hop {}{who} answered {} of {} probes while later hops answered more: it rate-limits its ICMP; not a break",
                h.hop, h.received, h.sent
            ));
        }
        // The stopping rule per router of the hop before (`trace::mda`): the router furthest
        // from its count.
        let short = rules
            .as_ref()
            .and_then(|r| r.get(&h.hop))
            .filter(|r| !r.enough && h.received > 0 && forwards(h))
            .and_then(|r| {
                r.routers
                    .iter()
                    .max_by_key(|(_, x)| x.needed.saturating_sub(x.have))
            });
        if let Some((pred, r)) = short {
            let through = match pred {
                Pred::Source => String::new(),
                Pred::Node(j, a) => format!(" through {a} (hop {j})"),
            };
            out.push(format!(
                "note: hop {}: {} flow{}{through} answered, {} next hop{} seen; {} are needed to rule out one more at {:.0}% confidence (--flows)",
                h.hop,
                r.have,
                if r.have == 1 { "" } else { "s" },
                r.next,
                if r.next == 1 { "" } else { "s" },
                r.needed,
                100.0 * (1.0 - state.alpha)
            ));
        }
    }
    out
}
