//! `tcpping-diag trace`: its flags (`TraceArgs`) and validated settings (`TraceConfig`).

use clap::{Args, ValueEnum};

use super::common::{helps, output, CommonArgs};
use super::marks::TosArgs;
use crate::error::Error;
use crate::output::Output;
use crate::packet::build::Marks;
use crate::resolve::resolve;
use crate::trace::TraceRun;

const TRACE_AFTER_HELP: &str = "\
Every hop is probed at once (SYNs with TTL / hop limit 1 to --max-hops), each probe concluded by
its answer or at -W: time exceeded names the router of a hop; SYN-ACK or RST means the target
was reached (port open or closed); destination unreachable or prohibited ends the path there;
routers that come back in the same order (A B A B) are a routing loop, named as soon as it
repeats. The last line says where the path stops, in words.

With SYN probes, each router's time exceeded quotes the SYN as it arrived there: the quote is
compared with the SYN as sent (DSCP, ECN, addresses and ports, sequence number, window, MSS,
window scale, SACK-permitted, timestamps, payload length), and the first hop where each change
shows is named (`hop 3 (10.0.3.2): MSS 1460 → 1400 (clamped)`), with what the target's SYN-ACK
offers. No extra probe. A NAT that translates the quotes back hides itself: nothing is guessed.

SYN probes need CAP_NET_RAW (sudo, or: sudo setcap cap_net_raw+ep $(command -v tcpping-diag)).
Without it, trace uses connect() with IP_TTL / IPV6_UNICAST_HOPS and the socket error queue,
and says so: still constant flows (a source port per flow, --flows too), but a flow's probes
leave one at a time (one connection per 4-tuple), so a silent hop costs each probe of a flow
the timeout, and a flow silent at 3 hops in a row is given up for the cycle; no ICMP
extensions; times from the ICMP's kernel receive timestamp.

Probes leave at most --rate per second (2000 by default). --flows N sends every hop on N
flows; --multipath searches instead: hop by hop, a round of probes each (the next one as
soon as the answers are in), new flows only where a router branches, until every router has
had enough of its flows answered one hop on to rule out one more next hop (the MDA stopping
rule, per router, at --confidence for the whole trace). Its hop events say, per hop, whether
the flows were enough (enough_flows).

Examples:
  tcpping-diag trace example.net:443                 where does TCP to port 443 stop?
  tcpping-diag trace example.net:443 --flows 6       6 flows: find load-balanced (ECMP) next hops
  tcpping-diag trace example.net:443 --multipath    every load-balanced path, flows spent only
                                                     where routers branch (95% confidence)
  tcpping-diag trace example.net:443 --cycles 20     mtr-style report: loss and RTT per hop
  tcpping-diag trace example.net:443 --cycles 0      on a terminal, live per hop until q
                                                     (p pause, r reset, d chart), then the report
  tcpping-diag trace [2001:db8::1]:22 --json         NDJSON events
  tcpping-diag trace example.net:443 --ecn --dscp 46 who clamps the MSS, strips options,
                                                     bleaches ECN or remarks the DSCP?

Exit status: 0 if the target was reached (port open or closed), 1 if not, 2 on a usage or
setup error, 3 if some flows reached it and others broke (partial).";

/// `trace -i`.
const INTERVAL_HELP: &str =
    "Wait between the starts of two cycles (seconds, or with a unit: 200ms)";
/// `trace -W`.
const TIMEOUT_HELP: &str = "Time each probe may take, seconds or with a unit; at least 1ms";

#[derive(Args, Debug)]
#[command(
    after_help = TRACE_AFTER_HELP,
    mut_args(helps(INTERVAL_HELP, TIMEOUT_HELP))
)]
pub struct TraceArgs {
    /// Target as HOST:PORT; HOST is a name, an IPv4 address or a bracketed IPv6 address
    #[arg(value_name = "HOST:PORT")]
    pub target: String,

    /// Highest TTL / hop limit probed
    #[arg(short = 'm', long, value_name = "N", default_value_t = 30,
          value_parser = parse_max_hops, allow_negative_numbers = true)]
    pub max_hops: u8,

    /// Queries: probes per hop (and per flow), as traceroute's -q. (Not ping's -q, which
    /// is --quiet.)
    #[arg(short = 'q', long, value_name = "Q", default_value_t = 3,
          value_parser = parse_queries, allow_negative_numbers = true)]
    pub queries: u16,

    /// Flows (source ports) per hop, each a constant 5-tuple: finds load-balanced next hops
    /// (whether they sufficed is judged per router: at one 2-way split, 12 flows through it
    /// rule out a third next hop at 95% confidence; see --multipath)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = parse_flows, allow_negative_numbers = true)]
    pub flows: u16,

    /// Adaptive multipath search (MDA-Lite style): flows spent only where load balancers
    /// branch, until every router's next hops are found at --confidence; one cycle, one
    /// query per hop and flow
    #[arg(long)]
    pub multipath: bool,

    /// Confidence that no next hop of any router is missed, in percent (--multipath and the
    /// --flows check)
    #[arg(long, value_name = "PCT", default_value_t = 95,
          value_parser = parse_confidence, allow_negative_numbers = true)]
    pub confidence: u8,

    /// Most probes sent per second in a burst; 0 = unpaced
    #[arg(long, value_name = "PPS", default_value_t = 2000,
          value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: u32,

    /// Rounds over every hop; 0 = until interrupted (Ctrl-C). More than one: an mtr-style
    /// report of loss and RTT per hop at the end
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = parse_cycles, allow_negative_numbers = true)]
    pub cycles: u64,

    /// -i, -W, -4, -6.
    #[command(flatten)]
    pub common: CommonArgs,

    /// How to probe: SYNs built by hand when CAP_NET_RAW allows (auto), always (syn), or
    /// connect() with a TTL and the socket error queue (connect, needs no privilege)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = TraceProbe::Auto)]
    pub probe: TraceProbe,

    /// SYNs of N bytes in all (IP header included, as traceroute's packet length; the rest
    /// is payload the target ignores), DF set: finds the hop whose next link's MTU is
    /// smaller, and whether it says "packet too big" or drops them silently (a black hole).
    /// Needs SYN probes
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(60..=9000))]
    pub size: Option<u16>,

    /// Look up the routers' names (reverse DNS); off by default
    #[arg(long)]
    pub resolve: bool,

    /// One JSON object per line (NDJSON): probe, hop and trace events
    #[arg(long)]
    pub json: bool,

    /// No live view: on a terminal, more than one cycle (or --cycles 0) is drawn as a table
    /// redrawn every cycle (q quits and prints the report; p pauses, r resets, n names);
    /// this prints the lines and the report as to a pipe instead
    #[arg(long)]
    pub no_tui: bool,

    /// --tos, --dscp.
    #[command(flatten)]
    pub marks: TosArgs,

    /// ECN-setup SYNs (ECE and CWR set, RFC 3168): which hop bleaches them, and whether the
    /// target agrees (SYN probes)
    #[arg(long)]
    pub ecn: bool,

    /// Not a trace flag (ping's --syn): caught to point at --probe syn.
    #[arg(long, hide = true)]
    pub syn: bool,
}

/// A whole number from `min` to `max` for a trace flag, or a message naming the rule (a
/// negative number included: clap would otherwise advise `-- -1`).
fn parse_whole<T: TryFrom<u64>>(s: &str, rule: &str, min: u64, max: u64) -> Result<T, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => T::try_from(n).map_err(|_| rule.to_string()),
        _ => Err(rule.to_string()),
    }
}

/// `trace -m`.
fn parse_max_hops(s: &str) -> Result<u8, String> {
    parse_whole(
        s,
        "the hop limit must be a whole number from 1 to 255",
        1,
        255,
    )
}

/// `trace -q`.
fn parse_queries(s: &str) -> Result<u16, String> {
    parse_whole(
        s,
        "the queries per hop must be a whole number from 1 to 16",
        1,
        16,
    )
}

/// `trace --flows`.
fn parse_flows(s: &str) -> Result<u16, String> {
    parse_whole(s, "the flows must be a whole number from 1 to 64", 1, 64)
}

/// `trace --confidence`.
fn parse_confidence(s: &str) -> Result<u8, String> {
    parse_whole(
        s,
        "the confidence must be a whole percentage from 50 to 99",
        50,
        99,
    )
}

/// `trace --rate`.
fn parse_rate(s: &str) -> Result<u32, String> {
    parse_whole(
        s,
        "the rate must be a whole number of probes per second, 0 (unpaced) to 1000000",
        0,
        1_000_000,
    )
}

/// `trace --cycles`.
fn parse_cycles(s: &str) -> Result<u64, String> {
    parse_whole(
        s,
        "the cycles must be a whole number, 0 or more (0: until interrupted)",
        0,
        u64::MAX,
    )
}

/// `trace --probe`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceProbe {
    /// SYN probes with CAP_NET_RAW, else connect() probes (saying so)
    Auto,
    /// SYN probes only (exit 2 without CAP_NET_RAW)
    Syn,
    /// connect() probes with a TTL and the socket error queue
    Connect,
}

/// Most probes one cycle may send (max-hops x queries x flows).
pub const TRACE_MAX_PROBES: u64 = 8192;

/// Validated trace settings.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// What to trace, how far and how often (what the output shows of it).
    pub run: TraceRun,
    pub probe: TraceProbe,
    pub output: Output,
    /// Whether a terminal may get the live view (not `--no-tui`).
    pub tui: bool,
    /// `--multipath`, `--confidence`, `--rate`.
    pub search: Search,
    /// The SYN probes' TOS and ECN setup (`--tos`, `--dscp`, `--ecn`).
    pub marks: Marks,
}

/// How the flows are spent and the probes paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Search {
    /// The adaptive search (`--multipath`) rather than every hop on every flow.
    pub multipath: bool,
    /// The failure probability the stopping rule allows the whole trace (1 - confidence).
    pub alpha: f64,
    /// Probes per second at most (0: unpaced).
    pub rate: u32,
}

impl Default for Search {
    fn default() -> Search {
        Search {
            multipath: false,
            alpha: 0.05,
            rate: 2000,
        }
    }
}

impl TraceArgs {
    /// Validate and resolve (once) into a trace config.
    pub fn into_config(self) -> Result<TraceConfig, Error> {
        if self.syn {
            return Err(Error::Usage(
                "trace has no --syn: SYN probes are --probe syn (the default --probe auto uses them when CAP_NET_RAW allows)".into(),
            ));
        }
        let probes = u64::from(self.max_hops) * u64::from(self.queries) * u64::from(self.flows);
        if probes > TRACE_MAX_PROBES {
            return Err(Error::Usage(format!(
                "--max-hops {} x --queries {} x --flows {} = {probes} probes per cycle: at most {TRACE_MAX_PROBES}",
                self.max_hops, self.queries, self.flows
            )));
        }
        if self.multipath && (self.flows > 1 || self.cycles != 1 || self.queries != 3) {
            return Err(Error::Usage(
                "--multipath picks its own flows, one query each, in one cycle: drop --flows, -q and --cycles".into(),
            ));
        }
        let marks = self.marks.marks(self.ecn);
        if marks != Marks::default() && self.probe == TraceProbe::Connect {
            return Err(Error::Usage(
                "--tos, --dscp and --ecn need SYN probes (not --probe connect)".into(),
            ));
        }
        if self.size.is_some() && self.probe == TraceProbe::Connect {
            return Err(Error::Usage(
                "--size needs SYN probes (connect() probes carry no payload in their SYN)".into(),
            ));
        }
        let target = resolve(&self.target, self.common.family())?;
        Ok(TraceConfig {
            run: TraceRun {
                target_name: self.target,
                target,
                max_hops: self.max_hops,
                // The search picks its flows from a budget, one query each.
                queries: if self.multipath { 1 } else { self.queries },
                flows: if self.multipath {
                    crate::trace::mda::MAX_FLOWS
                } else {
                    self.flows
                },
                cycles: (self.cycles > 0).then_some(self.cycles),
                interval: self.common.interval,
                timeout: self.common.timeout,
                resolve: self.resolve,
                multipath: self.multipath,
                size: self.size.map(usize::from),
            },
            probe: self.probe,
            output: output(self.json),
            tui: !self.no_tui,
            search: Search {
                multipath: self.multipath,
                alpha: f64::from(100 - self.confidence) / 100.0,
                rate: self.rate,
            },
            marks,
        })
    }
}
