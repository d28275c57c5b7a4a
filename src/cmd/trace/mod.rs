//! `tcpping-diag trace HOST:PORT`: where on the path does TCP to a port stop?
//!
//! - `crate::trace`: the strategy ([`engine`]), per-hop accounting ([`state`]), the
//!   [`verdict`], all pure;
//! - `crate::output::trace`: hop lines, the mtr-style report, NDJSON;
//! - [`live`]: on a terminal with several cycles, the live view (`crate::tui`) fed from
//!   trace's state after every hop and cycle, its keys read while the cycles run;
//! - this module: open the probe's sockets while privileged, drop privileges, and [`drive`]
//!   the engine over a [`Prober`] (the SYN prober, or connect() probes without CAP_NET_RAW).

pub mod live;
#[cfg(test)]
mod mda_tests;
mod mtu;
pub mod retry;
#[cfg(test)]
mod tests;

pub use crate::output::trace as output;
pub use crate::trace::{dns, engine, state, verdict};

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::screen::{screen_stdout, Screen};
use crate::cli::{TraceConfig, TraceProbe};
use crate::error::Error;
use crate::net::Waker;
use crate::privilege;
use crate::probe::open::{self, Kind, Need, NoRaw, Probes, Targets};
use crate::probe::syn::Flow;
use crate::probe::{PingResult, ProbeSpec, Prober};
use crate::trace::mda::Mda;

use crate::trace::middlebox::Middlebox;
use engine::{Engine, HopDone, Plan};
use output::{RunTotals, Setup, TraceWriter};
use state::TraceState;

/// How long a trace waits at start for the kernel to stamp received packets.
const STAMPS_ON_WITHIN: Duration = Duration::from_millis(100);

/// What happened during a drive, for the caller.
pub enum Progress<'a> {
    /// A hop of a cycle has every verdict.
    Hop(&'a HopDone),
    /// Every hop of a cycle is reported.
    CycleDone(u64),
}

/// Spaces the probes of a burst: at most `rate` per second (0: unpaced). A probe that
/// leaves late does not let the next ones catch up: the spacing is at least 1/rate.
#[derive(Clone, Debug)]
pub struct Pacer {
    gap: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(rate: u32) -> Pacer {
        Pacer {
            gap: if rate == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(1) / rate
            },
            next: None,
        }
    }

    /// When the next probe may leave, if not yet at `now`.
    pub fn wait_until(&self, now: Instant) -> Option<Instant> {
        self.next.filter(|t| *t > now)
    }

    /// A probe left at `now`.
    pub fn sent(&mut self, now: Instant) {
        if !self.gap.is_zero() {
            self.next = Some(self.next.map_or(now, |t| t.max(now)) + self.gap);
        }
    }
}

/// Send the queued probes the pacer lets go now, stamping them on `clock` (`stamp` tells
/// the strategy). Returns when the next one may leave (None: the queue is empty).
fn send_paced(
    queue: &mut VecDeque<ProbeSpec>,
    pacer: &mut Pacer,
    prober: &mut dyn Prober,
    clock: &dyn Fn() -> SystemTime,
    stamp: &mut dyn FnMut(u64, SystemTime),
) -> Option<Instant> {
    while let Some(&spec) = queue.front() {
        let now = Instant::now();
        if let Some(t) = pacer.wait_until(now) {
            return Some(t);
        }
        queue.pop_front();
        prober.send(spec);
        // Spaced from when the send returned: a send that took long (a route or neighbour
        // looked up) does not bring the next one closer on the wire.
        pacer.sent(Instant::now());
        stamp(spec.seq, clock());
    }
    None
}

/// Run cycles of the engine over `prober`, unpaced: see [`drive_paced`].
pub fn drive(
    engine: &mut Engine,
    prober: &mut dyn Prober,
    cycles: Option<u64>,
    interval: Duration,
    stop: &AtomicBool,
    clock: &dyn Fn() -> SystemTime,
    on_progress: &mut dyn FnMut(Progress) -> io::Result<bool>,
) -> io::Result<()> {
    let mut pacer = Pacer::new(0);
    drive_paced(
        engine,
        prober,
        cycles,
        interval,
        &mut pacer,
        stop,
        clock,
        on_progress,
    )
}

/// Run cycles of the engine over `prober`: start a cycle when the previous one is done and
/// `interval` has passed since it started, send what the engine asks as the `pacer` lets it
/// (telling it when, by `clock`: the clock the probes' wire times add to), feed it the
/// verdicts, and report progress. Stops after `cycles` cycles (None: until `stop`), on
/// `stop` (every probe in flight is then dropped: an interrupted cycle is not reported), or
/// when `on_progress` returns false (a closed pipe).
#[allow(clippy::too_many_arguments)]
pub fn drive_paced(
    engine: &mut Engine,
    prober: &mut dyn Prober,
    cycles: Option<u64>,
    interval: Duration,
    pacer: &mut Pacer,
    stop: &AtomicBool,
    clock: &dyn Fn() -> SystemTime,
    on_progress: &mut dyn FnMut(Progress) -> io::Result<bool>,
) -> io::Result<()> {
    let mut done: Vec<PingResult> = Vec::new();
    let mut queue: VecDeque<ProbeSpec> = VecDeque::new();
    let mut next_start = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            prober.interrupt(&mut done);
            for r in done.drain(..) {
                // Interrupted probes conclude nothing; results already in are still reported.
                for h in engine.on_result(r) {
                    if !on_progress(Progress::Hop(&h))? {
                        return Ok(());
                    }
                }
            }
            return Ok(());
        }
        if !engine.in_cycle() {
            if cycles.is_some_and(|n| engine.cycle() >= n) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_start {
                engine.start_cycle();
                next_start = now + interval;
            }
        }
        queue.extend(engine.take_sends());
        let paced = send_paced(&mut queue, pacer, prober, clock, &mut |seq, at| {
            engine.sent_at(seq, at)
        });
        let until = if let Some(t) = paced {
            t
        } else if engine.in_cycle() {
            if prober.in_flight() == 0 {
                // Nothing out and nothing to wait for: the engine would wait forever.
                return Err(io::Error::other(format!(
                    "trace stalled in cycle {} with {} queries waiting and no probe in flight",
                    engine.cycle(),
                    engine.waiting()
                )));
            }
            Instant::now() + Duration::from_secs(3600)
        } else {
            next_start
        };
        prober.poll(until, &mut done)?;
        let was = engine.in_cycle();
        let mut hops = Vec::new();
        for r in done.drain(..) {
            hops.extend(engine.on_result(r));
        }
        hops.extend(engine.settle());
        for h in &hops {
            if !on_progress(Progress::Hop(h))? {
                return Ok(());
            }
        }
        if was && !engine.in_cycle() && !on_progress(Progress::CycleDone(engine.cycle()))? {
            return Ok(());
        }
    }
}

/// Run the adaptive multipath search over `prober`: round after round, send what it asks as
/// the `pacer` lets it (stamped on `clock`), feed it the verdicts, and start the next round
/// as soon as the probes that matter are answered (a probe the search no longer needs is
/// not waited for). Then report its hops and one cycle. On `stop`, the probes in flight
/// are dropped and what was concluded is reported.
pub fn drive_mda(
    mda: &mut Mda,
    prober: &mut dyn Prober,
    pacer: &mut Pacer,
    stop: &AtomicBool,
    clock: &dyn Fn() -> SystemTime,
    on_progress: &mut dyn FnMut(Progress) -> io::Result<bool>,
) -> io::Result<()> {
    let mut done: Vec<PingResult> = Vec::new();
    let mut queue: VecDeque<ProbeSpec> = VecDeque::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            prober.interrupt(&mut done);
            done.clear();
            break;
        }
        if queue.is_empty() && !mda.in_round() && !mda.next_round() {
            break;
        }
        queue.extend(mda.take_sends());
        let paced = send_paced(&mut queue, pacer, prober, clock, &mut |seq, at| {
            mda.sent_at(seq, at)
        });
        let until = match paced {
            Some(t) => t,
            None if prober.in_flight() == 0 && mda.in_round() => {
                return Err(io::Error::other(format!(
                    "multipath trace stalled with {} probes waiting and none in flight",
                    mda.waiting()
                )));
            }
            None => Instant::now() + Duration::from_secs(3600),
        };
        if paced.is_some() || mda.in_round() {
            prober.poll(until, &mut done)?;
        }
        for r in done.drain(..) {
            mda.on_result(r);
        }
    }
    for h in mda.hops_done() {
        if !on_progress(Progress::Hop(&h))? {
            return Ok(());
        }
    }
    if !stop.load(Ordering::Relaxed) {
        // Interrupted, the search is not a cycle done.
        on_progress(Progress::CycleDone(1))?;
    }
    Ok(())
}

/// The prober: SYN probes when the raw sockets open (or `--probe syn` demands them), else
/// connect() probes. Opened before privileges are dropped.
fn open_prober(
    cfg: &TraceConfig,
    waker: &Arc<Waker>,
    stop: &Arc<AtomicBool>,
) -> Result<(Box<dyn Prober>, Setup, bool), Error> {
    // A single flow gets the ports of the other flows it may try (`retry`).
    let flows = usize::from(cfg.run.flows);
    let spare = if flows == 1 {
        usize::from(retry::OTHER_FLOWS)
    } else {
        0
    };
    let syn = |without, flows| Probes::Syn {
        flow: Flow::Constant,
        flows,
        without,
    };
    let mut need = Need {
        probes: match cfg.probe {
            TraceProbe::Connect => Probes::TtlConnect {
                flows: flows + spare,
            },
            // Auto too: without CAP_NET_RAW it opens again below, for connect() probes.
            TraceProbe::Syn | TraceProbe::Auto => {
                syn(NoRaw::Fail(privilege::NO_RAW_SYN_TRACE), flows + spare)
            }
        },
        targets: Targets::One(cfg.run.target),
        timeout: cfg.run.timeout,
        interval: None,
        verbose: false,
        marks: cfg.marks,
    };
    let opened = match open::open(&need, waker, stop) {
        // No CAP_NET_RAW (nothing was opened): connect() probes, said by `open`.
        Err(Error::Setup(s))
            if cfg.probe == TraceProbe::Auto && s == privilege::NO_RAW_SYN_TRACE =>
        {
            need.probes = syn(NoRaw::TtlConnect, flows + spare);
            open::open(&need, waker, stop)?
        }
        r => r?,
    };
    let constant = opened.kind == Kind::Syn;
    let mut ports = opened.ports;
    ports.truncate(flows);
    let setup = Setup {
        probe: if constant { "syn" } else { "connect" },
        source: opened.source,
        ports,
    };
    Ok((opened.prober, setup, constant))
}

/// The trace command. Returns the exit status: 0 reached, 1 not, 3 partly (some flows).
pub fn trace(cfg: TraceConfig) -> Result<i32, Error> {
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    // Kernel receive timestamps (the connect() probes' ICMP times): asked for first, in
    // effect before the first probe (`timing::RxStamping`).
    let stamping = crate::timing::RxStamping::request();
    let (mut prober, setup, constant) = open_prober(&cfg, &waker, &stop)?;
    if let Some(size) = cfg.run.size {
        mtu::size_probes(prober.as_mut(), size)?;
    }
    super::shared::on_signals(&stop, &waker)?;
    if let Some(on) = &stamping {
        let _ = on.wait_in_effect(STAMPS_ON_WITHIN);
    }
    let started = Instant::now();

    // On a terminal, several cycles are drawn live; what is printed meanwhile waits for the
    // normal screen. A terminal that cannot be taken gets the lines.
    let live = live::wanted(&cfg)
        .then(|| live::LiveTrace::start(&cfg).ok().map(RefCell::new))
        .flatten();
    let screen = match live {
        Some(_) => Screen::Keep,
        None => Screen::Through,
    };
    let (stdout, hold) = screen_stdout(screen);
    let mut out = TraceWriter::new(stdout, &cfg.run, cfg.output);
    let broken = |e: &io::Error| e.kind() == io::ErrorKind::BrokenPipe;
    match out.start(&cfg.run, &setup) {
        Err(e) if broken(&e) => return Ok(1),
        Err(e) => return Err(Error::io("write output", e)),
        Ok(()) => {}
    }
    let plan = Plan {
        target: cfg.run.target,
        max_hops: cfg.run.max_hops,
        queries: cfg.run.queries,
        flows: cfg.run.flows,
        constant_flows: constant,
        // connect() probes leave one at a time per flow: each silent hop costs -W in turn.
        gap: (!constant).then_some(crate::trace::mda::GAP),
    };
    let mut engine = Engine::new(plan);
    let mut mda = Mda::new(
        cfg.run.target,
        cfg.run.max_hops,
        cfg.search.alpha,
        cfg.run.flows,
    );
    let mut pacer = Pacer::new(cfg.search.rate);
    let mut state = TraceState::new(
        cfg.run.target,
        cfg.run.max_hops,
        cfg.run.queries,
        cfg.run.flows,
    );
    state.alpha = cfg.search.alpha;
    state.multipath = cfg.search.multipath;
    if let (true, Some(source)) = (constant, setup.source) {
        state.middlebox = Middlebox::probing(source, cfg.marks).with_size(cfg.run.size);
    }
    let mut pipe_closed = false;
    // With the view, the waits for the probes are cut short to read its keys.
    let mut keyed;
    let probing: &mut dyn Prober = match &live {
        Some(view) => {
            keyed = live::Keyed {
                inner: prober.as_mut(),
                live: view,
                stop: &stop,
            };
            &mut keyed
        }
        None => prober.as_mut(),
    };
    let mut on_progress = |p: Progress| {
        let r = match p {
            Progress::Hop(h) => {
                state.record(h);
                out.hop_done(h, cfg.run.target, cfg.run.flows)
            }
            Progress::CycleDone(c) => {
                state.cycles_done = c;
                out.cycle_done(c)
            }
        };
        if let Some(view) = &live {
            let mut view = view.borrow_mut();
            // `q` is Ctrl-C: the cycle under way is dropped, the report follows.
            let quit = match p {
                Progress::Hop(_) => view.hop(&mut state)?,
                Progress::CycleDone(c) => view.cycle_done(&mut state, c)?,
            };
            if quit {
                stop.store(true, Ordering::Relaxed);
            }
        }
        match r {
            Ok(()) => Ok(true),
            Err(e) if broken(&e) => {
                pipe_closed = true;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    };
    let driven = if cfg.search.multipath {
        drive_mda(
            &mut mda,
            probing,
            &mut pacer,
            &stop,
            &SystemTime::now,
            &mut on_progress,
        )
    } else {
        drive_paced(
            &mut engine,
            probing,
            cfg.run.cycles,
            cfg.run.interval,
            &mut pacer,
            &stop,
            &SystemTime::now,
            &mut on_progress,
        )
    };
    state.assumed = mda.assumed().to_vec();
    state.unfinished = mda.unfinished();
    // The terminal back first, whatever happened, then what was held for it.
    let restored = live.map(|l| l.into_inner().finish()).transpose();
    let released = hold.release();
    driven.map_err(|e| Error::io("trace", e))?;
    restored.map_err(|e| Error::io("restore the terminal", e))?;
    match released {
        Err(e) if broken(&e) => pipe_closed = true,
        r => r.map_err(|e| Error::io("write output", e))?,
    }
    // Interrupted before the first round ended: what was heard so far, within the time it
    // actually waited (not the timeout), and said to be partial.
    let cut_short = stop.load(std::sync::atomic::Ordering::Relaxed) && state.cycles_done == 0;
    let waited = if cut_short {
        format!("{:.1}s", started.elapsed().as_secs_f64())
    } else {
        humantime::format_duration(cfg.run.timeout).to_string()
    };
    let mut v = verdict::verdict(&state, &waited);
    let mut other_probes = 0;
    if cut_short {
        v.text = format!("interrupted before the first round ended: {}", v.text);
    } else if !pipe_closed {
        // One flow broke: do others get through?
        let first = engine.next_seq();
        (v, other_probes) = retry::try_other_flows(v, engine.plan(), first, prober.as_mut(), &stop)
            .map_err(|e| Error::io("trace: probe other flows", e))?;
    }
    if let (Some(size), false) = (cfg.run.size, cut_short) {
        let run = &cfg.run;
        mtu::judge(
            &mut v,
            prober.as_mut(),
            size,
            run.target,
            run.max_hops,
            run.timeout,
        );
    }
    let code = v.exit_status();
    if pipe_closed {
        return Ok(code);
    }
    let tally = prober.icmp_tally();
    let (sent, reprobes) = if cfg.search.multipath {
        (mda.sent(), 0)
    } else {
        engine.sent()
    };
    let totals = RunTotals {
        probes_sent: sent + other_probes,
        reprobes,
        unmatched_icmp: tally.unmatched,
        late_icmp: tally.late,
        elapsed: started.elapsed(),
    };
    match out.finish(&cfg.run, &state, &v, totals) {
        Err(e) if broken(&e) => {}
        Err(e) => return Err(Error::io("write output", e)),
        Ok(()) => {}
    }
    let _ = io::stdout().flush();
    Ok(code)
}
