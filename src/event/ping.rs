//! The events of a ping run, of one target or many (README "JSON output"): `start`, one
//! `ping` per probe, a `notice` when a probe finds something out about its target, the
//! `summary`, and with -v an `unmatched_icmp` per ICMP error about none of our probes.
//! With many targets, each event but `unmatched_icmp` carries `target` and `labels`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{Labels, Text, Verdict};

/// The start of a run (of each target, with many).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Start<'a> {
    pub target: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels<'a>>,
    pub address: Option<Text<'a>>,
    pub source: Option<Text<'a>>,
    pub host: Option<Text<'a>>,
    /// "syn" or "connect".
    #[serde(skip_deserializing)]
    pub probe: &'a str,
    pub mode: Option<Text<'a>>,
    pub count: Option<u64>,
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    /// `-s`: the requests' size, and `-M` with it (absent without `-s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmtud: Option<Text<'a>>,
    pub ts: Option<f64>,
}

/// An ICMP error: of a ping (with `after_ms`, `phase`, `source`), a row of a summary (with
/// `count`), of a trace probe or verdict (type, code and reason only).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Icmp<'a> {
    #[serde(rename = "type")]
    pub icmp_type: Option<u8>,
    pub code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Text<'a>>,
    pub reason: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub after_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub phase: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub count: Option<u64>,
}

/// One probe's verdict.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ping<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels<'a>>,
    pub seq: Option<u64>,
    #[serde(skip_deserializing)]
    pub probe: &'a str,
    /// When the ping started: seconds since the Unix epoch, µs resolution.
    pub ts: Option<f64>,
    pub status: Option<Verdict>,
    /// Where the ping was when it concluded: `connect` (the handshake) or `echo` (older
    /// files have none).
    pub phase: Option<Text<'a>>,
    pub connect_ms: Option<f64>,
    pub rtt_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub connect_user_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_user_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub connect_clock: Option<&'a str>,
    #[serde(skip_deserializing)]
    pub rtt_clock: Option<&'a str>,
    #[serde(skip_deserializing)]
    pub local_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub tcp_seq: Option<u32>,
    /// What answered a SYN probe: `syn-ack`, `rst`, or `ack` (see `probe::syn`).
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub answer: Option<&'a str>,
    pub error: Option<Text<'a>>,
    pub icmp: Option<Icmp<'a>>,
}

/// What a ping found out about its target, once. Not read back.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Notice<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels<'a>>,
    /// The ping that found it out.
    pub seq: u64,
    /// `not_echo` or `no_echo`.
    #[serde(rename = "kind")]
    pub what: &'a str,
    /// What the target sent (escaped, cut short); null when it sent nothing.
    pub saw: Option<&'a str>,
    /// The target's pings from now on: `connect-only` or `echo`.
    pub now: &'a str,
    pub message: String,
}

/// The end of a run (of each target).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary<'a> {
    pub target: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels<'a>>,
    pub address: Option<Text<'a>>,
    // The figures, not read back.
    #[serde(skip_deserializing)]
    pub sent: u64,
    #[serde(skip_deserializing)]
    pub received: u64,
    #[serde(skip_deserializing)]
    pub lost: u64,
    #[serde(skip_deserializing)]
    pub timeout: u64,
    #[serde(skip_deserializing)]
    pub refused: u64,
    #[serde(skip_deserializing)]
    pub icmp: u64,
    #[serde(skip_deserializing)]
    pub error: u64,
    #[serde(skip_deserializing)]
    pub interrupted: u64,
    #[serde(skip_deserializing)]
    pub loss_pct: f64,
    #[serde(skip_deserializing)]
    pub rtt_min_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_avg_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_max_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_mdev_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_p50_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_p90_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub rtt_p99_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub jitter_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub connect_min_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub connect_avg_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub connect_max_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub icmp_errors: Vec<Icmp<'a>>,
    #[serde(skip_deserializing)]
    pub unmatched_icmp: u64,
    #[serde(skip_deserializing)]
    pub late_icmp: u64,
    pub elapsed_ms: Option<f64>,
}

/// An ICMP error about none of our probes (-v). Not read back.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Unmatched<'a> {
    pub icmp_type: u8,
    pub code: u8,
    pub from: Option<IpAddr>,
    pub reason: String,
    pub why: &'a str,
    pub quoted_src: Option<SocketAddr>,
    pub quoted_dst: Option<SocketAddr>,
    pub quoted_seq: Option<u32>,
}
