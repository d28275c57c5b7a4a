//! `--multipath` (the adaptive search), the per-router stopping rule of `--flows`, and the
//! pacing of the probes, driven over the simulated network's load-balancer graphs
//! ([`Graph`]): a 3-way split with branches of unequal length, two diamonds in a row, a
//! nested split, a branch that drops, a silent hop, a router answering from off the path.

use std::collections::HashSet;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use super::engine::{Engine, Plan};
use super::state::TraceState;
use super::{drive_mda, drive_paced, Pacer, Progress};
use crate::cmd::sim::{ip, Graph, Net, Sim, Truth, TARGET};
use crate::trace::mda::{flows_needed, Mda};

/// Seeded runs per topology (each seed is another flow hash: other flows take other ways).
const SEEDS: u64 = 1000;
/// Seeded runs of each topology in the survey of all.
const SURVEY: u64 = 400;

/// A graph from "src > hop-1 routers; router > its next hops; …" (none: the target).
fn graph(spec: &str) -> Graph {
    let mut g = Graph::default();
    for part in spec.split(';') {
        let (from, to) = part.split_once('>').unwrap();
        let to: Vec<IpAddr> = to.split_whitespace().map(ip).collect();
        match from.trim() {
            "src" => g.first = to,
            r => {
                g.next.insert(ip(r), to);
            }
        }
    }
    g
}

/// A 3-way split at hop 2 whose branches are 1, 2 and 3 routers long.
fn three_way_unequal() -> Graph {
    graph(
        "src > 10.0.1.1; 10.0.1.1 > 10.0.2.1 10.0.2.2 10.0.2.3; \
         10.0.2.2 > 10.0.3.2; 10.0.2.3 > 10.0.3.3; 10.0.3.3 > 10.0.4.3",
    )
}

/// Two diamonds in a row.
fn two_diamonds() -> Graph {
    graph(
        "src > 10.0.1.1; 10.0.1.1 > 10.0.2.1 10.0.2.2; 10.0.2.1 > 10.0.3.1; \
         10.0.2.2 > 10.0.3.1; 10.0.3.1 > 10.0.4.1 10.0.4.2; 10.0.4.1 > 10.0.5.1; \
         10.0.4.2 > 10.0.5.1",
    )
}

/// Three branches at hop 2, the first splitting again at hop 3, all meeting at hop 4.
fn nested() -> Graph {
    graph(
        "src > 10.0.1.1; 10.0.1.1 > 10.0.2.1 10.0.2.2 10.0.2.3; \
         10.0.2.1 > 10.0.3.1 10.0.3.4; 10.0.2.2 > 10.0.3.2; 10.0.2.3 > 10.0.3.3; \
         10.0.3.1 > 10.0.4.1; 10.0.3.2 > 10.0.4.1; 10.0.3.3 > 10.0.4.1; \
         10.0.3.4 > 10.0.4.1",
    )
}

/// A diamond: 10.0.1.1, then 10.0.2.1 or 10.0.2.2, then 10.0.3.1.
fn small_diamond() -> Graph {
    graph(
        "src > 10.0.1.1; 10.0.1.1 > 10.0.2.1 10.0.2.2; 10.0.2.1 > 10.0.3.1; \
         10.0.2.2 > 10.0.3.1",
    )
}

/// A diamond whose second branch drops everything it would forward.
fn branch_drops() -> Graph {
    let mut g = small_diamond();
    g.drops.insert(ip("10.0.2.2"));
    g
}

/// A silent hop 2 before a diamond.
fn silent_hop() -> Graph {
    let mut g = graph(
        "src > 10.0.1.1; 10.0.1.1 > 10.0.2.1; 10.0.2.1 > 10.0.3.1 10.0.3.2; \
         10.0.3.1 > 10.0.4.1; 10.0.3.2 > 10.0.4.1",
    );
    g.silent.insert(ip("10.0.2.1"));
    g
}

/// A diamond one of whose routers answers from an address off the path.
fn off_path() -> Graph {
    let mut g = small_diamond();
    g.answer_from.insert(ip("10.0.2.2"), ip("192.0.2.7"));
    g
}

fn topologies() -> Vec<(&'static str, Graph)> {
    vec![
        ("three-way split, unequal branches", three_way_unequal()),
        ("two diamonds in a row", two_diamonds()),
        ("nested split", nested()),
        ("a branch that drops", branch_drops()),
        ("a silent hop", silent_hop()),
        ("a router answering from off the path", off_path()),
    ]
}

fn seeded(g: &Graph, seed: u64) -> Net {
    let mut g = g.clone();
    g.seed = seed;
    Net {
        graph: Some(g),
        open: true,
        ..Net::default()
    }
}

/// What a trace found: routers per hop, links between answering hops of a flow.
type Found = Truth;

fn found(state: &TraceState) -> Found {
    let target = state.target.ip();
    let mut nodes = HashSet::new();
    let mut links = HashSet::new();
    for hops in state.paths().values() {
        let seen: Vec<(u8, IpAddr)> = hops
            .iter()
            .filter_map(|(&h, s)| s.filter(|a| *a != target).map(|a| (h, a)))
            .collect();
        nodes.extend(seen.iter().copied());
        for w in seen.windows(2) {
            links.insert((w[0].0, w[0].1, w[1].1));
        }
    }
    (nodes, links)
}

/// Everything true was found (what was found beyond it would be a false router or link).
fn complete(g: &Graph, state: &TraceState) -> bool {
    let (nodes, links) = g.truth();
    let (n, l) = found(state);
    assert!(
        n.is_subset(&nodes),
        "false routers: {n:?} against {nodes:?}"
    );
    assert!(l.is_subset(&links), "false links: {l:?} against {links:?}");
    n == nodes && l == links
}

/// The fewest probes any search must have answered (or silent where nothing answers) to
/// claim the whole of `g` at confidence `1 - alpha`, per router as the rule counts: each
/// router with d next hops (the source: the routers of hop 1; the last ones: the target; one
/// that drops: its silence) needs n_d of the flows crossing it probed one hop on, each such
/// probe crossing that router alone, at the bound per router the rule uses once every
/// branching router is seen (`alpha` over their number plus one). None for a graph with a
/// silent router (its flows count for the router below it instead).
fn floor(g: &Graph, alpha: f64) -> Option<usize> {
    if !g.silent.is_empty() {
        return None;
    }
    let mut degrees = vec![g.first.len()];
    let mut seen = HashSet::new();
    let mut stack = g.first.clone();
    while let Some(r) = stack.pop() {
        if !seen.insert(r) {
            continue;
        }
        let next = g.next.get(&r).cloned().unwrap_or_default();
        degrees.push(next.len().max(1));
        if !g.drops.contains(&r) {
            stack.extend(next);
        }
    }
    let branching = degrees.iter().filter(|&&d| d >= 2).count();
    let a = alpha / (branching + 1) as f64;
    Some(degrees.iter().map(|&d| flows_needed(d, a)).sum())
}

struct MdaRun {
    state: TraceState,
    mda: Mda,
    sim: Sim,
}

fn run_mda(net: Net, alpha: f64, rate: u32) -> MdaRun {
    let target = TARGET.parse().unwrap();
    let mut mda = Mda::new(target, 16, alpha, crate::trace::mda::MAX_FLOWS);
    let mut sim = Sim::new(net);
    let mut state = TraceState::new(target, 16, 1, crate::trace::mda::MAX_FLOWS);
    state.alpha = alpha;
    state.multipath = true;
    let stop = AtomicBool::new(false);
    let clock = Rc::clone(&sim.clock);
    drive_mda(
        &mut mda,
        &mut sim,
        &mut Pacer::new(rate),
        &stop,
        &move || clock.get(),
        &mut |p| {
            match p {
                Progress::Hop(h) => state.record(h),
                Progress::CycleDone(c) => state.cycles_done = c,
            }
            Ok(true)
        },
    )
    .unwrap();
    state.assumed = mda.assumed().to_vec();
    state.unfinished = mda.unfinished();
    MdaRun { state, mda, sim }
}

/// `--flows N -q 1 --rate R` on the engine: the state, the probes sent, the network.
fn run_flows(net: Net, flows: u16, rate: u32) -> (TraceState, u64, Sim) {
    let target = TARGET.parse().unwrap();
    let plan = Plan {
        target,
        max_hops: 8,
        queries: 1,
        flows,
        constant_flows: true,
        gap: None,
    };
    let mut engine = Engine::new(plan);
    let mut sim = Sim::new(net);
    let mut state = TraceState::new(target, 8, 1, flows);
    let stop = AtomicBool::new(false);
    let clock = Rc::clone(&sim.clock);
    drive_paced(
        &mut engine,
        &mut sim,
        Some(1),
        Duration::ZERO,
        &mut Pacer::new(rate),
        &stop,
        &move || clock.get(),
        &mut |p| {
            if let Progress::Hop(h) = p {
                state.record(h);
            }
            Ok(true)
        },
    )
    .unwrap();
    let sent = engine.sent().0;
    (state, sent, sim)
}

#[test]
fn multipath_finds_every_router_and_link_of_each_topology_at_its_confidence() {
    for (name, g) in topologies() {
        let mut missed = 0;
        let mut probes = Vec::new();
        let mut rounds = Vec::new();
        let least = floor(&g, 0.05);
        for seed in 0..SURVEY {
            let r = run_mda(seeded(&g, seed), 0.05, 0);
            let whole = complete(&g, &r.state);
            if !whole {
                missed += 1;
            }
            probes.push(r.mda.sent());
            rounds.push(r.mda.rounds());
            // A search that found everything sent at least what the rule needs answered.
            if let (true, Some(least)) = (whole, least) {
                assert!(
                    r.mda.sent() >= least as u64,
                    "{name}, seed {seed}: {} probes, below the floor {least}",
                    r.mda.sent()
                );
            }
            // The search ends with every router's rule met (the flows sufficed).
            let rules = r.state.flow_rules().unwrap();
            assert!(
                rules.values().all(|h| h.enough),
                "{name}, seed {seed}: {rules:?}"
            );
        }
        assert!(
            missed * 20 <= SURVEY,
            "{name}: {missed} of {} runs missed a router or link",
            SURVEY
        );
        probes.sort_unstable();
        rounds.sort_unstable();
        let median = probes[probes.len() / 2];
        let most = probes[probes.len() - 1];
        // New flows go by the model's share of a short router, not the share a few flows
        // show (which sent up to 64 at once where 18 were due): no run strays far above
        // the median.
        assert!(
            most * 2 < median * 3,
            "{name}: a run sent {most} probes, the median {median}"
        );
        // A fixed --flows 16 sends 16 probes on each hop up to the target: at least 64 here
        // with one query, 192 with the default three, 1,440 in the first cycle at -m 30.
        let (_, fixed, _) = run_flows(seeded(&g, 1), 16, 0);
        assert!(
            median < fixed * 3,
            "{name}: median {median} probes, --flows 16 -q 1 {fixed}"
        );
        eprintln!(
            "{name}: median {median} probes, max {most}, floor {least:?}, rounds median {} max {}, \
             --flows 16 -q 1: {fixed}, missed {missed}",
            rounds[rounds.len() / 2],
            rounds[rounds.len() - 1]
        );
    }
}

#[test]
fn nested_split_multipath_runs_miss_a_router_in_at_most_the_stated_share() {
    let g = nested();
    let (mut missed, mut claimed) = (0, 0);
    for seed in 0..SEEDS {
        let r = run_mda(seeded(&g, seed), 0.05, 0);
        if r.state.flow_rules().unwrap().values().all(|h| h.enough) {
            claimed += 1;
            if !complete(&g, &r.state) {
                missed += 1;
            }
        }
    }
    assert!(
        claimed * 10 >= SEEDS * 9,
        "{claimed} of {SEEDS} runs claimed the confidence"
    );
    assert!(
        missed * 20 <= claimed,
        "{missed} of {claimed} runs claiming 95% missed"
    );
}

#[test]
fn nested_split_flows_runs_that_claim_enough_flows_miss_at_most_the_stated_share() {
    let g = nested();
    let (mut missed, mut claimed) = (0, 0);
    for flows in [16, 32, 48] {
        let (mut m, mut c, mut missed_all) = (0, 0, 0);
        for seed in 0..SEEDS {
            let (state, _, _) = run_flows(seeded(&g, seed), flows, 0);
            let whole = complete(&g, &state);
            missed_all += u64::from(!whole);
            if state.flow_rules().unwrap().values().all(|h| h.enough) {
                c += 1;
                m += u64::from(!whole);
            }
        }
        eprintln!(
            "--flows {flows}: {c} claim enough, {m} of them missed; {missed_all} missed in all"
        );
        if flows == 16 {
            // Counted per hop, 16 flows claimed enough on every run, and missed in 13 %:
            // per router, the branch of a third of the flows is short.
            assert!(missed_all > 0 && c < SEEDS / 20, "{c} {missed_all}");
        }
        if flows == 48 {
            assert!(c > SEEDS / 2, "--flows 48: only {c} runs claimed enough");
        }
        missed += m;
        claimed += c;
    }
    assert!(
        missed * 20 <= claimed,
        "{missed} of {claimed} runs claiming enough flows missed"
    );
}

#[test]
fn the_pacer_spaces_probes_and_never_bursts_to_catch_up() {
    let t0 = Instant::now();
    let mut p = Pacer::new(1000);
    assert_eq!(p.wait_until(t0), None, "the first probe leaves at once");
    p.sent(t0);
    assert_eq!(p.wait_until(t0), Some(t0 + Duration::from_millis(1)));
    assert_eq!(p.wait_until(t0 + Duration::from_millis(1)), None);
    // Sent late (the loop was busy): the next one is a full gap after it, not sooner.
    p.sent(t0 + Duration::from_millis(5));
    assert_eq!(
        p.wait_until(t0 + Duration::from_millis(5)),
        Some(t0 + Duration::from_millis(6))
    );
    let mut unpaced = Pacer::new(0);
    unpaced.sent(t0);
    assert_eq!(unpaced.wait_until(t0), None);
}

/// The gaps between the sends of a run (the prober's own stamps).
fn gaps(sim: &Sim) -> Vec<Duration> {
    sim.sent_when.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn flows_bursts_are_paced_at_the_set_rate() {
    let (_, _, sim) = run_flows(seeded(&two_diamonds(), 3), 8, 2000);
    let g = gaps(&sim);
    assert!(g.len() >= 40, "{} probes", g.len() + 1);
    let gap = Duration::from_micros(500);
    assert!(
        g.iter().all(|d| *d >= gap),
        "a gap below 1/2000 s: {:?}",
        g.iter().min()
    );
}

#[test]
fn multipath_rounds_are_paced_and_end_on_their_answers() {
    for (name, g) in [
        ("two diamonds", two_diamonds()),
        ("unequal branches", three_way_unequal()),
        ("nested", nested()),
    ] {
        let paced = run_mda(seeded(&g, 7), 0.05, 4000);
        let gap = Duration::from_micros(250);
        assert!(
            gaps(&paced.sim).iter().all(|d| *d >= gap),
            "{name}: a gap below 1/4000 s"
        );
        assert!(complete(&g, &paced.state), "{name}");
        // Unpaced, so that the simulated clock counts round trips only (it moves as the
        // answers are read).
        let r = run_mda(seeded(&g, 7), 0.05, 0);
        // Everything answers: no round waited for a timeout (a probe above the hop where
        // its flow reached the target is not waited for), and each round took one round
        // trip of the simulated clock: at least the shortest, at most the longest.
        assert_eq!(r.mda.timeouts(), 0, "{name}");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let took = r.sim.clock.get().duration_since(start).unwrap();
        let rounds = u32::try_from(r.mda.rounds()).unwrap();
        assert!(rounds >= 4, "{name}: {rounds} rounds");
        assert!(
            took >= Duration::from_micros(100) * rounds,
            "{name}: {took:?} for {rounds} rounds"
        );
        assert!(
            took <= Duration::from_micros(700) * rounds,
            "{name}: {took:?} for {rounds} rounds"
        );
        assert!(complete(&g, &r.state), "{name}");
        // Flows the search left early (it needed no more of them) are not judged: every
        // flow with a verdict reached the target.
        let v = crate::trace::verdict::verdict(&r.state, "1s");
        assert!(v.reached(), "{name}: {}", v.text);
        assert_eq!(v.flows_reached, v.flows, "{name}: {}", v.text);
        assert!(!r.state.unfinished.is_empty(), "{name}");
    }
}

#[test]
fn multipath_verdicts_count_only_flows_probed_beyond_their_last_answer() {
    // The search leaves most flows at the hop where they were needed: those say nothing
    // about the path beyond, so a path that every branch crosses is reached, not partial.
    for (name, g) in topologies() {
        for seed in 0..20 {
            let r = run_mda(seeded(&g, seed), 0.05, 0);
            let v = crate::trace::verdict::verdict(&r.state, "1s");
            if name == "a branch that drops" {
                // Partial when the search sent a flow through each branch to the target.
                assert!(
                    v.exit_status() != 0 || v.flows_broken() == 0,
                    "{name}, seed {seed}: {}",
                    v.text
                );
                if v.partial() {
                    assert!(
                        v.text.contains("through 10.0.2.2 (hop 2)"),
                        "{name}, seed {seed}: {}",
                        v.text
                    );
                }
            } else {
                assert_eq!(v.exit_status(), 0, "{name}, seed {seed}: {}", v.text);
                assert_eq!(v.flows_broken(), 0, "{name}, seed {seed}: {}", v.text);
            }
        }
    }
}

#[test]
fn an_interrupted_search_reports_what_it_concluded_and_no_cycle() {
    let target = TARGET.parse().unwrap();
    let mut mda = Mda::new(target, 16, 0.05, crate::trace::mda::MAX_FLOWS);
    let mut sim = Sim::new(seeded(&nested(), 1));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Ctrl-C as the 20th probe leaves: the first rounds (hop 1, part of hop 2) are in.
    sim.raise_after = Some((20, std::sync::Arc::clone(&stop)));
    let clock = Rc::clone(&sim.clock);
    let (mut hops, mut cycles) = (Vec::new(), 0);
    drive_mda(
        &mut mda,
        &mut sim,
        &mut Pacer::new(0),
        &stop,
        &move || clock.get(),
        &mut |p| {
            match p {
                Progress::Hop(h) => hops.push(h.hop),
                Progress::CycleDone(_) => cycles += 1,
            }
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(cycles, 0);
    assert_eq!(hops.first(), Some(&1), "hop 1 was concluded: {hops:?}");
    assert!(mda.sent() >= 20 && mda.sent() < 60, "{}", mda.sent());
}
