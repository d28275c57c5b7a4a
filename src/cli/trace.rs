//! `tcpping-diag trace`: its flags (`TraceArgs`) and validated settings (`TraceConfig`).

use clap::{Args, ValueEnum};

use super::common::{helps, output, CommonArgs};
use crate::error::Error;
use crate::output::Output;
use crate::resolve::resolve;
use crate::trace::TraceRun;

const TRACE_AFTER_HELP: &str = "\
Every hop is probed at once (SYNs with TTL / hop limit 1 to --max-hops), each probe concluded by
its answer or at -W: time exceeded names the router of a hop; SYN-ACK or RST means the target
was reached (port open or closed); destination unreachable or prohibited ends the path there;
routers that come back in the same order (A B A B) are a routing loop, named as soon as it
repeats. The last line says where the path stops, in words.

SYN probes need CAP_NET_RAW (sudo, or: sudo setcap cap_net_raw+ep $(command -v tcpping-diag)).
Without it, trace uses connect() with IP_TTL / IPV6_UNICAST_HOPS and the socket error queue
(one source port per probe, no ICMP extensions; times from the ICMP's kernel receive
timestamp), and says so.

Examples:
  tcpping-diag trace example.net:443                 where does TCP to port 443 stop?
  tcpping-diag trace example.net:443 --flows 6       6 flows: find load-balanced (ECMP) next hops
  tcpping-diag trace example.net:443 --cycles 20     mtr-style report: loss and RTT per hop
  tcpping-diag trace example.net:443 --cycles 0      on a terminal, live per hop until q
                                                     (p pause, r reset, d chart), then the report
  tcpping-diag trace [2001:db8::1]:22 --json         NDJSON events

Exit status: 0 if the target was reached (port open or closed), 1 if not, 2 on a usage or
setup error.";

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
    /// (6 flows rule out a second next hop at 95% confidence, 11 a third, 16 a fourth)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = parse_flows, allow_negative_numbers = true)]
    pub flows: u16,

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
    /// `--size`: the SYNs' length in all.
    pub size: Option<usize>,
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
        if self.flows > 1 && self.probe == TraceProbe::Connect {
            return Err(Error::Usage(
                "--flows needs SYN probes (connect() probes take a new source port each)".into(),
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
                queries: self.queries,
                flows: self.flows,
                cycles: (self.cycles > 0).then_some(self.cycles),
                interval: self.common.interval,
                timeout: self.common.timeout,
                resolve: self.resolve,
            },
            probe: self.probe,
            output: output(self.json),
            tui: !self.no_tui,
            size: self.size.map(usize::from),
        })
    }
}
