//! What the user sees of a run: one sink per format, chosen once.
//!
//! - ping and many targets, behind [`PingSink`] ([`Reporter::new`] chooses): [`human`],
//!   ping-style lines for people; [`json`], NDJSON events for programs, in `crate::event`'s
//!   schema;
//! - [`trace`], behind `TraceSink` (`TraceWriter::new` chooses): traceroute-style hop lines
//!   and an mtr-style report, or NDJSON events.

pub mod human;
pub mod json;
pub mod trace;

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

use crate::event::{Labels, Run};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::probe::{IcmpTally, Mode, Notice, PingResult};
use crate::stats::Stats;

pub use human::Human;
pub use json::Json;

/// How results are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Lines as ping writes them.
    Human,
    /// NDJSON events.
    Json,
}

/// In a run of many targets: the target an event is about (as typed) and its labels. JSON
/// events get `"target"` and `"labels"`; human lines start with the target.
#[derive(Clone, Copy, Debug)]
pub struct Tag<'a> {
    pub target: &'a str,
    pub labels: &'a [(String, String)],
}

impl<'a> Tag<'a> {
    fn labels(self) -> Labels<'a> {
        Labels(Cow::Borrowed(self.labels))
    }
}

/// The end of a run, as its summary tells it.
pub struct End<'a> {
    pub run: &'a Run<'a>,
    pub stats: &'a Stats,
    /// ICMP errors about none of the run's pings.
    pub icmp: IcmpTally,
    pub elapsed: Duration,
}

/// Where the events of a ping run go. Errors are write errors (a closed pipe). `tag`: the
/// target of one of many.
pub trait PingSink {
    /// The start of a run: ping's header line, or a `start` event (not with -q).
    fn start_tagged(&mut self, run: &Run, src: Option<IpAddr>, tag: Option<Tag>) -> io::Result<()>;
    /// One ping's verdict, and what it found out about its target (a notice), once.
    fn ping_tagged(&mut self, r: &PingResult, run: &Run, tag: Option<Tag>) -> io::Result<()>;
    /// An ICMP error about none of our pings (shown with -v).
    fn unmatched(&mut self, err: &IcmpError, why: Unmatched) -> io::Result<()>;
    /// The end of a run: its statistics.
    fn end(&mut self, end: &End, tag: Option<Tag>) -> io::Result<()>;
}

/// How a ping run is written: the format, the probe kind, and -q (only the start line
/// (human) and the summary).
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub format: Output,
    pub mode: Mode,
    pub quiet: bool,
}

/// The sink of a run, in its format, writing to `W`.
pub struct Reporter<W: Write> {
    sink: Sink<W>,
}

enum Sink<W: Write> {
    Human(Human<W>),
    Json(Json<W>),
}

impl<W: Write> Reporter<W> {
    pub fn new(out: W, style: impl Into<Style>) -> Self {
        let Style {
            format,
            mode,
            quiet,
        } = style.into();
        let sink = match format {
            Output::Human => Sink::Human(Human { out, mode, quiet }),
            Output::Json => Sink::Json(Json { out, mode, quiet }),
        };
        Reporter { sink }
    }

    fn sink(&mut self) -> &mut dyn PingSink {
        match &mut self.sink {
            Sink::Human(h) => h,
            Sink::Json(j) => j,
        }
    }

    pub fn start<'r>(&mut self, run: impl Into<Run<'r>>, src: Option<IpAddr>) -> io::Result<()> {
        self.sink().start_tagged(&run.into(), src, None)
    }

    pub fn start_tagged<'r>(
        &mut self,
        run: impl Into<Run<'r>>,
        src: Option<IpAddr>,
        tag: Option<Tag>,
    ) -> io::Result<()> {
        self.sink().start_tagged(&run.into(), src, tag)
    }

    pub fn ping<'r>(&mut self, r: &PingResult, run: impl Into<Run<'r>>) -> io::Result<()> {
        self.sink().ping_tagged(r, &run.into(), None)
    }

    pub fn ping_tagged<'r>(
        &mut self,
        r: &PingResult,
        run: impl Into<Run<'r>>,
        tag: Option<Tag>,
    ) -> io::Result<()> {
        self.sink().ping_tagged(r, &run.into(), tag)
    }

    pub fn unmatched(&mut self, err: &IcmpError, why: Unmatched) -> io::Result<()> {
        self.sink().unmatched(err, why)
    }

    pub fn summary<'r>(
        &mut self,
        run: impl Into<Run<'r>>,
        stats: &Stats,
        icmp: IcmpTally,
        elapsed: Duration,
    ) -> io::Result<()> {
        self.summary_tagged(run, stats, icmp, elapsed, None)
    }

    pub fn summary_tagged<'r>(
        &mut self,
        run: impl Into<Run<'r>>,
        stats: &Stats,
        icmp: IcmpTally,
        elapsed: Duration,
        tag: Option<Tag>,
    ) -> io::Result<()> {
        let run = run.into();
        let end = End {
            run: &run,
            stats,
            icmp,
            elapsed,
        };
        self.sink().end(&end, tag)
    }
}

/// The words of a notice about `name` (as typed).
pub fn notice_text(n: &Notice, name: &str, timeout: Duration) -> String {
    let now = "timing the handshake of its pings from now on, as --connect-only (--echo makes \
               such answers errors)";
    match n {
        Notice::NotEcho { saw: Some(saw) } => {
            format!("{name} does not speak the echo protocol: it sent \"{saw}\"; {now}")
        }
        Notice::NotEcho { saw: None } => format!(
            "{name} closed the connection after the request without answering: not an echo \
             server; {now}"
        ),
        Notice::NoEcho => format!(
            "{name} accepted the connection but sent nothing within {} ms: if it is not an \
             echo server, --connect-only or --syn time the handshake",
            timeout.as_millis()
        ),
        Notice::BlackHole { size, small } => format!(
            "{name}: large segments ({size} bytes) time out while {small}-byte pings pass: a \
             path MTU black hole; no ICMP 'packet too big' came back"
        ),
    }
}

/// `n` and the word for it, singular or plural: "1 reply", "2 replies".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
