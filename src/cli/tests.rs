//! The flags as clap parses them, and their validation (ping, many targets, serve).

use std::time::Duration;

use super::serve::edit_distance;
use super::values::{parse_duration, parse_listen, parse_metrics_listen, parse_positive_duration};
use super::*;
use crate::server::{LossMode, ServerConfig};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("tcpping-diag").chain(args.iter().copied()))
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
    assert_eq!(c.ping.common.interval, Duration::ZERO);
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
        e.contains("unexpected argument '127.0.0.1:12349': did you mean --listen 127.0.0.1:12349?"),
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
