//! Privileges: raw sockets need root or CAP_NET_RAW; once they are open, drop everything.
//! Every line said about a missing privilege is here (`NO_RAW_*`); what needs privilege is
//! opened in one place, `probe::open`.
//!
//! Linux keeps capabilities per thread: dropping them in the calling thread leaves any
//! thread started earlier (an HTTP library's accept thread, say) with the full set.
//! [`drop_all`] drops them in every thread of the process, checks each one in
//! `/proc/self/task`, and fails with one line naming a thread that kept any.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// Every line said about a missing privilege, in one place. Each names the one-time fix.

/// The one-time fix for a missing CAP_NET_RAW, as every hint words it.
macro_rules! setcap {
    () => {
        "sudo setcap cap_net_raw+ep \"$(command -v tcpping-diag)\""
    };
}

/// The one line printed when raw sockets cannot be opened.
pub const NO_RAW_NOTICE: &str = concat!(
    "tcpping-diag: ICMP capture off: raw sockets need root or CAP_NET_RAW \
(run with sudo, or once: ",
    setcap!(),
    "); errors during the handshake are still reported from the kernel's error queue"
);

/// The one line when `--syn` cannot open its raw sockets (exit status 2, nothing sent).
pub const NO_RAW_SYN: &str = concat!(
    "--syn needs CAP_NET_RAW to send hand-built SYNs and read the answers: \
run it as root (sudo), or once: ",
    setcap!()
);

/// The one line when trace falls back to connect() probes.
pub const NO_RAW_TRACE: &str = concat!(
    "tcpping-diag: trace: no CAP_NET_RAW, so connect() probes with a TTL and the socket \
error queue instead of SYNs (constant flows, each flow's probes one at a time, a flow given up \
after 3 silent hops; no ICMP extensions); for SYN probes run with sudo, or once: ",
    setcap!()
);

/// The one line when `trace --probe syn` cannot have its raw sockets.
pub const NO_RAW_SYN_TRACE: &str = concat!(
    "trace --probe syn needs CAP_NET_RAW to send hand-built SYNs and read the answers: \
run it as root (sudo), or once: ",
    setcap!(),
    "; or use --probe connect"
);

/// Rounds of asking the other threads before giving up.
const ROUNDS: usize = 3;
/// _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Whether the threads signalled also empty their bounding set.
static BOUNDING: AtomicBool = AtomicBool::new(false);
/// Threads that ran the handler, and those among them whose drop failed.
static HANDLED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Drop every capability of the calling thread: the bounding set (with `bounding`), no new
/// privileges on exec, the ambient set, then effective, permitted and inheritable. Only
/// raw system calls: it runs in a signal handler too. False when capset failed.
fn drop_this_thread(bounding: bool) -> bool {
    // SAFETY: prctl and capset with valid arguments; nothing else is touched.
    unsafe {
        if bounding {
            // Capabilities past the kernel's last one fail with EINVAL: harmless.
            for cap in 0..64 {
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            }
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0);
        // Older kernels have no ambient set (EINVAL): nothing to clear there.
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut header = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) == 0
    }
}

extern "C" fn on_drop_signal(_: libc::c_int) {
    // SAFETY: errno is thread-local; saved and restored around the system calls.
    let errno = unsafe { *libc::__errno_location() };
    if drop_this_thread(BOUNDING.load(Ordering::SeqCst)) {
        HANDLED.fetch_add(1, Ordering::SeqCst);
    } else {
        FAILED.fetch_add(1, Ordering::SeqCst);
        HANDLED.fetch_add(1, Ordering::SeqCst);
    }
    unsafe { *libc::__errno_location() = errno };
}

/// The signal that asks another thread to drop its capabilities (glibc keeps the first two
/// real-time signals for itself; `SIGRTMIN()` is past them).
fn drop_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// One thread's capability sets, as `/proc/self/task/TID/status` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCaps {
    pub tid: i32,
    pub name: String,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub bounding: u64,
    /// `no_new_privs` is set.
    pub no_new_privs: bool,
}

impl ThreadCaps {
    /// Nothing held, nothing to gain by exec (and, with `bounding`, an empty bounding set).
    fn empty(&self, bounding: bool) -> bool {
        self.no_new_privs
            && self.effective == 0
            && self.permitted == 0
            && self.inheritable == 0
            && self.ambient == 0
            && (!bounding || self.bounding == 0)
    }
}

/// Read a thread's capability sets from the text of its `status` file.
pub fn parse_status(tid: i32, text: &str) -> ThreadCaps {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .unwrap_or("")
        .trim()
        .to_string();
    ThreadCaps {
        tid,
        name,
        effective: field("CapEff:"),
        permitted: field("CapPrm:"),
        inheritable: field("CapInh:"),
        ambient: field("CapAmb:"),
        bounding: field("CapBnd:"),
        // Kernels before 4.10 do not show it: nothing to check there.
        no_new_privs: text
            .lines()
            .find_map(|l| l.strip_prefix("NoNewPrivs:"))
            .is_none_or(|v| v.trim() == "1"),
    }
}

/// Every thread of this process and its capabilities (threads that ended while being read
/// are left out).
pub fn threads() -> std::io::Result<Vec<ThreadCaps>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(entry.path().join("status")) {
            all.push(parse_status(tid, &text));
        }
    }
    Ok(all)
}

/// Drop every capability of every thread of the process, as iputils ping does once its raw
/// socket is open (there, in its only thread): the pinging itself runs with none. Threads
/// other than the caller are asked by a signal, whose handler drops their own; then each
/// thread's sets are read back. With CAP_SETPCAP (root) the bounding set is emptied too,
/// and no thread can gain privileges by exec (`no_new_privs`).
///
/// Err: the one line naming a thread that still holds capabilities, or what failed.
pub fn drop_all() -> Result<(), String> {
    let bounding = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .unwrap_or(false);
    BOUNDING.store(bounding, Ordering::SeqCst);
    // SAFETY: gettid and getpid have no preconditions.
    let me = unsafe { libc::gettid() };
    let pid = unsafe { libc::getpid() };
    if let Err(e) = std::fs::read_dir("/proc/self/task") {
        if e.kind() == std::io::ErrorKind::NotFound {
            // No /proc (a bare chroot): the threads cannot be listed. The callers start
            // theirs after this drop, so this thread's is what counts.
            return if drop_this_thread(bounding) {
                Ok(())
            } else {
                Err(format!(
                    "capset: {}",
                    crate::net::describe_io(&std::io::Error::last_os_error())
                ))
            };
        }
    }
    let mut installed = false;
    // A thread may start another while being asked: a few rounds until every one is empty.
    for round in 0..ROUNDS {
        let others: Vec<ThreadCaps> = threads()
            .map_err(|e| format!("list the threads in /proc/self/task: {e}"))?
            .into_iter()
            .filter(|t| t.tid != me && !t.empty(bounding))
            .collect();
        if !others.is_empty() {
            if !installed {
                install_handler()?;
                installed = true;
            }
            let before = HANDLED.load(Ordering::SeqCst);
            let mut asked = 0;
            for t in &others {
                // SAFETY: tgkill with our own pid; a thread that ended meanwhile gives ESRCH.
                if unsafe { libc::tgkill(pid, t.tid, drop_signal()) } == 0 {
                    asked += 1;
                }
            }
            let end = Instant::now() + Duration::from_secs(1);
            while HANDLED.load(Ordering::SeqCst) < before + asked && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if !drop_this_thread(bounding) {
            return Err(format!(
                "capset: {}",
                crate::net::describe_io(&std::io::Error::last_os_error())
            ));
        }
        let left: Vec<ThreadCaps> = threads()
            .map_err(|e| format!("list the threads in /proc/self/task: {e}"))?
            .into_iter()
            .filter(|t| !t.empty(bounding))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if round + 1 == ROUNDS {
            let t = &left[0];
            return Err(format!(
                "thread {} ('{}') still holds capabilities (CapEff {:016x}, CapPrm {:016x}, CapAmb {:016x}, CapBnd {:016x}, NoNewPrivs {})",
                t.tid, t.name, t.effective, t.permitted, t.ambient, t.bounding, u8::from(t.no_new_privs)
            ));
        }
    }
    Ok(())
}

/// Install the handler of the drop signal (it stays: a late signal finds it, not the
/// default action, which would end the process).
fn install_handler() -> Result<(), String> {
    // SAFETY: a zeroed sigaction with a handler that only makes raw system calls.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_drop_signal as *const () as usize;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(drop_signal(), &act, std::ptr::null_mut()) != 0 {
            return Err(format!(
                "install the handler that drops capabilities in every thread: {}",
                crate::net::describe_io(&std::io::Error::last_os_error())
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_file_gives_every_set() {
        let text = "Name:\tmetrics\nState:\tS (sleeping)\nCapInh:\t0000000000000000\n\
                    CapPrm:\t0000000000002000\nCapEff:\t0000000000002000\n\
                    CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n";
        let t = parse_status(7, text);
        assert_eq!(t.name, "metrics");
        assert_eq!(t.effective, 0x2000);
        assert_eq!(t.permitted, 0x2000);
        assert_eq!(t.bounding, 0x1ff_ffff_ffff);
        assert!(!t.empty(false));
        let none = parse_status(8, "CapPrm:\t0\nCapEff:\t0\nCapBnd:\t1\nNoNewPrivs:\t1\n");
        assert!(none.no_new_privs);
        assert!(none.empty(false));
        assert!(!none.empty(true));
        let gains = parse_status(9, "CapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nNoNewPrivs:\t0\n");
        assert!(!gains.empty(true));
    }

    #[test]
    fn this_process_lists_its_own_threads() {
        let me = unsafe { libc::gettid() };
        let all = threads().unwrap();
        assert!(all.iter().any(|t| t.tid == me), "{all:?}");
    }
}
