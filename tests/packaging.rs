//! What packaging relies on, through the real binary: `--version` names the commit, and
//! `generate` writes a man page per command and the completion scripts.

mod common;

use std::path::PathBuf;
use std::process::Command;

use clap::CommandFactory;
use common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run tcpping-diag");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tpd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn version_names_the_commit_long_and_short_flag() {
    let (code, long, _) = run(&["--version"]);
    assert_eq!(code, 0);
    let (code, short, _) = run(&["-V"]);
    assert_eq!(code, 0);
    assert_eq!(long, short);
    let want_prefix = format!("tcpping-diag {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = long
        .trim_end()
        .strip_prefix(&want_prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version printed {long:?}"));
    // Built from this checkout: the commit is HEAD's (the build script reruns when HEAD
    // moves). Outside a git checkout it must say "unknown".
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert!(
            commit == head || commit == format!("{head}-dirty"),
            "--version says commit {commit:?}, HEAD is {head}"
        ),
        None => assert_eq!(commit, "unknown"),
    }
}

#[test]
fn generate_man_writes_a_page_per_command() {
    let dir = TempDir::new("man");
    let (code, out, err) = run(&["generate", "man", dir.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut want = vec!["tcpping-diag.1".to_string()];
    for sub in tcpping_diag::cli::Cli::command().get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            want.push(format!("tcpping-diag-{}.1", sub.get_name()));
        }
    }
    let mut got: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // It prints what it wrote, one path per line.
    assert_eq!(out.lines().count(), want.len(), "{out}");
    for name in &want {
        let text = std::fs::read_to_string(dir.0.join(name)).unwrap();
        assert!(text.contains(".SH EXAMPLES"), "{name}");
        assert!(text.contains(".SH OPTIONS"), "{name}");
    }
}

#[test]
fn generate_completions_writes_three_scripts() {
    let dir = TempDir::new("completions");
    let (code, _, err) = run(&["generate", "completions", dir.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for name in ["tcpping-diag.bash", "_tcpping-diag", "tcpping-diag.fish"] {
        let text = std::fs::read_to_string(dir.0.join(name)).unwrap();
        assert!(
            text.contains("persistent") && text.contains("serve"),
            "{name}"
        );
    }
}

#[test]
fn generate_into_an_unwritable_place_is_one_line_and_exit_2() {
    let dir = TempDir::new("gen-file");
    std::fs::write(&dir.0, b"a file, not a directory").unwrap();
    let (code, _, err) = run(&["generate", "man", dir.0.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("create directory"), "{err}");
    let _ = std::fs::remove_file(&dir.0);
    let (code, _, err) = run(&["generate", "manpages", "/tmp"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value"), "{err}");
}
