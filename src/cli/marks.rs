//! `--tos N` / `--dscp N` (trace and the ping modes): the IPv4 TOS byte or IPv6 traffic class
//! of every probe, to test QoS policies and see who remarks them; trace's `--ecn` joins them
//! in [`Marks`].

use clap::Args;

use crate::packet::build::Marks;

#[derive(Args, Debug, Clone, Copy, Default)]
pub struct TosArgs {
    /// The IPv4 TOS byte / IPv6 traffic class of every probe (0-255, DSCP and ECN bits, as
    /// ping -Q): SYN probes carry it in the packet, connect probes get IP_TOS / IPV6_TCLASS
    #[arg(long, value_name = "N", value_parser = parse_tos, conflicts_with = "dscp")]
    pub tos: Option<u8>,

    /// The DSCP of every probe (0-63, i.e. --tos N*4), to test QoS policies (trace names the
    /// hop that remarks it)
    #[arg(long, value_name = "N", value_parser = parse_dscp)]
    pub dscp: Option<u8>,
}

fn parse_tos(s: &str) -> Result<u8, String> {
    let rule = "the TOS must be a whole number from 0 to 255 (or 0x00 to 0xff)";
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).map_err(|_| rule.to_string()),
        None => s.parse::<u8>().map_err(|_| rule.to_string()),
    }
}

fn parse_dscp(s: &str) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(n) if n < 64 => Ok(n),
        _ => Err("the DSCP must be a whole number from 0 to 63".into()),
    }
}

impl TosArgs {
    /// The TOS byte asked for (0: none).
    pub fn tos(&self) -> u8 {
        self.tos.or(self.dscp.map(|d| d << 2)).unwrap_or(0)
    }

    /// The marks of a SYN: this TOS, and ECN setup when `ecn`.
    pub fn marks(&self, ecn: bool) -> Marks {
        Marks {
            tos: self.tos(),
            ecn_setup: ecn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tos_and_dscp_values() {
        assert_eq!(parse_tos("0xb8"), Ok(0xb8));
        assert_eq!(parse_tos("184"), Ok(184));
        assert!(parse_tos("256").is_err() && parse_tos("-1").is_err());
        assert_eq!(parse_dscp("46"), Ok(46));
        assert!(parse_dscp("64").is_err());
        let a = TosArgs {
            tos: None,
            dscp: Some(46),
        };
        assert_eq!(
            a.marks(true),
            Marks {
                tos: 184,
                ecn_setup: true
            }
        );
        assert_eq!(TosArgs::default().tos(), 0);
    }

    fn parse(args: &[&str]) -> Result<crate::cli::Cli, clap::Error> {
        use clap::Parser;
        crate::cli::Cli::try_parse_from(std::iter::once("tcpping-diag").chain(args.iter().copied()))
    }

    #[test]
    fn the_flags_on_the_command_lines() {
        // ping: --dscp N is --tos N*4; the two conflict.
        let cli = parse(&["--dscp", "46", "127.0.0.1:80"]).unwrap();
        assert_eq!(cli.ping.into_config().unwrap().tos, 184);
        let cli = parse(&["--tos", "0x28", "127.0.0.1:80"]).unwrap();
        assert_eq!(cli.ping.into_config().unwrap().tos, 0x28);
        assert!(parse(&["--tos", "4", "--dscp", "1", "127.0.0.1:80"]).is_err());
        assert!(parse(&["--dscp", "64", "127.0.0.1:80"]).is_err());
        // trace: --ecn and --dscp make the marks; they need SYN probes.
        let trace = |args: &[&str]| match parse(args).unwrap().command {
            Some(crate::cli::Command::Trace(t)) => t.into_config(),
            _ => panic!("not a trace"),
        };
        let cfg = trace(&["trace", "127.0.0.1:80", "--ecn", "--dscp", "46"]).unwrap();
        assert_eq!(
            cfg.marks,
            Marks {
                tos: 184,
                ecn_setup: true
            }
        );
        assert_eq!(
            trace(&["trace", "127.0.0.1:80"]).unwrap().marks,
            Marks::default()
        );
        let e = trace(&["trace", "127.0.0.1:80", "--ecn", "--probe", "connect"]).unwrap_err();
        assert!(e.to_string().contains("need SYN probes"), "{e}");
    }
}
