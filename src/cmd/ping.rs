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
use crate::output::Reporter;
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
    if cfg.pmtu {
        return super::pmtu::pmtu(&cfg);
    }
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
        marks: crate::packet::build::Marks::tos(cfg.tos),
    };
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    let mut opened = open::open(&need, &waker, &stop)?;
    opened.prober.set_shape(cfg.shape);
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
    let out = Reporter::new(io::BufWriter::new(io::stdout()), cfg);
    schedule_to(out, cfg, src, prober, stop)
}

/// [`schedule`], reporting to `out`.
fn schedule_to<W: Write>(
    mut out: Reporter<W>,
    cfg: &ClientConfig,
    src: Option<std::net::IpAddr>,
    prober: &mut dyn Prober,
    stop: &AtomicBool,
) -> Result<i32, Error> {
    let mut stats = Stats::default();
    // --plot: the run's picture, fed every result, written however the loop ends.
    // Its destination is checked now: a bad one fails before the first ping.
    let mut plot = cfg
        .plot
        .as_deref()
        .map(|path| Recorder::new(cfg, src, path))
        .transpose()?;
    let draw = |plot: &Option<Recorder>| plot.as_ref().map_or(Ok(()), Recorder::finish);
    let started = Instant::now();
    // A closed pipe (| head) ends the run quietly; other write errors are reported.
    let write = shared::written;
    let exit = |stats: &Stats| if stats.replies > 0 { 0 } else { 1 };
    if !write(out.start(cfg, src))? {
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
            if !write(out.ping(&result, cfg))? {
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
    write(out.summary(cfg, &stats, icmp, started.elapsed()))?;
    draw(&plot)?;
    let drops = prober.capture_drops();
    if drops > 0 {
        eprintln!(
            "tcpping-diag: warning: the kernel dropped {drops} captured packets (our queue was full): some timeouts may have been answered"
        );
    }
    Ok(exit(&stats))
}

#[cfg(test)]
mod tests {
    //! The scheduler driven over the simulated network of [`crate::cmd::sim`]: which probes
    //! leave when, how many may be in flight, and what the summary counts. Times are only
    //! ever lower bounds (a probe never leaves early, a timeout is waited for): a busy
    //! machine makes the runs slower, never the assertions false.

    use std::net::SocketAddr;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::schedule_to;
    use crate::cli::ClientConfig;
    use crate::cmd::sim::{addr, cli, hosts, ip, ms, Fate, Host, Sim};
    use crate::output::Reporter;

    const HOST: &str = "10.0.0.1:80";

    fn host() -> SocketAddr {
        addr(HOST)
    }

    /// The settings of `tcpping-diag --connect-only --json FLAGS… 10.0.0.1:80`.
    fn config(flags: &[&str]) -> ClientConfig {
        let args: Vec<&str> = flags.iter().copied().chain([HOST]).collect();
        cli(&args).ping.into_config().unwrap()
    }

    /// What a run over `sim` printed: its exit status, its ping events and its summary.
    struct Ran {
        code: i32,
        pings: Vec<Value>,
        summary: Value,
        /// When the run started and ended.
        t0: Instant,
        end: Instant,
    }

    impl Ran {
        fn statuses(&self) -> Vec<&str> {
            self.pings
                .iter()
                .map(|p| p["status"].as_str().unwrap())
                .collect()
        }

        /// The summary's counts: sent, received, timeout, refused, icmp, error, interrupted.
        fn counts(&self) -> [u64; 7] {
            [
                "sent",
                "received",
                "timeout",
                "refused",
                "icmp",
                "error",
                "interrupted",
            ]
            .map(|k| self.summary[k].as_u64().unwrap())
        }
    }

    fn run_with_stop(flags: &[&str], sim: &mut Sim, stop: &AtomicBool) -> Ran {
        let cfg = config(flags);
        let mut buf = Vec::new();
        let t0 = Instant::now();
        let code = schedule_to(Reporter::new(&mut buf, &cfg), &cfg, None, sim, stop).unwrap();
        let end = Instant::now();
        let events: Vec<Value> = String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of =
            |t: &str| -> Vec<Value> { events.iter().filter(|e| e["type"] == t).cloned().collect() };
        let summary = of("summary");
        assert_eq!(summary.len(), 1, "{events:?}");
        Ran {
            code,
            pings: of("ping"),
            summary: summary[0].clone(),
            t0,
            end,
        }
    }

    fn run(flags: &[&str], sim: &mut Sim) -> Ran {
        run_with_stop(flags, sim, &AtomicBool::new(false))
    }

    fn sim_of(host: Host) -> Sim {
        Sim::new(hosts([(self::host(), host)]))
    }

    #[test]
    fn count_probes_leave_on_the_interval_and_are_summarised() {
        let mut sim = sim_of(Host::always(Fate::Reply(ms(1))));
        let r = run(&["-n", "5", "-i", "20ms"], &mut sim);
        let seqs: Vec<u64> = sim.sent.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert!(sim
            .sent
            .iter()
            .all(|s| s.target == host() && s.ttl.is_none()));
        // Probe k leaves no earlier than k intervals after the start.
        for (k, at) in sim.sent_when.iter().enumerate() {
            assert!(
                *at >= r.t0 + ms(20) * k as u32,
                "probe {} left {:?} after the start",
                k + 1,
                at.duration_since(r.t0)
            );
        }
        assert_eq!(r.statuses(), ["reply"; 5]);
        assert_eq!(r.counts(), [5, 5, 0, 0, 0, 0, 0]);
        assert_eq!(r.summary["loss_pct"], 0.0);
        assert_eq!(r.code, 0);
    }

    #[test]
    fn every_verdict_is_reported_and_counted() {
        let mut sim = sim_of(Host {
            fates: vec![
                Fate::Reply(ms(1)),
                Fate::Lost,
                Fate::Refused(ms(1)),
                Fate::Icmp {
                    from: ip("10.0.5.1"),
                    icmp_type: 3,
                    code: 1,
                    after: ms(1),
                },
                Fate::SendError,
                Fate::Reply(ms(2)),
            ],
            max_in_flight: None,
        });
        let r = run(&["-n", "6", "-i", "5ms"], &mut sim);
        assert_eq!(sim.sent.len(), 6);
        let mut statuses = r.statuses();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            ["error", "icmp", "refused", "reply", "reply", "timeout"]
        );
        assert_eq!(r.counts(), [6, 2, 1, 1, 1, 1, 0]);
        let icmp = &r.summary["icmp_errors"][0];
        assert_eq!((&icmp["type"], &icmp["code"]), (&3.into(), &1.into()));
        assert_eq!(icmp["from"], "10.0.5.1");
        assert_eq!(r.code, 0, "a reply came");
    }

    #[test]
    fn no_reply_at_all_exits_1() {
        let mut sim = sim_of(Host::always(Fate::Refused(ms(1))));
        let r = run(&["-n", "3", "-i", "5ms"], &mut sim);
        assert_eq!(r.counts(), [3, 0, 0, 3, 0, 0, 0]);
        assert_eq!(r.code, 1);
    }

    #[test]
    fn the_run_waits_for_the_last_probe_until_its_timeout() {
        let mut sim = sim_of(Host {
            fates: vec![Fate::Reply(ms(1)), Fate::Lost],
            max_in_flight: None,
        });
        sim.timeout = ms(60);
        let r = run(&["-n", "2", "-i", "10ms"], &mut sim);
        assert_eq!(r.statuses(), ["reply", "timeout"]);
        assert_eq!(r.counts(), [2, 1, 1, 0, 0, 0, 0]);
        let last = *sim.sent_when.last().unwrap();
        assert!(
            r.end >= last + ms(60),
            "the summary came before the timeout"
        );
    }

    #[test]
    fn a_probe_starts_on_the_interval_while_earlier_ones_wait() {
        // Each answer comes only once the next probe has left: a scheduler that waited for
        // each verdict would see them time out (after 5 s) instead.
        let mut sim = sim_of(Host {
            fates: vec![
                Fate::ReplyAfterNext,
                Fate::ReplyAfterNext,
                Fate::ReplyAfterNext,
                Fate::Reply(ms(1)),
            ],
            max_in_flight: None,
        });
        sim.timeout = Duration::from_secs(5);
        let r = run(&["-n", "4", "-i", "10ms", "-W", "5"], &mut sim);
        assert_eq!(r.statuses(), ["reply"; 4]);
        assert!(sim.max_in_flight >= 2, "{}", sim.max_in_flight);
    }

    #[test]
    fn back_to_back_a_probe_starts_when_the_one_before_concluded() {
        let mut sim = sim_of(Host::always(Fate::Reply(ms(2))));
        let r = run(&["-n", "5", "-i", "0"], &mut sim);
        assert_eq!(r.counts(), [5, 5, 0, 0, 0, 0, 0]);
        assert_eq!(sim.max_in_flight, 1);
        // Each left after the answer to the one before (2 ms after it left).
        for w in sim.sent_when.windows(2) {
            assert!(w[1] >= w[0] + ms(2));
        }
    }

    #[test]
    fn a_probe_waits_while_the_prober_cannot_carry_it() {
        // One probe at a time to this host (a persistent connection still opening): the
        // probes due meanwhile wait, then leave one per answer.
        let mut sim = sim_of(Host {
            fates: vec![Fate::Reply(ms(30))],
            max_in_flight: Some(1),
        });
        let r = run(&["-n", "4", "-i", "5ms"], &mut sim);
        assert_eq!(r.statuses(), ["reply"; 4]);
        assert_eq!(sim.max_in_flight, 1);
        for w in sim.sent_when.windows(2) {
            assert!(w[1] >= w[0] + ms(30));
        }
    }

    #[test]
    fn a_signal_concludes_the_probes_in_flight_as_interrupted() {
        // No count: until interrupted. The signal comes as the third probe leaves; the
        // probes never answer (their timeout, 10 s, is never waited for).
        let stop = Arc::new(AtomicBool::new(false));
        let mut sim = sim_of(Host::always(Fate::Lost));
        sim.timeout = Duration::from_secs(10);
        sim.raise_after = Some((3, Arc::clone(&stop)));
        let r = run_with_stop(&["-i", "5ms", "-W", "10"], &mut sim, &stop);
        assert_eq!(sim.sent.len(), 3);
        assert_eq!(r.statuses(), ["interrupted"; 3]);
        assert_eq!(r.counts(), [3, 0, 0, 0, 0, 0, 3]);
        assert_eq!(r.code, 1);
    }
}
