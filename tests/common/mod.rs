//! Helpers for the integration tests: run the real binary, start real servers on loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tcpping-diag");

/// A `tcpping-diag serve` process on loopback; killed on drop. Its log is collected.
pub struct ServerProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    /// Start with `args` (listen defaults to 127.0.0.1:0) and wait until it listens.
    pub fn start(args: &[&str]) -> ServerProc {
        Self::start_cmd(args, |_| {})
    }

    /// As `start`, with the server's open-file limit (soft and hard) set to `nofile`.
    pub fn start_with_nofile(args: &[&str], nofile: u64) -> ServerProc {
        Self::start_cmd(args, |cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: nofile as libc::rlim_t,
                        rlim_max: nofile as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
    }

    fn start_cmd(args: &[&str], setup: impl FnOnce(&mut Command)) -> ServerProc {
        let mut all: Vec<&str> = vec!["serve"];
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        all.extend(args);
        let mut cmd = Command::new(BIN);
        cmd.args(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("start server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("server printed nothing").unwrap();
        let addr: SocketAddr = first
            .strip_prefix("Server Started Listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .parse()
            .unwrap();
        let log = Arc::new(Mutex::new(vec![first]));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        ServerProc { child, addr, log }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, wait, and return the whole log (its last line is the totals).
    pub fn stop_and_log(self) -> String {
        let log = Arc::clone(&self.log);
        self.stop();
        let text = log.lock().unwrap().join("\n");
        text
    }

    /// Wait (up to `within`) until a log line contains `pat`; false if none did.
    pub fn wait_for_log(&self, pat: &str, within: Duration) -> bool {
        let end = std::time::Instant::now() + within;
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(pat)) {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait, and return the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        // Let the log reader catch up with the last lines.
        std::thread::sleep(Duration::from_millis(100));
        st
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the client to completion.
pub fn client(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run client")
}

/// Parse NDJSON output into values.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn pings(v: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    v.iter().filter(|e| e["type"] == "ping").collect()
}

pub fn summary(v: &[serde_json::Value]) -> &serde_json::Value {
    let last = v.last().expect("no output");
    assert_eq!(
        last["type"], "summary",
        "last line is not the summary: {last}"
    );
    last
}

/// A loopback port where nothing listens.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Whether a root-only test may run here. Without root it is skipped, loudly, unless CI is set.
pub fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root, and CI is set: run the tests as root");
    }
    eprintln!("SKIPPED {test}: needs root (CI unset, so skipping is allowed)");
    false
}

/// Whether a test that builds namespaces with iptables rules may run here: root (as
/// `need_root`), and iptables installed (missing: skipped, loudly, unless CI is set).
pub fn need_root_and_iptables(test: &str) -> bool {
    if !need_root(test) {
        return false;
    }
    if Command::new("iptables").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "iptables missing in CI");
        eprintln!("SKIPPED {test}: iptables missing");
        return false;
    }
    true
}

/// Run `args` in network namespace `ns` (output dropped); panics naming it if it fails.
pub fn netns_exec(ns: &str, args: &[&str]) {
    let st = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{ns}: {args:?}");
}

/// Copy the binary to `dest` (mode 755) for a test that runs it as another user. The copy is
/// written by a `cp` child, never through a descriptor of this process: a writable descriptor
/// here would be inherited by every child another test forks meanwhile (until its exec), and
/// executing the copy while one holds it fails with ETXTBSY ("Text file busy").
pub fn copy_binary(dest: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let status = Command::new("cp")
        .arg(BIN)
        .arg(dest)
        .stdin(Stdio::null())
        .status()
        .expect("run cp");
    assert!(status.success(), "cp {BIN} {}: {status}", dest.display());
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A loopback port that never answers a SYN: a listener whose accept queue is full (one
/// connection, never accepted, fills a backlog of 0), so the kernel drops new SYNs. Keep all
/// three alive for as long as the port must drop.
pub fn dropping_target() -> (socket2::Socket, std::net::TcpStream, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    l.bind(&any.into()).unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (l, filler, addr)
}

/// Five pings at `-i 0.1 -W 0.5` to a dropping target (`v`, the run's events; `took`, its
/// wall time): five timeouts, all started within the first one's timeout, the run about
/// 0.9 s (not 5 × 0.5 s, one at a time).
pub fn assert_started_every_interval(v: &[serde_json::Value], took: Duration) {
    let p = pings(v);
    assert_eq!(p.len(), 5, "{v:?}");
    assert!(p.iter().all(|e| e["status"] == "timeout"), "{v:?}");
    assert!(took < Duration::from_millis(1800), "{took:?}");
    let ts: Vec<f64> = p.iter().map(|e| e["ts"].as_f64().unwrap()).collect();
    let first = ts.iter().cloned().fold(f64::INFINITY, f64::min);
    let last = ts.iter().cloned().fold(0.0, f64::max);
    assert!(
        last - first < 0.49,
        "started within the first timeout: {ts:?}"
    );
    let s = summary(v);
    assert_eq!(
        (s["sent"].as_u64(), s["timeout"].as_u64()),
        (Some(5), Some(5))
    );
}

/// Remove a network namespace a test made: kill what still runs in it, then delete it.
pub fn remove_netns(ns: &str) {
    if let Ok(p) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&p.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Ctrl-C (SIGINT) to a `--json` client 450 ms into a run of probes that nobody answers:
/// several were in flight, every one ends `interrupted`, sequence numbers 1..n, and the
/// summary counts them all as sent and interrupted.
pub fn assert_interrupted_in_flight(child: std::process::Child) {
    std::thread::sleep(Duration::from_millis(450));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let v = json_lines(&out);
    let p = pings(&v);
    assert!(p.len() >= 3, "several in flight: {v:?}");
    assert!(p.iter().all(|e| e["status"] == "interrupted"), "{v:?}");
    let mut seqs: Vec<u64> = p.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=p.len() as u64).collect::<Vec<_>>());
    let s = summary(&v);
    assert_eq!(s["sent"].as_u64(), Some(p.len() as u64), "{s}");
    assert_eq!(s["interrupted"].as_u64(), Some(p.len() as u64), "{s}");
}
