//! The event schema: every NDJSON event a run writes (`--json`) and `report` reads back, as
//! types that are both `Serialize` (the JSON sinks: `output::json`, `output::trace::json`)
//! and `Deserialize` (`report`).
//! Here too: the one place a verdict gets its name ([`Verdict`] for pings, [`ProbeStatus`]
//! for trace probes), and the units of the numbers written ([`ms`], [`round3`],
//! [`unix_secs`]).
//!
//! - [`ping`]: `start`, `ping`, `notice`, `summary`, `unmatched_icmp` (ping and many
//!   targets; README "JSON output");
//! - [`trace`]: `trace_start`, `probe`, `hop`, `trace`.
//!
//! Reading is tolerant, as files of older versions and hand-made ones must be read: every
//! field `report` reads is optional and typed loosely (addresses are text); the fields it
//! does not read are `skip_deserializing`, so a field of an unexpected shape there never
//! makes a line unreadable. Writing gives the same bytes as ever: field order, `null`s and
//! omitted fields are part of the schema (tests/client.rs, tests/trace.rs check them).
//! Events `report` does not draw (`notice`, `unmatched_icmp`) read as [`Event::Other`].

pub mod ping;
pub mod trace;

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use ping::{Icmp, Notice, Ping, Start, Summary, Unmatched};
pub use trace::{Change, Hop, Probe, Router, SynAck, Trace, TraceMtu, TraceStart};

use crate::probe::syn::Flow;
use crate::probe::{Mode, Status};

/// What a ping run is, as its start event, its lines and its picture describe it: one
/// target's part of the command's config (`From<&cli::ClientConfig>`).
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    /// The target as typed.
    pub target_name: &'a str,
    pub target: std::net::SocketAddr,
    pub mode: Mode,
    pub flow: Flow,
    /// None: until interrupted.
    pub count: Option<u64>,
    pub interval: Duration,
    pub timeout: Duration,
    /// The requests' size (`-s`) and Don't Fragment (`-M`).
    pub shape: crate::probe::Shape,
}

impl<'a> From<&Run<'a>> for Run<'a> {
    fn from(r: &Run<'a>) -> Self {
        *r
    }
}

/// Milliseconds, rounded to the microsecond (ping events).
pub fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e3)
}

/// Milliseconds from the duration's microseconds, rounded (trace events). It differs from
/// [`ms`] only on exact half-microsecond ties (floating point), so each kind of event keeps
/// the rounding it always had.
pub fn us_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Three decimals: milliseconds with microsecond resolution, percentages.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Seconds since the Unix epoch, µs resolution (`ts` of every event).
pub fn unix_secs(t: SystemTime) -> f64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// Text of an event: borrowed when written, owned when read.
pub type Text<'a> = Cow<'a, str>;

/// The verdict of a ping, as events, metrics and pictures name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Reply,
    Lost,
    Timeout,
    Refused,
    Icmp,
    Error,
    /// Ctrl-C or SIGTERM came first: not a verdict of the target.
    Interrupted,
    /// A name this version does not know (read from a file).
    Unknown(String),
}

impl Verdict {
    /// The verdicts of the target, in the order metrics count them (`interrupted` is not
    /// one).
    pub const COUNTED: [Verdict; 6] = [
        Verdict::Reply,
        Verdict::Lost,
        Verdict::Timeout,
        Verdict::Refused,
        Verdict::Icmp,
        Verdict::Error,
    ];

    pub fn of(s: &Status) -> Verdict {
        match s {
            Status::Reply => Verdict::Reply,
            Status::Lost => Verdict::Lost,
            Status::Timeout => Verdict::Timeout,
            Status::Refused => Verdict::Refused,
            Status::Icmp(_) => Verdict::Icmp,
            Status::Error(_) => Verdict::Error,
            Status::Interrupted => Verdict::Interrupted,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Verdict::Reply => "reply",
            Verdict::Lost => "lost",
            Verdict::Timeout => "timeout",
            Verdict::Refused => "refused",
            Verdict::Icmp => "icmp",
            Verdict::Error => "error",
            Verdict::Interrupted => "interrupted",
            Verdict::Unknown(s) => s,
        }
    }

    pub fn from_name(s: &str) -> Verdict {
        let known = Self::COUNTED.into_iter().chain([Verdict::Interrupted]);
        known
            .into_iter()
            .find(|v| v.name() == s)
            .unwrap_or_else(|| Verdict::Unknown(s.to_string()))
    }
}

/// What answered one trace probe, as its `probe` event says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProbeStatus {
    /// ICMP time exceeded: a router on the way.
    TimeExceeded,
    /// The target: SYN-ACK or RST.
    Reached,
    /// Another ICMP error: the path ends there.
    Unreachable,
    Timeout,
    /// The probe failed on our side.
    Error,
    /// A name this version does not know (read from a file).
    Unknown(String),
}

impl ProbeStatus {
    const KNOWN: [ProbeStatus; 5] = [
        ProbeStatus::TimeExceeded,
        ProbeStatus::Reached,
        ProbeStatus::Unreachable,
        ProbeStatus::Timeout,
        ProbeStatus::Error,
    ];

    pub fn name(&self) -> &str {
        match self {
            ProbeStatus::TimeExceeded => "time_exceeded",
            ProbeStatus::Reached => "reached",
            ProbeStatus::Unreachable => "unreachable",
            ProbeStatus::Timeout => "timeout",
            ProbeStatus::Error => "error",
            ProbeStatus::Unknown(s) => s,
        }
    }

    pub fn from_name(s: &str) -> ProbeStatus {
        Self::KNOWN
            .into_iter()
            .find(|v| v.name() == s)
            .unwrap_or_else(|| ProbeStatus::Unknown(s.to_string()))
    }
}

/// Verdict names are written and read as their `name()`.
macro_rules! by_name {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from_name(&Cow::<str>::deserialize(d)?))
            }
        }
    };
}
by_name!(Verdict);
by_name!(ProbeStatus);

/// A verdict reads as its name (`status.as_deref() == Some("reply")`).
impl std::ops::Deref for Verdict {
    type Target = str;
    fn deref(&self) -> &str {
        self.name()
    }
}

impl std::ops::Deref for ProbeStatus {
    type Target = str;
    fn deref(&self) -> &str {
        self.name()
    }
}

/// A target's labels (`"labels": {"name": "db1", ...}`), in the order of the targets file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels<'a>(pub Cow<'a, [(String, String)]>);

impl Labels<'_> {
    /// The value of `key` (the last one, if a file names it twice).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl std::ops::Index<&str> for Labels<'_> {
    type Output = String;
    fn index(&self, key: &str) -> &String {
        let found = self.0.iter().rev().find(|(k, _)| k == key);
        &found.expect("no such label").1
    }
}

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Labels<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels(Cow::Owned(map.into_iter().collect())))
    }
}

/// Every event, tagged by `"type"`. Events this version does not know read as `Other`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    Start(Start<'a>),
    Ping(Ping<'a>),
    /// Not read back: read as `Other`.
    #[serde(skip_deserializing)]
    Notice(Notice<'a>),
    Summary(Summary<'a>),
    /// Not read back: read as `Other`.
    #[serde(skip_deserializing)]
    UnmatchedIcmp(Unmatched<'a>),
    TraceStart(TraceStart<'a>),
    Probe(Probe<'a>),
    Hop(Hop<'a>),
    Trace(Trace<'a>),
    /// Any other type (future events): skipped.
    #[serde(other)]
    Other,
}

impl Event<'_> {
    /// One line of NDJSON.
    pub fn write_line(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a `ping` event, as README "JSON output" documents them, and read back.
    #[test]
    fn a_ping_event_is_written_as_documented_and_read_back() {
        let ev = Event::Ping(Ping {
            seq: Some(2),
            probe: "connect",
            ts: Some(1764460801.123498),
            status: Some(Verdict::Icmp),
            phase: Some("connect".into()),
            local_port: Some(40125),
            icmp: Some(Icmp {
                icmp_type: Some(3),
                code: Some(1),
                from: Some("10.77.1.1".into()),
                reason: Some("destination host unreachable".into()),
                after_ms: Some(ms(Duration::from_micros(410))),
                phase: Some("connect"),
                source: Some("raw"),
                ..Icmp::default()
            }),
            ..Ping::default()
        });
        let mut line = Vec::new();
        ev.write_line(&mut line).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            r#"{"type":"ping","seq":2,"probe":"connect","ts":1764460801.123498,"status":"icmp","phase":"connect","connect_ms":null,"rtt_ms":null,"connect_user_ms":null,"rtt_user_ms":null,"connect_clock":null,"rtt_clock":null,"local_port":40125,"error":null,"icmp":{"type":3,"code":1,"from":"10.77.1.1","reason":"destination host unreachable","after_ms":0.41,"phase":"connect","source":"raw"}}"#.to_string() + "\n"
        );
        match serde_json::from_str::<Event>(&text).unwrap() {
            Event::Ping(p) => {
                assert_eq!(p.status, Some(Verdict::Icmp));
                assert_eq!(p.icmp.unwrap().from.as_deref(), Some("10.77.1.1"));
                assert_eq!(
                    p.local_port, None,
                    "fields report does not read are skipped"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in Verdict::COUNTED.into_iter().chain([Verdict::Interrupted]) {
            assert_eq!(Verdict::from_name(v.name()), v);
        }
        assert_eq!(
            Verdict::from_name("weird"),
            Verdict::Unknown("weird".into())
        );
        for v in ProbeStatus::KNOWN {
            assert_eq!(ProbeStatus::from_name(v.name()), v);
        }
    }
}
