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
    s.write_all(b"ping 2 x").unwrap();
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
    let big = vec![b'a'; 5000];
    let _ = s.write_all(&big);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("ERROR request longer than 1024 bytes"),
        "{text}"
    );
    // A line of exactly 1024 bytes is fine.
    let mut s = connect(srv.addr);
    let mut line = vec![b'x'; 1024];
    line.push(b'\n');
    let reply = ask(&mut s, &line);
    assert_eq!(reply.len(), 1025);
    healthy(srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    assert!(srv.log_text().contains("Request longer than 1024 bytes"));
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
