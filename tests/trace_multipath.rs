//! `tcpping-diag trace --multipath` and `--rate`, the real binary with SYN probes on loopback
//! (root). The lab's ECMP diamond and the simulated load-balancer graphs (`src/cmd/trace/
//! mda_tests.rs`) cover the branching.

mod common;

use std::net::TcpListener;

use common::*;

#[test]
fn multipath_on_loopback_reaches_on_the_flows_the_rule_needs_at_the_set_rate() {
    if !need_root("SYN probes need CAP_NET_RAW") {
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().to_string();
    let out = client(&[
        "trace",
        &open,
        "--multipath",
        "--json",
        "-W",
        "2",
        "--rate",
        "100",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v = json_lines(&out);
    let probes: Vec<_> = v.iter().filter(|e| e["type"] == "probe").collect();
    let hops: Vec<_> = v.iter().filter(|e| e["type"] == "hop").collect();
    let t = v.last().unwrap();
    assert_eq!(t["type"], "trace");
    assert_eq!(
        (t["multipath"].as_bool(), t["confidence"].as_u64()),
        (Some(true), Some(95))
    );
    // The target is hop 1: from the sender, 6 flows rule out a second next hop at 95 %.
    assert_eq!(t["probes_sent"].as_u64(), Some(6), "{t}");
    assert_eq!(probes.len(), 6);
    assert!(probes.iter().all(|p| p["port"] == "open"), "{probes:?}");
    assert_eq!(
        (t["flows"].as_u64(), t["flows_reached"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(hops.len(), 1);
    // The only hop is the destination's: no router answered there, so the stopping rule's
    // fields say nothing (null), as at every destination hop.
    assert_eq!(
        (
            hops[0]["flows_needed"].as_u64(),
            hops[0]["enough_flows"].as_bool()
        ),
        (None, None),
        "{:?}",
        hops[0]
    );
    // 100 probes a second: the 6 leave over at least 50 ms.
    assert!(t["elapsed_ms"].as_f64().unwrap() >= 50.0, "{t}");
}
