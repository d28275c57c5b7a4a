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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The clock of the kernel's software timestamps (CLOCK_REALTIME), as time since the Unix
/// epoch.
pub fn realtime_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A kernel receive timestamp, kept only when it is the packet's own: earlier than
/// `read_at`, the clock (`realtime_now`) read just before the `recvmsg` that returned it.
///
/// Linux stamps arriving packets only while software receive timestamping is switched on
/// for the whole host (the static key `netstamp_needed_key`), and the first socket that asks
/// switches it on from deferred work (`net_enable_timestamp`: `schedule_work`). A packet
/// that passed before carries no stamp, and for a socket with SO_TIMESTAMP(NS) the kernel
/// fills in the time of the read itself (`__sock_recv_timestamp`: "Race occurred between
/// timestamp enabling and packet receiving. Fill in the current time for now."). Such a
/// stamp is not earlier than the read.
pub fn stamp_before_read(stamp: Option<Duration>, read_at: Duration) -> Option<Duration> {
    stamp.filter(|&s| s < read_at)
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

/// recv() that also returns the receive software timestamp of the data, when it has one
/// of its own (see `stamp_before_read`).
pub fn recv_with_timestamp(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut stamp = None;
    let read_at = realtime_now();
    let n = crate::net::recvmsg_cmsgs(fd, buf, libc::MSG_DONTWAIT, |level, kind, bytes| {
        if level == libc::SOL_SOCKET && kind == SCM_TIMESTAMPING {
            stamp = parse_scm_timestamping(bytes);
        }
    })?;
    Ok((n, stamp_before_read(stamp, read_at)))
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

    #[test]
    fn a_stamp_filled_in_at_the_read_is_not_the_packets() {
        // Times from traced fresh clients (ns since the epoch, a veth path between two
        // namespaces). One whose packets passed before the host's timestamping was on:
        // the SYN-ACK's copy on the packet socket, read right after the SYN's, came with a
        // stamp 0.6 µs after the clock read before its recvmsg: the kernel's fill-in.
        let ns = Duration::from_nanos;
        let read_at = ns(1_795_998_602_323_347_324);
        assert_eq!(
            stamp_before_read(Some(ns(1_795_998_602_323_347_925)), read_at),
            None
        );
        // One with timestamping on: the SYN-ACK stamped 56.5 µs before the read.
        let read_at = ns(1_795_998_595_322_993_641);
        let own = ns(1_795_998_595_322_937_127);
        assert_eq!(stamp_before_read(Some(own), read_at), Some(own));
        // A stamp equal to the read is the fill-in too; no stamp stays none.
        assert_eq!(stamp_before_read(Some(read_at), read_at), None);
        assert_eq!(stamp_before_read(None, read_at), None);
    }

    #[test]
    fn the_realtime_clock_is_the_kernel_stamps_clock() {
        // A loopback datagram's receive stamp falls between the clock read before the send
        // and the clock read before the recvmsg, when timestamping is on (held on here, and
        // the datagram re-sent until a stamped one comes: the host may switch it on late).
        let hold = hold_timestamping_on().expect("UDP socket with SO_TIMESTAMPING");
        let rx = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        use std::os::fd::AsRawFd;
        enable_timestamping(rx.as_raw_fd()).unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..2000 {
            let sent = realtime_now();
            hold.send_to(b"ping", rx.local_addr().unwrap()).unwrap();
            let mut got = None;
            for _ in 0..1000 {
                match recv_with_timestamp(rx.as_raw_fd(), &mut buf) {
                    Ok((_, stamp)) => {
                        got = Some(stamp);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    Err(e) => panic!("recv: {e}"),
                }
            }
            if let Some(Some(stamp)) = got {
                assert!(stamp >= sent, "stamp {stamp:?} before the send {sent:?}");
                assert!(stamp < realtime_now());
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        panic!("no loopback datagram with a receive timestamp of its own in 2000 tries");
    }
}
