//! A packet socket (AF_PACKET, needs CAP_NET_RAW) with a classic BPF filter: packets as they
//! leave and arrive at the network devices, from the IP header on, with the kernel's
//! receive timestamps (the ones tcpdump records) and their direction.
//!
//! [`answers_filter`] passes what a SYN probe needs to see: TCP segments with SYN or RST set
//! (our SYNs leaving, SYN-ACKs and RSTs arriving), pure ACKs arriving at our reserved ports,
//! and ICMP / ICMPv6 messages. Everything else is dropped in the kernel, so unrelated
//! traffic costs nothing.
//!
//! Read one packet per `recvmsg` ([`PacketSocket::recv`]), or, after
//! [`PacketSocket::with_ring`], in batches from a receive ring shared with the kernel
//! ([`ring`], [`PacketSocket::drain`]): the SYN prober's way.

pub mod ring;
#[cfg(test)]
mod ring_tests;

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Bytes kept of each packet: an ICMP error with both IP headers (options, extension
/// headers), the quoted TCP header and RFC 4884 extensions after a 128-byte quote (MPLS
/// labels, interface names) fits.
pub const SNAP: u32 = 512;
/// `sll_pkttype` of a packet leaving this host.
pub const PACKET_OUTGOING: u8 = 4;
const SO_TIMESTAMPNS: libc::c_int = 35;

/// A tiny classic-BPF assembler with labels, so that jump offsets are computed, not counted.
pub mod bpf {
    // Opcodes (linux/bpf_common.h).
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MSH: u16 = 0xa0;
    pub const JEQ: u16 = 0x10;
    pub const JSET: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const JA: u16 = 0x00;
    pub const W: u16 = 0x00;
    pub const ST: u16 = 0x02;
    pub const MEM: u16 = 0x60;
    /// Ancillary load of the packet type (SKF_AD_OFF + SKF_AD_PKTTYPE, linux/filter.h).
    pub const SKF_AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;

    /// The offsets the filters load, from the IP header on (the packet views' fields).
    /// TCP fields are relative to the TCP header (loaded `IND`, after `LDX MSH` put the
    /// IPv4 header's length in X); `V6_*` are absolute in an IPv6 packet without extension
    /// headers (the filters pass TCP only right after the fixed header).
    pub mod at {
        use crate::packet::{ip, tcp};
        pub const V4_PROTOCOL: u32 = ip::field::V4_PROTOCOL as u32;
        pub const V6_NEXT_HEADER: u32 = ip::field::V6_NEXT_HEADER as u32;
        pub const SRC_PORT: u32 = tcp::field::SRC_PORT.start as u32;
        pub const DST_PORT: u32 = tcp::field::DST_PORT.start as u32;
        pub const FLAGS: u32 = tcp::field::FLAGS as u32;
        /// Where TCP starts in an IPv6 packet without extension headers.
        pub const V6_TCP: u32 = ip::V6_HEADER_LEN as u32;
        pub const V6_SRC_PORT: u32 = V6_TCP + SRC_PORT;
        pub const V6_DST_PORT: u32 = V6_TCP + DST_PORT;
        pub const V6_FLAGS: u32 = V6_TCP + FLAGS;
    }

    /// One instruction, or a place to jump to.
    #[derive(Clone, Copy, Debug)]
    pub enum Op {
        /// An instruction that does not jump.
        I(u16, u32),
        /// `if A == k goto t else goto f`
        Jeq(u32, &'static str, &'static str),
        /// `if A == k goto t` (else the next instruction)
        JeqOr(u32, &'static str),
        /// `if A & k goto t else goto f`
        Jset(u32, &'static str, &'static str),
        /// `if A & k goto t` (else the next instruction)
        JsetOr(u32, &'static str),
        /// `goto l`
        Ja(&'static str),
        /// A label for the next instruction.
        L(&'static str),
    }

    /// The start of every filter here: `M[0]` = the packet type, then on to label `v4` or
    /// `v6` by the IP version.
    pub fn by_version() -> [Op; 5] {
        use Op::*;
        [
            I(LD | W | ABS, SKF_AD_PKTTYPE),
            I(ST, 0),
            I(LD | B | ABS, 0),
            I(ALU | AND, 0xf0),
            Jeq(0x40, "v4", "v6"),
        ]
    }

    /// Resolve the labels. Panics on a label that is missing or a backward jump: both are
    /// mistakes in a program written here, found by its unit test.
    pub fn assemble(ops: &[Op]) -> Vec<libc::sock_filter> {
        let mut at = std::collections::HashMap::new();
        let mut n = 0usize;
        for op in ops {
            match op {
                Op::L(l) => {
                    at.insert(*l, n);
                }
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        let off = |from: usize, to: &str| -> usize {
            let t = at[to];
            assert!(t > from, "backward jump to {to}");
            t - from - 1
        };
        for op in ops {
            let i = out.len();
            let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
            match *op {
                Op::L(_) => continue,
                Op::I(code, k) => out.push(ins(code, 0, 0, k)),
                Op::Jeq(k, t, f) => out.push(ins(JMP | JEQ, off(i, t) as u8, off(i, f) as u8, k)),
                Op::JeqOr(k, t) => out.push(ins(JMP | JEQ, off(i, t) as u8, 0, k)),
                Op::Jset(k, t, f) => out.push(ins(JMP | JSET, off(i, t) as u8, off(i, f) as u8, k)),
                Op::JsetOr(k, t) => out.push(ins(JMP | JSET, off(i, t) as u8, 0, k)),
                Op::Ja(l) => out.push(ins(JMP | JA, 0, 0, off(i, l) as u32)),
            }
        }
        out
    }
}

/// Most source ports a filter lists one by one (more: the target port decides).
pub const PORTS_LISTED: usize = 16;

/// The filter for SYN probes, on IPv4 or IPv6 (TCP or ICMPv6 right after the fixed header):
/// SYNs leaving (without ACK or RST: our probes, not our kernel's RSTs to the SYN-ACKs),
/// SYN-ACKs and RSTs arriving, and ICMP / ICMPv6 messages arriving. Segments must
/// also be to or from one of `ours` (our reserved source ports) when it is not empty and has
/// at most `PORTS_LISTED`, else to or from `port` when given. Pure ACKs arriving pass too,
/// only to one of `ours` and only when they are listed.
pub fn answers_filter(port: Option<u16>, ours: &[u16]) -> Vec<libc::sock_filter> {
    use bpf::Op::*;
    use bpf::*;
    let ports: Vec<u16> = if !ours.is_empty() && ours.len() <= PORTS_LISTED {
        ours.to_vec()
    } else {
        port.into_iter().collect()
    };
    // Either port of the segment (`sport` and `dport` loads) in `ports`.
    let check = |ops: &mut Vec<bpf::Op>, sport: bpf::Op, dport: bpf::Op| {
        if ports.is_empty() {
            ops.push(Ja("accept"));
            return;
        }
        for load in [sport, dport] {
            ops.push(load);
            ops.extend(ports.iter().map(|&p| JeqOr(u32::from(p), "accept")));
        }
        ops.push(Ja("drop"));
    };
    // With the TCP flags in A: a SYN alone leaving, or SYN-ACK or RST arriving, goes on to
    // `ports`; a pure ACK arriving (no SYN, no RST) to `acks`; anything else is dropped.
    // M[0] holds the packet type.
    let flags = |ops: &mut Vec<bpf::Op>,
                 out: &'static str,
                 inn: &'static str,
                 ports: &'static str,
                 acks: &'static str| {
        ops.extend([
            I(ST, 1),
            I(LD | MEM, 0),
            Jeq(u32::from(PACKET_OUTGOING), out, inn),
            L(out),
            I(LD | MEM, 1),
            I(ALU | AND, 0x16), // SYN, RST, ACK
            Jeq(0x02, ports, "drop"),
            L(inn),
            I(LD | MEM, 1),
            JsetOr(0x04, ports), // RST
            I(ALU | AND, 0x12),
            JeqOr(0x12, ports), // SYN-ACK
            Jeq(0x10, acks, "drop"),
        ]);
    };
    // A pure ACK arriving (a target's answer to a SYN that met the half-open connection of
    // an earlier probe of the flow, see `syn`): only to one of `ours`, when they are listed;
    // the target port alone would pass every ACK of every connection to that service.
    let listed: Vec<u16> = if ours.len() <= PORTS_LISTED {
        ours.to_vec()
    } else {
        Vec::new()
    };
    let acks = |ops: &mut Vec<bpf::Op>, dport: bpf::Op| {
        if !listed.is_empty() {
            ops.push(dport);
            ops.extend(listed.iter().map(|&p| JeqOr(u32::from(p), "accept")));
        }
        ops.push(Ja("drop"));
    };
    // A family's TCP segment, its flags in A: on to its ports or acks by the flags, its ports
    // loaded `mode` (`IND` after `LDX MSH` for IPv4, `ABS` for IPv6) from `tcp` on.
    let segment = |ops: &mut Vec<bpf::Op>, labels: [&'static str; 4], mode: u16, tcp: u32| {
        let [out, inn, to_ports, to_acks] = labels;
        flags(ops, out, inn, to_ports, to_acks);
        ops.push(L(to_acks));
        acks(ops, I(LD | H | mode, tcp + at::DST_PORT));
        ops.push(L(to_ports));
        check(
            ops,
            I(LD | H | mode, tcp + at::SRC_PORT),
            I(LD | H | mode, tcp + at::DST_PORT),
        );
    };
    let mut ops = bpf::by_version().to_vec();
    ops.extend([
        L("v4"),
        I(LD | B | ABS, at::V4_PROTOCOL),
        Jeq(1, "icmp", "v4tcp"),
        L("v4tcp"),
        Jeq(6, "v4flags", "drop"),
        L("v4flags"),
        I(LDX | B | MSH, 0),
        I(LD | B | IND, at::FLAGS),
    ]);
    segment(&mut ops, ["v4out", "v4in", "v4ports", "v4acks"], IND, 0);
    ops.extend([
        L("v6"),
        Jeq(0x60, "v6nh", "drop"),
        L("v6nh"),
        I(LD | B | ABS, at::V6_NEXT_HEADER),
        Jeq(58, "icmp", "v6tcp"),
        L("v6tcp"),
        Jeq(6, "v6flags", "drop"),
        L("v6flags"),
        I(LD | B | ABS, at::V6_FLAGS),
    ]);
    segment(
        &mut ops,
        ["v6out", "v6in", "v6ports", "v6acks"],
        ABS,
        at::V6_TCP,
    );
    ops.extend([
        // ICMP: arriving only.
        L("icmp"),
        I(LD | MEM, 0),
        Jeq(u32::from(PACKET_OUTGOING), "drop", "accept"),
        L("accept"),
        I(RET, SNAP),
        L("drop"),
        I(RET, 0),
    ]);
    bpf::assemble(&ops)
}

/// One packet read from the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes copied into the buffer (at most `SNAP`).
    pub len: usize,
    /// Leaving this host (else arriving, or looped back).
    pub outgoing: bool,
    /// The kernel's timestamp, since the Unix epoch (None: the packet has none of its own).
    pub at: Option<Duration>,
}

/// The packet socket, read through its receive ring when it has one (see [`ring`]).
pub struct PacketSocket {
    fd: OwnedFd,
    ring: Option<ring::Ring>,
    /// Where a packet is read when there is no ring.
    buf: Box<[u8; SNAP as usize]>,
}

impl PacketSocket {
    /// Open a packet socket on every device with `filter` (needs CAP_NET_RAW).
    pub fn open(filter: &[libc::sock_filter]) -> io::Result<PacketSocket> {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2) call; the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        crate::net::setsockopt_int(raw, libc::SOL_SOCKET, SO_TIMESTAMPNS, 1)?;
        let sock = PacketSocket {
            fd,
            ring: None,
            buf: Box::new([0; SNAP as usize]),
        };
        sock.set_filter(filter)?;
        // A large queue: a burst of packets while we are descheduled must not be dropped
        // before it is read. Beyond net.core.rmem_max only with CAP_NET_ADMIN (root).
        const QUEUE: libc::c_int = 8 << 20;
        if crate::net::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, QUEUE).is_err() {
            let _ = crate::net::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, QUEUE);
        }
        // Packets that passed before the filter was attached are not ours to judge.
        let mut buf = [0u8; SNAP as usize];
        while sock.recv(&mut buf).is_ok() {}
        Ok(sock)
    }

    /// Read it from now on through a receive ring ([`ring`]) of about `bytes` with
    /// [`PacketSocket::drain`], when the kernel gives one (else `drain` reads one recvmsg
    /// per packet). `recv` then sees nothing new: packets go to the ring.
    pub fn with_ring(mut self, bytes: usize) -> PacketSocket {
        self.ring = ring::Ring::open(self.fd(), bytes).ok();
        self
    }

    /// Whether packets are read from a receive ring (no system call per packet).
    pub fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Hand every waiting packet (at most `max`) to `f`, from its IP header on, without
    /// blocking; how many there were. From the ring when there is one, else one recvmsg
    /// each (`WouldBlock` ends the batch; another error is returned when it comes first).
    pub fn drain(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> io::Result<usize> {
        if let Some(r) = &mut self.ring {
            return Ok(r.drain(max, f));
        }
        let mut n = 0;
        while n < max {
            match recv_on(self.fd.as_raw_fd(), &mut self.buf[..]) {
                Ok(got) => {
                    n += 1;
                    f(&self.buf[..got.len], got);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if n > 0 || e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Replace the filter (no privilege needed: it is our own socket's), e.g. once the
    /// source ports are known. Packets queued under the old one stay queued.
    pub fn set_filter(&self, filter: &[libc::sock_filter]) -> io::Result<()> {
        let mut prog = filter.to_vec();
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: fprog points to `prog`, alive for the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &fprog as *const libc::sock_fprog as *const libc::c_void,
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Packets the kernel dropped because the queue was full, since the last call.
    pub fn drops(&self) -> u64 {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: st is a writable tpacket_stats of `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut st as *mut libc::tpacket_stats as *mut libc::c_void,
                &mut len,
            )
        };
        if rc == 0 {
            u64::from(st.tp_drops)
        } else {
            0
        }
    }

    /// The next waiting packet from the socket's queue (not the ring); `WouldBlock` when
    /// none is.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        recv_on(self.fd(), buf)
    }
}

/// The next waiting packet of packet socket `fd` into `buf`; `WouldBlock` when none is.
fn recv_on(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: zeroed sockaddr_ll is valid; recvmsg fills it.
    let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut at = None;
    let read_at = crate::timing::realtime_now();
    let len = crate::net::recvmsg_named(
        fd,
        buf,
        &mut from as *mut libc::sockaddr_ll as *mut libc::c_void,
        mem::size_of::<libc::sockaddr_ll>(),
        libc::MSG_DONTWAIT,
        |level, kind, bytes| {
            if level == libc::SOL_SOCKET && kind == SO_TIMESTAMPNS {
                at = crate::timing::parse_scm_timestamping(bytes);
            }
        },
    )?;
    Ok(Received {
        len,
        outgoing: from.sll_pkttype == PACKET_OUTGOING,
        // A stamp not earlier than the read was filled in by the read: the packet
        // passed before the host's timestamping was on (`timing::stamp_before_read`).
        at: crate::timing::stamp_before_read(at, read_at),
    })
}

/// Run a classic BPF program over `pkt` as the kernel would (the instructions the filters
/// here use); returns the bytes to keep (0: drop). For the filters' unit tests.
#[cfg(test)]
pub fn run_filter(prog: &[libc::sock_filter], pkt: &[u8], pkttype: u8) -> u32 {
    use bpf::*;
    let load = |at: u32, n: usize| -> Option<u32> {
        let b = pkt.get(at as usize..at as usize + n)?;
        Some(b.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x)))
    };
    let (mut a, mut x, mut pc, mut m) = (0u32, 0u32, 0usize, [0u32; 16]);
    loop {
        let i = prog[pc];
        pc += 1;
        let k = i.k;
        let loaded = match i.code {
            c if c == LD | W | ABS && k == SKF_AD_PKTTYPE => Some(u32::from(pkttype)),
            c if c == ST => {
                m[k as usize] = a;
                continue;
            }
            c if c == LD | MEM => Some(m[k as usize]),
            c if c == LD | B | ABS => load(k, 1),
            c if c == LD | H | ABS => load(k, 2),
            c if c == LD | B | IND => load(x + k, 1),
            c if c == LD | H | IND => load(x + k, 2),
            c if c == LDX | B | MSH => {
                match load(k, 1) {
                    Some(v) => x = (v & 0x0f) * 4,
                    None => return 0,
                }
                continue;
            }
            c if c == ALU | AND => {
                a &= k;
                continue;
            }
            c if c == JMP | JA => {
                pc += k as usize;
                continue;
            }
            c if c == JMP | JEQ => {
                pc += usize::from(if a == k { i.jt } else { i.jf });
                continue;
            }
            c if c == JMP | JSET => {
                pc += usize::from(if a & k != 0 { i.jt } else { i.jf });
                continue;
            }
            c if c == RET => return k,
            c => panic!("instruction {c:#x} at {} not handled", pc - 1),
        };
        match loaded {
            Some(v) => a = v,
            None => return 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::syn::{build_syn, SynFields};
    use std::net::SocketAddr;

    fn syn(src: &str, dst: &str) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let n = build_syn(
            &mut buf,
            &SynFields {
                src: src.parse::<SocketAddr>().unwrap(),
                dst: dst.parse::<SocketAddr>().unwrap(),
                seq: 7,
                ip_id: 1,
                ttl: 64,
            },
        )
        .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn the_answers_filter_passes_syns_rsts_acks_to_us_and_icmp_only() {
        for (src, dst, tcp_at, proto_at) in [
            ("10.0.0.1:40000", "10.0.0.2:12001", 20, 9),
            ("[fd00::1]:40000", "[fd00::2]:12001", 40, 6),
        ] {
            let pkt = syn(src, dst);
            for (f, listed) in [
                (answers_filter(Some(12001), &[]), false),
                (answers_filter(None, &[]), false),
                (answers_filter(None, &[40000]), true),
                (answers_filter(Some(80), &[1, 2, 40000]), true),
                (
                    answers_filter(None, &(39985..=40000).collect::<Vec<_>>()),
                    true,
                ),
            ] {
                const OUT: u8 = PACKET_OUTGOING;
                const IN: u8 = 0; // PACKET_HOST
                assert_eq!(run_filter(&f, &pkt, OUT), SNAP, "our SYN leaving");
                assert_eq!(
                    run_filter(&f, &pkt, IN),
                    0,
                    "a SYN arriving (loopback's copy)"
                );
                let mut synack = pkt.clone();
                synack[tcp_at + 13] = 0x12;
                assert_eq!(run_filter(&f, &synack, IN), SNAP, "SYN-ACK arriving");
                assert_eq!(run_filter(&f, &synack, OUT), 0, "a SYN-ACK leaving");
                let mut rst = pkt.clone();
                rst[tcp_at + 13] = 0x14; // RST+ACK
                assert_eq!(run_filter(&f, &rst, IN), SNAP, "RST arriving");
                rst[tcp_at + 13] = 0x04;
                assert_eq!(run_filter(&f, &rst, OUT), 0, "our kernel's RST leaving");
                let mut ack = pkt.clone();
                ack[tcp_at + 13] = 0x10; // a plain ACK, to the target's port
                assert_eq!(run_filter(&f, &ack, IN), 0, "ACK");
                assert_eq!(run_filter(&f, &ack, OUT), 0, "ACK");
                // A pure ACK from the target to our port: only when our ports are listed.
                let mut to_us = syn(dst, src);
                to_us[tcp_at + 13] = 0x10;
                let want = if listed { SNAP } else { 0 };
                assert_eq!(run_filter(&f, &to_us, IN), want, "ACK to our port");
                assert_eq!(run_filter(&f, &to_us, OUT), 0, "ACK to our port, leaving");
                to_us[tcp_at + 13] = 0x11; // FIN-ACK passes too (`syn::classify` skips it)
                assert_eq!(run_filter(&f, &to_us, IN), want, "FIN-ACK to our port");
                let mut icmp = pkt.clone();
                icmp[proto_at] = if tcp_at == 20 { 1 } else { 58 };
                assert_eq!(run_filter(&f, &icmp, IN), SNAP, "ICMP arriving");
                assert_eq!(run_filter(&f, &icmp, OUT), 0, "ICMP leaving");
                let mut udp = pkt.clone();
                udp[proto_at] = 17;
                assert_eq!(run_filter(&f, &udp, IN), 0, "UDP");
                assert_eq!(run_filter(&f, &pkt[..tcp_at + 10], OUT), 0, "truncated");
            }
            // Another port: only without a port filter.
            let out = PACKET_OUTGOING;
            assert_eq!(run_filter(&answers_filter(Some(80), &[]), &pkt, out), 0);
            assert_eq!(run_filter(&answers_filter(None, &[1, 2]), &pkt, out), 0);
            assert_eq!(run_filter(&answers_filter(None, &[]), &pkt, out), SNAP);
            // Too many of ours to list: the target port decides.
            let many: Vec<u16> = (1..=PORTS_LISTED as u16 + 1).collect();
            assert_eq!(
                run_filter(&answers_filter(Some(12001), &many), &pkt, out),
                SNAP
            );
            assert_eq!(run_filter(&answers_filter(Some(80), &many), &pkt, out), 0);
            // ... and pure ACKs are not passed (the target port alone would pass them all).
            let mut to_us = syn(dst, src);
            to_us[tcp_at + 13] = 0x10;
            let f = answers_filter(Some(12001), &(39990..=40010).collect::<Vec<_>>());
            assert_eq!(run_filter(&f, &to_us, 0), 0);
        }
        assert_eq!(run_filter(&answers_filter(None, &[]), &[0x20, 0, 0], 0), 0);
        assert_eq!(run_filter(&answers_filter(None, &[]), &[], 0), 0);
    }
}
