//! Slow DNS (issue 19): twenty names whose lookups time out, listed first, do not keep a
//! name from /etc/hosts from being probed. In a network namespace of the test's own whose
//! name server (set by `ip netns exec` from /etc/netns/NAME/resolv.conf) is an address
//! whose packets go nowhere. Root-only: runs in CI (as root); skips without root unless CI
//! is set.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// The namespace and its resolv.conf; removed on drop.
struct Lab {
    ns: String,
    etc: std::path::PathBuf,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?} failed");
}

impl Lab {
    fn new() -> Lab {
        let ns = format!("tpd-dns-{}", std::process::id());
        let etc = std::path::Path::new("/etc/netns").join(&ns);
        let lab = Lab { ns, etc };
        let ns = lab.ns.as_str();
        ip(&["netns", "add", ns]);
        std::fs::create_dir_all(&lab.etc).unwrap();
        // One try of 2 s per query to a server that never answers.
        std::fs::write(
            lab.etc.join("resolv.conf"),
            "nameserver 10.99.0.2\noptions timeout:2 attempts:1\n",
        )
        .unwrap();
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&["-n", ns, "addr", "add", "10.99.0.1/24", "dev", "v0"]);
        ip(&["-n", ns, "link", "set", "v0", "up"]);
        ip(&["-n", ns, "link", "set", "v1", "up"]);
        // Frames to the name server go to v1, which is not theirs: dropped without a word.
        ip(&[
            "-n",
            ns,
            "neigh",
            "add",
            "10.99.0.2",
            "lladdr",
            "02:00:00:00:00:02",
            "dev",
            "v0",
            "nud",
            "permanent",
        ]);
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.etc);
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

#[test]
fn twenty_names_that_time_out_do_not_hold_up_a_name_from_etc_hosts() {
    if !need_root("slow DNS in a network namespace") {
        return;
    }
    let lab = Lab::new();
    let mut args: Vec<String> = (0..20).map(|i| format!("slow{i}.example:80")).collect();
    // Nothing listens on port 1 in the namespace: refused at once.
    args.extend(["localhost:1", "-i", "0.5", "--json"].map(String::from));
    let t = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.ns, BIN])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if l.contains("\"type\":\"ping\"") && l.contains("\"target\":\"localhost:1\"") {
                let _ = tx.send(Instant::now());
                return;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(15));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let first = first.unwrap_or_else(|_| panic!("localhost:1 never probed: {err}"));
    let took = first - t;
    assert!(
        took <= Duration::from_millis(1200),
        "the good name's first probe came after {took:?}: {err}"
    );
}
