//! Build script: the version string `--version` prints, with the git commit it was built from.
//!
//! `TCPPING_DIAG_VERSION` is `0.1.0 (commit 4acd6d8)`, `0.1.0 (commit 4acd6d8-dirty)` when
//! tracked files differ from that commit, or `0.1.0 (commit unknown)` when the source is not a
//! git checkout of this crate (a tarball, `cargo install` from the registry, a Docker build
//! context without .git) or git is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = commit(&dir).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TCPPING_DIAG_VERSION={version} (commit {commit})");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Run git in `dir`; its trimmed stdout, or None when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("--no-optional-locks") // never rewrite the index from a build
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Short commit hash of HEAD, with `-dirty` when tracked files have changes. None when `dir`
/// is not the top of a git work tree (a tarball unpacked inside some other repository must
/// not take that repository's commit).
fn commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(&top), dir) {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short", "HEAD"])?;

    // Rebuild when the commit changes: HEAD moves (checkout), the branch it names gets a new
    // commit, or refs are packed. Not the index: `git status` rewrites it (refreshed stat
    // data) without changing anything a build shows, and used to cost a rebuild each time.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".into()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch); // refs/heads/NAME: new commits on the branch
    }
    for name in watch {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", &name]) {
            let p = dir.join(p); // relative to dir, or absolute (worktrees)
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    // ... and when a tracked file changes, for the -dirty mark: every tracked file, one by one,
    // so that files nobody tracks (target/, bench output, __pycache__) never trigger a rebuild.
    if let Some(files) = git(dir, &["ls-files", "-z"]) {
        for file in files
            .split('\0')
            .filter(|f| !f.is_empty() && dir.join(f).exists())
        {
            println!("cargo:rerun-if-changed={file}");
        }
    }

    let dirty =
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}
