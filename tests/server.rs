//! The server against well-behaved, hostile and idle clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn ask(s: &mut TcpStream, req: &[u8]) -> String {
    s.write_all(req).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

/// A well-behaved client still gets its echo.
fn healthy(addr: SocketAddr) {
    let out = client(&[&addr.to_string(), "-n", "2", "-i", "0", "--json"]);
    assert_eq!(
        summary(&json_lines(&out))["received"],
        2,
        "server stopped serving"
    );
}

#[test]
fn echoes_uppercase_and_logs_like_the_original() {
    let srv = ServerProc::start(&["--loss", "0"]);
    let mut s = connect(srv.addr);
    assert_eq!(
        ask(&mut s, b"ping 1 2024-09-09 12:00:00.123456\n"),
        "PING 1 2024-09-09 12:00:00.123456\n"
    );
    // Several requests over one connection, two of them in one write.
    s.write_all(b"ping 2 a\nping 3 b\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut a = String::new();
    r.read_line(&mut a).unwrap();
    let mut b = String::new();
    r.read_line(&mut b).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("PING 2 A\n", "PING 3 B\n"));
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    let log = srv.log_text();
    assert!(
        log.contains(
            "Message sent by client = ping 1 2024-09-09 12:00:00.123456 from ('127.0.0.1', "
        ),
        "{log}"
    );
    assert!(
        log.contains("Response sent back = PING 1 2024-09-09 12:00:00.123456"),
        "{log}"
    );
}

#[test]
fn a_request_without_newline_is_answered_without_one() {
    // As the original client: one send, no newline, then one recv(1024).
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    s.write_all(b"ping 1 2024-09-09 12:00:00.123456").unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"PING 1 2024-09-09 12:00:00.123456");
}

#[test]
fn loss_reply_mode_says_lost() {
    let srv = ServerProc::start(&["--loss", "1"]);
    let mut s = connect(srv.addr);
    assert_eq!(ask(&mut s, b"ping 1 x\n"), "LOST\n");
    // The original client's request: no newline.
    s.write_all(b"ping 2 2024-09-09 12:00:00.123456").unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"LOST",
        "the original's bare LOST for a bare request"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(srv.log_text().contains("Packet lost"));
}

#[test]
fn garbage_binary_and_invalid_utf8_get_an_error_not_a_crash() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    assert_eq!(
        ask(&mut s, b"\xff\xfe\x00\x01garbage\n"),
        "ERROR request is not UTF-8 text\n"
    );
    // The same connection keeps working.
    assert_eq!(ask(&mut s, b"ping 9 z\n"), "PING 9 Z\n");
    // Text beyond ASCII is uppercased as text, as Python's str.upper() does.
    assert_eq!(
        ask(&mut s, "ping 10 café ß\n".as_bytes()),
        "PING 10 CAFÉ SS\n"
    );
    // NUL bytes and control characters in valid UTF-8 are echoed, uppercased.
    assert_eq!(ask(&mut s, b"a\x00b\x07\n"), "A\x00B\x07\n");
    healthy(srv.addr);
}

#[test]
fn an_oversized_line_closes_only_that_connection() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    let big = vec![b'a'; 20000];
    let _ = s.write_all(&big);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("ERROR request longer than 9000 bytes"),
        "{text}"
    );
    // A line of exactly 9000 bytes is fine (the client's largest -s).
    let mut s = connect(srv.addr);
    let mut line = vec![b'x'; 9000];
    line.push(b'\n');
    let reply = ask(&mut s, &line);
    assert_eq!(reply.len(), 9001);
    healthy(srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    assert!(srv.log_text().contains("Request longer than 9000 bytes"));
}

#[test]
fn idle_clients_are_closed_after_the_idle_timeout() {
    let srv = ServerProc::start(&["--loss", "0", "--idle-timeout", "300ms"]);
    let mut s = connect(srv.addr);
    let mut buf = [0u8; 8];
    let t = std::time::Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close the idle connection");
    assert!(t.elapsed() >= Duration::from_millis(250));
    healthy(srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        srv.log_text()
            .contains("Idle for 300ms: closing connection"),
        "{}",
        srv.log_text()
    );
}

#[test]
fn clients_over_the_limit_are_closed_at_once() {
    let srv = ServerProc::start(&["--loss", "0", "--max-clients", "2"]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(srv.addr)).collect();
    // Make sure both are admitted before the third arrives.
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect(srv.addr);
    let mut buf = [0u8; 8];
    let n = third.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the third client was served");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        srv.log_text()
            .contains("Too many clients (2): closing connection from"),
        "{}",
        srv.log_text()
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    healthy(srv.addr);
}

#[test]
fn many_hostile_clients_at_once_do_not_stop_it() {
    let srv = ServerProc::start(&["--loss", "0", "-q", "--idle-timeout", "2s"]);
    let addr = srv.addr;
    let hostile: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return;
                };
                let junk: Vec<u8> = (0..3000u32).map(|k| (k * 7 + i) as u8).collect();
                let _ = s.write_all(&junk);
                let _ = s.shutdown(std::net::Shutdown::Both);
            })
        })
        .collect();
    // Half-open and reset connections too.
    for _ in 0..10 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        s.connect(&addr.into()).unwrap();
        drop(s);
    }
    for h in hostile {
        h.join().unwrap();
    }
    healthy(addr);
}

#[test]
fn sigterm_prints_totals_and_exits_0() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    healthy(srv.addr);
    let log = std::sync::Arc::clone(&srv.log);
    let st = srv.stop();
    assert!(st.success(), "{st:?}");
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("Server stopped: 2 connections, 0 rejected, 2 messages, 2 answered, 0 lost"),
        "{log}"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let out = client(&["serve", "--listen", &srv.addr.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listen on {}: Address already in use", srv.addr)),
        "{err}"
    );
}

#[test]
fn a_client_limit_above_the_file_limit_is_warned_about() {
    let srv = ServerProc::start(&["--loss", "0", "--max-clients", "100000000"]);
    std::thread::sleep(Duration::from_millis(100));
    let log = srv.log_text();
    assert!(log.contains("warning: open-file limit"), "{log}");
    assert!(log.contains("raise it with ulimit -n"), "{log}");
    healthy(srv.addr);
}

// ---------------------------------------------------------------- no peer can wedge it

#[test]
fn an_idle_server_logs_nothing_while_it_waits() {
    // The idle timeout is for clients: the accept loop must not time out with it.
    let srv = ServerProc::start(&["--loss", "0", "-q", "--idle-timeout", "100ms"]);
    std::thread::sleep(Duration::from_millis(800));
    healthy(srv.addr);
    let log = srv.log_text();
    assert!(!log.contains("accept failed"), "{log}");
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
    let srv = ServerProc::start(&["--loss", "0", "-q", "--idle-timeout", "500ms"]);
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&srv.addr.into()).unwrap();
    let mut s: TcpStream = s.into();
    // Our own safety net: were the server never to close, this write would fail after 60 s.
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let writer = std::thread::spawn(move || {
        let mut line = vec![b'x'; 999];
        line.push(b'\n');
        let chunk = line.repeat(64);
        let mut sent = 0usize;
        // Requests, never reading a reply: the server's replies pile up until its write stalls.
        while sent < 512 << 20 {
            s.write_all(&chunk)?;
            sent += chunk.len();
        }
        Ok::<usize, std::io::Error>(sent)
    });
    assert!(
        srv.wait_for_log(
            "Client not reading for 500ms: closing connection from",
            Duration::from_secs(30)
        ),
        "a client that never reads pins its thread: {}",
        srv.log_text()
    );
    let err = writer
        .join()
        .unwrap()
        .expect_err("the server closed the connection");
    assert!(
        !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "the connection was not closed by the server: {err}"
    );
    healthy(srv.addr);
}

// ---------------------------------------------------------------- where a request ends

/// Read until `n` newlines have come (or the connection ends); all bytes read.
fn read_lines(s: &mut TcpStream, n: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|&&b| b == b'\n').count() < n {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => panic!("read: {e}; got so far {:?}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn read_n(s: &mut TcpStream, n: usize) -> String {
    let mut got = vec![0u8; n];
    s.read_exact(&mut got).unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// Write `bytes` in pieces of the given sizes (cycled), each its own segment.
fn write_in_pieces(s: &mut TcpStream, bytes: &[u8], sizes: &[usize], pause: Duration) {
    s.set_nodelay(true).unwrap();
    let mut i = 0;
    let mut k = 0;
    while i < bytes.len() {
        let n = sizes[k % sizes.len()].min(bytes.len() - i);
        s.write_all(&bytes[i..i + n]).unwrap();
        i += n;
        k += 1;
        std::thread::sleep(pause);
    }
}

#[test]
fn a_request_split_across_writes_is_answered_once() {
    // Every reply is LOST: an answer per fragment would show as LOSTLOST.
    let srv = ServerProc::start(&["--loss", "1", "-q"]);
    let mut s = connect(srv.addr);
    s.set_nodelay(true).unwrap();
    s.write_all(b"ping 11 ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"12\n").unwrap();
    s.write_all(b"ping 13 x\n").unwrap();
    assert_eq!(read_lines(&mut s, 2), "LOST\nLOST\n");
    // And the echo is the whole request.
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    s.set_nodelay(true).unwrap();
    s.write_all(b"ping 11 ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"12\n").unwrap();
    assert_eq!(read_lines(&mut s, 1), "PING 11 12\n");
}

#[test]
fn a_trickled_request_is_answered_once() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    // Our client's request, one byte per segment.
    let mut s = connect(srv.addr);
    write_in_pieces(
        &mut s,
        b"ping 7 1795691062.304788\n",
        &[1],
        Duration::from_millis(2),
    );
    s.write_all(b"ping 8 x\n").unwrap();
    assert_eq!(
        read_lines(&mut s, 2),
        "PING 7 1795691062.304788\nPING 8 X\n"
    );
    // The original client's request (no newline), one byte per segment: answered once, when
    // its last byte comes.
    let mut s = connect(srv.addr);
    let req = b"ping 1 2024-09-09 12:00:00.123456";
    write_in_pieces(&mut s, req, &[1], Duration::from_millis(2));
    assert_eq!(
        read_n(&mut s, req.len()),
        "PING 1 2024-09-09 12:00:00.123456"
    );
    s.write_all(b"ping 2 x\n").unwrap();
    assert_eq!(read_lines(&mut s, 1), "PING 2 X\n");
    // The echoes of single bytes would add up to the same text: count the messages.
    drop(s);
    let log = std::sync::Arc::clone(&srv.log);
    assert!(srv.stop().success());
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains(", 4 messages, 4 answered,"), "{log}");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    let expected = "PING 1 A\nPING 2 B\nPING 3 C\nPING 4 2024-09-09 12:00:00.123456";
    s.write_all(b"ping 1 a\nping 2 b\r\nping 3 c\nping 4 2024-09-09 12:00:00.123456")
        .unwrap();
    assert_eq!(read_n(&mut s, expected.len()), expected);
    s.write_all(b"ping 5 e\n").unwrap();
    assert_eq!(read_lines(&mut s, 1), "PING 5 E\n");
}

#[test]
fn a_request_without_newline_then_a_half_close_is_answered() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    for (req, want) in [
        (&b"hello there"[..], "HELLO THERE"),
        (b"ping 1 a\nping 2 b", "PING 1 A\nPING 2 B"),
        (
            b"ping 3 2024-09-09 12:00:00.123456",
            "PING 3 2024-09-09 12:00:00.123456",
        ),
    ] {
        for _ in 0..5 {
            let mut s = connect(srv.addr);
            s.write_all(req).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
    }
    let srv = ServerProc::start(&["--loss", "1", "-q"]);
    let mut s = connect(srv.addr);
    s.write_all(b"ping 9 x").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"LOST");
}

#[test]
fn a_newline_right_after_an_original_request_only_ends_it() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    s.write_all(b"ping 1 2024-09-09 12:00:00.123456").unwrap();
    assert_eq!(read_n(&mut s, 33), "PING 1 2024-09-09 12:00:00.123456");
    s.write_all(b"\nping 2 x\n").unwrap();
    assert_eq!(read_lines(&mut s, 1), "PING 2 X\n");
    // Python prints no fraction when the microsecond is 0: still answered.
    let mut s = connect(srv.addr);
    s.write_all(b"ping 3 2024-09-09 12:00:00").unwrap();
    assert_eq!(read_n(&mut s, 26), "PING 3 2024-09-09 12:00:00");
}

/// Which of `n` requests came back LOST, the requests written in pieces of `sizes`.
fn lost_pattern(n: usize, sizes: &[usize]) -> (Vec<bool>, String) {
    let srv = ServerProc::start(&["--loss", "0.5", "--seed", "7", "-q"]);
    let mut s = connect(srv.addr);
    let reqs: String = (1..=n)
        .map(|i| format!("ping {i} 1795691062.{i:06}\n"))
        .collect();
    write_in_pieces(&mut s, reqs.as_bytes(), sizes, Duration::from_micros(300));
    let replies = read_lines(&mut s, n);
    drop(s);
    let log = std::sync::Arc::clone(&srv.log);
    assert!(srv.stop().success());
    let pattern = replies.lines().map(|l| l == "LOST").collect();
    let log = log.lock().unwrap().join("\n");
    (pattern, log)
}

#[test]
fn the_seed_gives_the_same_lost_set_however_the_bytes_are_split() {
    let n = 40;
    let (whole, log) = lost_pattern(n, &[usize::MAX]);
    assert_eq!(whole.len(), n);
    assert!(
        whole.iter().any(|&l| l) && whole.iter().any(|&l| !l),
        "{whole:?}"
    );
    assert!(log.contains(&format!("{n} messages")), "{log}");
    for sizes in [&[1usize][..], &[3, 7, 2, 11], &[13, 1, 29]] {
        let (split, log) = lost_pattern(n, sizes);
        assert_eq!(split, whole, "pieces of {sizes:?}");
        assert!(
            log.contains(&format!("{n} messages")),
            "pieces of {sizes:?}: {log}"
        );
    }
}

// ---------------------------------------------------------------- nothing floods the log

#[test]
fn out_of_file_descriptors_it_backs_off_and_summarises() {
    let srv = ServerProc::start_with_nofile(&["--loss", "0", "-q"], 32);
    // More connections than descriptors: the rest wait in the backlog, accept() fails.
    let held: Vec<TcpStream> = (0..60).map(|_| connect(srv.addr)).collect();
    assert!(
        srv.wait_for_log("accept failed", Duration::from_secs(10)),
        "{}",
        srv.log_text()
    );
    // A failure every 10 ms was ~200 lines in these 2 s.
    std::thread::sleep(Duration::from_secs(2));
    let failures = srv
        .log_text()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(failures <= 2, "{failures} lines:\n{}", srv.log_text());
    assert!(
        srv.log_text().contains("Too many open files"),
        "{}",
        srv.log_text()
    );
    drop(held);
    // Descriptors free again: one summary line, and the server serves.
    assert!(
        srv.wait_for_log("accepting again", Duration::from_secs(10)),
        "{}",
        srv.log_text()
    );
    let mut s = connect(srv.addr);
    assert_eq!(ask(&mut s, b"ping 1 x\n"), "PING 1 X\n");
    let log = srv.log_text();
    let summary = log.lines().find(|l| l.contains("accepting again")).unwrap();
    assert!(
        summary.contains("times in the last") && summary.contains("Too many open files"),
        "{summary}"
    );
}

#[test]
fn garbage_cannot_flood_the_log() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let mut s = connect(srv.addr);
    // 40 lines of 1000 bytes that are not UTF-8, with control characters (escaped in the log).
    let mut junk = Vec::new();
    for i in 0..40u32 {
        junk.extend((0..1000u32).map(|k| match ((k * 7 + i) % 256) as u8 {
            b'\n' => 0xff,
            b => b | 0x80,
        }));
        junk.push(b'\n');
    }
    s.write_all(&junk).unwrap();
    s.write_all(b"ping 1 x\n").unwrap();
    let replies = read_lines(&mut s, 41);
    assert!(replies.ends_with("PING 1 X\n"), "{replies}");
    drop(s);
    assert!(
        srv.wait_for_log("suppressed", Duration::from_secs(5)),
        "{}",
        srv.log_text()
    );
    let log = srv.log_text();
    let invalid: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Invalid message"))
        .collect();
    // 5 a second for one client: the 40 lines take milliseconds, so 5 (10 should the server
    // be stalled across a second's edge).
    assert!(
        !invalid.is_empty() && invalid.len() <= 10,
        "{}",
        invalid.len()
    );
    for l in &invalid {
        assert!(l.chars().count() < 250, "not truncated: {l}");
        assert!(l.ends_with("… (1000 bytes)"), "{l}");
    }
    // It was 122 kB.
    assert!(log.len() < 8000, "{} bytes of log:\n{log}", log.len());
}

#[test]
fn rejections_cannot_flood_the_log() {
    let srv = ServerProc::start(&["--loss", "0", "-q", "--max-clients", "1"]);
    let _held = connect(srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    let n = 600;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut s = connect(srv.addr);
        let _ = s.read(&mut [0u8; 8]); // closed at once
    }
    let secs = t.elapsed().as_secs();
    let log = std::sync::Arc::clone(&srv.log);
    assert!(srv.stop().success());
    let log = log.lock().unwrap().join("\n");
    let logged = log
        .matches("Too many clients (1): closing connection")
        .count();
    let suppressed: usize = log
        .lines()
        .filter_map(|l| l.strip_suffix(" log lines suppressed (more than 50 a second)"))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    // At most 50 lines a second; every rejection is either logged or counted.
    assert!(
        logged as u64 <= 50 * (secs + 2),
        "{logged} lines in {secs} s"
    );
    assert_eq!(logged + suppressed, n, "{log}");
    assert!(log.contains(&format!(" {n} rejected,")), "{log}");
}

// ---------------------------------------------------------------- no peer can take the server

/// A connection from a chosen loopback source address (127.0.0.0/8 is all loopback).
fn connect_from(src: &str, addr: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: std::net::IpAddr = src.parse().unwrap();
    s.bind(&SocketAddr::new(src, 0).into()).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn one_source_cannot_take_every_connection() {
    let srv = ServerProc::start(&[
        "--loss",
        "0",
        "-q",
        "--max-clients",
        "20",
        "--max-per-source",
        "5",
    ]);
    // 127.0.0.2 tries to take all 20 connections and keep them idle.
    let attack: Vec<TcpStream> = (0..20)
        .map(|_| connect_from("127.0.0.2", srv.addr))
        .collect();
    let rejected =
        "Too many connections from 127.0.0.2 (5): closing connection from ('127.0.0.2', ";
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while srv.log_text().matches(rejected).count() < 15 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A well-behaved client from 127.0.0.1 is served meanwhile.
    healthy(srv.addr);
    let mut s = connect_from("127.0.0.1", srv.addr);
    assert_eq!(ask(&mut s, b"ping 1 x\n"), "PING 1 X\n");
    assert_eq!(
        srv.log_text().matches(rejected).count(),
        15,
        "{}",
        srv.log_text()
    );
    drop(attack);
}

#[test]
fn a_request_trickled_forever_is_closed_after_the_line_timeout() {
    let srv = ServerProc::start(&[
        "--loss",
        "0",
        "-q",
        "--max-clients",
        "8",
        "--max-per-source",
        "4",
        "--line-timeout",
        "1s",
    ]);
    let addr = srv.addr;
    // 127.0.0.2 holds 4 connections with one byte every 200 ms, never a whole request.
    let attack: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect_from("127.0.0.2", addr);
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let t = std::time::Instant::now();
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while t.elapsed() < Duration::from_secs(20) {
                    // Once the server has said something, only read what is left.
                    if got.is_empty() && s.write_all(b"a").is_err() {
                        break;
                    }
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                }
                (t.elapsed(), String::from_utf8_lossy(&got).into_owned())
            })
        })
        .collect();
    // Meanwhile a client from 127.0.0.1 is served.
    std::thread::sleep(Duration::from_millis(300));
    healthy(addr);
    for a in attack {
        let (took, got) = a.join().unwrap();
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_secs(15),
            "closed after {took:?}"
        );
        assert_eq!(got, "ERROR request not completed within 1s\n");
    }
    assert!(
        srv.log_text()
            .contains("Request not completed within 1s: closing connection from ('127.0.0.2', "),
        "{}",
        srv.log_text()
    );
    healthy(addr);
}

// ---------------------------------------------------------------- serve's arguments

#[test]
fn serve_argument_errors_say_what_to_do() {
    let out = client(&["serve", "127.0.0.1:12349"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did you mean --listen 127.0.0.1:12349?"),
        "{err}"
    );
    let out = client(&["serve", "--loss", "-0.1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'-0.1' is outside 0.0 to 1.0"), "{err}");
}

#[test]
fn serve_listens_on_a_name_or_on_every_address() {
    let srv = ServerProc::start(&["--listen", "localhost:0", "--loss", "0", "-q"]);
    assert_eq!(srv.addr.ip().to_string(), "127.0.0.1");
    healthy(srv.addr);
    // ":PORT" is every address, IPv6 and IPv4.
    let srv = ServerProc::start(&["--listen", ":0", "--loss", "0", "-q"]);
    assert_eq!(srv.addr.ip().to_string(), "::");
    healthy(SocketAddr::new(
        "127.0.0.1".parse().unwrap(),
        srv.addr.port(),
    ));
    healthy(SocketAddr::new("::1".parse().unwrap(), srv.addr.port()));
}

#[test]
fn a_silent_loss_on_an_open_connection_is_named_the_echo_phase_in_every_output() {
    let srv = ServerProc::start(&[
        "--loss",
        "0.5",
        "--loss-mode",
        "silent",
        "--seed",
        "5",
        "-q",
    ]);
    let addr = srv.addr.to_string();
    let args = ["-n", "16", "-i", "0", "-W", "0.2", "--persistent"];
    let dir = std::env::temp_dir().join(format!("tcpping-phase-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("run.svg");
    let mut a = vec![addr.as_str(), "--json", "--plot", svg.to_str().unwrap()];
    a.extend(args);
    let out = client(&a);
    let v = json_lines(&out);
    let p = pings(&v);
    let timeouts: Vec<_> = p.iter().filter(|e| e["status"] == "timeout").collect();
    assert!(!timeouts.is_empty(), "the seed loses some: {v:?}");
    // Every silent loss happened with the connection open: the echo phase, also for the
    // pings whose handshake was an earlier ping's (no connect time of their own).
    assert!(
        timeouts.iter().any(|e| e["connect_ms"].is_null()),
        "a loss on an already open connection: {v:?}"
    );
    for e in &timeouts {
        assert_eq!(e["phase"], "echo", "{e}");
    }
    for e in p.iter().filter(|e| e["status"] == "reply") {
        assert_eq!(e["phase"], "echo", "{e}");
    }
    // The picture labels them as the server's silence, never as a filtered handshake.
    let pic = std::fs::read_to_string(&svg).unwrap();
    assert!(pic.contains("timeout (no echo)"), "{pic}");
    assert!(!pic.contains("no handshake"), "{pic}");
    // People read the same.
    let mut a = vec![addr.as_str()];
    a.extend(args);
    let text = String::from_utf8_lossy(&client(&a).stdout).to_string();
    assert!(
        text.contains("timeout: no echo on the open connection within 200 ms"),
        "{text}"
    );
    assert!(!text.contains("no answer to the handshake"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
