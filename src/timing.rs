//! Kernel-side timing, closer to the wire than user space can be:
//! - the handshake: TCP_INFO's `tcpi_rtt` right after connect is the kernel's own
//!   SYN → SYN-ACK measurement, in microseconds;
//! - the echo: SO_TIMESTAMPING software timestamps, taken when the request is handed to
//!   the device (transmit) and when the reply enters the stack (receive).
//!
//! Each is used only when the kernel provides it; the user-space times are always kept too.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
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

const SOF_TIMESTAMPING_OPT_ID: u32 = 1 << 7;

/// As `enable_timestamping`, with OPT_ID: each transmit timestamp carries the offset of its
/// send's last byte, counted from the bytes unacknowledged now (on a TCP socket: only once
/// connected). A connection carrying several requests at once tells their stamps apart.
pub fn enable_timestamping_with_id(fd: RawFd) -> io::Result<()> {
    let flags = SOF_TIMESTAMPING_TX_SOFTWARE
        | SOF_TIMESTAMPING_RX_SOFTWARE
        | SOF_TIMESTAMPING_SOFTWARE
        | SOF_TIMESTAMPING_OPT_TSONLY
        | SOF_TIMESTAMPING_OPT_ID;
    crate::net::setsockopt_int(fd, libc::SOL_SOCKET, SO_TIMESTAMPING, flags as libc::c_int)
}

/// A socket that only keeps receive timestamping switched on for the whole run.
///
/// The kernel turns software timestamping on for the whole host (a static key, patched into
/// its code) when the first socket asks for it, and off when the last one closes. A ping per
/// connection would flip it twice per ping, which costs more than the ping itself; holding
/// one socket open keeps it on. It is bound to loopback when there is one (so that
/// `RxStamping` can check it with a datagram to itself), else to any address.
pub fn hold_timestamping_on() -> Option<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .or_else(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .ok()?;
    let flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    crate::net::setsockopt_int(
        s.as_raw_fd(),
        libc::SOL_SOCKET,
        SO_TIMESTAMPING,
        flags as libc::c_int,
    )
    .ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// Software receive timestamping, asked for at start and known to be in effect before the
/// first ping.
///
/// Asking is not enough: when no socket on the host had it on, the kernel switches it on
/// from deferred work (`net_enable_timestamp` → `schedule_work`), which runs once a kernel
/// worker gets a CPU: tens of microseconds on an idle host, milliseconds on a busy one. A
/// fresh process that pings at once can send and receive its packets before that: they carry no receive stamps (the echo falls back
/// to user-space time, the packet socket's copies get the time of the read). So ask first
/// (`request`), before everything else at start, and before the first ping wait until a
/// datagram sent to ourselves comes back with a stamp of its own (`wait_in_effect`).
pub struct RxStamping {
    sock: UdpSocket,
}

/// What `RxStamping::wait_in_effect` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InEffect {
    /// Stamps are on; how long it took to see it.
    Yes(Duration),
    /// Not seen within the limit, or not checkable (why).
    Unconfirmed(&'static str),
}

/// Time between two looks while the kernel's worker has not run yet: long enough for it to
/// get the CPU (we sleep), short next to a ping's start-up.
const LOOK_AGAIN: Duration = Duration::from_micros(50);

/// The pause instead, when no look can be made: the worker gets the CPU all the same.
const CANNOT_LOOK: Duration = Duration::from_millis(1);

impl RxStamping {
    /// Ask the kernel for software receive timestamps (None: the socket could not be made).
    pub fn request() -> Option<RxStamping> {
        hold_timestamping_on().map(|sock| RxStamping { sock })
    }

    /// Wait until the kernel stamps arriving packets, at most `limit`.
    pub fn wait_in_effect(&self, limit: Duration) -> InEffect {
        wait_until_stamped(|| self.look(), limit, std::thread::sleep)
    }

    /// One look: Ok(true) when a datagram sent to ourselves now comes back stamped on its
    /// arrival (after the send, before the read).
    fn look(&self) -> Result<bool, &'static str> {
        let to = match self.sock.local_addr() {
            Ok(SocketAddr::V4(a)) if a.ip().is_loopback() => a,
            _ => return Err("no loopback address to check with"),
        };
        let sent_at = realtime_now();
        let nonce = (sent_at.as_nanos() as u64).to_ne_bytes();
        self.sock
            .send_to(&nonce, to)
            .map_err(|_| "cannot send to loopback")?;
        let fd = self.sock.as_raw_fd();
        // Loopback delivers within the send; a lost datagram (loopback down) is given up.
        let give_up = std::time::Instant::now() + Duration::from_millis(5);
        let mut buf = [0u8; 16];
        loop {
            match recv_with_timestamp(fd, &mut buf) {
                Ok((8, stamp)) if buf[..8] == nonce => {
                    return Ok(stamp.is_some_and(|s| s >= sent_at))
                }
                Ok(_) => continue, // someone else's datagram
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if crate::net::remaining(give_up).is_zero() {
                        return Err("the loopback datagram did not come back");
                    }
                    let _ = crate::net::poll(&[(fd, false)], Some(Duration::from_millis(1)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err("cannot read the loopback datagram"),
            }
        }
    }
}

/// Look (`look`) until stamps are on, pausing `LOOK_AGAIN` (`pause`) in between, for at
/// most `limit` of pauses. A look that cannot be made ends the wait after one pause of
/// `CANNOT_LOOK`, which at least lets the kernel's worker run.
pub fn wait_until_stamped(
    mut look: impl FnMut() -> Result<bool, &'static str>,
    limit: Duration,
    mut pause: impl FnMut(Duration),
) -> InEffect {
    let mut waited = Duration::ZERO;
    loop {
        match look() {
            Ok(true) => return InEffect::Yes(waited),
            Ok(false) if waited >= limit => return InEffect::Unconfirmed("not on in time"),
            Ok(false) => {}
            Err(why) => {
                pause(CANNOT_LOOK);
                return InEffect::Unconfirmed(why);
            }
        }
        pause(LOOK_AGAIN);
        waited += LOOK_AGAIN;
    }
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
/// (software timestamps are in `ts[0]`), as time since the Unix epoch.
pub fn parse_scm_timestamping(data: &[u8]) -> Option<Duration> {
    let ts_len = mem::size_of::<libc::timespec>();
    data.chunks_exact(ts_len).take(3).find_map(|c| {
        let secs = i64::from_ne_bytes(c[0..8].try_into().ok()?);
        let nanos = i64::from_ne_bytes(c[8..16].try_into().ok()?);
        (secs > 0 && (0..1_000_000_000).contains(&nanos))
            .then(|| Duration::new(secs as u64, nanos as u32))
    })
}

/// The socket's TCP_INFO. None when getsockopt fails (not a TCP socket, closed).
fn tcp_info(fd: RawFd) -> Option<libc::tcp_info> {
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
    // SAFETY: zero-initialised and (partly) filled by the kernel: every bit pattern is valid.
    (rc == 0).then(|| unsafe { info.assume_init() })
}

/// The kernel's handshake round trip from TCP_INFO, when it measured one cleanly
/// (a sample exists and no SYN was retransmitted).
pub fn handshake_rtt(fd: RawFd) -> Option<Duration> {
    let info = tcp_info(fd)?;
    (info.tcpi_rtt > 0 && info.tcpi_total_retrans == 0 && info.tcpi_retransmits == 0)
        .then(|| Duration::from_micros(u64::from(info.tcpi_rtt)))
}

/// TCP_ESTABLISHED of the kernel's `tcp_states.h` (TCP_INFO's `tcpi_state`).
const TCP_ESTABLISHED: u8 = 1;

/// Whether the TCP connection is still established (TCP_INFO's state): an ICMP error the
/// kernel reported on it (`recv` failed once) leaves it so; a reset does not.
pub fn tcp_established(fd: RawFd) -> bool {
    tcp_info(fd).is_some_and(|i| i.tcpi_state == TCP_ESTABLISHED)
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
    fn the_wait_looks_until_stamps_are_on_and_gives_up_in_time() {
        // On after two looks: two pauses.
        let mut looks = [Ok(false), Ok(false), Ok(true)].into_iter();
        let mut paused = Vec::new();
        let got = wait_until_stamped(
            || looks.next().unwrap(),
            Duration::from_millis(1),
            |d| paused.push(d),
        );
        assert_eq!(got, InEffect::Yes(2 * LOOK_AGAIN));
        assert_eq!(paused, [LOOK_AGAIN, LOOK_AGAIN]);
        // Already on: no pause at all.
        let got = wait_until_stamped(|| Ok(true), Duration::from_millis(1), |_| panic!());
        assert_eq!(got, InEffect::Yes(Duration::ZERO));
        // Never on: it stops at the limit.
        let (mut n, limit) = (0u32, Duration::from_millis(1));
        let got = wait_until_stamped(
            || {
                n += 1;
                Ok(false)
            },
            limit,
            |_| {},
        );
        assert_eq!(got, InEffect::Unconfirmed("not on in time"));
        assert_eq!(n, 1 + (limit.as_micros() / LOOK_AGAIN.as_micros()) as u32);
        // No way to look (no loopback): one longer pause for the kernel's worker, and say so.
        let mut paused = Vec::new();
        let got = wait_until_stamped(|| Err("no loopback"), limit, |d| paused.push(d));
        assert_eq!(got, InEffect::Unconfirmed("no loopback"));
        assert_eq!(paused, [CANNOT_LOOK]);
    }

    #[test]
    fn once_the_wait_says_stamps_are_on_every_datagram_has_its_own() {
        let on = RxStamping::request().expect("UDP socket with SO_TIMESTAMPING");
        assert!(
            matches!(on.wait_in_effect(Duration::from_secs(2)), InEffect::Yes(_)),
            "loopback is up here"
        );
        for _ in 0..20 {
            assert_eq!(on.look(), Ok(true));
        }
    }

    #[test]
    fn the_realtime_clock_is_the_kernel_stamps_clock() {
        // A loopback datagram's receive stamp falls between the clock read before the send
        // and the clock read before the recvmsg, when timestamping is on (held on here, and
        // the datagram re-sent until a stamped one comes: the host may switch it on late).
        let hold = hold_timestamping_on().expect("UDP socket with SO_TIMESTAMPING");
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
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
