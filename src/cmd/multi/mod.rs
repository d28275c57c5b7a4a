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

mod resolve;
mod schedule;
mod table;
mod targets;

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cli::{ClientConfig, Family, Mode, Output, PingArgs};
use crate::error::Error;
use crate::metrics::{self, Metrics, TargetMetrics};
use crate::net::{self, Waker};
use crate::output::{Reporter, Tag};
use crate::probe::open::{self, Need, Probes, Targets};
use crate::probe::{PingResult, ProbeSpec, Prober};
use crate::stats::Stats;

use schedule::Timers;
use targets::{Parsed, TargetLine};

/// How often the loop looks at signals, names and totals when nothing else wakes it.
const TICK: Duration = Duration::from_millis(100);

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
    fn from_args(args: PingArgs) -> Result<Config, Error> {
        let m = args.into_multi_config(targets::check_target)?;
        Ok(Config {
            template: m.template,
            family: m.family,
            cli_targets: m.targets,
            file: m.file,
            metrics: m.metrics,
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

/// A reading of the targets file started at SIGHUP, off the event loop (a FIFO, a slow
/// disk or a million lines never hold up the probes).
struct Reload {
    answer: Receiver<Result<Parsed, String>>,
    /// Another SIGHUP came meanwhile: read again once this one is applied.
    again: bool,
}

/// One target's state.
struct Slot {
    generation: u32,
    line: TargetLine,
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
}

/// A probe in flight: its slot, the slot's generation, its sequence number in the target's run.
#[derive(Clone, Copy)]
struct Flight {
    slot: usize,
    generation: u32,
    seq: u64,
}

/// Result of writing output: false when stdout was closed (| head).
fn written(r: io::Result<()>) -> Result<bool, Error> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("write output", e)),
    }
}

/// The run's state and everything it reports to.
struct Run<'a> {
    cfg: &'a Config,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    next_generation: u32,
    timers: Timers,
    flights: HashMap<u64, Flight>,
    next_probe: u64,
    prober: &'a mut dyn Prober,
    out: Reporter,
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
    reload: Option<Reload>,
    wake: std::os::unix::net::UnixStream,
    /// --plot: the picture of every target.
    plot: Option<crate::report::Recorder>,
}

impl Run<'_> {
    fn slot(&mut self, i: usize, generation: u32) -> Option<&mut Slot> {
        self.slots
            .get_mut(i)?
            .as_mut()
            .filter(|s| s.generation == generation)
    }

    /// Add a target; its first probe goes `offset` into the interval (after it resolves).
    fn add(&mut self, line: TargetLine, offset: Duration) {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut cfg = self.cfg.template.clone();
        cfg.target_name = line.name.clone();
        let metrics = self.metrics.as_ref().map(|m| {
            let t = m.target(&line.name, &line.labels);
            t.set_resolved(false);
            t
        });
        let slot = Slot {
            generation,
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
                    p.start(&s.cfg.run(), src, &s.line.labels);
                }
                let r = self.out.start_tagged(&s.cfg.run(), src, Some(s.tag()));
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

    fn note_write(&mut self, r: io::Result<()>) {
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
        let w = self.out.ping_tagged(&r, &s.cfg.run(), Some(s.tag()));
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
        if s.started.is_none() {
            return;
        }
        let elapsed = end.saturating_duration_since(s.started.unwrap_or(end));
        let r = self
            .out
            .summary_tagged(&s.cfg.run(), &s.stats, tally, elapsed, Some(s.tag()));
        self.note_write(r);
    }

    /// Stop a target (it left the file): its summary now, its series removed.
    fn remove(&mut self, i: usize) {
        self.summary(i, Instant::now());
        if let Some(s) = self.slots[i].take() {
            if let (Some(m), Some(tm)) = (&self.metrics, &s.metrics) {
                m.remove(tm);
            }
            self.free.push(i);
        }
    }

    /// SIGHUP: read the file again on a thread of its own; [`Run::reloaded`] applies it.
    fn reload(&mut self) {
        let Some(path) = self.cfg.file.clone() else {
            eprintln!("tcpping-diag: SIGHUP: no targets file (-f) to read again");
            return;
        };
        if let Some(r) = &mut self.reload {
            r.again = true;
            return;
        }
        let (tx, rx) = mpsc::channel();
        let cli = self.cfg.cli_targets.clone();
        let wake = match self.wake.try_clone() {
            Ok(w) => w,
            Err(e) => {
                eprintln!(
                    "tcpping-diag: SIGHUP: {}; the targets stay as they were",
                    Error::io("create wake-up channel", e)
                );
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let _ = tx.send(read_targets(&cli, Some(&path)));
                net::wake(&wake);
            });
        match spawned {
            Ok(_) => {
                self.reload = Some(Reload {
                    answer: rx,
                    again: false,
                })
            }
            Err(e) => eprintln!(
                "tcpping-diag: SIGHUP: {}; the targets stay as they were",
                Error::io("start the thread reading the targets file", e)
            ),
        }
    }

    /// A reading started at SIGHUP is done: apply the difference (and read again if another
    /// SIGHUP came meanwhile).
    fn reloaded(&mut self) {
        let Some(r) = &self.reload else {
            return;
        };
        let got = match r.answer.try_recv() {
            Ok(got) => got,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err("the thread reading it ended".to_string()),
        };
        let again = r.again;
        self.reload = None;
        self.apply(got);
        if again {
            self.reload();
        }
    }

    /// Apply a new reading of the targets file.
    fn apply(&mut self, got: Result<Parsed, String>) {
        let path = self.cfg.file.clone().unwrap_or_default();
        let parsed = match got {
            Ok(p) => p,
            Err(e) => {
                eprintln!("tcpping-diag: SIGHUP: {e}; the targets stay as they were");
                return;
            }
        };
        self.cfg.report(&parsed);
        let lines = parsed.targets;
        let current: Vec<(usize, &TargetLine)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, &s.line)))
            .collect();
        let old: Vec<&TargetLine> = current.iter().map(|(_, l)| *l).collect();
        let (stop, start) = targets::diff(&old, &lines);
        let stop: Vec<usize> = stop.iter().map(|&k| current[k].0).collect();
        for &i in &stop {
            self.remove(i);
        }
        // Lines that moved keep their target; their line number is updated.
        for t in &lines {
            for s in self.slots.iter_mut().flatten() {
                if s.line.name == t.name && s.line.labels == t.labels {
                    s.line.line = t.line;
                }
            }
        }
        let n_start = start.len();
        let interval = self.cfg.template.interval;
        for k in start {
            let t = lines[k].clone();
            let off = schedule::offset_of(&t.name, interval);
            self.add(t, off);
        }
        eprintln!(
            "tcpping-diag: SIGHUP: read {}: {} targets, {} started, {} stopped",
            path.display(),
            self.slots.iter().flatten().count(),
            n_start,
            stop.len()
        );
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
    let http = cfg
        .metrics
        .map(|addr| {
            metrics::Server::bind(addr)
                .map_err(|e| Error::io(format!("listen for metrics on {addr}"), e))
        })
        .transpose()?;
    // Then the prober's sockets, and every thread's capabilities dropped, before any
    // untrusted input (the targets file, names, scrapes) and before any thread of ours starts.
    let mut prober = open::open(&need(&cfg), &waker, &stop)?.prober;
    let parsed = cfg.read_targets().map_err(Error::Setup)?;
    cfg.report(&parsed);
    let lines = parsed.targets;
    if lines.is_empty() {
        eprintln!("tcpping-diag: no targets yet: add lines to the file and send SIGHUP");
    }
    // --plot: its destination checked before the first probe, with the privileges the
    // picture is written with at the end.
    let plot = cfg
        .template
        .plot
        .as_deref()
        .map(crate::report::Recorder::many)
        .transpose()?;
    super::shared::on_signals(&stop, &waker)?;
    let hup = Arc::new(AtomicBool::new(false));
    {
        use signal_hook::consts::SIGHUP;
        signal_hook::flag::register(SIGHUP, Arc::clone(&hup))
            .map_err(|e| Error::io("install signal handler", e))?;
        let tx = waker
            .sender()
            .map_err(|e| Error::io("install signal handler", e))?;
        signal_hook::low_level::pipe::register(SIGHUP, tx)
            .map_err(|e| Error::io("install signal handler", e))?;
    }
    super::shared::stamps_on(stamping.as_ref(), cfg.template.verbose);
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
    let resolver = resolve::Resolver::start(
        cfg.family,
        &waker
            .sender()
            .map_err(|e| Error::io("create wake-up channel", e))?,
    )
    .map_err(|e| Error::io("start the resolver threads", e))?;
    let mut run = Run {
        cfg: &cfg,
        slots: Vec::new(),
        free: Vec::new(),
        next_generation: 0,
        timers: Timers::default(),
        flights: HashMap::new(),
        next_probe: 0,
        prober: prober.as_mut(),
        out: crate::output::reporter(
            io::BufWriter::new(io::stdout()),
            cfg.template.output,
            cfg.template.mode,
            cfg.template.quiet,
        ),
        metrics,
        resolver,
        lag: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
        any_reply: false,
        closed: false,
        loading: true,
        src_cache: HashMap::new(),
        reload: None,
        wake: waker
            .sender()
            .map_err(|e| Error::io("create wake-up channel", e))?,
        plot,
    };
    let n = lines.len();
    let interval = cfg.template.interval;
    for (k, line) in lines.into_iter().enumerate() {
        run.add(line, schedule::spread(k, n, interval));
    }
    run.loading = false;
    let base = Instant::now();
    for (i, s) in run.slots.iter().enumerate() {
        if let Some(s) = s.as_ref().filter(|s| s.addr.is_some()) {
            run.timers
                .push(base + s.offset.min(interval), i, s.generation);
        }
    }
    let started = Instant::now();
    let mut done: Vec<PingResult> = Vec::new();
    let mut last_tally = Instant::now();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping {
            run.prober.interrupt(&mut done);
        }
        for r in done.drain(..) {
            run.conclude(r);
        }
        if cfg.template.verbose {
            for (err, why) in run.prober.drain_unmatched() {
                let w = run.out.unmatched(&err, why);
                run.note_write(w);
            }
        }
        if stopping || run.closed || run.finished() {
            break;
        }
        if hup.swap(false, Ordering::Relaxed) {
            run.reload();
        }
        run.reloaded();
        let answers: Vec<resolve::Answer> = run.resolver.answers();
        for (i, generation, got) in answers {
            run.resolved(i, generation, got);
        }
        let now = Instant::now();
        if let Some(m) = &run.metrics {
            if now.duration_since(last_tally) >= Duration::from_secs(1) {
                let t = run.prober.icmp_tally();
                m.icmp_tally(t.unmatched, t.late);
                last_tally = now;
            }
        }
        while let Some((at, i, generation)) = run.timers.pop_due(now) {
            run.on_timer(i, generation, at);
        }
        let until = run.timers.next().map_or(now + TICK, |t| t.min(now + TICK));
        run.prober
            .poll(until, &mut done)
            .map_err(|e| Error::io("wait for answers", e))?;
    }
    let end = Instant::now();
    let order: Vec<usize> = (0..run.slots.len()).collect();
    if !run.closed {
        for &i in &order {
            run.summary(i, end);
        }
    }
    if cfg.template.output == Output::Human && !run.closed {
        let rows: Vec<&Slot> = run.slots.iter().flatten().collect();
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
        let w = io::stdout().write_all(text.as_bytes());
        run.note_write(w);
    }
    if let Some(p) = &run.plot {
        p.finish()?;
    }
    let probes = run.next_probe;
    if probes > 0 {
        let q = |p: f64| run.lag.value_at_quantile(p) as f64 / 1e6;
        eprintln!(
            "tcpping-diag: {probes} probes to {} targets in {:.1} s; sent behind schedule by p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            run.slots.iter().flatten().count(),
            end.duration_since(started).as_secs_f64(),
            q(0.5),
            q(0.99),
            run.lag.max() as f64 / 1e6
        );
    }
    let code = if run.any_reply { 0 } else { 1 };
    // With -n, the endpoint keeps serving the final counts until a signal: a scraper
    // (and a test comparing them with the output) gets the last probes too.
    if let Some(server) = &server {
        if !stop.load(Ordering::Relaxed) && !run.closed {
            eprintln!(
                "tcpping-diag: all probes done; serving the final metrics at http://{}/metrics until SIGTERM or SIGINT",
                server.addr()
            );
            while !stop.load(Ordering::Relaxed) {
                let _ = net::poll(&[(waker.fd(), false)], Some(Duration::from_secs(1)));
                waker.drain();
            }
        }
    }
    drop(run);
    drop(server);
    Ok(code)
}
