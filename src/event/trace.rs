//! The events of a trace: `trace_start`, one `probe` per query's verdict, one `hop` per hop
//! at the end, and the `trace` verdict.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{Icmp, ProbeStatus, Text};
use crate::icmp::extension::{InterfaceInfo, MplsLabel};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TraceStart<'a> {
    pub target: Option<Text<'a>>,
    pub address: Option<Text<'a>>,
    pub source: Option<Text<'a>>,
    pub host: Option<Text<'a>>,
    pub max_hops: Option<u32>,
    pub queries: Option<u32>,
    pub flows: Option<u32>,
    /// "syn" or "connect".
    #[serde(skip_deserializing)]
    pub probe: &'a str,
    /// Our source port of each flow.
    #[serde(skip_deserializing)]
    pub ports: &'a [u16],
    #[serde(skip_deserializing)]
    pub cycles: Option<u64>,
    #[serde(skip_deserializing)]
    pub timeout_ms: f64,
    #[serde(skip_deserializing)]
    pub interval_ms: f64,
    /// `--size`: the SYNs' length in all (null: bare SYNs).
    #[serde(skip_deserializing)]
    pub size: Option<usize>,
    pub ts: Option<f64>,
}

/// One query's verdict.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Probe<'a> {
    pub hop: Option<u32>,
    pub query: Option<u32>,
    pub flow: Option<u32>,
    pub cycle: Option<u64>,
    pub ts: Option<f64>,
    pub status: Option<ProbeStatus>,
    pub from: Option<Text<'a>>,
    #[serde(skip_deserializing)]
    pub name: Option<String>,
    pub rtt_ms: Option<f64>,
    /// "open" / "closed" when the target answered.
    #[serde(skip_deserializing)]
    pub port: Option<&'a str>,
    pub icmp: Option<Icmp<'a>>,
    #[serde(skip_deserializing)]
    pub mpls: &'a [MplsLabel],
    #[serde(skip_deserializing)]
    pub interfaces: &'a [InterfaceInfo],
    #[serde(skip_deserializing)]
    pub error: Option<&'a str>,
    #[serde(skip_deserializing)]
    pub seq: u64,
    #[serde(skip_deserializing)]
    pub reprobe: bool,
    #[serde(skip_deserializing)]
    pub local_port: Option<u16>,
}

/// A router of a hop, with what it said. Not read back.
#[derive(Clone, Debug, Serialize)]
pub struct Router<'a> {
    pub address: Option<IpAddr>,
    pub name: Option<String>,
    pub flows: Vec<u16>,
    pub count: u64,
    pub time_exceeded: u64,
    /// "open" / "closed" when it is the target.
    pub port: Option<&'static str>,
    pub icmp: Vec<Icmp<'a>>,
    pub mpls: &'a [Vec<MplsLabel>],
    pub interfaces: &'a [InterfaceInfo],
    pub avg_ms: Option<f64>,
}

/// One hop over every cycle.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Hop<'a> {
    pub hop: Option<u32>,
    /// The addresses that answered, most answers first.
    #[serde(default)]
    pub routers: Vec<Text<'a>>,
    /// The same, with what each said.
    #[serde(skip_deserializing)]
    pub router_details: Vec<Router<'a>>,
    pub sent: Option<u64>,
    pub received: Option<u64>,
    pub loss_pct: Option<f64>,
    #[serde(skip_deserializing)]
    pub last_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub best_ms: Option<f64>,
    pub worst_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub stddev_ms: Option<f64>,
    #[serde(skip_deserializing)]
    pub flows_answered: usize,
    #[serde(skip_deserializing)]
    pub next_hops: usize,
    /// Flows the MDA stopping rule needs to rule out one more next hop (95%); null with one
    /// flow.
    #[serde(skip_deserializing)]
    pub flows_needed: Option<usize>,
    #[serde(skip_deserializing)]
    pub enough_flows: Option<bool>,
    #[serde(skip_deserializing)]
    pub rate_limited: bool,
    #[serde(skip_deserializing)]
    pub errors: &'a [String],
    /// What this hop's quotes show changed in the SYN (SYN probes), each with the hop where
    /// it first shows.
    #[serde(skip_deserializing)]
    pub changes: Vec<Change>,
    /// How much of the SYN the quotes held: "full", "header" or "ports" (no options); null
    /// without a quote.
    #[serde(skip_deserializing)]
    pub quote: Option<&'static str>,
}

/// A field a middlebox changed in the SYN (`packet::diff`). Not read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// dscp, ecn, src, dst, sport, dport, seq, window, mss, wscale, sack_perm, timestamps,
    /// checksum, payload_len.
    pub field: &'static str,
    /// The value sent and seen, as strings; null for an absent option.
    pub sent: Option<String>,
    pub seen: Option<String>,
    /// The first hop whose quote shows it.
    pub hop: u32,
    /// In the trace's summary: whether it lasts to the last hop able to show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_target: Option<bool>,
}

/// What the target's SYN-ACK offers. Not read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SynAck {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub timestamps: bool,
    /// ECN agreed; null when the SYN did not ask (no --ecn).
    pub ecn: Option<bool>,
}

/// The verdict of a trace.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Trace<'a> {
    pub verdict: Option<Text<'a>>,
    pub hops: Option<u32>,
    pub break_hop: Option<u32>,
    pub break_router: Option<Text<'a>>,
    /// The routers of a routing loop (verdict "loop"), in the order the packets meet them.
    #[serde(skip_deserializing)]
    pub loop_routers: Option<&'a [IpAddr]>,
    pub text: Option<Text<'a>>,
    #[serde(skip_deserializing)]
    pub target: &'a str,
    #[serde(skip_deserializing)]
    pub address: Option<SocketAddr>,
    #[serde(skip_deserializing)]
    pub port: Option<&'a str>,
    #[serde(skip_deserializing)]
    pub icmp: Option<Icmp<'a>>,
    #[serde(skip_deserializing)]
    pub flows: usize,
    #[serde(skip_deserializing)]
    pub flows_reached: usize,
    /// Flows that did not reach the target.
    #[serde(skip_deserializing)]
    pub flows_broken: usize,
    /// Verdict "partial": one entry per broken branch, the largest first (empty otherwise).
    #[serde(skip_deserializing)]
    pub broken: Vec<Broken<'a>>,
    /// Where the flows reached the target when not all at one hop (empty otherwise).
    #[serde(skip_deserializing)]
    pub lengths: Vec<Length>,
    /// A single flow that broke, weighed against other flows: `{"tried":6,"reached":5}`.
    #[serde(skip_deserializing)]
    pub other_flows: Option<OtherFlows>,
    #[serde(skip_deserializing)]
    pub cycles: u64,
    #[serde(skip_deserializing)]
    pub probes_sent: u64,
    #[serde(skip_deserializing)]
    pub reprobes: u64,
    #[serde(skip_deserializing)]
    pub unmatched_icmp: u64,
    #[serde(skip_deserializing)]
    pub late_icmp: u64,
    #[serde(skip_deserializing)]
    pub elapsed_ms: f64,
    /// The adaptive search (`trace --multipath`) made the hops, at this confidence (%).
    #[serde(skip_deserializing, skip_serializing_if = "std::ops::Not::not")]
    pub multipath: bool,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// Each change a middlebox made to the SYN, once, at the first hop that shows it.
    #[serde(skip_deserializing)]
    pub changes: Vec<Change>,
    /// What the target's SYN-ACK offered (SYN probes that reached an open port).
    #[serde(skip_deserializing)]
    pub syn_ack: Option<SynAck>,
    /// `trace --size` only: the hop whose next link is smaller than the SYNs.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<TraceMtu>,
}

/// A broken branch of a partly broken path (verdict "partial").
#[derive(Clone, Debug, Serialize)]
pub struct Broken<'a> {
    /// Where its flows break (0: nothing answered them).
    pub hop: u8,
    pub router: Option<IpAddr>,
    /// "silent", "refused" or "loop".
    pub how: &'static str,
    /// The refusing ICMP error.
    pub icmp: Option<Icmp<'a>>,
    pub flows: Vec<u16>,
    pub count: usize,
}

/// Flows that reached the target at one hop, with the branch they took.
#[derive(Clone, Debug, Serialize)]
pub struct Length {
    pub hops: u8,
    pub flows: Vec<u16>,
    /// The first hop where their routers are none of the other flows', and its router.
    pub through: Option<IpAddr>,
    pub through_hop: Option<u8>,
}

/// Other flows tried after a single flow broke.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OtherFlows {
    pub tried: usize,
    pub reached: usize,
}

/// `trace --size`'s finding: `{"size":1500,"hop":1,"router":"10.81.1.1","mtu":1400|null,"black_hole":false}`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TraceMtu {
    pub size: usize,
    pub hop: u8,
    pub router: Option<String>,
    pub mtu: Option<u32>,
    pub black_hole: bool,
}
