//! Small system helpers shared by the client, the server and the ICMP listener.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// An io::Error in words, without Rust's "(os error N)" suffix: "No route to host".
pub fn describe_io(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Readiness of one descriptor after `poll`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ready {
    pub read: bool,
    pub write: bool,
    pub error: bool,
}

/// Wait until one of `fds` is ready (`(fd, want_write)`) or `timeout` passes.
/// Returns one `Ready` per descriptor; EINTR is reported as nothing ready.
pub fn poll(fds: &[(RawFd, bool)], timeout: Option<Duration>) -> io::Result<Vec<Ready>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, write)| libc::pollfd {
            fd,
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        // Round up so that a wait never ends before its deadline.
        Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: pfds is a valid array of pollfd of the given length.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![Ready::default(); fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds
        .iter()
        .map(|p| Ready {
            read: p.revents & (libc::POLLIN | libc::POLLHUP) != 0,
            write: p.revents & libc::POLLOUT != 0,
            error: p.revents & (libc::POLLERR | libc::POLLNVAL) != 0,
        })
        .collect())
}

/// Time left until `deadline` (zero when passed).
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A wake-up channel: signal handlers and the ICMP listener write a byte, a waiting
/// `poll` sees the read end become readable.
pub struct Waker {
    rx: UnixStream,
    tx: UnixStream,
}

impl Waker {
    pub fn new() -> io::Result<Self> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Waker { rx, tx })
    }
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
    /// A writer for another thread or a signal handler.
    pub fn sender(&self) -> io::Result<UnixStream> {
        self.tx.try_clone()
    }
    pub fn wake(&self) {
        wake(&self.tx);
    }
    /// Empty the channel after a wake-up.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Write one byte to a waker's sender; a full channel is already awake.
pub fn wake(tx: &UnixStream) {
    let _ = (&*tx).write(&[1]);
}

/// The local address the kernel would use to reach `target`: a UDP socket "connects"
/// (no packet is sent) and reports its chosen source address.
pub fn source_address_for(target: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any)?;
    s.connect(target)?;
    Ok(s.local_addr()?.ip())
}

/// Enable IP_RECVERR / IPV6_RECVERR: ICMP errors about this socket are queued on its
/// error queue with the offender's address, type and code.
pub fn set_recverr(fd: RawFd, v6: bool) -> io::Result<()> {
    let (level, opt) = if v6 {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::SOL_IP, libc::IP_RECVERR)
    };
    setsockopt_int(fd, level, opt, 1)
}

pub fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: val lives for the call; the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// recvmsg() into `data`, calling `on_cmsg(level, type, bytes)` for every control message.
pub fn recvmsg_cmsgs(
    fd: RawFd,
    data: &mut [u8],
    flags: libc::c_int,
    on_cmsg: impl FnMut(libc::c_int, libc::c_int, &[u8]),
) -> io::Result<usize> {
    recvmsg_named(fd, data, std::ptr::null_mut(), 0, flags, on_cmsg)
}

/// recvmsg() as `recvmsg_cmsgs`, also filling the sender's address into `name`
/// (`name_len` bytes; null for none).
pub fn recvmsg_named(
    fd: RawFd,
    data: &mut [u8],
    name: *mut libc::c_void,
    name_len: usize,
    flags: libc::c_int,
    mut on_cmsg: impl FnMut(libc::c_int, libc::c_int, &[u8]),
) -> io::Result<usize> {
    // u64 array: aligned for cmsghdr.
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: zeroed msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name;
    msg.msg_namelen = name_len as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg is fully initialised; name (when not null) has name_len writable bytes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let start = libc::CMSG_DATA(cmsg);
            let len = (c.cmsg_len as usize).saturating_sub(start as usize - cmsg as usize);
            on_cmsg(
                c.cmsg_level,
                c.cmsg_type,
                std::slice::from_raw_parts(start, len),
            );
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}

/// Microseconds since the Unix epoch as `secs.micros`, the timestamp in a ping request.
pub fn wall_timestamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// This host's name, for the record of a run.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Show an address as the original Python server did: ('127.0.0.1', 34567).
pub fn python_addr(a: &SocketAddr) -> String {
    format!("('{}', {})", a.ip(), a.port())
}

/// Make bytes from the network printable on one line.
pub fn escape_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

/// Raise the soft open-file limit to the hard one (a descriptor per client of the server, per
/// connect() probe in flight of trace and the many-targets mode); returns the limit in force.
pub fn raise_open_files() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to fill and then pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let got = raise_open_files().expect("getrlimit");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: lim is a valid rlimit to fill.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(got, lim.rlim_cur);
    }

    use super::*;

    #[test]
    fn io_errors_in_words() {
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(describe_io(&e), "No route to host");
    }

    #[test]
    fn waker_wakes_poll() {
        let w = Waker::new().unwrap();
        let r = poll(&[(w.fd(), false)], Some(Duration::from_millis(1))).unwrap();
        assert!(!r[0].read);
        w.wake();
        let r = poll(&[(w.fd(), false)], Some(Duration::from_secs(1))).unwrap();
        assert!(r[0].read);
        w.drain();
        let r = poll(&[(w.fd(), false)], Some(Duration::ZERO)).unwrap();
        assert!(!r[0].read);
    }

    #[test]
    fn escapes_binary() {
        assert_eq!(escape_bytes(b"a\n\x00\xff"), "a\\n\\0\u{fffd}");
    }
}
