//! The many-targets event loop: [`Run`] holds every target's state ([`Slot`]) and the
//! probes in flight ([`Flight`]); it resolves each target, sends its probes when its timer
//! fires, accounts for and reports each verdict, and ends each target with its summary.
//! Reading the targets file again at SIGHUP is in [`super::reload`].

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::live::LiveBoard;
use super::reload::Reload;
use super::schedule::{self, Timers};
use super::targets::{self, TargetLine};
use super::{resolve, table, Config};
use crate::cli::{ClientConfig, Mode, Output};
use crate::cmd::shared::written;
use crate::error::Error;
use crate::metrics::{Metrics, TargetMetrics};
use crate::net;
use crate::output::{Reporter, Tag};
use crate::probe::{IcmpTally, PingResult, ProbeSpec, Prober};
use crate::report::Recorder;
use crate::stats::Stats;

/// How often the loop looks at signals, names and totals when nothing else wakes it.
const TICK: Duration = Duration::from_millis(100);
/// Most timers handled in one turn of the loop before the answers are read again (four
/// `sendmmsg` batches of SYNs).
const SENDS_PER_TURN: usize = 256;
/// Timers due this soon are handled in the same turn: a probe may leave up to 1 ms before
/// its time (its lag counts as none), so that at thousands of probes a second the loop
/// wakes about once a millisecond with a batch, not once per probe.
const EARLY: Duration = Duration::from_millis(1);

/// One target's state.
pub(super) struct Slot {
    generation: u32,
    pub(super) line: TargetLine,
    /// Its settings (name and, once resolved, address).
    cfg: ClientConfig,
    addr: Option<SocketAddr>,
    /// A name lookup is under way.
    resolving: bool,
    /// Failed lookups in a row, and the last error.
    failures: u32,
    last_error: Option<String>,
    stats: Stats,
    metrics: Option<TargetMetrics>,
    /// Probes sent, and in flight.
    sent: u64,
    in_flight: u32,
    /// A probe due at this time waits for the prober to be ready for the target.
    waiting: Option<Instant>,
    started: Option<Instant>,
    /// Where its first probe goes in the interval.
    offset: Duration,
    /// Its row on the board.
    row: Option<usize>,
}

impl Slot {
    fn tag(&self) -> Tag<'_> {
        Tag {
            target: &self.line.name,
            labels: &self.line.labels,
        }
    }

    fn done(&self, count: Option<u64>) -> bool {
        count.is_some_and(|n| self.sent >= n) && self.in_flight == 0
    }

    /// Its summary, to `end` (none for a target that never started).
    fn write_summary<W: Write>(
        &self,
        out: &mut Reporter<W>,
        tally: IcmpTally,
        end: Instant,
    ) -> io::Result<()> {
        let Some(started) = self.started else {
            return Ok(());
        };
        let elapsed = end.saturating_duration_since(started);
        out.summary_tagged(&self.cfg, &self.stats, tally, elapsed, Some(self.tag()))
    }
}

/// A probe in flight: its slot, the slot's generation, its sequence number in the target's run.
#[derive(Clone, Copy)]
struct Flight {
    slot: usize,
    generation: u32,
    seq: u64,
}

/// The run's state and everything it reports to.
pub(super) struct Run<'a, W: Write> {
    pub(super) cfg: &'a Config,
    pub(super) slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    next_generation: u32,
    timers: Timers,
    flights: HashMap<u64, Flight>,
    next_probe: u64,
    prober: &'a mut dyn Prober,
    out: Reporter<W>,
    metrics: Option<Arc<Metrics>>,
    resolver: resolve::Resolver,
    /// Lag of every send behind its schedule, in ns.
    lag: Histogram<u64>,
    any_reply: bool,
    /// stdout was closed: stop.
    closed: bool,
    /// The first targets are being added: their first probes are scheduled once all are
    /// (so that the set-up of thousands does not make the first ones late).
    loading: bool,
    src_cache: HashMap<IpAddr, Option<IpAddr>>,
    pub(super) reload: Option<Reload>,
    pub(super) wake: UnixStream,
    /// --plot: the picture of every target.
    plot: Option<Recorder>,
    /// The board, on a terminal (the lines per probe are dropped then).
    pub(super) board: Option<LiveBoard>,
    /// Targets removed while the board was drawn, and when: their summaries come at the end.
    removed: Vec<(Slot, Instant)>,
}

impl<'a, W: Write> Run<'a, W> {
    pub(super) fn new(
        cfg: &'a Config,
        prober: &'a mut dyn Prober,
        out: Reporter<W>,
        metrics: Option<Arc<Metrics>>,
        resolver: resolve::Resolver,
        wake: UnixStream,
        plot: Option<Recorder>,
    ) -> Self {
        Run {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            next_generation: 0,
            timers: Timers::default(),
            flights: HashMap::new(),
            next_probe: 0,
            prober,
            out,
            metrics,
            resolver,
            lag: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
            any_reply: false,
            closed: false,
            loading: true,
            src_cache: HashMap::new(),
            reload: None,
            wake,
            plot,
            board: None,
            removed: Vec::new(),
        }
    }

    /// Add the first targets: their first probes spread over one interval, scheduled once
    /// every target is added.
    pub(super) fn start(&mut self, lines: Vec<TargetLine>) {
        let n = lines.len();
        let interval = self.cfg.template.interval;
        for (k, line) in lines.into_iter().enumerate() {
            self.add(line, schedule::spread(k, n, interval));
        }
        self.loading = false;
        let base = Instant::now();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(s) = s.as_ref().filter(|s| s.addr.is_some()) {
                self.timers
                    .push(base + s.offset.min(interval), i, s.generation);
            }
        }
    }

    /// The event loop: conclude what the prober concluded, apply SIGHUP readings and name
    /// lookups, fire the timers due, and wait for the prober until the next one. Ends on
    /// `stop` (every probe in flight concluded as interrupted), a closed stdout, or (with
    /// -n) when every target is done.
    pub(super) fn until_done(&mut self, stop: &AtomicBool, hup: &AtomicBool) -> Result<(), Error> {
        let mut done: Vec<PingResult> = Vec::new();
        let mut last_tally = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping {
                self.prober.interrupt(&mut done);
            }
            for r in done.drain(..) {
                self.conclude(r);
            }
            if self.cfg.template.verbose {
                for (err, why) in self.prober.drain_unmatched() {
                    let w = self.out.unmatched(&err, why);
                    self.note_write(w);
                }
            }
            if stopping || self.closed || self.finished() {
                return Ok(());
            }
            if let Some(b) = &mut self.board {
                // `q` is Ctrl-C: every probe in flight concluded as interrupted.
                if b.step().map_err(|e| Error::io("draw the board", e))? {
                    stop.store(true, Ordering::Relaxed);
                    continue;
                }
            }
            if hup.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            self.reloaded();
            let answers: Vec<resolve::Answer> = self.resolver.answers();
            for (i, generation, got) in answers {
                self.resolved(i, generation, got);
            }
            let now = Instant::now();
            if let Some(m) = &self.metrics {
                if now.duration_since(last_tally) >= Duration::from_secs(1) {
                    let t = self.prober.icmp_tally();
                    m.icmp_tally(t.unmatched, t.late);
                    last_tally = now;
                }
            }
            // At most a few batches of probes before the answers are read again: a loop
            // that fell behind would otherwise send thousands at once and let their
            // answers overflow the capture ring unread.
            let mut n = 0;
            while n < SENDS_PER_TURN {
                let Some((at, i, generation)) = self.timers.pop_due(now + EARLY) else {
                    break;
                };
                self.on_timer(i, generation, at);
                n += 1;
            }
            let until = self.timers.next().map_or(now + TICK, |t| t.min(now + TICK));
            self.prober
                .poll(until, &mut done)
                .map_err(|e| Error::io("wait for answers", e))?;
        }
    }

    /// After the loop: every target's summary, the closing table (for people), the picture
    /// (--plot) and how far behind schedule the probes left. Returns the exit status: 0 when
    /// any target answered, 1 when none did.
    pub(super) fn finish(&mut self, started: Instant, end: Instant) -> Result<i32, Error> {
        if !self.closed {
            self.removed_summaries();
            for i in 0..self.slots.len() {
                self.summary(i, end);
            }
        }
        if self.cfg.template.output == Output::Human && !self.closed {
            let w = io::stdout().write_all(self.table().as_bytes());
            self.note_write(w);
        }
        if let Some(p) = &self.plot {
            p.finish()?;
        }
        let probes = self.next_probe;
        if probes > 0 {
            let q = |p: f64| self.lag.value_at_quantile(p) as f64 / 1e6;
            eprintln!(
                "tcpping-diag: {probes} probes to {} targets in {:.1} s; sent behind schedule by p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                self.slots.iter().flatten().count(),
                end.duration_since(started).as_secs_f64(),
                q(0.5),
                q(0.99),
                self.lag.max() as f64 / 1e6
            );
        }
        let drops = self.prober.capture_drops();
        if drops > 0 {
            eprintln!(
                "tcpping-diag: warning: the kernel dropped {drops} captured packets (our queue was full): some timeouts may have been answered"
            );
        }
        Ok(if self.any_reply { 0 } else { 1 })
    }

    /// The closing table: one line per target.
    fn table(&self) -> String {
        let rows: Vec<&Slot> = self.slots.iter().flatten().collect();
        let width = rows
            .iter()
            .map(|s| s.line.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut text = format!("\n{}\n", table::header(width));
        for s in &rows {
            let note = match (&s.started, &s.last_error) {
                (None, Some(e)) => Some(format!("not resolved: {e}")),
                (None, None) => Some("not started".to_string()),
                _ => None,
            };
            text.push_str(&table::line(&s.line.name, width, &s.stats, note.as_deref()));
            text.push('\n');
        }
        text
    }

    /// stdout was closed (| head), or could not be written.
    pub(super) fn closed(&self) -> bool {
        self.closed
    }

    fn slot(&mut self, i: usize, generation: u32) -> Option<&mut Slot> {
        self.slots
            .get_mut(i)?
            .as_mut()
            .filter(|s| s.generation == generation)
    }

    /// Add a target; its first probe goes `offset` into the interval (after it resolves).
    pub(super) fn add(&mut self, line: TargetLine, offset: Duration) {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut cfg = self.cfg.template.clone();
        cfg.target_name = line.name.clone();
        let metrics = self.metrics.as_ref().map(|m| {
            let t = m.target(&line.name, &line.labels);
            t.set_resolved(false);
            t
        });
        let row = self.board.as_mut().map(|b| b.add(&line));
        let slot = Slot {
            generation,
            row,
            line,
            cfg,
            addr: None,
            resolving: false,
            failures: 0,
            last_error: None,
            stats: Stats::compact(),
            metrics,
            sent: 0,
            in_flight: 0,
            waiting: None,
            started: None,
            offset,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.resolve(i);
    }

    /// Look the target's name up: at once for an address literal, else on a resolver thread.
    fn resolve(&mut self, i: usize) {
        let family = self.cfg.family;
        let Some(s) = self.slots[i].as_mut() else {
            return;
        };
        let literal = crate::cli::split_host_port(&s.line.name)
            .map(|(h, _)| h.parse::<IpAddr>().is_ok())
            .unwrap_or(false);
        if literal {
            let got = crate::cli::resolve(&s.line.name, family).map_err(|e| e.to_string());
            let generation = s.generation;
            self.resolved(i, generation, got);
        } else {
            s.resolving = true;
            self.resolver
                .ask(i, s.generation, &s.line.name, s.failures > 0);
        }
    }

    /// A lookup's answer: start the target, or retry later.
    fn resolved(&mut self, i: usize, generation: u32, got: Result<SocketAddr, String>) {
        let now = Instant::now();
        let interval = self.cfg.template.interval;
        let cfg = self.cfg;
        let loading = self.loading;
        let Some(s) = self.slot(i, generation) else {
            return;
        };
        s.resolving = false;
        match got {
            Ok(addr) => {
                s.addr = Some(addr);
                s.cfg.target = addr;
                s.failures = 0;
                s.last_error = None;
                s.started = Some(now);
                if let Some(m) = &s.metrics {
                    m.set_resolved(true);
                }
                let first = now + s.offset.min(interval);
                if !loading {
                    self.timers.push(first, i, generation);
                }
                let src = *self
                    .src_cache
                    .entry(addr.ip())
                    .or_insert_with(|| net::source_address_for(addr).ok());
                let s = self.slots[i].as_ref().expect("the slot just used");
                if let Some(p) = &mut self.plot {
                    p.start(&s.cfg, src, &s.line.labels);
                }
                let r = self.out.start_tagged(&s.cfg, src, Some(s.tag()));
                self.note_write(r);
            }
            Err(e) => {
                s.failures += 1;
                let wait = schedule::backoff(s.failures);
                // Said once: the retries (with backoff) are quiet until the name resolves.
                if s.failures == 1 {
                    let where_ = match (&cfg.file, s.line.line) {
                        (Some(f), n) if n > 0 => format!("{} line {n}: ", f.display()),
                        _ => String::new(),
                    };
                    eprintln!(
                        "tcpping-diag: {where_}{}: {}; retrying in {}, then less often",
                        targets::clip(&s.line.name),
                        targets::clip(&e),
                        humantime::format_duration(wait)
                    );
                }
                s.last_error = Some(e);
                self.timers.push(now + wait, i, generation);
            }
        }
    }

    pub(super) fn note_write(&mut self, r: io::Result<()>) {
        match written(r) {
            Ok(true) => {}
            Ok(false) => self.closed = true,
            Err(e) => {
                eprintln!("tcpping-diag: {e}");
                self.closed = true;
            }
        }
    }

    /// Send the target's probe due at `due`, or note it waits for the prober.
    fn send(&mut self, i: usize, due: Instant) {
        let count = self.cfg.template.count;
        let ttl = self.cfg.template.ttl;
        let interval = self.cfg.template.interval;
        let Some(s) = self.slots[i].as_mut() else {
            return;
        };
        let Some(addr) = s.addr else {
            return;
        };
        if count.is_some_and(|n| s.sent >= n) {
            return;
        }
        let generation = s.generation;
        if !self.prober.ready(addr) {
            if s.in_flight > 0 {
                // Sent when its own probe concludes.
                s.waiting = Some(due);
            } else {
                // Held up by another target's probe to the same address, or a full pool.
                self.timers
                    .push(Instant::now() + Duration::from_millis(1), i, generation);
                s.waiting = Some(s.waiting.unwrap_or(due));
            }
            return;
        }
        let due = s.waiting.take().unwrap_or(due);
        s.sent += 1;
        s.in_flight += 1;
        let seq = s.sent;
        self.next_probe += 1;
        let id = self.next_probe;
        self.flights.insert(
            id,
            Flight {
                slot: i,
                generation,
                seq,
            },
        );
        let now = Instant::now();
        self.prober.send(ProbeSpec {
            seq: id,
            target: addr,
            ttl,
            flow: 0,
        });
        let lag = now.saturating_duration_since(due);
        self.lag
            .saturating_record((lag.as_nanos() as u64).clamp(1, 60_000_000_000));
        if let Some(m) = &self.metrics {
            m.lag(lag);
        }
        if count.is_none_or(|n| seq < n) {
            let next = schedule::next_due(due, interval, now);
            self.timers.push(next, i, generation);
        }
    }

    /// A timer fired for slot `i`: its next probe, or a retry of its name.
    fn on_timer(&mut self, i: usize, generation: u32, at: Instant) {
        let Some(s) = self.slot(i, generation) else {
            return;
        };
        if s.addr.is_some() {
            self.send(i, at);
        } else if !s.resolving {
            self.resolve(i);
        }
    }

    /// Account for a concluded probe.
    fn conclude(&mut self, mut r: PingResult) {
        let Some(f) = self.flights.remove(&r.seq) else {
            return;
        };
        let echo = matches!(self.cfg.template.mode, Mode::Echo | Mode::Persistent);
        let metrics = self.metrics.clone();
        let Some(s) = self.slot(f.slot, f.generation) else {
            // Its target was removed meanwhile.
            return;
        };
        r.seq = f.seq;
        s.in_flight = s.in_flight.saturating_sub(1);
        s.stats.record(&r);
        if let (Some(m), Some(tm)) = (metrics.as_deref(), s.metrics.as_mut()) {
            tm.record(m, &r, echo && !r.handshake_only);
        }
        let waiting = s.waiting;
        self.any_reply |= r.status == crate::probe::Status::Reply;
        let s = self.slots[f.slot].as_ref().expect("the slot just used");
        if let Some(p) = &mut self.plot {
            p.observe_of(&s.line.name, &r);
        }
        if let (Some(b), Some(row)) = (&mut self.board, s.row) {
            b.record(row, &r);
        }
        let w = self.out.ping_tagged(&r, &s.cfg, Some(s.tag()));
        self.note_write(w);
        if let Some(due) = waiting {
            self.send(f.slot, due);
        }
    }

    /// A target's summary event (or block, for people).
    fn summary(&mut self, i: usize, end: Instant) {
        let tally = self.prober.icmp_tally();
        let Some(s) = self.slots[i].as_ref() else {
            return;
        };
        let r = s.write_summary(&mut self.out, tally, end);
        self.note_write(r);
    }

    /// Stop a target (it left the file): its summary now (under the board: when the board
    /// is gone, before the others), its series removed.
    pub(super) fn remove(&mut self, i: usize) {
        let now = Instant::now();
        if self.board.is_none() {
            self.summary(i, now);
        }
        if let Some(s) = self.slots[i].take() {
            if let (Some(m), Some(tm)) = (&self.metrics, &s.metrics) {
                m.remove(tm);
            }
            if let (Some(b), Some(row)) = (&mut self.board, s.row) {
                b.remove(row);
                self.removed.push((s, now));
            }
            self.free.push(i);
        }
    }

    /// The summaries of the targets removed while the board was drawn.
    fn removed_summaries(&mut self) {
        let tally = self.prober.icmp_tally();
        for (s, end) in std::mem::take(&mut self.removed) {
            let r = s.write_summary(&mut self.out, tally, end);
            self.note_write(r);
        }
    }

    /// The run is over (with -n): every target that started is done and no lookup is
    /// pending.
    fn finished(&self) -> bool {
        let count = self.cfg.template.count;
        count.is_some()
            && self
                .slots
                .iter()
                .flatten()
                .all(|s| !s.resolving && (s.addr.is_none() || s.done(count)))
    }
}
