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

    /// The DSCP of every probe (0-63; --tos N*4): trace names the hop that remarks it
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
}
