//! Tests that need root: raw ICMP capture on loopback, and dropping capabilities.
//! They run in CI (as root); on a developer machine without root they skip, saying so,
//! unless CI is set.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMPv4 error (type/code) quoting a TCP segment src -> dst, as a router would send it.
fn icmp_quoting(t: u8, c: u8, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&0x0bad_f00du32.to_be_bytes());
    let mut m = vec![t, c, 0, 0, 0, 0, 0, 0];
    m.extend(ip);
    m.extend(tcp);
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

fn send_icmp(msg: &[u8]) {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::ICMPV4),
    )
    .unwrap();
    let to: SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.send_to(msg, &to.into()).unwrap();
}

/// Wait for the server to log a message and return the client's port from it.
fn client_port_from_log(srv: &ServerProc) -> u16 {
    let t = Instant::now();
    loop {
        let log = srv.log_text();
        if let Some(line) = log
            .lines()
            .find(|l| l.starts_with("Message sent by client"))
        {
            let port = line.rsplit(", ").next().unwrap().trim_end_matches(')');
            return port.parse().unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no request reached the server: {log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_icmp_error_quoting_the_ping_concludes_it_at_once_and_a_spoofed_one_does_not() {
    if !need_root("raw ICMP capture on loopback") {
        return;
    }
    // The server swallows the request: the ping waits for its echo.
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent"]);
    let srv_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, srv.addr.port());
    let child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-n", "1", "-W", "5", "--json", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let port = client_port_from_log(&srv);
    let t = Instant::now();
    // First a spoofed error: right addresses, a port of no ping. Never attributed.
    send_icmp(&icmp_quoting(
        3,
        1,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port ^ 1),
        srv_addr,
    ));
    // Another: right port, wrong destination port.
    send_icmp(&icmp_quoting(
        3,
        1,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
    ));
    // Then the real thing: communication administratively prohibited about our segment.
    send_icmp(&icmp_quoting(
        3,
        13,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        srv_addr,
    ));
    let out = child.wait_with_output().unwrap();
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("CAP_NET_RAW"), "capture was off: {err}");
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 1, "{v:?}");
    let icmp = &p[0]["icmp"];
    assert_eq!(p[0]["status"], "icmp", "{}", p[0]);
    assert_eq!(
        (icmp["type"].as_u64(), icmp["code"].as_u64()),
        (Some(3), Some(13))
    );
    assert_eq!(icmp["from"], "127.0.0.1");
    assert_eq!(icmp["phase"], "echo");
    assert_eq!(icmp["source"], "raw");
    assert_eq!(icmp["reason"], "communication administratively prohibited");
    assert!(
        took < Duration::from_secs(3),
        "waited for the timeout: {took:?}"
    );
    let s = summary(&v);
    assert_eq!(s["unmatched_icmp"], 2, "{s}");
    assert_eq!(s["icmp"], 1);
    let unmatched: Vec<_> = v.iter().filter(|e| e["type"] == "unmatched_icmp").collect();
    assert_eq!(
        unmatched.len(),
        2,
        "-v shows the errors that are not ours: {v:?}"
    );
}

#[test]
fn capabilities_are_dropped_once_raw_sockets_are_open() {
    if !need_root("dropping capabilities") {
        return;
    }
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-n", "4", "-i", "0.3", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let cap = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    // Every thread: the main one and the ICMP listener.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap();
    let mut threads = 0;
    for t in tasks {
        let st = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let eff = st.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        assert!(
            eff.ends_with("0000000000000000"),
            "a thread kept capabilities: {eff}"
        );
        threads += 1;
    }
    assert!(threads >= 2, "the ICMP listener thread is not running");
    assert_eq!(cap("CapEff:"), "0000000000000000");
    assert_eq!(cap("CapPrm:"), "0000000000000000");
    let mut err = String::new();
    let out = child.wait_with_output().unwrap();
    (&out.stderr[..]).read_to_string(&mut err).unwrap();
    assert!(
        !err.contains("CAP_NET_RAW"),
        "raw sockets were not opened: {err}"
    );
    let v = json_lines(&out);
    assert_eq!(summary(&v)["received"], 4);
    // Privileged: the handshake is timed on the wire, the echo by kernel timestamps, and
    // both are no longer than what user space saw around the calls.
    for p in pings(&v) {
        assert_eq!(p["connect_clock"], "wire", "{p}");
        assert_eq!(p["rtt_clock"], "kernel", "{p}");
        assert!(
            p["connect_ms"].as_f64().unwrap() <= p["connect_user_ms"].as_f64().unwrap(),
            "{p}"
        );
        assert!(
            p["rtt_ms"].as_f64().unwrap() <= p["rtt_user_ms"].as_f64().unwrap(),
            "{p}"
        );
    }
}

#[test]
fn without_privileges_one_line_says_so_and_pinging_goes_on() {
    if !need_root("running as an unprivileged user") {
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
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    // The binary under target/ may not be readable by nobody: copy it somewhere that is.
    let dir = std::env::temp_dir().join(format!("tcpping-unpriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("tcpping-diag");
    std::fs::copy(BIN, &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&bin)
        .args([&srv.addr.to_string(), "-n", "2", "-i", "0", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one notice line: {err}");
    assert!(
        lines[0].contains("CAP_NET_RAW")
            && lines[0].contains("setcap cap_net_raw+ep")
            && lines[0].contains("sudo")
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json_lines(&out);
    assert_eq!(summary(&v)["received"], 2);
    // No packet socket without privileges: the kernel's own handshake figure.
    for p in pings(&v) {
        assert_eq!(p["connect_clock"], "kernel", "{p}");
    }
}
