//! `tcpping-diag trace`'s middlebox report, the real binary (root): a path client -- a -- b --
//! server in network namespaces this test builds and removes, where router a clamps the MSS
//! of SYNs to port 4 (TCPMSS) and remarks the DSCP of those to port 6: router b's time
//! exceeded (hop 2) quotes what a let through. The lab's mbox-* scenarios
//! (scripts/lab/middlebox.sh) cover the other middleboxes, IPv6 and the peers.

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// Namespaces c, a, b, s: 10.80.201.2 -- .201.1 a .202.1 -- .202.2 b .203.1 -- 10.80.203.2,
/// removed on drop.
struct Path {
    prefix: String,
}

impl Path {
    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    fn run(&self, n: &str, args: &[&str]) {
        netns_exec(&self.ns(n), args);
    }

    fn up() -> Path {
        let p = Path {
            prefix: format!("tpdm{}", std::process::id()),
        };
        for n in ["c", "a", "b", "s"] {
            let st = Command::new("ip")
                .args(["netns", "add", &p.ns(n)])
                .status()
                .unwrap();
            assert!(st.success());
            p.run(n, &["ip", "link", "set", "lo", "up"]);
            p.run(n, &["sysctl", "-q", "-w", "net.ipv4.icmp_ratemask=0"]);
        }
        for (l, r, lif, rif, net) in [
            ("c", "a", "c0", "a0", 201),
            ("a", "b", "a1", "b0", 202),
            ("b", "s", "b1", "s0", 203),
        ] {
            let st = Command::new("ip")
                .args(["link", "add", lif, "netns", &p.ns(l), "type", "veth"])
                .args(["peer", "name", rif, "netns", &p.ns(r)])
                .status()
                .unwrap();
            assert!(st.success());
            // The client is .2 on its link; elsewhere the left end is .1.
            let (la, ra) = if l == "c" { (2, 1) } else { (1, 2) };
            p.run(
                l,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.80.{net}.{la}/24"),
                    "dev",
                    lif,
                ],
            );
            p.run(
                r,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.80.{net}.{ra}/24"),
                    "dev",
                    rif,
                ],
            );
            p.run(l, &["ip", "link", "set", lif, "up"]);
            p.run(r, &["ip", "link", "set", rif, "up"]);
        }
        for n in ["a", "b"] {
            p.run(n, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        }
        p.run(
            "c",
            &["ip", "route", "add", "default", "via", "10.80.201.1"],
        );
        p.run(
            "a",
            &["ip", "route", "add", "default", "via", "10.80.202.2"],
        );
        p.run(
            "b",
            &["ip", "route", "add", "10.80.201.0/24", "via", "10.80.202.1"],
        );
        p.run(
            "s",
            &["ip", "route", "add", "default", "via", "10.80.203.1"],
        );
        let mangle = [
            "iptables", "-w", "-t", "mangle", "-A", "FORWARD", "-p", "tcp",
        ];
        let mut mss = mangle.to_vec();
        mss.extend(["--dport", "4", "--tcp-flags", "SYN,RST", "SYN"]);
        mss.extend(["-j", "TCPMSS", "--set-mss", "1300"]);
        p.run("a", &mss);
        let mut dscp = mangle.to_vec();
        dscp.extend(["--dport", "6", "-j", "DSCP", "--set-dscp", "0"]);
        p.run("a", &dscp);
        p
    }

    /// `trace ARGS --json -m 5` from the client: its events.
    fn trace(&self, args: &[&str]) -> Vec<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("c"), BIN, "trace"])
            .args(args)
            .args(["--json", "-m", "5", "-W", "2"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out)
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        for n in ["c", "a", "b", "s"] {
            remove_netns(&self.ns(n));
        }
    }
}

fn hop(v: &[Value], n: u64) -> &Value {
    v.iter()
        .find(|e| e["type"] == "hop" && e["hop"] == n)
        .unwrap_or_else(|| panic!("no hop {n}"))
}

#[test]
fn a_clamp_and_a_remark_named_at_the_hop_after_the_box_and_no_extra_probe() {
    if !need_root_and_iptables("building network namespaces") {
        return;
    }
    let path = Path::up();
    // Port 5: untouched (closed: RST, no SYN-ACK to read).
    let v = path.trace(&["10.80.203.2:5"]);
    let t = v.last().unwrap();
    assert_eq!(t["text"], "reached 10.80.203.2:5 (closed) in 3 hops");
    assert_eq!(t["changes"], json!([]));
    assert_eq!(t["syn_ack"], Value::Null);
    for n in [1, 2] {
        assert_eq!(hop(&v, n)["quote"], "full");
        assert_eq!(hop(&v, n)["changes"], json!([]));
    }
    // Every hop probed 3 times (-m 5), nothing more: the comparison costs no probe.
    assert_eq!(t["probes_sent"], 15);
    // Port 4: a clamps the MSS; b, hop 2, quotes it.
    let v = path.trace(&["10.80.203.2:4"]);
    let t = v.last().unwrap();
    assert_eq!(
        t["changes"],
        json!([{"field":"mss","sent":"1460","seen":"1300","hop":2,"to_target":true}])
    );
    assert_eq!(hop(&v, 1)["changes"], json!([]));
    assert_eq!(
        hop(&v, 2)["changes"],
        json!([{"field":"mss","sent":"1460","seen":"1300","hop":2}])
    );
    assert_eq!(t["probes_sent"], 15);
    // Port 6 with --dscp 46: a remarks it to 0.
    let v = path.trace(&["10.80.203.2:6", "--dscp", "46"]);
    assert_eq!(
        v.last().unwrap()["changes"],
        json!([{"field":"dscp","sent":"46","seen":"0","hop":2,"to_target":true}])
    );
    // The human output: the hop's line and the summary line.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &path.ns("c"),
            BIN,
            "trace",
            "10.80.203.2:4",
        ])
        .args(["-m", "5", "-W", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\nhop 2 (10.80.202.2): MSS 1460 → 1300 (clamped)\n"),
        "{text}"
    );
    assert!(
        text.contains("\nmiddleboxes: MSS 1460 → 1300 (clamped): first seen at hop 2 (10.80.202.2), changed between hop 1 and hop 2, and lasts to the target\n"),
        "{text}"
    );
}
