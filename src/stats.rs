//! Running statistics of round-trip times, in constant memory: one place computes
//! count/min/avg/max/mdev (ping's summary, trace's avg/best/worst/stddev columns) and the
//! percentiles; counts per verdict and jitter for ping's summary.
//!
//! - [`Extremes`]: count, min and max of any ordered values (also used by the report's
//!   [`LogHist`](crate::report::hist::LogHist)).
//! - [`Summary`]: min/avg/max/mdev and the last sample from running sums, a few bytes (trace
//!   keeps one per hop and per router).
//! - [`Series`]: a [`Summary`] plus percentiles from an HDR histogram (ping, many targets).
//!
//! Not here, and on purpose: the report's `LogHist` is a sparse histogram that can be merged
//! and is read from event files (its percentiles are bin middles, so a report's figures do not
//! depend on how its files were split); the metrics' Prometheus histograms count into fixed
//! buckets that scrapers read cumulatively (`metrics`). Neither computes running moments.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::probe::{PingResult, Status};

/// Largest value the histograms hold, in nanoseconds (one hour); larger ones are clamped.
const HIST_MAX_NS: u64 = 3_600_000_000_000;
/// Distinct (type, code, router) rows kept in the ICMP breakdown; the rest are summed.
const ICMP_ROWS: usize = 64;

/// Samples kept exactly, for exact percentiles of short runs (8 KiB at most).
const EXACT_KEPT: usize = 1024;
/// The same for compact series (many targets at once): 512 bytes at most.
const COMPACT_EXACT_KEPT: usize = 64;

/// A duration in milliseconds, as every statistic here is given.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Count, smallest and largest of a series of values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Extremes<T> {
    n: u64,
    /// (min, max), once there is a value.
    range: Option<(T, T)>,
}

impl<T: PartialOrd + Copy> Extremes<T> {
    pub fn record(&mut self, x: T) {
        self.n += 1;
        self.widen(x, x);
    }

    /// Take in every value `other` has seen.
    pub fn merge(&mut self, other: &Extremes<T>) {
        self.n += other.n;
        if let Some((lo, hi)) = other.range {
            self.widen(lo, hi);
        }
    }

    fn widen(&mut self, lo: T, hi: T) {
        self.range = Some(match self.range {
            None => (lo, hi),
            Some((min, max)) => (
                if lo < min { lo } else { min },
                if hi > max { hi } else { max },
            ),
        });
    }

    pub fn count(&self) -> u64 {
        self.n
    }
    pub fn min(&self) -> Option<T> {
        self.range.map(|r| r.0)
    }
    pub fn max(&self) -> Option<T> {
        self.range.map(|r| r.1)
    }
    /// (min, max), once there is a value.
    pub fn range(&self) -> Option<(T, T)> {
        self.range
    }
}

/// Min/avg/max/mdev and the last of a series of durations, from running sums: constant
/// memory, no percentiles. Every figure is in milliseconds but the durations themselves
/// ([`Summary::best`], [`Summary::worst`], [`Summary::last`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    extremes: Extremes<Duration>,
    sum: f64,
    sumsq: f64,
    last: Option<Duration>,
}

impl Summary {
    pub fn record(&mut self, d: Duration) {
        let ms = millis(d);
        self.extremes.record(d);
        self.sum += ms;
        self.sumsq += ms * ms;
        self.last = Some(d);
    }
    pub fn count(&self) -> u64 {
        self.extremes.count()
    }
    pub fn min(&self) -> Option<f64> {
        self.best().map(millis)
    }
    pub fn max(&self) -> Option<f64> {
        self.worst().map(millis)
    }
    pub fn avg(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum / n as f64)
    }
    /// Standard deviation of the population of samples, as ping's mdev and mtr's StDev:
    /// sqrt(mean(x²) − mean(x)²).
    pub fn mdev(&self) -> Option<f64> {
        let avg = self.avg()?;
        Some(
            (self.sumsq / self.count() as f64 - avg * avg)
                .max(0.0)
                .sqrt(),
        )
    }
    /// The shortest sample.
    pub fn best(&self) -> Option<Duration> {
        self.extremes.min()
    }
    /// The longest sample.
    pub fn worst(&self) -> Option<Duration> {
        self.extremes.max()
    }
    /// The latest sample.
    pub fn last(&self) -> Option<Duration> {
        self.last
    }
}

/// How a series keeps what percentiles need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precision {
    /// 3 significant digits from 1 ns to an hour (about 270 KiB, allocated at the first
    /// sample), the first `EXACT_KEPT` samples exactly.
    Full,
    /// 1 significant digit (within 1/16) from 1 µs to an hour (about 3 KiB), the first
    /// `COMPACT_EXACT_KEPT` samples exactly.
    Compact,
    /// No percentiles: min/avg/max/mdev only.
    None,
}

/// Min/avg/max/mdev (a [`Summary`]) and percentiles of a series of durations.
#[derive(Clone, Debug)]
pub struct Series {
    summary: Summary,
    precision: Precision,
    /// Allocated at the first sample (a series that never gets one costs nothing).
    hist: Option<Histogram<u64>>,
    /// The first samples, in nanoseconds.
    exact: Vec<u64>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            summary: Summary::default(),
            precision: Precision::Full,
            hist: None,
            exact: Vec::new(),
        }
    }
}

impl Series {
    /// A series for one of many targets monitored at once: percentiles within 1/16 (one
    /// significant digit) past its first 64 samples, in about 3.5 KiB instead of 280.
    pub fn compact() -> Self {
        Series {
            precision: Precision::Compact,
            ..Self::default()
        }
    }

    /// A series with min/avg/max/mdev and no percentiles (a few bytes).
    pub fn without_percentiles() -> Self {
        Series {
            precision: Precision::None,
            ..Self::default()
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.summary.record(d);
        let (low, digits, kept) = match self.precision {
            Precision::Full => (1, 3, EXACT_KEPT),
            Precision::Compact => (1_000, 1, COMPACT_EXACT_KEPT),
            Precision::None => return,
        };
        let ns = (d.as_nanos() as u64).clamp(low, HIST_MAX_NS);
        self.hist
            .get_or_insert_with(|| {
                Histogram::new_with_bounds(low, HIST_MAX_NS, digits)
                    .expect("valid histogram bounds")
            })
            .saturating_record(ns);
        if self.exact.len() < kept {
            self.exact.push(d.as_nanos() as u64);
        }
    }
    pub fn count(&self) -> u64 {
        self.summary.count()
    }
    pub fn min(&self) -> Option<f64> {
        self.summary.min()
    }
    pub fn max(&self) -> Option<f64> {
        self.summary.max()
    }
    pub fn avg(&self) -> Option<f64> {
        self.summary.avg()
    }
    /// Standard deviation as ping's mdev (see [`Summary::mdev`]).
    pub fn mdev(&self) -> Option<f64> {
        self.summary.mdev()
    }
    /// Percentile `q` in 0..=100, in ms, by nearest rank: the smallest sample that at least
    /// `q` % of the samples do not exceed. Exact while every sample is kept (`EXACT_KEPT`);
    /// beyond that from the histogram (3 significant digits), never outside [min, max].
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 || self.precision == Precision::None {
            return None;
        }
        if self.exact.len() as u64 == n {
            let mut v = self.exact.clone();
            v.sort_unstable();
            let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
            let i = rank.clamp(1, v.len()) - 1;
            return Some(v[i] as f64 / 1e6);
        }
        let ms = self.hist.as_ref()?.value_at_quantile(q / 100.0) as f64 / 1e6;
        Some(ms.clamp(self.min()?, self.max()?))
    }
}

/// One row of the ICMP breakdown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IcmpKey {
    pub icmp_type: u8,
    pub code: u8,
    pub v6: bool,
    pub from: IpAddr,
    /// The reported MTU for "fragmentation needed" / "packet too big" (rows differ by it),
    /// 0 for other errors.
    pub mtu: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub sent: u64,
    pub replies: u64,
    pub lost: u64,
    pub timeouts: u64,
    pub refused: u64,
    pub icmp: u64,
    pub errors: u64,
    pub interrupted: u64,
    pub rtt: Series,
    pub connect: Series,
    /// Replies timed by their handshake only (see `PingResult::handshake_only`).
    pub handshake_replies: u64,
    jitter_sum: f64,
    jitter_n: u64,
    prev_rtt: Option<f64>,
    pub icmp_rows: BTreeMap<IcmpKey, u64>,
    /// ICMP errors beyond the kept rows.
    pub icmp_other: u64,
}

impl Stats {
    /// Statistics for one of many targets monitored at once: compact RTT percentiles
    /// (`Series::compact`), handshake times without percentiles (the summary shows none).
    pub fn compact() -> Self {
        Stats {
            rtt: Series::compact(),
            connect: Series::without_percentiles(),
            ..Self::default()
        }
    }

    pub fn record(&mut self, r: &PingResult) {
        self.sent += 1;
        if let Some(c) = r.connect {
            self.connect.record(c);
        }
        match &r.status {
            Status::Reply => {
                self.replies += 1;
                if r.handshake_only {
                    self.handshake_replies += 1;
                }
                if let Some(rtt) = r.rtt.or(r.connect) {
                    let ms = millis(rtt);
                    if let Some(prev) = self.prev_rtt {
                        self.jitter_sum += (ms - prev).abs();
                        self.jitter_n += 1;
                    }
                    self.prev_rtt = Some(ms);
                    self.rtt.record(rtt);
                }
            }
            Status::Lost => self.lost += 1,
            Status::Timeout => self.timeouts += 1,
            Status::Refused => self.refused += 1,
            Status::Error(_) => self.errors += 1,
            Status::Interrupted => self.interrupted += 1,
            Status::Icmp(rep) => {
                self.icmp += 1;
                let key = IcmpKey {
                    icmp_type: rep.icmp_type,
                    code: rep.code,
                    v6: rep.v6,
                    from: rep.from,
                    mtu: rep.mtu().unwrap_or(0),
                };
                if let Some(n) = self.icmp_rows.get_mut(&key) {
                    *n += 1;
                } else if self.icmp_rows.len() < ICMP_ROWS {
                    self.icmp_rows.insert(key, 1);
                } else {
                    self.icmp_other += 1;
                }
            }
        }
    }

    /// Whether every reply was timed by its handshake only (the `rtt` series then holds
    /// handshake times: the echo mode against a service that does not echo).
    pub fn handshake_only(&self) -> bool {
        self.replies > 0 && self.handshake_replies == self.replies
    }

    /// Share of pings without a reply, in percent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            (self.sent - self.replies) as f64 * 100.0 / self.sent as f64
        }
    }

    /// Mean absolute difference of consecutive RTTs, ms.
    pub fn jitter(&self) -> Option<f64> {
        (self.jitter_n > 0).then(|| self.jitter_sum / self.jitter_n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(seq: u64, ms: f64) -> PingResult {
        PingResult {
            connect: Some(Duration::from_secs_f64(ms / 2000.0)),
            rtt: Some(Duration::from_secs_f64(ms / 1000.0)),
            ..PingResult::new(seq, Status::Reply)
        }
    }

    #[test]
    fn summary_numbers() {
        let mut s = Stats::default();
        for (i, ms) in [1.0, 3.0, 2.0, 6.0].iter().enumerate() {
            s.record(&reply(i as u64 + 1, *ms));
        }
        s.record(&PingResult::new(5, Status::Lost));
        assert_eq!((s.sent, s.replies, s.lost), (5, 4, 1));
        assert!((s.loss_pct() - 20.0).abs() < 1e-9);
        assert!((s.rtt.min().unwrap() - 1.0).abs() < 1e-9);
        assert!((s.rtt.max().unwrap() - 6.0).abs() < 1e-9);
        assert!((s.rtt.avg().unwrap() - 3.0).abs() < 1e-9);
        // population standard deviation of 1,3,2,6 = sqrt(3.5)
        assert!((s.rtt.mdev().unwrap() - 3.5f64.sqrt()).abs() < 1e-9);
        // |3-1| + |2-3| + |6-2| = 7 over 3 differences
        assert!((s.jitter().unwrap() - 7.0 / 3.0).abs() < 1e-9);
        let p50 = s.rtt.percentile(50.0).unwrap();
        assert!((p50 - 2.0).abs() < 0.01, "{p50}");
        let p99 = s.rtt.percentile(99.0).unwrap();
        assert!((p99 - 6.0).abs() < 0.01, "{p99}");
    }

    #[test]
    fn percentiles_are_samples_within_min_and_max() {
        // One sample: every percentile is it (the histogram alone rounds it up).
        let mut s = Stats::default();
        s.record(&reply(1, 1.016));
        for q in [0.0, 50.0, 90.0, 99.0, 100.0] {
            assert_eq!(s.rtt.percentile(q), s.rtt.max(), "p{q}");
        }
        // A few: nearest rank, exact.
        let mut s = Stats::default();
        for (i, ms) in [2.032, 0.5, 1.25, 0.75, 3.5].iter().enumerate() {
            s.record(&reply(i as u64, *ms));
        }
        let p = |q| s.rtt.percentile(q).unwrap();
        assert!((p(50.0) - 1.25).abs() < 1e-9, "{}", p(50.0));
        assert!((p(20.0) - 0.5).abs() < 1e-9, "{}", p(20.0));
        assert!((p(90.0) - 3.5).abs() < 1e-9, "{}", p(90.0));
        assert!((p(99.0) - 3.5).abs() < 1e-9);
        // Many (past the exact samples): from the histogram, still within [min, max].
        let mut s = Stats::default();
        for i in 0..5000u64 {
            s.record(&reply(i, 2.032 + (i % 7) as f64 * 1e-6));
        }
        let (min, max) = (s.rtt.min().unwrap(), s.rtt.max().unwrap());
        for q in [0.0, 50.0, 99.0, 100.0] {
            let v = s.rtt.percentile(q).unwrap();
            assert!(v >= min && v <= max, "p{q} {v} outside [{min}, {max}]");
        }
    }

    #[test]
    fn compact_percentiles_are_exact_then_within_a_sixteenth() {
        let mut s = Stats::compact();
        for (i, ms) in [2.032, 0.5, 1.25, 0.75, 3.5].iter().enumerate() {
            s.record(&reply(i as u64, *ms));
        }
        assert!((s.rtt.percentile(50.0).unwrap() - 1.25).abs() < 1e-9);
        // Past the exact samples: 1..=1000 µs, p50 500 µs and p99 990 µs within 1/16.
        let mut s = Stats::compact();
        for i in 1..=1000u64 {
            s.record(&reply(i, i as f64 / 1000.0));
        }
        for (q, want) in [(50.0, 0.5), (90.0, 0.9), (99.0, 0.99)] {
            let got = s.rtt.percentile(q).unwrap();
            assert!(
                (got - want).abs() <= want / 16.0,
                "p{q}: {got} not within 1/16 of {want}"
            );
        }
        // Handshake times: min/avg/max, no percentiles.
        assert!(s.connect.avg().is_some());
        assert_eq!(s.connect.percentile(50.0), None);
    }

    #[test]
    fn summary_of_round_trips() {
        // Moved from cmd/trace/state.rs, where it tested trace's `Rtt` (now this `Summary`).
        let mut r = Summary::default();
        assert_eq!(r.avg(), None);
        for ms in [1, 2, 3, 4] {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(r.avg(), Some(2.5));
        assert!((r.mdev().unwrap() - 1.118_034).abs() < 1e-6);
        assert_eq!(r.best(), Some(Duration::from_millis(1)));
        assert_eq!(r.worst(), Some(Duration::from_millis(4)));
        assert_eq!(r.last(), Some(Duration::from_millis(4)));
    }

    #[test]
    fn extremes_merge_like_one() {
        let of = |xs: &[f64]| {
            let mut e = Extremes::default();
            xs.iter().for_each(|&x| e.record(x));
            e
        };
        let mut a = of(&[3.0, 7.25, 2.0]);
        a.merge(&of(&[1.5, 0.5]));
        assert_eq!(a, of(&[3.0, 1.5, 7.25, 0.5, 2.0]));
        assert_eq!((a.count(), a.range()), (5, Some((0.5, 7.25))));
        let mut empty = Extremes::default();
        empty.merge(&a);
        assert_eq!(empty, a);
        assert_eq!(Extremes::<f64>::default().min(), None);
    }

    #[test]
    fn an_interrupted_ping_is_sent_and_lost() {
        let mut s = Stats::default();
        s.record(&reply(1, 1.0));
        s.record(&PingResult::new(2, Status::Interrupted));
        assert_eq!((s.sent, s.replies, s.interrupted), (2, 1, 1));
        assert_eq!(s.loss_pct(), 50.0);
    }

    #[test]
    fn empty_has_no_rtt() {
        let s = Stats::default();
        assert_eq!(s.rtt.avg(), None);
        assert_eq!(s.loss_pct(), 0.0);
        assert_eq!(s.jitter(), None);
    }

    #[test]
    fn icmp_breakdown_by_router_and_mtu() {
        use crate::icmp::{IcmpReport, Phase, Source};
        let icmp = |t: u8, c: u8, info: u32, from: &str| {
            PingResult::new(
                1,
                Status::Icmp(IcmpReport {
                    icmp_type: t,
                    code: c,
                    v6: false,
                    info,
                    from: from.parse().unwrap(),
                    after: Duration::from_micros(300),
                    phase: Phase::Connect,
                    source: Source::Raw,
                    extensions: None,
                }),
            )
        };
        let mut s = Stats::default();
        s.record(&icmp(3, 1, 0, "10.0.0.1"));
        s.record(&icmp(3, 1, 0, "10.0.0.1"));
        s.record(&icmp(3, 1, 0, "10.0.0.2"));
        s.record(&icmp(3, 4, 1400, "10.0.0.1"));
        s.record(&icmp(3, 4, 1280, "10.0.0.1"));
        assert_eq!((s.sent, s.icmp, s.replies), (5, 5, 0));
        let rows: Vec<(u8, u8, String, u32, u64)> = s
            .icmp_rows
            .iter()
            .map(|(k, n)| (k.icmp_type, k.code, k.from.to_string(), k.mtu, *n))
            .collect();
        assert_eq!(
            rows,
            vec![
                (3, 1, "10.0.0.1".into(), 0, 2),
                (3, 1, "10.0.0.2".into(), 0, 1),
                (3, 4, "10.0.0.1".into(), 1280, 1),
                (3, 4, "10.0.0.1".into(), 1400, 1),
            ]
        );
        assert_eq!(s.loss_pct(), 100.0);
    }
}
