//! The exposition, written from the model a part at a time ([`Render::fill`]), so that the
//! endpoint can send it as the client reads: a scrape of 50,000 targets never holds the
//! whole text, and holds no lock between two parts (a [`Render`] owns only `Arc`s: the
//! list of targets taken when the scrape began, and the model whose atomics it reads).
//!
//! Prometheus text 0.0.4, or OpenMetrics 1.0 (`# UNIT`, counters' `# TYPE` without
//! `_total`, `# EOF`), as prometheus-client writes them: the same names, help, label order
//! (`target`, the file's labels, then the metric's), number formats (`le` of the 0.0.4
//! format as Go's clients write it: `2.5e-05`); the tests compare both. A family without
//! series is left out, header included.

use std::fmt::Write as _;
use std::sync::Arc;

use super::{AtomicHistogram, Cell, Histograms, Metrics};
use crate::event::Verdict;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family: its name (with its unit), help, type, and whether it has a series per
/// target.
struct Family {
    name: &'static str,
    unit: Option<&'static str>,
    help: &'static str,
    kind: Kind,
}

const fn family(
    name: &'static str,
    unit: Option<&'static str>,
    kind: Kind,
    help: &'static str,
) -> Family {
    Family {
        name,
        unit,
        help,
        kind,
    }
}

const SECONDS: Option<&str> = Some("seconds");

/// The families, in the order of the exposition.
const FAMILIES: [Family; 11] = [
    family("tcpping_probes", None, Kind::Counter, "Probes concluded, by verdict (reply, lost, timeout, refused, icmp, error)."),
    family("tcpping_icmp_errors", None, Kind::Counter, "ICMP errors matched to a probe, by ICMP type, code and reporting router."),
    family("tcpping_rtt_seconds", SECONDS, Kind::Histogram, "Round trip of answered probes: request to echo; the handshake for --syn, --connect-only and targets that do not echo."),
    family("tcpping_connect_seconds", SECONDS, Kind::Histogram, "TCP handshake of probes that also wait for an echo (connect probes of an echo server, without --connect-only)."),
    family("tcpping_last_rtt_seconds", SECONDS, Kind::Gauge, "Round trip of the last answered probe."),
    family("tcpping_last_success", None, Kind::Gauge, "1 when the last probe was answered, 0 when it was not."),
    family("tcpping_target_resolved", None, Kind::Gauge, "1 once the target's name resolved (it is being probed), 0 while it is retried."),
    family("tcpping_send_lag_seconds", SECONDS, Kind::Histogram, "How late probes left compared with their schedule."),
    family("tcpping_targets", None, Kind::Gauge, "Targets being monitored."),
    family("tcpping_icmp_unmatched", None, Kind::Counter, "ICMP errors that quote none of our probes (other programs, spoofed)."),
    family("tcpping_icmp_late", None, Kind::Counter, "ICMP errors that quote a probe of ours that had already ended."),
];
const PROBES: usize = 0;
const ICMP: usize = 1;
const RTT: usize = 2;
const CONNECT: usize = 3;
const LAST_RTT: usize = 4;
const LAST_SUCCESS: usize = 5;
const RESOLVED: usize = 6;
const LAG: usize = 7;
const TARGETS: usize = 8;
const UNMATCHED: usize = 9;
const LATE: usize = 10;
/// After the families: OpenMetrics' `# EOF`, then the end.
const EOF: usize = FAMILIES.len();

/// The `verdict` labels, sorted (series are listed in label order), with their index in
/// `Verdict::COUNTED`.
fn verdicts_sorted() -> [(&'static str, usize); 6] {
    let mut v: [(&'static str, usize); 6] = std::array::from_fn(|i| {
        let name = match Verdict::COUNTED[i] {
            Verdict::Reply => "reply",
            Verdict::Lost => "lost",
            Verdict::Timeout => "timeout",
            Verdict::Refused => "refused",
            Verdict::Icmp => "icmp",
            _ => "error",
        };
        (name, i)
    });
    v.sort();
    v
}

/// An `le` label: in the 0.0.4 format as Go's clients write it (whole numbers below 1e6 as
/// integers, an exponent of two digits at least outside [1e-4, 1e6)); in OpenMetrics as
/// prometheus-client writes it (shortest digits, `1.0`).
pub fn le_label(v: f64, openmetrics: bool) -> String {
    if openmetrics {
        return dtoa::Buffer::new().format(v).to_string();
    }
    if !v.is_finite() {
        return non_finite(v).to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e6 {
        return (v as i64).to_string();
    }
    if (1e-4..1e6).contains(&v.abs()) {
        return v.to_string();
    }
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}e{e:+03}")
        }
        None => s,
    }
}

fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

/// A sample's value.
enum Value {
    U64(u64),
    F64(f64),
}

/// One scrape's exposition, written a part at a time.
pub struct Render {
    m: Arc<Metrics>,
    cells: Arc<[Arc<Cell>]>,
    om: bool,
    /// The family being written, and the next target in it.
    step: usize,
    at: usize,
    /// Whether the family's header is written.
    head: bool,
    /// `le` labels of the RTT and lag buckets, in this format.
    rtt_le: Vec<String>,
    lag_le: Vec<String>,
    verdicts: [(&'static str, usize); 6],
}

impl Render {
    /// A scrape of `m` in OpenMetrics (`openmetrics`) or Prometheus text: the targets are
    /// those of this moment; the values are read as each part is written.
    pub fn new(m: Arc<Metrics>, openmetrics: bool) -> Render {
        let cells = m.cells();
        let les = |b: &[f64]| b.iter().map(|v| le_label(*v, openmetrics)).collect();
        Render {
            rtt_le: les(&super::RTT_BUCKETS),
            lag_le: les(&super::LAG_BUCKETS),
            m,
            cells,
            om: openmetrics,
            step: 0,
            at: 0,
            head: false,
            verdicts: verdicts_sorted(),
        }
    }

    /// Append the next part of the exposition to `out`: whole lines, at least one
    /// target's series of the family under way, until `want` bytes or more were appended.
    /// Returns false (nothing appended) once the exposition is complete.
    pub fn fill(&mut self, out: &mut String, want: usize) -> bool {
        let start = out.len();
        loop {
            if self.step > EOF {
                return out.len() > start;
            }
            if self.step == EOF {
                if self.om {
                    out.push_str("# EOF\n");
                }
                self.step += 1;
                continue;
            }
            if self.per_target() {
                let cells = Arc::clone(&self.cells);
                while let Some(c) = cells.get(self.at) {
                    self.at += 1;
                    self.target_series(c, out);
                    if out.len() - start >= want {
                        return true;
                    }
                }
            } else {
                self.run_series(out);
            }
            self.step += 1;
            self.at = 0;
            self.head = false;
        }
    }

    /// Whether the family under way has a series per target.
    fn per_target(&self) -> bool {
        match self.step {
            PROBES | ICMP | LAST_RTT | LAST_SUCCESS | RESOLVED => true,
            RTT | CONNECT => self.m.histograms() == Histograms::PerTarget,
            _ => false,
        }
    }

    /// The series of target `c` in the family under way.
    fn target_series(&mut self, c: &Cell, out: &mut String) {
        match self.step {
            PROBES => {
                let n = c.probes();
                for (name, i) in self.verdicts {
                    self.sample(out, "", Some(c), &[("verdict", name)], Value::U64(n[i]));
                }
            }
            ICMP => {
                for ((t, code, router), n) in c.icmp() {
                    let l = [("type", t.as_str()), ("code", &code), ("router", &router)];
                    self.sample(out, "", Some(c), &l, Value::U64(n));
                }
            }
            RTT => self.histogram(out, Some(c), c.rtt()),
            CONNECT => self.histogram(out, Some(c), c.connect()),
            LAST_RTT => {
                if let Some(v) = c.last_rtt() {
                    self.sample(out, "", Some(c), &[], Value::F64(v));
                }
            }
            LAST_SUCCESS => {
                if let Some(ok) = c.last_success() {
                    self.sample(out, "", Some(c), &[], Value::U64(u64::from(ok)));
                }
            }
            RESOLVED => {
                let v = u64::from(c.resolved());
                self.sample(out, "", Some(c), &[], Value::U64(v));
            }
            _ => {}
        }
    }

    /// The run's own series of the family under way (no `target`).
    fn run_series(&mut self, out: &mut String) {
        let m = Arc::clone(&self.m);
        match self.step {
            RTT => self.histogram(out, None, Some(&m.rtt)),
            CONNECT => self.histogram(out, None, Some(&m.connect)),
            LAG => self.histogram(out, None, Some(&m.lag)),
            TARGETS => self.sample(out, "", None, &[], Value::U64(self.cells.len() as u64)),
            UNMATCHED => {
                let v = m.unmatched.load(std::sync::atomic::Ordering::Relaxed);
                self.sample(out, "", None, &[], Value::U64(v));
            }
            LATE => {
                let v = m.late.load(std::sync::atomic::Ordering::Relaxed);
                self.sample(out, "", None, &[], Value::U64(v));
            }
            _ => {}
        }
    }

    /// A histogram's series; none before its first observation (but the send lag's).
    fn histogram(&mut self, out: &mut String, c: Option<&Cell>, h: Option<&AtomicHistogram>) {
        let Some(h) = h else {
            return;
        };
        let v = h.read();
        if v.count == 0 && self.step != LAG {
            return;
        }
        let les = std::mem::take(if self.step == LAG {
            &mut self.lag_le
        } else {
            &mut self.rtt_le
        });
        for (le, n) in les.iter().zip(&v.cumulative) {
            self.sample(out, "_bucket", c, &[("le", le)], Value::U64(*n));
        }
        *(if self.step == LAG {
            &mut self.lag_le
        } else {
            &mut self.rtt_le
        }) = les;
        self.sample(out, "_bucket", c, &[("le", "+Inf")], Value::U64(v.count));
        self.sample(out, "_sum", c, &[], Value::F64(v.sum_secs));
        self.sample(out, "_count", c, &[], Value::U64(v.count));
    }

    /// The family's header, before its first series.
    fn header(&mut self, out: &mut String) {
        if self.head {
            return;
        }
        self.head = true;
        let f = &FAMILIES[self.step];
        let total = if !self.om && f.kind == Kind::Counter {
            "_total"
        } else {
            ""
        };
        let _ = writeln!(out, "# HELP {}{total} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {}{total} {}", f.name, f.kind.name());
        if let (true, Some(u)) = (self.om, f.unit) {
            let _ = writeln!(out, "# UNIT {} {u}", f.name);
        }
    }

    /// One sample line: the family's name with `suffix` (`_total` added for counters), the
    /// target's labels (if any) then `extra`, and the value.
    fn sample(
        &mut self,
        out: &mut String,
        suffix: &str,
        c: Option<&Cell>,
        extra: &[(&str, &str)],
        v: Value,
    ) {
        self.header(out);
        let f = &FAMILIES[self.step];
        out.push_str(f.name);
        if f.kind == Kind::Counter {
            out.push_str("_total");
        }
        out.push_str(suffix);
        let mut open = false;
        if let Some(c) = c {
            out.push('{');
            out.push_str(&c.labels_text);
            open = true;
        }
        for (k, v) in extra {
            out.push(if open { ',' } else { '{' });
            open = true;
            label(out, k, v);
        }
        if open {
            out.push('}');
        }
        out.push(' ');
        match v {
            Value::U64(n) => out.push_str(itoa::Buffer::new().format(n)),
            Value::F64(x) if x.is_finite() => out.push_str(dtoa::Buffer::new().format_finite(x)),
            Value::F64(x) => out.push_str(non_finite(x)),
        }
        out.push('\n');
    }
}

/// `k="v"`, the value escaped: `\` `"` and line feeds.
fn label(out: &mut String, k: &str, v: &str) {
    out.push_str(k);
    out.push_str("=\"");
    if v.contains(['\\', '"', '\n']) {
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
    } else {
        out.push_str(v);
    }
    out.push('"');
}

/// A target's labels as every one of its samples starts them: `target="…"`, then the
/// file's, comma-separated, escaped.
pub fn labels_text(name: &str, labels: &[(String, String)]) -> String {
    let mut s = String::new();
    label(&mut s, "target", name);
    for (k, v) in labels {
        s.push(',');
        label(&mut s, k, v);
    }
    s
}

/// The families' names (as registered with prometheus-client: without `_total`) and help,
/// for the tests' comparison with it.
#[cfg(test)]
pub(super) fn tests_families() -> Vec<(&'static str, &'static str)> {
    FAMILIES
        .iter()
        .map(|f| {
            let base = match f.unit {
                Some(u) => f.name.strip_suffix(u).and_then(|n| n.strip_suffix('_')),
                None => None,
            };
            (base.unwrap_or(f.name), f.help)
        })
        .collect()
}
