//! Prometheus metrics of a many-targets run, and the HTTP endpoint that serves them
//! (`--metrics ADDR:PORT`, `GET /metrics`).
//!
//! The exposition is prometheus-client's (Prometheus text 0.0.4, or OpenMetrics 1.0 when the
//! scraper asks for it in `Accept`), with every family's series sorted by their labels (so by
//! target first: [`SortedFamily`]); [`http`] serves it. Every series of a target carries
//! `target` (as typed) and the target's labels from the targets file.
//!
//! Memory is flat however long the run: a target has a fixed set of series, plus ICMP error
//! series bounded by [`MAX_ROUTERS`] routers and [`MAX_ICMP_SERIES`] series per target.
//! Each target holds clones of its own series' handles, so recording a probe is a few
//! atomic operations and no label hashing.

pub mod http;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

pub use http::Server;

use crate::event::Verdict;
use crate::probe::{PingResult, Status};

/// Labels of a series: `target`, the target's own labels, then the metric's.
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

/// The index of a probe's verdict in `Verdict::COUNTED` (the `verdict` label); None for
/// `interrupted`, which is not a verdict of the target: not counted.
fn verdict_index(s: &Status) -> Option<usize> {
    let v = Verdict::of(s);
    Verdict::COUNTED.iter().position(|c| *c == v)
}

fn rtt_histogram() -> Histogram {
    Histogram::new(RTT_BUCKETS)
}

/// A metric family whose series are kept, and so exposed, in the order of their labels:
/// `target` comes first in every label set, so a scrape lists the targets sorted, the same
/// way at every scrape (prometheus-client's own `Family` follows a hash map's order).
#[derive(Debug)]
pub struct SortedFamily<M> {
    series: Arc<RwLock<BTreeMap<Labels, M>>>,
    new: fn() -> M,
}

impl<M> Clone for SortedFamily<M> {
    fn clone(&self) -> Self {
        SortedFamily {
            series: Arc::clone(&self.series),
            new: self.new,
        }
    }
}

impl<M: Default> Default for SortedFamily<M> {
    fn default() -> Self {
        Self::new(M::default)
    }
}

impl<M> SortedFamily<M> {
    /// An empty family whose series `new` creates.
    pub fn new(new: fn() -> M) -> Self {
        SortedFamily {
            series: Arc::new(RwLock::new(BTreeMap::new())),
            new,
        }
    }

    /// Remove the series of `labels`, if any.
    pub fn remove(&self, labels: &Labels) {
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(labels);
    }
}

impl<M: Clone> SortedFamily<M> {
    /// The series of `labels` (created when new): a handle that shares its value.
    pub fn get_or_create_owned(&self, labels: &Labels) -> M {
        if let Some(m) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(labels)
        {
            return m.clone();
        }
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(labels.clone())
            .or_insert_with(self.new)
            .clone()
    }
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for SortedFamily<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        for (labels, m) in series.iter() {
            m.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }

    fn is_empty(&self) -> bool {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

type HistogramFamily = SortedFamily<Histogram>;

/// Every metric family of the run.
pub struct Metrics {
    registry: Registry,
    probes: SortedFamily<Counter>,
    icmp: SortedFamily<Counter>,
    rtt: HistogramFamily,
    connect: HistogramFamily,
    last_rtt: SortedFamily<Gauge<f64, AtomicU64>>,
    last_success: SortedFamily<Gauge>,
    resolved: SortedFamily<Gauge>,
    lag: Histogram,
    targets: Gauge,
    unmatched: Counter,
    late: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let probes = SortedFamily::<Counter>::default();
        registry.register(
            "tcpping_probes",
            "Probes concluded, by verdict (reply, lost, timeout, refused, icmp, error)",
            probes.clone(),
        );
        let icmp = SortedFamily::<Counter>::default();
        registry.register(
            "tcpping_icmp_errors",
            "ICMP errors matched to a probe, by ICMP type, code and reporting router",
            icmp.clone(),
        );
        let rtt: HistogramFamily = SortedFamily::new(rtt_histogram);
        registry.register_with_unit(
            "tcpping_rtt",
            "Round trip of answered probes: request to echo; the handshake for --syn, --connect-only and targets that do not echo",
            Unit::Seconds,
            rtt.clone(),
        );
        let connect: HistogramFamily = SortedFamily::new(rtt_histogram);
        registry.register_with_unit(
            "tcpping_connect",
            "TCP handshake of probes that also wait for an echo (connect probes of an echo server, without --connect-only)",
            Unit::Seconds,
            connect.clone(),
        );
        let last_rtt = SortedFamily::<Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "tcpping_last_rtt",
            "Round trip of the last answered probe",
            Unit::Seconds,
            last_rtt.clone(),
        );
        let last_success = SortedFamily::<Gauge>::default();
        registry.register(
            "tcpping_last_success",
            "1 when the last probe was answered, 0 when it was not",
            last_success.clone(),
        );
        let resolved = SortedFamily::<Gauge>::default();
        registry.register(
            "tcpping_target_resolved",
            "1 once the target's name resolved (it is being probed), 0 while it is retried",
            resolved.clone(),
        );
        let lag = Histogram::new(LAG_BUCKETS);
        registry.register_with_unit(
            "tcpping_send_lag",
            "How late probes left compared with their schedule",
            Unit::Seconds,
            lag.clone(),
        );
        let targets = Gauge::default();
        registry.register(
            "tcpping_targets",
            "Targets being monitored",
            targets.clone(),
        );
        let unmatched = Counter::default();
        registry.register(
            "tcpping_icmp_unmatched",
            "ICMP errors that quote none of our probes (other programs, spoofed)",
            unmatched.clone(),
        );
        let late = Counter::default();
        registry.register(
            "tcpping_icmp_late",
            "ICMP errors that quote a probe of ours that had already ended",
            late.clone(),
        );
        Metrics {
            registry,
            probes,
            icmp,
            rtt,
            connect,
            last_rtt,
            last_success,
            resolved,
            lag,
            targets,
            unmatched,
            late,
        }
    }

    /// The series of a target (created at zero, so `rate()` and `increase()` work from its
    /// first scrape).
    pub fn target(&self, name: &str, labels: &[(String, String)]) -> TargetMetrics {
        let mut base: Labels = Vec::with_capacity(labels.len() + 1);
        base.push(("target".into(), name.into()));
        base.extend(labels.iter().cloned());
        let with = |k: &str, v: &str| {
            let mut l = base.clone();
            l.push((k.into(), v.into()));
            l
        };
        let probes =
            Verdict::COUNTED.map(|v| self.probes.get_or_create_owned(&with("verdict", v.name())));
        let resolved = self.resolved.get_or_create_owned(&base);
        self.targets.inc();
        TargetMetrics {
            probes,
            rtt: None,
            connect: None,
            last_rtt: None,
            last_success: None,
            resolved,
            icmp: HashMap::new(),
            routers: HashSet::new(),
            base,
        }
    }

    /// Remove a target's series (it left the targets file).
    pub fn remove(&self, t: &TargetMetrics) {
        let with = |k: &str, v: &str| {
            let mut l = t.base.clone();
            l.push((k.into(), v.into()));
            l
        };
        for v in Verdict::COUNTED {
            self.probes.remove(&with("verdict", v.name()));
        }
        for labels in t.icmp.keys() {
            self.icmp.remove(&t.icmp_labels(labels));
        }
        self.rtt.remove(&t.base);
        self.connect.remove(&t.base);
        self.last_rtt.remove(&t.base);
        self.last_success.remove(&t.base);
        self.resolved.remove(&t.base);
        self.targets.dec();
    }

    /// How late a probe left.
    pub fn lag(&self, d: Duration) {
        self.lag.observe(d.as_secs_f64());
    }

    /// The run's ICMP errors attributed to no probe, as totals so far.
    pub fn icmp_tally(&self, unmatched: u64, late: u64) {
        for (c, total) in [(&self.unmatched, unmatched), (&self.late, late)] {
            let have = c.get();
            if total > have {
                c.inc_by(total - have);
            }
        }
    }

    /// The exposition, in Prometheus text (0.0.4) or OpenMetrics (1.0) format, into `out`.
    pub fn encode(&self, openmetrics: bool, out: &mut String) -> std::fmt::Result {
        out.clear();
        if openmetrics {
            text::encode(out, &self.registry)
        } else {
            prometheus_text::encode(out, &self.registry)
        }
    }
}

/// Key of an ICMP series of a target: type, code, router ("other" past the bounds).
type IcmpKey = (String, String, String);

/// Handles of one target's series.
pub struct TargetMetrics {
    base: Labels,
    probes: [Counter; 6],
    /// Created at the first answer or handshake (a target that never answers has none).
    rtt: Option<Histogram>,
    connect: Option<Histogram>,
    last_rtt: Option<Gauge<f64, AtomicU64>>,
    last_success: Option<Gauge>,
    resolved: Gauge,
    icmp: HashMap<IcmpKey, Counter>,
    routers: HashSet<IpAddr>,
}

impl TargetMetrics {
    fn icmp_labels(&self, key: &IcmpKey) -> Labels {
        let mut l = self.base.clone();
        l.push(("type".into(), key.0.clone()));
        l.push(("code".into(), key.1.clone()));
        l.push(("router".into(), key.2.clone()));
        l
    }

    /// The target's name resolved (1) or is being retried (0).
    pub fn set_resolved(&self, yes: bool) {
        self.resolved.set(i64::from(yes));
    }

    /// Count a concluded probe. `echo`: the probe also waited for an echo, so its
    /// handshake is a separate measurement (`tcpping_connect_seconds`).
    pub fn record(&mut self, m: &Metrics, r: &PingResult, echo: bool) {
        let Some(i) = verdict_index(&r.status) else {
            return;
        };
        self.probes[i].inc();
        let ok = r.status == Status::Reply;
        self.last_success
            .get_or_insert_with(|| m.last_success.get_or_create_owned(&self.base))
            .set(i64::from(ok));
        if ok {
            if let Some(t) = r.rtt.or(r.connect) {
                let s = t.as_secs_f64();
                self.rtt
                    .get_or_insert_with(|| m.rtt.get_or_create_owned(&self.base))
                    .observe(s);
                self.last_rtt
                    .get_or_insert_with(|| m.last_rtt.get_or_create_owned(&self.base))
                    .set(s);
            }
        }
        if echo {
            if let Some(c) = r.connect {
                self.connect
                    .get_or_insert_with(|| m.connect.get_or_create_owned(&self.base))
                    .observe(c.as_secs_f64());
            }
        }
        if let Status::Icmp(rep) = &r.status {
            let key = self.icmp_key(rep.icmp_type, rep.code, rep.from);
            if let Some(c) = self.icmp.get(&key) {
                c.inc();
            } else {
                let c = m.icmp.get_or_create_owned(&self.icmp_labels(&key));
                c.inc();
                self.icmp.insert(key, c);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::{IcmpReport, Phase, Source};
    use crate::probe::ProbeSpec;

    fn spec(target: &str) -> ProbeSpec {
        ProbeSpec {
            seq: 1,
            target: target.parse().unwrap(),
            ttl: None,
            flow: 0,
        }
    }

    fn icmp_from(router: &str) -> PingResult {
        PingResult::of(
            &spec("10.0.0.9:80"),
            Status::Icmp(IcmpReport {
                icmp_type: 3,
                code: 13,
                v6: false,
                info: 0,
                from: router.parse().unwrap(),
                after: Duration::from_micros(200),
                phase: Phase::Connect,
                source: Source::Raw,
                extensions: None,
            }),
        )
    }

    fn line_of<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(start)).collect()
    }

    #[test]
    fn series_per_target_with_its_labels_in_both_formats() {
        let m = Metrics::new();
        let labels = vec![("name".to_string(), "db1".to_string())];
        let mut t = m.target("db1.example:5432", &labels);
        let mut reply = PingResult::of(&spec("10.0.0.9:5432"), Status::Reply);
        reply.connect = Some(Duration::from_micros(300));
        reply.rtt = Some(Duration::from_micros(700));
        t.record(&m, &reply, true);
        t.record(
            &m,
            &PingResult::of(&spec("10.0.0.9:5432"), Status::Timeout),
            true,
        );
        t.record(&m, &icmp_from("10.0.0.1"), true);
        t.record(
            &m,
            &PingResult::of(&spec("10.0.0.9:5432"), Status::Interrupted),
            true,
        );
        let mut s = String::new();
        m.encode(false, &mut s).unwrap();
        let probes = line_of(&s, "tcpping_probes_total{");
        assert_eq!(probes.len(), 6, "{s}");
        for (verdict, n) in [("reply", 1), ("timeout", 1), ("icmp", 1), ("lost", 0)] {
            let want = format!(
                "tcpping_probes_total{{target=\"db1.example:5432\",name=\"db1\",verdict=\"{verdict}\"}} {n}"
            );
            assert!(probes.contains(&want.as_str()), "{want} not in {probes:?}");
        }
        assert!(s.contains(
            "tcpping_icmp_errors_total{target=\"db1.example:5432\",name=\"db1\",type=\"3\",code=\"13\",router=\"10.0.0.1\"} 1"
        ), "{s}");
        assert!(s.contains(
            "tcpping_rtt_seconds_bucket{target=\"db1.example:5432\",name=\"db1\",le=\"0.001\"} 1"
        ), "{s}");
        assert!(s.contains(
            "tcpping_rtt_seconds_bucket{target=\"db1.example:5432\",name=\"db1\",le=\"0.0005\"} 0"
        ), "{s}");
        assert!(
            s.contains("tcpping_connect_seconds_count{target=\"db1.example:5432\",name=\"db1\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("tcpping_last_rtt_seconds{target=\"db1.example:5432\",name=\"db1\"} 0.0007"),
            "{s}"
        );
        assert!(
            s.contains("tcpping_last_success{target=\"db1.example:5432\",name=\"db1\"} 0"),
            "{s}"
        );
        assert!(s.contains("tcpping_targets 1"), "{s}");
        assert!(!s.contains("# EOF"));
        let mut om = String::new();
        m.encode(true, &mut om).unwrap();
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# UNIT tcpping_rtt_seconds seconds"), "{om}");
        // Removed: no series of it is left.
        m.remove(&t);
        m.encode(false, &mut s).unwrap();
        assert!(!s.contains("db1.example"), "{s}");
        assert!(s.contains("tcpping_targets 0"), "{s}");
    }

    #[test]
    fn routers_and_icmp_series_per_target_are_bounded() {
        let m = Metrics::new();
        let mut t = m.target("10.0.0.9:80", &[]);
        for i in 0..(MAX_ROUTERS + 10) {
            t.record(&m, &icmp_from(&format!("10.1.0.{i}")), false);
        }
        let mut s = String::new();
        m.encode(false, &mut s).unwrap();
        let rows = line_of(&s, "tcpping_icmp_errors_total{");
        assert_eq!(rows.len(), MAX_ROUTERS + 1, "{rows:?}");
        assert!(rows.contains(
            &"tcpping_icmp_errors_total{target=\"10.0.0.9:80\",type=\"3\",code=\"13\",router=\"other\"} 10"
        ), "{rows:?}");
        // Known routers keep their series; many type/code pairs end in one "other" series.
        let mut t = m.target("10.0.0.10:80", &[]);
        for code in 0..=255u8 {
            let mut r = icmp_from("10.0.0.1");
            if let Status::Icmp(rep) = &mut r.status {
                rep.code = code;
            }
            t.record(&m, &r, false);
        }
        m.encode(false, &mut s).unwrap();
        let rows: Vec<&str> = line_of(&s, "tcpping_icmp_errors_total{target=\"10.0.0.10:80\"");
        assert_eq!(rows.len(), MAX_ICMP_SERIES);
        assert!(rows.contains(
            &"tcpping_icmp_errors_total{target=\"10.0.0.10:80\",type=\"other\",code=\"other\",router=\"other\"} 193"
        ), "{rows:?}");
    }

    #[test]
    fn accept_header_negotiation() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prom)));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "text/plain, application/openmetrics-text;q=0.5"
        )));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(Some(";;,,q=x")));
    }

    #[test]
    fn series_are_exposed_sorted_by_target_then_labels() {
        let m = Metrics::new();
        // Created in reverse order, and one removed and created again (last in any
        // insertion order).
        let names: Vec<String> = (0..20).map(|i| format!("h{i:02}.example:80")).collect();
        let mut ts = Vec::new();
        for n in names.iter().rev() {
            let labels = vec![("tier".to_string(), "b".to_string())];
            let mut t = m.target(n, &labels);
            let mut reply = PingResult::of(&spec("10.0.0.9:80"), Status::Reply);
            reply.rtt = Some(Duration::from_micros(700));
            t.record(&m, &reply, false);
            t.record(&m, &icmp_from("10.0.0.2"), false);
            t.record(&m, &icmp_from("10.0.0.1"), false);
            ts.push(t);
        }
        let first = ts.pop().unwrap();
        m.remove(&first);
        let _again = m.target(&names[0], &[("tier".into(), "a".into())]);
        let mut s = String::new();
        m.encode(false, &mut s).unwrap();
        let targets_of = |prefix: &str| -> Vec<String> {
            line_of(&s, prefix)
                .iter()
                .map(|l| l.split('"').nth(1).unwrap().to_string())
                .collect()
        };
        // Six verdicts per target, the targets sorted, the verdicts in label order.
        let probes = targets_of("tcpping_probes_total{");
        let mut want: Vec<String> = names
            .iter()
            .flat_map(|n| std::iter::repeat_n(n.clone(), 6))
            .collect();
        assert_eq!(probes, want, "{s}");
        let verdicts: Vec<&str> = line_of(&s, "tcpping_probes_total{target=\"h05.example:80\"")
            .iter()
            .map(|l| {
                l.split("verdict=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        let mut sorted = verdicts.clone();
        sorted.sort();
        assert_eq!(verdicts, sorted);
        // The ICMP series of a target: by router too.
        let icmp = line_of(&s, "tcpping_icmp_errors_total{target=\"h07.example:80\"");
        assert_eq!(icmp.len(), 2, "{s}");
        assert!(icmp[0].contains("router=\"10.0.0.1\""), "{icmp:?}");
        // Histograms: whole series, sorted; h00 has none any more (created again, no answer).
        let counts = targets_of("tcpping_rtt_seconds_count{");
        want = names[1..].to_vec();
        assert_eq!(counts, want, "{s}");
        // The same text at every scrape.
        let mut again = String::new();
        m.encode(false, &mut again).unwrap();
        assert_eq!(s, again);
    }

    #[test]
    fn the_unmatched_totals_follow_the_prober() {
        let m = Metrics::new();
        m.icmp_tally(3, 1);
        m.icmp_tally(5, 1);
        let mut s = String::new();
        m.encode(false, &mut s).unwrap();
        assert!(s.contains("tcpping_icmp_unmatched_total 5"), "{s}");
        assert!(s.contains("tcpping_icmp_late_total 1"), "{s}");
    }
}
