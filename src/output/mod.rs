//! What the user sees of a ping run (one target or many): one sink per format behind
//! [`PingSink`], chosen once by [`reporter`].
//!
//! - [`human`]: ping-style lines for people;
//! - [`json`]: NDJSON events for programs, in `crate::event`'s schema.
//!
//! `trace`'s hop lines, mtr-style table and events are written by `cmd::trace::output`, which
//! reads the trace's own state.

pub mod human;
pub mod json;

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

/// Where the events of a ping run go. Errors are write errors (a closed pipe). The `_tagged`
/// forms are of one of many targets.
pub trait PingSink {
    /// The start of a run: ping's header line, or a `start` event (not with -q).
    fn start_tagged(&mut self, run: &Run, src: Option<IpAddr>, tag: Option<Tag>) -> io::Result<()>;
    /// One ping's verdict, and what it found out about its target (a notice), once.
    fn ping_tagged(&mut self, r: &PingResult, run: &Run, tag: Option<Tag>) -> io::Result<()>;
    /// An ICMP error about none of our pings (shown with -v).
    fn unmatched(&mut self, err: &IcmpError, why: Unmatched) -> io::Result<()>;
    /// The end of a run: its statistics.
    fn end(&mut self, end: &End, tag: Option<Tag>) -> io::Result<()>;

    /// `summary`, of one of many targets.
    fn summary_tagged(
        &mut self,
        run: &Run,
        stats: &Stats,
        icmp: IcmpTally,
        elapsed: Duration,
        tag: Option<Tag>,
    ) -> io::Result<()> {
        let end = End {
            run,
            stats,
            icmp,
            elapsed,
        };
        self.end(&end, tag)
    }

    fn start(&mut self, run: &Run, src: Option<IpAddr>) -> io::Result<()> {
        self.start_tagged(run, src, None)
    }

    fn ping(&mut self, r: &PingResult, run: &Run) -> io::Result<()> {
        self.ping_tagged(r, run, None)
    }

    fn summary(
        &mut self,
        run: &Run,
        s: &Stats,
        icmp: IcmpTally,
        elapsed: Duration,
    ) -> io::Result<()> {
        self.summary_tagged(run, s, icmp, elapsed, None)
    }
}

/// The sink of a run, in its format.
pub type Reporter = Box<dyn PingSink>;

/// The sink for `format`, writing to `out`. `quiet` (-q): only the start line (human) and
/// the summary.
pub fn reporter<W: Write + 'static>(out: W, format: Output, mode: Mode, quiet: bool) -> Reporter {
    match format {
        Output::Human => Box::new(Human { out, mode, quiet }),
        Output::Json => Box::new(Json { out, mode, quiet }),
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
    }
}

/// `n` and the word for it, singular or plural: "1 reply", "2 replies".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
