//! The many-targets event loop ([`Run`]) driven over the simulated network of
//! [`crate::cmd::sim`]: several targets at once, each with its own verdicts, sequence
//! numbers and summary, one of them failing. Times are only lower bounds.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::event_loop::Run;
use super::{first_targets, resolve, Config};
use crate::cmd::sim::{addr, cli, hosts, ms, Fate, Host, Sim};
use crate::net::Waker;
use crate::output::Reporter;

const A: &str = "127.0.0.11:80";
const B: &str = "127.0.0.12:80";
const C: &str = "127.0.0.13:80";

/// The settings of `tcpping-diag --connect-only --json ARGS…`.
fn config(args: &[&str]) -> Config {
    Config::from_args(cli(args).ping).unwrap()
}

/// What a run printed, per target.
#[derive(Default)]
struct Target {
    /// (seq, status) of each ping event, in order.
    pings: Vec<(u64, String)>,
    summaries: Vec<Value>,
}

impl Target {
    fn statuses(&self) -> Vec<&str> {
        self.pings.iter().map(|(_, s)| s.as_str()).collect()
    }

    fn seqs(&self) -> Vec<u64> {
        self.pings.iter().map(|(q, _)| *q).collect()
    }

    /// The summary's counts: sent, received, timeout, refused, interrupted.
    fn counts(&self) -> [u64; 5] {
        assert_eq!(self.summaries.len(), 1, "one summary");
        ["sent", "received", "timeout", "refused", "interrupted"]
            .map(|k| self.summaries[0][k].as_u64().unwrap())
    }
}

/// What a run printed, and when it started.
struct Ran {
    code: i32,
    targets: BTreeMap<String, Target>,
    t0: Instant,
}

/// Run the event loop as `run()` does, over `sim`.
fn run(args: &[&str], sim: &mut Sim, stop: &AtomicBool) -> Ran {
    run_with(args, sim, stop, &AtomicBool::new(false), || {})
}

/// [`run`], with a SIGHUP flag, and `between` called once the targets were first read.
fn run_with(
    args: &[&str],
    sim: &mut Sim,
    stop: &AtomicBool,
    hup: &AtomicBool,
    between: impl FnOnce(),
) -> Ran {
    let cfg = config(args);
    let waker = Waker::new().unwrap();
    let resolver = resolve::Resolver::start(cfg.family, &waker.sender().unwrap()).unwrap();
    let mut buf = Vec::new();
    let out = Reporter::new(&mut buf, &cfg.template);
    let lines = first_targets(&cfg).unwrap();
    between();
    let t0 = Instant::now();
    let wake = waker.sender().unwrap();
    let mut run = Run::new(&cfg, sim, out, None, resolver, wake, None);
    run.start(lines);
    let started = Instant::now();
    run.until_done(stop, hup).unwrap();
    let code = run.finish(started, Instant::now()).unwrap();
    drop(run);
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    for line in String::from_utf8(buf).unwrap().lines() {
        let ev: Value = serde_json::from_str(line).unwrap();
        let t = targets
            .entry(ev["target"].as_str().unwrap().to_string())
            .or_default();
        match ev["type"].as_str().unwrap() {
            "ping" => t.pings.push((
                ev["seq"].as_u64().unwrap(),
                ev["status"].as_str().unwrap().to_string(),
            )),
            "summary" => t.summaries.push(ev),
            _ => {}
        }
    }
    Ran { code, targets, t0 }
}

/// When each probe to `to` left.
fn sent_to(sim: &Sim, to: &str) -> Vec<Instant> {
    sim.sent
        .iter()
        .zip(&sim.sent_when)
        .filter(|(s, _)| s.target == addr(to))
        .map(|(_, at)| *at)
        .collect()
}

#[test]
fn each_target_has_its_own_verdicts_numbers_and_summary() {
    let mut sim = Sim::new(hosts([
        (addr(A), Host::always(Fate::Reply(ms(1)))),
        (addr(B), Host::always(Fate::Refused(ms(1)))),
        (addr(C), Host::always(Fate::Lost)),
    ]));
    sim.timeout = ms(20);
    let r = run(
        &["-n", "3", "-i", "10ms", A, B, C],
        &mut sim,
        &AtomicBool::new(false),
    );
    let t = &r.targets;
    assert_eq!(t.keys().collect::<Vec<_>>(), [A, B, C]);
    for (name, want) in [(A, "reply"), (B, "refused"), (C, "timeout")] {
        assert_eq!(t[name].seqs(), [1, 2, 3], "{name}");
        assert_eq!(t[name].statuses(), [want; 3], "{name}");
    }
    assert_eq!(t[A].counts(), [3, 3, 0, 0, 0]);
    assert_eq!(t[B].counts(), [3, 0, 0, 3, 0]);
    assert_eq!(t[C].counts(), [3, 0, 3, 0, 0]);
    // The prober saw one run-wide sequence, three probes to each target.
    let mut seqs: Vec<u64> = sim.sent.iter().map(|s| s.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    for name in [A, B, C] {
        let to = sent_to(&sim, name);
        assert_eq!(to.len(), 3, "{name}");
        // Each target's probes leave on its own interval: probe k no earlier than k
        // intervals after the start.
        for (k, at) in to.iter().enumerate() {
            assert!(*at >= r.t0 + ms(10) * k as u32, "{name}: probe {}", k + 1);
        }
    }
    assert_eq!(r.code, 0, "a target answered");
}

#[test]
fn no_target_answering_exits_1() {
    let mut sim = Sim::new(hosts([
        (addr(A), Host::always(Fate::Refused(ms(1)))),
        (addr(B), Host::always(Fate::SendError)),
    ]));
    let r = run(
        &["-n", "2", "-i", "5ms", A, B],
        &mut sim,
        &AtomicBool::new(false),
    );
    let t = &r.targets;
    assert_eq!(t[A].statuses(), ["refused"; 2]);
    assert_eq!(t[B].statuses(), ["error"; 2]);
    assert_eq!(t[B].summaries[0]["error"], 2);
    assert_eq!(r.code, 1);
}

#[test]
fn a_target_the_prober_cannot_carry_yet_waits_and_the_others_go_on() {
    // A: one probe at a time, each answered after 30 ms; B: answered at once.
    let mut sim = Sim::new(hosts([
        (
            addr(A),
            Host {
                fates: vec![Fate::Reply(ms(30))],
                max_in_flight: Some(1),
            },
        ),
        (addr(B), Host::always(Fate::Reply(ms(1)))),
    ]));
    let r = run(
        &["-n", "4", "-i", "5ms", A, B],
        &mut sim,
        &AtomicBool::new(false),
    );
    let t = &r.targets;
    for name in [A, B] {
        assert_eq!(t[name].seqs(), [1, 2, 3, 4], "{name}");
        assert_eq!(t[name].counts(), [4, 4, 0, 0, 0], "{name}");
    }
    for w in sent_to(&sim, A).windows(2) {
        assert!(
            w[1] >= w[0] + ms(30),
            "A's next probe left before its answer"
        );
    }
    assert_eq!(r.code, 0);
}

#[test]
fn a_signal_ends_every_target_with_its_summary() {
    // No count: until interrupted, which comes as the fourth probe leaves; no probe is
    // ever answered (their timeout, 10 s, is never waited for).
    let stop = Arc::new(AtomicBool::new(false));
    let mut sim = Sim::new(hosts([]));
    sim.timeout = Duration::from_secs(10);
    sim.raise_after = Some((4, Arc::clone(&stop)));
    let r = run(&["-i", "10ms", "-W", "10", A, B], &mut sim, &stop);
    let t = &r.targets;
    // (Timers due together fire in one turn of the loop: a late turn may send one more.)
    let n = sim.sent.len() as u64;
    assert!(n >= 4, "{n}");
    let sent: u64 = [A, B].iter().map(|n| t[*n].counts()[0]).sum();
    let interrupted: u64 = [A, B].iter().map(|n| t[*n].counts()[4]).sum();
    assert_eq!((sent, interrupted), (n, n));
    for name in [A, B] {
        assert!(t[name].statuses().iter().all(|s| *s == "interrupted"));
    }
    assert_eq!(r.code, 1);
}

#[test]
fn at_sighup_a_removed_target_ends_with_its_summary_and_an_added_one_starts() {
    // The file names A and B, then B and C; the SIGHUP comes as the first probe (A's)
    // leaves. A's probe is never answered and A may carry only one: it is still in flight
    // when A is stopped, so nothing of A but its summary is reported.
    let dir = std::env::temp_dir().join(format!("tpd-sim-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("targets.txt");
    std::fs::write(&file, format!("{A}\n{B}\n")).unwrap();
    let hup = Arc::new(AtomicBool::new(false));
    let mut sim = Sim::new(hosts([
        (
            addr(A),
            Host {
                fates: vec![Fate::Lost],
                max_in_flight: Some(1),
            },
        ),
        (addr(B), Host::always(Fate::Reply(ms(1)))),
        (addr(C), Host::always(Fate::Reply(ms(1)))),
    ]));
    sim.timeout = Duration::from_secs(10);
    sim.raise_after = Some((1, Arc::clone(&hup)));
    let path = file.to_str().unwrap();
    let r = run_with(
        &["-n", "3", "-i", "10ms", "-W", "10", "-f", path],
        &mut sim,
        &AtomicBool::new(false),
        &hup,
        || std::fs::write(&file, format!("{B}\n{C}\n")).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let t = &r.targets;
    assert_eq!(sim.sent[0].target, addr(A));
    assert!(t[A].pings.is_empty(), "{:?}", t[A].pings);
    assert_eq!(t[A].counts(), [0, 0, 0, 0, 0], "A's summary, once");
    for name in [B, C] {
        assert_eq!(t[name].seqs(), [1, 2, 3], "{name}");
        assert_eq!(t[name].counts(), [3, 3, 0, 0, 0], "{name}");
    }
    assert_eq!(r.code, 0);
}
