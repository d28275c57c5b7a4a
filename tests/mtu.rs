//! The MTU flags end to end, as root, through network namespaces each test builds (and
//! removes): client -- r -- q -- server, the r-q link with MTU 1400 (both ends), the others
//! 1500, so the client's large requests meet the small link at r, which says "packet too
//! big", or whose errors are dropped (a black hole toward the client; q's, toward the
//! server, pass: the echoes come back).
//! Without root they skip, saying so, unless CI is set. Loopback is never touched.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PORT: u16 = 12001;
const SRV4: &str = "10.81.103.2";
const SRV6: &str = "fd81:103::2";
const R4: &str = "10.81.101.1";
const R6: &str = "fd81:101::1";
const NODES: [&str; 4] = ["c", "r", "q", "s"];

/// client 10.81.101.2 -- .101.1 r .102.1 == .102.2 q .103.1 -- 10.81.103.2 server
/// (fd81:N::/64 likewise); == is MTU 1400.
struct Lab {
    prefix: String,
    server: Option<Child>,
}

impl Lab {
    fn ip(args: &[&str]) {
        let st = Command::new("ip").args(args).status().expect("run ip");
        assert!(st.success(), "ip {args:?}");
    }

    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    fn run(&self, n: &str, args: &[&str]) {
        netns_exec(&self.ns(n), args);
    }

    fn up(tag: &str, black_hole: bool) -> Lab {
        let mut lab = Lab {
            prefix: format!("tpdu{tag}{}", std::process::id()),
            server: None,
        };
        for n in NODES {
            Self::ip(&["netns", "add", &lab.ns(n)]);
            lab.run(n, &["ip", "link", "set", "lo", "up"]);
            lab.run(
                n,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.icmp_ratemask=0",
                    "net.ipv6.icmp.ratelimit=0",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ],
            );
        }
        for (a, a_ns, b, b_ns, mtu) in [
            ("c0", "c", "r0", "r", "1500"),
            ("r1", "r", "q0", "q", "1400"),
            ("q1", "q", "s0", "s", "1500"),
        ] {
            let (a_ns, b_ns) = (lab.ns(a_ns), lab.ns(b_ns));
            Self::ip(&[
                "link", "add", a, "netns", &a_ns, "mtu", mtu, "type", "veth", "peer", "name", b,
                "netns", &b_ns, "mtu", mtu,
            ]);
        }
        for (n, dev, v4, v6) in [
            ("c", "c0", "10.81.101.2/24", "fd81:101::2/64"),
            ("r", "r0", "10.81.101.1/24", "fd81:101::1/64"),
            ("r", "r1", "10.81.102.1/24", "fd81:102::1/64"),
            ("q", "q0", "10.81.102.2/24", "fd81:102::2/64"),
            ("q", "q1", "10.81.103.1/24", "fd81:103::1/64"),
            ("s", "s0", "10.81.103.2/24", "fd81:103::2/64"),
        ] {
            lab.run(n, &["ip", "addr", "add", v4, "dev", dev]);
            lab.run(n, &["ip", "-6", "addr", "add", v6, "dev", dev, "nodad"]);
            lab.run(n, &["ip", "link", "set", dev, "up"]);
        }
        for n in ["r", "q"] {
            lab.run(
                n,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                ],
            );
        }
        for (n, v4, v6) in [
            ("c", "10.81.101.1", "fd81:101::1"),
            ("r", "10.81.102.2", "fd81:102::2"),
            ("q", "10.81.102.1", "fd81:102::1"),
            ("s", "10.81.103.1", "fd81:103::1"),
        ] {
            lab.run(n, &["ip", "route", "add", "default", "via", v4]);
            lab.run(n, &["ip", "-6", "route", "add", "default", "via", v6]);
        }
        if black_hole {
            lab.run(
                "r",
                &[
                    "iptables",
                    "-w",
                    "-A",
                    "OUTPUT",
                    "-p",
                    "icmp",
                    "--icmp-type",
                    "fragmentation-needed",
                    "-j",
                    "DROP",
                ],
            );
            lab.run(
                "r",
                &[
                    "ip6tables",
                    "-w",
                    "-A",
                    "OUTPUT",
                    "-p",
                    "icmpv6",
                    "--icmpv6-type",
                    "packet-too-big",
                    "-j",
                    "DROP",
                ],
            );
        }
        let server = Command::new("ip")
            .args(["netns", "exec", &lab.ns("s"), BIN, "serve", "--listen"])
            .arg(format!("[::]:{PORT}"))
            .args(["--loss", "0", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        lab.server = Some(server);
        let t = Instant::now();
        while !lab.listening() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lab
    }

    fn listening(&self) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns("s"), "ss", "-Hltn"])
            .arg(format!("sport = :{PORT}"))
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    }

    /// `tcpping-diag ARGS --json` in the client namespace, after the client forgot the path
    /// MTUs it learnt: its events and exit status.
    fn client(&self, args: &[&str]) -> (Vec<Value>, i32) {
        for n in ["c", "s"] {
            for fam in ["-4", "-6"] {
                self.run(n, &["ip", fam, "route", "flush", "cache"]);
            }
        }
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("c"), BIN])
            .args(args)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .expect("run the client");
        (json_lines(&out), out.status.code().unwrap_or(-1))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        for n in NODES {
            remove_netns(&self.ns(n));
        }
    }
}

fn last(v: &[Value]) -> &Value {
    v.last().expect("no output")
}

#[test]
fn a_router_that_says_packet_too_big_is_named_with_its_mtu() {
    if !need_root("building network namespaces") {
        return;
    }
    let lab = Lab::up("p", false);
    for (srv, router, ty, code) in [
        (SRV4.to_string(), R4, 3, 4),
        (format!("[{SRV6}]"), R6, 2, 0),
    ] {
        let target = format!("{srv}:{PORT}");
        // A request that fits passes. (-W 3: the path's first packets wait on neighbour
        // discovery, and a SYN lost meanwhile is sent again after 1 s: that is not the MTU.)
        let (v, code0) = lab.client(&[&target, "-n", "1", "-s", "1300", "-W", "3"]);
        assert_eq!(code0, 0, "{v:?}");
        assert_eq!(pings(&v)[0]["status"], "reply", "{v:?}");
        // One that does not: the first ping is ended by the router's error, the next passes
        // (the kernel sends smaller segments).
        let (v, _) = lab.client(&[&target, "-n", "2", "-i", "0.3", "-s", "1400"]);
        let p = pings(&v);
        assert_eq!(p[0]["status"], "icmp", "{v:?}");
        assert_eq!(p[0]["icmp"]["type"], ty, "{v:?}");
        assert_eq!(p[0]["icmp"]["code"], code, "{v:?}");
        assert_eq!(p[0]["icmp"]["from"], router, "{v:?}");
        assert_eq!(p[0]["icmp"]["mtu"], 1400, "{v:?}");
        assert_eq!(p[1]["status"], "reply", "{v:?}");
        assert!(v.iter().all(|e| e["type"] != "notice"), "{v:?}");
        // --pmtu: three requests (small, largest, the reported MTU's).
        let (v, code1) = lab.client(&[&target, "--pmtu"]);
        assert_eq!(code1, 0, "{v:?}");
        let f = last(&v);
        assert_eq!(f["type"], "pmtu", "{v:?}");
        assert_eq!(f["path_mtu"], 1400, "{v:?}");
        assert_eq!(f["router"], router, "{v:?}");
        assert_eq!(f["black_hole"], false, "{v:?}");
        assert_eq!(f["probes"], 3, "{v:?}");
        // trace --size: hop 1 is the router before the small link.
        let (v, code2) = lab.client(&["trace", &target, "--size", "1500", "-W", "0.5", "-m", "4"]);
        assert_eq!(code2, 1, "{v:?}");
        let m = &last(&v)["mtu"];
        assert_eq!(m["hop"], 1, "{v:?}");
        assert_eq!(m["router"], router, "{v:?}");
        assert_eq!(m["mtu"], 1400, "{v:?}");
        assert_eq!(m["black_hole"], false, "{v:?}");
        // SYNs that fit reach the server, and nothing is said about the MTU.
        let (v, code3) = lab.client(&["trace", &target, "--size", "1400", "-W", "0.5", "-m", "4"]);
        assert_eq!(code3, 0, "{v:?}");
        assert_eq!(last(&v)["verdict"], "reached", "{v:?}");
        assert!(last(&v).get("mtu").is_none(), "{v:?}");
    }
}

#[test]
fn a_silent_small_link_is_called_a_black_hole_and_dont_fragment_decides() {
    if !need_root("building network namespaces") {
        return;
    }
    let lab = Lab::up("b", true);
    for srv in [SRV4.to_string(), format!("[{SRV6}]")] {
        let target = format!("{srv}:{PORT}");
        // The path's first packets wait on neighbour discovery (a SYN lost meanwhile is sent
        // again after 1 s): one small ping first, so that what follows meets only the MTU.
        let (v, _) = lab.client(&[&target, "-n", "1", "-s", "64", "-W", "3"]);
        assert_eq!(pings(&v)[0]["status"], "reply", "{v:?}");
        // Large requests stall after the handshake; a small control ping passes.
        let (v, code) = lab.client(&[&target, "-n", "2", "-i", "0.1", "-W", "0.5", "-s", "1400"]);
        assert_eq!(code, 1, "{v:?}");
        assert_eq!(
            (&v[0]["size"], &v[0]["pmtud"]),
            (&Value::from(1400), &Value::from("do"))
        );
        let p = pings(&v);
        assert!(
            p.iter()
                .all(|e| e["status"] == "timeout" && e["phase"] == "echo"),
            "{v:?}"
        );
        let notices: Vec<&Value> = v.iter().filter(|e| e["type"] == "notice").collect();
        assert_eq!(notices.len(), 1, "{v:?}");
        assert_eq!(notices[0]["kind"], "mtu_black_hole");
        assert!(notices[0]["message"].as_str().unwrap().contains(
            "large segments (1400 bytes) time out while 64-byte pings pass: a path MTU black hole; no ICMP 'packet too big' came back"
        ));
        // The same on a persistent connection: its control ping goes on a connection of
        // its own (the stalled one holds every later request).
        let (v, code) = lab.client(&[
            &target,
            "-n",
            "2",
            "-i",
            "0.1",
            "-W",
            "0.5",
            "-s",
            "1400",
            "--persistent",
        ]);
        assert_eq!(code, 1, "{v:?}");
        assert!(
            pings(&v)
                .iter()
                .all(|e| e["status"] == "timeout" && e["phase"] == "echo"),
            "{v:?}"
        );
        let notices: Vec<&Value> = v.iter().filter(|e| e["type"] == "notice").collect();
        assert_eq!(notices.len(), 1, "--persistent: {v:?}");
        assert_eq!(notices[0]["kind"], "mtu_black_hole");
        // Small requests alone: no notice, replies.
        let (v, code) = lab.client(&[&target, "-n", "2", "-i", "0.1", "-s", "64"]);
        assert_eq!(code, 0, "{v:?}");
        assert!(v.iter().all(|e| e["type"] != "notice"), "{v:?}");
        // --pmtu bisects it to the byte: 1348-byte requests (1400 on the wire, IPv4) pass.
        let (v, code) = lab.client(&[&target, "--pmtu", "-W", "0.5"]);
        assert_eq!(code, 0, "{v:?}");
        let f = last(&v);
        assert_eq!(
            (
                f["path_mtu"].as_u64(),
                f["router"].is_null(),
                f["black_hole"].as_bool()
            ),
            (Some(1400), true, Some(true)),
            "{v:?}"
        );
        // trace --size: silent after hop 1, small SYNs pass: a black hole after hop 1.
        let (v, _) = lab.client(&["trace", &target, "--size", "1500", "-W", "0.5", "-m", "4"]);
        let m = &last(&v)["mtu"];
        assert_eq!(m["hop"], 1, "{v:?}");
        assert_eq!(m["black_hole"], true, "{v:?}");
        assert!(m["mtu"].is_null(), "{v:?}");
        assert!(
            last(&v)["text"].as_str().unwrap().contains("black hole"),
            "{v:?}"
        );
    }
    // -M dont (IPv4): no DF, r fragments the request; the echo comes back (the server
    // hears q's "packet too big").
    let target = format!("{SRV4}:{PORT}");
    let (v, code) = lab.client(&[&target, "-n", "1", "-W", "1", "-s", "1400", "-M", "dont"]);
    assert_eq!(code, 0, "{v:?}");
    assert_eq!(pings(&v)[0]["status"], "reply", "{v:?}");
    // -M do (the default) and want: DF, the black hole again.
    for how in ["do", "want"] {
        let (v, code) = lab.client(&[&target, "-n", "1", "-W", "0.5", "-s", "1400", "-M", how]);
        assert_eq!(code, 1, "-M {how}: {v:?}");
    }
}
