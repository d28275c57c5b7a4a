//! Stderr while a live view has the screen: what the program says there meanwhile (a name
//! that does not resolve, a targets file read again) would land on the view's cells and stay
//! there, so it is held ([`StderrHeld`]: fd 2 goes to a pipe a thread reads, up to
//! [`KEPT`] bytes) and written on the normal screen once the view is gone. [`put_back`]
//! gives fd 2 back at once, for the panic hook (the panic message goes to the real stderr).

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

/// Bytes kept; more are counted and said to be left out.
pub const KEPT: usize = 64 * 1024;

/// The real stderr while it is held (-1: not held).
static SAVED: AtomicI32 = AtomicI32::new(-1);

/// Stderr held while this lives; dropping it gives fd 2 back and writes what was held.
pub struct StderrHeld {
    reader: Option<JoinHandle<(Vec<u8>, u64)>>,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl StderrHeld {
    /// Send fd 2 to a pipe until [`StderrHeld::release`] (or drop, or [`put_back`]).
    pub fn hold() -> io::Result<StderrHeld> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: pipe2 just opened both; each is owned once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl and dup2 on descriptors open in this process.
        let saved = check(unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) })?;
        if let Err(e) = check(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&write), 2) }) {
            // SAFETY: saved was just duplicated and is ours.
            unsafe { libc::close(saved) };
            return Err(e);
        }
        drop(write); // fd 2 is now the pipe's only writer
        SAVED.store(saved, Ordering::SeqCst);
        let reader = std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(read);
            let (mut kept, mut left_out) = (Vec::new(), 0u64);
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = KEPT.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                left_out += (n - room) as u64;
            }
            (kept, left_out)
        });
        Ok(StderrHeld {
            reader: Some(reader),
        })
    }

    /// Give fd 2 back and write what was held to it.
    pub fn release(mut self) -> io::Result<()> {
        self.write_held()
    }

    fn write_held(&mut self) -> io::Result<()> {
        put_back();
        let Some(reader) = self.reader.take() else {
            return Ok(());
        };
        // The pipe's writer is closed: the reader ends at once.
        let (kept, left_out) = reader.join().unwrap_or_default();
        let mut err = io::stderr().lock();
        err.write_all(&kept)?;
        if left_out > 0 {
            writeln!(
                err,
                "tcpping-diag: {left_out} more bytes of messages were left out while the live view ran"
            )?;
        }
        err.flush()
    }
}

impl Drop for StderrHeld {
    fn drop(&mut self) {
        let _ = self.write_held();
    }
}

/// Give fd 2 back now if it is held (idempotent; what was held is written by its
/// [`StderrHeld`]).
pub fn put_back() {
    let saved = SAVED.swap(-1, Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: saved is the real stderr duplicated by `hold`, owned here once.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
}
