//! `tcpping-diag HOST:PORT`: open what the probes need while privileged, drop privileges,
//! then schedule probes, report each verdict, and summarise.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared;
use crate::cli::{ClientConfig, Mode, Output};
use crate::error::Error;
use crate::net::{self, Waker};
use crate::output::reporter;
use crate::probe::open::{self, Need, Probes, Targets};
use crate::probe::{PingResult, ProbeSpec, Prober};
use crate::report::Recorder;
use crate::stats::Stats;
use crate::timing::RxStamping;

/// Ask for the number of pings, as the original client did. An empty answer means "until
/// interrupted", as ping without -c.
fn prompt_count() -> Result<Option<u64>, Error> {
    let stdin = io::stdin();
    loop {
        print!("Enter number of pings (N; empty = until interrupted): ");
        let _ = io::stdout().flush();
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("read the number of pings", e))?
            == 0
        {
            return Err(Error::Usage("no number of pings given".into()));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        match line.parse::<u64>() {
            Ok(n) if n > 0 => return Ok(Some(n)),
            _ => eprintln!(
                "Please enter a whole number greater than 0, or nothing to ping until interrupted."
            ),
        }
    }
}

/// The client: ping, report, summarise. Returns the exit status.
pub fn ping(mut cfg: ClientConfig) -> Result<i32, Error> {
    if cfg.count.is_none() && io::stdin().is_terminal() && cfg.output == Output::Human {
        cfg.count = prompt_count()?;
    }
    // Kernel receive timestamps before anything else: the kernel switches them on for the
    // host from deferred work, which has until the first ping to run (`shared::stamps_on`).
    let stamping = RxStamping::request();
    // What needs privilege first, then every privilege dropped, then the prober.
    let need = Need {
        probes: Probes::ping(cfg.mode, cfg.flow, cfg.icmp, !cfg.strict_echo),
        targets: Targets::One(cfg.target),
        timeout: cfg.timeout,
        interval: Some(cfg.interval),
        verbose: cfg.verbose,
    };
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    let mut opened = open::open(&need, &waker, &stop)?;
    // SYN probes are built with the route's source address: without one, say so.
    let src = if cfg.mode == Mode::Syn {
        let route = opened
            .source
            .map_or_else(|| net::source_address_for(cfg.target), Ok);
        Some(route.map_err(|e| Error::io(format!("find a route to {}", cfg.target.ip()), e))?)
    } else {
        opened.source
    };
    shared::on_signals(&stop, &waker)?;
    shared::stamps_on(stamping.as_ref(), cfg.verbose);
    schedule(&cfg, src, opened.prober.as_mut(), &stop)
}

/// Send the probes at the configured interval (the next one when the prober is ready for
/// it), report every verdict as it comes, and the summary at the end or on a signal.
/// Returns the exit status: 0 when any probe was answered, 1 when none was.
pub fn schedule(
    cfg: &ClientConfig,
    src: Option<std::net::IpAddr>,
    prober: &mut dyn Prober,
    stop: &AtomicBool,
) -> Result<i32, Error> {
    // Not locked for the whole run: the demo's server thread logs to stdout too.
    let run = cfg.run();
    let mut out = reporter(
        io::BufWriter::new(io::stdout()),
        cfg.output,
        cfg.mode,
        cfg.quiet,
    );
    let mut stats = Stats::default();
    // --plot: the run's picture, fed every result, written however the loop ends.
    // Its destination is checked now: a bad one fails before the first ping.
    let mut plot = cfg
        .plot
        .as_deref()
        .map(|path| Recorder::new(&run, src, path))
        .transpose()?;
    let draw = |plot: &Option<Recorder>| plot.as_ref().map_or(Ok(()), Recorder::finish);
    let started = Instant::now();
    // A closed pipe (| head) ends the run quietly; other write errors are reported.
    let write = |r: io::Result<()>| -> Result<bool, Error> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Error::io("write output", e)),
        }
    };
    let exit = |stats: &Stats| if stats.replies > 0 { 0 } else { 1 };
    if !write(out.start(&run, src))? {
        return Ok(0);
    }
    let mut seq = 0u64;
    let mut next = Instant::now();
    let mut done: Vec<PingResult> = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping {
            prober.interrupt(&mut done);
        }
        for result in done.drain(..) {
            stats.record(&result);
            if let Some(p) = &mut plot {
                p.observe(&result);
            }
            if !write(out.ping(&result, &run))? {
                draw(&plot)?;
                return Ok(exit(&stats));
            }
        }
        if cfg.verbose {
            for (err, why) in prober.drain_unmatched() {
                if !write(out.unmatched(&err, why))? {
                    draw(&plot)?;
                    return Ok(exit(&stats));
                }
            }
        }
        let more = cfg.count.is_none_or(|n| seq < n);
        if stopping || (!more && prober.in_flight() == 0) {
            break;
        }
        let now = Instant::now();
        // A ping starts every -i, as ping's do, whatever the pings still in flight (several
        // when -W is longer than -i), when the prober can carry it: a persistent connection
        // carries none but its first while it opens (then any number, pipelined), a constant
        // SYN flow as many as start within -W. With -i 0 (back to back) the next ping starts
        // when the previous one concluded (SYN probes: the prober says when).
        let back_to_back = cfg.interval.is_zero() && cfg.mode != Mode::Syn;
        let free = (!back_to_back || prober.in_flight() == 0) && prober.ready(cfg.target);
        if more && now >= next && free {
            seq += 1;
            prober.send(ProbeSpec {
                seq,
                target: cfg.target,
                ttl: cfg.ttl,
                flow: 0,
            });
            // On the interval's beat; a ping that had to wait (for the prober) sets a new one.
            next = if next + cfg.interval > now {
                next + cfg.interval
            } else {
                now + cfg.interval
            };
            continue;
        }
        // Wait for verdicts, until the next probe is due (or, with all sent, until the
        // last verdict: the prober's own timeouts end that wait).
        let until = if more && free {
            next
        } else {
            now + Duration::from_secs(3600)
        };
        prober
            .poll(until, &mut done)
            .map_err(|e| Error::io("wait for answers", e))?;
    }
    let icmp = prober.icmp_tally();
    write(out.summary(&run, &stats, icmp, started.elapsed()))?;
    draw(&plot)?;
    let drops = prober.capture_drops();
    if drops > 0 {
        eprintln!(
            "tcpping-diag: warning: the kernel dropped {drops} captured packets (our queue was full): some timeouts may have been answered"
        );
    }
    Ok(exit(&stats))
}
