//! What the binary says to a user who typed something off, and how it ends when its output is
//! cut short: one line and exit status 2, never a panic.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::BIN;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tcpping-diag");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_url_is_refused_with_what_to_type() {
    let (rc, _, err) = run(&["http://127.0.0.1:80", "-n", "1"]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("drop the scheme 'http://': use 127.0.0.1:80"),
        "{err}"
    );
    assert!(!err.contains("brackets"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_service_name_is_a_port() {
    // Nothing listens on loopback's https port in a test (it would be refused at once, or if
    // something does listen, answered): either way the name became port 443.
    let (rc, out, err) = run(&["127.0.0.1:https", "-n", "1", "-W", "0.5", "--connect-only"]);
    assert!(rc == 0 || rc == 1, "rc {rc}: {err}");
    assert!(out.contains("(127.0.0.1:443)"), "{out}{err}");
    let (rc, _, err) = run(&["127.0.0.1:no-such-service", "-n", "1"]);
    assert_eq!(rc, 2);
    assert!(err.contains("service name from /etc/services"), "{err}");
}

#[test]
fn a_count_beyond_u64_says_too_large() {
    let (rc, _, err) = run(&["127.0.0.1:1", "-n", "99999999999999999999"]);
    assert_eq!(rc, 2);
    assert!(err.contains("too large"), "{err}");
}

#[test]
fn a_huge_target_is_echoed_cut() {
    let target = format!("{}:80:1", "a".repeat(100_000));
    let (rc, _, err) = run(&[&target, "-n", "1"]);
    assert_eq!(rc, 2);
    assert!(err.len() < 1000, "{} bytes of error", err.len());
}

#[test]
fn the_usage_names_every_command() {
    let (rc, out, _) = run(&["--help"]);
    assert_eq!(rc, 0);
    let usage: String = out
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    for cmd in ["trace", "serve", "report", "generate", "demo"] {
        assert!(
            usage.contains(&format!("tcpping-diag {cmd}")),
            "{cmd} missing from:\n{usage}"
        );
    }
}

#[test]
fn demo_into_a_closed_pipe_ends_quietly() {
    // `tcpping-diag demo | head -3`: the reader goes away after three lines.
    let mut child = Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start demo");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).expect("read a line of the demo");
    }
    drop(out);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for demo") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo still running 30 s after its reader left"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn an_impossible_name_is_refused_before_any_lookup() {
    // 300 bytes: no resolver can hold it (at most 253), so none is asked.
    let target = format!("{}:80", "a".repeat(300));
    let (rc, _, err) = run(&[&target, "-n", "1"]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("longer than 253 bytes"), "{err}");
    let target = format!("{}.example:80", "b".repeat(64));
    let (rc, _, err) = run(&[&target, "-n", "1"]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("a label longer than 63 bytes"), "{err}");
}
