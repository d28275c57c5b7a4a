//! Many targets at once: the real binary against real servers on loopback (connect probes
//! need no privilege; the --syn ones are root-only and skip, saying so, without root unless
//! CI is set).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start client")
}

fn signal(child: &Child, sig: i32) {
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// GET a path over HTTP/1.0 with an Accept header: (head, body).
fn http_get(addr: &str, path: &str, accept: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// A free loopback port for the metrics endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `path` serves, or panic.
fn wait_for_http(addr: &str) {
    let t0 = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no metrics endpoint at {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn several_targets_are_pinged_at_once_each_with_its_own_events_and_summary() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let closed = closed_port();
    let (a, c) = (srv.addr.to_string(), closed.to_string());
    let out = client(&[&a, &c, "-n", "4", "-i", "0.1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = json_lines(&out);
    for (target, status) in [(&a, "reply"), (&c, "refused")] {
        let starts: Vec<_> = ev
            .iter()
            .filter(|e| e["type"] == "start" && e["target"] == target.as_str())
            .collect();
        assert_eq!(starts.len(), 1, "one start for {target}");
        assert_eq!(starts[0]["labels"], serde_json::json!({}));
        let pings: Vec<_> = pings(&ev)
            .into_iter()
            .filter(|e| e["target"] == target.as_str())
            .collect();
        let seqs: Vec<u64> = pings.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4], "{target}: its own sequence from 1");
        assert!(
            pings.iter().all(|e| e["status"] == status),
            "{target}: {pings:?}"
        );
        let sums: Vec<_> = ev
            .iter()
            .filter(|e| e["type"] == "summary" && e["target"] == target.as_str())
            .collect();
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0]["sent"], 4);
    }
    // Pinged at once: the two targets' probes interleave, they do not run one after the other.
    let order: Vec<&str> = pings(&ev)
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    let first_c = order.iter().position(|t| *t == c).unwrap();
    let last_a = order.iter().rposition(|t| *t == a).unwrap();
    assert!(first_c < last_a, "{order:?}");
}

#[test]
fn human_lines_are_prefixed_and_a_table_closes_the_run() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let closed = closed_port();
    let (a, c) = (srv.addr.to_string(), closed.to_string());
    let out = client(&[&a, &c, "-n", "2", "-i", "0.05"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{a} seq=1 reply from {a}")),
        "{text}"
    );
    assert!(text.contains(&format!("{c} seq=2 refused")), "{text}");
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("TARGET"))
        .collect();
    assert_eq!(table.len(), 3, "{text}");
    assert!(
        table[1].starts_with(&a) && table[1].contains(" 2       2    0.0 "),
        "{}",
        table[1]
    );
    assert!(
        table[2].starts_with(&c) && table[2].ends_with("2 refused"),
        "{}",
        table[2]
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 probes to 2 targets"), "{err}");
}

#[test]
fn a_targets_file_keeps_its_good_lines_and_names_the_bad_ones() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let dir = std::env::temp_dir().join(format!("tpd-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("targets.txt");
    std::fs::write(
        &file,
        format!(
            "# two good lines, two bad\n{} name=srv tier=test\nnot-a-target\n{} target=x\nnx-host.invalid:80 name=nx\n",
            srv.addr, srv.addr
        ),
    )
    .unwrap();
    let out = client(&[
        "-f",
        file.to_str().unwrap(),
        "-n",
        "2",
        "-i",
        "0.05",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: invalid target 'not-a-target'"),
        "{err}"
    );
    assert!(
        err.contains("line 4: label name 'target' is set by tcpping-diag itself"),
        "{err}"
    );
    assert!(
        err.contains("line 5: nx-host.invalid:80: cannot resolve host"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ev = json_lines(&out);
    let ping = pings(&ev)[0];
    assert_eq!(
        ping["labels"],
        serde_json::json!({"name": "srv", "tier": "test"})
    );
    assert_eq!(ping["target"], srv.addr.to_string());
    assert_eq!(pings(&ev).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_reads_the_file_again_and_metrics_follow() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let closed = closed_port();
    let dir = std::env::temp_dir().join(format!("tpd-multi-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("targets.txt");
    std::fs::write(&file, format!("{} name=srv\n", srv.addr)).unwrap();
    let port = free_port();
    let maddr = format!("127.0.0.1:{port}");
    let child = spawn(&[
        "-f",
        file.to_str().unwrap(),
        "-i",
        "0.05",
        "--json",
        "--metrics",
        &maddr,
    ]);
    wait_for_http(&maddr);
    std::thread::sleep(Duration::from_millis(300));
    let a = srv.addr.to_string();
    let series = |t: &str, extra: &str, v: &str| {
        format!("tcpping_probes_total{{target=\"{t}\",{extra}verdict=\"{v}\"}}")
    };
    let (head, body) = http_get(&maddr, "/metrics", "text/plain");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let replies = value(&body, &series(&a, "name=\"srv\",", "reply")).expect("reply series");
    assert!(replies >= 2.0, "{body}");
    // A second target, a bad line, and a relabelled first one.
    let c = closed.to_string();
    std::fs::write(&file, format!("{a} name=srv2\n{c}\nbogus line\n")).unwrap();
    signal(&child, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(400));
    let (_, body) = http_get(&maddr, "/metrics", "text/plain");
    assert!(
        value(&body, &series(&a, "name=\"srv\",", "reply")).is_none(),
        "old labels gone: {body}"
    );
    assert!(
        value(&body, &series(&a, "name=\"srv2\",", "reply")).unwrap() >= 1.0,
        "{body}"
    );
    assert!(
        value(&body, &series(&c, "", "refused")).unwrap() >= 1.0,
        "{body}"
    );
    assert_eq!(value(&body, "tcpping_targets"), Some(2.0));
    let (head, body) = http_get(
        &maddr,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"));
    let (head, _) = http_get(&maddr, "/nope", "*/*");
    assert!(
        head.starts_with("HTTP/1.1 404") || head.starts_with("HTTP/1.0 404"),
        "{head}"
    );
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: invalid target 'bogus'"), "{err}");
    assert!(err.contains("2 targets, 2 started, 1 stopped"), "{err}");
    let ev = json_lines(&out);
    // The relabelled target's first run ended with a summary at the reload, with its old labels.
    let sums: Vec<_> = ev.iter().filter(|e| e["type"] == "summary").collect();
    assert_eq!(sums.len(), 3, "{sums:?}");
    assert_eq!(sums[0]["labels"], serde_json::json!({"name": "srv"}));
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syn_probes_to_many_loopback_addresses_at_once() {
    if !need_root("syn_probes_to_many_loopback_addresses_at_once") {
        return;
    }
    let srv = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = srv.local_addr().unwrap().port();
    let targets: Vec<String> = (1..=50)
        .map(|i| format!("127.0.{}.{}:{port}", i / 200, 1 + i % 200))
        .collect();
    let closed = closed_port().to_string();
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.push(&closed);
    args.extend(["--syn", "-n", "3", "-i", "0.2", "--json", "-q"]);
    let out = client(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = json_lines(&out);
    let sums: Vec<_> = ev.iter().filter(|e| e["type"] == "summary").collect();
    assert_eq!(sums.len(), 51);
    for s in &sums {
        let want = if s["target"] == closed.as_str() {
            "refused"
        } else {
            "received"
        };
        assert_eq!(s[want], 3, "{s}");
        assert_eq!(s["sent"], 3, "{s}");
    }
    drop(srv);
}

#[test]
fn many_targets_raise_their_soft_open_file_limit() {
    // A descriptor per connect probe in flight: the soft limit (often 1024) is raised to the
    // hard one at start.
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(["127.0.0.1:1", "127.0.0.1:2", "-i", "0.2", "-n", "50", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let limits = format!("/proc/{}/limits", child.id());
    let mut soft = String::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let text = std::fs::read_to_string(&limits).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with("Max open files")) {
            soft = l.split_whitespace().nth(3).unwrap_or("").to_string();
            if soft == "4096" {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(soft, "4096", "soft limit of open files");
}
