//! Waiting on descriptors: `poll` with a timeout that never ends early, and the [`Waker`]
//! that signal handlers and other threads use to end a wait.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
