//! What a picture shows, built from a stream of probes in bounded memory: per target, counts,
//! whole-run histograms, the first `RAW_MAX` probes as they were (small runs are drawn point
//! by point), and `MAX_BUCKETS` time buckets (long runs are drawn as bands). Buckets start
//! 1 ms wide; when a probe falls past the last one, the width steps up a ladder of round
//! widths (1, 2, 10, 20, 100, 200 ms, 1, 2, 10, 20 s, 1, 2, 10, 20 min, 1, 2, 6, 12 h, 1 day,
//! then doubling) and neighbours merge, so a run of any length ends with between a fifth
//! and all of `MAX_BUCKETS` in use.
//!
//! Nothing here draws; `draw` reads these types.

use std::collections::{BTreeMap, HashMap};

use super::events::{self, Labels};
use super::hist::LogHist;
use crate::event::{Icmp, ProbeStatus, Text, Verdict};

/// Time buckets per target at most.
pub const MAX_BUCKETS: usize = 400;
/// Probes drawn one by one: a target keeps its first `RAW_MAX`, and a picture draws points
/// only when every target kept all of its own and they add up to no more than this.
pub const RAW_MAX: usize = 2000;
/// Failure categories told apart (the last one gathers any others).
pub const MAX_CATEGORIES: usize = 12;
/// Targets kept; probes of further targets are counted as skipped.
pub const MAX_TARGETS: usize = 256;
/// Hops a trace may have.
pub const MAX_HOPS: u32 = 255;
/// Times (seconds, or probe numbers) beyond ±this are nonsense (Unix time 1e12 is the year
/// 33,658): such a ping is skipped, and counted.
pub const MAX_TIME: f64 = 1e12;
/// Routers named per hop.
const MAX_ROUTERS: usize = 8;
/// Width of a bucket at the start, seconds (or probe numbers).
const FIRST_WIDTH: f64 = 0.001;
/// Bucket widths, seconds: round numbers a reader can take in, each a whole multiple of the
/// one before; after a day, doubling.
const WIDTHS: [f64; 19] = [
    0.001, 0.002, 0.01, 0.02, 0.1, 0.2, 1.0, 2.0, 10.0, 20.0, 60.0, 120.0, 600.0, 1200.0, 3600.0,
    7200.0, 21600.0, 43200.0, 86400.0,
];

/// Why a probe failed: what colours and names its marks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The server answered LOST.
    Lost,
    /// No answer to the handshake within the timeout (filtered, blackholed).
    TimeoutHandshake,
    /// Connected, but no echo within the timeout.
    TimeoutEcho,
    Refused,
    Error,
    Interrupted,
    /// An ICMP error: type, code and the router that sent it.
    Icmp {
        icmp_type: u8,
        code: u8,
        from: String,
    },
    /// A status this version does not know.
    Unknown(String),
    /// Categories beyond `MAX_CATEGORIES - 1`, together.
    Others,
}

/// A failure category as drawn: a short name for axes and a longer one for the legend.
#[derive(Clone, Debug)]
pub struct Category {
    pub failure: Failure,
    pub short: String,
    pub long: String,
    /// Probes in this category, over every target.
    pub count: u64,
}

/// The failure categories met so far, in order of first appearance.
#[derive(Clone, Debug, Default)]
pub struct Categories {
    pub list: Vec<Category>,
}

impl Categories {
    /// The index of `f`'s category, adding it if new; `reason` words the ICMP error or error.
    pub fn index(&mut self, f: Failure, reason: Option<&str>) -> u8 {
        if let Some(i) = self.list.iter().position(|c| c.failure == f) {
            return i as u8;
        }
        let f = if self.list.len() >= MAX_CATEGORIES - 1 {
            if let Some(i) = self.list.iter().position(|c| c.failure == Failure::Others) {
                return i as u8;
            }
            Failure::Others
        } else {
            f
        };
        let (short, long) = names(&f, reason);
        self.list.push(Category {
            failure: f,
            short,
            long,
            count: 0,
        });
        (self.list.len() - 1) as u8
    }
}

impl Categories {
    /// The category of a ping's verdict (None: a reply). `echo`: a timeout came after the
    /// handshake; `error` and `icmp` word the failure.
    pub fn of_verdict(
        &mut self,
        v: &Verdict,
        echo: bool,
        error: Option<&str>,
        icmp: Option<&Icmp>,
    ) -> Option<u8> {
        let (f, reason) = match v {
            Verdict::Reply => return None,
            Verdict::Lost => (Failure::Lost, None),
            Verdict::Timeout if echo => (Failure::TimeoutEcho, None),
            Verdict::Timeout => (Failure::TimeoutHandshake, None),
            Verdict::Refused => (Failure::Refused, None),
            Verdict::Error => (Failure::Error, error),
            Verdict::Interrupted => (Failure::Interrupted, None),
            Verdict::Icmp => {
                let i = icmp.cloned().unwrap_or_default();
                let f = Failure::Icmp {
                    icmp_type: i.icmp_type.unwrap_or(0),
                    code: i.code.unwrap_or(0),
                    from: i.from.as_deref().unwrap_or("?").to_string(),
                };
                let reason = icmp.and_then(|i| i.reason.as_deref());
                return Some(self.index(f, reason));
            }
            Verdict::Unknown(other) => (Failure::Unknown(other.clone()), None),
        };
        Some(self.index(f, reason))
    }
}

fn names(f: &Failure, reason: Option<&str>) -> (String, String) {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    match f {
        Failure::Lost => s("LOST", "LOST: the server dropped it"),
        Failure::TimeoutHandshake => s(
            "timeout (no handshake)",
            "timeout, no answer to the handshake (filtered or blackholed)",
        ),
        Failure::TimeoutEcho => s(
            "timeout (no echo)",
            "timeout, connected but no echo (server silent)",
        ),
        Failure::Refused => s("refused", "refused: RST, nothing listens on the port"),
        Failure::Error => (
            "error".into(),
            match reason {
                Some(r) => format!("error, e.g. {r}"),
                None => "error".into(),
            },
        ),
        Failure::Interrupted => s("interrupted", "interrupted by Ctrl-C or SIGTERM"),
        Failure::Icmp {
            icmp_type,
            code,
            from,
        } => (
            format!("ICMP {icmp_type}/{code} {from}"),
            format!(
                "ICMP {icmp_type}/{code} from {from}: {}",
                reason.unwrap_or("ICMP error")
            ),
        ),
        Failure::Unknown(st) => (st.clone(), format!("status {st}")),
        Failure::Others => s("others", "other failures"),
    }
}

/// One probe, as a run reports it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it started: seconds (Unix time, or since the first probe: see `TimeBase`).
    pub t: f64,
    pub connect_ms: Option<f64>,
    /// The echo round trip, for replies only.
    pub rtt_ms: Option<f64>,
    /// None: a reply. Some: the failure category's index.
    pub failure: Option<u8>,
}

/// A probe kept as it was, for small runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawProbe {
    pub t: f64,
    pub connect_ms: Option<f32>,
    pub rtt_ms: Option<f32>,
    pub failure: Option<u8>,
}

/// One time bucket.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    pub probes: u32,
    pub replies: u32,
    pub failures: [u32; MAX_CATEGORIES],
    pub rtt: LogHist,
    pub connect: LogHist,
}

impl Bucket {
    fn merge(&mut self, o: &Bucket) {
        self.probes += o.probes;
        self.replies += o.replies;
        for (a, b) in self.failures.iter_mut().zip(o.failures) {
            *a += b;
        }
        self.rtt.merge(&o.rtt);
        self.connect.merge(&o.connect);
    }
    /// Probes without a reply, percent.
    pub fn loss_pct(&self) -> f64 {
        if self.probes == 0 {
            0.0
        } else {
            f64::from(self.probes - self.replies) * 100.0 / f64::from(self.probes)
        }
    }
}

/// Buckets of equal width from `t0`; at most `MAX_BUCKETS`.
#[derive(Clone, Debug)]
pub struct Buckets {
    pub t0: f64,
    pub width: f64,
    pub list: Vec<Bucket>,
}

impl Buckets {
    fn new(t0: f64) -> Self {
        Buckets {
            t0,
            width: FIRST_WIDTH,
            list: Vec::new(),
        }
    }

    /// The bucket `t` falls in, coarsening until it fits. Times before `t0` (a clock stepped
    /// back) go in the first.
    fn at(&mut self, t: f64) -> &mut Bucket {
        let idx = |b: &Self| {
            let x = ((t - b.t0) / b.width).floor();
            if x.is_finite() && x > 0.0 {
                x.min(1e18) as u64
            } else {
                0
            }
        };
        let mut i = idx(self);
        while i >= MAX_BUCKETS as u64 {
            self.coarsen();
            i = idx(self);
        }
        let i = i as usize;
        if self.list.len() <= i {
            self.list.resize_with(i + 1, Bucket::default);
        }
        &mut self.list[i]
    }

    /// The next width on the ladder (each a whole multiple of the one before: 2, 5, 3 or 2
    /// times), merging buckets k·i .. k·i + k − 1 into i.
    fn coarsen(&mut self) {
        let next = WIDTHS
            .iter()
            .copied()
            .find(|&w| w > self.width * 1.001)
            .unwrap_or(self.width * 2.0);
        let k = ((next / self.width).round() as usize).max(2);
        self.width = next;
        let old = std::mem::take(&mut self.list);
        for (i, b) in old.into_iter().enumerate() {
            if i % k == 0 {
                self.list.push(b);
            } else {
                self.list
                    .last_mut()
                    .expect("first of the group pushed")
                    .merge(&b);
            }
        }
    }

    /// Start time of bucket `i`.
    pub fn start(&self, i: usize) -> f64 {
        self.t0 + i as f64 * self.width
    }
}

/// What a target is: its settings from the `start` event.
#[derive(Clone, Debug, Default)]
pub struct TargetMeta {
    /// As typed (the grouping key).
    pub target: String,
    /// `labels.name`, shown in row titles when present.
    pub name: Option<String>,
    pub address: Option<String>,
    pub source: Option<String>,
    pub host: Option<String>,
    pub mode: Option<String>,
    pub interval_ms: Option<f64>,
    pub start_ts: Option<f64>,
}

/// Everything about one target.
#[derive(Clone, Debug)]
pub struct TargetSeries {
    pub meta: TargetMeta,
    pub sent: u64,
    pub replies: u64,
    pub failures: [u64; MAX_CATEGORIES],
    /// Echo round trips of replies.
    pub rtt: LogHist,
    /// Handshakes, of every probe that completed one.
    pub connect: LogHist,
    pub first_t: Option<f64>,
    pub last_t: Option<f64>,
    /// Every probe, while there are no more than `RAW_MAX`; None after.
    pub raw: Option<Vec<RawProbe>>,
    /// Created with the first probe.
    pub buckets: Option<Buckets>,
}

impl TargetSeries {
    fn new(meta: TargetMeta) -> Self {
        TargetSeries {
            meta,
            sent: 0,
            replies: 0,
            failures: [0; MAX_CATEGORIES],
            rtt: LogHist::default(),
            connect: LogHist::default(),
            first_t: None,
            last_t: None,
            raw: Some(Vec::new()),
            buckets: None,
        }
    }

    fn add(&mut self, s: &Sample) {
        self.sent += 1;
        self.first_t = Some(self.first_t.map_or(s.t, |f| f.min(s.t)));
        self.last_t = Some(self.last_t.map_or(s.t, |l| l.max(s.t)));
        let rtt = s.rtt_ms.filter(|_| s.failure.is_none());
        match s.failure {
            None => self.replies += 1,
            Some(c) => self.failures[usize::from(c)] += 1,
        }
        if let Some(r) = rtt {
            self.rtt.record(r);
        }
        if let Some(c) = s.connect_ms {
            self.connect.record(c);
        }
        let b = self
            .buckets
            .get_or_insert_with(|| Buckets::new(s.t))
            .at(s.t);
        b.probes += 1;
        match s.failure {
            None => b.replies += 1,
            Some(c) => b.failures[usize::from(c)] += 1,
        }
        if let Some(r) = rtt {
            b.rtt.record(r);
        }
        if let Some(c) = s.connect_ms {
            b.connect.record(c);
        }
        if let Some(raw) = &mut self.raw {
            if raw.len() < RAW_MAX {
                raw.push(RawProbe {
                    t: s.t,
                    connect_ms: s.connect_ms.map(|x| x as f32),
                    rtt_ms: rtt.map(|x| x as f32),
                    failure: s.failure,
                });
            } else {
                self.raw = None;
            }
        }
    }

    /// Probes without a reply, percent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            (self.sent - self.replies) as f64 * 100.0 / self.sent as f64
        }
    }

    /// The reply time whose median orders the rows: the echo, or the handshake when there
    /// is no echo (`--connect-only`).
    pub fn reply_times(&self) -> &LogHist {
        if self.rtt.count() > 0 {
            &self.rtt
        } else {
            &self.connect
        }
    }

    /// The name a row shows: `labels.name`, else the target as typed.
    pub fn title(&self) -> &str {
        self.meta.name.as_deref().unwrap_or(&self.meta.target)
    }
}

/// What the x axis of a ping picture counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimeBase {
    /// Every probe had its own `ts`.
    Wall,
    /// Some probes had no `ts`: start `ts` + (seq − 1) × interval.
    Estimated,
    /// No `ts` at all, but an interval: (seq − 1) × interval, seconds from the first probe.
    Relative,
    /// Nothing but sequence numbers.
    Seq,
}

/// Ping runs: one or many targets.
#[derive(Clone, Debug, Default)]
pub struct PingModel {
    pub targets: Vec<TargetSeries>,
    index: HashMap<String, usize>,
    pub categories: Categories,
    /// The time bases the probes were placed with (one, in a sound file).
    pub time_bases: Vec<TimeBase>,
    /// Ping events that could not be placed (no seq and no ts, or too many targets).
    pub skipped: u64,
    /// Ping events skipped for a time beyond ±`MAX_TIME` (and the first such time).
    pub bad_times: u64,
    pub first_bad_time: Option<f64>,
    /// The target the last `start` event of the current input named.
    current: Option<usize>,
}

impl PingModel {
    /// A new input file: pings without a `target` field belong to its own `start` events.
    pub fn begin_input(&mut self) {
        self.current = None;
    }

    /// The index of a target, added if new (None: too many targets).
    pub fn target(&mut self, name: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if self.targets.len() >= MAX_TARGETS {
            return None;
        }
        self.targets.push(TargetSeries::new(TargetMeta {
            target: name.to_string(),
            ..TargetMeta::default()
        }));
        self.index.insert(name.to_string(), self.targets.len() - 1);
        Some(self.targets.len() - 1)
    }

    /// Settings of a target (from a `start` event, or a live run).
    pub fn set_meta(&mut self, i: usize, m: TargetMeta) {
        let t = &mut self.targets[i];
        let name = m.name.or(t.meta.name.take());
        t.meta = TargetMeta { name, ..m };
    }

    /// Add a probe to target `i`.
    pub fn add(&mut self, i: usize, s: &Sample, base: TimeBase) {
        if let Some(c) = s.failure {
            self.categories.list[usize::from(c)].count += 1;
        }
        if !self.time_bases.contains(&base) {
            self.time_bases.push(base);
            self.time_bases.sort();
        }
        self.targets[i].add(s);
    }

    pub fn start_event(&mut self, s: &events::Start) {
        let name = s.target.as_deref().unwrap_or("(unnamed target)");
        let Some(i) = self.target(name) else {
            return;
        };
        self.current = Some(i);
        self.set_meta(
            i,
            TargetMeta {
                target: name.to_string(),
                name: label_name(&s.labels),
                address: owned(&s.address),
                source: owned(&s.source),
                host: owned(&s.host),
                mode: owned(&s.mode),
                interval_ms: s.interval_ms,
                start_ts: s.ts,
            },
        );
    }

    pub fn summary_event(&mut self, s: &events::Summary) {
        if let Some(name) = &s.target {
            if let Some(i) = self.target(name) {
                if let Some(n) = label_name(&s.labels) {
                    self.targets[i].meta.name = Some(n);
                }
                if self.targets[i].meta.address.is_none() {
                    self.targets[i].meta.address = owned(&s.address);
                }
            }
        }
    }

    pub fn ping_event(&mut self, p: &events::Ping) {
        let i = match (&p.target, self.current) {
            (Some(name), _) => self.target(name),
            (None, Some(i)) => Some(i),
            (None, None) => self.target("(unnamed target)"),
        };
        let Some(i) = i else {
            self.skipped += 1;
            return;
        };
        if let Some(n) = label_name(&p.labels) {
            self.targets[i].meta.name = Some(n);
        }
        let meta = &self.targets[i].meta;
        let interval = meta.interval_ms.filter(|&x| x > 0.0).map(|x| x / 1e3);
        let (t, base) = match (p.ts, p.seq, meta.start_ts, interval) {
            (Some(ts), _, _, _) if ts.is_finite() => (ts, TimeBase::Wall),
            (_, Some(seq), Some(st), Some(iv)) => {
                (st + seq.saturating_sub(1) as f64 * iv, TimeBase::Estimated)
            }
            (_, Some(seq), None, Some(iv)) => {
                (seq.saturating_sub(1) as f64 * iv, TimeBase::Relative)
            }
            (_, Some(seq), _, None) => (seq as f64, TimeBase::Seq),
            _ => {
                self.skipped += 1;
                return;
            }
        };
        if !(t.is_finite() && t.abs() <= MAX_TIME) {
            self.bad_times += 1;
            self.first_bad_time.get_or_insert(t);
            return;
        }
        let ms = |x: Option<f64>| x.filter(|v| v.is_finite() && *v >= 0.0);
        let (connect_ms, rtt_ms) = (ms(p.connect_ms), ms(p.rtt_ms));
        let Some(status) = &p.status else {
            self.skipped += 1;
            return;
        };
        // The phase it was in; files without one: whether it timed a handshake.
        let echo =
            p.phase.as_deref() == Some("echo") || (p.phase.is_none() && connect_ms.is_some());
        let failure = self
            .categories
            .of_verdict(status, echo, p.error.as_deref(), p.icmp.as_ref());
        self.add(
            i,
            &Sample {
                t,
                connect_ms,
                rtt_ms,
                failure,
            },
            base,
        );
    }

    /// Draw point by point: every target kept all its probes, and not too many in all.
    pub fn is_raw(&self) -> bool {
        let mut total = 0usize;
        for t in &self.targets {
            match &t.raw {
                Some(r) => total += r.len(),
                None => return false,
            }
        }
        total <= RAW_MAX
    }

    /// Targets with probes, worst first: by loss, then by median reply time, both
    /// descending; ties by name.
    pub fn rows(&self) -> Vec<&TargetSeries> {
        let mut v: Vec<&TargetSeries> = self.targets.iter().filter(|t| t.sent > 0).collect();
        let med = |t: &TargetSeries| t.reply_times().percentile(50.0).unwrap_or(f64::INFINITY);
        v.sort_by(|a, b| {
            b.loss_pct()
                .total_cmp(&a.loss_pct())
                .then(med(b).total_cmp(&med(a)))
                .then(a.title().cmp(b.title()))
        });
        v
    }

    /// First and last probe time over every target.
    pub fn span(&self) -> Option<(f64, f64)> {
        let first = self
            .targets
            .iter()
            .filter_map(|t| t.first_t)
            .reduce(f64::min)?;
        let last = self
            .targets
            .iter()
            .filter_map(|t| t.last_t)
            .reduce(f64::max)?;
        Some((first, last))
    }
}

fn label_name(l: &Option<Labels>) -> Option<String> {
    l.as_ref().and_then(|l| l.get("name")).map(String::from)
}

fn owned(t: &Option<Text>) -> Option<String> {
    t.as_deref().map(String::from)
}

/// How one trace probe ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeEnd {
    /// A router on the way answered: time exceeded.
    TimeExceeded,
    /// The target answered.
    Reached,
    /// Destination unreachable (or another ICMP error) from a router or the target.
    Unreachable,
    Timeout,
}

/// One hop of a trace.
#[derive(Clone, Debug, Default)]
pub struct HopStats {
    pub hop: u32,
    pub rtt: LogHist,
    /// Probes read per ending, indexed by `ProbeEnd as usize`.
    pub ends: [u64; 4],
    /// Routers that answered, in order of first answer (at most `MAX_ROUTERS`).
    pub routers: Vec<String>,
    /// Routers beyond `MAX_ROUTERS`.
    pub more_routers: u64,
    /// The `hop` event's figures, when the trace wrote one: they win over the probes'.
    pub sent: Option<u64>,
    pub received: Option<u64>,
    pub loss_pct: Option<f64>,
    /// The first ICMP reason other than time exceeded, for the legend.
    pub reason: Option<String>,
}

impl HopStats {
    pub fn probes(&self) -> u64 {
        self.ends.iter().sum()
    }
    pub fn sent(&self) -> u64 {
        self.sent.unwrap_or_else(|| self.probes())
    }
    pub fn received(&self) -> u64 {
        self.received
            .unwrap_or_else(|| self.probes() - self.ends[ProbeEnd::Timeout as usize])
    }
    pub fn loss_pct(&self) -> f64 {
        self.loss_pct.unwrap_or_else(|| {
            let s = self.sent();
            if s == 0 {
                0.0
            } else {
                (s - self.received().min(s)) as f64 * 100.0 / s as f64
            }
        })
    }
    fn router(&mut self, r: &str) {
        if self.routers.iter().any(|x| x == r) {
            return;
        }
        if self.routers.len() < MAX_ROUTERS {
            self.routers.push(r.to_string());
        } else {
            self.more_routers += 1;
        }
    }
}

/// A trace: its start, hops and verdict.
#[derive(Clone, Debug, Default)]
pub struct TraceModel {
    pub start: Option<events::TraceStart>,
    pub hops: BTreeMap<u32, HopStats>,
    pub verdict: Option<events::Trace>,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    /// Probe and hop events that could not be used (no or impossible hop number).
    pub skipped: u64,
}

impl TraceModel {
    pub fn is_empty(&self) -> bool {
        self.start.is_none() && self.hops.is_empty() && self.verdict.is_none()
    }

    fn hop(&mut self, n: Option<u32>) -> Option<&mut HopStats> {
        match n {
            Some(n) if (1..=MAX_HOPS).contains(&n) => {
                Some(self.hops.entry(n).or_insert_with(|| HopStats {
                    hop: n,
                    ..HopStats::default()
                }))
            }
            _ => {
                self.skipped += 1;
                None
            }
        }
    }

    pub fn probe_event(&mut self, p: &events::Probe) {
        if let Some(ts) = p.ts.filter(|t| t.is_finite()) {
            self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
            self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        }
        let Some(h) = self.hop(p.hop) else {
            return;
        };
        let end = match p.status {
            Some(ProbeStatus::TimeExceeded) => ProbeEnd::TimeExceeded,
            Some(ProbeStatus::Reached) => ProbeEnd::Reached,
            Some(ProbeStatus::Timeout) | None => ProbeEnd::Timeout,
            Some(_) => ProbeEnd::Unreachable,
        };
        h.ends[end as usize] += 1;
        if end != ProbeEnd::Timeout {
            if let Some(r) = p.rtt_ms.filter(|r| r.is_finite() && *r >= 0.0) {
                h.rtt.record(r);
            }
        }
        if let Some(from) = &p.from {
            h.router(from);
        }
        if end == ProbeEnd::Unreachable && h.reason.is_none() {
            h.reason = p.icmp.as_ref().and_then(|i| owned(&i.reason));
        }
    }

    pub fn hop_event(&mut self, e: &events::Hop) {
        let Some(h) = self.hop(e.hop) else {
            return;
        };
        for r in &e.routers {
            h.router(r);
        }
        h.sent = e.sent.or(h.sent);
        h.received = e.received.or(h.received);
        h.loss_pct = e.loss_pct.filter(|x| x.is_finite()).or(h.loss_pct);
    }

    /// The hop the verdict names as where the path breaks.
    pub fn break_hop(&self) -> Option<u32> {
        self.verdict.as_ref().and_then(|v| v.break_hop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::events::{parse_line, Event};

    fn feed(m: &mut PingModel, lines: &[&str]) {
        for l in lines {
            match parse_line(l).unwrap().unwrap() {
                Event::Start(s) => m.start_event(&s),
                Event::Ping(p) => m.ping_event(&p),
                Event::Summary(s) => m.summary_event(&s),
                _ => {}
            }
        }
    }

    fn reply(seq: u64, ts: f64, rtt: f64) -> String {
        format!(
            r#"{{"type":"ping","seq":{seq},"ts":{ts},"status":"reply","connect_ms":{},"rtt_ms":{rtt}}}"#,
            rtt / 2.0
        )
    }

    #[test]
    fn one_target_counts_categories_and_raw_probes() {
        let mut m = PingModel::default();
        let r1 = reply(1, 100.0, 1.0);
        let r4 = reply(4, 103.0, 2.0);
        feed(
            &mut m,
            &[
                r#"{"type":"start","target":"h:1","address":"127.0.0.1:1","source":"127.0.0.1","host":"box","interval_ms":1000.0,"ts":100.0}"#,
                &r1,
                r#"{"type":"ping","seq":2,"ts":101.0,"status":"lost","connect_ms":0.5,"rtt_ms":0.9}"#,
                r#"{"type":"ping","seq":3,"ts":102.0,"status":"icmp","icmp":{"type":3,"code":13,"from":"10.0.0.1","reason":"communication administratively prohibited"}}"#,
                &r4,
                r#"{"type":"ping","seq":5,"ts":104.0,"status":"timeout","connect_ms":null}"#,
                r#"{"type":"ping","seq":6,"ts":105.0,"status":"timeout","connect_ms":0.4}"#,
                r#"{"type":"ping","seq":7,"ts":106.0,"status":"icmp","icmp":{"type":3,"code":13,"from":"10.0.0.1","reason":"communication administratively prohibited"}}"#,
                r#"{"type":"summary","target":"h:1","sent":7}"#,
            ],
        );
        assert_eq!(m.targets.len(), 1);
        let t = &m.targets[0];
        assert_eq!((t.sent, t.replies), (7, 2));
        assert_eq!(t.meta.host.as_deref(), Some("box"));
        let cats: Vec<(&str, u64)> = m
            .categories
            .list
            .iter()
            .map(|c| (c.short.as_str(), c.count))
            .collect();
        assert_eq!(
            cats,
            [
                ("LOST", 1),
                ("ICMP 3/13 10.0.0.1", 2),
                ("timeout (no handshake)", 1),
                ("timeout (no echo)", 1)
            ]
        );
        assert!(m.categories.list[1]
            .long
            .contains("administratively prohibited"));
        let raw = t.raw.as_ref().unwrap();
        assert_eq!(raw.len(), 7);
        // The LOST ping's answer time is not an echo RTT; its handshake counts.
        assert_eq!(raw[1].rtt_ms, None);
        assert_eq!(raw[1].connect_ms, Some(0.5));
        assert_eq!(t.rtt.count(), 2);
        assert_eq!(t.connect.count(), 4);
        assert!((t.loss_pct() - 500.0 / 7.0).abs() < 1e-9);
        assert_eq!(m.time_bases, [TimeBase::Wall]);
        assert!(m.is_raw());
        assert_eq!(m.span(), Some((100.0, 106.0)));
    }

    #[test]
    fn old_files_without_ts_fall_back_to_seq_times_interval() {
        let mut m = PingModel::default();
        feed(
            &mut m,
            &[
                r#"{"type":"start","target":"h:1","interval_ms":200.0,"ts":50.0}"#,
                r#"{"type":"ping","seq":1,"status":"reply","rtt_ms":1.0}"#,
                r#"{"type":"ping","seq":3,"status":"reply","rtt_ms":1.0}"#,
            ],
        );
        let raw = m.targets[0].raw.as_ref().unwrap();
        assert_eq!(raw[0].t, 50.0);
        assert!((raw[1].t - 50.4).abs() < 1e-9);
        assert_eq!(m.time_bases, [TimeBase::Estimated]);

        let mut m = PingModel::default();
        feed(
            &mut m,
            &[
                r#"{"type":"ping","seq":1,"status":"reply","rtt_ms":1.0}"#,
                r#"{"type":"ping","seq":2,"status":"lost"}"#,
                r#"{"type":"ping","status":"lost"}"#,
            ],
        );
        assert_eq!(m.time_bases, [TimeBase::Seq]);
        assert_eq!(m.targets[0].title(), "(unnamed target)");
        assert_eq!(m.targets[0].sent, 2);
        assert_eq!(m.skipped, 1);
    }

    #[test]
    fn many_targets_group_by_target_and_sort_by_loss_then_median() {
        let mut m = PingModel::default();
        let mut lines = Vec::new();
        for (target, name, loss_every, rtt) in [
            ("a:1", "alpha", 0, 5.0),
            ("b:1", "beta", 2, 1.0),
            ("c:1", "gamma", 0, 9.0),
            ("d:1", "delta", 4, 1.0),
        ] {
            lines.push(format!(
                r#"{{"type":"start","target":"{target}","labels":{{"name":"{name}"}},"interval_ms":10.0,"ts":1.0}}"#
            ));
            for seq in 1..=8u64 {
                let st = if loss_every > 0 && seq % loss_every == 0 {
                    "lost"
                } else {
                    "reply"
                };
                lines.push(format!(
                    r#"{{"type":"ping","target":"{target}","seq":{seq},"ts":{},"status":"{st}","rtt_ms":{rtt}}}"#,
                    1.0 + seq as f64 * 0.01
                ));
            }
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        feed(&mut m, &refs);
        let order: Vec<&str> = m.rows().iter().map(|t| t.title()).collect();
        assert_eq!(order, ["beta", "delta", "gamma", "alpha"]);
        assert!(m.is_raw());
    }

    #[test]
    fn a_million_probes_keep_bounded_buckets_and_drop_raw() {
        let mut m = PingModel::default();
        let i = m.target("x:1").unwrap();
        let lost = m.categories.index(Failure::Lost, None);
        let n = 1_000_000u64;
        for k in 0..n {
            let failure = (k % 10 == 9).then_some(lost);
            m.add(
                i,
                &Sample {
                    t: 1000.0 + k as f64 * 0.001,
                    connect_ms: Some(0.05),
                    rtt_ms: failure.is_none().then_some(0.1 + (k % 100) as f64 * 0.001),
                    failure,
                },
                TimeBase::Wall,
            );
        }
        let t = &m.targets[0];
        assert!(t.raw.is_none());
        assert!(!m.is_raw());
        let b = t.buckets.as_ref().unwrap();
        assert!(
            b.list.len() <= MAX_BUCKETS && b.list.len() > MAX_BUCKETS / 5,
            "{}",
            b.list.len()
        );
        assert_eq!(b.list.iter().map(|b| u64::from(b.probes)).sum::<u64>(), n);
        assert_eq!(
            b.list
                .iter()
                .map(|b| u64::from(b.failures[usize::from(lost)]))
                .sum::<u64>(),
            n / 10
        );
        // Every full bucket lost a tenth.
        assert!(WIDTHS.contains(&b.width), "{}", b.width);
        for bk in &b.list[..b.list.len() - 1] {
            assert!((bk.loss_pct() - 10.0).abs() < 0.1, "{}", bk.loss_pct());
            assert!(bk.rtt.occupied() < 64, "{}", bk.rtt.occupied());
        }
        assert_eq!(t.sent, n);
        assert_eq!(m.categories.list[0].count, n / 10);
    }

    #[test]
    fn categories_are_capped() {
        let mut c = Categories::default();
        for k in 0..40u8 {
            c.index(
                Failure::Icmp {
                    icmp_type: 3,
                    code: k,
                    from: "r".into(),
                },
                None,
            );
        }
        assert_eq!(c.list.len(), MAX_CATEGORIES);
        assert_eq!(c.list.last().unwrap().failure, Failure::Others);
    }

    #[test]
    fn trace_hops_from_probes_and_hop_events() {
        let mut t = TraceModel::default();
        for l in [
            r#"{"type":"trace_start","target":"x:443","max_hops":30,"queries":3,"flows":1,"ts":1.0}"#,
            r#"{"type":"probe","hop":1,"query":1,"status":"time_exceeded","from":"10.0.1.1","rtt_ms":0.3,"ts":1.1}"#,
            r#"{"type":"probe","hop":1,"query":2,"status":"time_exceeded","from":"10.0.1.1","rtt_ms":0.5,"ts":1.2}"#,
            r#"{"type":"probe","hop":2,"query":1,"status":"unreachable","from":"10.0.2.1","rtt_ms":0.7,"icmp":{"type":3,"code":13,"reason":"communication administratively prohibited"}}"#,
            r#"{"type":"probe","hop":2,"query":2,"status":"timeout","from":null,"rtt_ms":null}"#,
            r#"{"type":"probe","hop":0,"status":"timeout"}"#,
            r#"{"type":"hop","hop":1,"routers":["10.0.1.1","10.0.1.9"],"sent":3,"received":2,"loss_pct":33.3}"#,
            r#"{"type":"trace","verdict":"path_ends","hops":2,"break_hop":2,"break_router":"10.0.2.1","text":"path ends at hop 2"}"#,
        ] {
            match parse_line(l).unwrap().unwrap() {
                Event::TraceStart(s) => t.start = Some(s),
                Event::Probe(p) => t.probe_event(&p),
                Event::Hop(h) => t.hop_event(&h),
                Event::Trace(v) => t.verdict = Some(v),
                _ => {}
            }
        }
        assert_eq!(t.skipped, 1);
        let h1 = &t.hops[&1];
        assert_eq!(h1.routers, ["10.0.1.1", "10.0.1.9"]);
        assert_eq!((h1.sent(), h1.received()), (3, 2));
        assert_eq!(h1.loss_pct(), 33.3);
        assert_eq!(h1.rtt.count(), 2);
        let h2 = &t.hops[&2];
        assert_eq!((h2.sent(), h2.received()), (2, 1));
        assert_eq!(h2.loss_pct(), 50.0);
        assert_eq!(
            h2.reason.as_deref(),
            Some("communication administratively prohibited")
        );
        assert_eq!(t.break_hop(), Some(2));
        assert_eq!((t.first_ts, t.last_ts), (Some(1.1), Some(1.2)));
    }
}
