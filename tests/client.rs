//! The real client against the real server on loopback.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

fn lost_seqs(v: &[serde_json::Value]) -> Vec<u64> {
    pings(v)
        .iter()
        .filter(|p| p["status"] == "lost")
        .map(|p| p["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn replies_and_statistics() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "5", "-i", "0", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5);
    for (i, e) in p.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["status"], "reply");
        assert!(e["connect_ms"].as_f64().unwrap() > 0.0);
        assert!(e["rtt_ms"].as_f64().unwrap() > 0.0);
        assert!(e["local_port"].as_u64().unwrap() > 0);
        assert!(e["error"].is_null() && e["icmp"].is_null());
    }
    let s = summary(&v);
    assert_eq!(
        (s["sent"].as_u64(), s["received"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(s["loss_pct"], 0.0);
    let rtts: Vec<f64> = p.iter().map(|e| e["rtt_ms"].as_f64().unwrap()).collect();
    let min = rtts.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = rtts.iter().cloned().fold(0.0, f64::max);
    let avg = rtts.iter().sum::<f64>() / 5.0;
    assert!((s["rtt_min_ms"].as_f64().unwrap() - min).abs() < 0.002);
    assert!((s["rtt_max_ms"].as_f64().unwrap() - max).abs() < 0.002);
    assert!((s["rtt_avg_ms"].as_f64().unwrap() - avg).abs() < 0.002);
    for k in [
        "rtt_mdev_ms",
        "rtt_p50_ms",
        "rtt_p90_ms",
        "rtt_p99_ms",
        "jitter_ms",
        "connect_avg_ms",
    ] {
        assert!(s[k].as_f64().is_some(), "{k} missing in {s}");
    }
    let p50 = s["rtt_p50_ms"].as_f64().unwrap();
    assert!(
        p50 >= min * 0.99 && p50 <= max * 1.01,
        "p50 {p50} outside [{min}, {max}]"
    );
}

#[test]
fn human_output_reads_like_ping() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "2", "-i", "0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("TCPPING {}", srv.addr)), "{text}");
    assert!(text.contains("seq=1 reply from"), "{text}");
    assert!(text.contains("seq=2 reply from"), "{text}");
    for line in [
        "2 pings sent, 2 replies, 0.0% loss",
        "Maximum RTT (in milliseconds) =",
        "Minimum RTT",
        "Average RTT",
        "rtt min/avg/max/mdev =",
        "rtt p50/p90/p99 =",
        "Packet loss rate: 0.000000%",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn quiet_prints_only_the_summary() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "3", "-i", "0", "-q"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("seq="), "{text}");
    assert!(text.contains("3 pings sent, 3 replies"), "{text}");
}

#[test]
fn seeded_loss_gives_the_expected_lost_pings() {
    let seed = 42u64;
    let n = 30;
    // The server draws one decision per request from ChaCha8 seeded with --seed.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let expected: Vec<u64> = (1..=n).filter(|_| rng.gen_bool(0.2)).collect();
    assert!(!expected.is_empty());
    let run = |seed: u64| {
        let srv = ServerProc::start(&["--loss", "0.2", "--seed", &seed.to_string(), "-q"]);
        let out = client(&[
            &srv.addr.to_string(),
            "-n",
            &n.to_string(),
            "-i",
            "0",
            "--json",
        ]);
        let v = json_lines(&out);
        let s = summary(&v);
        assert_eq!(s["lost"].as_u64().unwrap() as usize, lost_seqs(&v).len());
        lost_seqs(&v)
    };
    assert_eq!(run(seed), expected);
    assert_eq!(run(seed), expected, "same seed, different lost pings");
    assert_ne!(
        run(seed + 1),
        expected,
        "another seed gave the same lost pings"
    );
}

#[test]
fn lost_pings_count_as_loss_in_the_summary() {
    let srv = ServerProc::start(&["--loss", "1", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "3", "-i", "0"]);
    assert_eq!(out.status.code(), Some(1), "no reply must exit 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("seq=1 LOST"), "{text}");
    assert!(
        text.contains("3 pings sent, 0 replies, 3 LOST, 100.0% loss"),
        "{text}"
    );
    assert!(text.contains("Packet loss rate: 100.000000%"), "{text}");
}

#[test]
fn silent_loss_times_out_after_the_timeout() {
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent", "-q"]);
    let t = Instant::now();
    let out = client(&[
        &srv.addr.to_string(),
        "-n",
        "2",
        "-i",
        "0",
        "-W",
        "0.3",
        "--json",
    ]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let v = json_lines(&out);
    for p in pings(&v) {
        assert_eq!(p["status"], "timeout", "{p}");
        assert!(
            p["connect_ms"].as_f64().is_some(),
            "the handshake did complete: {p}"
        );
        assert!(p["rtt_ms"].is_null());
    }
    assert_eq!(summary(&v)["timeout"], 2);
    // Two pings of 0.3 s each: well over 0.6 s, far under the default timeout's 2 s.
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn closed_port_is_refused() {
    let addr = closed_port();
    let out = client(&[&addr.to_string(), "-n", "2", "-i", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_lines(&out);
    for p in pings(&v) {
        assert_eq!(p["status"], "refused", "{p}");
    }
    assert_eq!(summary(&v)["refused"], 2);
}

#[test]
fn connect_only_times_the_handshake() {
    // Any TCP service: a listener that never reads.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let out = client(&[
        &addr.to_string(),
        "-n",
        "3",
        "-i",
        "0",
        "--connect-only",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_lines(&out);
    for p in pings(&v) {
        assert_eq!(p["status"], "reply");
        assert!(p["connect_ms"].as_f64().unwrap() > 0.0);
        assert!(p["rtt_ms"].is_null());
    }
    assert!(summary(&v)["rtt_avg_ms"].as_f64().is_some());
}

#[test]
fn persistent_uses_one_connection() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&[
        &srv.addr.to_string(),
        "-n",
        "5",
        "-i",
        "0",
        "--persistent",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5);
    let port = &p[0]["local_port"];
    assert!(p[0]["connect_ms"].as_f64().is_some());
    for e in &p[1..] {
        assert_eq!(e["status"], "reply");
        assert_eq!(&e["local_port"], port, "a new connection was made: {e}");
        assert!(e["connect_ms"].is_null());
    }
    let st = srv.stop();
    assert!(st.success());
}

/// A test server on loopback: each connection's request lines (newline included), as they
/// arrive, go to what `per_conn` makes of a clone of its stream; false closes it.
fn line_server<F>(
    per_conn: impl Fn(std::net::TcpStream) -> F + Send + 'static,
) -> std::net::SocketAddr
where
    F: FnMut(Vec<u8>) -> bool + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut on_line = per_conn(s.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut b = [0u8; 4096];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&b[..n]);
                    while let Some(i) = buf.iter().position(|&c| c == b'\n') {
                        if !on_line(buf.drain(..=i).collect()) {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A test server that echoes each request line uppercased `delay` after it arrived, in
/// order, whatever else is waiting (a slow path, not a slow server).
fn delayed_echo_server(delay: Duration) -> std::net::SocketAddr {
    line_server(move |mut w| {
        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
        std::thread::spawn(move || {
            for (at, line) in rx {
                std::thread::sleep((at + delay).saturating_duration_since(Instant::now()));
                if w.write_all(&line).is_err() {
                    break;
                }
            }
        });
        move |line: Vec<u8>| tx.send((Instant::now(), line.to_ascii_uppercase())).is_ok()
    })
}

/// A test server that echoes request lines of up to 200 bytes, uppercased, and swallows
/// longer ones: what a path MTU black hole looks like from the client (large requests
/// vanish, small ones pass), without one.
fn small_lines_only_server() -> std::net::SocketAddr {
    line_server(|mut w| {
        move |line: Vec<u8>| line.len() > 200 || w.write_all(&line.to_ascii_uppercase()).is_ok()
    })
}

/// Three 1400-byte pings to `addr` at -W 0.3, with or without `--persistent`, none answered
/// (exit 1): their events.
fn large_pings_unanswered(addr: &str, persistent: bool) -> Vec<serde_json::Value> {
    let mut args = vec![
        addr, "-n", "3", "-i", "0.1", "-W", "0.3", "-s", "1400", "--json",
    ];
    if persistent {
        args.push("--persistent");
    }
    let out = client(&args);
    assert_eq!(out.status.code(), Some(1), "--persistent {persistent}");
    let v = json_lines(&out);
    // The pings end in their order (on a stalled persistent connection, the later ones
    // wait for the first one's control).
    let seqs: Vec<u64> = pings(&v)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3], "--persistent {persistent}: {v:?}");
    v
}

#[test]
fn large_requests_that_vanish_while_small_ones_pass_are_called_a_black_hole_once() {
    let addr = small_lines_only_server().to_string();
    for persistent in [false, true] {
        let v = large_pings_unanswered(&addr, persistent);
        assert!(
            pings(&v)
                .iter()
                .all(|e| e["status"] == "timeout" && e["phase"] == "echo"),
            "--persistent {persistent}: {v:?}"
        );
        let notices: Vec<&serde_json::Value> = v.iter().filter(|e| e["type"] == "notice").collect();
        assert_eq!(notices.len(), 1, "--persistent {persistent}: {v:?}");
        assert_eq!(notices[0]["kind"], "mtu_black_hole");
        // Said before the first ping's line.
        let at = |t: &str| v.iter().position(|e| e["type"] == t).unwrap();
        assert!(at("notice") < at("ping"), "{v:?}");
    }
    // Small requests to it: replies, nothing said.
    let out = client(&[
        &addr,
        "-n",
        "2",
        "-i",
        "0.1",
        "-s",
        "100",
        "--persistent",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(json_lines(&out).iter().all(|e| e["type"] != "notice"));
    // A server that answers nothing, small or large: plain timeouts, no notice.
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent", "-q"]);
    for persistent in [false, true] {
        let v = large_pings_unanswered(&srv.addr.to_string(), persistent);
        assert!(v.iter().all(|e| e["type"] != "notice"), "{v:?}");
    }
    assert!(srv.stop().success());
}

fn ping_ts(e: &serde_json::Value) -> f64 {
    e["ts"].as_f64().unwrap()
}

#[test]
fn persistent_pings_start_every_interval_while_others_wait() {
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent", "-q"]);
    let t = Instant::now();
    let out = client(&[
        &srv.addr.to_string(),
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "0.5",
        "--persistent",
        "--json",
    ]);
    let took = t.elapsed();
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5, "{v:?}");
    for e in &p {
        assert_eq!(e["status"], "timeout", "{e}");
        assert_eq!(e["phase"], "echo", "{e}");
        assert_eq!(e["local_port"], p[0]["local_port"], "one connection: {e}");
    }
    assert_eq!(summary(&v)["timeout"], 5);
    // Pings start on the interval's beat, not after the one before timed out (0.5 s).
    for w in p.windows(2) {
        let gap = ping_ts(w[1]) - ping_ts(w[0]);
        assert!(
            gap < 0.3,
            "ping {} started {gap} s after the one before",
            w[1]["seq"]
        );
    }
    // 4 intervals and one timeout: about 0.9 s; one at a time it was 2.5 s.
    assert!(took < Duration::from_millis(1800), "{took:?}");
}

#[test]
fn persistent_pipelined_verdicts_follow_the_servers_seeded_decisions() {
    let seed = 7u64;
    let n = 12;
    // The server draws one decision per request from ChaCha8 seeded with --seed.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let lost: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
    assert!(lost.contains(&true) && lost.contains(&false));
    let srv = ServerProc::start(&[
        "--loss",
        "0.5",
        "--loss-mode",
        "silent",
        "--seed",
        &seed.to_string(),
        "-q",
    ]);
    let out = client(&[
        &srv.addr.to_string(),
        "-n",
        &n.to_string(),
        "-i",
        "0.05",
        "-W",
        "0.5",
        "--persistent",
        "--json",
    ]);
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), n, "{v:?}");
    for e in &p {
        let seq = e["seq"].as_u64().unwrap() as usize;
        let want = if lost[seq - 1] { "timeout" } else { "reply" };
        assert_eq!(e["status"], want, "seed {seed}: {e}");
        assert_eq!(e["local_port"], p[0]["local_port"], "one connection: {e}");
    }
}

#[test]
fn persistent_pings_on_a_slow_path_each_get_their_own_echo() {
    let addr = delayed_echo_server(Duration::from_millis(300));
    let t = Instant::now();
    let out = client(&[
        &addr.to_string(),
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "1",
        "--persistent",
        "--json",
    ]);
    let took = t.elapsed();
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5, "{v:?}");
    for e in &p {
        assert_eq!(e["status"], "reply", "{e}");
        // Its own echo, 300 ms after its request: not the echo of the ping before it.
        let rtt = e["rtt_user_ms"].as_f64().unwrap();
        assert!((280.0..600.0).contains(&rtt), "{e}");
        assert_eq!(e["local_port"], p[0]["local_port"], "one connection: {e}");
    }
    // Several in flight: each starts on the interval's beat, not after the echo before it
    // (300 ms); one at a time, five would take over 1.5 s.
    for w in p.windows(2) {
        let gap = ping_ts(w[1]) - ping_ts(w[0]);
        assert!(
            gap < 0.25,
            "ping {} started {gap} s after the one before",
            w[1]["seq"]
        );
    }
    assert!(took < Duration::from_millis(1800), "{took:?}");
}

#[test]
fn a_persistent_pings_late_echo_is_not_a_later_pings_reply() {
    // Each echo comes 300 ms after its request, 100 ms after its ping timed out, while
    // later pings wait on the same connection: all are timeouts.
    let addr = delayed_echo_server(Duration::from_millis(300));
    let out = client(&[
        &addr.to_string(),
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "0.2",
        "--persistent",
        "--json",
    ]);
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5, "{v:?}");
    for e in &p {
        assert_eq!(e["status"], "timeout", "{e}");
        assert_eq!(e["phase"], "echo", "{e}");
        assert_eq!(e["local_port"], p[0]["local_port"], "one connection: {e}");
    }
}

#[test]
fn a_persistent_connection_that_fails_concludes_every_ping_on_it() {
    // The first connection is closed by the server when its third request arrives,
    // unanswered; later connections are echoed.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (k, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let (mut buf, mut b, mut lines) = (Vec::new(), [0u8; 256], 0);
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&b[..n]);
                    while let Some(i) = buf.iter().position(|&c| c == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        lines += 1;
                        if k == 0 && lines == 3 {
                            return;
                        }
                        if k > 0 && s.write_all(&line.to_ascii_uppercase()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let out = client(&[
        &addr.to_string(),
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "2",
        "--persistent",
        "--json",
    ]);
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5, "{v:?}");
    for e in &p[..3] {
        assert_eq!(e["status"], "error", "{e}");
        assert_eq!(e["phase"], "echo", "{e}");
        assert_eq!(e["local_port"], p[0]["local_port"], "{e}");
    }
    // The next ping opens a new connection, and the one after uses it.
    assert_eq!(p[3]["status"], "reply", "{}", p[3]);
    assert!(p[3]["connect_ms"].is_number(), "{}", p[3]);
    assert_ne!(p[3]["local_port"], p[0]["local_port"]);
    assert_eq!(p[4]["status"], "reply", "{}", p[4]);
    assert_eq!(p[4]["local_port"], p[3]["local_port"]);
}

#[test]
fn ipv6_loopback() {
    let srv = ServerProc::start(&["--listen", "[::1]:0", "--loss", "0", "-q"]);
    let out = client(&[
        &format!("[::1]:{}", srv.addr.port()),
        "-n",
        "2",
        "-i",
        "0",
        "-6",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&json_lines(&out))["received"], 2);
}

#[test]
fn dual_stack_listener_serves_ipv4() {
    let srv = ServerProc::start(&["--listen", "[::]:0", "--loss", "0", "-q"]);
    let out = client(&[
        &format!("127.0.0.1:{}", srv.addr.port()),
        "-n",
        "1",
        "--json",
    ]);
    assert_eq!(summary(&json_lines(&out))["received"], 1);
}

#[test]
fn without_count_and_terminal_it_pings_until_interrupted() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-i", "0.05", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json_lines(&out);
    let s = summary(&v);
    assert!(s["sent"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["sent"].as_u64().unwrap() as usize, pings(&v).len());
}

#[test]
fn sigterm_also_prints_the_summary() {
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent", "-q"]);
    let child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-n", "100", "-W", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "waited for the ping's timeout"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tcpping-diag statistics"), "{text}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_ping_past_its_timeout_waiting_for_its_control_is_a_timeout_when_interrupted() {
    // -W 1: ping 1's request gets no echo by 1 s, its control ping then waits up to 1 s
    // more; SIGINT at 1.5 s lands in that wait. Ping 1 had timed out: it stays a timeout.
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent", "-q"]);
    for persistent in [false, true] {
        let mut args = vec![srv.addr.to_string()];
        args.extend(["-i", "5", "-W", "1", "-s", "1400", "--json"].map(String::from));
        if persistent {
            args.push("--persistent".into());
        }
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let v = json_lines(&out);
        let p = pings(&v);
        assert_eq!(p.len(), 1, "--persistent {persistent}: {v:?}");
        assert_eq!(
            p[0]["status"], "timeout",
            "--persistent {persistent}: {v:?}"
        );
    }
    assert!(srv.stop().success());
}

/// A server as the original Python one: each recv(1024) answered with the uppercased bytes.
#[test]
fn works_against_a_python_style_server() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let up = buf[..n].to_ascii_uppercase();
                    if s.write_all(&up).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let out = client(&[&addr.to_string(), "-n", "3", "-i", "0", "--json"]);
    assert_eq!(summary(&json_lines(&out))["received"], 3);
    let out = client(&[
        &addr.to_string(),
        "-n",
        "3",
        "-i",
        "0",
        "--persistent",
        "--json",
    ]);
    assert_eq!(summary(&json_lines(&out))["received"], 3);
}

#[test]
fn the_original_python_client_works_with_our_server() {
    if Command::new("python3").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "python3 missing in CI");
        eprintln!("SKIPPED: python3 not installed");
        return;
    }
    let srv = ServerProc::start(&["--loss", "0.3", "--seed", "3", "-q"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/original/TCPPingerClient.py"
    );
    let out = Command::new("python3")
        .args([script, "127.0.0.1", &srv.addr.port().to_string(), "10"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = text.matches("Response received is: PING ").count();
    let lost = text.matches(" lost").count();
    assert_eq!(replies + lost, 10, "{text}");
    assert!(lost >= 1 && replies >= 1, "{text}");
    // Each reply is the request uppercased, with no newline added (it sent none).
    for line in text
        .lines()
        .filter(|l| l.starts_with("Response received is:"))
    {
        assert!(line.contains(" PING "), "{line}");
    }
    assert!(text.contains("Packet loss rate:"), "{text}");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["127.0.0.1"], "expected HOST:PORT"),
        (&["127.0.0.1:0"], "port 0"),
        (&["127.0.0.1:99999"], "port must be"),
        (&["::1:80"], "brackets"),
        (&["no-such-host.invalid:80", "-n", "1"], "cannot resolve"),
        (&["127.0.0.1:80", "-n", "0"], "--count"),
        (
            &["127.0.0.1:80", "-i", "-1"],
            "the interval must be 0 or more",
        ),
        (&["127.0.0.1:80", "-W", "0"], "at least 1ms"),
        (&["127.0.0.1:80", "--bogus"], "--bogus"),
        (&["127.0.0.1:80", "-4", "-6"], "cannot be used"),
        (&["[::1]:80", "-4", "-n", "1"], "no IPv4 address"),
        (&[], "missing target"),
        (&["serve", "--loss", "2"], "outside 0.0 to 1.0"),
        (&["serve", "--listen", "nonsense"], "invalid listen address"),
    ];
    for (args, want) in cases {
        let out = client(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let out = client(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--connect-only") && text.contains("CAP_NET_RAW"),
        "{text}"
    );
    assert_eq!(client(&["--version"]).status.code(), Some(0));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-i", "0", "-n", "100000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0));
}

/// A one-connection-at-a-time server on loopback that answers each request line with
/// `answer(line)`.
fn answering_server(answer: fn(&[u8]) -> Vec<u8>) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut b = [0u8; 256];
            while let Ok(n) = s.read(&mut b) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&b[..n]);
                while let Some(i) = buf.iter().position(|&c| c == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    let _ = s.write_all(&answer(&line[..i]));
                }
            }
        }
    });
    addr
}

#[test]
fn only_lost_as_the_whole_answer_is_the_servers_loss() {
    for (answer, want) in [
        (
            (|_: &[u8]| b"LOSTX\n".to_vec()) as fn(&[u8]) -> Vec<u8>,
            "error",
        ),
        (|_: &[u8]| b"LOST, or maybe not\n".to_vec(), "error"),
        (|_: &[u8]| b"LOST\n".to_vec(), "lost"),
        (|_: &[u8]| b"LOST".to_vec(), "lost"),
    ] {
        let addr = answering_server(answer);
        // --echo: the target must speak the echo protocol (by default a wrong answer makes
        // the run time the handshake instead: see `services_that_do_not_echo_...`).
        let out = client(&[&addr.to_string(), "-n", "1", "-W", "2", "--json", "--echo"]);
        let v = json_lines(&out);
        assert_eq!(pings(&v)[0]["status"], want, "{v:?}");
    }
}

/// What a test service does with a connection.
type Serve = fn(std::net::TcpStream);

/// A loopback service that runs `serve` on every connection, each in its own thread.
fn service(serve: Serve) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    addr
}

/// Read until the client closes (or 5 s pass).
fn drain(mut s: std::net::TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut b = [0u8; 256];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

/// An SSH-like service: its banner on accept.
fn banner_service(mut s: std::net::TcpStream) {
    let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n");
    drain(s);
}

/// A TLS-like service: reads the request (not a ClientHello) and closes.
fn read_then_close_service(mut s: std::net::TcpStream) {
    let mut b = [0u8; 256];
    let _ = s.read(&mut b);
}

/// An HTTP-like service: answers the request line with 400.
fn http_service(mut s: std::net::TcpStream) {
    let mut b = [0u8; 256];
    let _ = s.read(&mut b);
    let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    drain(s);
}

/// A service that accepts, reads and never answers.
fn silent_service(s: std::net::TcpStream) {
    drain(s);
}

fn notices(v: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    v.iter().filter(|e| e["type"] == "notice").collect()
}

#[test]
fn services_that_do_not_echo_have_their_handshake_timed_with_one_notice() {
    let cases: [(Serve, Option<&str>); 3] = [
        (banner_service, Some("SSH-2.0-OpenSSH_9.2p1 Debian\\r\\n")),
        (read_then_close_service, None),
        (http_service, Some("HTTP/1.0 400 Bad Request\\r\\n\\r\\n")),
    ];
    for (serve, saw) in cases {
        let addr = service(serve).to_string();
        let out = client(&[&addr, "-n", "3", "-i", "0.05", "-W", "2", "--json"]);
        let v = json_lines(&out);
        assert_eq!(out.status.code(), Some(0), "{saw:?}: {v:?}");
        let n = notices(&v);
        assert_eq!(n.len(), 1, "one notice: {v:?}");
        assert_eq!(n[0]["kind"], "not_echo", "{v:?}");
        assert_eq!(n[0]["now"], "connect-only", "{v:?}");
        assert_eq!(n[0]["seq"], 1, "{v:?}");
        assert_eq!(n[0]["saw"].as_str(), saw, "{v:?}");
        let p = pings(&v);
        assert_eq!(p.len(), 3);
        for e in &p {
            assert_eq!(e["status"], "reply", "{e}");
            assert_eq!(e["probe"], "connect", "{e}");
            assert!(e["connect_ms"].as_f64().unwrap() > 0.0, "{e}");
            assert!(e["rtt_ms"].is_null(), "a handshake time, not an echo: {e}");
        }
        let s = summary(&v);
        assert_eq!(
            (s["sent"].as_u64(), s["received"].as_u64()),
            (Some(3), Some(3))
        );
        // For people: one line naming what came, the replies as handshakes.
        let out = client(&[&addr, "-n", "2", "-i", "0.05", "-W", "2"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let notes: Vec<&str> = text.lines().filter(|l| l.starts_with("note: ")).collect();
        assert_eq!(notes.len(), 1, "{text}");
        assert!(notes[0].contains("--connect-only"), "{text}");
        match saw {
            Some(_) => assert!(
                notes[0].contains("does not speak the echo protocol: it sent \""),
                "{text}"
            ),
            None => assert!(
                notes[0].contains("closed the connection after the request"),
                "{text}"
            ),
        }
        assert!(text.contains("seq=2 connected to"), "{text}");
        assert!(text.contains("Average connect (in milliseconds)"), "{text}");
        // --echo keeps the strictness: every ping an error, no notice, exit 1.
        let out = client(&[
            &addr, "-n", "2", "-i", "0.05", "-W", "2", "--json", "--echo",
        ]);
        let v = json_lines(&out);
        assert_eq!(out.status.code(), Some(1), "{v:?}");
        assert!(notices(&v).is_empty(), "{v:?}");
        for e in pings(&v) {
            assert_eq!(e["status"], "error", "{e}");
        }
    }
}

#[test]
fn a_silent_service_is_hinted_about_once_and_its_pings_stay_timeouts() {
    let addr = service(silent_service).to_string();
    let out = client(&[&addr, "-n", "2", "-i", "0", "-W", "0.2", "--json"]);
    let v = json_lines(&out);
    assert_eq!(out.status.code(), Some(1), "{v:?}");
    let n = notices(&v);
    assert_eq!(n.len(), 1, "{v:?}");
    assert_eq!(n[0]["kind"], "no_echo");
    assert_eq!(n[0]["now"], "echo");
    let msg = n[0]["message"].as_str().unwrap();
    assert!(msg.contains("--connect-only or --syn"), "{msg}");
    for e in pings(&v) {
        assert_eq!(e["status"], "timeout", "{e}");
        assert_eq!(e["phase"], "echo", "{e}");
    }
}

#[test]
fn the_echo_server_still_counts_as_echo() {
    // Echoes and LOST answers: no notice, the same verdicts as ever.
    let srv = ServerProc::start(&["--loss", "0.5", "--seed", "3", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "20", "-i", "0", "--json"]);
    let v = json_lines(&out);
    assert!(notices(&v).is_empty(), "{v:?}");
    let p = pings(&v);
    assert!(
        p.iter()
            .all(|e| e["status"] == "reply" || e["status"] == "lost"),
        "{v:?}"
    );
    assert!(p.iter().any(|e| e["status"] == "lost"), "{v:?}");
    for e in p.iter().filter(|e| e["status"] == "reply") {
        assert!(e["rtt_ms"].as_f64().is_some(), "an echo time: {e}");
    }
    // Once an echo came, a wrong answer is the server's error, not another protocol.
    let addr = answering_server(|line| {
        if line.split(|&c| c == b' ').nth(1) == Some(&b"1"[..]) {
            line.to_ascii_uppercase()
        } else {
            b"GARBAGE\n".to_vec()
        }
    });
    let out = client(&[&addr.to_string(), "-n", "2", "-i", "0", "--json"]);
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(
        (&p[0]["status"], &p[1]["status"]),
        (&"reply".into(), &"error".into()),
        "{v:?}"
    );
    assert!(notices(&v).is_empty(), "{v:?}");
}

#[test]
fn an_echo_without_its_newline_is_a_reply_at_once() {
    let addr = answering_server(|line| line.to_ascii_uppercase());
    let t = Instant::now();
    let out = client(&[&addr.to_string(), "-n", "2", "-i", "0", "-W", "5", "--json"]);
    let v = json_lines(&out);
    assert_eq!(summary(&v)["received"], 2, "{v:?}");
    // Behaviour, not speed: a 5 s timeout that was not waited for.
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // On one connection too: the next ping is not confused by a late newline.
    let addr = answering_server(|line| {
        let mut v = line.to_ascii_uppercase();
        v.extend_from_slice(b"\r");
        v
    });
    let out = client(&[
        &addr.to_string(),
        "-n",
        "3",
        "-i",
        "0",
        "--persistent",
        "--json",
    ]);
    assert_eq!(summary(&json_lines(&out))["received"], 3);
}

#[test]
fn a_ping_interrupted_in_flight_is_sent_and_not_received() {
    let srv = ServerProc::start(&["--loss", "1", "--loss-mode", "silent", "-q"]);
    for json in [true, false] {
        let mut args = vec![
            srv.addr.to_string(),
            "-n".into(),
            "5".into(),
            "-W".into(),
            "5".into(),
        ];
        if json {
            args.push("--json".into());
        }
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        if json {
            let v = json_lines(&out);
            let p = pings(&v);
            assert_eq!(p.len(), 1, "{v:?}");
            assert_eq!(p[0]["status"], "interrupted");
            let s = summary(&v);
            assert_eq!(
                (s["sent"].as_u64(), s["received"].as_u64()),
                (Some(1), Some(0))
            );
            assert_eq!(s["interrupted"], 1);
            assert_eq!(s["loss_pct"], 100.0);
        } else {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("seq=1 interrupted"), "{text}");
            assert!(
                text.contains("1 ping sent, 0 replies, 1 interrupted, 100.0% loss"),
                "{text}"
            );
        }
    }
}

#[test]
fn percentiles_lie_within_min_and_max() {
    // Echoes after about 2 ms: there the histogram's 3 significant digits are coarser than
    // the µs the JSON shows, and it rounds up past the maximum.
    let addr = answering_server(|line| {
        std::thread::sleep(Duration::from_micros(2032));
        let mut v = line.to_ascii_uppercase();
        v.push(b'\n');
        v
    });
    for n in ["1", "7"] {
        let out = client(&[&addr.to_string(), "-n", n, "-i", "0", "--json"]);
        let v = json_lines(&out);
        let s = summary(&v);
        let rtts: Vec<f64> = pings(&v)
            .iter()
            .map(|p| p["rtt_ms"].as_f64().unwrap())
            .collect();
        let (min, max) = (
            s["rtt_min_ms"].as_f64().unwrap(),
            s["rtt_max_ms"].as_f64().unwrap(),
        );
        for k in ["rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms"] {
            let p = s[k].as_f64().unwrap();
            assert!(p >= min && p <= max, "{k} {p} outside [{min}, {max}]");
            // Few samples: the percentile is one of them, exactly.
            assert!(
                rtts.iter().any(|r| (r - p).abs() < 1e-9),
                "{k} {p} not in {rtts:?}"
            );
        }
    }
}

#[test]
fn quiet_keeps_the_header_and_with_json_prints_only_the_summary() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "3", "-i", "0", "-q", "--json"]);
    let v = json_lines(&out);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["type"], "summary");
    let out = client(&[&srv.addr.to_string(), "-n", "1", "-q"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("TCPPING "), "{text}");
    assert!(text.contains("1 ping sent, 1 reply, 0.0% loss"), "{text}");
}

#[test]
fn json_starts_with_a_start_event_and_stamps_every_ping() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&[&srv.addr.to_string(), "-n", "2", "-i", "0", "--json"]);
    let v = json_lines(&out);
    assert_eq!(v[0]["type"], "start", "{v:?}");
    assert_eq!(v[0]["address"], srv.addr.to_string());
    assert_eq!(v[0]["source"], "127.0.0.1");
    assert_eq!(v[0]["probe"], "connect");
    let t0 = v[0]["ts"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(t0 <= now && t0 > now - 60.0, "{t0} vs {now}");
    let ts: Vec<f64> = pings(&v)
        .iter()
        .map(|p| p["ts"].as_f64().unwrap())
        .collect();
    assert!(ts[0] >= t0 && ts[1] >= ts[0], "{ts:?}");
}

#[test]
fn argument_errors_say_what_is_allowed() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["h:1", "-n", "-1"], "whole number of 1 or more", "-- -1"),
        (
            &["h:1", "-n", "0"],
            "whole number of 1 or more",
            "18446744073709551615",
        ),
        // Two targets start the many-targets mode (tests/multi.rs), which checks them all.
        (&["a:1", "b:x"], "invalid target 'b:x'", "subcommand"),
        (
            &["a:1", "--metrics", "127.0.0.1"],
            "--metrics: invalid listen address",
            "subcommand",
        ),
        (&["h:1", "-W", "-1"], "at least 1ms", "0 or more"),
        (&["h:1", "-W", "0.0000001"], "at least 1ms", "?"),
        (&["h:1", "-i", "1x"], "us, ms, s, m, h", "months"),
        // The usage line says what can be typed, not what was.
        (
            &["-4", "--count", "3", "--quiet", "--bogus"],
            "Usage: tcpping-diag [OPTIONS] HOST:PORT",
            "--quiet <",
        ),
    ];
    for (args, want, never) in cases {
        let out = client(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
        assert!(!err.contains(never), "{args:?}: {never:?} in {err}");
    }
    let help = String::from_utf8_lossy(&client(&["--help"]).stdout).to_string();
    assert!(help.contains("-c"), "-c missing from --help:\n{help}");
}

/// A pseudo-terminal for the child's stdin: (master, slave).
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) }
}

#[test]
fn on_a_terminal_it_asks_and_an_empty_answer_pings_until_interrupted() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let (mut master, slave) = pty();
    let child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-i", "0.05"])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    master.write_all(b"\n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Enter number of pings (N; empty = until interrupted)"),
        "{text}"
    );
    assert!(
        text.contains("until interrupted, connection per ping"),
        "{text}"
    );
    assert!(text.contains("seq=3 reply"), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    // A number is still the count.
    let (mut master, slave) = pty();
    let child = Command::new(BIN)
        .args([&srv.addr.to_string(), "-i", "0"])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    master.write_all(b"2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 pings sent, 2 replies"), "{text}");
}

#[test]
fn a_ping_starts_every_interval_whatever_is_still_in_flight() {
    every_interval_whatever_is_in_flight(&[]);
}

#[test]
fn a_persistent_ping_starts_every_interval_while_its_connection_opens() {
    // The pings that come due while the one connection is being opened wait on it (the same
    // SYN), each with its own deadline.
    every_interval_whatever_is_in_flight(&["--persistent"]);
}

fn every_interval_whatever_is_in_flight(mode: &[&str]) {
    let (_l, _filler, addr) = dropping_target();
    let t = Instant::now();
    let target = addr.to_string();
    let mut args = vec![
        target.as_str(),
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "0.5",
        "--json",
    ];
    args.extend_from_slice(mode);
    let out = client(&args);
    let took = t.elapsed();
    let v = json_lines(&out);
    assert_started_every_interval(&v, took);
    for e in pings(&v) {
        assert_eq!(e["phase"], "connect", "{e}");
    }
    // Several in flight when Ctrl-C comes: each counts as sent and interrupted.
    let child = Command::new(BIN)
        .args([&target, "-n", "50", "-i", "0.1", "-W", "5", "--json"])
        .args(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_interrupted_in_flight(child);
}

#[test]
fn many_targets_each_get_their_own_notice_and_handshake_times() {
    let banner = service(banner_service).to_string();
    let http = service(http_service).to_string();
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let echo = srv.addr.to_string();
    let out = client(&[&banner, &http, &echo, "-n", "3", "-i", "0.05", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_lines(&out);
    for (target, saw) in [(&banner, "SSH-2.0-"), (&http, "HTTP/1.0 400")] {
        let n: Vec<_> = notices(&v)
            .into_iter()
            .filter(|e| e["target"] == target.as_str())
            .collect();
        assert_eq!(n.len(), 1, "{target}: {v:?}");
        assert!(n[0]["saw"].as_str().unwrap().starts_with(saw), "{v:?}");
        let p: Vec<_> = pings(&v)
            .into_iter()
            .filter(|e| e["target"] == target.as_str())
            .collect();
        assert_eq!(p.len(), 3);
        assert!(
            p.iter()
                .all(|e| e["status"] == "reply" && e["rtt_ms"].is_null()),
            "{v:?}"
        );
    }
    // The echo server among them is still timed by its echo, without a notice.
    assert!(
        !notices(&v).iter().any(|e| e["target"] == echo.as_str()),
        "{v:?}"
    );
    let p: Vec<_> = pings(&v)
        .into_iter()
        .filter(|e| e["target"] == echo.as_str())
        .collect();
    assert!(
        p.iter()
            .all(|e| e["status"] == "reply" && e["rtt_ms"].is_number()),
        "{v:?}"
    );
}

#[test]
fn pings_that_waited_on_an_opening_persistent_connection_go_out_on_it() {
    // The first SYN is dropped (full accept queue); the queue is emptied after 300 ms, the
    // SYN sent again (after about 1 s) opens the connection, and the pings that came due
    // meanwhile send their requests on it: every one echoed, all on one connection.
    let (l, filler, addr) = dropping_target();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        std::thread::sleep(Duration::from_millis(300));
        let (first, _) = l.accept().unwrap();
        drop(first);
        drop(filler);
        let (conn, _) = l.accept().unwrap();
        let conn: std::net::TcpStream = conn.into();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut w = conn.try_clone().unwrap();
        for line in std::io::BufReader::new(conn).lines() {
            let Ok(line) = line else { break };
            if w.write_all(format!("{}\n", line.to_ascii_uppercase()).as_bytes())
                .is_err()
            {
                break;
            }
        }
    });
    let out = client(&[
        &addr.to_string(),
        "--persistent",
        "-n",
        "5",
        "-i",
        "0.1",
        "-W",
        "3",
        "--json",
    ]);
    let v = json_lines(&out);
    let p = pings(&v);
    assert_eq!(p.len(), 5, "{v:?}");
    for e in &p {
        assert_eq!(e["status"], "reply", "{e}");
    }
    let ports: std::collections::BTreeSet<u64> = p
        .iter()
        .map(|e| e["local_port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 1, "one connection: {v:?}");
    drop(server);
}
