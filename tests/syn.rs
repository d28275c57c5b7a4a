//! `--syn` on loopback, as root: half-open probes against a real server, side by side with
//! other SYN runs and ordinary connections, and without privileges. They run in CI (as
//! root); on a developer machine without root they skip, saying so, unless CI is set.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};

use common::*;

fn run(args: &[&str]) -> std::process::Output {
    client(args)
}

fn ports(v: &[serde_json::Value]) -> HashSet<u64> {
    pings(v)
        .iter()
        .map(|p| p["local_port"].as_u64().unwrap())
        .collect()
}

#[test]
fn syn_probes_say_open_and_closed_with_wire_times() {
    if !need_root("syn_probes_say_open_and_closed_with_wire_times") {
        return;
    }
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = run(&[
        &srv.addr.to_string(),
        "--syn",
        "-n",
        "5",
        "-i",
        "0",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_lines(&out);
    assert_eq!(v[0]["probe"], "syn");
    for p in pings(&v) {
        assert_eq!(p["probe"], "syn", "{p}");
        assert_eq!(p["status"], "reply", "{p}");
        assert_eq!(p["connect_clock"], "wire", "{p}");
        assert!(p["connect_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(ports(&v).len(), 1, "a constant flow keeps one source port");
    assert_eq!(summary(&v)["received"], 5);
    // Nothing reached the server's application: no connection was accepted.
    let log = srv.stop_and_log();
    assert!(log.contains("0 connections"), "{log}");

    let closed = closed_port();
    let out = run(&[&closed.to_string(), "--syn", "-n", "3", "-i", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_lines(&out);
    assert!(pings(&v).iter().all(|p| p["status"] == "refused"), "{v:?}");

    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = run(&[
        &srv.addr.to_string(),
        "--syn",
        "--flow",
        "per-probe",
        "-n",
        "20",
        "-i",
        "0",
        "--json",
    ]);
    let v = json_lines(&out);
    assert_eq!(summary(&v)["received"], 20);
    assert_eq!(ports(&v).len(), 20, "per-probe flows: a port per probe");
}

#[test]
fn two_syn_runs_and_ordinary_connections_never_take_each_others_answers() {
    if !need_root("two_syn_runs_and_ordinary_connections_never_take_each_others_answers") {
        return;
    }
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let addr = srv.addr.to_string();
    let spawn = |extra: &[&str]| {
        Command::new(BIN)
            .args([addr.as_str(), "-n", "3000", "-i", "0", "--json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&["--syn"]);
    let b = spawn(&["--syn"]);
    let c = spawn(&["--syn", "--flow", "per-probe"]);
    let d = spawn(&[]); // ordinary connect pings to the same server
                        // Read every run's output as it comes: a run blocked on a full pipe stops reading its
                        // packet socket, and the kernel drops what overflows its queue (as with tcpdump).
    let runs: Vec<_> = [
        ("syn a", a),
        ("syn b", b),
        ("syn per-probe", c),
        ("connect", d),
    ]
    .into_iter()
    .map(|(name, child)| {
        (
            name,
            std::thread::spawn(move || child.wait_with_output().unwrap()),
        )
    })
    .collect();
    let mut all_ports = Vec::new();
    for (name, run) in runs {
        let out = run.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("dropped"), "{name}: {err}");
        let v = json_lines(&out);
        let s = summary(&v);
        assert_eq!(
            (s["sent"].as_u64(), s["received"].as_u64()),
            (Some(3000), Some(3000)),
            "{name}: {s}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(s["error"], 0, "{name}: {s}");
        if name.starts_with("syn") {
            all_ports.push(ports(&v));
        }
    }
    // The SYN runs' reserved ports are their own.
    for i in 0..all_ports.len() {
        for j in i + 1..all_ports.len() {
            assert!(
                all_ports[i].is_disjoint(&all_ports[j]),
                "runs {i} and {j} share a port"
            );
        }
    }
}

#[test]
fn the_server_holds_nothing_half_open_after_a_syn_run() {
    if !need_root("the_server_holds_nothing_half_open_after_a_syn_run") {
        return;
    }
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = run(&[&srv.addr.to_string(), "--syn", "-n", "500", "-i", "0", "-q"]);
    assert_eq!(out.status.code(), Some(0));
    let port = srv.addr.port().to_string();
    // Our kernel answered every SYN-ACK with RST: no SYN-RECV entry, an empty accept queue.
    let ss = |args: &[&str]| {
        let o = Command::new("ss")
            .args(args)
            .output()
            .expect("run ss (iproute2)");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let half_open = ss(&[
        "-Htn",
        "state",
        "syn-recv",
        "sport",
        "=",
        &format!(":{port}"),
    ]);
    assert!(
        half_open.trim().is_empty(),
        "half-open connections left: {half_open}"
    );
    let listen = ss(&["-Hltn", "sport", "=", &format!(":{port}")]);
    let recv_q: u64 = listen
        .split_whitespace()
        .nth(1)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener line: {listen:?}"));
    assert_eq!(recv_q, 0, "accept queue not empty: {listen}");
}

#[test]
fn without_cap_net_raw_syn_says_so_in_one_line_and_exits_2() {
    if !need_root("without_cap_net_raw_syn_says_so_in_one_line_and_exits_2") {
        return;
    }
    // The binary must be reachable by nobody: copy it to a fresh 755 directory.
    let dir = std::env::temp_dir().join(format!("tcpping-syn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("tcpping-diag");
    common::copy_binary(&bin);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&bin)
        .args(["127.0.0.1:9", "--syn", "-n", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("setcap"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing half-done: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn syn_probes_of_one_flow_start_every_interval_whatever_is_still_in_flight() {
    if !need_root("syn_probes_of_one_flow_start_every_interval_whatever_is_still_in_flight") {
        return;
    }
    let (_l, _filler, addr) = dropping_target();
    let t = std::time::Instant::now();
    let out = run(&[
        &addr.to_string(),
        "--syn",
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "0.5",
        "--json",
    ]);
    let took = t.elapsed();
    let v = json_lines(&out);
    assert_started_every_interval(&v, took);
    assert_eq!(ports(&v).len(), 1, "still one constant flow");

    // Several in flight when Ctrl-C comes: each counts as sent and interrupted.
    let child = Command::new(BIN)
        .args([
            &addr.to_string(),
            "--syn",
            "-n",
            "50",
            "-i",
            "0.1",
            "-W",
            "5",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_interrupted_in_flight(child);
}

/// A network namespace of the test's own (loopback only), removed on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let ns = Netns(format!("tpsyn{}", std::process::id()));
        let st = Command::new("ip").args(["netns", "add", &ns.0]).status();
        assert!(st.expect("run ip").success(), "ip netns add {}", ns.0);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }

    fn run(&self, args: &[&str]) {
        let st = self.exec(args).stdout(Stdio::null()).status().unwrap();
        assert!(st.success(), "{}: {args:?}", self.0);
    }

    /// A listener on the namespace's loopback (bound from a thread that enters it).
    fn listener(&self) -> std::net::TcpListener {
        use std::os::fd::AsRawFd;
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            // SAFETY: f is an open namespace file; only this thread changes namespace.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            std::net::TcpListener::bind("127.0.0.1:0").unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_syn_that_meets_an_earlier_probes_half_open_connection_is_answered_by_an_ack() {
    if !need_root_and_iptables(
        "a_syn_that_meets_an_earlier_probes_half_open_connection_is_answered_by_an_ack",
    ) {
        return;
    }
    // The target never gets our RST (as while it is still on its way): it keeps probe 1's
    // half-open connection, and answers each later SYN of the flow with an ACK of probe 1's
    // SYN (not rate-limited here, so every one is answered).
    let ns = Netns::new();
    let l = ns.listener();
    let port = l.local_addr().unwrap().port().to_string();
    ns.run(&["sysctl", "-q", "-w", "net.ipv4.tcp_invalid_ratelimit=0"]);
    ns.run(&[
        "iptables",
        "-w",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        &port,
        "--tcp-flags",
        "RST",
        "RST",
        "-j",
        "DROP",
    ]);
    let target = format!("127.0.0.1:{port}");
    let out = ns
        .exec(&[
            BIN, &target, "--syn", "-n", "5", "-i", "0.1", "-W", "0.5", "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5, "{v:?}");
    assert!(p.iter().all(|e| e["status"] == "reply"), "{v:?}");
    assert_eq!(p[0]["answer"], "syn-ack", "{}", p[0]);
    for e in &p[1..] {
        assert_eq!(e["answer"], "ack", "{e}");
        assert_eq!(e["connect_clock"], "wire", "{e}");
    }
    assert_eq!(ports(&v).len(), 1, "one constant flow");
    assert_eq!(summary(&v)["received"], 5);
    // The human line says what answered.
    let out = ns
        .exec(&[BIN, &target, "--syn", "-n", "2", "-i", "0.1", "-W", "0.5"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("seq=2 port open: ACK from"), "{text}");
    drop(l);
}
