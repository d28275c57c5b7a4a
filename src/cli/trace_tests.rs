//! `trace`'s flags as clap parses them, and their validation.

use std::time::Duration;

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
    assert_eq!(t.common.timeout, Duration::from_secs(1));
    assert_eq!(t.probe, TraceProbe::Auto);
    let c = t.into_config().unwrap();
    assert_eq!(c.run.cycles, Some(1));
    assert_eq!(c.run.target, "127.0.0.1:443".parse().unwrap());
    assert!(!c.run.resolve);
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
    assert_eq!((c.run.max_hops, c.run.queries, c.run.flows), (8, 2, 6));
    assert_eq!(c.run.cycles, None, "--cycles 0: until interrupted");
    assert_eq!(c.run.interval, Duration::from_millis(200));
    assert_eq!(c.run.timeout, Duration::from_millis(500));
    assert!(c.run.resolve && c.output == Output::Json && c.probe == TraceProbe::Syn);
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
    // connect() probes keep a constant flow too (a port per flow): --flows with them is fine.
    let c = trace_args(&["127.0.0.1:1", "--flows", "2", "--probe", "connect"])
        .into_config()
        .unwrap();
    assert_eq!((c.run.flows, c.probe), (2, TraceProbe::Connect));
    let e = trace_args(&["127.0.0.1:0"]).into_config().unwrap_err();
    assert!(e.to_string().contains("port 0"), "{e}");
    assert!(trace_args(&["[::1]:7", "-4"]).into_config().is_err());
}

#[test]
fn multipath_confidence_and_rate() {
    let c = trace_args(&["127.0.0.1:443"]).into_config().unwrap();
    assert_eq!(c.search, Search::default());
    assert!(!c.search.multipath && c.search.rate == 2000);
    assert!((c.search.alpha - 0.05).abs() < 1e-9);
    let c = trace_args(&[
        "127.0.0.1:443",
        "--multipath",
        "--confidence",
        "99",
        "--rate",
        "0",
    ])
    .into_config()
    .unwrap();
    assert!(c.search.multipath && c.search.rate == 0);
    assert!(c.run.multipath, "the output says the flows are a budget");
    assert!((c.search.alpha - 0.01).abs() < 1e-9);
    // The search picks its flows from the whole budget, one query each.
    assert_eq!(c.run.queries, 1);
    assert_eq!(c.run.flows, crate::trace::mda::MAX_FLOWS);
    for bad in [
        &["h:1", "--confidence", "49"][..],
        &["h:1", "--confidence", "100"],
        &["h:1", "--confidence", "95.5"],
        &["h:1", "--rate", "-1"],
        &["h:1", "--rate", "1000001"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
    for (args, says) in [
        (
            &["127.0.0.1:1", "--multipath", "--flows", "8"][..],
            "drop --flows",
        ),
        (
            &["127.0.0.1:1", "--multipath", "--cycles", "3"],
            "drop --flows",
        ),
        (&["127.0.0.1:1", "--multipath", "-q", "2"], "drop --flows"),
    ] {
        let e = trace_args(args).into_config().unwrap_err();
        assert!(e.to_string().contains(says), "{args:?}: {e}");
    }
    // connect() probes keep constant flows too: --multipath with them is fine.
    let c = trace_args(&["127.0.0.1:1", "--multipath", "--probe", "connect"])
        .into_config()
        .unwrap();
    assert_eq!(c.probe, TraceProbe::Connect);
}
