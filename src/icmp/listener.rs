//! Raw ICMPv4/ICMPv6 sockets and the listener thread that reads them while the client pings.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use super::correlate::{Match, Registry};
use super::parse::{parse_icmpv4_packet, parse_icmpv6_message};
use crate::net::{self, Waker};

/// Anything that yields ICMP packets: a raw socket, or captured bytes in tests.
pub trait IcmpSocket {
    /// Whether packets are ICMPv6 messages (without IP header) rather than IPv4 datagrams.
    fn is_v6(&self) -> bool;
    /// Next packet and its sender; `WouldBlock` when none is waiting.
    fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)>;
}

/// A raw ICMP socket of one family.
pub struct RawIcmp {
    sock: Socket,
    v6: bool,
}

impl RawIcmp {
    /// Open a raw socket; needs root or CAP_NET_RAW. Only error messages pass its filter.
    pub fn open(v6: bool) -> io::Result<RawIcmp> {
        let sock = if v6 {
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?
        } else {
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?
        };
        sock.set_nonblocking(true)?;
        let _ = sock.set_recv_buffer_size(1 << 20);
        // Let only error types through: echo floods and the like never wake us.
        if v6 {
            // icmp6_filter: a set bit blocks the type. Pass 1..=4 (the error types).
            let mut filter = [u32::MAX; 8];
            for t in 1..=4u32 {
                filter[0] &= !(1 << t);
            }
            set_opt(sock.as_raw_fd(), libc::IPPROTO_ICMPV6, 1, &filter)?;
        } else {
            // icmp_filter (SOL_RAW, ICMP_FILTER): a set bit blocks the type.
            let pass: u32 = (1 << 3) | (1 << 4) | (1 << 11) | (1 << 12);
            set_opt(sock.as_raw_fd(), libc::SOL_RAW, 1, &!pass)?;
        }
        Ok(RawIcmp { sock, v6 })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

fn set_opt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: val points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl IcmpSocket for RawIcmp {
    fn is_v6(&self) -> bool {
        self.v6
    }
    fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        // SAFETY: MaybeUninit<u8> has the layout of u8; recv only writes initialised bytes.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        let (n, addr) = self.sock.recv_from(uninit)?;
        let ip = addr
            .as_socket()
            .map(|a: SocketAddr| a.ip())
            .ok_or_else(|| io::Error::other("raw socket gave a non-IP sender"))?;
        Ok((n, ip))
    }
}

/// What the listener did with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Matched(u64),
    Unmatched,
    /// Not an ICMP error (or malformed): skipped.
    Skipped,
}

/// Parse one packet and attribute it. Malformed input is skipped, never fatal.
pub fn handle_packet(
    registry: &Registry,
    v6: bool,
    bytes: &[u8],
    from: IpAddr,
    at: Instant,
) -> Handled {
    let parsed = match (v6, from) {
        (true, IpAddr::V6(from)) => parse_icmpv6_message(bytes, from),
        (false, _) => parse_icmpv4_packet(bytes),
        (true, IpAddr::V4(_)) => return Handled::Skipped,
    };
    match parsed {
        Ok(Some(err)) => match registry.on_icmp(&err, at) {
            Match::Ping { seq } => Handled::Matched(seq),
            Match::Unmatched(_) => Handled::Unmatched,
        },
        _ => Handled::Skipped,
    }
}

/// Read every waiting packet from `sock`; call `on_match` for each attributed one.
pub fn pump(
    sock: &mut dyn IcmpSocket,
    registry: &Registry,
    buf: &mut [u8],
    mut on_match: impl FnMut(u64),
) -> io::Result<()> {
    loop {
        let (n, from) = match sock.recv_from(buf) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let at = Instant::now();
        if let Handled::Matched(seq) = handle_packet(registry, sock.is_v6(), &buf[..n], from, at) {
            on_match(seq);
        }
    }
}

/// The running listener thread.
pub struct Capture {
    stop: Waker,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Start listening on `socks`; each attributed error writes to `wake`.
    pub fn start(
        mut socks: Vec<RawIcmp>,
        registry: Arc<Registry>,
        wake: UnixStream,
    ) -> io::Result<Capture> {
        let stop = Waker::new()?;
        let stop_fd = stop.fd();
        let thread = thread::Builder::new().name("icmp".into()).spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut fds: Vec<(RawFd, bool)> = socks.iter().map(|s| (s.fd(), false)).collect();
            fds.push((stop_fd, false));
            loop {
                let Ok(ready) = net::poll(&fds, None) else {
                    return;
                };
                if ready[fds.len() - 1].read {
                    return;
                }
                for (i, sock) in socks.iter_mut().enumerate() {
                    if ready[i].read || ready[i].error {
                        // A failed read (say, a full buffer's error) loses that packet only.
                        let _ = pump(sock, &registry, &mut buf, |_| net::wake(&wake));
                    }
                }
            }
        })?;
        Ok(Capture {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
