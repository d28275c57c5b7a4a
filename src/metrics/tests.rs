//! The model and its exposition: series per target in both series sets, their bounds, the
//! order, both formats parsed back by the text format's rules, the same samples as
//! prometheus-client writes for the same values, and a scrape written in parts while the
//! loop goes on.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

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

fn reply(rtt_us: u64, connect_us: Option<u64>) -> PingResult {
    let mut r = PingResult::of(&spec("10.0.0.9:5432"), Status::Reply);
    r.rtt = Some(Duration::from_micros(rtt_us));
    r.connect = connect_us.map(Duration::from_micros);
    r
}

fn text(m: &Arc<Metrics>, om: bool) -> String {
    let mut s = String::new();
    m.encode(om, &mut s);
    s
}

fn line_of<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(start)).collect()
}

/// One sample of an exposition: name, labels in order, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A family as parsed: its name (as in `# TYPE`), type, unit, help, and samples.
#[derive(Debug, Default, Clone, PartialEq)]
struct Parsed {
    name: String,
    kind: String,
    unit: Option<String>,
    help: String,
    samples: Vec<Sample>,
}

fn valid_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("value {s:?}: {e}")),
    }
}

/// `name{k="v",...} value` by the text format's rules (escapes `\\`, `\"`, `\n` in values).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = &line[..end];
    if !valid_name(name) {
        return Err(format!("bad name {name:?}"));
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            let eq = rest.find('=').ok_or("label without =")?;
            let key = &rest[..eq];
            if !valid_name(key) || key.contains(':') {
                return Err(format!("bad label name {key:?}"));
            }
            let mut chars = rest[eq + 1..].char_indices();
            if chars.next().map(|c| c.1) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            let mut closed = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|c| c.1) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    '"' => {
                        closed = Some(eq + 1 + i + 1);
                        break;
                    }
                    '\n' => return Err("raw line feed in a label value".into()),
                    c => value.push(c),
                }
            }
            let closed = closed.ok_or("label value not closed")?;
            labels.push((key.to_string(), value));
            rest = &rest[closed..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            } else {
                return Err(format!("after a label: {rest:?}"));
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value: {line:?}"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// Parse a whole exposition by the rules of its format, checking them: every sample in a
/// family announced by `# TYPE` (once, contiguous), names that belong to it, no series
/// twice, histograms cumulative with `+Inf` = `_count`, and (OpenMetrics) `# EOF` last.
fn parse(text: &str, om: bool) -> Result<Vec<Parsed>, String> {
    let mut fams: Vec<Parsed> = Vec::new();
    let mut seen_names = HashSet::new();
    let mut seen_series = HashSet::new();
    let mut help: Option<(String, String)> = None;
    let mut eof = false;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("no final line feed".into());
    }
    for line in text.lines() {
        if eof {
            return Err(format!("after # EOF: {line:?}"));
        }
        if line == "# EOF" {
            if !om {
                return Err("# EOF in the 0.0.4 format".into());
            }
            eof = true;
        } else if let Some(r) = line.strip_prefix("# HELP ") {
            let (n, h) = r.split_once(' ').ok_or("HELP without text")?;
            help = Some((n.to_string(), h.to_string()));
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let (n, k) = r.split_once(' ').ok_or("TYPE without type")?;
            if !["counter", "gauge", "histogram"].contains(&k) {
                return Err(format!("type {k}"));
            }
            if !seen_names.insert(n.to_string()) {
                return Err(format!("family {n} twice"));
            }
            let h = match help.take() {
                Some((hn, h)) if hn == n => h,
                _ => return Err(format!("no HELP right before TYPE {n}")),
            };
            fams.push(Parsed {
                name: n.to_string(),
                kind: k.to_string(),
                help: h,
                ..Parsed::default()
            });
        } else if let Some(r) = line.strip_prefix("# UNIT ") {
            let f = fams.last_mut().ok_or("UNIT first")?;
            let (n, u) = r.split_once(' ').ok_or("UNIT without unit")?;
            if !om || n != f.name || !f.samples.is_empty() || !n.ends_with(&format!("_{u}")) {
                return Err(format!("misplaced UNIT {r}"));
            }
            f.unit = Some(u.to_string());
        } else if line.starts_with('#') {
            return Err(format!("unknown comment {line:?}"));
        } else {
            let s = parse_sample(line)?;
            let f = fams.last_mut().ok_or("sample before any TYPE")?;
            let base = if om && f.kind == "counter" {
                format!("{}_total", f.name)
            } else {
                f.name.clone()
            };
            let ok = match f.kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|x| s.name == format!("{base}{x}")),
                _ => s.name == base,
            };
            if !ok {
                return Err(format!("sample {} in family {}", s.name, f.name));
            }
            if !seen_series.insert(format!("{}{:?}", s.name, s.labels)) {
                return Err(format!("series twice: {line}"));
            }
            f.samples.push(s);
        }
    }
    if om != eof {
        return Err(format!("# EOF present: {eof}, format OpenMetrics: {om}"));
    }
    for f in fams.iter().filter(|f| f.kind == "histogram") {
        check_histogram(f)?;
    }
    Ok(fams)
}

/// Each series of a histogram: buckets by increasing `le`, counts not decreasing, `+Inf`
/// last and equal to `_count`, a `_sum`.
fn check_histogram(f: &Parsed) -> Result<(), String> {
    /// Per series: buckets (le, count), `_count`, whether `_sum` came.
    type Series = (Vec<(f64, f64)>, Option<f64>, bool);
    let mut series: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
    for s in &f.samples {
        let mut labels = s.labels.clone();
        let le = labels
            .iter()
            .position(|(k, _)| k == "le")
            .map(|i| labels.remove(i).1);
        let e = series.entry(labels).or_default();
        if s.name.ends_with("_bucket") {
            let le = parse_value(&le.ok_or("bucket without le")?)?;
            e.0.push((le, s.value));
        } else if s.name.ends_with("_count") {
            e.1 = Some(s.value);
        } else {
            e.2 = true;
        }
    }
    for (labels, (buckets, count, sum)) in series {
        let inf = buckets.last().ok_or("no buckets")?;
        if inf.0 != f64::INFINITY || Some(inf.1) != count || !sum {
            return Err(format!("{} {labels:?}: +Inf, _count, _sum", f.name));
        }
        if buckets
            .windows(2)
            .any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1)
        {
            return Err(format!("{} {labels:?}: buckets {buckets:?}", f.name));
        }
    }
    Ok(())
}

/// Samples of a parsed exposition, by name and labels (sorted: their order is free).
fn samples(fams: &[Parsed]) -> BTreeMap<String, f64> {
    fams.iter()
        .flat_map(|f| &f.samples)
        .map(|s| {
            let mut l = s.labels.clone();
            l.sort();
            (format!("{}{l:?}", s.name), s.value)
        })
        .collect()
}

/// Three targets and their labels, awkward values included.
fn three_targets() -> [(&'static str, Labels); 3] {
    let odd = vec![
        ("site".to_string(), "a \"quoted\" \\ back\nline".to_string()),
        ("zone".to_string(), "é".to_string()),
    ];
    let tier = vec![("tier".to_string(), "b".to_string())];
    [
        ("db2.example:5432", tier),
        ("db1.example:5432", odd),
        ("10.0.0.9:80", vec![]),
    ]
}

/// The three targets through every kind of verdict.
fn fill(m: &Metrics) -> Vec<TargetMetrics> {
    let mut ts = Vec::new();
    for (name, labels) in three_targets() {
        let mut t = m.target(name, &labels);
        t.set_resolved(true);
        t.record(m, &reply(700, Some(300)), true);
        t.record(m, &reply(40, Some(20)), true);
        t.record(
            m,
            &PingResult::of(&spec("10.0.0.9:80"), Status::Timeout),
            true,
        );
        t.record(m, &icmp_from("10.0.0.1"), true);
        ts.push(t);
    }
    m.lag(Duration::from_micros(30));
    m.lag(Duration::from_millis(3));
    m.icmp_tally(2, 1);
    ts
}

#[test]
fn per_target_series_with_their_labels_in_both_formats() {
    let m = Arc::new(Metrics::new(Histograms::PerTarget));
    let labels = vec![("name".to_string(), "db1".to_string())];
    let mut t = m.target("db1.example:5432", &labels);
    t.record(&m, &reply(700, Some(300)), true);
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
    let s = text(&m, false);
    let probes = line_of(&s, "tcpping_probes_total{");
    assert_eq!(probes.len(), 6, "{s}");
    for (verdict, n) in [("reply", 1), ("timeout", 1), ("icmp", 1), ("lost", 0)] {
        let want = format!(
            "tcpping_probes_total{{target=\"db1.example:5432\",name=\"db1\",verdict=\"{verdict}\"}} {n}"
        );
        assert!(probes.contains(&want.as_str()), "{want} not in {probes:?}");
    }
    for want in [
        "tcpping_icmp_errors_total{target=\"db1.example:5432\",name=\"db1\",type=\"3\",code=\"13\",router=\"10.0.0.1\"} 1",
        "tcpping_rtt_seconds_bucket{target=\"db1.example:5432\",name=\"db1\",le=\"0.001\"} 1",
        "tcpping_rtt_seconds_bucket{target=\"db1.example:5432\",name=\"db1\",le=\"0.0005\"} 0",
        "tcpping_rtt_seconds_bucket{target=\"db1.example:5432\",name=\"db1\",le=\"2.5e-05\"} 0",
        "tcpping_connect_seconds_count{target=\"db1.example:5432\",name=\"db1\"} 1",
        "tcpping_last_rtt_seconds{target=\"db1.example:5432\",name=\"db1\"} 0.0007",
        "tcpping_last_success{target=\"db1.example:5432\",name=\"db1\"} 0",
        "tcpping_targets 1",
        "# TYPE tcpping_probes_total counter",
    ] {
        assert!(s.contains(want), "{want} not in {s}");
    }
    assert!(!s.contains("# EOF"));
    let om = text(&m, true);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# UNIT tcpping_rtt_seconds seconds"), "{om}");
    assert!(om.contains("# TYPE tcpping_probes counter"), "{om}");
    assert!(om.contains("le=\"0.000025\"} 0"), "{om}");
    // Removed: no series of it is left.
    m.remove(&t);
    let s = text(&m, false);
    assert!(!s.contains("db1.example"), "{s}");
    assert!(s.contains("tcpping_targets 0"), "{s}");
}

#[test]
fn the_lean_set_shares_the_histograms_and_keeps_the_counters_per_target() {
    let m = Arc::new(Metrics::default());
    let ts = fill(&m);
    let s = text(&m, false);
    let fams = parse(&s, false).unwrap_or_else(|e| panic!("{e}\n{s}"));
    // One RTT and one connect histogram for the three targets, without `target`.
    for name in ["tcpping_rtt_seconds", "tcpping_connect_seconds"] {
        let f = fams.iter().find(|f| f.name == name).unwrap();
        assert_eq!(f.samples.len(), RTT_BUCKETS.len() + 3, "{name}");
        assert!(f.samples.iter().all(|s| s.labels.len() <= 1), "{f:?}");
        let count = f
            .samples
            .iter()
            .find(|s| s.name.ends_with("_count"))
            .unwrap();
        assert_eq!(count.value, 6.0, "{name}");
    }
    // 40 µs and 700 µs, three times each.
    assert!(
        s.contains("tcpping_rtt_seconds_bucket{le=\"5e-05\"} 3\n"),
        "{s}"
    );
    assert!(
        s.contains("tcpping_rtt_seconds_bucket{le=\"0.001\"} 6\n"),
        "{s}"
    );
    assert!(s.contains("tcpping_rtt_seconds_sum 0.00222\n"), "{s}");
    // Per target: 6 counters, 1 ICMP series, 3 gauges; nothing else names a target.
    let per_target: usize = fams
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| {
            s.labels
                .first()
                .is_some_and(|(k, v)| k == "target" && v == "10.0.0.9:80")
        })
        .count();
    assert_eq!(per_target, 10, "{s}");
    assert!(
        s.contains("tcpping_last_rtt_seconds{target=\"10.0.0.9:80\"} 0.00004\n"),
        "{s}"
    );
    drop(ts);
}

#[test]
fn both_formats_and_both_sets_parse_back_by_the_format_rules() {
    for h in [Histograms::Shared, Histograms::PerTarget] {
        let m = Arc::new(Metrics::new(h));
        let _ts = fill(&m);
        for om in [false, true] {
            let s = text(&m, om);
            let fams = parse(&s, om).unwrap_or_else(|e| panic!("{h:?} om={om}: {e}\n{s}"));
            // The awkward label values come back as they were.
            let site = fams
                .iter()
                .flat_map(|f| &f.samples)
                .find_map(|s| s.labels.iter().find(|(k, _)| k == "site"))
                .unwrap();
            assert_eq!(site.1, "a \"quoted\" \\ back\nline");
        }
    }
    // And the checker refuses what breaks the rules.
    for bad in [
        "x 1\n",
        "# HELP a b\n# TYPE a gauge\na{x=\"1} 1\n",
        "# HELP a b\n# TYPE a gauge\na 1\n# HELP b b\n# TYPE b gauge\nb 1\n# HELP a b\n# TYPE a gauge\na{x=\"\"} 1\n",
        "# HELP a b\n# TYPE a gauge\na 1\na 2\n",
        "# HELP a b\n# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n",
        "# HELP a b\n# TYPE a gauge\nb 1\n",
        "# HELP a b\n# TYPE a gauge\na 1",
    ] {
        assert!(parse(bad, false).is_err(), "{bad}");
    }
    assert!(
        parse("# HELP a b\n# TYPE a gauge\na 1\n", true).is_err(),
        "no # EOF"
    );
}

/// The same values through prometheus-client's own metrics and encoders.
fn reference(om: bool) -> String {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Registry, Unit};
    use std::sync::atomic::AtomicU64;
    type L = Vec<(String, String)>;
    let mut r = Registry::default();
    let probes = Family::<L, Counter>::default();
    let icmp = Family::<L, Counter>::default();
    let rtt = Family::<L, Histogram>::new_with_constructor(|| Histogram::new(RTT_BUCKETS));
    let connect = Family::<L, Histogram>::new_with_constructor(|| Histogram::new(RTT_BUCKETS));
    let last_rtt = Family::<L, Gauge<f64, AtomicU64>>::default();
    let last_success = Family::<L, Gauge>::default();
    let resolved = Family::<L, Gauge>::default();
    let lag = Histogram::new(LAG_BUCKETS);
    let targets = Gauge::<i64>::default();
    let (unmatched, late) = (Counter::<u64>::default(), Counter::<u64>::default());
    let h = |s: &str| s.trim_end_matches('.').to_string();
    for (i, f) in render::tests_families().iter().enumerate() {
        let help = h(f.1);
        match i {
            0 => r.register(f.0, help, probes.clone()),
            1 => r.register(f.0, help, icmp.clone()),
            2 => r.register_with_unit(f.0, help, Unit::Seconds, rtt.clone()),
            3 => r.register_with_unit(f.0, help, Unit::Seconds, connect.clone()),
            4 => r.register_with_unit(f.0, help, Unit::Seconds, last_rtt.clone()),
            5 => r.register(f.0, help, last_success.clone()),
            6 => r.register(f.0, help, resolved.clone()),
            7 => r.register_with_unit(f.0, help, Unit::Seconds, lag.clone()),
            8 => r.register(f.0, help, targets.clone()),
            9 => r.register(f.0, help, unmatched.clone()),
            _ => r.register(f.0, help, late.clone()),
        }
    }
    for (name, labels) in three_targets() {
        let mut base = vec![("target".to_string(), name.to_string())];
        base.extend(labels);
        let with = |extra: &[(&str, &str)]| {
            let mut l = base.clone();
            l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            l
        };
        for v in ["reply", "lost", "timeout", "refused", "icmp", "error"] {
            let n = match v {
                "reply" => 2,
                "timeout" | "icmp" => 1,
                _ => 0,
            };
            probes.get_or_create(&with(&[("verdict", v)])).inc_by(n);
        }
        icmp.get_or_create(&with(&[
            ("type", "3"),
            ("code", "13"),
            ("router", "10.0.0.1"),
        ]))
        .inc();
        for (rt, c) in [(700e-6, 300e-6), (40e-6, 20e-6)] {
            rtt.get_or_create(&base).observe(rt);
            connect.get_or_create(&base).observe(c);
        }
        last_rtt.get_or_create(&base).set(40e-6);
        last_success.get_or_create(&base).set(0);
        resolved.get_or_create(&base).set(1);
        targets.inc();
    }
    lag.observe(30e-6);
    lag.observe(3e-3);
    unmatched.inc_by(2);
    late.inc();
    let mut s = String::new();
    if om {
        prometheus_client::encoding::text::encode(&mut s, &r).unwrap();
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut s, &r).unwrap();
    }
    s
}

#[test]
fn the_same_families_and_samples_as_prometheus_client_writes() {
    let m = Arc::new(Metrics::new(Histograms::PerTarget));
    let _ts = fill(&m);
    for om in [false, true] {
        let ours = parse(&text(&m, om), om).unwrap();
        let theirs = parse(&reference(om), om).unwrap();
        let heads = |f: &[Parsed]| -> Vec<(String, String, Option<String>, String)> {
            f.iter()
                .map(|f| {
                    (
                        f.name.clone(),
                        f.kind.clone(),
                        f.unit.clone(),
                        f.help.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(heads(&ours), heads(&theirs), "om={om}");
        let (a, b) = (samples(&ours), samples(&theirs));
        let only = |x: &BTreeMap<String, f64>, y: &BTreeMap<String, f64>| -> Vec<String> {
            x.keys().filter(|k| !y.contains_key(*k)).cloned().collect()
        };
        assert_eq!(only(&a, &b), Vec::<String>::new(), "ours only (om={om})");
        assert_eq!(only(&b, &a), Vec::<String>::new(), "theirs only (om={om})");
        for (k, v) in &a {
            let w = b[k];
            assert!((v - w).abs() <= 1e-12 * w.abs().max(1.0), "{k}: {v} vs {w}");
        }
    }
    // And the `le` labels as prometheus-client writes them, in both formats.
    for om in [false, true] {
        let r = reference(om);
        for b in RTT_BUCKETS.iter().chain(&LAG_BUCKETS) {
            let le = format!("le=\"{}\"", render::le_label(*b, om));
            assert!(r.contains(&le), "{le} (om={om})");
        }
    }
}

#[test]
fn routers_and_icmp_series_per_target_are_bounded() {
    let m = Arc::new(Metrics::default());
    let mut t = m.target("10.0.0.9:80", &[]);
    for i in 0..(MAX_ROUTERS + 10) {
        t.record(&m, &icmp_from(&format!("10.1.0.{i}")), false);
    }
    let s = text(&m, false);
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
    let s = text(&m, false);
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
    let m = Arc::new(Metrics::new(Histograms::PerTarget));
    // Created in reverse order, and one removed and created again (last in any
    // insertion order).
    let names: Vec<String> = (0..20).map(|i| format!("h{i:02}.example:80")).collect();
    let mut ts = Vec::new();
    for n in names.iter().rev() {
        let labels = vec![("tier".to_string(), "b".to_string())];
        let mut t = m.target(n, &labels);
        t.record(&m, &reply(700, None), false);
        t.record(&m, &icmp_from("10.0.0.2"), false);
        t.record(&m, &icmp_from("10.0.0.1"), false);
        ts.push(t);
    }
    let first = ts.pop().unwrap();
    m.remove(&first);
    let _again = m.target(&names[0], &[("tier".into(), "a".into())]);
    let s = text(&m, false);
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
    assert_eq!(s, text(&m, false));
}

#[test]
fn the_unmatched_totals_follow_the_prober() {
    let m = Arc::new(Metrics::default());
    m.icmp_tally(3, 1);
    m.icmp_tally(5, 1);
    let s = text(&m, false);
    assert!(s.contains("tcpping_icmp_unmatched_total 5"), "{s}");
    assert!(s.contains("tcpping_icmp_late_total 1"), "{s}");
}

/// A scrape holds no lock between its parts: the whole type is `Send + 'static`, owning
/// only `Arc`s (a guard would borrow).
fn owns_no_guard<T: Send + 'static>() {}

#[test]
fn a_scrape_in_parts_lets_the_loop_go_on_and_reads_whole_lines() {
    owns_no_guard::<Render>();
    let m = Arc::new(Metrics::new(Histograms::PerTarget));
    let mut ts: Vec<TargetMetrics> = (0..500)
        .map(|i| {
            let mut t = m.target(&format!("10.2.{}.{}:80", i / 250, i % 250), &[]);
            t.record(&m, &reply(100, None), false);
            t
        })
        .collect();
    let whole = text(&m, false);
    // In parts of about 1 kB: whole lines each, and the same text in the end.
    let mut r = Render::new(Arc::clone(&m), false);
    let mut parts = Vec::new();
    let mut part = String::new();
    while r.fill(&mut part, 1000) {
        assert!(part.ends_with('\n'));
        assert!(part.len() < 1000 + 1500, "{}", part.len());
        parts.push(std::mem::take(&mut part));
    }
    assert!(parts.len() > 50, "{}", parts.len());
    assert_eq!(parts.concat(), whole);
    // Half-way through another scrape, this thread (the loop) adds, counts and removes
    // targets: nothing waits on the scrape (a lock held by it would deadlock this thread).
    let mut r = Render::new(Arc::clone(&m), false);
    let mut first = String::new();
    for _ in 0..10 {
        assert!(r.fill(&mut first, 1000));
    }
    for t in ts.iter_mut() {
        t.record(&m, &reply(200, None), false);
        t.record(&m, &icmp_from("10.0.0.1"), false);
        m.lag(Duration::from_micros(10));
    }
    let late = m.target("10.9.9.9:80", &[]);
    m.remove(&ts.pop().unwrap());
    let mut rest = first;
    while r.fill(&mut rest, 1000) {}
    // The scrape lists the targets of its start, with the values read as it went on.
    let fams = parse(&rest, false).unwrap();
    let t = samples(&fams);
    assert!(!rest.contains("10.9.9.9"));
    assert!(rest.contains("10.2.1.249:80"));
    assert_eq!(t["tcpping_targets[]"], 500.0);
    assert_eq!(
        t["tcpping_probes_total[(\"target\", \"10.2.1.249:80\"), (\"verdict\", \"reply\")]"],
        2.0
    );
    // The next scrape: the targets of now.
    let now = text(&m, false);
    assert!(now.contains("10.9.9.9") && !now.contains("10.2.1.249:80"));
    drop(late);
}
