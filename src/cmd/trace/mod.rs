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
mod mtu;
#[cfg(test)]
mod tests;

pub use crate::output::trace as output;
pub use crate::trace::{dns, engine, state, verdict};

use std::cell::RefCell;
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
use crate::probe::{PingResult, Prober};

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

/// Run cycles of the engine over `prober`: start a cycle when the previous one is done and
/// `interval` has passed since it started, send what the engine asks (telling it when, by
/// `clock`: the clock the probes' wire times add to), feed it the verdicts, and report
/// progress. Stops after `cycles` cycles (None: until `stop`), on `stop` (every
/// probe in flight is then dropped: an interrupted cycle is not reported), or when
/// `on_progress` returns false (a closed pipe).
pub fn drive(
    engine: &mut Engine,
    prober: &mut dyn Prober,
    cycles: Option<u64>,
    interval: Duration,
    stop: &AtomicBool,
    clock: &dyn Fn() -> SystemTime,
    on_progress: &mut dyn FnMut(Progress) -> io::Result<bool>,
) -> io::Result<()> {
    let mut done: Vec<PingResult> = Vec::new();
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
        for spec in engine.take_sends() {
            prober.send(spec);
            engine.sent_at(spec.seq, clock());
        }
        let until = if engine.in_cycle() {
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

/// The prober: SYN probes when the raw sockets open (or `--probe syn` demands them), else
/// connect() probes. Opened before privileges are dropped.
fn open_prober(
    cfg: &TraceConfig,
    waker: &Arc<Waker>,
    stop: &Arc<AtomicBool>,
) -> Result<(Box<dyn Prober>, Setup, bool), Error> {
    let syn = |without| Probes::Syn {
        flow: Flow::Constant,
        flows: usize::from(cfg.run.flows),
        without,
    };
    let need = Need {
        probes: match cfg.probe {
            TraceProbe::Connect => Probes::TtlConnect,
            TraceProbe::Syn => syn(NoRaw::Fail(privilege::NO_RAW_SYN_TRACE)),
            TraceProbe::Auto => syn(NoRaw::TtlConnect),
        },
        targets: Targets::One(cfg.run.target),
        timeout: cfg.run.timeout,
        interval: None,
        verbose: false,
    };
    let opened = open::open(&need, waker, stop)?;
    let constant = opened.kind == Kind::Syn;
    let setup = Setup {
        probe: if constant { "syn" } else { "connect" },
        source: opened.source,
        ports: opened.ports,
    };
    Ok((opened.prober, setup, constant))
}

/// The trace command. Returns the exit status: 0 reached, 1 not.
pub fn trace(cfg: TraceConfig) -> Result<i32, Error> {
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    // Kernel receive timestamps (the connect() probes' ICMP times): asked for first, in
    // effect before the first probe (`timing::RxStamping`).
    let stamping = crate::timing::RxStamping::request();
    let (mut prober, setup, constant) = open_prober(&cfg, &waker, &stop)?;
    if let Some(size) = cfg.size {
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
    };
    let mut engine = Engine::new(plan);
    let mut state = TraceState::new(
        cfg.run.target,
        cfg.run.max_hops,
        cfg.run.queries,
        cfg.run.flows,
    );
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
    let driven = drive(
        &mut engine,
        probing,
        cfg.run.cycles,
        cfg.run.interval,
        &stop,
        &SystemTime::now,
        &mut |p| {
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
        },
    );
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
    if cut_short {
        v.text = format!("interrupted before the first round ended: {}", v.text);
    }
    if let (Some(size), false) = (cfg.size, cut_short) {
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
    let code = if v.reached() { 0 } else { 1 };
    if pipe_closed {
        return Ok(code);
    }
    let tally = prober.icmp_tally();
    let (sent, reprobes) = engine.sent();
    let totals = RunTotals {
        probes_sent: sent,
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
