//! The live views of the real binary, in a pseudo-terminal: `script` (util-linux) runs it on
//! a pty, the test types keys into it and reads what reached the terminal. `trace` with
//! several cycles draws its view, `p` pauses it, and `q` (or SIGTERM) leaves the terminal as
//! it was (normal screen, cursor shown, raw mode off: `stty -a` after it) with the report on
//! the normal screen. Traffic goes to loopback, or (root) through network namespaces this
//! test builds and removes. Without `script`, or without root for the namespaces, the tests
//! skip loudly, unless CI is set: then they fail.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const ENTER: &str = "\x1b[?1049h";
const LEAVE: &str = "\x1b[?1049l";
const SHOW_CURSOR: &str = "\x1b[?25h";

/// Whether `script` can run here; without it the test skips (outside CI only).
fn have_script() -> bool {
    if Command::new("script").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "script (util-linux) is not installed, and CI is set: the pseudo-terminal tests cannot run"
    );
    eprintln!("SKIPPED: script (util-linux) is not installed (CI unset, so skipping is allowed)");
    false
}

/// Run the shell snippet `inner` in an 80×24 pseudo-terminal, typing `keys` (each after its
/// pause); then `stty -a` in the same terminal. Everything that reached the terminal.
fn in_pty(inner: &str, keys: &[(u64, &str)]) -> String {
    let inner = format!("stty rows 24 cols 80; {inner}; echo \"exit=$?\"; stty -a");
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // A watchdog: a view that does not quit fails the test instead of hanging it.
    let done = Arc::new(AtomicBool::new(false));
    let pid = child.id() as i32;
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for _ in 0..300 {
                std::thread::sleep(Duration::from_millis(100));
                if done.load(Ordering::SeqCst) {
                    return;
                }
            }
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        })
    };
    let keys: Vec<(u64, String)> = keys.iter().map(|(t, k)| (*t, k.to_string())).collect();
    // The typist keeps the terminal's input open until the run is over: it hands it back.
    let typist = std::thread::spawn(move || -> ChildStdin {
        for (pause, k) in keys {
            std::thread::sleep(Duration::from_millis(pause));
            let _ = stdin.write_all(k.as_bytes());
            let _ = stdin.flush();
        }
        stdin
    });
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    done.store(true, Ordering::SeqCst);
    drop(typist.join().unwrap());
    watchdog.join().unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(status.success(), "script failed ({status}): {out:?}");
    out
}

/// The screen as the view left it, read from what reached the terminal between the last
/// entry into the alternate screen and the leaving of it: the cursor moves, clears and text
/// that ratatui writes (styles ignored), as rows of text.
fn last_screen(out: &str) -> Vec<String> {
    let start = out.rfind(ENTER).expect("no alternate screen") + ENTER.len();
    let end = out[start..].find(LEAVE).map_or(out.len(), |e| start + e);
    let (w, h) = (80, 24);
    let mut cells = vec![vec![' '; w]; h];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = out[start..end].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next() != Some('[') {
                    continue;
                }
                let mut params = String::new();
                let mut fin = ' ';
                for d in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&d) {
                        fin = d;
                        break;
                    }
                    params.push(d);
                }
                match fin {
                    'H' => {
                        let mut it = params.split(';').map(|n| n.parse::<usize>().unwrap_or(1));
                        row = it.next().unwrap_or(1).saturating_sub(1);
                        col = it.next().unwrap_or(1).saturating_sub(1);
                    }
                    'J' if params == "2" => cells = vec![vec![' '; w]; h],
                    _ => {}
                }
            }
            '\r' => col = 0,
            '\n' => row += 1,
            c if !c.is_control() => {
                if row < h && col < w {
                    cells[row][col] = c;
                }
                col += 1;
            }
            _ => {}
        }
    }
    cells
        .into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}

/// The row of `screen` that contains `text`.
fn row_with<'a>(screen: &'a [String], text: &str) -> &'a str {
    screen
        .iter()
        .find(|r| r.contains(text))
        .unwrap_or_else(|| panic!("no row with {text:?} on the screen:\n{}", screen.join("\n")))
}

/// What `stty -a` said at the end: raw mode is off again.
fn cooked(out: &str) -> bool {
    let stty = &out[out.rfind("speed").unwrap_or(0)..];
    stty.contains(" icanon") && stty.contains(" echo") && !stty.contains("-icanon")
}

/// The view was drawn (`drawn` between entering and leaving the alternate screen: words
/// without spaces, as the terminal skips over blank cells), then the
/// terminal was given back (normal screen, cursor shown, raw mode off) before `report`.
/// Returns the text after the view.
fn drawn_then_restored<'a>(out: &'a str, drawn: &[&str], report: &str) -> &'a str {
    let enter = out
        .find(ENTER)
        .unwrap_or_else(|| panic!("no alternate screen: {out:?}"));
    let leave = out
        .rfind(LEAVE)
        .unwrap_or_else(|| panic!("left no alternate screen: {out:?}"));
    assert!(enter < leave, "{out:?}");
    let view = &out[enter..leave];
    for d in drawn {
        assert!(view.contains(d), "the view shows no {d:?}: {view:?}");
    }
    let after = &out[leave..];
    assert!(
        after.contains(SHOW_CURSOR),
        "the cursor is shown: {after:?}"
    );
    assert!(
        after.contains(report),
        "the report after the view: {after:?}"
    );
    assert!(!after.contains(ENTER), "{after:?}");
    assert!(cooked(out), "raw mode is off: {out:?}");
    after
}

/// An open loopback port, and the binary's trace command to it with connect() probes (no
/// privilege), every 200 ms, until interrupted.
fn loopback_trace() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let cmd = format!("{BIN} trace {target} --probe connect --cycles 0 -i 0.2 -m 3");
    (l, cmd)
}

#[test]
fn trace_draws_p_pauses_and_q_gives_the_terminal_back_then_the_report() {
    if !have_script() {
        return;
    }
    let (_listener, cmd) = loopback_trace();
    let out = in_pty(&cmd, &[(1500, "p"), (1000, "q")]);
    let after = drawn_then_restored(
        &out,
        &["Loss%", "127.0.0.1", "[open]", "[paused]", "reached"],
        "in 1 hop",
    );
    let paused = out.find("[paused]").unwrap();
    assert!(out.find("[open]").unwrap() < paused, "{out:?}");
    let screen = last_screen(&out);
    assert!(screen[0].starts_with("trace 127.0.0.1:"), "{screen:?}");
    assert!(screen[0].ends_with("[paused]"), "{screen:?}");
    let hop = row_with(&screen, "[open]");
    assert!(hop.trim_start().starts_with("1 127.0.0.1 [open]"), "{hop}");
    assert!(hop.contains("0.0%"), "{hop}");
    assert!(
        row_with(&screen, "reached").contains("in 1 hop"),
        "{screen:?}"
    );
    assert!(
        row_with(&screen, "q quit").contains("p pause"),
        "{screen:?}"
    );
    // The report as without the view: the start line, the first cycle's line, the table.
    assert!(after.contains("cycles until interrupted"), "{after:?}");
    assert!(after.contains(" 1  127.0.0.1 [open]"), "{after:?}");
    assert!(after.contains("LOSS%"), "{after:?}");
    assert!(after.contains("exit=0"), "{after:?}");
}

#[test]
fn ctrl_c_is_q() {
    if !have_script() {
        return;
    }
    let (_listener, cmd) = loopback_trace();
    let out = in_pty(&cmd, &[(1200, "\x03")]);
    let after = drawn_then_restored(&out, &["127.0.0.1", "[open]"], "in 1 hop");
    assert!(after.contains("exit=0"), "{after:?}");
}

#[test]
fn no_color_draws_without_colours() {
    if !have_script() {
        return;
    }
    let (_listener, cmd) = loopback_trace();
    let out = in_pty(&format!("NO_COLOR=1 {cmd}"), &[(1200, "q")]);
    drawn_then_restored(&out, &["127.0.0.1", "[open]", "reached"], "in 1 hop");
    let view = &out[out.find(ENTER).unwrap()..out.rfind(LEAVE).unwrap()];
    assert!(
        !view.contains("\x1b[38;5;"),
        "a colour under NO_COLOR: {view:?}"
    );
    // Without NO_COLOR the same view has colours (the test above is not vacuous).
    let (_listener, cmd) = loopback_trace();
    let out = in_pty(&cmd, &[(1200, "q")]);
    assert!(out.contains("\x1b[38;5;"), "{out:?}");
}

#[test]
fn sigterm_gives_the_terminal_back_and_the_report_follows() {
    if !have_script() {
        return;
    }
    let (_listener, cmd) = loopback_trace();
    // In the background its input is /dev/null; the view reads keys from /dev/tty.
    let inner = format!("{cmd} & pid=$!; sleep 1.5; kill -TERM $pid; wait $pid");
    let out = in_pty(&inner, &[]);
    let after = drawn_then_restored(&out, &["127.0.0.1", "[open]"], "in 1 hop");
    assert!(after.contains("exit=0"), "{after:?}");
}

#[test]
fn no_tui_and_one_cycle_print_lines_on_a_terminal() {
    if !have_script() {
        return;
    }
    let (_listener, cmd) = loopback_trace();
    let cmd = cmd.replace("--cycles 0", "--cycles 3 --no-tui");
    let out = in_pty(&cmd, &[]);
    assert!(!out.contains(ENTER), "{out:?}");
    assert!(out.contains(", 3 cycles,"), "{out:?}");
    assert!(out.contains("LOSS%"), "{out:?}");
    let (_listener, cmd) = loopback_trace();
    let out = in_pty(&cmd.replace("--cycles 0", "--cycles 1"), &[]);
    assert!(!out.contains(ENTER), "{out:?}");
    assert!(out.contains(" 1  127.0.0.1 [open]"), "{out:?}");
}

#[test]
fn many_targets_draw_the_board_and_q_gives_the_terminal_back_then_the_summaries() {
    if !have_script() {
        return;
    }
    let good = ServerProc::start(&["--loss", "0", "-q"]);
    let lossy = ServerProc::start(&["--loss", "0.5", "--seed", "7", "-q"]);
    let closed = closed_port();
    let cmd = format!("{BIN} {} {} {closed} -i 0.2", good.addr, lossy.addr);
    // Sort by name, filter on the closed port's number, quit.
    let port = closed.port().to_string();
    let keys = [
        (1500, "s"),
        (300, "/"),
        (200, &*port),
        (300, "\r"),
        (800, "q"),
    ];
    let out = in_pty(&cmd, &keys);
    let after = drawn_then_restored(
        &out,
        &[
            &good.addr.to_string(),
            &lossy.addr.to_string(),
            "reply",
            "refused",
        ],
        "tcpping-diag statistics ---",
    );
    let screen = last_screen(&out);
    assert!(
        screen[0].starts_with("3 targets, 1 shown, sorted name"),
        "{screen:?}"
    );
    assert!(
        screen[0].contains(&format!("filter: /{port}")),
        "{screen:?}"
    );
    let row = row_with(&screen, &closed.to_string());
    assert!(row.contains("refused") && row.contains("100.0%"), "{row}");
    assert!(
        !screen.iter().any(|r| r.contains(&good.addr.to_string())),
        "{screen:?}"
    );
    // The summaries and the table as without the board; no line per probe.
    for t in [good.addr, lossy.addr, closed] {
        assert!(
            after.contains(&format!("--- {t} tcpping-diag statistics ---")),
            "{after:?}"
        );
    }
    assert!(after.contains("WHAT WENT WRONG"), "{after:?}");
    assert!(!out.contains("seq="), "{out:?}");
    assert!(after.contains("exit=0"), "{after:?}");
}

#[test]
fn sighup_reads_the_file_again_under_the_board_and_messages_wait_for_the_normal_screen() {
    if !have_script() {
        return;
    }
    let good = ServerProc::start(&["--loss", "0", "-q"]);
    let closed = closed_port();
    let dir = std::env::temp_dir().join(format!("tcpping-diag-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("targets");
    std::fs::write(
        &file,
        format!("{good} tier=a\n{closed} tier=b\n", good = good.addr),
    )
    .unwrap();
    let f = file.display();
    // The closed port leaves the file; SIGHUP reads it again (not a stop under the board).
    let inner = format!(
        "{BIN} -f {f} -i 0.2 & pid=$!; sleep 1.2; echo '{good} tier=a' > {f}; kill -HUP $pid; \
         sleep 1; kill -TERM $pid; wait $pid",
        good = good.addr
    );
    let out = in_pty(&inner, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    let after = drawn_then_restored(&out, &["tier=a", "tier=b", "refused"], "WHAT WENT WRONG");
    let screen = last_screen(&out);
    assert!(screen[0].starts_with("1 targets, 1 shown"), "{screen:?}");
    // Said on stderr while the board was drawn: written after it, not over it.
    let said = format!("SIGHUP: read {f}: 1 targets, 0 started, 1 stopped");
    assert!(after.contains(&said), "{after:?}");
    assert_eq!(out.matches(&said).count(), 1, "{out:?}");
    // The removed target's summary is not lost; the table has the one left.
    for t in [good.addr, closed] {
        assert!(
            after.contains(&format!("--- {t} tcpping-diag statistics ---")),
            "{after:?}"
        );
    }
    assert!(after.contains("exit=0"), "{after:?}");
}

#[test]
fn many_targets_with_no_tui_print_lines_on_a_terminal() {
    if !have_script() {
        return;
    }
    let good = ServerProc::start(&["--loss", "0", "-q"]);
    let closed = closed_port();
    let out = in_pty(
        &format!("{BIN} {} {closed} -i 0.1 -n 3 --no-tui", good.addr),
        &[],
    );
    assert!(!out.contains(ENTER), "{out:?}");
    assert!(out.contains("seq=1"), "a line per probe: {out:?}");
    assert!(out.contains("WHAT WENT WRONG"), "{out:?}");
    assert!(out.contains("exit=0"), "{out:?}");
}

/// Network namespaces client -- router -- server (10.79.11.0/24, 10.79.12.0/24), removed on
/// drop.
struct Lab {
    prefix: String,
}

impl Lab {
    fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status().expect("run ip");
        assert!(st.success(), "ip {args:?}");
    }

    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    fn run(&self, n: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", &*self.ns(n)]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        all.extend(args.iter().map(|a| a.to_string()));
        let st = Command::new("ip")
            .args(&all)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{n}: {args:?}");
    }

    /// client 10.79.11.2 -- 10.79.11.1 router 10.79.12.1 -- 10.79.12.2 server
    fn up() -> Lab {
        let lab = Lab {
            prefix: format!("tpdl{}", std::process::id()),
        };
        for n in ["c", "r", "s"] {
            lab.ip(&["netns", "add", &lab.ns(n)]);
            lab.run(n, &["ip", "link", "set", "lo", "up"]);
            lab.run(n, &["sysctl", "-q", "-w", "net.ipv4.icmp_ratemask=0"]);
        }
        for (a, a_ns, b, b_ns) in [("c0", "c", "r0", "r"), ("r1", "r", "s0", "s")] {
            let (a_ns, b_ns) = (lab.ns(a_ns), lab.ns(b_ns));
            lab.ip(&[
                "link", "add", a, "netns", &a_ns, "type", "veth", "peer", "name", b, "netns", &b_ns,
            ]);
        }
        for (n, dev, addr) in [
            ("c", "c0", "10.79.11.2/24"),
            ("r", "r0", "10.79.11.1/24"),
            ("r", "r1", "10.79.12.1/24"),
            ("s", "s0", "10.79.12.2/24"),
        ] {
            lab.run(n, &["ip", "addr", "add", addr, "dev", dev]);
            lab.run(n, &["ip", "link", "set", dev, "up"]);
        }
        lab.run("r", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        lab.run("c", &["ip", "route", "add", "default", "via", "10.79.11.1"]);
        lab.run("s", &["ip", "route", "add", "default", "via", "10.79.12.1"]);
        // Beyond the server, which does not forward: silence after hop 1.
        lab.run("s", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
        lab.run(
            "r",
            &["ip", "route", "add", "10.79.13.0/24", "via", "10.79.12.2"],
        );
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in ["c", "r", "s"] {
            common::remove_netns(&self.ns(n));
        }
    }
}

#[test]
fn trace_through_a_router_draws_both_hops() {
    if !have_script() || !need_root("building network namespaces") {
        return;
    }
    let lab = Lab::up();
    // Port 5 is closed on the server: reached in 2 hops, the router first (SYN probes: root).
    let cmd = format!(
        "ip netns exec {} {BIN} trace 10.79.12.2:5 --cycles 0 -i 0.3 -m 4",
        lab.ns("c")
    );
    let out = in_pty(&cmd, &[(2000, "q")]);
    let after = drawn_then_restored(
        &out,
        &["10.79.11.1", "10.79.12.2", "[closed]", "reached"],
        "reached 10.79.12.2:5 (closed) in 2 hops",
    );
    let screen = last_screen(&out);
    assert!(
        row_with(&screen, "10.79.11.1")
            .trim_start()
            .starts_with("1 "),
        "{screen:?}"
    );
    let target = row_with(&screen, "10.79.12.2 [closed]");
    assert!(target.trim_start().starts_with("2 "), "{screen:?}");
    assert!(target.contains("0.0%"), "{target}");
    assert!(after.contains("SYN probes"), "{after:?}");
    assert!(after.contains(" 2  10.79.12.2 [closed]"), "{after:?}");
    assert!(after.contains("exit=0"), "{after:?}");

    // Silent after hop 1, probes waiting 5 s: `q` in the first cycle ends it at once.
    let cmd = format!(
        "ip netns exec {} {BIN} trace 10.79.13.1:80 --cycles 0 -W 5 -m 4",
        lab.ns("c")
    );
    let started = std::time::Instant::now();
    let out = in_pty(&cmd, &[(1500, "q")]);
    let took = started.elapsed();
    let after = drawn_then_restored(
        &out,
        &["10.79.11.1"],
        "interrupted before the first round ended",
    );
    assert!(
        took < Duration::from_millis(4000),
        "q waited on the probes: {took:?}"
    );
    assert!(after.contains("exit=1"), "{after:?}");
}
