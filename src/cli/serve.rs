//! `tcpping-diag serve`: its flags (`ServeArgs`), validated into the server's own
//! `ServerConfig`, and the hints for an argument it does not take.

use std::time::Duration;

use clap::Args;

use super::values::{parse_listen, parse_positive_duration};
use crate::error::Error;
use crate::server::{LossMode, ServerConfig};

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
pub fn edit_distance(a: &str, b: &str) -> usize {
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

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number from 0.0 to 1.0"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("'{s}' is outside 0.0 to 1.0"));
    }
    Ok(r)
}
