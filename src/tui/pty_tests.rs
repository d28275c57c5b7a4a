//! The live views on a real terminal: this test binary runs itself under `script` (util-linux)
//! in a pseudo-terminal, as a child that draws a view, and the parent reads what reached the
//! terminal: the alternate screen entered, a key honoured, and the terminal put back (normal
//! screen, cursor shown, raw mode off) on `q` and on a panic. Skipped when `script` is missing.

use std::process::Command;
use std::time::Duration;

use super::live::Live;
use super::theme::{Palette, Tone};
use super::trace::{HopRow, TraceView, VerdictLine};
use super::Action;

const CHILD: &str = "TCPPING_DIAG_TUI_CHILD";
const ENTER: &str = "\x1b[?1049h";
const LEAVE: &str = "\x1b[?1049l";
const SHOW_CURSOR: &str = "\x1b[?25h";

/// Run the test `name` of this binary as the child `mode`, in a pseudo-terminal fed `keys` (a
/// shell snippet printing them, with pauses); then `stty -a` in the same terminal. None when
/// `script` is not installed (outside CI only: under CI that fails).
fn run_in_pty(name: &str, mode: &str, keys: &str) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "script (util-linux) is not installed, and CI is set: the pseudo-terminal tests cannot run"
        );
        eprintln!("script (util-linux) is not installed: skipped (CI is unset)");
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    let inner = format!(
        "stty rows 24 cols 80; {CHILD}={mode} {} --exact tui::pty_tests::{name} --nocapture --test-threads 1; stty -a",
        exe.display()
    );
    let outer = format!("({keys}; sleep 3) | script -qec '{inner}' /dev/null");
    let out = Command::new("sh")
        .args(["-c", &outer])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn view() -> TraceView {
    let mut v = TraceView::new("trace 192.0.2.7:443", Palette::new(true));
    let hop = HopRow {
        hop: 1,
        sent: 3,
        received: 3,
        avg: Some(1.5),
        ..HopRow::default()
    };
    let verdict = VerdictLine {
        text: "reached at hop 1".to_string(),
        tone: Tone::Good,
    };
    v.update(3, vec![hop], verdict);
    v
}

/// The child of the tests below, run by them in a pseudo-terminal with TCPPING_DIAG_TUI_CHILD
/// set: draws the trace view until `q` (printing a report after), or panics. In the test
/// run itself (the variable unset) it returns at once: the tests below are its assertions.
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let mut live = Live::start().unwrap();
    let mut v = view();
    if mode == "panic" {
        live.step(&mut v, Duration::from_millis(300)).unwrap();
        panic!("boom in the live view");
    }
    for _ in 0..100 {
        if live.step(&mut v, Duration::from_millis(100)).unwrap() == Action::Quit {
            break;
        }
    }
    live.finish().unwrap();
    println!("final report: reached at hop 1");
}

/// What `stty -a` said after the child: raw mode is off again.
fn cooked(out: &str) -> bool {
    let stty = &out[out.rfind("speed").unwrap_or(0)..];
    stty.contains(" icanon") && stty.contains(" echo") && !stty.contains("-icanon")
}

#[test]
fn q_leaves_the_terminal_as_it_was_and_the_report_follows() {
    let Some(out) = run_in_pty("child", "keys", "sleep 1; printf p; sleep 0.5; printf q") else {
        return;
    };
    let enter = out.find(ENTER).expect("entered the alternate screen");
    let paused = out.find("[paused]").expect("p paused the view");
    let leave = out.rfind(LEAVE).expect("left the alternate screen");
    let report = out.find("final report").expect("the report after the view");
    assert!(
        enter < paused && paused < leave && leave < report,
        "{out:?}"
    );
    assert!(out[leave..].contains(SHOW_CURSOR), "{out:?}");
    assert!(cooked(&out), "raw mode is off: {out:?}");
}

#[test]
fn a_panic_restores_the_terminal_before_its_message() {
    let Some(out) = run_in_pty("child", "panic", "sleep 0") else {
        return;
    };
    let enter = out.find(ENTER).expect("entered the alternate screen");
    let leave = out.rfind(LEAVE).expect("left the alternate screen");
    let message = out
        .find("boom in the live view")
        .expect("the panic message");
    assert!(enter < leave && leave < message, "{out:?}");
    assert!(out[leave..].contains(SHOW_CURSOR), "{out:?}");
    assert!(cooked(&out), "raw mode is off: {out:?}");
}
