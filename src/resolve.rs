//! Targets as typed, `HOST:PORT`, and their resolution: splitting host and port (IPv6 in
//! brackets, service names from /etc/services, URLs refused with a hint), checking a host
//! name before any resolver is asked, and choosing the address of the wanted family.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::error::Error;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
