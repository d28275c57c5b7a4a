//! The per-router stopping rule on hand-made paths, and the search's rounds fed by hand.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Paths from (flow, [(hop, answer or "*")]).
fn paths(flows: &[(u16, &[(u8, &str)])]) -> Paths {
    flows
        .iter()
        .map(|(f, hops)| {
            let m: BTreeMap<u8, Seen> = hops
                .iter()
                .map(|&(h, a)| (h, (a != "*").then(|| ip(a))))
                .collect();
            (*f, m)
        })
        .collect()
}

#[test]
fn stopping_points_of_the_multipath_detection_algorithm() {
    assert_eq!(flows_needed(1, 0.05), 6);
    let table: Vec<usize> = (1..=6).map(|k| flows_needed(k, 0.05)).collect();
    assert_eq!(table, [6, 11, 16, 21, 27, 33]);
    // A bound shared by two branching routers and one unseen: 2 * (1/2)^n <= 0.05 / 3.
    assert_eq!(flows_needed(1, 0.05 / 3.0), 7);
}

#[test]
fn a_flows_predecessor_skips_silent_hops_and_is_unknown_below_an_unprobed_one() {
    let p = paths(&[
        (0, &[(1, "10.0.1.1"), (2, "*"), (3, "10.0.3.1")]),
        (1, &[(2, "10.0.2.1"), (3, "10.0.3.1")]),
    ]);
    assert_eq!(pred(&p[&0], 3), Some(Pred::Node(1, ip("10.0.1.1"))));
    assert_eq!(pred(&p[&0], 1), Some(Pred::Source));
    assert_eq!(pred(&p[&1], 3), Some(Pred::Node(2, ip("10.0.2.1"))));
    assert_eq!(pred(&p[&1], 2), None, "hop 1 of flow 1 was not probed");
}

#[test]
fn the_rule_counts_the_flows_of_each_router_not_of_the_hop() {
    // 12 flows at hop 2 over A and B; hop 3: A's 10 flows all to C, B's 2 to D.
    let mut v: Vec<(u16, Vec<(u8, &str)>)> = Vec::new();
    for f in 0..12u16 {
        let (b, c) = if f < 10 {
            ("10.0.2.1", "10.0.3.1")
        } else {
            ("10.0.2.2", "10.0.3.2")
        };
        v.push((f, vec![(1, "10.0.1.1"), (2, b), (3, c)]));
    }
    let refs: Vec<(u16, &[(u8, &str)])> = v.iter().map(|(f, h)| (*f, h.as_slice())).collect();
    let p = paths(&refs);
    let g = groups(&p, 3, &Assumed::new());
    assert_eq!(g.len(), 2);
    assert_eq!(g[&Pred::Node(2, ip("10.0.2.2"))].have(), 2);
    // One router branches (hop 1's): the bound per router is 0.05 / 2.
    assert!((router_alpha(&p, 0.05, &Assumed::new()) - 0.025).abs() < 1e-12);
    let r = rules(&p, 0.05, &Assumed::new());
    // Hop 3 has 12 flows answered, more than 7 = n_1 at 0.025: per hop it would be enough;
    // B had only 2 of its own.
    assert_eq!(r[&3].needed, flows_needed(1, 0.025));
    assert!(!r[&3].enough);
    let b = r[&3].routers[&Pred::Node(2, ip("10.0.2.2"))];
    assert_eq!((b.next, b.needed, b.have), (1, 7, 2));
    assert!(
        r[&2].enough,
        "hop 1's router: 12 flows, 2 next hops, 12 >= n_2 = {}",
        flows_needed(2, 0.025)
    );
}

#[test]
fn a_router_whose_flows_all_go_silent_has_one_anonymous_next_hop() {
    let hops: Vec<(u16, Vec<(u8, &str)>)> = (0..6)
        .map(|f| (f, vec![(1, "10.0.1.1"), (2, "*")]))
        .collect();
    let refs: Vec<(u16, &[(u8, &str)])> = hops.iter().map(|(f, h)| (*f, h.as_slice())).collect();
    let r = rules(&paths(&refs), 0.05, &Assumed::new());
    assert_eq!(r[&2].needed, 6);
    assert!(r[&2].enough);
}

fn answer(m: &mut Mda, spec: &ProbeSpec, from: &str) {
    use crate::icmp::{IcmpReport, Phase, Source};
    let status = crate::probe::Status::Icmp(IcmpReport {
        icmp_type: 11,
        code: 0,
        v6: false,
        info: 0,
        from: ip(from),
        after: std::time::Duration::from_millis(1),
        phase: Phase::Connect,
        source: Source::Raw,
        extensions: None,
    });
    m.on_result(PingResult::of(spec, status));
}

#[test]
fn rounds_go_hop_by_hop_and_spend_new_flows_only_where_a_router_is_short() {
    let target: SocketAddr = "10.0.9.5:443".parse().unwrap();
    let mut m = Mda::new(target, 3, 0.05, 64);
    assert!(m.next_round());
    let first = m.take_sends();
    // Hop 1 from the source: n_1 new flows.
    assert_eq!(first.len(), 6);
    assert!(first.iter().all(|s| s.ttl == Some(1)));
    assert!(m.in_round());
    for s in &first {
        answer(&mut m, s, "10.0.1.1");
    }
    assert!(!m.in_round());
    assert!(m.next_round());
    let second = m.take_sends();
    // Hop 2 on the same 6 flows, no new one.
    assert_eq!(second.len(), 6);
    assert!(second.iter().all(|s| s.ttl == Some(2) && s.flow < 6));
    // Two next hops: hop 1's router branches; the bound tightens to 0.025, and its 6 flows
    // do not rule out a third next hop: new flows, probed at hops 1 and 2.
    for s in &second {
        answer(
            &mut m,
            s,
            if s.flow % 2 == 0 {
                "10.0.2.1"
            } else {
                "10.0.2.2"
            },
        );
    }
    assert!(m.next_round());
    let third = m.take_sends();
    let need = flows_needed(2, 0.025) - 6;
    assert!(
        third.iter().all(|s| s.flow >= 6 && s.ttl <= Some(2)),
        "{third:?}"
    );
    assert_eq!(third.iter().filter(|s| s.ttl == Some(2)).count(), need);
    assert_eq!(m.rounds(), 3);
}

#[test]
fn a_routers_model_share_follows_the_uniform_hash_not_the_few_flows_seen() {
    // Hop 1: one router; hop 2: three, one of them (10.0.2.3) met by 1 flow of 8; hop 3:
    // 10.0.2.1 splits in two, 10.0.3.9 is met only on a flow whose lower hops are unprobed.
    let p = paths(&[
        (0, &[(1, "10.0.1.1"), (2, "10.0.2.1"), (3, "10.0.3.1")]),
        (1, &[(1, "10.0.1.1"), (2, "10.0.2.1"), (3, "10.0.3.2")]),
        (2, &[(1, "10.0.1.1"), (2, "10.0.2.1")]),
        (3, &[(1, "10.0.1.1"), (2, "10.0.2.2"), (3, "10.0.3.3")]),
        (4, &[(1, "10.0.1.1"), (2, "10.0.2.2")]),
        (5, &[(1, "10.0.1.1"), (2, "10.0.2.2")]),
        (6, &[(1, "10.0.1.1"), (2, "10.0.2.2")]),
        (7, &[(1, "10.0.1.1"), (2, "10.0.2.3")]),
        (8, &[(3, "10.0.3.9")]),
    ]);
    let none = Assumed::new();
    let share = |r: Pred| model_share(&p, r, &none);
    assert_eq!(share(Pred::Source), Some(1.0));
    assert_eq!(share(Pred::Node(1, ip("10.0.1.1"))), Some(1.0));
    // A third each, though 10.0.2.3 was met on 1 flow of 8 and 10.0.2.2 on 4.
    for r in ["10.0.2.1", "10.0.2.2", "10.0.2.3"] {
        let s = share(Pred::Node(2, ip(r))).unwrap();
        assert!((s - 1.0 / 3.0).abs() < 1e-9, "{r}: {s}");
    }
    // Half of 10.0.2.1's third.
    let s = share(Pred::Node(3, ip("10.0.3.2"))).unwrap();
    assert!((s - 1.0 / 6.0).abs() < 1e-9, "{s}");
    // Nothing says whom 10.0.3.9 hangs off.
    assert_eq!(share(Pred::Node(3, ip("10.0.3.9"))), None);
}
