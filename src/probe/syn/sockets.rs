//! The SYN prober's sockets behind one small interface ([`SynIo`]): raw IP sockets that send
//! the hand-built SYNs, the packet socket that captures what answers them, the route lookup
//! and the reserved source ports. [`SynSockets`] is the real set (opening it needs
//! CAP_NET_RAW); the prober's tests drive its loop over a fake that replays captured bytes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::net::{self, Waker};
use crate::probe::capture::{answers_filter, PacketSocket, Received};

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
    /// Send one packet, IP header included, to `to`.
    fn send(&mut self, pkt: &[u8], to: IpAddr) -> io::Result<()>;
    /// Read one captured packet into `buf` without blocking (`WouldBlock` when none waits).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Received>;
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
    /// answers (SYN/RST segments to or from `port` when given, ICMP errors). Needs
    /// CAP_NET_RAW.
    pub fn open(v4: bool, v6: bool, port: Option<u16>) -> io::Result<SynSockets> {
        // IPPROTO_RAW: we give the IP header (IP_HDRINCL / IPV6_HDRINCL implied).
        let raw = |domain| -> io::Result<Socket> {
            let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let send4 = v4.then(|| raw(Domain::IPV4)).transpose()?;
        let send6 = v6.then(|| raw(Domain::IPV6)).transpose()?;
        let tap = PacketSocket::open(&answers_filter(port, &[]))?;
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

    fn send(&mut self, pkt: &[u8], to: IpAddr) -> io::Result<()> {
        let sock = match to {
            IpAddr::V4(_) => self.send4.as_ref(),
            IpAddr::V6(_) => self.send6.as_ref(),
        };
        let sock = sock.ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        // Raw sockets take the destination without a port.
        sock.send_to(pkt, &SocketAddr::new(to, 0).into()).map(drop)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Received> {
        self.tap.recv(buf)
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
