//! Command-line flags (raw, as clap parses them) and their validation into configs.
//!
//! Two layers, as ripgrep does: `Cli` is what the user typed; `ClientConfig` and `ServerConfig`
//! are validated, resolved settings the rest of the program can trust.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;

const AFTER_HELP: &str = "\
Examples:
  tcpping-diag 127.0.0.1:12001 -n 5           five pings to a tcpping-diag server
  tcpping-diag example.net:443 --connect-only  time only the TCP handshake of any service
  tcpping-diag [::1]:12001 -n 100 -i 0 --json  back-to-back pings, NDJSON output
  tcpping-diag serve --loss 0.2 --seed 7      echo server answering LOST to 20% of pings
  tcpping-diag demo                           watch a lossy server on loopback being pinged

ICMP errors (host unreachable, administratively prohibited, TTL exceeded, ...) about a ping are
matched to its sequence number through raw ICMP sockets, which need root or CAP_NET_RAW
(sudo setcap cap_net_raw+ep $(command -v tcpping-diag)). Without them, errors during the
handshake are still reported from the kernel's socket error queue.

Exit status: 0 if any reply came, 1 if none, 2 on a usage or setup error.";

#[derive(Parser, Debug)]
#[command(
    name = "tcpping-diag",
    version,
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
}

#[derive(Args, Debug)]
pub struct PingArgs {
    /// Target as HOST:PORT; HOST is a name, an IPv4 address or a bracketed IPv6 address ([::1]:12001)
    #[arg(value_name = "HOST:PORT")]
    pub target: Option<String>,

    /// Number of pings; without it, asks on a terminal, else pings until interrupted
    #[arg(short = 'n', long = "count", short_alias = 'c', value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Wait between the starts of two pings (seconds, or with a unit: 200ms); 0 = back to back
    #[arg(short = 'i', long, value_name = "SECS", default_value = "1",
          value_parser = parse_duration, allow_negative_numbers = true)]
    pub interval: Duration,

    /// Time to wait for each ping (handshake plus echo), seconds or with a unit
    #[arg(short = 'W', long, value_name = "SECS", default_value = "1",
          value_parser = parse_positive_duration, allow_negative_numbers = true)]
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

    /// Send every ping over one connection: application round trip without the handshake
    #[arg(long)]
    pub persistent: bool,

    /// One JSON object per line (NDJSON): a "ping" event per ping and a final "summary"
    #[arg(long)]
    pub json: bool,

    /// Print only the summary
    #[arg(short, long)]
    pub quiet: bool,

    /// Also show ICMP errors that match none of our pings (other programs, spoofed, stale),
    /// and say when kernel timestamps could not be confirmed on at start
    #[arg(short, long)]
    pub verbose: bool,

    /// Do not open raw ICMP sockets (the kernel's error queue still reports handshake errors)
    #[arg(long)]
    pub no_icmp: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on ([::]:12001 listens on IPv4 and IPv6)
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:12001")]
    pub listen: String,

    /// Share of pings to lose, 0.0 to 1.0
    #[arg(long, value_name = "RATE", default_value_t = 0.2, value_parser = parse_rate)]
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

    /// Close a connection that sends nothing for this long
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Do not log every message (start, rejections and totals are still printed)
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossMode {
    /// Answer "LOST", as the original server did
    Reply,
    /// Send nothing: the client sees a real timeout
    Silent,
}

/// How each ping talks to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// New connection per ping, request, echo.
    Echo,
    /// New connection per ping, handshake only.
    ConnectOnly,
    /// One connection for all pings.
    Persistent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Human,
    Quiet,
    Json,
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
    pub mode: Mode,
    pub output: Output,
    pub verbose: bool,
    pub icmp: bool,
}

/// Validated server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub loss: f64,
    pub loss_mode: LossMode,
    pub seed: Option<u64>,
    pub max_clients: usize,
    pub idle_timeout: Duration,
    pub quiet: bool,
}

impl PingArgs {
    /// Validate and resolve (once) into a client config.
    pub fn into_config(self) -> Result<ClientConfig, Error> {
        let Some(target_name) = self.target else {
            return Err(Error::Usage(
                "missing target HOST:PORT (try 'tcpping-diag --help')".into(),
            ));
        };
        let family = match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        };
        let target = resolve(&target_name, family)?;
        let mode = if self.connect_only {
            Mode::ConnectOnly
        } else if self.persistent {
            Mode::Persistent
        } else {
            Mode::Echo
        };
        let output = if self.json {
            Output::Json
        } else if self.quiet {
            Output::Quiet
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
            output,
            verbose: self.verbose,
            icmp: !self.no_icmp,
        })
    }
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServerConfig, Error> {
        let listen = parse_listen(&self.listen)?;
        Ok(ServerConfig {
            listen,
            loss: self.loss,
            loss_mode: self.loss_mode,
            seed: self.seed,
            max_clients: usize::try_from(self.max_clients).unwrap_or(usize::MAX),
            idle_timeout: self.idle_timeout,
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
    let bad = |why: &str| Error::Usage(format!("invalid target '{s}': {why}"));
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
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("port 0 cannot be pinged"));
    }
    Ok((host, port))
}

/// Resolve a target once, keeping the first address of the wanted family.
pub fn resolve(s: &str, family: Option<Family>) -> Result<SocketAddr, Error> {
    let (host, port) = split_host_port(s)?;
    let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::Setup(format!("cannot resolve host '{host}': {e}")))?
            .collect()
    };
    addrs
        .iter()
        .copied()
        .find(|a| match family {
            Some(Family::V4) => a.is_ipv4(),
            Some(Family::V6) => a.is_ipv6(),
            None => true,
        })
        .ok_or_else(|| {
            let which = match family {
                Some(Family::V4) => "IPv4 ",
                Some(Family::V6) => "IPv6 ",
                None => "",
            };
            Error::Setup(format!("host '{host}' has no {which}address"))
        })
}

fn parse_listen(s: &str) -> Result<SocketAddr, Error> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:")
            .ok_or_else(|| Error::Usage(format!("invalid listen address '{s}'")))?
    } else {
        s.rsplit_once(':').ok_or_else(|| {
            Error::Usage(format!(
                "invalid listen address '{s}': expected ADDR:PORT, e.g. 0.0.0.0:12001"
            ))
        })?
    };
    let ip: IpAddr = host.parse().map_err(|_| {
        Error::Usage(format!(
            "invalid listen address '{s}': '{host}' is not an IP address"
        ))
    })?;
    let port: u16 = port.parse().map_err(|_| {
        Error::Usage(format!(
            "invalid listen address '{s}': port must be 0 to 65535"
        ))
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// A duration: a plain number is seconds (`0.2`), or a humantime value (`200ms`, `1m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return Err(format!("'{s}' is not a finite number of seconds"));
        }
        if secs < 0.0 {
            return Err(format!("'{s}' is negative; a duration must be 0 or more"));
        }
        if secs > 86_400.0 * 365.0 {
            return Err(format!("'{s}' seconds is too long"));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    if s.starts_with('-') {
        return Err(format!("'{s}' is negative; a duration must be 0 or more"));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("'{s}' is not a duration ({e}); use seconds like 0.5 or units like 500ms")
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcpping-diag").chain(args.iter().copied()))
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
        assert!(parse_duration("-1").unwrap_err().contains("negative"));
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
    fn listen_addresses() {
        assert_eq!(
            parse_listen("[::]:12001").unwrap(),
            "[::]:12001".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:0").unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert!(parse_listen("localhost:1").is_err());
        assert!(parse_listen("1.2.3.4").is_err());
    }
}
