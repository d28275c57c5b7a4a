//! The flags ping, many targets and trace share, declared once and flattened into each:
//! the interval (`-i`), the timeout (`-W`) and the address family (`-4`, `-6`).
//!
//! `-i` and `-W` mean a little more for each command (ping: every ping starts on the interval;
//! trace: every cycle does), so each command gives them their help text ([`helps`]); the
//! parsing, bounds and defaults are these.

use std::time::Duration;

use clap::{Arg, Args};

use super::values::{parse_interval, parse_timeout};
use crate::output::Output;
use crate::resolve::Family;

#[derive(Args, Debug)]
pub struct CommonArgs {
    #[arg(short = 'i', long, value_name = "SECS", default_value = "1",
          value_parser = parse_interval, allow_negative_numbers = true)]
    pub interval: Duration,

    #[arg(short = 'W', long, value_name = "SECS", default_value = "1",
          value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Duration,

    /// Use IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only
    #[arg(short = '6')]
    pub ipv6: bool,
}

impl CommonArgs {
    /// The address family asked for: None when neither `-4` nor `-6` was given.
    pub fn family(&self) -> Option<Family> {
        match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        }
    }
}

/// `--json`: NDJSON events, else lines for people.
pub fn output(json: bool) -> Output {
    if json {
        Output::Json
    } else {
        Output::Human
    }
}

/// Give `-i` and `-W` a command's help texts: `#[command(mut_args(helps(..)))]` on the
/// command's flags (`mut_args` keeps the flags in their order, as `--help` and the
/// completions list them).
pub fn helps(interval: &'static str, timeout: &'static str) -> impl FnMut(Arg) -> Arg {
    move |a| match a.get_id().as_str() {
        "interval" => a.help(interval),
        "timeout" => a.help(timeout),
        _ => a,
    }
}
