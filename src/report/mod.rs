//! Pictures of runs: `tcpping-diag report FILE... -o OUT.svg` reads the NDJSON a run wrote
//! (`--json`) and draws it; `--plot OUT.svg` on a ping run (one target or many) draws the run
//! itself.
//!
//! - `events`: the NDJSON read line by line, bounded (the schema is `crate::event`'s);
//! - `hist`, `model`: the streaming model, in bounded memory whatever the run's length;
//! - `draw`: the model as SVG (plotters' SVG backend), every text cleaned;
//! - `png`: the SVG as PNG (resvg);
//! - `file`: where the picture goes, checked at start and written safely at the end.
//!
//! The kind of picture follows from the events: trace events draw a trace; ping events of
//! one target draw that target over time; of several, one row per target.

pub mod draw;
pub mod events;
pub mod file;
pub mod hist;
pub mod model;
pub mod png;

use std::io;
use std::net::IpAddr;
use std::path::Path;

use file::Destination;

use crate::error::Error;
use crate::event::{unix_secs, Icmp, Run, Verdict};
use crate::probe::{PingResult, Status};
use events::{BadLines, Event};
use model::{PingModel, Sample, TargetMeta, TimeBase, TraceModel};

/// Which picture the events make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One target over time.
    Ping,
    /// One row per target.
    Many,
    /// Hops of a trace.
    Trace,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Many => "many targets",
            Kind::Trace => "trace",
        }
    }
}

/// Everything read: both models, and what could not be read.
#[derive(Debug, Default)]
pub struct Report {
    pub ping: PingModel,
    pub trace: TraceModel,
    pub bad: BadLines,
    /// Events read.
    pub events: u64,
}

impl Report {
    pub fn feed(&mut self, ev: Event) {
        match ev {
            Event::Start(s) => self.ping.start_event(&s),
            Event::Ping(p) => self.ping.ping_event(&p),
            Event::Summary(s) => self.ping.summary_event(&s),
            Event::TraceStart(s) => self.trace.start = Some(s),
            Event::Probe(p) => self.trace.probe_event(&p),
            Event::Hop(h) => self.trace.hop_event(&h),
            Event::Trace(t) => self.trace.verdict = Some(t),
            Event::Notice(_) | Event::UnmatchedIcmp(_) | Event::Other => {}
        }
    }

    /// Read one input, streaming.
    pub fn read(&mut self, input: impl io::BufRead, name: &str) -> io::Result<()> {
        self.ping.begin_input();
        let mut bad = std::mem::take(&mut self.bad);
        let n = events::read_events(input, name, &mut bad, |ev| self.feed(ev))?;
        self.bad = bad;
        self.events += n;
        Ok(())
    }

    /// The picture these events make. Err: none, or both pings and a trace.
    pub fn kind(&self) -> Result<Kind, String> {
        let pings = self.ping.targets.iter().filter(|t| t.sent > 0).count();
        match (pings, self.trace.is_empty()) {
            (0, true) => {
                Err("no ping or trace events to draw (expected the NDJSON of --json)".into())
            }
            (0, false) => Ok(Kind::Trace),
            (_, false) => Err("both ping and trace events: report them from separate files".into()),
            (1, true) => Ok(Kind::Ping),
            (_, true) => Ok(Kind::Many),
        }
    }

    /// Notes for the subtitle: what was skipped or guessed.
    pub fn notes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.bad.count > 0 {
            v.push(format!(
                "{} unreadable lines skipped (first: {})",
                self.bad.count,
                self.bad.first.as_deref().unwrap_or("?")
            ));
        }
        if self.ping.bad_times > 0 {
            v.push(bad_times_text(&self.ping));
        }
        if self.ping.skipped + self.trace.skipped > 0 {
            v.push(format!(
                "{} events without a usable seq, ts or hop skipped",
                self.ping.skipped + self.trace.skipped
            ));
        }
        if self.ping.time_bases.len() > 1 {
            v.push("some pings had timestamps and some did not: times are approximate".into());
        }
        v
    }

    /// The SVG.
    pub fn render(&self) -> Result<(Kind, String), Error> {
        let kind = self.kind().map_err(Error::Usage)?;
        let notes = self.notes();
        let svg = match kind {
            Kind::Ping => draw::ping(&self.ping, &notes),
            Kind::Many => draw::many(&self.ping, &notes),
            Kind::Trace => draw::trace(&self.trace, &notes),
        }
        .map_err(|e| Error::Setup(format!("draw the picture: {e}")))?;
        Ok((kind, svg))
    }
}

/// Pings skipped for a nonsense time, in words.
pub fn bad_times_text(m: &PingModel) -> String {
    format!(
        "{} {} with a time beyond ±{:e} s skipped (first: ts {:e})",
        m.bad_times,
        if m.bad_times == 1 { "ping" } else { "pings" },
        model::MAX_TIME,
        m.first_bad_time.unwrap_or(f64::NAN)
    )
}

/// The picture of a live run (`--plot`), of one target or many: fed each result as it
/// comes, drawn at the end. Its destination is checked when it is made (at the run's start).
pub struct Recorder {
    model: PingModel,
    dest: Destination,
    /// Probes of targets beyond `model::MAX_TARGETS`, not drawn.
    skipped: u64,
}

impl Recorder {
    /// The picture of a run of one target. Err: the picture could not be written.
    pub fn new<'r>(
        cfg: impl Into<Run<'r>>,
        src: Option<IpAddr>,
        path: &Path,
    ) -> Result<Recorder, Error> {
        let mut r = Recorder::many(path)?;
        r.start(cfg, src, &[]);
        Ok(r)
    }

    /// The picture of a run of many targets (each added by `start`).
    pub fn many(path: &Path) -> Result<Recorder, Error> {
        Ok(Recorder {
            model: PingModel::default(),
            dest: Destination::check(path)?,
            skipped: 0,
        })
    }

    /// A target starts (`cfg.target_name`, resolved to `cfg.target`), with its labels.
    pub fn start<'r>(
        &mut self,
        cfg: impl Into<Run<'r>>,
        src: Option<IpAddr>,
        labels: &[(String, String)],
    ) {
        let cfg = cfg.into();
        let Some(target) = self.model.target(cfg.target_name) else {
            return;
        };
        let mode = cfg.mode.name();
        let name = labels
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.clone());
        self.model.set_meta(
            target,
            TargetMeta {
                target: cfg.target_name.to_string(),
                name,
                address: Some(cfg.target.to_string()),
                source: src.map(|s| s.to_string()),
                host: crate::net::hostname(),
                mode: Some(mode.into()),
                interval_ms: Some(cfg.interval.as_secs_f64() * 1e3),
                start_ts: Some(unix_secs(std::time::SystemTime::now())),
            },
        );
    }

    /// One ping's result (a run of one target).
    pub fn observe(&mut self, r: &PingResult) {
        if !self.model.targets.is_empty() {
            self.add(0, r);
        }
    }

    /// One ping's result for `target` (as typed; started with `start`).
    pub fn observe_of(&mut self, target: &str, r: &PingResult) {
        match self.model.target(target) {
            Some(i) => self.add(i, r),
            None => self.skipped += 1,
        }
    }

    fn add(&mut self, target: usize, r: &PingResult) {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let icmp = match &r.status {
            Status::Icmp(rep) => Some(Icmp {
                icmp_type: Some(rep.icmp_type),
                code: Some(rep.code),
                from: Some(rep.from.to_string().into()),
                reason: Some(rep.describe().reason.into()),
                ..Icmp::default()
            }),
            _ => None,
        };
        let error = match &r.status {
            Status::Error(e) => Some(e.as_str()),
            _ => None,
        };
        let failure = self.model.categories.of_verdict(
            &Verdict::of(&r.status),
            r.phase == crate::probe::Phase::Echo,
            error,
            icmp.as_ref(),
        );
        let sample = Sample {
            t: unix_secs(r.sent_at),
            connect_ms: ms(r.connect),
            rtt_ms: ms(r.rtt),
            failure,
        };
        self.model.add(target, &sample, TimeBase::Wall);
    }

    /// The SVG: one target over time, or one row per target (None when no ping was made).
    pub fn svg(&self) -> Result<Option<String>, Error> {
        let pinged = self.model.targets.iter().filter(|t| t.sent > 0).count();
        let mut notes = Vec::new();
        if self.skipped > 0 {
            notes.push(format!(
                "{} probes of targets beyond the first {} not drawn",
                self.skipped,
                model::MAX_TARGETS
            ));
        }
        let svg = match pinged {
            0 => return Ok(None),
            1 => draw::ping(&self.model, &notes),
            _ => draw::many(&self.model, &notes),
        };
        svg.map(Some)
            .map_err(|e| Error::Setup(format!("draw the picture: {e}")))
    }

    /// Draw and write the picture (nothing when no ping was made).
    pub fn finish(&self) -> Result<(), Error> {
        match self.svg()? {
            Some(svg) => self.dest.write_svg(&svg).map(|_| ()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(lines: &[&str]) -> Result<(Kind, String), Error> {
        let mut r = Report::default();
        r.read(lines.join("\n").as_bytes(), "t").unwrap();
        r.render()
    }

    fn valid_svg(svg: &str) {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }

    #[test]
    fn extreme_values_draw_without_panicking() {
        let cases: &[&[&str]] = &[
            // Markup in names is escaped.
            &[
                r#"{"type":"start","target":"a<b>&\"c'","host":"<h>","source":"]]>","ts":1.0,"interval_ms":1.0}"#,
                r#"{"type":"ping","seq":1,"ts":1.0,"status":"error","error":"</text><script>"}"#,
                r#"{"type":"ping","seq":2,"ts":2.0,"status":"icmp","icmp":{"type":3,"code":1,"from":"<r>","reason":"&amp;"}}"#,
            ],
            // Huge, tiny, negative and out-of-order numbers.
            &[
                r#"{"type":"start","target":"x:1","ts":-5.0,"interval_ms":1e300}"#,
                r#"{"type":"ping","seq":18446744073709551615,"ts":1e18,"status":"reply","rtt_ms":1e300,"connect_ms":-1}"#,
                r#"{"type":"ping","seq":1,"ts":-1e18,"status":"reply","rtt_ms":0.0,"connect_ms":1e-300}"#,
                r#"{"type":"ping","seq":2,"ts":3.0,"status":"weird"}"#,
            ],
            // Every probe failed, in one instant.
            &[
                r#"{"type":"ping","seq":1,"ts":5.0,"status":"timeout"}"#,
                r#"{"type":"ping","seq":2,"ts":5.0,"status":"refused"}"#,
            ],
            // A trace with nonsense hops and no verdict.
            &[
                r#"{"type":"trace_start","target":"t"}"#,
                r#"{"type":"probe","hop":4000000000,"status":"timeout"}"#,
                r#"{"type":"probe","hop":255,"status":"reached","rtt_ms":1e300,"from":"<x>"}"#,
                r#"{"type":"hop","hop":3,"routers":[],"sent":0,"received":9,"loss_pct":-50}"#,
            ],
            &[
                r#"{"type":"trace","verdict":"not_reached","hops":4000000000,"break_hop":4000000000}"#,
            ],
        ];
        for lines in cases {
            let (_, svg) = render(lines).unwrap_or_else(|e| panic!("{lines:?}: {e}"));
            valid_svg(&svg);
        }
        let svg = render(cases[0]).unwrap().1;
        assert!(svg.contains("a&lt;b&gt;&amp;"), "names are escaped");
    }

    #[test]
    fn the_kind_follows_from_the_events() {
        let one = r#"{"type":"ping","target":"a","seq":1,"ts":1.0,"status":"reply","rtt_ms":1}"#;
        let two = r#"{"type":"ping","target":"b","seq":1,"ts":1.0,"status":"reply","rtt_ms":1}"#;
        let hop = r#"{"type":"probe","hop":1,"status":"timeout"}"#;
        assert_eq!(render(&[one]).unwrap().0, Kind::Ping);
        assert_eq!(render(&[one, two]).unwrap().0, Kind::Many);
        assert_eq!(render(&[hop]).unwrap().0, Kind::Trace);
        let e = render(&[one, hop]).unwrap_err().to_string();
        assert!(e.contains("both ping and trace"), "{e}");
        let e = render(&["", "{\"type\":\"summary\"}"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no ping or trace events"), "{e}");
    }

    /// Control characters, non-characters and markup in every text field of every kind of
    /// picture: each SVG parses as XML, and none of them reaches it.
    #[test]
    fn hostile_text_in_every_field_makes_well_formed_svg() {
        // C0, DEL, C1 (NEL), U+FFFE, U+FFFF, a tab and a newline, and markup.
        let h = r#"x\u0000\u0001\u0007\u001b[31m\u007f\u0085\u009f\ufffe\uffff\t\n<&>\"'y"#;
        let ping = format!(
            r#"{{"type":"start","target":"{h}","address":"{h}","source":"{h}","host":"{h}","mode":"{h}","ts":1.0,"interval_ms":1.0,"labels":{{"name":"{h}"}}}}"#
        );
        let pings = [
            format!(r#"{{"type":"ping","seq":1,"ts":1.0,"status":"error","error":"{h}"}}"#),
            format!(
                r#"{{"type":"ping","seq":2,"ts":2.0,"status":"icmp","icmp":{{"type":3,"code":13,"from":"{h}","reason":"{h}"}}}}"#
            ),
            format!(r#"{{"type":"ping","seq":3,"ts":3.0,"status":"{h}"}}"#),
            r#"{"type":"ping","seq":4,"ts":4.0,"status":"reply","rtt_ms":1.0}"#.to_string(),
        ];
        let other = format!(
            r#"{{"type":"ping","target":"{h}2","labels":{{"name":"{h}2"}},"seq":1,"ts":1.5,"status":"reply","rtt_ms":2.0}}"#
        );
        let trace = [
            format!(
                r#"{{"type":"trace_start","target":"{h}","address":"{h}","source":"{h}","host":"{h}","ts":1.0}}"#
            ),
            format!(
                r#"{{"type":"probe","hop":1,"status":"time_exceeded","from":"{h}","rtt_ms":0.5,"icmp":{{"type":11,"code":0,"reason":"{h}"}}}}"#
            ),
            format!(r#"{{"type":"probe","hop":2,"status":"{h}","from":"{h}"}}"#),
            format!(r#"{{"type":"hop","hop":1,"routers":["{h}"],"sent":1,"received":1}}"#),
            format!(
                r#"{{"type":"trace","verdict":"{h}","hops":2,"break_hop":2,"break_router":"{h}","text":"{h}"}}"#
            ),
        ];
        let one: Vec<&str> = std::iter::once(ping.as_str())
            .chain(pings.iter().map(String::as_str))
            .collect();
        let mut many = one.clone();
        many.push(&other);
        let trace: Vec<&str> = trace.iter().map(String::as_str).collect();
        for (lines, kind) in [(one, Kind::Ping), (many, Kind::Many), (trace, Kind::Trace)] {
            let (k, svg) = render(&lines).unwrap();
            assert_eq!(k, kind);
            valid_svg(&svg);
            let bad: Vec<char> = svg
                .chars()
                .filter(|&c| (c.is_control() && c != '\n') || c == '\u{FFFE}' || c == '\u{FFFF}')
                .collect();
            assert!(bad.is_empty(), "{kind:?}: {bad:?} in the SVG");
            assert!(
                svg.contains("x\u{FFFD}\u{FFFD}"),
                "{kind:?}: control characters are shown as U+FFFD"
            );
            assert!(
                svg.contains("&lt;&amp;&gt;&quot;&apos;y"),
                "{kind:?}: markup escaped"
            );
        }
    }

    /// Pings at nonsense times are skipped and counted (they made the time axis loop
    /// forever); the others are drawn.
    #[test]
    fn nonsense_times_are_skipped_and_counted() {
        let lines = [
            r#"{"type":"ping","seq":1,"ts":-1e308,"status":"reply","rtt_ms":1.0}"#,
            r#"{"type":"ping","seq":2,"ts":1e308,"status":"reply","rtt_ms":1.0}"#,
            r#"{"type":"ping","seq":3,"ts":100.0,"status":"reply","rtt_ms":1.0}"#,
            r#"{"type":"ping","seq":4,"ts":101.0,"status":"reply","rtt_ms":1.0}"#,
        ];
        let mut r = Report::default();
        r.read(lines.join("\n").as_bytes(), "t").unwrap();
        assert_eq!(r.ping.bad_times, 2);
        assert_eq!(r.ping.targets[0].sent, 2);
        let notes = r.notes().join("\n");
        assert!(
            notes.contains("2 pings with a time beyond ±1e12 s skipped (first: ts -1e308)"),
            "{notes}"
        );
        let (_, svg) = r.render().unwrap();
        valid_svg(&svg);
        // All of them nonsense: nothing to draw, said so.
        let e = render(&lines[..2]).unwrap_err().to_string();
        assert!(e.contains("no ping or trace events"), "{e}");
    }
}
