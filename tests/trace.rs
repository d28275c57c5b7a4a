//! `tcpping-diag trace`, the real binary: usage errors, loopback traces with connect()
//! probes (no privilege) and with SYN probes (root), the fallback without CAP_NET_RAW, and a
//! path through a router in network namespaces this test builds and removes (root). The lab
//! (scripts/lab.sh, trace-* scenarios) covers longer paths, ECMP, MPLS and rate limits.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn trace(args: &[&str]) -> Output {
    let mut all = vec!["trace"];
    all.extend(args);
    client(&all)
}

fn events(out: &Output) -> Vec<Value> {
    json_lines(out)
}

fn of_type<'a>(v: &'a [Value], t: &str) -> Vec<&'a Value> {
    v.iter().filter(|e| e["type"] == t).collect()
}

fn summary_of(v: &[Value]) -> &Value {
    let last = v.last().expect("no output");
    assert_eq!(
        last["type"], "trace",
        "last event is not the trace summary: {last}"
    );
    last
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &[][..],
        &["127.0.0.1:80", "-m", "0"],
        &["127.0.0.1:80", "--queries", "0"],
        &["127.0.0.1:80", "--flows", "65"],
        &["127.0.0.1:80", "-m", "255", "-q", "16", "--flows", "64"],
        &["127.0.0.1:0"],
        &["127.0.0.1"],
        &["no-such-host.invalid:80"],
        &["127.0.0.1:80", "-W", "0"],
    ] {
        let out = trace(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(!stderr(&out).trim().is_empty(), "{args:?}: says why");
    }
    let out = trace(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--max-hops",
        "--queries",
        "--flows",
        "--cycles",
        "--resolve",
        "--json",
        "--probe",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

/// The one-line error of a usage mistake (exit 2, nothing on stdout).
fn usage_error(args: &[&str]) -> String {
    let out = trace(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    stderr(&out)
}

#[test]
fn a_negative_number_is_told_the_rule_not_to_write_dash_dash() {
    for (args, rule) in [
        (
            &["127.0.0.1:80", "--cycles", "-1"][..],
            "the cycles must be a whole number, 0 or more (0: until interrupted)",
        ),
        (
            &["127.0.0.1:80", "-m", "-1"],
            "the hop limit must be a whole number from 1 to 255",
        ),
        (
            &["127.0.0.1:80", "-q", "-2"],
            "the queries per hop must be a whole number from 1 to 16",
        ),
        (
            &["127.0.0.1:80", "--flows", "-3"],
            "the flows must be a whole number from 1 to 64",
        ),
        (
            &["127.0.0.1:80", "--cycles", "1.5"],
            "the cycles must be a whole number",
        ),
    ] {
        let e = usage_error(args);
        assert!(e.contains(rule), "{args:?}: {e}");
        assert!(!e.contains("-- -"), "{args:?} advises '-- ARG': {e}");
    }
}

#[test]
fn syn_points_at_probe_syn() {
    let e = usage_error(&["127.0.0.1:80", "--syn"]);
    assert!(e.contains("--probe syn"), "{e}");
    assert!(!e.contains("--json"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
}

#[test]
fn q_is_queries_in_trace_and_quiet_in_ping_and_both_helps_say_so() {
    let out = trace(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("-q, --queries <Q> Queries: probes per hop (and per flow), as traceroute's -q. (Not ping's -q, which is --quiet.)"),
        "{help}"
    );
    let out = client(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("-q, --quiet Quiet: print only the start line and the summary (with --json: only the summary). (trace's -q is queries per hop, as traceroute's)"),
        "{help}"
    );
}

#[test]
fn connect_probes_reach_an_open_loopback_port() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let out = trace(&[&target, "--probe", "connect", "--json", "-W", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "no notice when connect() was asked for: {}",
        stderr(&out)
    );
    let v = events(&out);
    let start = &v[0];
    assert_eq!(start["type"], "trace_start");
    assert_eq!(start["probe"], "connect");
    assert_eq!(start["address"], target.as_str());
    assert_eq!(
        (
            start["max_hops"].as_u64(),
            start["queries"].as_u64(),
            start["flows"].as_u64()
        ),
        (Some(30), Some(3), Some(1))
    );
    let probes = of_type(&v, "probe");
    assert_eq!(probes.len(), 3, "loopback is one hop: 3 queries");
    for p in &probes {
        assert_eq!(p["hop"], 1);
        assert_eq!(p["status"], "reached");
        assert_eq!(p["port"], "open");
        assert_eq!(p["from"], "127.0.0.1");
        assert!(p["rtt_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(p["icmp"], Value::Null);
        assert_eq!(p["mpls"], serde_json::json!([]));
    }
    let hops = of_type(&v, "hop");
    assert_eq!(hops.len(), 1);
    assert_eq!(
        (hops[0]["sent"].as_u64(), hops[0]["received"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(hops[0]["loss_pct"], 0.0);
    let t = summary_of(&v);
    assert_eq!(t["verdict"], "reached");
    assert_eq!(t["hops"], 1);
    assert_eq!(t["port"], "open");
    assert_eq!(t["break_hop"], Value::Null);
    assert_eq!(t["text"], format!("reached {target} (open) in 1 hop"));
}

#[test]
fn connect_probes_to_a_closed_port_reach_it_closed_and_cycles_add_up() {
    let target = closed_port().to_string();
    let out = trace(&[
        &target, "--probe", "connect", "--json", "--cycles", "3", "-i", "0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = events(&out);
    assert_eq!(of_type(&v, "probe").len(), 9);
    let cycles: Vec<u64> = of_type(&v, "probe")
        .iter()
        .map(|p| p["cycle"].as_u64().unwrap())
        .collect();
    assert_eq!(cycles, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
    let hop = of_type(&v, "hop")[0];
    assert_eq!(
        (hop["sent"].as_u64(), hop["received"].as_u64()),
        (Some(9), Some(9))
    );
    let t = summary_of(&v);
    assert_eq!(t["cycles"], 3);
    assert_eq!(t["text"], format!("reached {target} (closed) in 1 hop"));
}

#[test]
fn human_output_and_the_report() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let out = trace(&[&target, "--probe", "connect", "--cycles", "2", "-i", "0"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(&format!("trace to {target} ({target}) from 127.0.0.1: CONNECT probes, 30 hops max, 3 queries per hop, 2 cycles")), "{text}");
    assert!(lines[1].starts_with(" 1  127.0.0.1 [open]  "), "{text}");
    assert!(
        text.contains("HOP  ADDRESS"),
        "the report after 2 cycles: {text}"
    );
    assert!(text.contains("\n  1  127.0.0.1 [open]"), "{text}");
    assert_eq!(
        *lines.last().unwrap(),
        format!("reached {target} (open) in 1 hop")
    );
}

#[test]
fn resolve_names_the_routers() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let out = trace(&[
        &target,
        "--probe",
        "connect",
        "--json",
        "--resolve",
        "-q",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = events(&out);
    let p = of_type(&v, "probe")[0];
    assert!(
        p["name"].as_str().is_some_and(|n| !n.is_empty()),
        "127.0.0.1 has a name in /etc/hosts: {p}"
    );
    let out = trace(&[&target, "--probe", "connect", "--json", "-q", "1"]);
    let v = events(&out);
    assert_eq!(
        of_type(&v, "probe")[0]["name"],
        Value::Null,
        "no lookups without --resolve"
    );
}

#[test]
fn syn_probes_on_loopback() {
    if !need_root("SYN probes need CAP_NET_RAW") {
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().to_string();
    let out = trace(&[&open, "--json", "-W", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let v = events(&out);
    assert_eq!(v[0]["probe"], "syn");
    assert_eq!(
        v[0]["ports"].as_array().unwrap().len(),
        1,
        "one reserved source port"
    );
    let probes = of_type(&v, "probe");
    assert_eq!(probes.len(), 3);
    let port = v[0]["ports"][0].as_u64().unwrap();
    for p in &probes {
        assert_eq!(
            (p["status"].as_str(), p["port"].as_str()),
            (Some("reached"), Some("open")),
            "{p}"
        );
        assert_eq!(p["local_port"].as_u64(), Some(port), "a constant flow: {p}");
    }
    assert_eq!(
        summary_of(&v)["text"],
        format!("reached {open} (open) in 1 hop")
    );
    // Nothing half-open stays behind on the "server" (our kernel reset each SYN-ACK).
    let closed = closed_port().to_string();
    let out = trace(&[&closed, "--json", "--flows", "4", "-q", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = events(&out);
    assert_eq!(v[0]["ports"].as_array().unwrap().len(), 4);
    let probes = of_type(&v, "probe");
    assert_eq!(probes.len(), 8, "4 flows x 2 queries");
    assert!(probes.iter().all(|p| p["port"] == "closed"));
    let t = summary_of(&v);
    assert_eq!(
        (t["flows"].as_u64(), t["flows_reached"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(t["reprobes"], 0);
}

/// A copy of the binary that `nobody` may run.
fn binary_for_nobody() -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tcpping-trace-unpriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("tcpping-diag");
    common::copy_binary(&bin);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

fn as_nobody(bin: &std::path::Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(bin)
        .arg("trace")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn without_cap_net_raw_one_line_and_connect_probes() {
    if !need_root("dropping to an unprivileged user") {
        return;
    }
    if Command::new("setpriv").arg("--help").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "setpriv (util-linux) missing in CI"
        );
        eprintln!("SKIPPED: setpriv missing");
        return;
    }
    let (dir, bin) = binary_for_nobody();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let out = as_nobody(&bin, &[&target, "--json"]);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one notice line: {err}");
    assert!(
        err.contains("CAP_NET_RAW")
            && err.contains("connect()")
            && err.contains("setcap cap_net_raw+ep"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0));
    let v = events(&out);
    assert_eq!(v[0]["probe"], "connect");
    assert_eq!(summary_of(&v)["verdict"], "reached");
    // --probe syn insists: exit 2, one line, nothing on stdout.
    let out = as_nobody(&bin, &[&target, "--probe", "syn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("--probe connect"),
        "{err}"
    );
    // Constant flows without the privilege: --flows 4, each flow's probes from its own
    // port, back to back on one 4-tuple (closed with RST: no TIME_WAIT in the way).
    let out = as_nobody(&bin, &[&target, "--flows", "4", "-q", "3", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = events(&out);
    let ports: Vec<u64> = v[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        (v[0]["probe"].as_str(), distinct.len()),
        (Some("connect"), 4),
        "{}",
        v[0]
    );
    let probes: Vec<&serde_json::Value> = v.iter().filter(|e| e["type"] == "probe").collect();
    assert_eq!(probes.len(), 12, "4 flows x 3 queries at hop 1");
    for p in probes {
        assert_eq!(p["status"], "reached", "{p}");
        let flow = p["flow"].as_u64().unwrap() as usize;
        assert_eq!(p["local_port"].as_u64(), Some(ports[flow]), "{p}");
    }
    let s = summary_of(&v);
    assert_eq!(
        (s["flows"].as_u64(), s["flows_reached"].as_u64()),
        (Some(4), Some(4)),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Network namespaces client -- router -- server (tpdt<pid><name>-{c,r,s}), removed on drop.
struct Lab {
    prefix: String,
}

impl Lab {
    fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status().expect("run ip");
        assert!(st.success(), "ip {args:?}");
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}-{ns}", self.prefix)])
            .args(args);
        c
    }

    fn run(&self, ns: &str, args: &[&str]) {
        let st = self.exec(ns, args).stdout(Stdio::null()).status().unwrap();
        assert!(st.success(), "{ns}: {args:?}");
    }

    /// client 10.79.1.2 -- 10.79.1.1 router 10.79.2.1 -- 10.79.2.2 server; and a second
    /// link router 10.79.3.1 -- 10.79.3.2 server, so that the router splits traffic to the
    /// server's 10.79.9.1 over both links, hashing the ports, and drops TCP to port 11 on
    /// the second (a load-balanced branch that drops).
    fn up(name: &str) -> Lab {
        let lab = Lab {
            prefix: format!("tpdt{}{name}", std::process::id()),
        };
        for n in ["c", "r", "s"] {
            lab.ip(&["netns", "add", &format!("{}-{n}", lab.prefix)]);
            lab.run(n, &["ip", "link", "set", "lo", "up"]);
            lab.run(n, &["sysctl", "-q", "-w", "net.ipv4.icmp_ratemask=0"]);
        }
        let p = &lab.prefix;
        for (a, dev_a, b, dev_b) in [
            ("c", "c0", "r", "r0"),
            ("r", "r1", "s", "s0"),
            ("r", "r2", "s", "s1"),
        ] {
            let (ns_a, ns_b) = (format!("{p}-{a}"), format!("{p}-{b}"));
            lab.ip(&[
                "link", "add", dev_a, "netns", &ns_a, "type", "veth", "peer", "name", dev_b,
                "netns", &ns_b,
            ]);
        }
        for (ns, dev, addr) in [
            ("c", "c0", "10.79.1.2/24"),
            ("r", "r0", "10.79.1.1/24"),
            ("r", "r1", "10.79.2.1/24"),
            ("s", "s0", "10.79.2.2/24"),
            ("r", "r2", "10.79.3.1/24"),
            ("s", "s1", "10.79.3.2/24"),
            ("s", "lo", "10.79.9.1/32"),
        ] {
            lab.run(ns, &["ip", "addr", "add", addr, "dev", dev]);
            lab.run(ns, &["ip", "link", "set", dev, "up"]);
        }
        lab.run("r", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        lab.run("c", &["ip", "route", "add", "default", "via", "10.79.1.1"]);
        lab.run("s", &["ip", "route", "add", "default", "via", "10.79.2.1"]);
        lab.run(
            "r",
            &[
                "iptables",
                "-w",
                "-A",
                "FORWARD",
                "-p",
                "tcp",
                "--dport",
                "7",
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-admin-prohibited",
            ],
        );
        lab.run(
            "r",
            &[
                "iptables", "-w", "-A", "FORWARD", "-p", "tcp", "--dport", "9", "-j", "DROP",
            ],
        );
        lab.run(
            "r",
            &["sysctl", "-q", "-w", "net.ipv4.fib_multipath_hash_policy=1"],
        );
        lab.run(
            "r",
            &[
                "ip",
                "route",
                "add",
                "10.79.9.1/32",
                "nexthop",
                "via",
                "10.79.2.2",
                "nexthop",
                "via",
                "10.79.3.2",
            ],
        );
        lab.run(
            "r",
            &[
                "iptables", "-w", "-A", "FORWARD", "-o", "r2", "-p", "tcp", "--dport", "11", "-j",
                "DROP",
            ],
        );
        lab
    }
}

impl Lab {
    /// The lab, or None (said) when it cannot be built: not root, or no iptables, both
    /// outside CI only.
    fn try_up(name: &str) -> Option<Lab> {
        if !need_root_and_iptables("building network namespaces") {
            return None;
        }
        Some(Lab::up(name))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in ["c", "r", "s"] {
            common::remove_netns(&format!("{}-{n}", self.prefix));
        }
    }
}

#[test]
fn through_a_router_reached_refused_and_silent() {
    let Some(lab) = Lab::try_up("a") else {
        return;
    };
    // Closed port 5 on the server: reached in 2 hops, router first.
    let out = lab
        .exec("c", &[BIN, "trace", "10.79.2.2:5", "--json", "-m", "6"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = events(&out);
    let hops = of_type(&v, "hop");
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["routers"], serde_json::json!(["10.79.1.1"]));
    assert_eq!(hops[0]["router_details"][0]["time_exceeded"], 3);
    assert_eq!(hops[1]["routers"], serde_json::json!(["10.79.2.2"]));
    assert_eq!(hops[1]["router_details"][0]["port"], "closed");
    assert_eq!(
        summary_of(&v)["text"],
        "reached 10.79.2.2:5 (closed) in 2 hops"
    );
    // Port 7: the router refuses what it would forward.
    let out = lab
        .exec("c", &[BIN, "trace", "10.79.2.2:7", "--json", "-m", "6"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = summary_of(&events(&out)).clone();
    assert_eq!(t["verdict"], "path_ends");
    assert_eq!(
        (t["break_hop"].as_u64(), t["break_router"].as_str()),
        (Some(1), Some("10.79.1.1"))
    );
    assert_eq!(
        t["text"],
        "path ends at hop 1: 10.79.1.1 says communication administratively prohibited; none of 6 other flows reach the target"
    );
    // Port 9: dropped past the router.
    let out = lab
        .exec(
            "c",
            &[
                BIN,
                "trace",
                "10.79.2.2:9",
                "--json",
                "-m",
                "6",
                "-W",
                "0.5",
            ],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = summary_of(&events(&out)).clone();
    assert_eq!(t["verdict"], "silent_after");
    assert_eq!(
        (t["break_hop"].as_u64(), t["break_router"].as_str()),
        (Some(1), Some("10.79.1.1"))
    );
    assert!(t["text"]
        .as_str()
        .unwrap()
        .contains("between hop 1 and hop 2 drops TCP to port 9"));
    // A single flow that broke tried 6 others (the break hop and the target each): none
    // got through.
    assert!(t["text"]
        .as_str()
        .unwrap()
        .ends_with("; none of 6 other flows reach the target"));
    assert_eq!(
        t["other_flows"],
        serde_json::json!({"tried": 6, "reached": 0})
    );
    assert_eq!(t["probes_sent"], 6 * 3 + 12);
    // The same, interrupted well before its 5 s timeout: the verdict says so, and names the
    // time it waited, not the timeout.
    let child = lab
        .exec("c", &[BIN, "trace", "10.79.2.2:9", "-m", "6", "-W", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("interrupted before the first round ended: "),
        "{text}"
    );
    assert!(!last.contains("within 5s"), "{last}");
}

#[test]
fn a_load_balanced_branch_that_drops_is_partial_with_exit_status_3() {
    let Some(lab) = Lab::try_up("b") else {
        return;
    };
    // 16 flows over the router's two links to 10.79.9.1: those on the second are dropped
    // there (all 16 on one link: 2 chances in 65,536).
    let args = [BIN, "trace", "10.79.9.1:11", "--json", "-m", "4", "-q", "1"];
    let out = lab
        .exec("c", &[&args[..], &["--flows", "16", "-W", "0.5"]].concat())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let t = summary_of(&events(&out)).clone();
    assert_eq!(t["verdict"], "partial");
    let broken = t["broken"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{t}");
    let b = &broken[0];
    assert_eq!(
        (&b["hop"], &b["router"], &b["how"]),
        (&1.into(), &"10.79.1.1".into(), &"silent".into())
    );
    let (n, reached) = (
        b["count"].as_u64().unwrap(),
        t["flows_reached"].as_u64().unwrap(),
    );
    assert_eq!(
        (t["flows_broken"].as_u64(), t["flows"].as_u64()),
        (Some(n), Some(16))
    );
    assert_eq!(n + reached, 16);
    assert_eq!(
        t["text"],
        format!("reached 10.79.9.1:11 on {reached} of 16 flows; the {n} through 10.79.1.1 (hop 1) are silent after hop 1 (10.79.1.1): it drops TCP to port 11")
    );
    assert_eq!(
        (t["break_hop"].as_u64(), t["port"].as_str()),
        (Some(1), Some("closed"))
    );
    // One flow: reached, or it broke and other flows were tried (each of the 6 others on
    // the first link with chance 1/2): then partial when any got through.
    for _ in 0..4 {
        let out = lab
            .exec("c", &[&args[..], &["-W", "0.5"]].concat())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let t = summary_of(&events(&out)).clone();
        let text = t["text"].as_str().unwrap().to_string();
        match out.status.code() {
            Some(0) => assert_eq!(text, "reached 10.79.9.1:11 (closed) in 2 hops"),
            Some(3) => {
                let k = t["other_flows"]["reached"].as_u64().unwrap();
                assert!(k >= 1, "{t}");
                assert_eq!(t["verdict"], "partial");
                assert_eq!(
                    text,
                    format!("silent after hop 1 (10.79.1.1) on this flow; {k} of 6 other flows reach the target: a load-balanced branch through 10.79.1.1 drops TCP to port 11")
                );
            }
            Some(1) => assert!(
                text.ends_with("none of 6 other flows reach the target"),
                "{text}"
            ),
            c => panic!("exit {c:?}: {}", stderr(&out)),
        }
    }
}
