//! The kernel's per-socket error queue (IP_RECVERR / IPV6_RECVERR): what an unprivileged
//! program learns about ICMP errors for its own socket: offender, type, code, and (with
//! SO_TIMESTAMPING's software receive stamps on the socket) when the ICMP arrived.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::time::Duration;

use super::correlate::{IcmpReport, Phase, Source};

/// One entry of the error queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedError {
    pub errno: i32,
    /// SO_EE_ORIGIN_*: 2 = ICMP, 3 = ICMPv6, 1 = local.
    pub origin: u8,
    pub icmp_type: u8,
    pub code: u8,
    pub info: u32,
    /// The router (or our own host) that reported it.
    pub offender: Option<IpAddr>,
    /// When the ICMP message entered our host: the kernel's software receive timestamp
    /// (time since the Unix epoch, CLOCK_REALTIME), when the socket asked for them and the
    /// message has one of its own (see `timing::stamp_before_read`).
    pub received: Option<Duration>,
}

const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

impl QueuedError {
    /// Whether it came from an ICMP(v6) message rather than a local error.
    pub fn is_icmp(&self) -> bool {
        matches!(self.origin, SO_EE_ORIGIN_ICMP | SO_EE_ORIGIN_ICMP6)
    }
    pub fn is_v6(&self) -> bool {
        self.origin == SO_EE_ORIGIN_ICMP6
    }

    /// The report of this error about a probe to `target` (the sender, when the kernel
    /// names no offender), which it reached `after` the probe started, in `phase`.
    pub fn report(&self, target: IpAddr, after: Duration, phase: Phase) -> IcmpReport {
        IcmpReport {
            icmp_type: self.icmp_type,
            code: self.code,
            v6: self.is_v6(),
            info: self.info,
            from: self.offender.unwrap_or(target),
            after,
            phase,
            source: Source::RecvErr,
            extensions: None,
        }
    }
}

/// Decode the payload of an IP_RECVERR / IPV6_RECVERR control message: a
/// `sock_extended_err` followed by the offender's `sockaddr` (SO_EE_OFFENDER).
pub fn parse_extended_err(data: &[u8]) -> Option<QueuedError> {
    let ee_len = mem::size_of::<libc::sock_extended_err>();
    if data.len() < ee_len {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    // struct sock_extended_err { u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad; u32 ee_info; u32 ee_data; }
    let mut e = QueuedError {
        errno: u32_at(0) as i32,
        origin: data[4],
        icmp_type: data[5],
        code: data[6],
        info: u32_at(8),
        offender: None,
        received: None,
    };
    let sa = &data[ee_len..];
    if sa.len() >= 2 {
        let family = u16::from_ne_bytes([sa[0], sa[1]]) as i32;
        if family == libc::AF_INET && sa.len() >= 8 {
            e.offender = Some(IpAddr::V4(Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7])));
        } else if family == libc::AF_INET6 && sa.len() >= 24 {
            let mut b = [0u8; 16];
            b.copy_from_slice(&sa[8..24]);
            e.offender = Some(IpAddr::V6(Ipv6Addr::from(b)));
        }
    }
    Some(e)
}

/// One entry of a socket's error queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrEntry {
    /// An ICMP error (or a local error) about the socket's traffic.
    Error(QueuedError),
    /// A software transmit timestamp (SO_TIMESTAMPING), time since the Unix epoch.
    TxTimestamp(Duration),
}

/// Read one entry from `fd`'s error queue, without blocking. Ok(None) when it is empty.
pub fn read_error_queue(fd: RawFd) -> io::Result<Option<ErrEntry>> {
    Ok(read_error_queue_id(fd)?.map(|(e, _)| e))
}

/// As `read_error_queue`, with the entry's `ee_data`: for a transmit timestamp with
/// SOF_TIMESTAMPING_OPT_ID on a TCP socket, the offset of the send's last byte from where
/// the ids started counting.
pub fn read_error_queue_id(fd: RawFd) -> io::Result<Option<(ErrEntry, u32)>> {
    let mut data = [0u8; 256];
    let mut id = 0u32;
    let mut err = None;
    let mut stamp = None;
    let read_at = crate::timing::realtime_now();
    let got = crate::net::recvmsg_cmsgs(
        fd,
        &mut data,
        libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        |level, kind, bytes| {
            if (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR)
            {
                err = parse_extended_err(bytes);
                if let Some(b) = bytes.get(12..16) {
                    id = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
            } else if level == libc::SOL_SOCKET && kind == crate::timing::SCM_TIMESTAMPING {
                stamp = crate::timing::parse_scm_timestamping(bytes);
            }
        },
    );
    match got {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    Ok(match err {
        Some(e) if e.origin == SO_EE_ORIGIN_TIMESTAMPING => {
            stamp.map(|t| (ErrEntry::TxTimestamp(t), id))
        }
        Some(mut e) => {
            // The stamp of an ICMP error is the ICMP message's own receive time.
            if e.is_icmp() {
                e.received = crate::timing::stamp_before_read(stamp, read_at);
            }
            Some((ErrEntry::Error(e), id))
        }
        None => None,
    })
}

const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn ee(origin: u8, t: u8, c: u8, info: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(libc::EHOSTUNREACH as u32).to_ne_bytes());
        v.extend_from_slice(&[origin, t, c, 0]);
        v.extend_from_slice(&info.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v
    }

    #[test]
    fn v4_offender() {
        let mut v = ee(2, 3, 1, 0);
        v.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v.extend_from_slice(&[0, 0, 10, 77, 1, 1]);
        v.extend_from_slice(&[0; 8]);
        let e = parse_extended_err(&v).unwrap();
        assert_eq!(e.errno, libc::EHOSTUNREACH);
        assert!(e.is_icmp() && !e.is_v6());
        assert_eq!((e.icmp_type, e.code), (3, 1));
        assert_eq!(e.offender, Some("10.77.1.1".parse().unwrap()));
    }

    #[test]
    fn v6_offender_and_mtu() {
        let mut v = ee(3, 2, 0, 1280);
        v.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v.extend_from_slice(&[0; 6]);
        v.extend_from_slice(&"fd77:1::1".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&[0; 4]);
        let e = parse_extended_err(&v).unwrap();
        assert!(e.is_v6());
        assert_eq!(e.info, 1280);
        assert_eq!(e.offender, Some("fd77:1::1".parse().unwrap()));
    }

    #[test]
    fn an_icmp_error_carries_its_kernel_receive_time() {
        // A datagram to a closed loopback port: the kernel's port unreachable lands on the
        // error queue, stamped when it entered the stack: after the send, before the read
        // (re-sent until a stamped one comes: the host may switch stamping on late).
        use std::net::UdpSocket;
        use std::os::fd::AsRawFd;
        let _hold = crate::timing::hold_timestamping_on().expect("UDP socket with SO_TIMESTAMPING");
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        crate::net::set_recverr(s.as_raw_fd(), false).unwrap();
        crate::timing::enable_timestamping(s.as_raw_fd()).unwrap();
        for _ in 0..2000 {
            let sent = crate::timing::realtime_now();
            s.send_to(b"x", to).unwrap();
            let mut got = None;
            for _ in 0..1000 {
                match read_error_queue(s.as_raw_fd()) {
                    Ok(Some(ErrEntry::Error(e))) => {
                        got = Some(e);
                        break;
                    }
                    Ok(_) => std::thread::yield_now(),
                    Err(e) => panic!("read the error queue: {e}"),
                }
            }
            let e = got.expect("port unreachable on the error queue");
            assert_eq!((e.icmp_type, e.code), (3, 3));
            assert!(e.is_icmp());
            if let Some(rx) = e.received {
                assert!(rx >= sent, "stamped {rx:?} before the send {sent:?}");
                assert!(rx < crate::timing::realtime_now());
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        panic!("no ICMP error with a receive timestamp of its own in 2000 tries");
    }

    #[test]
    fn truncated_and_unknown_family() {
        assert_eq!(parse_extended_err(&[0; 10]), None);
        let mut v = ee(1, 0, 0, 0);
        v.extend_from_slice(&[0xff, 0xff, 1, 2]);
        let e = parse_extended_err(&v).unwrap();
        assert!(!e.is_icmp());
        assert_eq!(e.offender, None);
        // A family that claims IPv4 but is cut short gives no offender, no panic.
        let mut v = ee(2, 3, 1, 0);
        v.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v.extend_from_slice(&[0, 0, 10]);
        assert_eq!(parse_extended_err(&v).unwrap().offender, None);
    }
}
