//! The SYN prober's sockets behind one small interface ([`SynIo`]): raw IP sockets that send
//! the hand-built SYNs in batches (an [`Outbox`], one `sendmmsg` per batch), the packet
//! socket that captures what answers them (read in batches, from its receive ring), the
//! route lookup and the reserved source ports. [`SynSockets`] is the real set (opening it needs
//! CAP_NET_RAW); the prober's tests drive its loop over a fake that replays captured bytes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::Flow;
use crate::net::{self, Waker};
use crate::probe::capture::{answers_filter, PacketSocket, Received, PORTS_LISTED};

/// The receive ring when the filter passes our own few ports only (1,024 packets: the
/// answers of a -i 0 window many times over; little memory and set-up for a ping or a
/// trace), and otherwise (8,192: many targets, or the target port's segments of every
/// connection to it; a burst while we are descheduled; the queue the socket had before it
/// had a ring).
pub const RING_ONE: usize = 1 << 20;
pub const RING_MANY: usize = 8 << 20;

/// The ring for one target or many, probed with `flows` flows of kind `flow`.
pub fn ring_for(one_target: bool, flow: Flow, flows: usize) -> usize {
    if one_target && flow == Flow::Constant && flows <= PORTS_LISTED {
        RING_ONE
    } else {
        RING_MANY
    }
}

/// Most packets sent with one system call (`sendmmsg`).
pub const BATCH: usize = 64;
/// Bytes the outbox holds: a batch of the largest SYNs.
const OUTBOX_BYTES: usize = 64 * 1024;

/// SYNs waiting to leave, all at once: the packets' bytes back to back in one buffer
/// allocated once, and for each its destination and its probe's key. Pushing allocates
/// nothing.
pub struct Outbox {
    bytes: Vec<u8>,
    /// Per packet: where it ends in `bytes`, its destination, its probe (port, seq).
    ends: Vec<usize>,
    to: Vec<IpAddr>,
    keys: Vec<(u16, u32)>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            bytes: Vec::with_capacity(OUTBOX_BYTES),
            ends: Vec::with_capacity(BATCH),
            to: Vec::with_capacity(BATCH),
            keys: Vec::with_capacity(BATCH),
        }
    }
}

impl Outbox {
    /// Add a packet; false (and nothing added) when the outbox is full: send it first.
    pub fn push(&mut self, pkt: &[u8], to: IpAddr, key: (u16, u32)) -> bool {
        if self.ends.len() == BATCH || self.bytes.len() + pkt.len() > OUTBOX_BYTES {
            return false;
        }
        self.bytes.extend_from_slice(pkt);
        self.ends.push(self.bytes.len());
        self.to.push(to);
        self.keys.push(key);
        true
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Packet `i` and its destination.
    pub fn packet(&self, i: usize) -> (&[u8], IpAddr) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (&self.bytes[start..self.ends[i]], self.to[i])
    }

    /// The key (source port, sequence number) of packet `i`'s probe.
    pub fn key(&self, i: usize) -> (u16, u32) {
        self.keys[i]
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.to.clear();
        self.keys.clear();
    }
}

/// What the SYN prober needs of the world: send packets, capture packets, wait.
pub trait SynIo {
    /// The families it can send: (IPv4, IPv6).
    fn families(&self) -> (bool, bool);
    /// Hold a source port for the run (on every local address of the families sent).
    fn reserve_port(&mut self) -> io::Result<u16>;
    /// Capture only segments to or from these ports (our reserved ones) from now on.
    fn capture_ports(&mut self, ours: &[u16]) -> io::Result<()>;
    /// Our source address toward `target` (the route's).
    fn source_for(&mut self, target: SocketAddr) -> io::Result<IpAddr>;
    /// Send the outbox's packets (IP header included) from packet `from` on, as many as
    /// one system call takes: how many left (at least one), or the error of packet `from`
    /// (which did not leave).
    fn send_batch(&mut self, out: &Outbox, from: usize) -> io::Result<usize>;
    /// Hand the captured packets waiting (at most `max`) to `f` without blocking; how many.
    fn recv_batch(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> io::Result<usize>;
    /// Wait at most `timeout` for a packet to capture or for `waker`; true when the waker
    /// woke it.
    fn wait(&mut self, waker: &Waker, timeout: Duration) -> io::Result<bool>;
    /// Packets the capture dropped since the last call.
    fn drops(&mut self) -> u64;
}

/// The privileged part of a SYN prober: open it before dropping privileges.
pub struct SynSockets {
    send4: Option<Socket>,
    send6: Option<Socket>,
    tap: PacketSocket,
    /// The target port the filter passes (None: any).
    port: Option<u16>,
    /// The bound sockets that hold our reserved source ports.
    held: Vec<Socket>,
}

impl SynSockets {
    /// Raw sockets to send hand-built IPv4 and/or IPv6 packets, and a packet socket for the
    /// answers (SYN/RST segments to or from `port` when given, ICMP errors) read through a
    /// receive ring of `ring` bytes (`RING_ONE` for one target, `RING_MANY` for many).
    /// Needs CAP_NET_RAW.
    pub fn open(v4: bool, v6: bool, port: Option<u16>, ring: usize) -> io::Result<SynSockets> {
        // IPPROTO_RAW: we give the IP header (IP_HDRINCL / IPV6_HDRINCL implied).
        let raw = |domain| -> io::Result<Socket> {
            let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let send4 = v4.then(|| raw(Domain::IPV4)).transpose()?;
        let send6 = v6.then(|| raw(Domain::IPV6)).transpose()?;
        let tap = PacketSocket::open(&answers_filter(port, &[]))?.with_ring(ring);
        Ok(SynSockets {
            send4,
            send6,
            tap,
            port,
            held: Vec::new(),
        })
    }
}

impl SynIo for SynSockets {
    fn families(&self) -> (bool, bool) {
        (self.send4.is_some(), self.send6.is_some())
    }

    fn reserve_port(&mut self) -> io::Result<u16> {
        let (v4, v6) = self.families();
        let (port, s) = reserve_port(v4, v6)?;
        self.held.push(s);
        Ok(port)
    }

    fn capture_ports(&mut self, ours: &[u16]) -> io::Result<()> {
        self.tap.set_filter(&answers_filter(self.port, ours))
    }

    fn source_for(&mut self, target: SocketAddr) -> io::Result<IpAddr> {
        net::source_address_for(target)
    }

    fn send_batch(&mut self, out: &Outbox, from: usize) -> io::Result<usize> {
        let v6 = out.packet(from).1.is_ipv6();
        let sock = if v6 { &self.send6 } else { &self.send4 };
        let sock = sock
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        // The packets of that family from `from` on, one message each.
        let run = (from..out.len())
            .take_while(|&i| out.packet(i).1.is_ipv6() == v6)
            .count();
        let fd = sock.as_raw_fd();
        match send_mmsg(fd, out, from, run) {
            // The socket's buffer is full: wait for room a moment, once.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                net::poll(&[(fd, true)], Some(Duration::from_millis(100)))?;
                send_mmsg(fd, out, from, run)
            }
            r => r,
        }
    }

    fn recv_batch(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> io::Result<usize> {
        self.tap.drain(max, f)
    }

    fn wait(&mut self, waker: &Waker, timeout: Duration) -> io::Result<bool> {
        let r = net::poll(
            &[(self.tap.fd(), false), (waker.fd(), false)],
            Some(timeout),
        )?;
        Ok(r[1].read)
    }

    fn drops(&mut self) -> u64 {
        self.tap.drops()
    }
}

/// Send packets `from..from + n` of `out` (all of one family) on raw socket `fd` with one
/// `sendmmsg`: how many left, or the error of the first.
fn send_mmsg(fd: RawFd, out: &Outbox, from: usize, n: usize) -> io::Result<usize> {
    let n = n.min(BATCH);
    // SAFETY: all-zero iovec, mmsghdr and sockaddr_in6 are valid values.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut names: [libc::sockaddr_in6; BATCH] = unsafe { std::mem::zeroed() };
    for k in 0..n {
        let (pkt, to) = out.packet(from + k);
        iov[k] = libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        };
        // Raw sockets take the destination without a port.
        let name_len = match to {
            IpAddr::V4(a) => {
                let sin = &mut names[k] as *mut libc::sockaddr_in6 as *mut libc::sockaddr_in;
                // SAFETY: a sockaddr_in fits in the sockaddr_in6 it overlays.
                unsafe {
                    (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                    (*sin).sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                }
                std::mem::size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(a) => {
                names[k].sin6_family = libc::AF_INET6 as libc::sa_family_t;
                names[k].sin6_addr.s6_addr = a.octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        let h = &mut msgs[k].msg_hdr;
        h.msg_name = &mut names[k] as *mut libc::sockaddr_in6 as *mut libc::c_void;
        h.msg_namelen = name_len as libc::socklen_t;
        h.msg_iov = &mut iov[k];
        h.msg_iovlen = 1;
    }
    // SAFETY: msgs[..n] are initialised and point to iov, names and the outbox's bytes, all
    // alive for the call.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Hold a source port for the run, on every local address of the families used: a TCP
/// socket bound to it (not listening, not connected), dual-stack for both families.
fn reserve_port(v4: bool, v6: bool) -> io::Result<(u16, Socket)> {
    let any: SocketAddr = if v6 {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let s = Socket::new(Domain::for_address(any), Type::STREAM, Some(Protocol::TCP))?;
    if v6 {
        s.set_only_v6(!v4)?;
    }
    s.bind(&any.into())?;
    let port = s
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| io::Error::other("bound socket has no port"))?;
    Ok((port, s))
}
