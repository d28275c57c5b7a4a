//! Targets files that cannot hurt the run (issue 19) and one rule for a target given twice
//! (issue 18): the real binary, loopback targets only.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tpd-tf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Run to the end, but at most `within`: a run that hangs is killed and fails the test.
fn run_within(args: &[&str], within: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + within;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{args:?} still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_targets_file_that_is_not_a_regular_file_is_refused_at_start_with_one_line() {
    let dir = scratch("start");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let link = dir.join("link");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    for (file, kind) in [
        (Path::new("/dev/zero"), "a character device"),
        (&fifo, "a FIFO"),
        (&link, "a character device"),
        (&dir, "a directory"),
    ] {
        let (code, _, err) = run_within(
            &["-f", file.to_str().unwrap(), "-n", "1", "--json"],
            Duration::from_secs(3),
        );
        assert_eq!(code, Some(2), "{file:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{file:?}: {err}");
        assert!(
            err.contains(&format!("is {kind}, not a regular file: refused")),
            "{file:?}: {err}"
        );
    }
    // Larger than 16 MiB (sparse).
    let big = dir.join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    let (code, _, err) = run_within(
        &["-f", big.to_str().unwrap(), "-n", "1", "--json"],
        Duration::from_secs(3),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("larger than 16 MiB: refused"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A running multi-target run whose NDJSON lines are timed as they come.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    err: Arc<Mutex<String>>,
    started: Instant,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), l));
            }
        });
        let err = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&err);
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            lines,
            err,
            started,
        }
    }

    fn pings_since(&self, t: Instant) -> Vec<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, l)| *at >= t && l.contains("\"type\":\"ping\""))
            .map(|(at, _)| *at)
            .collect()
    }

    /// When the first probe's verdict came (waiting for it up to `within`).
    fn first_ping(&self, within: Duration) -> Instant {
        let end = Instant::now() + within;
        loop {
            if let Some(&t) = self.pings_since(self.started).first() {
                return t;
            }
            assert!(Instant::now() < end, "no probe within {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn hup(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    fn wait_err(&self, pat: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let e = self.err.lock().unwrap().clone();
            if e.contains(pat) {
                return e;
            }
            assert!(Instant::now() < end, "no '{pat}' on stderr: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Probes keep coming every interval (0.1 s) from `since` for `span`: no gap longer
    /// than 0.5 s.
    fn assert_probing(&self, since: Instant, span: Duration) {
        std::thread::sleep(span.saturating_sub(since.elapsed()));
        let mut at = vec![since];
        at.extend(self.pings_since(since));
        at.push(since + span);
        let gap = at.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            gap < Duration::from_millis(500),
            "probing stopped for {gap:?} ({} pings in {span:?})",
            at.len() - 2
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn at_sighup_a_device_a_fifo_or_a_million_bad_lines_never_stop_the_running_targets() {
    let closed = closed_port().to_string();
    let dir = scratch("hup");
    let file = dir.join("targets.txt");
    std::fs::write(&file, format!("{closed} name=a\n")).unwrap();
    let run = Running::start(&["-f", file.to_str().unwrap(), "-i", "0.1", "--json"]);
    // Running: the closed port is refused every 0.1 s.
    let t = run.first_ping(Duration::from_secs(5));
    run.assert_probing(t, Duration::from_millis(600));
    assert!(run.pings_since(t).len() >= 3);

    // Replaced by a link to /dev/zero: one line, the target keeps running.
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let t = Instant::now();
    run.hup();
    run.wait_err(
        "a character device, not a regular file: refused; the targets stay as they were",
        Duration::from_secs(2),
    );
    run.assert_probing(t, Duration::from_secs(1));

    // A FIFO with no writer.
    std::fs::remove_file(&file).unwrap();
    mkfifo(&file);
    let t = Instant::now();
    run.hup();
    run.wait_err("is a FIFO", Duration::from_secs(2));
    run.assert_probing(t, Duration::from_secs(1));

    // A million bad lines: five of them and a count, and probing goes on.
    std::fs::remove_file(&file).unwrap();
    let mut text = format!("{closed} name=a\n");
    text.push_str(&"not-a-target\n".repeat(1_000_000));
    std::fs::write(&file, text).unwrap();
    let t = Instant::now();
    run.hup();
    let err = run.wait_err("1 targets, 0 started, 0 stopped", Duration::from_secs(10));
    run.assert_probing(t, Duration::from_millis(1500));
    assert!(
        err.contains("... and 999,995 more bad lines (skipped)"),
        "{err}"
    );
    let reported = err.matches("(line skipped)").count();
    assert_eq!(reported, 5, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_huge_name_is_refused_once_with_a_short_message() {
    let closed = closed_port().to_string();
    let dir = scratch("huge");
    let file = dir.join("targets.txt");
    let huge = "h".repeat(10_000_000);
    let long = "a".repeat(300);
    std::fs::write(
        &file,
        format!(
            "{huge}:80\n{long}.example:80\n{}.example:80\n{closed}\n",
            "b".repeat(64)
        ),
    )
    .unwrap();
    let run = Running::start(&["-f", file.to_str().unwrap(), "-i", "0.1", "--json"]);
    let t = run.first_ping(Duration::from_secs(5));
    run.assert_probing(t, Duration::from_millis(1500));
    let err = run.err.lock().unwrap().clone();
    assert!(
        err.len() < 2000,
        "{} bytes of errors: {}",
        err.len(),
        err.chars().take(2000).collect::<String>()
    );
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(err.contains("line 1: invalid target 'hhh"), "{err}");
    assert!(err.contains("line 2: invalid target 'aaa"), "{err}");
    assert!(err.contains("longer than"), "{err}");
    assert!(err.contains("line 3: host name"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_name_that_does_not_resolve_is_reported_once_while_it_is_retried() {
    let closed = closed_port().to_string();
    let run = Running::start(&["nx-host.invalid:80", &closed, "-i", "0.1", "--json"]);
    // Lookups at 0, 1 and 3 s (backoff): one message.
    std::thread::sleep(Duration::from_millis(3500));
    let err = run.err.lock().unwrap().clone();
    assert_eq!(err.matches("nx-host.invalid:80").count(), 1, "{err}");
    assert!(err.contains("retrying in 1s"), "{err}");
}

fn summaries(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "summary")
        .collect()
}

#[test]
fn a_target_given_twice_is_probed_once_on_the_command_line_and_in_a_file() {
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let a = srv.addr.to_string();
    let closed = closed_port().to_string();
    // Command line.
    let (code, out, err) = run_within(
        &[&a, &closed, &a, "-n", "2", "-i", "0.05", "--json"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "{err}");
    let s = summaries(&out);
    assert_eq!(s.len(), 2, "{out}");
    assert_eq!(s.iter().filter(|v| v["target"] == a.as_str()).count(), 1);
    assert!(
        err.contains(&format!("{a} listed twice: probed once")),
        "{err}"
    );
    // A file: the same line twice is one target; the command line's too; other labels are
    // an error.
    let dir = scratch("twice");
    let file = dir.join("targets.txt");
    std::fs::write(
        &file,
        format!("{a} name=x\n{closed}\n{a} name=x\n{a} name=y\n"),
    )
    .unwrap();
    let (code, out, err) = run_within(
        &[
            &closed,
            "-f",
            file.to_str().unwrap(),
            "-n",
            "2",
            "-i",
            "0.05",
            "--json",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "{err}");
    let s = summaries(&out);
    assert_eq!(s.len(), 2, "{out}");
    assert_eq!(s.iter().filter(|v| v["target"] == a.as_str()).count(), 1);
    assert!(
        err.contains(&format!(
            "line 2: {closed} is already on the command line: probed once"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("line 3: {a} is already on line 1: probed once")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "line 4: {a} is already on line 1 with other labels (line skipped)"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
