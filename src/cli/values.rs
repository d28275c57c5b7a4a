//! What a flag's value may be: durations (`-i`, `-W`, the server's timeouts), counts,
//! listen addresses (`serve --listen`, `--metrics`). Each returns the message clap shows
//! after "invalid value", naming the rule.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::error::Error;

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
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    parse_bounded(s, "the interval", Duration::ZERO)
}

/// The shortest timeout: below a millisecond the waits (poll(2) counts milliseconds) could
/// not honour it.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// `-W`: at least `MIN_TIMEOUT`.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_bounded(s, "the timeout", MIN_TIMEOUT)
}

/// `-n`: a whole number, 1 or more.
pub fn parse_count(s: &str) -> Result<u64, String> {
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

pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("'{s}' must be more than zero"));
    }
    Ok(d)
}
