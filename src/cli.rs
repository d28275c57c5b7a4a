//! Command-line flags (raw, as clap parses them) and their validation into configs.
//!
//! Two layers, as ripgrep does: `Cli` is what the user typed; `ClientConfig` and `ServerConfig`
//! are validated, resolved settings the rest of the program can trust.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;

const AFTER_HELP: &str = "\
Examples:
  tcpping-diag 127.0.0.1:12001 -n 5           five pings to a tcpping-diag server
  tcpping-diag example.net:443 --connect-only  time only the TCP handshake of any service
  tcpping-diag [::1]:12001 -n 100 -i 0 --json  back-to-back pings, NDJSON output
  tcpping-diag trace example.net:443          where on the path TCP to port 443 stops
  tcpping-diag -f targets.txt --syn --metrics 127.0.0.1:9464 -q
                                              many targets at once, Prometheus metrics
  tcpping-diag serve --loss 0.2 --seed 7      echo server answering LOST to 20% of pings
  tcpping-diag demo                           watch a lossy server on loopback being pinged
  tcpping-diag 127.0.0.1:12001 -n 600 --plot run.svg   ping, and draw the run as an SVG picture
  tcpping-diag report run.ndjson -o run.svg   draw the NDJSON of a --json run (ping or trace)

ICMP errors (host unreachable, administratively prohibited, TTL exceeded, ...) about a ping are
matched to its sequence number through raw ICMP sockets, which need root or CAP_NET_RAW
(sudo setcap cap_net_raw+ep $(command -v tcpping-diag)). Without them, errors during the
handshake are still reported from the kernel's socket error queue.

Exit status: 0 if any reply came, 1 if none, 2 on a usage or setup error.";

/// The usage line of every error message: what can be typed, never an echo of what was.
const USAGE: &str = "tcpping-diag [OPTIONS] HOST:PORT
       tcpping-diag [OPTIONS] HOST:PORT HOST:PORT... | -f FILE [--metrics ADDR:PORT]
       tcpping-diag trace [OPTIONS] HOST:PORT
       tcpping-diag serve [OPTIONS]
       tcpping-diag report [FILE.ndjson|-]... -o OUT.svg
       tcpping-diag generate man|completions DIR
       tcpping-diag demo";

#[derive(Parser, Debug)]
#[command(
    name = "tcpping-diag",
    version = crate::VERSION,
    override_usage = USAGE,
    about = "TCP ping that tells you why a ping was lost: server loss, filtering, or an ICMP error matched to the exact ping",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub ping: PingArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the threaded echo server (one thread per client) with simulated loss
    Serve(ServeArgs),
    /// Start a lossy server on loopback and ping it, to see what the output means
    Demo,
    /// Write the man pages or the shell completions (bash, zsh, fish) into a directory
    Generate(GenerateArgs),
    /// Draw the NDJSON of --json runs as an SVG picture (ping over time, many targets, trace)
    Report(ReportArgs),
    /// Trace the path to HOST:PORT with TCP SYNs (TTL 1, 2, ...): which router refuses, or
    /// after which hop everything goes silent
    Trace(TraceArgs),
}

#[derive(Args, Debug)]
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

    /// Number of pings; without it, asks on a terminal, else pings until interrupted
    #[arg(short = 'n', long = "count", visible_short_alias = 'c', value_name = "N",
          value_parser = parse_count, allow_negative_numbers = true)]
    pub count: Option<u64>,

    /// Interval: a ping starts every SECS (or with a unit: 200ms) even while earlier ones still
    /// wait (up to -W); 0 = back to back. --persistent pipelines them on its connection
    #[arg(short = 'i', long, value_name = "SECS", default_value = "1",
          value_parser = parse_interval, allow_negative_numbers = true)]
    pub interval: Duration,

    /// Time to wait for each ping (handshake plus echo), seconds or with a unit; at least 1ms
    #[arg(short = 'W', long, value_name = "SECS", default_value = "1",
          value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Use IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only
    #[arg(short = '6')]
    pub ipv6: bool,

    /// IPv4 TTL / IPv6 hop limit of each ping's packets (routers on the way answer "time exceeded")
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: Option<u8>,

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

    /// Do not open raw ICMP sockets (the kernel's error queue still reports handshake errors)
    #[arg(long)]
    pub no_icmp: bool,

    /// Also draw the run (one target, or one row per target) as a picture, SVG or PNG by the
    /// name's extension, written at the end (and on Ctrl-C); a bad name fails at start
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on: [::]:12001 or :12001 listen on IPv6 and IPv4; a name is resolved
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:12001")]
    pub listen: String,

    /// Share of pings to lose, 0.0 to 1.0
    #[arg(long, value_name = "RATE", default_value_t = 0.2, value_parser = parse_rate,
          allow_negative_numbers = true)]
    pub loss: f64,

    /// How a lost ping is lost: answered "LOST" (reply), or not answered at all (silent)
    #[arg(long, value_enum, default_value_t = LossMode::Reply)]
    pub loss_mode: LossMode,

    /// Seed of the loss RNG: the same seed gives the same sequence of lost pings
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Connections served at once; more are closed at once, with a log line
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_clients: u64,

    /// Connections served at once from one source address; more are closed at once, with a log line
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_per_source: u64,

    /// Close a connection that sends nothing, or does not read its replies, for this long
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Close a connection whose request is not complete (no newline) this long after its first byte
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub line_timeout: Duration,

    /// Not in the flags: a stray positional argument, for a hint at --listen.
    #[arg(hide = true, value_name = "ARG", allow_hyphen_values = true)]
    pub stray: Vec<String>,

    /// Do not log every message (start, rejections, bad requests, timeouts and totals are still logged)
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--flow`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowArg {
    /// One 5-tuple for every probe
    Constant,
    /// A new source port for every probe
    PerProbe,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossMode {
    /// Answer "LOST", as the original server did
    Reply,
    /// Send nothing: the client sees a real timeout
    Silent,
}

/// How each ping talks to the target: a type of the probe layer, which the flags map to.
pub use crate::probe::Mode;

/// How results are written: a type of the output layer.
pub use crate::output::Format as Output;

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
}

impl ClientConfig {
    /// The run this config describes, for its output and its picture.
    pub fn run(&self) -> crate::event::Run<'_> {
        crate::event::Run {
            target_name: &self.target_name,
            target: self.target,
            mode: self.mode,
            flow: self.flow,
            count: self.count,
            interval: self.interval,
            timeout: self.timeout,
        }
    }
}

/// Validated server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub loss: f64,
    pub loss_mode: LossMode,
    pub seed: Option<u64>,
    pub max_clients: usize,
    /// Connections at once from one source address.
    pub max_per_source: usize,
    pub idle_timeout: Duration,
    /// Time from a request's first byte to its end (newline) before the connection is closed.
    pub line_timeout: Duration,
    pub quiet: bool,
}

impl PingArgs {
    /// Whether this is a run of many targets (several, a file, or metrics served): the
    /// `monitor` command's, not `ping`'s.
    pub fn is_multi(&self) -> bool {
        self.targets.len() > 1 || self.file.is_some() || self.metrics.is_some()
    }

    /// Validate and resolve (once) into a client config.
    pub fn into_config(self) -> Result<ClientConfig, Error> {
        let target_name = match <[String; 1]>::try_from(self.targets) {
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
        let family = match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        };
        let target = resolve(&target_name, family)?;
        let mode = if self.syn {
            Mode::Syn
        } else if self.connect_only {
            Mode::ConnectOnly
        } else if self.persistent {
            Mode::Persistent
        } else {
            Mode::Echo
        };
        let output = if self.json {
            Output::Json
        } else {
            Output::Human
        };
        Ok(ClientConfig {
            target_name,
            target,
            count: self.count,
            interval: self.interval,
            timeout: self.timeout,
            ttl: self.ttl,
            mode,
            strict_echo: self.echo,
            flow: match self.flow {
                FlowArg::Constant => crate::probe::syn::Flow::Constant,
                FlowArg::PerProbe => crate::probe::syn::Flow::PerProbe,
            },
            output,
            quiet: self.quiet,
            verbose: self.verbose,
            icmp: !self.no_icmp,
            plot: self.plot,
        })
    }
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServerConfig, Error> {
        if let Some(arg) = self.stray.first() {
            return Err(Error::Usage(stray_argument(arg)));
        }
        let listen = parse_listen(&self.listen)?;
        Ok(ServerConfig {
            listen,
            loss: self.loss,
            loss_mode: self.loss_mode,
            seed: self.seed,
            max_clients: usize::try_from(self.max_clients).unwrap_or(usize::MAX),
            max_per_source: usize::try_from(self.max_per_source).unwrap_or(usize::MAX),
            idle_timeout: self.idle_timeout,
            line_timeout: self.line_timeout,
            quiet: self.quiet,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Split `HOST:PORT` (IPv6 literals in brackets) into host and port.
pub fn split_host_port(s: &str) -> Result<(&str, u16), Error> {
    let bad = |why: &str| Error::Usage(format!("invalid target '{}': {why}", cut(s, 100)));
    if let Some((scheme, rest)) = s.split_once("://") {
        // A URL: say what to type instead (the host, and the scheme's port when none is given).
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => authority.contains(':'),
        };
        let port = service_port(scheme).filter(|_| !has_port);
        let hint = match port {
            Some(p) if !authority.is_empty() => format!(": use {authority}:{p}"),
            _ if has_port => format!(": use {authority}"),
            _ => String::new(),
        };
        return Err(bad(&format!(
            "a target is HOST:PORT, not a URL: drop the scheme '{scheme}://'{hint}"
        )));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| bad("expected ':PORT' after ']'"))?;
        (host, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("expected HOST:PORT, e.g. 127.0.0.1:12001"))?;
        if host.contains(':') {
            return Err(bad("an IPv6 address must be in brackets, e.g. [::1]:12001"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port: u16 = match port.parse() {
        Ok(p) => p,
        Err(_) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            return Err(bad("the port must be a number from 1 to 65535"))
        }
        Err(_) => service_port(port).ok_or_else(|| {
            bad("the port must be a number from 1 to 65535 or a TCP service name from /etc/services (e.g. https)")
        })?,
    };
    if port == 0 {
        return Err(bad("port 0 cannot be pinged"));
    }
    Ok((host, port))
}

/// `s` cut to at most `max` characters, with an ellipsis when cut: error messages echo what
/// was typed, never megabytes of it.
pub fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]).into(),
        None => s.into(),
    }
}

/// Where the TCP service names come from (as nc and telnet take them).
const SERVICES_FILE: &str = "/etc/services";
/// More than any real /etc/services (about 13 kB on Debian 12): a larger file is not read.
const SERVICES_MAX_BYTES: u64 = 4 << 20;

/// The TCP port of a service name (`https`, `ssh`, an alias such as `www`), from
/// /etc/services, read once. Names are matched case-insensitively, as getservbyname does not,
/// but as users type them (`HTTPS`). None when the name is unknown or the file unreadable.
pub fn service_port(name: &str) -> Option<u16> {
    use std::io::Read;
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<(String, u16)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut text = String::new();
        let read = std::fs::File::open(SERVICES_FILE)
            .and_then(|f| f.take(SERVICES_MAX_BYTES).read_to_string(&mut text));
        if read.is_err() {
            return Vec::new();
        }
        parse_services(&text)
    });
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, p)| p)
}

/// `name port/proto [aliases...] [# comment]` lines: the TCP ones, as (name or alias, port).
fn parse_services(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(port)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, "tcp")) = port.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if port == 0 {
            continue;
        }
        out.push((name.to_string(), port));
        out.extend(words.map(|alias| (alias.to_string(), port)));
    }
    out
}

/// A host name, at most (bytes, without a final dot), and one of its labels.
pub const MAX_NAME: usize = 253;
pub const MAX_NAME_LABEL: usize = 63;

/// Whether `host` (an address literal or a name) can be resolved at all: a name of at
/// most 253 bytes (a final dot aside), of labels of 1 to 63 bytes.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > MAX_NAME {
        return Err(format!(
            "host name longer than {MAX_NAME} bytes ({}): '{}'",
            name.len(),
            cut(host, 100)
        ));
    }
    if let Some(label) = name.split('.').find(|l| l.len() > MAX_NAME_LABEL) {
        return Err(format!(
            "host name '{}': a label longer than {MAX_NAME_LABEL} bytes ({})",
            cut(host, 100),
            label.len()
        ));
    }
    if name.split('.').any(str::is_empty) {
        return Err(format!("host name '{}': an empty label", cut(host, 100)));
    }
    Ok(())
}

/// The first of `addrs` of the wanted family.
pub fn first_of_family(
    addrs: impl IntoIterator<Item = SocketAddr>,
    family: Option<Family>,
) -> Result<SocketAddr, String> {
    addrs
        .into_iter()
        .find(|a| match family {
            Some(Family::V4) => a.is_ipv4(),
            Some(Family::V6) => a.is_ipv6(),
            None => true,
        })
        .ok_or(
            match family {
                Some(Family::V4) => "has no IPv4 address",
                Some(Family::V6) => "has no IPv6 address",
                None => "has no address",
            }
            .to_string(),
        )
}

/// Resolve a target once, keeping the first address of the wanted family.
pub fn resolve(s: &str, family: Option<Family>) -> Result<SocketAddr, Error> {
    let (host, port) = split_host_port(s)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return first_of_family([SocketAddr::new(ip, port)], family)
            .map_err(|why| Error::Setup(format!("host '{host}' {why}")));
    }
    // Names no resolver can answer are refused before one is asked.
    check_host(host).map_err(|e| Error::Usage(format!("invalid target: {e}")))?;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Setup(format!("cannot resolve host '{host}': {e}")))?;
    first_of_family(addrs, family).map_err(|why| Error::Setup(format!("host '{host}' {why}")))
}

/// The error for an argument `serve` does not take. The hidden positional that catches it
/// takes hyphen values too, so an unknown flag lands here as well (and clap does not advise
/// `-- ARG`, which would not help).
fn stray_argument(arg: &str) -> String {
    if arg.starts_with('-') && arg.len() > 1 {
        let name = arg.trim_start_matches('-');
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        let cmd = <ServeArgs as Args>::augment_args(clap::Command::new("serve"));
        let similar = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .map(|long| (edit_distance(name, long), long))
            .filter(|&(d, long)| d <= 2.max(long.len() / 4))
            .min();
        return match similar {
            Some((_, long)) => format!("unknown flag '{arg}' for serve: did you mean --{long}?"),
            None => format!("unknown flag '{arg}' for serve (see 'tcpping-diag serve --help')"),
        };
    }
    if parse_listen(arg).is_ok() {
        format!("unexpected argument '{arg}': did you mean --listen {arg}?")
    } else {
        format!(
            "unexpected argument '{arg}': serve takes no positional arguments (see 'tcpping-diag serve --help')"
        )
    }
}

/// Levenshtein distance, for flag suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + usize::from(ca != cb)).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[b.len()]
}

/// The listening address: `ADDR:PORT` with an IP literal (IPv6 in brackets), a name (resolved
/// once: its first IPv4 address, else its first IPv6 address), or `:PORT` for every address,
/// IPv6 and IPv4 (`[::]:PORT`, dual-stack). Port 0 picks a free port.
pub fn parse_listen(s: &str) -> Result<SocketAddr, Error> {
    let bad = |why: &str| Error::Usage(format!("invalid listen address '{s}': {why}"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("expected [IPv6]:PORT, e.g. [::]:12001"))?;
        if host.is_empty() {
            return Err(bad("empty address in brackets"));
        }
        (host, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("expected ADDR:PORT, e.g. 0.0.0.0:12001, or :PORT"))?;
        if host.contains(':') {
            return Err(bad("an IPv6 address must be in brackets, e.g. [::]:12001"));
        }
        (host, port)
    };
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
    if host.is_empty() {
        return Ok(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            port,
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Setup(format!("cannot resolve listen address '{host}': {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| Error::Setup(format!("listen address '{host}' has no address")))
}

/// The `--metrics` address: a bare `PORT` is `127.0.0.1:PORT` (loopback only, the safe
/// default: the metrics name every target and the routers on its path); anything else is
/// read as [`parse_listen`] does, so `:PORT` and `0.0.0.0:PORT` listen on every address.
pub fn parse_metrics_listen(s: &str) -> Result<SocketAddr, Error> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = s.parse().map_err(|_| {
            Error::Usage(format!(
                "invalid listen address '{s}': the port must be a number from 0 to 65535"
            ))
        })?;
        return Ok(SocketAddr::new(
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            port,
        ));
    }
    parse_listen(s)
}

/// A duration: a plain number is seconds (`0.2`), or a number with a unit (`200ms`, `1m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_bounded(s, "a duration", Duration::ZERO)
}

/// Units a duration may carry, for error messages.
const UNITS: &str = "us, ms, s, m, h";

/// A duration as `parse_duration` reads it, or a message that names the flag's rule.
fn parse_bounded(s: &str, what: &str, min: Duration) -> Result<Duration, String> {
    let t = s.trim();
    let rule = if min.is_zero() {
        format!("{what} must be 0 or more")
    } else {
        format!(
            "{what} must be at least {}",
            humantime::format_duration(min)
        )
    };
    let d = match t.parse::<f64>() {
        Ok(x) if x.is_finite() && x < 0.0 => return Err(rule),
        Ok(x) if !x.is_finite() => return Err("not a number of seconds".into()),
        Ok(x) if x > MAX_SECS => return Err("longer than a year".into()),
        Ok(x) => Duration::from_secs_f64(x),
        Err(_) if t.starts_with('-') => return Err(rule),
        Err(_) => humantime::parse_duration(t).map_err(|_| {
            format!(
                "not a duration: use seconds (0.5) or a number with a unit ({UNITS}), e.g. 200ms"
            )
        })?,
    };
    if d < min {
        return Err(rule);
    }
    Ok(d)
}

/// Longest duration any flag takes: a year.
const MAX_SECS: f64 = 86_400.0 * 365.0;

/// `-i`: 0 (back to back) or more.
fn parse_interval(s: &str) -> Result<Duration, String> {
    parse_bounded(s, "the interval", Duration::ZERO)
}

/// The shortest timeout: below a millisecond the waits (poll(2) counts milliseconds) could
/// not honour it.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// `-W`: at least `MIN_TIMEOUT`.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_bounded(s, "the timeout", MIN_TIMEOUT)
}

/// `-n`: a whole number, 1 or more.
fn parse_count(s: &str) -> Result<u64, String> {
    let rule =
        "the count must be a whole number of 1 or more (leave -n out to ping until interrupted)";
    match s.trim().parse::<u64>() {
        Ok(0) => Err(rule.into()),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(format!(
            "the count is too large: at most {} (leave -n out to ping until interrupted)",
            u64::MAX
        )),
        Err(_) => Err(rule.into()),
        Ok(n) => Ok(n),
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("'{s}' must be more than zero"));
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number from 0.0 to 1.0"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("'{s}' is outside 0.0 to 1.0"));
    }
    Ok(r)
}

// ------------------------------------------------------------------------------------------
// `tcpping-diag trace`

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
  tcpping-diag trace [2001:db8::1]:22 --json         NDJSON events

Exit status: 0 if the target was reached (port open or closed), 1 if not, 2 on a usage or
setup error.";

#[derive(Args, Debug)]
#[command(after_help = TRACE_AFTER_HELP)]
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

    /// Wait between the starts of two cycles (seconds, or with a unit: 200ms)
    #[arg(short = 'i', long, value_name = "SECS", default_value = "1",
          value_parser = parse_interval, allow_negative_numbers = true)]
    pub interval: Duration,

    /// Time each probe may take, seconds or with a unit; at least 1ms
    #[arg(short = 'W', long, value_name = "SECS", default_value = "1",
          value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Use IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only
    #[arg(short = '6')]
    pub ipv6: bool,

    /// How to probe: SYNs built by hand when CAP_NET_RAW allows (auto), always (syn), or
    /// connect() with a TTL and the socket error queue (connect, needs no privilege)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = TraceProbe::Auto)]
    pub probe: TraceProbe,

    /// Look up the routers' names (reverse DNS); off by default
    #[arg(long)]
    pub resolve: bool,

    /// One JSON object per line (NDJSON): probe, hop and trace events
    #[arg(long)]
    pub json: bool,

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
    /// What the user typed, for display.
    pub target_name: String,
    pub target: SocketAddr,
    pub max_hops: u8,
    pub queries: u16,
    pub flows: u16,
    /// None: until interrupted.
    pub cycles: Option<u64>,
    pub interval: Duration,
    pub timeout: Duration,
    pub probe: TraceProbe,
    pub resolve: bool,
    pub output: Output,
}

impl TraceArgs {
    /// Validate and resolve (once) into a trace config.
    pub fn into_config(self) -> Result<TraceConfig, Error> {
        if self.syn {
            return Err(Error::Usage(
                "trace has no --syn: SYN probes are --probe syn (the default --probe auto uses them when CAP_NET_RAW allows)".into(),
            ));
        }
        let family = match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        };
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
        let target = resolve(&self.target, family)?;
        Ok(TraceConfig {
            target_name: self.target,
            target,
            max_hops: self.max_hops,
            queries: self.queries,
            flows: self.flows,
            cycles: (self.cycles > 0).then_some(self.cycles),
            interval: self.interval,
            timeout: self.timeout,
            probe: self.probe,
            resolve: self.resolve,
            output: if self.json {
                Output::Json
            } else {
                Output::Human
            },
        })
    }
}

/// `tcpping-diag generate`
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to write
    #[arg(value_enum)]
    pub what: Generated,

    /// Directory to write into (created when missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// Man pages: tcpping-diag.1 and tcpping-diag-SUBCOMMAND.1 for every subcommand
    Man,
    /// Shell completions: tcpping-diag.bash, _tcpping-diag (zsh), tcpping-diag.fish
    Completions,
}

const REPORT_HELP: &str = "\
The picture follows from the events: one target is drawn over time (every probe up to 2,000,
else smokeping-style bands per time bucket), failures below on the same time axis, coloured
by reason; several targets (files, or events with a \"target\" field) one row per target, worst
first; trace events one row per hop with the break point marked. Memory stays flat however
long the run was.

The picture is SVG, or PNG when OUT ends in .png (other extensions are refused). A regular file
is written through a temporary file beside it, renamed over it at the end (never half a
picture; nothing left behind on failure); -, FIFOs and devices are written directly. The
destination is checked before the input is read. Input lines longer than 1 MiB are skipped
and named; pings with a time beyond ±1e12 s are skipped and counted.

Examples:
  tcpping-diag 127.0.0.1:12001 -n 600 --json > run.ndjson
  tcpping-diag report run.ndjson -o run.svg
  tcpping-diag report a.ndjson b.ndjson c.ndjson -o many.png
  tcpping-diag 127.0.0.1:12001 -n 600 --json | tcpping-diag report -o run.svg";

#[derive(Args, Debug)]
#[command(after_help = REPORT_HELP)]
pub struct ReportArgs {
    /// NDJSON files written with --json (- or none: standard input); several files, or
    /// events with a "target" field, draw one row per target
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The picture to write: OUT.svg, or OUT.png for PNG (- writes SVG to standard output)
    #[arg(short = 'o', long = "output", value_name = "OUT.svg", required = true)]
    pub output: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcpping-diag").chain(args.iter().copied()))
    }

    #[test]
    fn a_url_says_drop_the_scheme() {
        for (url, hint) in [
            ("http://127.0.0.1:80", "use 127.0.0.1:80"),
            ("https://example.net/path?q=1", "use example.net:443"),
            ("http://[::1]:8080/", "use [::1]:8080"),
            ("ssh://user@host", "use host:22"),
        ] {
            let e = split_host_port(url).expect_err(url).to_string();
            assert!(e.contains("drop the scheme"), "{url}: {e}");
            assert!(e.contains(hint), "{url}: {e}");
            assert!(!e.contains("brackets"), "{url}: {e}");
        }
    }

    #[test]
    fn service_names_are_ports() {
        let services = "# comment\nhttps\t\t443/tcp\t\t\t# http protocol over TLS/SSL\n\
                        https\t\t443/udp\nwww 80/tcp http\nsyslog 514/udp\nbad x/tcp\nzero 0/tcp\n";
        let t = parse_services(services);
        assert_eq!(
            t,
            vec![
                ("https".to_string(), 443),
                ("www".to_string(), 80),
                ("http".to_string(), 80)
            ]
        );
        // The machine's own file (every Debian system has netbase's /etc/services).
        if std::path::Path::new(SERVICES_FILE).exists() {
            assert_eq!(split_host_port("host:https").unwrap(), ("host", 443));
            assert_eq!(split_host_port("[::1]:SSH").unwrap(), ("::1", 22));
        }
        let e = split_host_port("host:no-such-service")
            .unwrap_err()
            .to_string();
        assert!(e.contains("service name from /etc/services"), "{e}");
        let e = split_host_port("host:99999").unwrap_err().to_string();
        assert!(e.contains("from 1 to 65535"), "{e}");
    }

    #[test]
    fn errors_echo_a_cut_target() {
        let long = format!("{}:80:x", "a".repeat(10_000_000));
        let e = split_host_port(&long).unwrap_err().to_string();
        assert!(e.len() < 300, "{} bytes", e.len());
        assert!(e.contains('…'), "{e}");
        assert_eq!(cut("héllo", 2), "hé…");
        assert_eq!(cut("héllo", 5), "héllo");
    }

    #[test]
    fn a_huge_count_says_too_large() {
        let e = parse(&["127.0.0.1:1", "-n", "99999999999999999999"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        assert!(!e.contains("1 or more"), "{e}");
        let e = parse(&["127.0.0.1:1", "-n", "0"]).unwrap_err().to_string();
        assert!(e.contains("1 or more"), "{e}");
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("127.0.0.1:80").unwrap(), ("127.0.0.1", 80));
        assert_eq!(split_host_port("[::1]:12001").unwrap(), ("::1", 12001));
        assert_eq!(split_host_port("localhost:1").unwrap(), ("localhost", 1));
        for bad in [
            "127.0.0.1",
            "::1:80",
            "[::1]80",
            "[::1:80",
            ":80",
            "h:0",
            "h:65536",
            "h:x",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn resolve_literal_and_family() {
        let a = resolve("[::1]:7", None).unwrap();
        assert_eq!(a, "[::1]:7".parse().unwrap());
        assert!(resolve("[::1]:7", Some(Family::V4)).is_err());
        assert!(resolve("127.0.0.1:7", Some(Family::V6)).is_err());
        let e = resolve("no-such-host.invalid:80", None).unwrap_err();
        assert!(e.to_string().contains("cannot resolve"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert!(parse_duration("-1").unwrap_err().contains("0 or more"));
        assert!(parse_duration("nan").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_positive_duration("0").is_err());
    }

    #[test]
    fn flags() {
        let c = parse(&["h:1", "-c", "3", "-i", "0", "-W", "0.5", "--json"]).unwrap();
        assert_eq!(c.ping.count, Some(3));
        assert_eq!(c.ping.interval, Duration::ZERO);
        assert!(parse(&["h:1", "-n", "0"]).is_err());
        assert!(parse(&["h:1", "-i", "-1"]).is_err());
        assert!(parse(&["h:1", "--connect-only", "--persistent"]).is_err());
        assert!(parse(&["h:1", "--syn", "--persistent"]).is_err());
        assert!(
            parse(&["h:1", "--flow", "per-probe"]).is_err(),
            "--flow without --syn"
        );
        let c = parse(&["h:1", "--syn", "--flow", "per-probe"]).unwrap();
        assert!(c.ping.syn && c.ping.flow == FlowArg::PerProbe);
        assert!(parse(&["h:1", "-4", "-6"]).is_err());
        assert!(parse(&["h:1", "--ttl", "0"]).is_err());
        assert!(parse(&["h:1", "--bogus"]).is_err());
        let s = parse(&[
            "serve",
            "--loss",
            "0.5",
            "--seed",
            "7",
            "--loss-mode",
            "silent",
        ])
        .unwrap();
        match s.command {
            Some(Command::Serve(a)) => {
                assert_eq!(a.seed, Some(7));
                assert_eq!(a.loss_mode, LossMode::Silent);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["serve", "--loss", "1.5"]).is_err());
    }

    #[test]
    fn several_targets_a_file_or_metrics_make_a_multi_run() {
        assert!(!parse(&["h:1"]).unwrap().ping.is_multi());
        assert!(parse(&["h:1", "h:2"]).unwrap().ping.is_multi());
        let c = parse(&["-f", "t.txt", "--metrics", "127.0.0.1:9464"]).unwrap();
        assert!(c.ping.is_multi());
        assert_eq!(c.ping.file.as_deref(), Some(std::path::Path::new("t.txt")));
        assert!(parse(&["h:1", "--metrics", "127.0.0.1:9464"])
            .unwrap()
            .ping
            .is_multi());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("[::]:12001").unwrap(),
            "[::]:12001".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:0").unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        // ":PORT" is every address, IPv6 and IPv4.
        assert_eq!(
            parse_listen(":12349").unwrap(),
            "[::]:12349".parse().unwrap()
        );
        // A name is resolved, its IPv4 address first.
        assert_eq!(
            parse_listen("localhost:12349").unwrap(),
            "127.0.0.1:12349".parse().unwrap()
        );
        let e = parse_listen("no-such-host.invalid:1").unwrap_err();
        assert!(
            e.to_string().contains("cannot resolve listen address"),
            "{e}"
        );
        for (bad, why) in [
            ("1.2.3.4", "expected ADDR:PORT"),
            ("::1:80", "must be in brackets"),
            ("[::1]80", "expected [IPv6]:PORT"),
            ("[]:80", "empty address"),
            ("1.2.3.4:65536", "port must be a number"),
            ("1.2.3.4:", "port must be a number"),
        ] {
            let e = parse_listen(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn metrics_addresses_a_bare_port_is_loopback() {
        let m = |s: &str| parse_metrics_listen(s);
        assert_eq!(m("9464").unwrap(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(m("0").unwrap(), "127.0.0.1:0".parse().unwrap());
        // Every address, only when asked for.
        assert_eq!(m(":9464").unwrap(), "[::]:9464".parse().unwrap());
        assert_eq!(m("0.0.0.0:9464").unwrap(), "0.0.0.0:9464".parse().unwrap());
        assert_eq!(m("[::1]:9464").unwrap(), "[::1]:9464".parse().unwrap());
        for (bad, why) in [
            ("65536", "port must be a number"),
            ("99999999999999999999", "port must be a number"),
            ("", "expected ADDR:PORT"),
            ("-1", "expected ADDR:PORT"),
            ("127.0.0.1", "expected ADDR:PORT"),
        ] {
            let e = m(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn serve_config(args: &[&str]) -> Result<ServerConfig, String> {
        let cli = parse(&[&["serve"], args].concat()).map_err(|e| e.to_string())?;
        match cli.command {
            Some(Command::Serve(a)) => a.into_config().map_err(|e| e.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_argument_errors() {
        // A negative rate is a rate out of range, not an unknown flag.
        for rate in ["-0.1", "-1", "1.01"] {
            let e = serve_config(&["--loss", rate]).unwrap_err();
            assert!(
                e.contains(&format!("'{rate}' is outside 0.0 to 1.0")),
                "{e}"
            );
        }
        let e = serve_config(&["127.0.0.1:12349"]).unwrap_err();
        assert!(
            e.contains(
                "unexpected argument '127.0.0.1:12349': did you mean --listen 127.0.0.1:12349?"
            ),
            "{e}"
        );
        let e = serve_config(&["--loss", "0", "fast"]).unwrap_err();
        assert!(
            e.contains("unexpected argument 'fast': serve takes no positional"),
            "{e}"
        );
        let c = serve_config(&["--listen", ":12349"]).unwrap();
        assert_eq!(c.listen, "[::]:12349".parse().unwrap());
        // The limits that keep one peer from taking the server, and their defaults.
        assert_eq!(c.max_clients, 4096);
        assert_eq!(c.max_per_source, 256);
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.line_timeout, Duration::from_secs(10));
        let c = serve_config(&["--max-per-source", "3", "--line-timeout", "1.5"]).unwrap();
        assert_eq!(
            (c.max_per_source, c.line_timeout),
            (3, Duration::from_millis(1500))
        );
        assert!(serve_config(&["--max-per-source", "0"]).is_err());
        assert!(serve_config(&["--line-timeout", "0"]).is_err());
        // Unknown flags: a suggestion when one is close, never "use -- ARG".
        let e = serve_config(&["--los", "0.1"]).unwrap_err();
        assert_eq!(e, "unknown flag '--los' for serve: did you mean --loss?");
        let e = serve_config(&["--max-client=3"]).unwrap_err();
        assert!(e.contains("did you mean --max-clients?"), "{e}");
        let e = serve_config(&["--max-per-sourc=3"]).unwrap_err();
        assert!(e.contains("did you mean --max-per-source?"), "{e}");
        let e = serve_config(&["--bogus"]).unwrap_err();
        assert_eq!(
            e,
            "unknown flag '--bogus' for serve (see 'tcpping-diag serve --help')"
        );
        let e = serve_config(&["-x"]).unwrap_err();
        assert!(e.starts_with("unknown flag '-x' for serve"), "{e}");
        // Known flags still work around it.
        let c = serve_config(&["-q", "--loss", "0", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(c.quiet);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("loss", "loss"), 0);
        assert_eq!(edit_distance("los", "loss"), 1);
        assert_eq!(edit_distance("lsos", "loss"), 2);
        assert_eq!(edit_distance("", "seed"), 4);
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(
            ["tcpping-diag", "trace"]
                .into_iter()
                .chain(args.iter().copied()),
        )
    }

    fn trace_args(args: &[&str]) -> TraceArgs {
        match parse(args).unwrap().command {
            Some(Command::Trace(t)) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let t = trace_args(&["127.0.0.1:443"]);
        assert_eq!((t.max_hops, t.queries, t.flows, t.cycles), (30, 3, 1, 1));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.probe, TraceProbe::Auto);
        let c = t.into_config().unwrap();
        assert_eq!(c.cycles, Some(1));
        assert_eq!(c.target, "127.0.0.1:443".parse().unwrap());
        assert!(!c.resolve);
        assert_eq!(c.output, Output::Human);
    }

    #[test]
    fn flags_and_their_bounds() {
        let t = trace_args(&[
            "[::1]:22",
            "-m",
            "8",
            "-q",
            "2",
            "--flows",
            "6",
            "--cycles",
            "0",
            "-i",
            "200ms",
            "-W",
            "0.5",
            "--resolve",
            "--json",
            "--probe",
            "syn",
        ]);
        let c = t.into_config().unwrap();
        assert_eq!((c.max_hops, c.queries, c.flows), (8, 2, 6));
        assert_eq!(c.cycles, None, "--cycles 0: until interrupted");
        assert_eq!(c.interval, Duration::from_millis(200));
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert!(c.resolve && c.output == Output::Json && c.probe == TraceProbe::Syn);
        for bad in [
            &["h:1", "-m", "0"][..],
            &["h:1", "-m", "256"],
            &["h:1", "-q", "0"],
            &["h:1", "-q", "17"],
            &["h:1", "--flows", "0"],
            &["h:1", "--flows", "65"],
            &["h:1", "-W", "0"],
            &["h:1", "-i", "-1"],
            &["h:1", "--cycles", "-1"],
            &["h:1", "-4", "-6"],
            &["h:1", "--probe", "udp"],
            &[],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn validation() {
        let e = trace_args(&["h:1", "-m", "255", "-q", "16", "--flows", "64"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("probes per cycle"), "{e}");
        let e = trace_args(&["127.0.0.1:1", "--flows", "2", "--probe", "connect"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("--flows needs SYN probes"), "{e}");
        let e = trace_args(&["127.0.0.1:0"]).into_config().unwrap_err();
        assert!(e.to_string().contains("port 0"), "{e}");
        assert!(trace_args(&["[::1]:7", "-4"]).into_config().is_err());
    }
}
