//! A connect() probe's socket: opened and bound the same way by every connect() probe
//! ([`probe_socket`], also trace's `ttl_connect`), the connection it carries ([`Conn`]),
//! and the small reads shared by the ping and the pipeline.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::icmp::recverr::{read_error_queue, ErrEntry, QueuedError};
use crate::net;
use crate::timing;

pub(super) struct Conn {
    pub(super) sock: Socket,
    pub(super) local: SocketAddr,
    /// Our initial sequence number, when the packet socket saw the SYN leave.
    pub(super) isn: Option<u32>,
    /// Data bytes sent on the connection, over all its pings.
    pub(super) sent: u64,
}

impl Conn {
    /// Sequence numbers used from the ISN on: the SYN, then every byte sent (all of them
    /// once 2^32 are: the window then covers every sequence number).
    #[inline]
    pub(super) fn seq_used(&self) -> u32 {
        u32::try_from(1 + self.sent).unwrap_or(u32::MAX)
    }
}

/// A non-blocking TCP socket for one probe to `target`, as every connect() probe opens it:
/// closed with RST (SO_LINGER 0: no TIME_WAIT left behind, so a million probes never run out
/// of ports), ICMP errors about it on its error queue, kernel timestamps when it can have
/// them (else user space's times remain), `ttl` when given, and bound to `source` (None: any
/// address of the family) so that its source port is known before its SYN leaves. `port`:
/// that source port, shared (SO_REUSEADDR) with the socket that holds it for the run (trace's
/// constant flows without privilege); 0: the kernel picks one.
pub(crate) fn probe_socket(
    target: SocketAddr,
    ttl: Option<u8>,
    source: Option<IpAddr>,
    port: u16,
) -> io::Result<Socket> {
    let v6 = target.is_ipv6();
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sock.set_linger(Some(Duration::ZERO))?;
    net::set_recverr(sock.as_raw_fd(), v6)?;
    let _ = timing::enable_timestamping(sock.as_raw_fd());
    if let Some(ttl) = ttl {
        if v6 {
            sock.set_unicast_hops_v6(u32::from(ttl))?;
        } else {
            sock.set_ttl(u32::from(ttl))?;
        }
    }
    let ip = source.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    if port != 0 {
        sock.set_reuse_address(true)?;
    }
    sock.bind(&SocketAddr::new(ip, port).into())?;
    Ok(sock)
}

/// Nothing to read now (or a signal came): the socket is read again when it is readable.
#[inline]
pub(super) fn read_later(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The first ICMP (or local) error on the socket's error queue; transmit timestamps met on
/// the way are kept in `tx`.
pub(super) fn queued_error(fd: RawFd, tx: &mut Option<Duration>) -> Option<QueuedError> {
    while let Ok(Some(entry)) = read_error_queue(fd) {
        match entry {
            ErrEntry::TxTimestamp(t) => *tx = Some(t),
            ErrEntry::Error(e) => return Some(e),
        }
    }
    None
}
