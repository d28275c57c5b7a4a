//! The trace strategy, accounting, verdict and output driven through the `Prober` trait by
//! the simulated network of [`crate::cmd::sim`]: routers that answer time exceeded (or not,
//! or only so often), a router that refuses, a silent drop, load-balanced branches, and a
//! target that, like a real TCP stack, holds a half-open connection per 4-tuple and drops
//! other SYNs of that flow until our answer to its SYN-ACK (the RST our kernel sends) is out.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use super::engine::{Answer, Engine, HopDone, Plan};
use super::retry::try_other_flows;
use super::state::TraceState;
use super::verdict::{verdict, Branch, How, Kind, Verdict};
use super::{drive, Progress};
use crate::cmd::sim::{diamond, ip, net, Net, Sim, TARGET};
use crate::icmp::extension::{Extensions, MplsLabel};
use crate::probe::Prober;

/// What a run produced.
struct Run {
    hops: Vec<HopDone>,
    cycles: Vec<u64>,
    state: TraceState,
    verdict: Verdict,
    engine: Engine,
    sim: Sim,
}

/// The plan of a trace to [`TARGET`] on constant flows.
fn plan(max_hops: u8, queries: u16, flows: u16) -> Plan {
    Plan {
        target: TARGET.parse().unwrap(),
        max_hops,
        queries,
        flows,
        constant_flows: true,
        gap: None,
    }
}

fn run_with(net: Net, queries: u16, flows: u16, max_hops: u8, cycles: u64) -> Run {
    run_plan(net, plan(max_hops, queries, flows), cycles)
}

fn run_plan(net: Net, plan: Plan, cycles: u64) -> Run {
    let (max_hops, queries, flows) = (plan.max_hops, plan.queries, plan.flows);
    let mut engine = Engine::new(plan);
    let mut sim = Sim::new(net);
    let mut state = TraceState::new(TARGET.parse().unwrap(), max_hops, queries, flows);
    let mut hops = Vec::new();
    let mut done_cycles = Vec::new();
    let stop = AtomicBool::new(false);
    let clock = Rc::clone(&sim.clock);
    drive(
        &mut engine,
        &mut sim,
        Some(cycles),
        Duration::ZERO,
        &stop,
        &move || clock.get(),
        &mut |p| {
            match p {
                Progress::Hop(h) => {
                    state.record(h);
                    hops.push(h.clone());
                }
                Progress::CycleDone(c) => {
                    state.cycles_done = c;
                    done_cycles.push(c);
                }
            }
            Ok(true)
        },
    )
    .unwrap();
    let verdict = verdict(&state, "1s");
    Run {
        hops,
        cycles: done_cycles,
        state,
        verdict,
        engine,
        sim,
    }
}

fn run(net: Net) -> Run {
    run_with(net, 3, 1, 30, 1)
}

/// A trace on one flow driven some cycles at a time, the network changing between: its
/// engine, its network, and the hops it recorded.
struct Stepped {
    engine: Engine,
    sim: Sim,
    state: TraceState,
}

impl Stepped {
    fn new(net: Net, max_hops: u8, queries: u16) -> Stepped {
        Stepped {
            engine: Engine::new(plan(max_hops, queries, 1)),
            sim: Sim::new(net),
            state: TraceState::new(TARGET.parse().unwrap(), max_hops, queries, 1),
        }
    }

    /// Drive on until `cycles` cycles are done.
    fn drive_to(&mut self, cycles: u64) {
        let state = &mut self.state;
        let clock = Rc::clone(&self.sim.clock);
        drive(
            &mut self.engine,
            &mut self.sim,
            Some(cycles),
            Duration::ZERO,
            &AtomicBool::new(false),
            &move || clock.get(),
            &mut |p| {
                if let Progress::Hop(h) = p {
                    state.record(h);
                }
                Ok(true)
            },
        )
        .unwrap();
    }
}

#[test]
fn an_open_port_answers_every_query_despite_the_collisions_of_a_constant_flow() {
    let r = run(net(3));
    assert_eq!(r.cycles, [1]);
    let shown: Vec<u8> = r.hops.iter().map(|h| h.hop).collect();
    assert_eq!(shown, [1, 2, 3, 4], "no hop beyond the destination");
    for (i, h) in r.hops[..3].iter().enumerate() {
        assert_eq!(h.outcomes.len(), 3);
        assert!(h
            .outcomes
            .iter()
            .all(|o| matches!(o.answer, Answer::TimeExceeded(_))
                && o.from == Some(ip(&format!("10.0.{}.1", i + 1)))));
    }
    let dest = &r.hops[3];
    assert!(
        dest.outcomes
            .iter()
            .all(|o| o.answer == Answer::Reached { open: true } && o.from == Some(ip("10.0.9.5"))),
        "{:?}",
        dest.outcomes
    );
    // The burst: 30 hops x 3 queries; the two queries of hop 4 that met the half-open
    // connection went again, one at a time.
    let (sent, reprobes) = r.engine.sent();
    assert_eq!((sent, reprobes), (92, 2));
    assert_eq!(dest.outcomes.iter().filter(|o| o.reprobe).count(), 2);
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 4, open: true });
    assert_eq!(r.verdict.text, "reached 10.0.9.5:443 (open) in 4 hops");
    assert_eq!(r.state.hops[&4].loss_pct(), 0.0);
}

#[test]
fn behind_a_slow_link_every_query_is_answered_without_waiting_for_a_timeout() {
    // The last link shapes (burst: one packet). The first SYN of hop 4 crosses at once and
    // is answered, but our RST queues behind the burst's other SYNs: the next SYN to cross
    // after it (query 2's original) opens another half-open connection, which the re-probe
    // sent meanwhile (it left before that SYN-ACK came) meets. The engine knows from the
    // times that this re-probe is lost, and sends the next without waiting for its timeout.
    let mut n = net(3);
    n.slow_last_link = Some(1);
    let r = run_with(n, 3, 1, 30, 1);
    let h4 = &r.state.hops[&4];
    assert_eq!((h4.sent, h4.received), (3, 3), "every query answered");
    assert!(r.engine.sent().1 >= 2, "re-probes: {:?}", r.engine.sent());
    assert_eq!(
        r.sim.timeouts_given, 0,
        "the cycle ended before any timeout"
    );
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 4, open: true });
    assert_eq!(r.state.hops.len(), 4);
    // More cycles, longer bursts: still every query.
    for burst in [0, 2, 5, 40] {
        let mut n = net(3);
        n.slow_last_link = Some(burst);
        let r = run_with(n, 3, 1, 30, 3);
        let h4 = &r.state.hops[&4];
        assert_eq!((h4.sent, h4.received), (9, 9), "burst {burst}");
    }
}

#[test]
fn later_cycles_probe_only_up_to_the_destination_and_its_queries_one_at_a_time() {
    let r = run_with(net(3), 3, 1, 30, 3);
    assert_eq!(r.cycles, [1, 2, 3]);
    // Cycle 1: 92 (see above). Cycles 2 and 3: 4 hops x 3 queries each, no re-probes.
    assert_eq!(r.engine.sent(), (92 + 2 * 12, 2));
    let h4 = &r.state.hops[&4];
    assert_eq!(
        (h4.sent, h4.received),
        (9, 9),
        "every query of every cycle answered"
    );
    assert_eq!(r.state.hops.len(), 4);
    // The hop-4 probes of cycles 2 and 3 left one after the other: each after the answer of
    // the one before (the simulated target drops a SYN that meets a half-open connection).
    let sent_h4: Vec<u64> = r
        .sim
        .sent
        .iter()
        .filter(|s| s.ttl == Some(4))
        .map(|s| s.seq)
        .collect();
    assert_eq!(sent_h4.len(), 3 + 2 + 3 + 3);
}

#[test]
fn a_closed_port_needs_no_second_probe() {
    let mut n = net(2);
    n.open = false;
    let r = run(n);
    assert_eq!(r.engine.sent(), (90, 0));
    assert_eq!(r.hops.len(), 3);
    assert!(r.hops[2]
        .outcomes
        .iter()
        .all(|o| o.answer == Answer::Reached { open: false }));
    assert_eq!(r.verdict.text, "reached 10.0.9.5:443 (closed) in 3 hops");
}

#[test]
fn a_router_that_refuses_ends_the_path_at_its_own_hop() {
    // Router 2 answers time exceeded for TTL 2 and refuses (3/13) whatever it would forward,
    // as a Linux FORWARD rule does (the TTL is checked first).
    let mut n = net(4);
    n.refuse_at = Some((2, 3, 13));
    let r = run(n);
    let shown: Vec<u8> = r.hops.iter().map(|h| h.hop).collect();
    assert_eq!(shown, [1, 2, 3]);
    assert!(r.hops[2].outcomes.iter().all(
        |o| matches!(&o.answer, Answer::Unreachable(rep) if rep.code == 13)
            && o.from == Some(ip("10.0.2.1"))
    ));
    match r.verdict.kind {
        Kind::PathEnds {
            hop,
            probe_hop,
            router,
            icmp_type,
            code,
            ..
        } => {
            assert_eq!((hop, probe_hop, router), (2, 3, ip("10.0.2.1")));
            assert_eq!((icmp_type, code), (3, 13));
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(
        r.verdict.text,
        "path ends at hop 2: 10.0.2.1 says communication administratively prohibited"
    );
    assert!(!r.verdict.reached());
}

#[test]
fn a_router_that_refuses_before_its_ttl_check_ends_the_path_at_the_probe_hop() {
    // Refused from a router never seen answering time exceeded (a filter on its way in).
    let mut n = net(4);
    n.refuse_at = Some((2, 3, 10));
    n.mute.insert(2);
    let r = run(n);
    match r.verdict.kind {
        Kind::PathEnds { hop, probe_hop, .. } => assert_eq!((hop, probe_hop), (3, 3)),
        k => panic!("{k:?}"),
    }
}

#[test]
fn the_target_itself_refusing_is_named() {
    let mut n = net(2);
    n.target_refuses = Some((3, 3));
    let r = run(n);
    assert_eq!(
        r.verdict.text,
        "path ends at hop 3: 10.0.9.5 (the target itself) says destination port unreachable"
    );
}

#[test]
fn silence_after_a_hop_names_the_gap() {
    let mut n = net(4);
    n.drop_after = Some(2);
    let r = run(n);
    assert_eq!(r.hops.len(), 30, "every hop was probed and waited for");
    assert_eq!(
        r.verdict.kind,
        Kind::SilentAfter {
            hop: 2,
            router: Some(ip("10.0.2.1"))
        }
    );
    assert_eq!(
        r.verdict.text,
        "silent after hop 2 (10.0.2.1): nothing answers beyond it; something between hop 2 and hop 3 drops TCP to port 443"
    );
}

/// connect() probes: a flow's probes one at a time, given up after `GAP` silent hops.
fn one_at_a_time(queries: u16, flows: u16) -> Plan {
    Plan {
        constant_flows: false,
        gap: Some(crate::trace::mda::GAP),
        ..plan(30, queries, flows)
    }
}

#[test]
fn probes_one_at_a_time_give_a_silent_flow_up_after_three_silent_hops() {
    let mut n = net(4);
    n.drop_after = Some(2);
    let r = run_plan(n, one_at_a_time(3, 1), 1);
    assert_eq!(r.sim.max_in_flight, 1, "one probe of the flow at a time");
    // Hops 1-2 answer, 3-5 are silent: nothing above hop 5 is sent, or waited for.
    assert_eq!(r.sim.sent.len(), 5 * 3);
    assert_eq!(r.sim.timeouts_given, 3 * 3);
    assert_eq!(r.hops.len(), 5);
    assert_eq!(r.cycles, [1]);
    assert_eq!(
        r.verdict.kind,
        Kind::SilentAfter {
            hop: 2,
            router: Some(ip("10.0.2.1"))
        }
    );
    // In order: hop by hop, each hop's queries together.
    let ttls: Vec<u8> = r.sim.sent.iter().map(|p| p.ttl.unwrap()).collect();
    assert_eq!(ttls, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]);
}

#[test]
fn probes_one_at_a_time_cross_fewer_silent_hops_than_the_gap_and_stop_at_the_target() {
    // Two mute routers in a row (hops 2 and 3) are not a gap of three: the target answers
    // at hop 5, and nothing above it is sent.
    let mut n = net(4);
    n.mute.insert(2);
    n.mute.insert(3);
    let r = run_plan(n, one_at_a_time(3, 2), 2);
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 5, open: true });
    assert!(r.sim.sent.iter().all(|p| p.ttl.unwrap() <= 5));
    assert_eq!(
        r.sim.sent.len(),
        2 * 2 * 5 * 3,
        "2 cycles, 2 flows, hops 1-5, 3 queries"
    );
    assert!(r.sim.max_in_flight <= 2, "one per flow");
}

#[test]
fn a_rate_limited_hop_is_not_a_break() {
    // Hop 2 has one token: it answers 1 of its 3 probes; the hops after it answer all.
    let mut n = net(3);
    n.tokens.insert(2, 1);
    let r = run(n);
    let h2 = &r.state.hops[&2];
    assert_eq!((h2.sent, h2.received), (3, 1));
    assert!(r.state.rate_limited(2));
    assert!(!r.state.rate_limited(1) && !r.state.rate_limited(3));
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 4, open: true });
    let notes = super::output::notes(&r.state);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("hop 2 (10.0.2.1) answered 1 of 3") && n.contains("not a break")),
        "{notes:?}"
    );
    // Rate-limited and then silent: the break is after the last hop that answers at all.
    let mut n = net(4);
    n.tokens.insert(2, 1);
    n.drop_after = Some(2);
    let r = run(n);
    assert_eq!(
        r.verdict.kind,
        Kind::SilentAfter {
            hop: 2,
            router: Some(ip("10.0.2.1"))
        }
    );
}

#[test]
fn a_mute_router_is_a_row_of_stars_not_the_end() {
    let mut n = net(3);
    n.mute.insert(2);
    let r = run(n);
    assert!(r.hops[1]
        .outcomes
        .iter()
        .all(|o| o.answer == Answer::Timeout));
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 4, open: true });
}

#[test]
fn nothing_at_all_and_a_path_longer_than_max_hops() {
    let mut n = net(3);
    n.drop_after = Some(0);
    let r = run(n);
    assert_eq!(r.verdict.kind, Kind::Nothing { error: None });
    assert_eq!(r.verdict.kind.name(), "not_reached");
    assert!(
        r.verdict
            .text
            .starts_with("not reached: nothing answered within 1s"),
        "{}",
        r.verdict.text
    );
    let r = run_with(net(12), 2, 1, 8, 1);
    assert_eq!(
        r.verdict.kind,
        Kind::TooFar {
            hop: 8,
            router: Some(ip("10.0.8.1"))
        }
    );
    assert!(r.verdict.text.contains("try a larger --max-hops"));
}

#[test]
fn a_loop_is_two_full_periods_of_distinct_routers() {
    use super::engine::{find_loop, LoopAt};
    let (a, b, c) = (
        Some(ip("10.0.0.1")),
        Some(ip("10.0.0.2")),
        Some(ip("10.0.0.3")),
    );
    let at = |from_hop, routers: &[Option<IpAddr>], certain_at| LoopAt {
        from_hop,
        routers: routers.iter().flatten().copied().collect(),
        certain_at,
    };
    assert_eq!(find_loop(&[a, b, a, b]), Some(at(1, &[a, b], 4)));
    assert_eq!(find_loop(&[a, b, c, b, c, b]), Some(at(2, &[b, c], 5)));
    assert_eq!(
        find_loop(&[None, a, b, c, a, b, c]),
        Some(at(2, &[a, b, c], 7))
    );
    // Not yet certain, broken by another address, a silent hop, or one router over and over
    // (not a loop of routers: period 1).
    assert_eq!(find_loop(&[a, b, a]), None);
    assert_eq!(find_loop(&[a, b, a, c, a, b]), None);
    assert_eq!(find_loop(&[a, b, None, b, a, b]), None);
    assert_eq!(find_loop(&[a, a, a, a, a]), None);
    assert_eq!(find_loop(&[]), None);
}

#[test]
fn a_routing_loop_is_named_as_soon_as_it_repeats() {
    // Hop 1, then two routers whose routes point at each other; nothing answers above hop
    // 10 (so waiting for hop 30 would mean waiting for timeouts).
    let mut n = net(1);
    n.loop_routers = vec![ip("10.0.2.2"), ip("10.0.3.2")];
    n.drop_after = Some(10);
    let r = run(n.clone());
    let want = Kind::Loop {
        hop: 2,
        routers: vec![ip("10.0.2.2"), ip("10.0.3.2")],
        until: 5,
    };
    assert_eq!(r.verdict.kind, want);
    assert_eq!(r.verdict.kind.name(), "loop");
    assert!(!r.verdict.reached());
    assert_eq!(
        r.verdict.text,
        "routing loop between 10.0.2.2 and 10.0.3.2 from hop 2: packets to 10.0.9.5:443 circle until their TTL runs out"
    );
    // Reported up to the hop where the loop is certain, without waiting for any timeout.
    let reported: Vec<u8> = r.hops.iter().map(|h| h.hop).collect();
    assert_eq!(reported, [1, 2, 3, 4, 5]);
    assert_eq!(
        r.sim.timeouts_given, 0,
        "waited for the hops above the loop"
    );
    // Later cycles probe up to there only, and it stays a loop.
    let r = run_with(n.clone(), 3, 1, 30, 3);
    assert_eq!(r.verdict.kind, want);
    assert_eq!(r.engine.sent().0, 90 + 2 * 15);
    assert!(r.sim.sent[90..].iter().all(|s| s.ttl <= Some(5)));
    // Three routers, every flow.
    let mut n = net(2);
    n.loop_routers = vec![ip("10.0.7.1"), ip("10.0.8.1"), ip("10.0.9.1")];
    let r = run_with(n, 1, 4, 30, 1);
    assert_eq!(
        r.verdict.kind,
        Kind::Loop {
            hop: 3,
            routers: vec![ip("10.0.7.1"), ip("10.0.8.1"), ip("10.0.9.1")],
            until: 8,
        }
    );
    assert_eq!(r.verdict.dissent, []);
    assert!(r
        .verdict
        .text
        .starts_with("routing loop between 10.0.7.1, 10.0.8.1 and 10.0.9.1 from hop 3: "));
    // A path longer than --max-hops is still that, not a loop.
    let r = run_with(net(40), 1, 1, 30, 1);
    assert!(matches!(r.verdict.kind, Kind::TooFar { hop: 30, .. }));
}

#[test]
fn send_errors_are_reported_not_taken_for_silence() {
    let mut n = net(2);
    n.send_error = true;
    let r = run_with(n, 1, 1, 3, 1);
    assert_eq!(
        r.verdict.kind,
        Kind::Nothing {
            error: Some("send the SYN: No route to host".into())
        }
    );
    assert_eq!(r.state.hops[&1].local_errors.len(), 1);
}

#[test]
fn one_constant_flow_sees_one_path_over_many_cycles() {
    let r = run_with(diamond(), 3, 1, 30, 10);
    for h in r.state.hops() {
        assert_eq!(h.next_hops(), 1, "hop {} flaps: {:?}", h.hop, h.routers);
    }
    assert_eq!(r.state.hops[&2].main_router(), Some(ip("10.0.12.2")));
}

#[test]
fn several_flows_find_both_branches_and_say_which_flow_took_which() {
    let r = run_with(diamond(), 2, 6, 30, 1);
    let h2 = &r.state.hops[&2];
    assert_eq!(h2.next_hops(), 2);
    let a = h2
        .routers
        .iter()
        .find(|x| x.addr == Some(ip("10.0.12.2")))
        .unwrap();
    let b = h2
        .routers
        .iter()
        .find(|x| x.addr == Some(ip("10.0.13.2")))
        .unwrap();
    assert_eq!(a.flows.iter().copied().collect::<Vec<_>>(), [0, 2, 4]);
    assert_eq!(b.flows.iter().copied().collect::<Vec<_>>(), [1, 3, 5]);
    // The destination answered every query of every flow (6 flows collide independently).
    let h4 = &r.state.hops[&4];
    assert_eq!((h4.sent, h4.received), (12, 12));
    assert_eq!(r.engine.sent().1, 6, "one re-probe per flow");
    assert_eq!(r.verdict.flows_reached, 6);
    // 6 answering flows rule out a third next hop? No: 12 are needed with 2 seen, at the
    // bound per router (one router branches: 5 % over it and one unseen).
    let notes = super::output::notes(&r.state);
    assert!(
        notes.iter().any(|n| n.starts_with(
            "note: hop 2: 6 flows through 10.0.1.1 (hop 1) answered, 2 next hops seen; 12"
        )),
        "{notes:?}"
    );
}

#[test]
fn a_partly_broken_path_is_partial_grouped_by_branch() {
    // Branch B (odd flows) loses everything past its hop 2: those flows never get through.
    let mut n = diamond();
    n.branch_drop_after = Some((1, 2));
    let r = run_with(n.clone(), 1, 16, 6, 1);
    let odd: Vec<u16> = (1..16).step_by(2).collect();
    assert_eq!(
        r.verdict.kind,
        Kind::Partial {
            hop: Some(4),
            open: true,
            broken: vec![Branch {
                hop: 2,
                router: Some(ip("10.0.13.2")),
                how: How::Silent,
                flows: odd.clone(),
            }],
        }
    );
    assert_eq!(r.verdict.kind.name(), "partial");
    assert_eq!((r.verdict.flows_reached, r.verdict.flows), (8, 16));
    assert_eq!(r.verdict.flows_broken(), 8);
    assert_eq!(r.verdict.exit_status(), 3);
    assert!(!r.verdict.reached());
    assert_eq!(
        r.verdict.text,
        "reached 10.0.9.5:443 on 8 of 16 flows; the 8 through 10.0.13.2 (hop 2) are silent after hop 2 (10.0.13.2): it drops TCP to port 443"
    );
    // The fields.
    let out = render(&r, crate::cli::Output::Json, 16, 1);
    let t: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(t["verdict"], "partial");
    assert_eq!(t["hops"], 4);
    assert_eq!(t["port"], "open");
    assert_eq!(t["break_hop"], 2);
    assert_eq!(t["break_router"], "10.0.13.2");
    assert_eq!((&t["flows"], &t["flows_reached"]), (&16.into(), &8.into()));
    assert_eq!(t["flows_broken"], 8);
    assert_eq!(
        t["broken"],
        serde_json::json!([{"hop": 2, "router": "10.0.13.2", "how": "silent", "icmp": null,
                            "flows": odd, "count": 8}])
    );
    assert_eq!(t["icmp"], serde_json::Value::Null);
    assert_eq!(t["text"], r.verdict.text.as_str());
    // The human output ends with it, in one line.
    let human = render(&r, crate::cli::Output::Human, 16, 1);
    assert!(
        human.ends_with(&format!("\n{}\n", r.verdict.text)),
        "{human}"
    );
    // The silent hops above, one line each: how many probes, not a star for each.
    assert!(
        human.contains("\n 5  *  (8 probes)\n 6  *  (8 probes)\n"),
        "{human}"
    );
    // One flow of two: "the one".
    let r = run_with(n, 1, 2, 6, 1);
    assert_eq!(
        r.verdict.text,
        "reached 10.0.9.5:443 on 1 of 2 flows; the one through 10.0.13.2 (hop 2) is silent after hop 2 (10.0.13.2): it drops TCP to port 443"
    );
    assert_eq!(r.verdict.dissent.len(), 1);
    // Every flow reached, or none: not partial.
    let r = run_with(diamond(), 1, 16, 6, 1);
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 4, open: true });
    assert_eq!((r.verdict.flows_broken(), r.verdict.exit_status()), (0, 0));
    let mut n = diamond();
    n.drop_after = Some(2);
    let r = run_with(n, 1, 4, 6, 1);
    assert_eq!(r.verdict.kind.name(), "silent_after");
    assert_eq!(r.verdict.exit_status(), 1);
}

#[test]
fn a_branch_is_named_by_the_last_router_that_answers_on_it() {
    // Three branches: two reach, one drops past its hop 2; or past its hop 1, its hop 2
    // mute: then it is named by the shared first router.
    let n = Net {
        branches: vec![
            vec![ip("10.0.1.1"), ip("10.0.12.2"), ip("10.0.15.2")],
            vec![ip("10.0.1.1"), ip("10.0.13.2"), ip("10.0.16.2")],
            vec![ip("10.0.1.1"), ip("10.0.14.2"), ip("10.0.17.2")],
        ],
        open: true,
        branch_drop_after: Some((1, 2)),
        ..Net::default()
    };
    let r = run_with(n.clone(), 1, 9, 6, 1);
    assert_eq!(r.verdict.flows_reached, 6);
    let mut m = n;
    m.branch_drop_after = Some((2, 1));
    m.mute.insert(2);
    let r2 = run_with(m, 1, 9, 6, 1);
    // Branch 2 (flows 2, 5, 8) is silent after hop 1, its hop 2 mute and nothing after it.
    match &r2.verdict.kind {
        Kind::Partial { broken, .. } => {
            assert_eq!(broken.len(), 1);
            assert_eq!((broken[0].hop, broken[0].router), (1, Some(ip("10.0.1.1"))));
            assert_eq!(broken[0].flows, [2, 5, 8]);
        }
        k => panic!("{k:?}"),
    }
    match &r.verdict.kind {
        Kind::Partial { broken, .. } => assert_eq!(broken[0].flows, [1, 4, 7]),
        k => panic!("{k:?}"),
    }
}

/// `try_other_flows` after a run, as the trace command does.
fn with_others(r: &mut Run) -> (Verdict, u64) {
    let stop = AtomicBool::new(false);
    let plan = r.engine.plan().clone();
    let first = r.engine.next_seq();
    try_other_flows(r.verdict.clone(), &plan, first, &mut r.sim, &stop).unwrap()
}

#[test]
fn a_single_flow_that_breaks_tries_other_flows_before_it_blames_the_path() {
    // Flow 0 takes branch A, which drops past hop 2; flows 1, 3, 5 of the 6 others take B.
    for constant in [true, false] {
        let mut n = diamond();
        n.branch_drop_after = Some((0, 2));
        let mut r = run_with(n, 3, 1, 30, 1);
        if !constant {
            // connect() probes: the same over a fresh engine that does not keep flows.
            r.engine = Engine::new(Plan {
                constant_flows: false,
                ..r.engine.plan().clone()
            });
        }
        assert_eq!(
            r.verdict.kind,
            Kind::SilentAfter {
                hop: 2,
                router: Some(ip("10.0.12.2"))
            }
        );
        let before = r.sim.sent.len();
        let (v, sent) = with_others(&mut r);
        assert_eq!(sent, 12, "the break hop and the target on 6 flows");
        let extra = &r.sim.sent[before..];
        assert_eq!(extra.len(), 12);
        let flows: std::collections::BTreeSet<u16> = extra.iter().map(|s| s.flow).collect();
        assert_eq!(flows.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        assert!(extra.iter().all(|s| s.ttl == Some(2) || s.ttl == Some(30)));
        assert_eq!(v.other_flows, Some((6, 3)));
        assert_eq!(
            v.text,
            "silent after hop 2 (10.0.12.2) on this flow; 3 of 6 other flows reach the target: a load-balanced branch through 10.0.12.2 drops TCP to port 443"
        );
        assert_eq!(
            v.kind,
            Kind::Partial {
                hop: None,
                open: true,
                broken: vec![Branch {
                    hop: 2,
                    router: Some(ip("10.0.12.2")),
                    how: How::Silent,
                    flows: vec![0, 2, 4, 6],
                }],
            }
        );
        assert_eq!((v.flows, v.flows_reached, v.flows_broken()), (7, 3, 4));
        assert_eq!(v.exit_status(), 3);
        // Its JSON.
        let r = Run { verdict: v, ..r };
        let out = render(&r, crate::cli::Output::Json, 1, 1);
        let t: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(t["verdict"], "partial");
        assert_eq!(
            t["other_flows"],
            serde_json::json!({"tried": 6, "reached": 3})
        );
        assert_eq!(t["break_hop"], 2);
        assert_eq!(t["break_router"], "10.0.12.2");
        assert_eq!(t["hops"], serde_json::Value::Null);
        assert_eq!(t["broken"][0]["flows"], serde_json::json!([0, 2, 4, 6]));
    }
}

#[test]
fn when_no_other_flow_gets_through_the_verdict_stands_and_says_so() {
    let mut n = net(4);
    n.drop_after = Some(2);
    let mut r = run(n);
    let (v, sent) = with_others(&mut r);
    assert_eq!(sent, 12);
    assert_eq!(v.kind, r.verdict.kind);
    assert_eq!(v.other_flows, Some((6, 0)));
    assert_eq!(
        v.text,
        format!("{}; none of 6 other flows reach the target", r.verdict.text)
    );
    assert_eq!(v.exit_status(), 1);
    let r = Run { verdict: v, ..r };
    let out = render(&r, crate::cli::Output::Json, 1, 1);
    let t: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(t["verdict"], "silent_after");
    assert_eq!(
        t["other_flows"],
        serde_json::json!({"tried": 6, "reached": 0})
    );
    assert_eq!(t["flows_broken"], 1);
    // A refusing router: the same.
    let mut n = net(4);
    n.refuse_at = Some((2, 3, 13));
    let mut r = run(n);
    let (v, _) = with_others(&mut r);
    assert_eq!(v.kind.name(), "path_ends");
    assert!(
        v.text
            .ends_with("prohibited; none of 6 other flows reach the target"),
        "{}",
        v.text
    );
}

#[test]
fn other_flows_are_tried_only_by_a_single_flow_that_names_a_break() {
    // Reached: nothing more is sent.
    let mut r = run(net(3));
    let before = r.sim.sent.len();
    let (v, sent) = with_others(&mut r);
    assert_eq!((sent, r.sim.sent.len()), (0, before));
    assert_eq!(v, r.verdict);
    // Several flows already: the verdict is theirs.
    let mut n = diamond();
    n.drop_after = Some(2);
    let mut r = run_with(n, 1, 4, 6, 1);
    assert_eq!(with_others(&mut r).1, 0);
    // Nothing answered at all: no hop to probe.
    let mut n = net(3);
    n.drop_after = Some(0);
    let mut r = run_with(n, 1, 1, 6, 1);
    assert_eq!(with_others(&mut r).1, 0);
    // Interrupted: nothing sent.
    let mut n = net(4);
    n.drop_after = Some(2);
    let mut r = run(n);
    let plan = r.engine.plan().clone();
    let stop = AtomicBool::new(true);
    let (v, sent) = try_other_flows(r.verdict.clone(), &plan, 1000, &mut r.sim, &stop).unwrap();
    assert_eq!((sent, v.other_flows), (0, None));
}

#[test]
fn unequal_branches_reach_in_a_range_of_hops_with_the_branches() {
    // Branch B has one router more: its flows reach the target at hop 5.
    let n = Net {
        branches: vec![
            vec![ip("10.0.1.1"), ip("10.0.12.2"), ip("10.0.15.2")],
            vec![
                ip("10.0.1.1"),
                ip("10.0.13.2"),
                ip("10.0.16.2"),
                ip("10.0.18.2"),
            ],
        ],
        open: true,
        ..Net::default()
    };
    let r = run_with(n, 1, 6, 30, 1);
    assert_eq!(r.verdict.kind, Kind::Reached { hop: 4, open: true });
    assert_eq!(
        r.verdict.text,
        "reached 10.0.9.5:443 (open) in 4\u{2013}5 hops: 4 for the 3 flows through 10.0.12.2 (hop 2), 5 for the 3 through 10.0.13.2 (hop 2)"
    );
    assert_eq!(r.verdict.exit_status(), 0);
    let out = render(&r, crate::cli::Output::Json, 6, 1);
    let t: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(t["hops"], 4);
    assert_eq!(
        t["lengths"],
        serde_json::json!([
            {"hops": 4, "flows": [0, 2, 4], "through": "10.0.12.2", "through_hop": 2},
            {"hops": 5, "flows": [1, 3, 5], "through": "10.0.13.2", "through_hop": 2},
        ])
    );
    // One length: no range, no lengths.
    let r = run_with(diamond(), 1, 6, 30, 1);
    assert_eq!(r.verdict.text, "reached 10.0.9.5:443 (open) in 4 hops");
    assert!(r.verdict.lengths.is_empty());
}

#[test]
fn a_path_that_grows_between_cycles_is_followed() {
    let mut t = Stepped::new(net(2), 10, 2);
    t.drive_to(1);
    assert_eq!(t.engine.dests()[0].map(|d| d.hop), Some(3));
    // The route changes: one more router before the target.
    t.sim.net.branches[0].push(ip("10.0.3.1"));
    t.drive_to(2);
    assert_eq!(t.engine.dests()[0].map(|d| d.hop), Some(4));
    let state = &t.state;
    let v = verdict(state, "1s");
    assert_eq!(
        v.kind,
        Kind::Reached { hop: 3, open: true },
        "the lowest hop that reached, over all cycles"
    );
    assert!(state.hops[&4].received > 0);
}

#[test]
fn a_loop_that_is_gone_in_a_later_cycle_is_probed_past() {
    let mut n = net(1);
    n.loop_routers = vec![ip("10.0.2.2"), ip("10.0.3.2")];
    let mut t = Stepped::new(n, 12, 2);
    t.drive_to(1);
    assert_eq!(t.engine.dests()[0].map(|d| d.hop), Some(5));
    // The routing is fixed: six routers, the target at hop 7.
    t.sim.net.loop_routers.clear();
    t.sim.net.branches[0] = [
        "10.0.1.1", "10.0.2.2", "10.0.3.2", "10.0.4.1", "10.0.5.1", "10.0.6.1",
    ]
    .iter()
    .map(|a| ip(a))
    .collect();
    t.drive_to(2);
    assert_eq!(t.engine.dests()[0].map(|d| d.hop), Some(7));
    let v = verdict(&t.state, "1s");
    assert_eq!(v.kind, Kind::Reached { hop: 7, open: true });
}

#[test]
fn mpls_labels_reach_the_hop() {
    let mut n = net(3);
    let labels = vec![MplsLabel {
        label: 24001,
        tc: 0,
        bottom: true,
        ttl: 1,
    }];
    n.ext.insert(
        2,
        Extensions {
            mpls: labels.clone(),
            ..Extensions::default()
        },
    );
    let r = run(n);
    let h2 = &r.state.hops[&2];
    assert_eq!(h2.routers[0].mpls, [labels]);
    assert!(r.state.hops[&1].routers[0].mpls.is_empty());
}

#[test]
fn an_interrupted_cycle_reports_only_complete_hops() {
    // Hop 1 answers; everything past it is silent, so its timeouts are still pending when
    // Ctrl-C comes (set here as soon as hop 1 is reported).
    let mut engine = Engine::new(plan(5, 1, 1));
    let mut n = net(4);
    n.drop_after = Some(1);
    let mut sim = Sim::new(n);
    let stop = AtomicBool::new(false);
    let mut hops = Vec::new();
    let mut cycles = 0;
    drive(
        &mut engine,
        &mut sim,
        None,
        Duration::ZERO,
        &stop,
        &SystemTime::now,
        &mut |p| {
            match p {
                Progress::Hop(h) => hops.push(h.hop),
                Progress::CycleDone(_) => cycles += 1,
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(hops, [1], "the interrupted probes conclude nothing");
    assert_eq!(cycles, 0);
    assert_eq!(sim.in_flight(), 0, "the prober was told to interrupt");
}

#[test]
fn the_start_of_the_run_and_a_closed_pipe() {
    // A consumer that stops after the first hop (| head): the drive ends quietly.
    let mut engine = Engine::new(plan(30, 3, 1));
    let mut sim = Sim::new(net(3));
    let stop = AtomicBool::new(false);
    let mut seen = 0;
    drive(
        &mut engine,
        &mut sim,
        Some(5),
        Duration::ZERO,
        &stop,
        &SystemTime::now,
        &mut |_| {
            seen += 1;
            Ok(false)
        },
    )
    .unwrap();
    assert_eq!(seen, 1);
}

// ---- output ---------------------------------------------------------------------------------

fn config(output: crate::cli::Output, flows: u16, cycles: u64) -> crate::cli::TraceConfig {
    crate::cli::TraceConfig {
        run: crate::trace::TraceRun {
            target_name: "server.lab:443".into(),
            target: TARGET.parse().unwrap(),
            max_hops: 30,
            queries: 3,
            flows,
            cycles: Some(cycles),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            resolve: false,
            multipath: false,
            size: None,
        },
        probe: crate::cli::TraceProbe::Auto,
        output,
        tui: false,
        search: crate::cli::Search::default(),
        marks: Default::default(),
    }
}

/// Everything `trace` would print for a run.
fn render(r: &Run, output: crate::cli::Output, flows: u16, cycles: u64) -> String {
    use super::output::{RunTotals, Setup, TraceWriter};
    let cfg = config(output, flows, cycles);
    let mut w = TraceWriter::new(Vec::new(), &cfg.run, cfg.output);
    let setup = Setup {
        probe: "syn",
        source: Some(ip("10.0.0.2")),
        ports: vec![40000],
    };
    w.start(&cfg.run, &setup).unwrap();
    for h in &r.hops {
        w.hop_done(h, cfg.run.target, flows).unwrap();
        let last_of_cycle = r.hops.iter().rfind(|x| x.cycle == h.cycle) == Some(h);
        if last_of_cycle {
            w.cycle_done(h.cycle).unwrap();
        }
    }
    let (sent, reprobes) = r.engine.sent();
    let totals = RunTotals {
        probes_sent: sent,
        reprobes,
        ..RunTotals::default()
    };
    w.finish(&cfg.run, &r.state, &r.verdict, totals).unwrap();
    String::from_utf8(w.into_inner()).unwrap()
}

#[test]
fn a_sized_trace_says_its_size_in_the_header_and_trace_start() {
    use super::output::{Setup, TraceWriter};
    let setup = Setup {
        probe: "syn",
        source: Some(ip("10.0.0.2")),
        ports: vec![40000],
    };
    let first = |size: Option<usize>, output| {
        let mut cfg = config(output, 1, 1);
        cfg.run.size = size;
        let mut w = TraceWriter::new(Vec::new(), &cfg.run, cfg.output);
        w.start(&cfg.run, &setup).unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        out.lines().next().unwrap().to_string()
    };
    assert_eq!(
        first(Some(1500), crate::cli::Output::Human),
        "trace to server.lab:443 (10.0.9.5:443) from 10.0.0.2: SYN probes of 1500 bytes (don't fragment), 30 hops max, 3 queries per hop, timeout 1s"
    );
    let start: serde_json::Value =
        serde_json::from_str(&first(Some(1500), crate::cli::Output::Json)).unwrap();
    assert_eq!(start["size"], 1500);
    let start: serde_json::Value =
        serde_json::from_str(&first(None, crate::cli::Output::Json)).unwrap();
    assert!(start["size"].is_null(), "{start}");
}

#[test]
fn human_lines_as_traceroute_prints_them() {
    let r = run(net(3));
    let out = render(&r, crate::cli::Output::Human, 1, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "trace to server.lab:443 (10.0.9.5:443) from 10.0.0.2: SYN probes, 30 hops max, 3 queries per hop, timeout 1s"
    );
    assert_eq!(lines[1], " 1  10.0.1.1  0.100 ms  0.100 ms  0.100 ms");
    assert_eq!(
        lines[4],
        " 4  10.0.9.5 [open]  0.400 ms  0.400 ms  0.400 ms"
    );
    assert_eq!(lines[5], "reached 10.0.9.5:443 (open) in 4 hops");
    assert_eq!(lines.len(), 6);

    let mut n = net(4);
    n.refuse_at = Some((2, 3, 13));
    n.tokens.insert(1, 2);
    let out = render(&run(n), crate::cli::Output::Human, 1, 1);
    assert!(
        out.contains("\n 1  10.0.1.1  0.100 ms  0.100 ms  *\n"),
        "{out}"
    );
    assert!(
        out.contains("\n 3  10.0.2.1  0.300 ms !X  0.300 ms !X  0.300 ms !X\n"),
        "{out}"
    );
    assert!(out.ends_with(
        "path ends at hop 2: 10.0.2.1 says communication administratively prohibited\n"
    ));

    let mut n = net(4);
    n.drop_after = Some(2);
    let out = render(&run(n), crate::cli::Output::Human, 1, 1);
    assert!(
        out.contains("\n 3  *  *  *\n    hops 4 to 30: no answer (81 probes)\n"),
        "{out}"
    );
}

#[test]
fn human_lines_with_several_flows_and_mpls() {
    let mut n = diamond();
    n.ext.insert(
        2,
        Extensions {
            mpls: vec![MplsLabel {
                label: 24001,
                tc: 0,
                bottom: true,
                ttl: 1,
            }],
            ..Extensions::default()
        },
    );
    let r = run_with(n, 1, 4, 30, 1);
    let out = render(&r, crate::cli::Output::Human, 4, 1);
    assert!(
        out.contains("\n 2  10.0.12.2  0.200/0.200/0.200 ms  (2 answers)  flows 0,2\n    10.0.13.2  0.200/0.200/0.200 ms  (2 answers)  flows 1,3\n"),
        "{out}"
    );
    assert!(
        out.contains("    10.0.12.2: MPLS L=24001 TC=0 S=1 TTL=1\n"),
        "{out}"
    );
    assert!(
        out.contains("note: hop 2: 4 flows through 10.0.1.1 (hop 1) answered, 2 next hops seen; 12 are needed"),
        "{out}"
    );
    // Not about hop 4, the destination: no router there forwards, no flows can branch.
    assert!(out.contains("note: hop 1: "), "{out}");
    assert!(!out.contains("hop 4:") && !out.contains(", 4:"), "{out}");
    let json = render(&r, crate::cli::Output::Json, 4, 1);
    let hops: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "hop")
        .collect();
    assert_eq!(hops[0]["flows_needed"], 7);
    assert_eq!(hops[3]["flows_needed"], serde_json::Value::Null);
    assert_eq!(hops[3]["enough_flows"], serde_json::Value::Null);
}

#[test]
fn an_mtr_style_report_after_several_cycles() {
    let mut n = net(3);
    n.tokens.insert(2, 4);
    let r = run_with(n, 3, 1, 30, 3);
    let out = render(&r, crate::cli::Output::Human, 1, 3);
    assert!(out.contains("HOP  ADDRESS "), "{out}");
    assert!(
        out.contains("\n  2  10.0.2.1                          55.6%     9    0.200    0.200    0.200    0.200    0.000\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  4  10.0.9.5 [open]                    0.0%     9"),
        "{out}"
    );
    assert!(
        out.contains("note: hop 2 (10.0.2.1) answered 4 of 9 probes"),
        "{out}"
    );
    assert!(out.ends_with("reached 10.0.9.5:443 (open) in 4 hops\n"));
}

#[test]
fn json_events_follow_the_schema() {
    let mut n = net(3);
    n.refuse_at = Some((2, 3, 13));
    n.ext.insert(
        1,
        Extensions {
            mpls: vec![MplsLabel {
                label: 16,
                tc: 5,
                bottom: true,
                ttl: 255,
            }],
            ..Extensions::default()
        },
    );
    let r = run(n);
    let out = render(&r, crate::cli::Output::Json, 1, 1);
    let ev: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let start = &ev[0];
    assert_eq!(start["type"], "trace_start");
    for k in [
        "target", "address", "source", "host", "max_hops", "queries", "flows", "ts",
    ] {
        assert!(start.get(k).is_some(), "trace_start.{k}");
    }
    let probes: Vec<_> = ev.iter().filter(|e| e["type"] == "probe").collect();
    assert_eq!(probes.len(), 9, "3 hops x 3 queries");
    for p in &probes {
        for k in [
            "hop", "query", "flow", "cycle", "ts", "status", "from", "rtt_ms", "icmp", "mpls",
        ] {
            assert!(p.get(k).is_some(), "probe.{k}: {p}");
        }
    }
    assert_eq!(probes[0]["status"], "time_exceeded");
    assert_eq!(
        probes[0]["mpls"][0],
        serde_json::json!({"label": 16, "tc": 5, "s": true, "ttl": 255})
    );
    assert_eq!(probes[0]["icmp"]["type"], 11);
    let refused = probes.iter().find(|p| p["hop"] == 3).unwrap();
    assert_eq!(refused["status"], "unreachable");
    assert_eq!(refused["from"], "10.0.2.1");
    assert_eq!(
        refused["icmp"],
        serde_json::json!({"type": 3, "code": 13, "reason": "communication administratively prohibited"})
    );
    let hops: Vec<_> = ev.iter().filter(|e| e["type"] == "hop").collect();
    assert_eq!(hops.len(), 3);
    for k in [
        "hop",
        "routers",
        "sent",
        "received",
        "loss_pct",
        "last_ms",
        "avg_ms",
        "best_ms",
        "worst_ms",
        "stddev_ms",
    ] {
        assert!(hops[0].get(k).is_some(), "hop.{k}");
    }
    // `routers`: the addresses (what the report draws); `router_details`: what each said.
    assert_eq!(hops[1]["routers"], serde_json::json!(["10.0.2.1"]));
    assert_eq!(hops[1]["router_details"][0]["address"], "10.0.2.1");
    assert_eq!(hops[1]["router_details"][0]["time_exceeded"], 3);
    assert_eq!(hops[2]["router_details"][0]["icmp"][0]["count"], 3);
    assert_eq!(hops[0]["router_details"][0]["mpls"][0][0]["label"], 16);
    let t = ev.last().unwrap();
    assert_eq!(t["type"], "trace");
    assert_eq!(t["verdict"], "path_ends");
    assert_eq!(t["break_hop"], 2);
    assert_eq!(t["break_router"], "10.0.2.1");
    assert_eq!(t["hops"], 3);
    assert_eq!(t["icmp"]["code"], 13);
    assert_eq!(
        t["text"],
        "path ends at hop 2: 10.0.2.1 says communication administratively prohibited"
    );
    assert_eq!(t["loop_routers"], serde_json::Value::Null);

    // A loop: its routers, the hop it starts at.
    let mut n = net(1);
    n.loop_routers = vec![ip("10.0.2.2"), ip("10.0.3.2")];
    let r = run(n);
    let out = render(&r, crate::cli::Output::Json, 1, 1);
    let t: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(t["verdict"], "loop");
    assert_eq!(t["break_hop"], 2);
    assert_eq!(t["break_router"], "10.0.2.2");
    assert_eq!(
        t["loop_routers"],
        serde_json::json!(["10.0.2.2", "10.0.3.2"])
    );
    let human = render(&r, crate::cli::Output::Human, 1, 1);
    assert!(
        human.ends_with(" 5  10.0.3.2  0.500 ms  0.500 ms  0.500 ms
routing loop between 10.0.2.2 and 10.0.3.2 from hop 2: packets to 10.0.9.5:443 circle until their TTL runs out
"),
        "{human}"
    );
}
