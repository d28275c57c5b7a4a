//! Many targets at once (`tcpping-diag A:P B:P …`, `-f FILE`, `--metrics ADDR:PORT`): one
//! event loop sends every target's probes at its own interval through one [`Prober`], reads
//! the verdicts, and reports them per target (lines, NDJSON, Prometheus metrics).
//!
//! - No thread per target or per probe: a timer heap holds each target's next send time
//!   ([`schedule`]); the first sends are spread evenly over one interval. The prober keeps
//!   the probes in flight (the SYN prober: one raw socket to send, one packet socket for
//!   every answer and ICMP error).
//! - Each target's sequence numbers run from 1; the prober sees one run-wide sequence (the
//!   SYN prober tells probes apart by it), mapped back here.
//! - The targets file (a regular file within [`targets::MAX_FILE`]) is read after every
//!   capability is dropped, and re-read on SIGHUP on a thread of its own
//!   ([`targets::diff`]): added targets start, removed ones end with their summary, bad
//!   lines are reported with their number (the first few, then a count). A target given
//!   twice is one target ([`targets::parse`]).
//! - Names are resolved off the loop ([`resolve`]: threads on demand, a deadline per
//!   lookup); one that fails is reported once and retried with backoff.
//! - Memory is flat: per target, compact statistics and a bounded set of metric series;
//!   per probe in flight, one map entry.
//!
//! Where things are: this file reads the settings, opens what needs privilege, drops it
//! and runs the steps of [`run`]; [`event_loop`] holds the targets' state and the loop;
//! [`reload`] applies SIGHUP; [`schedule`], [`targets`], [`resolve`] and [`table`] are the
//! pure parts (timers, the targets file, name lookups, the closing table).

mod event_loop;
mod reload;
mod resolve;
mod schedule;
mod table;
mod targets;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{ClientConfig, Family, Mode, PingArgs};
use crate::error::Error;
use crate::icmp::listener::{Capture, RawIcmp};
use crate::icmp::Registry;
use crate::metrics::{self, Metrics};
use crate::net::{self, Waker};
use crate::output::Reporter;
use crate::privilege;
use crate::probe::connect::ConnectProber;
use crate::probe::syn::{SynProber, SynSockets};
use crate::probe::Prober;

use event_loop::Run;
use targets::{Parsed, TargetLine};

/// Settings of a many-targets run.
struct Config {
    /// Every target's settings but its name and address.
    template: ClientConfig,
    family: Option<Family>,
    cli_targets: Vec<String>,
    file: Option<PathBuf>,
    metrics: Option<SocketAddr>,
}

impl Config {
    fn from_args(mut args: PingArgs) -> Result<Config, Error> {
        let cli_targets = std::mem::take(&mut args.targets);
        for t in &cli_targets {
            targets::check_target(t).map_err(Error::Usage)?;
        }
        let file = args.file.take();
        let metrics = args
            .metrics
            .take()
            .map(|m| {
                crate::cli::parse_metrics_listen(&m)
                    .map_err(|e| Error::Usage(format!("--metrics: {e}")))
            })
            .transpose()?;
        let family = match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        };
        // Every other flag is validated as for one target (a literal stands in for it).
        args.targets = vec!["127.0.0.1:1".into()];
        let mut template = args.into_config()?;
        template.target_name.clear();
        Ok(Config {
            template,
            family,
            cli_targets,
            file,
            metrics,
        })
    }

    /// The targets: those on the command line, then the file's (read within its bounds;
    /// Err: the one line saying why it was refused). Bad lines are counted, not kept.
    fn read_targets(&self) -> Result<Parsed, String> {
        read_targets(&self.cli_targets, self.file.as_deref())
    }

    /// Say what was wrong in a reading: the first bad lines and repeats, then counts.
    fn report(&self, p: &Parsed) {
        let file = self
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        for l in targets::problem_lines(p, &file) {
            eprintln!("tcpping-diag: {l}");
        }
    }
}

/// Read the targets (see [`Config::read_targets`]); on a thread of its own at SIGHUP.
fn read_targets(cli: &[String], file: Option<&Path>) -> Result<Parsed, String> {
    let bytes = file.map(targets::read_file).transpose()?;
    Ok(targets::parse(cli, bytes.as_deref(), targets::REPORTED))
}

/// A prober's privileged part, opened before privileges are dropped.
enum Opened {
    Syn(Box<SynProber>),
    /// Connect probes: the raw ICMP sockets (none without the privilege, or with --no-icmp).
    Connect(Vec<RawIcmp>),
}

/// The raw ICMP sockets of both families (with `icmp`); without the privilege, the one-line
/// notice and none.
fn open_raw_icmp(icmp: bool) -> Vec<RawIcmp> {
    if !icmp {
        return Vec::new();
    }
    let mut raw = Vec::new();
    let mut denied = false;
    for v6 in [false, true] {
        match RawIcmp::open(v6) {
            Ok(s) => raw.push(s),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
            Err(_) => {}
        }
    }
    if denied && raw.is_empty() {
        eprintln!("{}", privilege::NO_RAW_NOTICE);
    }
    raw
}

/// Open the prober's privileged sockets (the prober is started once privileges are dropped).
fn open_prober(cfg: &Config, waker: &Arc<Waker>, stop: &Arc<AtomicBool>) -> Result<Opened, Error> {
    let t = &cfg.template;
    if t.mode == Mode::Syn {
        // One port for every target (command-line targets only): the kernel filter passes
        // only its segments. Otherwise (a file may bring any port) every SYN and RST.
        let ports: std::collections::HashSet<u16> = cfg
            .cli_targets
            .iter()
            .filter_map(|l| crate::cli::split_host_port(l).ok().map(|(_, p)| p))
            .collect();
        let port = if cfg.file.is_none() && ports.len() == 1 {
            ports.into_iter().next()
        } else {
            None
        };
        let (v4, v6) = match cfg.family {
            Some(Family::V4) => (true, false),
            Some(Family::V6) => (false, true),
            None => (true, true),
        };
        let open = |v4: bool, v6: bool| -> io::Result<SynProber> {
            let sockets = SynSockets::open(v4, v6, port)?;
            Ok(SynProber::new(
                sockets,
                t.flow,
                1,
                t.timeout,
                t.verbose,
                Arc::clone(waker),
                Arc::clone(stop),
            )?
            .with_spin(t.interval.is_zero())
            .with_interval(t.interval))
        };
        let prober = match open(v4, v6) {
            Ok(p) => p,
            // No IPv6 on this host: IPv4 targets still work.
            Err(e) if v4 && v6 && e.kind() != io::ErrorKind::PermissionDenied => {
                eprintln!(
                    "tcpping-diag: IPv6 SYN probes unavailable ({}): IPv4 only",
                    net::describe_io(&e)
                );
                open(true, false).map_err(|e| Error::io("open the raw sockets for --syn", e))?
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::Setup(privilege::NO_RAW_SYN.into()))
            }
            Err(e) => return Err(Error::io("open the raw sockets for --syn", e)),
        };
        return Ok(Opened::Syn(Box::new(prober)));
    }
    Ok(Opened::Connect(open_raw_icmp(t.icmp)))
}

/// Start the prober on what [`open_prober`] opened (privileges already dropped).
fn start_prober(
    opened: Opened,
    cfg: &Config,
    waker: &Arc<Waker>,
    stop: &Arc<AtomicBool>,
) -> Result<Box<dyn Prober>, Error> {
    Ok(match opened {
        Opened::Syn(p) => p,
        Opened::Connect(raw) => {
            // One ICMP listener and one registry for every target's pings; handshakes are
            // timed by the kernel (TCP_INFO): the packet socket of the single-target ping
            // filters on one port.
            let t = &cfg.template;
            let registry = Arc::new(Registry::new().with_unmatched_log(t.verbose));
            let capture = if raw.is_empty() {
                None
            } else {
                let tx = waker
                    .sender()
                    .map_err(|e| Error::io("create wake-up channel", e))?;
                Some(
                    Capture::start(raw, Arc::clone(&registry), tx)
                        .map_err(|e| Error::io("start ICMP listener", e))?,
                )
            };
            Box::new(
                ConnectProber::new(
                    t.mode,
                    t.timeout,
                    registry,
                    Arc::clone(waker),
                    Arc::clone(stop),
                )
                .map_err(|e| Error::io("start the event loop", e))?
                .with_capture(capture)
                .with_echo_fallback(!t.strict_echo)
                .with_spin(t.interval.is_zero()),
            )
        }
    })
}

/// The targets to start with, read after every privilege is dropped; what was wrong in
/// them is said.
fn first_targets(cfg: &Config) -> Result<Vec<TargetLine>, Error> {
    let parsed = cfg.read_targets().map_err(Error::Setup)?;
    cfg.report(&parsed);
    let lines = parsed.targets;
    if lines.is_empty() {
        eprintln!("tcpping-diag: no targets yet: add lines to the file and send SIGHUP");
    }
    Ok(lines)
}

/// SIGHUP: sets the flag returned and wakes the loop.
fn on_sighup(waker: &Waker) -> Result<Arc<AtomicBool>, Error> {
    use signal_hook::consts::SIGHUP;
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, Arc::clone(&hup))
        .map_err(|e| Error::io("install signal handler", e))?;
    let tx = waker
        .sender()
        .map_err(|e| Error::io("install signal handler", e))?;
    signal_hook::low_level::pipe::register(SIGHUP, tx)
        .map_err(|e| Error::io("install signal handler", e))?;
    Ok(hup)
}

/// --metrics: the port bound while privileged (a low port may need it).
fn bind_metrics(cfg: &Config) -> Result<Option<TcpListener>, Error> {
    cfg.metrics
        .map(|addr| {
            metrics::Server::bind(addr)
                .map_err(|e| Error::io(format!("listen for metrics on {addr}"), e))
        })
        .transpose()
}

/// --metrics: the model every target records into, and the server that shows it.
fn start_metrics(
    http: Option<TcpListener>,
) -> Result<(Option<Arc<Metrics>>, Option<metrics::Server>), Error> {
    let metrics = http.is_some().then(|| Arc::new(Metrics::new()));
    let server = match (http, &metrics) {
        (Some(h), Some(m)) => Some(
            metrics::Server::start(h, Arc::clone(m))
                .map_err(|e| Error::io("start the metrics server", e))?,
        ),
        _ => None,
    };
    if let Some(s) = &server {
        eprintln!("tcpping-diag: metrics at http://{}/metrics", s.addr());
    }
    Ok((metrics, server))
}

/// With -n, the endpoint keeps serving the final counts until a signal: a scraper (and a
/// test comparing them with the output) gets the last probes too.
fn serve_final_metrics(server: &metrics::Server, stop: &AtomicBool, waker: &Waker) {
    eprintln!(
        "tcpping-diag: all probes done; serving the final metrics at http://{}/metrics until SIGTERM or SIGINT",
        server.addr()
    );
    while !stop.load(Ordering::Relaxed) {
        let _ = net::poll(&[(waker.fd(), false)], Some(Duration::from_secs(1)));
        waker.drain();
    }
}

/// `tcpping-diag A:P B:P …` / `-f FILE` / `--metrics ADDR:PORT`: returns the exit status (0
/// when any target answered, 1 when none did).
pub fn run(args: PingArgs) -> Result<i32, Error> {
    // Kernel receive timestamps first (see `shared::stamps_on`).
    let stamping = crate::timing::RxStamping::request();
    let cfg = Config::from_args(args)?;
    if cfg.cli_targets.is_empty() && cfg.file.is_none() {
        return Err(Error::Usage(
            "missing target HOST:PORT (try 'tcpping-diag --help')".into(),
        ));
    }
    // A descriptor per connect probe in flight and per metrics connection: thousands of
    // targets need more than the usual soft limit of 1024.
    crate::net::raise_open_files();
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    // Privileged first: the raw sockets and the metrics port; then drop every privilege.
    let http = bind_metrics(&cfg)?;
    let opened = open_prober(&cfg, &waker, &stop)?;
    // Every thread's capabilities, before any untrusted input (the targets file, names,
    // scrapes) and before any thread of ours starts.
    if let Err(e) = privilege::drop_all() {
        return Err(Error::Setup(format!("drop capabilities: {e}")));
    }
    let lines = first_targets(&cfg)?;
    // --plot: its destination checked before the first probe, with the privileges the
    // picture is written with at the end.
    let plot = cfg
        .template
        .plot
        .as_deref()
        .map(crate::report::Recorder::many)
        .transpose()?;
    let mut prober = start_prober(opened, &cfg, &waker, &stop)?;
    super::shared::on_signals(&stop, &waker)?;
    let hup = on_sighup(&waker)?;
    super::shared::stamps_on(stamping.as_ref(), cfg.template.verbose);
    let (metrics, server) = start_metrics(http)?;
    let resolver = resolve::Resolver::start(
        cfg.family,
        &waker
            .sender()
            .map_err(|e| Error::io("create wake-up channel", e))?,
    )
    .map_err(|e| Error::io("start the resolver threads", e))?;
    let wake = waker
        .sender()
        .map_err(|e| Error::io("create wake-up channel", e))?;
    let out = Reporter::new(io::BufWriter::new(io::stdout()), &cfg.template);
    let mut run = Run::new(&cfg, prober.as_mut(), out, metrics, resolver, wake, plot);
    run.start(lines);
    let started = Instant::now();
    run.until_done(&stop, &hup)?;
    let code = run.finish(started, Instant::now())?;
    if let Some(server) = &server {
        if !stop.load(Ordering::Relaxed) && !run.closed() {
            serve_final_metrics(server, &stop, &waker);
        }
    }
    drop(run);
    drop(server);
    Ok(code)
}
