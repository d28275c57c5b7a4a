//! The ping of one target and the many-targets mode: their flags (`PingArgs`, flattened
//! into the top-level command) and their validated settings (`ClientConfig` for one target,
//! `MultiConfig` for many).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::common::{helps, output, CommonArgs};
use super::values::{parse_count, parse_metrics_listen};
use crate::error::Error;
use crate::metrics::Histograms;
use crate::output::Output;
use crate::probe::connect::{Pmtud, MAX_SIZE, MIN_SIZE};
use crate::probe::{Mode, Shape};
use crate::resolve::{resolve, Family};

/// `-i` of a ping.
const INTERVAL_HELP: &str = "Interval: a ping starts every SECS (or with a unit: 200ms) even \
     while earlier ones still wait (up to -W); 0 = back to back. --persistent pipelines them on \
     its connection";
/// `-W` of a ping.
const TIMEOUT_HELP: &str =
    "Time to wait for each ping (handshake plus echo), seconds or with a unit; at least 1ms";

#[derive(Args, Debug)]
#[command(mut_args(helps(INTERVAL_HELP, TIMEOUT_HELP)))]
pub struct PingArgs {
    /// Target as HOST:PORT; HOST is a name, an IPv4 address or a bracketed IPv6 address ([::1]:12001).
    /// Several targets are pinged at once, each at its own interval
    #[arg(value_name = "HOST:PORT", num_args = 0..)]
    pub targets: Vec<String>,

    /// Targets from FILE (a regular file, at most 16 MiB), one HOST:PORT per line with optional
    /// labels (db1:5432 name=db1 tier=prod), '#' comments; re-read on SIGHUP. A target given
    /// twice (same labels) is probed once
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while running (many-targets mode).
    /// A bare PORT listens on 127.0.0.1 only; :PORT (every address, IPv6 and IPv4) and
    /// 0.0.0.0:PORT expose the metrics, which name every target, to the network
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,

    /// With --metrics: one RTT (and connect) histogram for every target together (shared,
    /// the default: a lean exposition at tens of thousands of targets), or one per target
    /// (per-target: 20 more series a target)
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = Histograms::Shared)]
    pub metrics_histograms: Histograms,

    /// Number of pings; without it, asks on a terminal, else pings until interrupted
    #[arg(short = 'n', long = "count", visible_short_alias = 'c', value_name = "N",
          value_parser = parse_count, allow_negative_numbers = true)]
    pub count: Option<u64>,

    /// -i, -W, -4, -6.
    #[command(flatten)]
    pub common: CommonArgs,

    /// IPv4 TTL / IPv6 hop limit of each ping's packets (routers on the way answer "time exceeded")
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: Option<u8>,

    /// --tos, --dscp.
    #[command(flatten)]
    pub marks: super::marks::TosArgs,

    /// Only time the TCP handshake (works with any TCP service, e.g. :22 or :443)
    #[arg(long, conflicts_with = "persistent")]
    pub connect_only: bool,

    /// The target must speak the echo protocol: any other answer is an error (by default, a
    /// service that answers otherwise, e.g. an SSH banner, has its handshake timed instead)
    #[arg(long, conflicts_with_all = ["connect_only", "syn"])]
    pub echo: bool,

    /// Half-open SYN probes built by hand (needs CAP_NET_RAW): SYN-ACK = port open, RST = closed;
    /// our kernel resets the connection, so the server's application never sees it
    #[arg(long, conflicts_with_all = ["connect_only", "persistent"])]
    pub syn: bool,

    /// With --syn: one source port for every probe (constant: a load balancer keeps them on one
    /// path; probes told apart by sequence number), or a new one per probe (per-probe)
    #[arg(long, value_enum, value_name = "FLOW", default_value_t = FlowArg::Constant, requires = "syn")]
    pub flow: FlowArg,

    /// Send every ping over one connection: application round trip without the handshake
    #[arg(long)]
    pub persistent: bool,

    /// Size of each echo request in bytes (32-9000), padded with 'x' before its newline, for
    /// testing a path's MTU; the segment on the wire adds the TCP and IP headers (52 bytes
    /// with IPv4, 72 with IPv6)
    #[arg(short = 's', long = "size", value_name = "SIZE",
          value_parser = clap::value_parser!(u16).range(MIN_SIZE as i64..=MAX_SIZE as i64),
          conflicts_with_all = ["connect_only", "syn"])]
    pub size: Option<u16>,

    /// Don't Fragment (IP_MTU_DISCOVER): do = DF always, a 'packet too big' lowers the
    /// segment size (default: a smaller link shows); want = the kernel's default (DF unless
    /// the route's MTU is locked); dont = no DF, routers may fragment (IPv4)
    #[arg(short = 'M', value_enum, value_name = "HOW", default_value_t = PmtudArg::Do,
          conflicts_with = "syn")]
    pub pmtud: PmtudArg,

    /// Find the path MTU instead of pinging: echo requests of 64 bytes, of the largest size
    /// the route allows, then by bisection, DF set; says which router reports the smaller
    /// MTU, or that none does (a black hole). Needs an echo server (tcpping-diag serve);
    /// toward any TCP service, `trace --size N`
    #[arg(long, conflicts_with_all = ["connect_only", "syn", "persistent", "size", "count"])]
    pub pmtu: bool,

    /// One JSON object per line (NDJSON): a "ping" event per ping and a final "summary"
    #[arg(long)]
    pub json: bool,

    /// Quiet: print only the start line and the summary (with --json: only the summary).
    /// (trace's -q is queries per hop, as traceroute's)
    #[arg(short, long)]
    pub quiet: bool,

    /// Also show ICMP errors that match none of our pings (other programs, spoofed, stale),
    /// and say when kernel timestamps could not be confirmed on at start
    #[arg(short, long)]
    pub verbose: bool,

    /// No live board: on a terminal, many targets are shown as a board redrawn in place (one
    /// row per target, worst first; q quits); this prints a line per probe instead. One
    /// target keeps its line per ping either way
    #[arg(long)]
    pub no_tui: bool,

    /// Do not open raw ICMP sockets (the kernel's error queue still reports handshake errors)
    #[arg(long)]
    pub no_icmp: bool,

    /// Also draw the run (one target, or one row per target) as a picture, SVG or PNG by the
    /// name's extension, written at the end (and on Ctrl-C); a bad name fails at start
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

/// `--flow`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowArg {
    /// One 5-tuple for every probe
    Constant,
    /// A new source port for every probe
    PerProbe,
}

/// `-M`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmtudArg {
    /// DF always (IP_PMTUDISC_DO)
    Do,
    /// The kernel's default (IP_PMTUDISC_WANT)
    Want,
    /// No DF (IP_PMTUDISC_DONT)
    Dont,
}

/// Validated client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// What the user typed, for display.
    pub target_name: String,
    pub target: SocketAddr,
    /// None: ask on a terminal, else ping until interrupted.
    pub count: Option<u64>,
    pub interval: Duration,
    pub timeout: Duration,
    pub ttl: Option<u8>,
    /// The IPv4 TOS byte / IPv6 traffic class of every probe (`--tos`, `--dscp`; 0: the
    /// system's).
    pub tos: u8,
    pub mode: Mode,
    /// `--echo`: a non-echo answer is an error (else the echo mode times the handshake of
    /// a target that does not speak the echo protocol).
    pub strict_echo: bool,
    /// How SYN probes use source ports.
    pub flow: crate::probe::syn::Flow,
    pub output: Output,
    /// Only the start line (human) and the summary.
    pub quiet: bool,
    pub verbose: bool,
    pub icmp: bool,
    /// Where to draw the run (--plot).
    pub plot: Option<std::path::PathBuf>,
    /// The requests' size (`-s`) and Don't Fragment (`-M`).
    pub shape: Shape,
    /// `--pmtu`: search the path MTU instead of pinging.
    pub pmtu: bool,
}

/// The run this config describes, for its output and its picture.
impl<'a> From<&'a ClientConfig> for crate::event::Run<'a> {
    fn from(c: &'a ClientConfig) -> Self {
        crate::event::Run {
            target_name: &c.target_name,
            target: c.target,
            mode: c.mode,
            flow: c.flow,
            count: c.count,
            interval: c.interval,
            timeout: c.timeout,
            shape: c.shape,
        }
    }
}

/// How the run is written.
impl From<&ClientConfig> for crate::output::Style {
    fn from(c: &ClientConfig) -> Self {
        crate::output::Style {
            format: c.output,
            mode: c.mode,
            quiet: c.quiet,
        }
    }
}

/// The address of a target not resolved yet (the many-targets template's).
const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Validated settings of a many-targets run.
#[derive(Clone, Debug)]
pub struct MultiConfig {
    /// Every target's settings but its name and address (empty, and unspecified: each
    /// target's are filled in once it is resolved).
    pub template: ClientConfig,
    /// `-4` / `-6`: the family every target resolves to.
    pub family: Option<Family>,
    /// The targets on the command line, as typed (each checked).
    pub targets: Vec<String>,
    /// `-f`: the targets file, read by the run.
    pub file: Option<PathBuf>,
    /// `--metrics`: where to serve the metrics.
    pub metrics: Option<SocketAddr>,
    /// `--metrics-histograms`: shared or per target.
    pub histograms: Histograms,
    /// Whether a terminal may get the live board (not `--no-tui`).
    pub tui: bool,
}

impl PingArgs {
    /// Whether this is a run of many targets (several, a file, or metrics served): the
    /// `monitor` command's, not `ping`'s.
    pub fn is_multi(&self) -> bool {
        self.targets.len() > 1 || self.file.is_some() || self.metrics.is_some()
    }

    /// Validate and resolve (once) into a client config.
    pub fn into_config(mut self) -> Result<ClientConfig, Error> {
        let target_name = match <[String; 1]>::try_from(std::mem::take(&mut self.targets)) {
            Ok([t]) => t,
            Err(t) if t.is_empty() => {
                return Err(Error::Usage(
                    "missing target HOST:PORT (try 'tcpping-diag --help')".into(),
                ))
            }
            Err(t) => {
                return Err(Error::Usage(format!(
                    "one target expected here, got {} ({}): several are pinged by the many-targets mode",
                    t.len(),
                    t.join(" ")
                )))
            }
        };
        let target = resolve(&target_name, self.common.family())?;
        Ok(self.settings(target_name, target))
    }

    /// Validate into a many-targets config. `check_target` is that mode's check of a target
    /// as typed, run on each command-line target first (so its errors come before any other);
    /// the targets are resolved later, by the run itself.
    pub fn into_multi_config(
        mut self,
        check_target: impl Fn(&str) -> Result<(), String>,
    ) -> Result<MultiConfig, Error> {
        let targets = std::mem::take(&mut self.targets);
        for t in &targets {
            check_target(t).map_err(Error::Usage)?;
        }
        let file = self.file.take();
        let metrics = self
            .metrics
            .take()
            .map(|m| parse_metrics_listen(&m).map_err(|e| Error::Usage(format!("--metrics: {e}"))))
            .transpose()?;
        let family = self.common.family();
        let tui = !self.no_tui;
        let histograms = self.metrics_histograms;
        let template = self.settings(String::new(), NO_ADDRESS);
        Ok(MultiConfig {
            template,
            family,
            targets,
            file,
            metrics,
            histograms,
            tui,
        })
    }

    /// Every setting of a ping but its target, which is given.
    fn settings(self, target_name: String, target: SocketAddr) -> ClientConfig {
        let mode = if self.syn {
            Mode::Syn
        } else if self.connect_only {
            Mode::ConnectOnly
        } else if self.persistent {
            Mode::Persistent
        } else {
            Mode::Echo
        };
        ClientConfig {
            target_name,
            target,
            count: self.count,
            interval: self.common.interval,
            timeout: self.common.timeout,
            ttl: self.ttl,
            tos: self.marks.tos(),
            mode,
            strict_echo: self.echo,
            flow: match self.flow {
                FlowArg::Constant => crate::probe::syn::Flow::Constant,
                FlowArg::PerProbe => crate::probe::syn::Flow::PerProbe,
            },
            output: output(self.json),
            quiet: self.quiet,
            verbose: self.verbose,
            icmp: !self.no_icmp,
            plot: self.plot,
            shape: Shape {
                size: self.size.map(usize::from),
                pmtud: match self.pmtud {
                    PmtudArg::Do => Pmtud::Do,
                    PmtudArg::Want => Pmtud::Want,
                    PmtudArg::Dont => Pmtud::Dont,
                },
            },
            pmtu: self.pmtu,
        }
    }
}
