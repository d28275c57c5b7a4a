//! Tests that need root: raw ICMP capture on loopback, and dropping capabilities.
//! They run in CI (as root); on a developer machine without root they skip, saying so,
//! unless CI is set.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

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

/// An ICMPv4 error (type/code) quoting a TCP segment src -> dst with sequence number `seq`,
/// as a router would send it.
fn icmp_quoting(t: u8, c: u8, src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    let mut m = vec![t, c, 0, 0, 0, 0, 0, 0];
    m.extend(ip);
    m.extend(tcp);
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// Every client's raw socket sees every forged error on loopback: the tests that forge
/// them and count the unmatched ones run one at a time.
fn forging_alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
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
    client_port_after_requests(srv, 1)
}

/// Wait until the server has logged `n` messages; the client's port from the last.
fn client_port_after_requests(srv: &ServerProc, n: usize) -> u16 {
    let t = Instant::now();
    loop {
        let log = srv.log_text();
        let got: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("Message sent by client"))
            .collect();
        if got.len() >= n {
            let port = got[n - 1]
                .rsplit(", ")
                .next()
                .unwrap()
                .trim_end_matches(')');
            return port.parse().unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{n} requests did not reach the server: {log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A TCP segment seen on loopback.
#[derive(Clone, Copy, Debug)]
struct Seg {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    flags: u8,
    /// Payload bytes.
    len: usize,
}

/// The test's own view of the TCP segments on loopback, independent of the client's packet
/// socket: a raw IPPROTO_TCP socket gets a copy of every TCP segment delivered locally.
struct Sniffer(socket2::Socket);

impl Sniffer {
    fn open() -> Sniffer {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Sniffer(s)
    }

    /// The next segment to `dst_port` that `want` accepts (earlier ones are passed over).
    fn wait_for(&self, dst_port: u16, want: impl Fn(&Seg) -> bool) -> Seg {
        let t = Instant::now();
        let mut buf = vec![0u8; 65536];
        while t.elapsed() < Duration::from_secs(5) {
            let Ok(n) = (&self.0).read(&mut buf) else {
                continue;
            };
            let b = &buf[..n];
            let ihl = usize::from(b[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
            let tcp = &b[ihl..];
            let seg = Seg {
                src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
                dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
                seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
                flags: tcp[13],
                len: total - ihl - usize::from(tcp[12] >> 4) * 4,
            };
            if seg.dst_port == dst_port && want(&seg) {
                return seg;
            }
        }
        panic!("no such segment to port {dst_port} within 5 s");
    }

    /// The client's SYN to `dst_port`, then its first data segment (the request).
    fn syn_and_request(&self, dst_port: u16) -> (Seg, Seg) {
        let syn = self.wait_for(dst_port, |s| s.flags & (SYN | ACK) == SYN);
        let data = self.wait_for(dst_port, |s| s.src_port == syn.src_port && s.len > 0);
        assert_eq!(data.seq, syn.seq.wrapping_add(1), "{syn:?} {data:?}");
        (syn, data)
    }
}

/// A server that swallows every request, a sniffer of our TCP segments, and a client
/// sending it one ping (`-W timeout`, JSON, -v), already started: the ping will wait for
/// its echo until the timeout.
fn one_swallowed_ping(timeout: &str) -> (ServerProc, SocketAddrV4, Sniffer, std::process::Child) {
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent"]);
    let srv_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, srv.addr.port());
    let sniff = Sniffer::open();
    let child = Command::new(BIN)
        .args([
            &srv.addr.to_string(),
            "-n",
            "1",
            "-W",
            timeout,
            "--json",
            "-v",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (srv, srv_addr, sniff, child)
}

const OTHER_SEQUENCE: &str = "quotes our connection with a sequence number we never sent (forged?)";

/// After a forged 3/1 quoting the ping's 4-tuple with the sequence number `wrong`, then a
/// 3/13 quoting its true sequence number: the ping (`ping`, in `phase`) has the 3/13 from
/// the raw socket, concluded at once (`took` from the forging, well under the 5 s timeout),
/// and the 3/1 is the one unmatched error, for its sequence number.
fn only_the_true_quote_counts(
    out: &std::process::Output,
    ping: &serde_json::Value,
    phase: &str,
    took: Duration,
    wrong: u32,
) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("CAP_NET_RAW"), "capture was off: {err}");
    assert_eq!(ping["status"], "icmp", "{ping}");
    let icmp = &ping["icmp"];
    assert_eq!(
        (icmp["type"].as_u64(), icmp["code"].as_u64()),
        (Some(3), Some(13)),
        "the forged 3/1 was attributed: {icmp}"
    );
    assert_eq!(
        (icmp["phase"].as_str(), icmp["source"].as_str()),
        (Some(phase), Some("raw"))
    );
    assert!(
        took < Duration::from_secs(3),
        "waited for the timeout: {took:?}"
    );
    let v = json_lines(out);
    let s = summary(&v);
    assert_eq!(
        (s["unmatched_icmp"].as_u64(), s["icmp"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let unmatched: Vec<_> = v.iter().filter(|e| e["type"] == "unmatched_icmp").collect();
    assert_eq!(unmatched.len(), 1, "{v:?}");
    assert_eq!(unmatched[0]["why"], OTHER_SEQUENCE);
    assert_eq!(unmatched[0]["quoted_seq"].as_u64(), Some(u64::from(wrong)));
}

#[test]
fn an_icmp_error_quoting_the_ping_concludes_it_at_once_and_a_spoofed_one_does_not() {
    if !need_root("raw ICMP capture on loopback") {
        return;
    }
    let _alone = forging_alone();
    // The server swallows the request: the ping waits for its echo.
    let (srv, srv_addr, sniff, child) = one_swallowed_ping("5");
    let (_, request) = sniff.syn_and_request(srv.addr.port());
    let port = client_port_from_log(&srv);
    assert_eq!(port, request.src_port);
    let t = Instant::now();
    // First a spoofed error: right addresses, a port of no ping. Never attributed.
    send_icmp(&icmp_quoting(
        3,
        1,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port ^ 1),
        srv_addr,
        request.seq,
    ));
    // Another: right port, wrong destination port.
    send_icmp(&icmp_quoting(
        3,
        1,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
        request.seq,
    ));
    // Then the real thing: communication administratively prohibited about our request
    // segment, quoting its sequence number as a router would.
    send_icmp(&icmp_quoting(
        3,
        13,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        srv_addr,
        request.seq,
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
fn an_icmp_error_quoting_our_four_tuple_with_a_wrong_sequence_number_is_not_attributed() {
    if !need_root("raw ICMP capture on loopback") {
        return;
    }
    let _alone = forging_alone();
    // The server swallows the request: the ping waits for its echo until the timeout.
    let (srv, srv_addr, sniff, child) = one_swallowed_ping("2");
    let (syn, request) = sniff.syn_and_request(srv.addr.port());
    let port = client_port_from_log(&srv);
    assert_eq!(port, syn.src_port);
    let ours = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    // The exact 4-tuple of the ping in flight, as an off-path forger who guessed the port
    // would send it: one sequence number before our ISN, and one far beyond what we sent.
    let wrong = [syn.seq.wrapping_sub(1), request.seq.wrapping_add(100_000)];
    send_icmp(&icmp_quoting(3, 1, ours, srv_addr, wrong[0]));
    send_icmp(&icmp_quoting(3, 13, ours, srv_addr, wrong[1]));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("CAP_NET_RAW"), "capture was off: {err}");
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 1, "{v:?}");
    assert_eq!(
        p[0]["status"], "timeout",
        "a forged error was attributed: {}",
        p[0]
    );
    assert!(p[0]["icmp"].is_null(), "{}", p[0]);
    let s = summary(&v);
    assert_eq!(
        (s["unmatched_icmp"].as_u64(), s["icmp"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    let unmatched: Vec<_> = v.iter().filter(|e| e["type"] == "unmatched_icmp").collect();
    assert_eq!(unmatched.len(), 2, "{v:?}");
    for (u, seq) in unmatched.iter().zip(wrong) {
        assert_eq!(u["why"], OTHER_SEQUENCE, "{u}");
        assert_eq!(u["quoted_src"], format!("127.0.0.1:{port}"), "{u}");
        assert_eq!(u["quoted_seq"].as_u64(), Some(u64::from(seq)), "{u}");
    }
}

#[test]
fn during_the_handshake_only_an_error_quoting_our_isn_is_attributed() {
    if !need_root("raw ICMP capture on loopback") {
        return;
    }
    let _alone = forging_alone();
    // A listener with backlog 0 whose accept queue one connection fills: Linux drops the
    // next SYN (ListenOverflows), so the client's connect waits, its SYN unanswered.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let target = listener.local_addr().unwrap().as_socket_ipv4().unwrap();
    let filler = std::net::TcpStream::connect(target).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let sniff = Sniffer::open();
    let child = Command::new(BIN)
        .args([&target.to_string(), "-n", "1", "-W", "5", "--json", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let filler_port = filler.local_addr().unwrap().port();
    let syn = sniff.wait_for(target.port(), |s| {
        s.flags & (SYN | ACK) == SYN && s.src_port != filler_port
    });
    // The client reads its SYN's copy from its packet socket as soon as connect() returns;
    // give it ample time to register the window (the SYN is retransmitted only after 1 s).
    std::thread::sleep(Duration::from_millis(300));
    let ours = SocketAddrV4::new(Ipv4Addr::LOCALHOST, syn.src_port);
    let t = Instant::now();
    // The exact 4-tuple, a sequence number that is not our SYN's: not ours.
    let wrong = syn.seq.wrapping_add(100_000);
    send_icmp(&icmp_quoting(3, 1, ours, target, wrong));
    // Our SYN as a router would quote it: its sequence number is our ISN.
    send_icmp(&icmp_quoting(3, 13, ours, target, syn.seq));
    let out = child.wait_with_output().unwrap();
    let took = t.elapsed();
    drop(filler);
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 1, "{v:?}");
    only_the_true_quote_counts(&out, p[0], "connect", took, wrong);
}

#[test]
fn a_persistent_connection_checks_the_sequence_window_of_each_ping() {
    if !need_root("raw ICMP capture on loopback") {
        return;
    }
    let _alone = forging_alone();
    // A seed whose first request is answered and whose second is swallowed: ping 2, on the
    // connection ping 1 opened, waits for its echo. The server draws one decision per
    // request from ChaCha8 seeded with --seed.
    let seed = (0u64..)
        .find(|&s| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            !rng.gen_bool(0.5) && rng.gen_bool(0.5)
        })
        .unwrap();
    let srv = ServerProc::start(&[
        "--loss",
        "0.5",
        "--loss-mode",
        "silent",
        "--seed",
        &seed.to_string(),
    ]);
    let srv_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, srv.addr.port());
    let sniff = Sniffer::open();
    let child = Command::new(BIN)
        .args([
            &srv.addr.to_string(),
            "--persistent",
            "-n",
            "2",
            "-i",
            "0.2",
            "-W",
            "5",
            "--json",
            "-v",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (syn, first) = sniff.syn_and_request(srv.addr.port());
    let second = sniff.wait_for(srv.addr.port(), |s| s.src_port == syn.src_port && s.len > 0);
    assert_eq!(second.seq, first.seq.wrapping_add(first.len as u32));
    let port = client_port_after_requests(&srv, 2);
    assert_eq!(port, syn.src_port, "one connection for both pings");
    let ours = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let t = Instant::now();
    // Ping 2's 4-tuple, a sequence number beyond anything sent: not ours.
    let wrong = second.seq.wrapping_add(100_000);
    send_icmp(&icmp_quoting(3, 1, ours, srv_addr, wrong));
    // Ping 2's request as a router would quote it: ISN + 1 + ping 1's bytes, ours.
    send_icmp(&icmp_quoting(3, 13, ours, srv_addr, second.seq));
    let out = child.wait_with_output().unwrap();
    let took = t.elapsed();
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 2, "{v:?}");
    assert_eq!(p[0]["status"], "reply", "seed {seed}: {}", p[0]);
    only_the_true_quote_counts(&out, p[1], "echo", took, wrong);
}

#[test]
fn pipelined_persistent_pings_each_own_their_request_bytes() {
    if !need_root("raw ICMP capture on loopback") {
        return;
    }
    let _alone = forging_alone();
    // Every request swallowed: three pings wait on one connection at once.
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent"]);
    let srv_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, srv.addr.port());
    let sniff = Sniffer::open();
    let child = Command::new(BIN)
        .args([
            &srv.addr.to_string(),
            "--persistent",
            "-n",
            "3",
            "-i",
            "0.1",
            "-W",
            "2",
            "--json",
            "-v",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (syn, first) = sniff.syn_and_request(srv.addr.port());
    let next = |after: &Seg| {
        let want = after.seq.wrapping_add(after.len as u32);
        sniff.wait_for(srv.addr.port(), |s| {
            s.src_port == syn.src_port && s.len > 0 && s.seq == want
        })
    };
    let second = next(&first);
    let third = next(&second);
    assert_eq!(client_port_after_requests(&srv, 3), syn.src_port);
    let ours = SocketAddrV4::new(Ipv4Addr::LOCALHOST, syn.src_port);
    // An error quoting the middle of ping 2's request, while pings 1 and 3 wait too.
    send_icmp(&icmp_quoting(
        3,
        13,
        ours,
        srv_addr,
        second.seq.wrapping_add(3),
    ));
    std::thread::sleep(Duration::from_millis(200));
    // The same again: ping 2 has ended, so it is late, not ping 1's or ping 3's.
    send_icmp(&icmp_quoting(3, 13, ours, srv_addr, second.seq));
    let out = child.wait_with_output().unwrap();
    let v = json_lines(&out);
    let mut p = pings(&v);
    p.sort_by_key(|e| e["seq"].as_u64());
    assert_eq!(p.len(), 3, "{v:?}");
    assert!(third.len > 0);
    assert_eq!(p[1]["status"], "icmp", "{}", p[1]);
    assert_eq!(p[1]["icmp"]["phase"], "echo", "{}", p[1]);
    assert_eq!(p[1]["icmp"]["source"], "raw", "{}", p[1]);
    for e in [p[0], p[2]] {
        assert_eq!(e["status"], "timeout", "{e}");
        assert_eq!(e["phase"], "echo", "{e}");
    }
    let s = summary(&v);
    assert_eq!(
        (
            s["icmp"].as_u64(),
            s["late_icmp"].as_u64(),
            s["unmatched_icmp"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{s}"
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
    common::copy_binary(&bin);
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
