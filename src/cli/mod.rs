//! Command-line flags (raw, as clap parses them) and their validation into configs, one file
//! per command; every flag is declared in the file of its command.
//!
//! Two layers, as ripgrep does: `Cli` is what the user typed; `ClientConfig`, `MultiConfig`,
//! `TraceConfig` and `ServerConfig` are validated, resolved settings the rest of the program
//! can trust.
//!
//! - this file: the top-level `Cli`, its subcommands, the usage and examples of `--help`;
//! - `ping`: a ping of one target and the many-targets mode (`PingArgs`, `ClientConfig`,
//!   `MultiConfig`);
//! - `common`: the flags ping, many targets and trace share (`-i`, `-W`, `-4`, `-6`);
//! - `trace`, `serve`, `report`, `generate`: each subcommand's flags (`demo` has none);
//! - `values`: what a flag's value may be (durations, counts, listen addresses).

mod common;
mod generate;
mod marks;
mod ping;
mod report;
mod serve;
mod trace;
mod values;

use clap::{Parser, Subcommand};

pub use common::CommonArgs;
pub use generate::{GenerateArgs, Generated};
pub use marks::TosArgs;
pub use ping::{ClientConfig, FlowArg, MultiConfig, PingArgs};
pub use report::ReportArgs;
pub use serve::ServeArgs;
pub use trace::{Search, TraceArgs, TraceConfig, TraceProbe};

/// How results are written (a type of the output layer).
pub use crate::output::Output;
/// How each ping talks to the target: a type of the probe layer, which the flags map to.
pub use crate::probe::Mode;
/// Targets as typed, and their resolution, live with the networking (`crate::resolve`); the
/// many-targets mode still reaches them here.
pub use crate::resolve::{
    check_host, cut, first_of_family, resolve, split_host_port, Family, MAX_NAME,
};

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

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;
