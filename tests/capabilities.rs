//! Capabilities are dropped in every thread, in every mode: as root and as an unprivileged
//! user given CAP_NET_RAW, a running tcpping-diag holds no capability in any of its threads
//! once it has started (the first result is out). Root-only: they run in CI (as root); on a
//! developer machine without root they skip, saying so, unless CI is set.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// A copy of the binary that user nobody may run (the one under target/ may sit in a
/// directory nobody cannot enter).
fn unprivileged_copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcpping-caps-{}", std::process::id()));
    let bin = dir.join("tcpping-diag");
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join("tcpping-diag.part");
        common::copy_binary(&tmp);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &bin).unwrap();
    });
    bin
}

#[derive(Clone, Copy, PartialEq)]
enum As {
    Root,
    /// User nobody with CAP_NET_RAW (inheritable and ambient), as `setcap cap_net_raw+ep`
    /// gives it.
    NobodyWithNetRaw,
}

fn command(who: As) -> Command {
    match who {
        As::Root => Command::new(BIN),
        As::NobodyWithNetRaw => {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--inh-caps=+net_raw",
                "--ambient-caps=+net_raw",
            ])
            .arg(unprivileged_copy());
            c
        }
    }
}

fn setpriv_works() -> bool {
    let ok = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=+net_raw",
            "--ambient-caps=+net_raw",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "setpriv (util-linux) with ambient capabilities missing in CI"
        );
        eprintln!("SKIPPED: setpriv with --ambient-caps does not work here");
    }
    ok
}

/// One thread's sets from its status file.
struct Sets {
    tid: String,
    name: String,
    fields: Vec<(String, String)>,
}

fn thread_sets(pid: u32) -> Vec<Sets> {
    let mut all = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap();
        let Ok(st) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let get = |k: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("{k} missing in {st}"))
                .trim()
                .to_string()
        };
        all.push(Sets {
            tid: t.file_name().to_string_lossy().into_owned(),
            name: get("Name:"),
            fields: [
                "CapEff:",
                "CapPrm:",
                "CapInh:",
                "CapAmb:",
                "CapBnd:",
                "NoNewPrivs:",
            ]
            .iter()
            .map(|k| (k.to_string(), get(k)))
            .collect(),
        });
    }
    all
}

/// Start tcpping-diag as `who` with `args`, wait for its first line on stdout (start-up is
/// over), run `poke` (a scrape, say), then check every thread; return the thread names.
fn check_run(who: As, args: &[&str], poke: impl FnOnce()) -> Vec<String> {
    let mut child: Child = command(who)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    // The start event, then a first result.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("{args:?}: no output within 10 s: {seen:?} {err}");
            }
        }
    }
    poke();
    // A thread just spawned takes its name a moment later.
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id();
    let threads = thread_sets(pid);
    let names: Vec<String> = threads.iter().map(|t| t.name.clone()).collect();
    let mut bad = Vec::new();
    for t in &threads {
        for (k, v) in &t.fields {
            let want = match k.as_str() {
                "NoNewPrivs:" => "1",
                // Root may empty its bounding set (CAP_SETPCAP); nobody may not.
                "CapBnd:" if who == As::NobodyWithNetRaw => continue,
                _ => "0000000000000000",
            };
            if v != want {
                bad.push(format!("thread {} ({}) {k} {v}", t.tid, t.name));
            }
        }
    }
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        bad.is_empty(),
        "{args:?}: capabilities kept after start-up: {bad:?}\nstderr: {err}"
    );
    assert!(
        !err.contains("CAP_NET_RAW"),
        "{args:?}: raw sockets were not opened, so nothing was tested: {err}"
    );
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(addr: &str) {
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            assert!(body.contains("tcpping_"), "{body}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the metrics endpoint at {addr} never answered");
}

/// One test at a time: a copy of the binary being written while the other test forks
/// would make its exec fail (ETXTBSY), and the runs are short anyway.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn every_mode(who: As) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let a = srv.addr.to_string();
    let closed = closed_port().to_string();
    // ping, connect probes: the ICMP listener thread runs.
    let names = check_run(who, &[&a, "-i", "0.1", "--json"], || {});
    assert!(names.iter().any(|n| n == "icmp"), "{names:?}");
    // ping --syn.
    check_run(who, &[&a, "--syn", "-i", "0.1", "--json"], || {});
    // Many targets, with a name to resolve (resolver threads).
    let names = check_run(
        who,
        &[&a, "localhost:1", &closed, "-i", "0.1", "--json"],
        || {},
    );
    assert!(names.iter().any(|n| n.starts_with("resolve")), "{names:?}");
    // Many targets with --metrics, scraped before looking (the HTTP server's threads).
    let m = format!("127.0.0.1:{}", free_port());
    let names = check_run(
        who,
        &[&a, &closed, "-i", "0.1", "--json", "--metrics", &m],
        || scrape(&m),
    );
    assert!(names.len() >= 3, "{names:?}");
    // Many targets, --syn.
    check_run(who, &[&a, &closed, "--syn", "-i", "0.1", "--json"], || {});
    // trace (SYN probes, cycles until interrupted).
    check_run(
        who,
        &["trace", &a, "--cycles", "0", "-i", "0.1", "--json"],
        || {},
    );
}

#[test]
fn as_root_no_thread_keeps_a_capability_in_any_mode() {
    if !need_root("capabilities as root") {
        return;
    }
    every_mode(As::Root);
}

#[test]
fn as_nobody_with_cap_net_raw_no_thread_keeps_it_in_any_mode() {
    if !need_root("capabilities as nobody with cap_net_raw") || !setpriv_works() {
        return;
    }
    every_mode(As::NobodyWithNetRaw);
    let _ = std::fs::remove_dir_all(unprivileged_copy().parent().unwrap());
}
