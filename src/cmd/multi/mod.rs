//! Many targets at once (`tcpping-diag A:P B:P …`, `-f FILE`, `--metrics ADDR:PORT`): one
//! event loop sends every target's probes at its own interval through one
//! [`Prober`](crate::probe::Prober), reads the verdicts, and reports them per target (lines,
//! NDJSON, Prometheus metrics).
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
//! Where things are: this file reads the settings, says what the prober needs (opened,
//! privileges dropped, by [`crate::probe::open`]) and runs the steps of [`run`];
//! [`event_loop`] holds the targets' state and the loop;
//! [`reload`] applies SIGHUP; [`live`] draws the board on a terminal in place of the line
//! per probe; [`schedule`], [`targets`], [`resolve`] and [`table`] are the pure parts
//! (timers, the targets file, name lookups, the closing table).

mod event_loop;
mod live;
mod reload;
mod resolve;
mod schedule;
mod table;
mod targets;
#[cfg(test)]
mod tests;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::screen::{screen_stdout, Screen};
use crate::cli::{ClientConfig, Family, PingArgs};
use crate::error::Error;
use crate::metrics::{self, Metrics};
use crate::net::{self, Waker};
use crate::output::Reporter;
use crate::probe::open::{self, Need, Probes, Targets};

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
    /// `--metrics-histograms`.
    histograms: metrics::Histograms,
    /// Whether a terminal may get the board (not `--no-tui`).
    tui: bool,
}

impl Config {
    fn from_args(args: PingArgs) -> Result<Config, Error> {
        let m = args.into_multi_config(targets::check_target)?;
        Ok(Config {
            template: m.template,
            family: m.family,
            cli_targets: m.targets,
            file: m.file,
            metrics: m.metrics,
            histograms: m.histograms,
            tui: m.tui,
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

/// What the prober needs opened while privileged.
fn need(cfg: &Config) -> Need {
    let t = &cfg.template;
    // One port for every target (command-line targets only): the kernel filter passes
    // only the SYN prober's segments. Otherwise (a file may bring any port) every SYN and RST.
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
    // One ICMP listener and one registry for every target's pings; handshakes are timed by
    // the kernel (TCP_INFO): the packet socket of the single-target ping filters on one port.
    Need {
        probes: Probes::ping(t.mode, t.flow, t.icmp, !t.strict_echo),
        targets: Targets::Many { v4, v6, port },
        timeout: t.timeout,
        interval: Some(t.interval),
        verbose: t.verbose,
        marks: crate::packet::build::Marks::tos(t.tos),
    }
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
    let hup = Arc::new(AtomicBool::new(false));
    super::shared::on_signal(signal_hook::consts::SIGHUP, &hup, waker)?;
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
    histograms: metrics::Histograms,
) -> Result<(Option<Arc<Metrics>>, Option<metrics::Server>), Error> {
    let metrics = http.is_some().then(|| Arc::new(Metrics::new(histograms)));
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
    // Then the prober's sockets, and every thread's capabilities dropped, before any
    // untrusted input (the targets file, names, scrapes) and before any thread of ours starts.
    let mut prober = open::open(&need(&cfg), &waker, &stop)?.prober;
    prober.set_shape(cfg.template.shape);
    let lines = first_targets(&cfg)?;
    // --plot: its destination checked before the first probe, with the privileges the
    // picture is written with at the end.
    let plot = cfg
        .template
        .plot
        .as_deref()
        .map(crate::report::Recorder::many)
        .transpose()?;
    super::shared::on_signals(&stop, &waker)?;
    let hup = on_sighup(&waker)?;
    super::shared::stamps_on(stamping.as_ref(), cfg.template.verbose);
    let (metrics, server) = start_metrics(http, cfg.histograms)?;
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
    // On a terminal, the board replaces the line per probe. A terminal that cannot be taken
    // gets the lines.
    let board = live::wanted(&cfg)
        .then(|| live::LiveBoard::start().ok())
        .flatten();
    let screen = match board {
        Some(_) => Screen::Drop,
        None => Screen::Through,
    };
    let (stdout, hold) = screen_stdout(screen);
    let out = Reporter::new(stdout, &cfg.template);
    let mut run = Run::new(&cfg, prober.as_mut(), out, metrics, resolver, wake, plot);
    run.board = board;
    run.start(lines);
    let started = Instant::now();
    let looped = run.until_done(&stop, &hup);
    let end = Instant::now();
    // The terminal back first, whatever happened; then the summaries and the table.
    let restored = run.board.take().map(live::LiveBoard::finish).transpose();
    hold.release().map_err(|e| Error::io("write output", e))?;
    looped?;
    restored.map_err(|e| Error::io("restore the terminal", e))?;
    let code = run.finish(started, end)?;
    if let Some(server) = &server {
        if !stop.load(Ordering::Relaxed) && !run.closed() {
            serve_final_metrics(server, &stop, &waker);
        }
    }
    drop(run);
    drop(server);
    Ok(code)
}
