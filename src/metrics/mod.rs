//! Prometheus metrics of a many-targets run, and the HTTP endpoint that serves them
//! (`--metrics ADDR:PORT`, `GET /metrics`).
//!
//! The model is a table of targets, each a [`Cell`] of atomics that the event loop updates
//! (a few relaxed atomic additions per probe, no lock, no label hashing) and a scrape reads.
//! [`render`] writes the exposition from it (Prometheus text 0.0.4, or OpenMetrics 1.0 when
//! the scraper asks for it in `Accept`), the targets sorted by name then labels, a part at a
//! time: [`http`] streams it as the client reads, so a scrape holds no lock the loop needs,
//! and its memory is one part, however many targets.
//!
//! The series set is lean by default (see [`Histograms`]): per target, the six probe
//! counters, ICMP error counters, and three gauges; the RTT and connect histograms are
//! shared by every target. `--metrics-histograms per-target` gives every target its own.
//!
//! Memory is flat however long the run: a target has a fixed set of series, plus ICMP error
//! series bounded by [`MAX_ROUTERS`] routers and [`MAX_ICMP_SERIES`] series per target.

pub mod http;
pub mod render;
#[cfg(test)]
mod tests;

use std::cmp::Ordering as Cmp;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use http::Server;
pub use render::Render;

use crate::event::Verdict;
use crate::probe::{PingResult, Status};

/// Labels of a series: the target's own, from the targets file (`target` comes first).
pub type Labels = Vec<(String, String)>;

/// Upper bounds of the RTT and connect-time histograms, in seconds: from 25 µs (loopback,
/// a LAN) to 5 s (a timeout's range), about 2.5× apart.
pub const RTT_BUCKETS: [f64; 17] = [
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
    500e-3, 1.0, 2.5, 5.0,
];
/// Upper bounds of the send-lag histogram, in seconds.
pub const LAG_BUCKETS: [f64; 11] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1.0,
];
/// Distinct routers with their own ICMP series, per target; errors from more are counted
/// with `router="other"`.
pub const MAX_ROUTERS: usize = 16;
/// ICMP series per target, at most (type × code × router); beyond, `type`, `code` and
/// `router` are all `"other"`.
pub const MAX_ICMP_SERIES: usize = 64;

/// Where the RTT and connect-time histograms are kept (`--metrics-histograms`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Histograms {
    /// One histogram for every target together (20 series each, whatever the count of
    /// targets); per target, the last RTT
    #[default]
    Shared,
    /// One histogram per target (20 series a target each: a million at 50,000 targets)
    PerTarget,
}

/// The index of a probe's verdict in `Verdict::COUNTED` (the `verdict` label); None for
/// `interrupted`, which is not a verdict of the target: not counted.
fn verdict_index(s: &Status) -> Option<usize> {
    let v = Verdict::of(s);
    Verdict::COUNTED.iter().position(|c| *c == v)
}

/// A lock that a panic elsewhere does not poison for us (the values stay valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A histogram of durations kept in atomics: observing is two relaxed additions (bucket,
/// sum) and takes no lock; a scrape reads it while it is observed (the `+Inf` bucket and the
/// count are the sum of the buckets read, so they always agree).
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is past every bound.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// What a scrape reads of a histogram.
pub struct HistogramValue {
    /// Cumulative counts, one per bound.
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_secs: f64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        // The first bound at or above the value (`le`).
        let i = self.bounds.partition_point(|b| *b < s);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn read(&self) -> HistogramValue {
        let mut acc = 0u64;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for c in &self.counts[..self.bounds.len()] {
            acc += c.load(Ordering::Relaxed);
            cumulative.push(acc);
        }
        let count = acc + self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramValue {
            cumulative,
            count,
            sum_secs: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Key of an ICMP series of a target: type, code, router ("other" past the bounds).
pub type IcmpKey = (String, String, String);

/// One target's series: written by the event loop, read by scrapes.
#[derive(Debug)]
pub struct Cell {
    /// Tells apart two cells of the same name and labels (one leaving as the other comes).
    id: u64,
    pub name: String,
    pub labels: Labels,
    /// `target="…",k="v",…`: its labels as a scrape writes them (escaped once, here).
    pub labels_text: String,
    /// Probes by verdict, in the order of `Verdict::COUNTED`.
    probes: [AtomicU64; 6],
    /// The last answer's round trip in ns; `u64::MAX` before the first.
    last_rtt_ns: AtomicU64,
    /// 0 before the first verdict, 1 not answered, 2 answered.
    last_success: AtomicU8,
    resolved: AtomicBool,
    /// Per-target histograms (`--metrics-histograms per-target` only).
    rtt: Option<AtomicHistogram>,
    connect: Option<AtomicHistogram>,
    /// ICMP errors by type, code and router: created at the first, bounded; the loop takes
    /// the lock only to count an ICMP error, a scrape only to copy them.
    icmp: Mutex<Vec<(IcmpKey, u64)>>,
}

impl Cell {
    /// Probes by verdict (`Verdict::COUNTED`'s order).
    pub fn probes(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.probes[i].load(Ordering::Relaxed))
    }

    /// The last answer's round trip, in seconds (None before the first).
    pub fn last_rtt(&self) -> Option<f64> {
        let ns = self.last_rtt_ns.load(Ordering::Relaxed);
        (ns != u64::MAX).then(|| ns as f64 / 1e9)
    }

    /// Whether the last probe was answered (None before the first verdict).
    pub fn last_success(&self) -> Option<bool> {
        match self.last_success.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v == 2),
        }
    }

    pub fn resolved(&self) -> bool {
        self.resolved.load(Ordering::Relaxed)
    }

    pub fn rtt(&self) -> Option<&AtomicHistogram> {
        self.rtt.as_ref()
    }

    pub fn connect(&self) -> Option<&AtomicHistogram> {
        self.connect.as_ref()
    }

    /// Its ICMP series, sorted by type, code and router (as strings).
    pub fn icmp(&self) -> Vec<(IcmpKey, u64)> {
        let mut v = lock(&self.icmp).clone();
        v.sort();
        v
    }
}

/// The table's order: by name, then labels (then creation).
struct Sorted(Arc<Cell>);

impl Sorted {
    fn key(&self) -> (&str, &Labels, u64) {
        (&self.0.name, &self.0.labels, self.0.id)
    }
}

impl PartialEq for Sorted {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Sorted {}
impl PartialOrd for Sorted {
    fn partial_cmp(&self, o: &Self) -> Option<Cmp> {
        Some(self.cmp(o))
    }
}
impl Ord for Sorted {
    fn cmp(&self, o: &Self) -> Cmp {
        self.key().cmp(&o.key())
    }
}

/// The targets, sorted, and the list a scrape reads (made again after a change).
#[derive(Default)]
struct Book {
    cells: BTreeSet<Sorted>,
    list: Option<Arc<[Arc<Cell>]>>,
    next_id: u64,
}

/// Every metric of the run.
pub struct Metrics {
    histograms: Histograms,
    book: Mutex<Book>,
    /// Shared histograms (`Histograms::Shared`).
    rtt: AtomicHistogram,
    connect: AtomicHistogram,
    lag: AtomicHistogram,
    unmatched: AtomicU64,
    late: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Histograms::Shared)
    }
}

impl Metrics {
    pub fn new(histograms: Histograms) -> Self {
        Metrics {
            histograms,
            book: Mutex::new(Book::default()),
            rtt: AtomicHistogram::new(&RTT_BUCKETS),
            connect: AtomicHistogram::new(&RTT_BUCKETS),
            lag: AtomicHistogram::new(&LAG_BUCKETS),
            unmatched: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }

    pub fn histograms(&self) -> Histograms {
        self.histograms
    }

    /// The series of a target (its counters created at zero, so `rate()` and `increase()`
    /// work from its first scrape).
    pub fn target(&self, name: &str, labels: &[(String, String)]) -> TargetMetrics {
        let per_target = self.histograms == Histograms::PerTarget;
        let mut book = lock(&self.book);
        let id = book.next_id;
        book.next_id += 1;
        let cell = Arc::new(Cell {
            id,
            name: name.to_string(),
            labels: labels.to_vec(),
            labels_text: render::labels_text(name, labels),
            probes: Default::default(),
            last_rtt_ns: AtomicU64::new(u64::MAX),
            last_success: AtomicU8::new(0),
            resolved: AtomicBool::new(false),
            rtt: per_target.then(|| AtomicHistogram::new(&RTT_BUCKETS)),
            connect: per_target.then(|| AtomicHistogram::new(&RTT_BUCKETS)),
            icmp: Mutex::new(Vec::new()),
        });
        book.cells.insert(Sorted(Arc::clone(&cell)));
        book.list = None;
        TargetMetrics {
            cell,
            icmp: HashMap::new(),
            routers: HashSet::new(),
        }
    }

    /// Remove a target's series (it left the targets file).
    pub fn remove(&self, t: &TargetMetrics) {
        let mut book = lock(&self.book);
        book.cells.remove(&Sorted(Arc::clone(&t.cell)));
        book.list = None;
    }

    /// The targets as a scrape lists them, sorted (made once per change of the targets, and
    /// shared by the scrapes until the next).
    pub fn cells(&self) -> Arc<[Arc<Cell>]> {
        let mut book = lock(&self.book);
        if let Some(l) = &book.list {
            return Arc::clone(l);
        }
        let l: Arc<[Arc<Cell>]> = book.cells.iter().map(|s| Arc::clone(&s.0)).collect();
        book.list = Some(Arc::clone(&l));
        l
    }

    /// How late a probe left.
    pub fn lag(&self, d: Duration) {
        self.lag.observe(d);
    }

    /// The run's ICMP errors attributed to no probe, as totals so far.
    pub fn icmp_tally(&self, unmatched: u64, late: u64) {
        self.unmatched.fetch_max(unmatched, Ordering::Relaxed);
        self.late.fetch_max(late, Ordering::Relaxed);
    }

    /// The whole exposition in one string (tests, and small runs; the endpoint streams it).
    pub fn encode(self: &Arc<Self>, openmetrics: bool, out: &mut String) {
        out.clear();
        let mut r = Render::new(Arc::clone(self), openmetrics);
        while r.fill(out, usize::MAX) {}
    }
}

/// The event loop's handle on one target's series.
pub struct TargetMetrics {
    cell: Arc<Cell>,
    /// Index of each ICMP series in the cell's list.
    icmp: HashMap<IcmpKey, usize>,
    routers: HashSet<IpAddr>,
}

impl TargetMetrics {
    /// The target's name resolved (1) or is being retried (0).
    pub fn set_resolved(&self, yes: bool) {
        self.cell.resolved.store(yes, Ordering::Relaxed);
    }

    /// Count a concluded probe. `echo`: the probe also waited for an echo, so its
    /// handshake is a separate measurement (`tcpping_connect_seconds`).
    pub fn record(&mut self, m: &Metrics, r: &PingResult, echo: bool) {
        let Some(i) = verdict_index(&r.status) else {
            return;
        };
        let c = &self.cell;
        c.probes[i].fetch_add(1, Ordering::Relaxed);
        let ok = r.status == Status::Reply;
        c.last_success
            .store(if ok { 2 } else { 1 }, Ordering::Relaxed);
        if ok {
            if let Some(t) = r.rtt.or(r.connect) {
                c.rtt.as_ref().unwrap_or(&m.rtt).observe(t);
                let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX - 1);
                c.last_rtt_ns.store(ns, Ordering::Relaxed);
            }
        }
        if echo {
            if let Some(t) = r.connect {
                c.connect.as_ref().unwrap_or(&m.connect).observe(t);
            }
        }
        if let Status::Icmp(rep) = &r.status {
            let key = self.icmp_key(rep.icmp_type, rep.code, rep.from);
            let mut series = lock(&self.cell.icmp);
            match self.icmp.get(&key) {
                Some(&i) => series[i].1 += 1,
                None => {
                    self.icmp.insert(key.clone(), series.len());
                    series.push((key, 1));
                }
            }
        }
    }

    /// The ICMP series an error is counted in, within the bounds.
    fn icmp_key(&mut self, icmp_type: u8, code: u8, from: IpAddr) -> IcmpKey {
        let router = if self.routers.contains(&from) || self.routers.len() < MAX_ROUTERS {
            self.routers.insert(from);
            from.to_string()
        } else {
            "other".to_string()
        };
        let key = (icmp_type.to_string(), code.to_string(), router);
        if self.icmp.contains_key(&key) || self.icmp.len() < MAX_ICMP_SERIES - 1 {
            key
        } else {
            ("other".into(), "other".into(), "other".into())
        }
    }
}

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a scraper's `Accept` header asks for OpenMetrics (Prometheus sends
/// `application/openmetrics-text;version=1.0.0,...;q=0.5,text/plain;version=0.0.4;q=0.x`).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut best: Option<(f64, bool)> = None;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0);
        let om = match media.as_str() {
            "application/openmetrics-text" => true,
            "text/plain" | "*/*" | "text/*" => false,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, om));
        }
    }
    best.is_some_and(|(_, om)| om)
}
