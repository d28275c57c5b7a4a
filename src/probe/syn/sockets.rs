//! The SYN prober's sockets behind one small interface ([`SynIo`]): raw IP sockets that send
//! the hand-built SYNs in batches (an [`Outbox`], one `sendmmsg` per batch), the packet
//! socket that captures what answers them (read in batches, from its receive ring), the
//! route lookup and the reserved source ports. [`SynSockets`] is the real set (opening it needs
//! CAP_NET_RAW); the prober's tests drive its loop over a fake that replays captured bytes.
//!
//! With many targets the batches are sent by a thread of their own
//! ([`SynSockets::with_sender_thread`]): the kernel does all it does for a packet inside the
//! `sendmmsg` that sends it, and when the path is local (loopback, a veth into a namespace)
//! that includes the peer's side, its SYN-ACK and our kernel's RST, more than our own work.
//! On one thread that left the loop that schedules and matches no room at 50,000 targets a
//! second; on its own thread it takes the other core.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
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
    /// Hand the outbox's packets to a sender thread, when this io has one: true, and `out`
    /// is left empty; false: send them with `send_batch`.
    fn send_later(&mut self, _out: &mut Outbox) -> io::Result<bool> {
        Ok(false)
    }
    /// The packets the sender thread could not send, since the last call.
    fn send_failures(&mut self) -> Vec<SendFailure> {
        Vec::new()
    }
    /// Hand the captured packets waiting (at most `max`) to `f` without blocking; how many.
    fn recv_batch(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> io::Result<usize>;
    /// Wait at most `timeout` for a packet to capture or for `waker`; true when the waker
    /// woke it.
    fn wait(&mut self, waker: &Waker, timeout: Duration) -> io::Result<bool>;
    /// Sleep at most `timeout`, woken by `waker` only: the packets captured meanwhile wait
    /// in the ring. True when the waker woke it.
    fn nap(&mut self, waker: &Waker, timeout: Duration) -> io::Result<bool> {
        self.wait(waker, timeout)
    }
    /// Packets the capture dropped since the last call.
    fn drops(&mut self) -> u64;
}

/// The privileged part of a SYN prober: open it before dropping privileges.
pub struct SynSockets {
    send4: Option<Arc<Socket>>,
    send6: Option<Arc<Socket>>,
    tap: PacketSocket,
    /// The target port the filter passes (None: any).
    port: Option<u16>,
    /// The bound sockets that hold our reserved source ports.
    held: Vec<Socket>,
    /// Send from a thread of our own, started at the first batch (after privileges are
    /// dropped, so it has none).
    threaded: bool,
    sender: Option<SendThread>,
}

impl SynSockets {
    /// Raw sockets to send hand-built IPv4 and/or IPv6 packets, and a packet socket for the
    /// answers (SYN/RST segments to or from `port` when given, ICMP errors) read through a
    /// receive ring of `ring` bytes (`RING_ONE` for one target, `RING_MANY` for many).
    /// Needs CAP_NET_RAW.
    pub fn open(v4: bool, v6: bool, port: Option<u16>, ring: usize) -> io::Result<SynSockets> {
        // IPPROTO_RAW: we give the IP header (IP_HDRINCL / IPV6_HDRINCL implied).
        let raw = |domain| -> io::Result<Arc<Socket>> {
            let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
            s.set_nonblocking(true)?;
            Ok(Arc::new(s))
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
            threaded: false,
            sender: None,
        })
    }

    /// Send the batches from a thread of our own (see the module's documentation).
    pub fn with_sender_thread(mut self, on: bool) -> SynSockets {
        self.threaded = on;
        self
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
        send_run(&self.send4, &self.send6, out, from)
    }

    fn send_later(&mut self, out: &mut Outbox) -> io::Result<bool> {
        if !self.threaded {
            return Ok(false);
        }
        if self.sender.is_none() {
            self.sender = Some(SendThread::start(self.send4.clone(), self.send6.clone())?);
        }
        let t = self.sender.as_mut().expect("just started");
        t.collect();
        let full = std::mem::replace(out, t.spare.pop().unwrap_or_default());
        t.to.as_ref()
            .expect("the sender's channel, open until drop")
            .send(full)
            .map_err(|_| io::Error::other("the sender thread is gone"))?;
        Ok(true)
    }

    fn send_failures(&mut self) -> Vec<SendFailure> {
        match &mut self.sender {
            Some(t) => {
                t.collect();
                std::mem::take(&mut t.failed)
            }
            None => Vec::new(),
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

    fn nap(&mut self, waker: &Waker, timeout: Duration) -> io::Result<bool> {
        let r = net::poll(&[(waker.fd(), false)], Some(timeout))?;
        Ok(r[0].read)
    }

    fn drops(&mut self) -> u64 {
        self.tap.drops()
    }
}

/// Send packets `from..from + n` of `out` (all of one family) on raw socket `fd` with one
/// Send packets of `out` from `from` on, of its family, with one `sendmmsg`: how many left
/// (at least one), or the error of packet `from`.
fn send_run(
    send4: &Option<Arc<Socket>>,
    send6: &Option<Arc<Socket>>,
    out: &Outbox,
    from: usize,
) -> io::Result<usize> {
    let v6 = out.packet(from).1.is_ipv6();
    let sock = if v6 { send6 } else { send4 };
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

/// A packet the sender thread could not send: its probe's key (port, seq) and why.
pub type SendFailure = ((u16, u32), io::Error);

/// Outboxes queued for the sender thread before `send_later` waits for it (1,024 SYNs).
const QUEUED: usize = 16;

/// The sender thread: full outboxes go to it, and come back emptied with what failed.
struct SendThread {
    to: Option<mpsc::SyncSender<Outbox>>,
    back: mpsc::Receiver<(Outbox, Vec<SendFailure>)>,
    /// Emptied outboxes, to be filled again (no allocation once the queue is primed).
    spare: Vec<Outbox>,
    failed: Vec<SendFailure>,
    handle: Option<JoinHandle<()>>,
}

impl SendThread {
    fn start(send4: Option<Arc<Socket>>, send6: Option<Arc<Socket>>) -> io::Result<SendThread> {
        let (to, queued) = mpsc::sync_channel::<Outbox>(QUEUED);
        let (back_tx, back) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("syn-send".into())
            .spawn(move || {
                for mut out in queued {
                    let failed = send_all(&send4, &send6, &out);
                    out.clear();
                    if back_tx.send((out, failed)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SendThread {
            to: Some(to),
            back,
            spare: Vec::new(),
            failed: Vec::new(),
            handle: Some(handle),
        })
    }

    /// Take back the outboxes sent, and their failures.
    fn collect(&mut self) {
        while let Ok((out, mut failed)) = self.back.try_recv() {
            self.spare.push(out);
            self.failed.append(&mut failed);
        }
    }
}

impl Drop for SendThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has sent what it holds.
        drop(self.to.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Send every packet of `out`: the ones that failed, and why.
fn send_all(
    send4: &Option<Arc<Socket>>,
    send6: &Option<Arc<Socket>>,
    out: &Outbox,
) -> Vec<SendFailure> {
    let mut failed = Vec::new();
    let mut from = 0;
    while from < out.len() {
        match send_run(send4, send6, out, from) {
            Ok(0) => failed.push((out.key(from), io::Error::other("the kernel took no packet"))),
            Ok(n) => {
                from += n;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => failed.push((out.key(from), e)),
        }
        from += 1;
    }
    failed
}

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

#[cfg(test)]
mod send_thread_tests {
    use super::*;

    fn outbox(keys: &[(u16, u32)]) -> Outbox {
        let mut out = Outbox::default();
        for &k in keys {
            assert!(out.push(&[0x45; 40], IpAddr::from([127, 0, 0, 1]), k));
        }
        out
    }

    #[test]
    fn every_packet_that_cannot_leave_is_named_by_its_key() {
        // No IPv4 socket: each packet fails on its own, in order, and none is skipped.
        let failed = send_all(&None, &None, &outbox(&[(1, 10), (1, 11), (2, 12)]));
        let keys: Vec<_> = failed.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [(1, 10), (1, 11), (2, 12)]);
        assert!(failed
            .iter()
            .all(|(_, e)| e.kind() == io::ErrorKind::Unsupported));
    }

    #[test]
    fn the_thread_sends_what_it_is_handed_and_gives_the_outboxes_back() {
        let mut t = SendThread::start(None, None).expect("start the thread");
        let sizes = [3usize, 1, 5];
        let mut next = 0u32;
        for &n in &sizes {
            let keys: Vec<(u16, u32)> = (0..n)
                .map(|_| {
                    next += 1;
                    (7, next)
                })
                .collect();
            t.to.as_ref().unwrap().send(outbox(&keys)).unwrap();
        }
        // Every failure comes back once, in the order sent, with every outbox emptied.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while t.spare.len() < sizes.len() && std::time::Instant::now() < deadline {
            t.collect();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.spare.len(), sizes.len());
        assert!(t.spare.iter().all(Outbox::is_empty));
        let keys: Vec<u32> = t.failed.iter().map(|((_, s), _)| *s).collect();
        assert_eq!(keys, (1..=9).collect::<Vec<u32>>());
        drop(t); // joins: the closed channel ends the thread
    }
}
