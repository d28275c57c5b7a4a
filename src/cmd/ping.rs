//! `tcpping-diag HOST:PORT`: open what the probes need while privileged, drop privileges,
//! then schedule probes, report each verdict, and summarise.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared;
use crate::cli::{ClientConfig, Mode, Output};
use crate::error::Error;
use crate::icmp::listener::{Capture, RawIcmp};
use crate::icmp::Registry;
use crate::net::{self, Waker};
use crate::output::reporter;
use crate::privilege;
use crate::probe::connect::ConnectProber;
use crate::probe::syn::{SynProber, SynSockets};
use crate::probe::wire::WireTap;
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

/// Open the raw ICMP sockets for the target's family (and the other, when it can).
/// Err: the target family's socket could not be opened.
fn open_raw(v6: bool) -> io::Result<Vec<RawIcmp>> {
    let mut socks = vec![RawIcmp::open(v6)?];
    if let Ok(other) = RawIcmp::open(!v6) {
        socks.push(other);
    }
    Ok(socks)
}

/// The client: ping, report, summarise. Returns the exit status.
pub fn ping(mut cfg: ClientConfig) -> Result<i32, Error> {
    if cfg.count.is_none() && io::stdin().is_terminal() && cfg.output == Output::Human {
        cfg.count = prompt_count()?;
    }
    // Kernel receive timestamps before anything else: the kernel switches them on for the
    // host from deferred work, which has until the first ping to run (`shared::stamps_on`).
    let stamping = RxStamping::request();
    if cfg.mode == Mode::Syn {
        return ping_syn(&cfg, stamping);
    }
    // Raw sockets first, then drop every privilege before anything else happens.
    let raw = if cfg.icmp {
        match open_raw(cfg.target.is_ipv6()) {
            Ok(s) => Some(s),
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    eprintln!("{}", privilege::NO_RAW_NOTICE);
                } else {
                    eprintln!(
                        "tcpping-diag: ICMP capture off: open raw ICMP socket: {}",
                        net::describe_io(&e)
                    );
                }
                None
            }
        }
    } else {
        None
    };
    // With raw-socket privileges, a packet socket times each handshake on the wire.
    let wire = WireTap::open(cfg.target.port()).ok();
    if let Err(e) = privilege::drop_all() {
        return Err(Error::Setup(format!("drop capabilities: {e}")));
    }

    let src = net::source_address_for(cfg.target).ok();
    let registry = Arc::new(Registry::new().with_unmatched_log(cfg.verbose));
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    shared::on_signals(&stop, &waker)?;
    let capture = match raw {
        Some(socks) => {
            let tx = waker
                .sender()
                .map_err(|e| Error::io("create wake-up channel", e))?;
            Some(
                Capture::start(socks, Arc::clone(&registry), tx)
                    .map_err(|e| Error::io("start ICMP listener", e))?,
            )
        }
        None => None,
    };
    let mut prober = ConnectProber::new(
        cfg.mode,
        cfg.timeout,
        Arc::clone(&registry),
        Arc::clone(&waker),
        Arc::clone(&stop),
    )
    .map_err(|e| Error::io("start the event loop", e))?
    .with_capture(capture)
    .with_echo_fallback(!cfg.strict_echo)
    .with_wire_tap(wire)
    .with_spin(cfg.interval.is_zero())
    .with_source(cfg.target.ip(), src);
    shared::stamps_on(stamping.as_ref(), cfg.verbose);
    schedule(&cfg, src, &mut prober, &stop)
}

/// `--syn`: the sockets first (they need CAP_NET_RAW: without it, one line and exit 2,
/// nothing sent), then every privilege dropped, then the probes.
fn ping_syn(cfg: &ClientConfig, stamping: Option<RxStamping>) -> Result<i32, Error> {
    let v6 = cfg.target.is_ipv6();
    let sockets = SynSockets::open(!v6, v6, Some(cfg.target.port())).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            Error::Setup(privilege::NO_RAW_SYN.into())
        } else {
            Error::io("open the raw sockets for --syn", e)
        }
    })?;
    if let Err(e) = privilege::drop_all() {
        return Err(Error::Setup(format!("drop capabilities: {e}")));
    }
    let src = net::source_address_for(cfg.target)
        .map_err(|e| Error::io(format!("find a route to {}", cfg.target.ip()), e))?;
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    shared::on_signals(&stop, &waker)?;
    let mut prober = SynProber::new(
        sockets,
        cfg.flow,
        1,
        cfg.timeout,
        cfg.verbose,
        waker,
        Arc::clone(&stop),
    )
    .map_err(|e| Error::io("reserve source ports for --syn", e))?
    .with_spin(cfg.interval.is_zero())
    .with_interval(cfg.interval);
    shared::stamps_on(stamping.as_ref(), cfg.verbose);
    schedule(cfg, Some(src), &mut prober, &stop)
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
