//! The metrics endpoint under attack (issue 19): the real binary's `--metrics` against
//! hostile or careless clients on loopback. Header bound, a client that reads nothing, a
//! client that never finishes its request, and running out of descriptors; scrapes held
//! open while the targets change (issue 24): no probe late, memory bounded.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A many-targets run serving metrics on a free loopback port; killed on drop.
struct Monitor {
    child: Child,
    addr: SocketAddr,
}

impl Monitor {
    /// `targets` pinged every 0.5 s, metrics on loopback; `nofile`: the open-file limit.
    fn start(targets: &[String], nofile: Option<u64>) -> Monitor {
        let mut args = targets.to_vec();
        args.extend(["-i", "0.5"].map(String::from));
        Self::start_args(&args, nofile)
    }

    /// A run with these arguments (`-q`, metrics on a free loopback port added).
    fn start_args(args: &[String], nofile: Option<u64>) -> Monitor {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["-q", "--metrics", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("start the monitor");
        // The bare port is loopback.
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let m = Monitor { child, addr };
        let t0 = Instant::now();
        while scrape(addr, Duration::from_secs(2)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no metrics endpoint at {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident memory of the process, in kB.
    fn rss_kb(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET /metrics` over HTTP/1.0 within `within`: the whole response.
fn scrape(addr: SocketAddr, within: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, within)?;
    s.set_read_timeout(Some(within))?;
    s.set_write_timeout(Some(within))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut all = String::new();
    s.read_to_string(&mut all)?;
    if !all.starts_with("HTTP/1.") || !all.contains("tcpping_targets") {
        return Err(std::io::Error::other(format!("not a scrape: {all:.200}")));
    }
    Ok(all)
}

/// Whether the peer closed `s` (EOF or reset) within `within`, reading whatever comes.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while t0.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn closed_targets(n: usize) -> Vec<String> {
    let port = closed_port().port();
    (1..=n).map(|i| format!("127.0.0.{i}:{port}")).collect()
}

#[test]
fn an_endless_header_is_refused_and_memory_stays_flat() {
    let mut m = Monitor::start(&closed_targets(1), None);
    let before = m.rss_kb();
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nX: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let total = 50 << 20;
    let mut sent = 0usize;
    let mut cut = None;
    while sent < total {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => {
                cut = Some(e);
                break;
            }
        }
    }
    // The server stopped reading a few kB in and closed: our writes failed long before
    // 50 MB (the socket buffers hold a few MB at most).
    assert!(
        cut.is_some(),
        "the server took all {sent} bytes of one header line"
    );
    assert!(
        sent < 16 << 20,
        "sent {sent} bytes before the server closed"
    );
    // Answered 431 if the answer came through before the reset, else just closed.
    let mut answer = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:.200}"
    );
    let after = m.rss_kb();
    assert!(
        after < before + 4096,
        "RSS grew from {before} kB to {after} kB"
    );
    assert!(m.alive());
    scrape(m.addr, Duration::from_secs(2)).expect("a scrape after the attack");
}

#[test]
fn a_client_that_reads_nothing_holds_up_no_other_scrape_and_is_dropped() {
    // 60 targets: an exposition of tens of kB, so 300 of them fill every buffer.
    let m = Monitor::start(&closed_targets(60), None);
    let size = scrape(m.addr, Duration::from_secs(2)).unwrap().len();
    assert!(size > 20_000, "exposition of {size} bytes");
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&m.addr.into()).unwrap();
    let mut stuck: TcpStream = sock.into();
    let pipelined = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    stuck.write_all(pipelined.as_bytes()).unwrap();
    let t0 = Instant::now();
    // The server is blocked writing to it; others are answered within 1 s meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let t = Instant::now();
        scrape(m.addr, Duration::from_secs(1))
            .expect("another scraper answered within 1 s while one reads nothing");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Dropped after the write timeout (5 s): what it has not read ends in EOF or a reset,
    // far short of 300 expositions. Had it been kept, reading would let the server go on
    // and the connection would stay open (keep-alive) after the last answer.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(t0.elapsed()));
    assert!(
        closed_within(&mut stuck, Duration::from_secs(5)),
        "the client that reads nothing was not dropped"
    );
}

#[test]
fn an_unfinished_request_head_is_dropped() {
    let m = Monitor::start(&closed_targets(1), None);
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t0 = Instant::now();
    // The header read timeout is 5 s.
    assert!(
        closed_within(&mut s, Duration::from_secs(9)),
        "still open after {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() > Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn out_of_descriptors_the_endpoint_serves_again_when_they_come_back() {
    let mut m = Monitor::start(&closed_targets(1), Some(64));
    // More connections than descriptors: the server runs out (EMFILE) and the rest wait in
    // the listen queue.
    let mut idle = Vec::new();
    for _ in 0..100 {
        match TcpStream::connect_timeout(&m.addr, Duration::from_millis(500)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(idle.len() >= 64, "only {} connections", idle.len());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(m.alive(), "the monitor died out of descriptors");
    drop(idle);
    // Within the back-off (1 s at most) plus the connections' closing: serving again.
    let t0 = Instant::now();
    loop {
        match scrape(m.addr, Duration::from_secs(2)) {
            Ok(_) => break,
            Err(e) => assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no scrape 10 s after the descriptors came back: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(m.alive());
}

#[test]
fn paths_methods_and_formats() {
    let m = Monitor::start(&closed_targets(2), None);
    let req = |r: &str| -> String {
        let mut s = TcpStream::connect(m.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(r.as_bytes()).unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        all
    };
    let get = req("GET /metrics HTTP/1.0\r\n\r\n");
    assert!(get.starts_with("HTTP/1.0 200"), "{get:.300}");
    assert!(
        get.contains("content-type: text/plain; version=0.0.4"),
        "{get:.300}"
    );
    let om = req(
        "GET /metrics?x=1 HTTP/1.0\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    );
    assert!(om.contains("application/openmetrics-text"), "{om:.300}");
    assert!(om.ends_with("# EOF\n"));
    let head = req("HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    let post = req("POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.0 405"), "{post}");
    assert!(post.contains("allow: GET, HEAD"), "{post}");
    let root = req("GET / HTTP/1.0\r\n\r\n");
    assert!(root.contains("metrics at /metrics"), "{root}");
    let nope = req("GET /nope HTTP/1.0\r\n\r\n");
    assert!(nope.starts_with("HTTP/1.0 404"), "{nope}");
    // Series in target order (issue 18).
    let body = get.split_once("\r\n\r\n").unwrap().1;
    let targets: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("tcpping_target_resolved{"))
        .map(|l| l.split('"').nth(1).unwrap())
        .collect();
    let mut sorted = targets.clone();
    sorted.sort();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets, sorted);
    // Keep-alive: two requests on one HTTP/1.1 connection.
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200").count(), 2, "{all}");
}

#[test]
fn the_monitor_unit_raises_the_open_file_limit() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/debian/tcpping-diag-monitor@.service"
    ))
    .unwrap();
    let n: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("the monitor unit sets LimitNOFILE")
        .trim()
        .parse()
        .unwrap();
    assert!(n >= 16384, "LimitNOFILE={n}");
}

/// The value of the sample `line_start` (a whole series: name and labels) in a scrape.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
        .parse()
        .unwrap()
}

/// A client that asks for `n` expositions and reads none (a 4 KiB receive buffer).
fn stuck_client(addr: SocketAddr, n: usize) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.write_all(
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            .repeat(n)
            .as_bytes(),
    )
    .unwrap();
    s
}

#[test]
fn scrapes_held_open_delay_no_probe_and_hold_no_memory_while_the_targets_change() {
    // 400 targets that answer (a listener on every loopback address, accepting and
    // closing), each with its own histograms: an exposition of about 1 MB, far past what
    // the sockets' buffers hold for a client that reads nothing.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets");
    let set = |third: u32| -> String {
        (0..400u32)
            .map(|i| {
                format!(
                    "127.3.{}.{}:{port} set={third}\n",
                    third + i / 200,
                    1 + i % 200
                )
            })
            .collect()
    };
    std::fs::write(&file, set(0)).unwrap();
    let args: Vec<String> = ["-f", file.to_str().unwrap(), "-i", "0.25", "--connect-only"]
        .into_iter()
        .chain(["--metrics-histograms", "per-target"])
        .map(String::from)
        .collect();
    let mut m = Monitor::start_args(&args, None);
    // Every target answered once: every histogram is there.
    let t0 = Instant::now();
    loop {
        let size = scrape(m.addr, Duration::from_secs(5)).unwrap().len();
        if size > 500_000 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "exposition of {size} bytes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = m.rss_kb();
    // Four clients that read nothing, 50 expositions asked each; one that reads 1 KiB
    // every 20 ms (a scrape open for seconds).
    let stuck: Vec<TcpStream> = (0..4).map(|_| stuck_client(m.addr, 50)).collect();
    let mut slow = TcpStream::connect(m.addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = 0usize;
        let mut buf = [0u8; 1024];
        for _ in 0..100 {
            match slow.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        got
    });
    // Meanwhile the loop adds and removes every target twice (SIGHUP): it takes the
    // table's lock, which no scrape holds while it waits for its client.
    for third in [10, 0] {
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(&file, set(third)).unwrap();
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(m.child.id() as i32, libc::SIGHUP) };
    }
    std::thread::sleep(Duration::from_millis(1500));
    let got = reader.join().unwrap();
    assert!(got >= 50 * 1024, "the slow reader got {got} bytes");
    let after = m.rss_kb();
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} kB to {after} kB with scrapes held"
    );
    assert!(m.alive());
    // Counted, not timed: every send so far left within 1 s of its schedule (a loop held
    // up by a scrape would have sent late until the held client was dropped, after 5 s).
    let body = scrape(m.addr, Duration::from_secs(5)).unwrap();
    let count = sample(&body, "tcpping_send_lag_seconds_count");
    let within_1s = sample(&body, "tcpping_send_lag_seconds_bucket{le=\"1\"}");
    assert!(count > 3000.0, "{count} probes sent");
    assert_eq!(within_1s, count, "sends later than 1 s behind schedule");
    // The targets are the file's again, each with its series (one reading later).
    assert_eq!(sample(&body, "tcpping_targets"), 400.0);
    assert_eq!(body.matches("set=\"10\"").count(), 0);
    drop(stuck);
}
