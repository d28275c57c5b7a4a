//! Trace on a terminal, live: [`LiveTrace`] draws the trace view (`crate::tui::trace`) after
//! every hop and cycle, handles its keys while it waits for the next cycle (`q`/Ctrl-C stop
//! the cycles, `p` holds them, `r` starts the statistics afresh), and gives the screen back
//! before the final report. What trace prints meanwhile (the start line, the first cycle's
//! lines) is kept (`cmd::screen`) and written on the normal screen afterwards, so the report
//! reads as without the view.
//!
//! Also trace's per-hop state ([`TraceState`], read only) and its [`Verdict`] turned into the
//! trace view's rows. The only file of the live views that knows trace's types; names come
//! from [`Lookups`] (reverse DNS on a thread of its own, with `--resolve`), so the view never
//! waits on DNS.

use std::cell::RefCell;
use std::io::{self, IsTerminal};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::dns::Lookups;
use super::state::{Hop, Router, TraceState};
use super::verdict::{self, Kind, Verdict};
use crate::cli::{Output, TraceConfig};
use crate::icmp::correlate::Unmatched;
use crate::icmp::extension::MplsLabel;
use crate::icmp::parse::{describe, IcmpError};
use crate::probe::{IcmpTally, PingResult, ProbeSpec, Prober};
use crate::stats::Summary;
use crate::tui::theme::{Palette, Tone};
use crate::tui::trace::{HopRow, RouterRow, TraceView, VerdictLine};
use crate::tui::{Action, Live};

/// Whether trace draws the live view: stdout is a terminal, more than one cycle is asked (or
/// until interrupted), the output is for people, and `--no-tui` is not given.
pub fn wanted(cfg: &TraceConfig) -> bool {
    cfg.tui
        && cfg.output == Output::Human
        && cfg.run.cycles != Some(1)
        && io::stdout().is_terminal()
}

/// Trace's live view on the terminal, and the keys' effects on the cycles.
pub struct LiveTrace {
    live: Live,
    view: TraceView,
    names: Lookups,
    /// How long a probe waits, in the verdict's words.
    waited: String,
    interval: Duration,
    cycles: Option<u64>,
    /// When the cycle under way started (as near as the cycle loop's own clock).
    cycle_started: Instant,
    /// Cycles done when the statistics were last reset (`r`).
    reset_at: u64,
    /// `r` was pressed: the state is reset at the next hop or cycle.
    reset: bool,
    quit: bool,
}

impl LiveTrace {
    /// Take the terminal and draw the empty view.
    pub fn start(cfg: &TraceConfig) -> io::Result<LiveTrace> {
        let title = format!("trace {} ({})", cfg.run.target_name, cfg.run.target);
        let mut t = LiveTrace {
            live: Live::start()?,
            view: TraceView::new(title, Palette::from_env()),
            names: Lookups::new(cfg.run.resolve),
            waited: humantime::format_duration(cfg.run.timeout).to_string(),
            interval: cfg.run.interval,
            cycles: cfg.run.cycles,
            cycle_started: Instant::now(),
            reset_at: 0,
            reset: false,
            quit: false,
        };
        t.live.step(&mut t.view, Duration::ZERO)?;
        Ok(t)
    }

    /// A hop of a cycle was recorded in `state`: update the view, handle the keys pressed
    /// meanwhile without waiting. Returns whether to stop the cycles (`q`, Ctrl-C, a signal).
    pub fn hop(&mut self, state: &mut TraceState) -> io::Result<bool> {
        if self.quit {
            return Ok(true);
        }
        self.take_reset(state);
        self.refresh(state);
        self.keys(Duration::ZERO)?;
        self.take_reset(state);
        Ok(self.quit)
    }

    /// While a cycle waits for its probes: read the keys, without waiting (a reset waits for
    /// the next hop). Returns whether to stop.
    pub fn meanwhile(&mut self) -> io::Result<bool> {
        if !self.quit {
            self.keys(Duration::ZERO)?;
        }
        Ok(self.quit)
    }

    /// Cycle `cycle` is over (`state` took it): update the view, then handle keys until the
    /// next cycle is due, and for as long as the view is paused. Returns whether to stop.
    pub fn cycle_done(&mut self, state: &mut TraceState, cycle: u64) -> io::Result<bool> {
        if self.quit {
            return Ok(true);
        }
        state.cycles_done = cycle.saturating_sub(self.reset_at);
        self.take_reset(state);
        self.refresh(state);
        if self.cycles.is_some_and(|n| cycle >= n) {
            // The last cycle: the report follows at once.
            self.live.step(&mut self.view, Duration::ZERO)?;
            return Ok(false);
        }
        let next = self.cycle_started + self.interval;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            let paused = self.view.paused();
            if left.is_zero() && !paused {
                break;
            }
            let wait = if paused { Duration::from_secs(1) } else { left };
            self.keys(wait)?;
            if self.quit {
                return Ok(true);
            }
            if self.reset {
                self.take_reset(state);
                self.refresh(state);
            }
        }
        self.cycle_started = Instant::now();
        Ok(false)
    }

    /// Give the terminal back.
    pub fn finish(self) -> io::Result<()> {
        self.live.finish()
    }

    /// Handle keys for up to `wait`, noting what they ask.
    fn keys(&mut self, wait: Duration) -> io::Result<()> {
        match self.live.step(&mut self.view, wait)? {
            Action::Quit => self.quit = true,
            Action::Reset => self.reset = true,
            // The view froze itself; `cycle_done` holds the next cycle while it is paused.
            Action::Pause | Action::Resume | Action::None | Action::Redraw => {}
        }
        Ok(())
    }

    /// Start the statistics afresh if `r` was pressed.
    fn take_reset(&mut self, state: &mut TraceState) {
        if std::mem::take(&mut self.reset) {
            self.reset_at += state.cycles_done;
            let middlebox = state.middlebox.reset();
            *state = TraceState::new(state.target, state.max_hops, state.queries, state.flows);
            state.middlebox = middlebox;
        }
    }

    /// Give the view the state's rows and verdict.
    fn refresh(&mut self, state: &TraceState) {
        let rows = hop_rows(state, |a| self.names.name(a));
        let line = if state.cycles_done == 0 {
            VerdictLine {
                text: "first round under way…".to_string(),
                tone: Tone::Dim,
            }
        } else {
            verdict_line(&verdict::verdict(state, &self.waited))
        };
        if self.view.update(state.cycles_done, rows, line) {
            self.live.changed();
        }
    }
}

/// How long a cycle's wait for its probes lasts at most before the view reads its keys.
const SLICE: Duration = Duration::from_millis(100);

/// The prober, its waits cut into slices of [`SLICE`] while the live view is drawn: between
/// them the view reads its keys, so `q` is not held up by probes waiting on their timeout.
pub struct Keyed<'a> {
    pub inner: &'a mut dyn Prober,
    pub live: &'a RefCell<LiveTrace>,
    /// Set on `q`: the cycle loop stops as on Ctrl-C.
    pub stop: &'a AtomicBool,
}

impl Prober for Keyed<'_> {
    fn ready(&self, target: SocketAddr) -> bool {
        self.inner.ready(target)
    }
    fn send(&mut self, spec: ProbeSpec) {
        self.inner.send(spec)
    }
    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()> {
        loop {
            let slice = until.min(Instant::now() + SLICE);
            self.inner.poll(slice, done)?;
            if !done.is_empty() || slice >= until || self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.live.borrow_mut().meanwhile()? {
                self.stop.store(true, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }
    fn interrupt(&mut self, done: &mut Vec<PingResult>) {
        self.inner.interrupt(done)
    }
    fn icmp_tally(&self) -> IcmpTally {
        self.inner.icmp_tally()
    }
    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)> {
        self.inner.drain_unmatched()
    }
    fn capture_drops(&mut self) -> u64 {
        self.inner.capture_drops()
    }
}

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
        Kind::SilentAfter { .. } | Kind::TooFar { .. } | Kind::Partial { .. } => Tone::Warn,
    };
    VerdictLine {
        text: v.text.clone(),
        tone,
    }
}
