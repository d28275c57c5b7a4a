//! Kernel-side timing, closer to the wire than user space can be:
//! - the handshake: TCP_INFO's `tcpi_rtt` right after connect is the kernel's own
//!   SYN → SYN-ACK measurement, in microseconds;
//! - the echo: SO_TIMESTAMPING software timestamps, taken when the request is handed to
//!   the device (transmit) and when the reply enters the stack (receive).
//!
//! Each is used only when the kernel provides it; the user-space times are always kept too.

use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::RawFd;
use std::time::Duration;

/// SO_TIMESTAMPING (the "old" 32-bit-time variant, same value on every Linux architecture
/// whose `time_t` is 64 bits) and its control message type.
pub const SO_TIMESTAMPING: libc::c_int = 37;
pub const SCM_TIMESTAMPING: libc::c_int = SO_TIMESTAMPING;

const SOF_TIMESTAMPING_TX_SOFTWARE: u32 = 1 << 1;
const SOF_TIMESTAMPING_RX_SOFTWARE: u32 = 1 << 3;
const SOF_TIMESTAMPING_SOFTWARE: u32 = 1 << 4;
const SOF_TIMESTAMPING_OPT_TSONLY: u32 = 1 << 11;

/// Ask for software transmit and receive timestamps on a socket. (Not OPT_ID: a TCP socket
/// refuses it before it is connected, and one request per ping needs no ids.)
pub fn enable_timestamping(fd: RawFd) -> io::Result<()> {
    let flags = SOF_TIMESTAMPING_TX_SOFTWARE
        | SOF_TIMESTAMPING_RX_SOFTWARE
        | SOF_TIMESTAMPING_SOFTWARE
        | SOF_TIMESTAMPING_OPT_TSONLY;
    crate::net::setsockopt_int(fd, libc::SOL_SOCKET, SO_TIMESTAMPING, flags as libc::c_int)
}

/// A socket that only keeps receive timestamping switched on for the whole run.
///
/// The kernel turns software timestamping on for the whole host (a static key, patched into
/// its code) when the first socket asks for it, and off when the last one closes. A ping per
/// connection would flip it twice per ping, which costs more than the ping itself; holding
/// one socket open keeps it on.
pub fn hold_timestamping_on() -> Option<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).ok()?;
    let flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    use std::os::fd::AsRawFd;
    crate::net::setsockopt_int(
        s.as_raw_fd(),
        libc::SOL_SOCKET,
        SO_TIMESTAMPING,
        flags as libc::c_int,
    )
    .ok()?;
    Some(s)
}

/// The first non-zero timestamp of a `struct scm_timestamping { timespec ts[3]; }`
/// (software timestamps are in ts[0]), as time since the Unix epoch.
pub fn parse_scm_timestamping(data: &[u8]) -> Option<Duration> {
    let ts_len = mem::size_of::<libc::timespec>();
    data.chunks_exact(ts_len).take(3).find_map(|c| {
        let secs = i64::from_ne_bytes(c[0..8].try_into().ok()?);
        let nanos = i64::from_ne_bytes(c[8..16].try_into().ok()?);
        (secs > 0 && (0..1_000_000_000).contains(&nanos))
            .then(|| Duration::new(secs as u64, nanos as u32))
    })
}

/// The kernel's handshake round trip from TCP_INFO, when it measured one cleanly
/// (a sample exists and no SYN was retransmitted).
pub fn handshake_rtt(fd: RawFd) -> Option<Duration> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info is a writable tcp_info of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: zero-initialised and (partly) filled by the kernel: every bit pattern is valid.
    let info = unsafe { info.assume_init() };
    (info.tcpi_rtt > 0 && info.tcpi_total_retrans == 0 && info.tcpi_retransmits == 0)
        .then(|| Duration::from_micros(u64::from(info.tcpi_rtt)))
}

/// recv() that also returns the receive software timestamp of the data, when there is one.
pub fn recv_with_timestamp(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut stamp = None;
    let n = crate::net::recvmsg_cmsgs(fd, buf, libc::MSG_DONTWAIT, |level, kind, bytes| {
        if level == libc::SOL_SOCKET && kind == SCM_TIMESTAMPING {
            stamp = parse_scm_timestamping(bytes);
        }
    })?;
    Ok((n, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64, nanos: i64) -> Vec<u8> {
        let mut v = secs.to_ne_bytes().to_vec();
        v.extend_from_slice(&nanos.to_ne_bytes());
        v
    }

    #[test]
    fn first_nonzero_timestamp() {
        let mut d = ts(1_700_000_000, 5);
        d.extend(ts(0, 0));
        d.extend(ts(0, 0));
        assert_eq!(
            parse_scm_timestamping(&d),
            Some(Duration::new(1_700_000_000, 5))
        );
        let mut d = ts(0, 0);
        d.extend(ts(0, 0));
        d.extend(ts(7, 1));
        assert_eq!(parse_scm_timestamping(&d), Some(Duration::new(7, 1)));
        assert_eq!(parse_scm_timestamping(&[0; 48]), None);
        assert_eq!(parse_scm_timestamping(&[1, 2, 3]), None);
        // Nonsense nanoseconds are refused, not wrapped.
        assert_eq!(parse_scm_timestamping(&ts(1, 2_000_000_000)), None);
    }
}
