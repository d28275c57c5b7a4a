//! Wire timestamps of each ping's handshake, from a packet socket (needs CAP_NET_RAW).
//!
//! A packet socket sees our SYN leave and the SYN-ACK arrive at the network device, with
//! the same kernel timestamps tcpdump records: the handshake time measured there is the
//! wire's own, without the TCP/IP stack's processing on either side. A classic BPF filter
//! in the kernel passes only SYN segments to or from the target port, so unrelated traffic
//! costs nothing. Without privileges the client falls back to the kernel's TCP_INFO figure.
//!
//! The same SYN carries our initial sequence number. A [`Handshake`] gathers what the
//! socket saw of one connection over several reads: the ISN right after `connect()` (the
//! outgoing SYN's copy is queued before the call returns), the timing once it completes.
//!
//! A stamp is the packet's only when it is earlier than the clock read just before the
//! `recvmsg` that returned it. Linux stamps packets only while software receive
//! timestamping is switched on for the whole host, and switches it on from deferred work
//! after the first socket asks; for a packet that passed before, it fills in the time of
//! the read (`timing::stamp_before_read`). On a veth path the whole handshake happens
//! inside `connect()`, so both copies are then read one after the other: 30–65 µs
//! handshakes came out as 2–4 µs. Such a handshake is not timed here (the client falls back
//! to TCP_INFO's figure, and `connect_clock` says `kernel`).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

// Classic BPF opcodes (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const AND: u16 = 0x50;
const W: u16 = 0x00;
const ST: u16 = 0x02;
const MISC: u16 = 0x07;
const MEM: u16 = 0x60;
const JA: u16 = 0x00;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;
/// Ancillary load of the packet type (SKF_AD_OFF + SKF_AD_PKTTYPE, linux/filter.h).
const SKF_AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;

/// Bytes of each packet kept: the IP and TCP headers are enough.
const SNAP: u32 = 128;
const PACKET_OUTGOING: u8 = 4;
const PACKET_OUTGOING_K: u32 = PACKET_OUTGOING as u32;
const SO_TIMESTAMPNS: libc::c_int = 35;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: IPv4 or IPv6 (no extension headers) TCP with SYN set, leaving for `port` or
/// arriving from it. The direction matters on loopback, where every packet passes twice
/// (out, then in): our own SYN coming back in, and the server's SYN-ACK going out, are
/// dropped in the kernel, so each handshake costs two packets here instead of four.
/// Packets start at the IP header (SOCK_DGRAM packet socket).
pub fn syn_filter(port: u16) -> Vec<libc::sock_filter> {
    let p = u32::from(port);
    const V6: usize = 14;
    const PORTS: usize = 21;
    const ACCEPT: usize = 28;
    const DROP: usize = 29;
    // Relative jump from instruction `at` to `to`.
    let j = |at: usize, to: usize| (to - at - 1) as u8;
    vec![
        ins(LD | W | ABS, 0, 0, SKF_AD_PKTTYPE), // 0: A = packet type
        ins(ST, 0, 0, 0),                        // 1: M[0] = packet type
        ins(LD | B | ABS, 0, 0, 0),              // 2: version/IHL
        ins(ALU | AND, 0, 0, 0xf0),              // 3
        ins(JMP | JEQ, 0, j(4, V6), 0x40),       // 4: IPv4?
        ins(LD | B | ABS, 0, 0, 9),              // 5: protocol
        ins(JMP | JEQ, 0, j(6, DROP), 6),        // 6: TCP?
        ins(LDX | B | MSH, 0, 0, 0),             // 7: X = IP header length
        ins(LD | B | IND, 0, 0, 13),             // 8: TCP flags
        ins(JMP | JSET, 0, j(9, DROP), 0x02),    // 9: SYN?
        ins(LD | H | IND, 0, 0, 0),              // 10: source port
        ins(ST, 0, 0, 1),                        // 11: M[1] = source port
        ins(LD | H | IND, 0, 0, 2),              // 12: A = destination port
        ins(JMP | JA, 0, 0, u32::from(j(13, PORTS))), // 13
        ins(LD | B | ABS, 0, 0, 6),              // 14: IPv6 next header
        ins(JMP | JEQ, 0, j(15, DROP), 6),       // 15: TCP?
        ins(LD | B | ABS, 0, 0, 40 + 13),        // 16: TCP flags
        ins(JMP | JSET, 0, j(17, DROP), 0x02),   // 17: SYN?
        ins(LD | H | ABS, 0, 0, 40),             // 18: source port
        ins(ST, 0, 0, 1),                        // 19: M[1] = source port
        ins(LD | H | ABS, 0, 0, 42),             // 20: A = destination port
        ins(MISC | TAX, 0, 0, 0),                // 21: X = destination port
        ins(LD | MEM, 0, 0, 0),                  // 22: A = packet type
        ins(JMP | JEQ, 0, j(23, 26), PACKET_OUTGOING_K), // 23: leaving?
        ins(MISC | TXA, 0, 0, 0),                // 24: A = destination port
        ins(JMP | JEQ, j(25, ACCEPT), j(25, DROP), p), // 25: to the target
        ins(LD | MEM, 0, 0, 1),                  // 26: A = source port
        ins(JMP | JEQ, j(27, ACCEPT), j(27, DROP), p), // 27: from the target
        ins(RET, 0, 0, SNAP),                    // 28: accept
        ins(RET, 0, 0, 0),                       // 29: drop
    ]
}

/// A SYN or SYN-ACK seen by the packet socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syn {
    pub src_port: u16,
    pub dst_port: u16,
    pub ack: bool,
    pub outgoing: bool,
    /// The segment's sequence number: for our outgoing SYN, our ISN.
    pub seq: u32,
    /// Kernel timestamp, since the Unix epoch; None when the packet has none of its own
    /// (it passed before the host's timestamping was on).
    pub at: Option<Duration>,
}

/// The TCP header fields of a segment that `parse_syn` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: u8,
}

/// Ports, sequence number and flags of a TCP segment given from its IP header on.
pub fn parse_syn(pkt: &[u8]) -> Option<SynHeader> {
    let tcp = match pkt.first()? >> 4 {
        4 => pkt.get(usize::from(pkt[0] & 0x0f) * 4..)?,
        6 => pkt.get(40..)?,
        _ => return None,
    };
    if tcp.len() < 14 {
        return None;
    }
    Some(SynHeader {
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags: tcp[13],
    })
}

/// What the packet socket saw of the handshake of the connection from one local port,
/// gathered over as many reads (`WireTap::update`) as it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    port: u16,
    /// Our first SYN out, and how many left (a retransmission makes the timing ambiguous).
    /// Outer None: not seen; inner None: seen without a timestamp of its own.
    first_syn: Option<Option<Duration>>,
    syns: u32,
    /// The SYNs' sequence number; None after SYNs that disagree (a stale connection that
    /// had the same port): then no ISN is trusted.
    isn: Option<u32>,
    isn_conflict: bool,
    /// The first SYN-ACK in (as `first_syn`).
    first_synack: Option<Option<Duration>>,
}

impl Handshake {
    pub fn new(port: u16) -> Self {
        Handshake {
            port,
            first_syn: None,
            syns: 0,
            isn: None,
            isn_conflict: false,
            first_synack: None,
        }
    }

    /// Take one segment into account; those of other connections are ignored.
    pub fn observe(&mut self, s: &Syn) {
        if s.outgoing && !s.ack && s.src_port == self.port {
            self.syns += 1;
            self.first_syn = self.first_syn.or(Some(s.at));
            match self.isn {
                None if !self.isn_conflict => self.isn = Some(s.seq),
                Some(isn) if isn != s.seq => {
                    self.isn = None;
                    self.isn_conflict = true;
                }
                _ => {}
            }
        } else if !s.outgoing && s.ack && s.dst_port == self.port {
            self.first_synack = self.first_synack.or(Some(s.at));
        }
    }

    /// Both our SYN and the SYN-ACK were seen.
    pub fn complete(&self) -> bool {
        self.first_syn.is_some() && self.first_synack.is_some()
    }

    /// Our initial sequence number, once our SYN was seen.
    pub fn isn(&self) -> Option<u32> {
        self.isn
    }

    /// First SYN out to first SYN-ACK in. None when either was not seen or has no
    /// timestamp of its own, or when SYNs were retransmitted.
    pub fn time(&self) -> Option<Duration> {
        match (self.first_syn, self.first_synack) {
            (Some(Some(a)), Some(Some(b))) if self.syns == 1 && b >= a => Some(b - a),
            _ => None,
        }
    }
}

/// The packet socket.
pub struct WireTap {
    fd: OwnedFd,
}

impl WireTap {
    /// Open a packet socket for SYNs from or to `port` (needs CAP_NET_RAW).
    pub fn open(port: u16) -> io::Result<WireTap> {
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
        let mut prog = syn_filter(port);
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: fprog points to `prog`, alive for the call.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &fprog as *const libc::sock_fprog as *const libc::c_void,
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        crate::net::setsockopt_int(raw, libc::SOL_SOCKET, SO_TIMESTAMPNS, 1)?;
        let tap = WireTap { fd };
        // Packets that passed before the filter was attached are not ours to judge.
        tap.drain(|_| true);
        Ok(tap)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read the waiting packets, calling `f` for each SYN, until the queue is empty or `f`
    /// returns false.
    pub fn drain(&self, mut f: impl FnMut(Syn) -> bool) {
        let mut buf = [0u8; SNAP as usize];
        loop {
            // SAFETY: zeroed sockaddr_ll is valid; recvmsg fills it.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut at = None;
            let read_at = crate::timing::realtime_now();
            let got = recv_from_ll(self.fd(), &mut buf, &mut from, |level, kind, bytes| {
                if level == libc::SOL_SOCKET && kind == SO_TIMESTAMPNS {
                    at = crate::timing::parse_scm_timestamping(bytes);
                }
            });
            let Ok(n) = got else { return };
            let Some(h) = parse_syn(&buf[..n]) else {
                continue;
            };
            let at = crate::timing::stamp_before_read(at, read_at);
            let more = f(Syn {
                src_port: h.src_port,
                dst_port: h.dst_port,
                ack: h.flags & 0x10 != 0,
                outgoing: from.sll_pkttype == PACKET_OUTGOING,
                seq: h.seq,
                at,
            });
            if !more {
                return;
            }
        }
    }

    /// Read the waiting packets into `hs`: the connection's ISN as soon as its SYN has
    /// left, its handshake time (`Handshake::time`) once the SYN-ACK is in.
    pub fn update(&self, hs: &mut Handshake) {
        // Read no further than this handshake's SYN-ACK: no system call to learn that the
        // queue is empty, and none at all once the handshake is complete. Packets queued
        // after it are older than the next ping's SYN, which reads past them.
        if hs.complete() {
            return;
        }
        self.drain(|s| {
            hs.observe(&s);
            !hs.complete()
        });
    }
}

/// recvmsg with the sender's link-layer address and control messages.
fn recv_from_ll(
    fd: RawFd,
    data: &mut [u8],
    from: &mut libc::sockaddr_ll,
    on_cmsg: impl FnMut(libc::c_int, libc::c_int, &[u8]),
) -> io::Result<usize> {
    crate::net::recvmsg_named(
        fd,
        data,
        from as *mut libc::sockaddr_ll as *mut libc::c_void,
        mem::size_of::<libc::sockaddr_ll>(),
        libc::MSG_DONTWAIT,
        on_cmsg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a classic BPF program (the instructions `syn_filter` uses) over `pkt`, as the
    /// kernel would for a packet of type `pkttype`; returns the bytes to keep (0: drop).
    fn run_filter(prog: &[libc::sock_filter], pkt: &[u8], pkttype: u8) -> u32 {
        let load = |at: u32, n: usize| -> Option<u32> {
            let b = pkt.get(at as usize..at as usize + n)?;
            Some(b.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x)))
        };
        let (mut a, mut x, mut m, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            let k = i.k;
            match i.code {
                c if c == LD | W | ABS && k == SKF_AD_PKTTYPE => a = u32::from(pkttype),
                c if c == LD | B | ABS => match load(k, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | H | ABS => match load(k, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | B | IND => match load(x + k, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | H | IND => match load(x + k, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LDX | B | MSH => match load(k, 1) {
                    Some(v) => x = (v & 0x0f) * 4,
                    None => return 0,
                },
                c if c == ST => m[k as usize] = a,
                c if c == LD | MEM => a = m[k as usize],
                c if c == ALU | AND => a &= k,
                c if c == MISC | TAX => x = a,
                c if c == MISC | TXA => a = x,
                c if c == JMP | JA => pc += k as usize,
                c if c == JMP | JEQ => pc += usize::from(if a == k { i.jt } else { i.jf }),
                c if c == JMP | JSET => pc += usize::from(if a & k != 0 { i.jt } else { i.jf }),
                c if c == RET => return k,
                c => panic!("instruction {c:#x} at {} not handled", pc - 1),
            }
        }
    }

    /// A SYN-ACK answering `syn` (ports swapped, ACK set), for the filter.
    fn answer(syn: &[u8], v6: bool) -> Vec<u8> {
        let mut p = syn.to_vec();
        let t = if v6 { 40 } else { usize::from(p[0] & 0x0f) * 4 };
        let (sp, dp) = ([p[t], p[t + 1]], [p[t + 2], p[t + 3]]);
        p[t..t + 2].copy_from_slice(&dp);
        p[t + 2..t + 4].copy_from_slice(&sp);
        p[t + 13] |= 0x10;
        p
    }

    #[test]
    fn the_filter_keeps_our_syn_out_and_the_syn_ack_in_only() {
        const HOST: u8 = 0;
        for (syn, v6, target) in [(real_syn_v4(), false, 81), (real_syn_v6(), true, 83)] {
            let f = syn_filter(target);
            let synack = answer(&syn, v6);
            assert_eq!(
                run_filter(&f, &syn, PACKET_OUTGOING),
                SNAP,
                "our SYN leaving"
            );
            assert_eq!(run_filter(&f, &synack, HOST), SNAP, "the SYN-ACK arriving");
            // Loopback's second copies, and the server side's packets.
            assert_eq!(run_filter(&f, &syn, HOST), 0, "our SYN arriving (loopback)");
            assert_eq!(
                run_filter(&f, &synack, PACKET_OUTGOING),
                0,
                "SYN-ACK leaving"
            );
            // Another target port.
            let other = syn_filter(target + 1);
            assert_eq!(run_filter(&other, &syn, PACKET_OUTGOING), 0);
            assert_eq!(run_filter(&other, &synack, HOST), 0);
            // Not a SYN: a plain ACK of the same connection.
            let t = if v6 { 40 } else { 20 };
            let mut ack = syn.clone();
            ack[t + 13] = 0x10;
            assert_eq!(run_filter(&f, &ack, PACKET_OUTGOING), 0, "ACK");
            // Not TCP.
            let mut udp = syn.clone();
            udp[if v6 { 6 } else { 9 }] = 17;
            assert_eq!(run_filter(&f, &udp, PACKET_OUTGOING), 0, "UDP");
            // Truncated inside the TCP header: dropped, never read past the end.
            assert_eq!(
                run_filter(&f, &syn[..t + 10], PACKET_OUTGOING),
                0,
                "truncated"
            );
        }
    }

    #[test]
    fn filter_jumps_stay_inside_the_program() {
        let f = syn_filter(12001);
        for (i, ins) in f.iter().enumerate() {
            if ins.code == JMP | JA {
                assert!(i + 1 + (ins.k as usize) < f.len(), "ja of {i}");
            } else if ins.code & 0x07 == JMP {
                assert!(i + 1 + (ins.jt as usize) < f.len(), "jt of {i}");
                assert!(i + 1 + (ins.jf as usize) < f.len(), "jf of {i}");
            }
        }
        assert_eq!(f.last().unwrap().code, RET);
    }

    fn hdr(src_port: u16, dst_port: u16, seq: u32, flags: u8) -> Option<SynHeader> {
        Some(SynHeader {
            src_port,
            dst_port,
            seq,
            flags,
        })
    }

    #[test]
    fn syn_ports_and_flags() {
        // IPv4 header (IHL 5) + TCP 40000 -> 12001, seq 1, flags SYN.
        let mut v4 = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v4.extend_from_slice(&[0x9c, 0x40, 0x2e, 0xe1, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
        assert_eq!(parse_syn(&v4), hdr(40000, 12001, 1, 0x02));
        assert_eq!(parse_syn(&v4[..30]), None);
        let mut v6 = vec![0x60; 1];
        v6.extend_from_slice(&[0; 39]);
        v6.extend_from_slice(&[0x2e, 0xe1, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x12]);
        assert_eq!(parse_syn(&v6), hdr(12001, 40000, 1, 0x12));
        assert_eq!(parse_syn(&[0x20, 1, 2]), None);
        assert_eq!(parse_syn(&[]), None);
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_isn_of_real_syns() {
        // Real SYNs, as they left a Linux client: the packets quoted in full by the
        // captured errors v4_host_unreach and v6_admin_prohib of
        // tests/fixtures/icmp-captured.txt (from byte 28 and byte 8 of those captures; the
        // routers decremented the TTL / hop limit). The ISNs are bytes 4..8 of the TCP
        // header: 85 1b 52 48 and fb 27 c4 33.
        assert_eq!(parse_syn(&real_syn_v4()), hdr(41001, 81, 0x851b_5248, 0x02));
        assert_eq!(parse_syn(&real_syn_v6()), hdr(42001, 83, 0xfb27_c433, 0x02));
    }

    fn real_syn_v4() -> Vec<u8> {
        unhex(concat!(
            "4500003c046b40003f061ebc0ac901020ac90202a0290051851b524800000000",
            "a002faf018c40000020405b40402080ae5c5cec7000000000103030a"
        ))
    }

    fn real_syn_v6() -> Vec<u8> {
        unhex(concat!(
            "6001cc3a0028063ffd010001000000000000000000000002fd01000200000000",
            "0000000000000002a4110053fb27c43300000000a002fd20fa380000020405a0",
            "0402080ad3428bf8000000000103030a"
        ))
    }

    fn syn(src_port: u16, dst_port: u16, ack: bool, outgoing: bool, seq: u32, ms: u64) -> Syn {
        Syn {
            src_port,
            dst_port,
            ack,
            outgoing,
            seq,
            at: Some(Duration::from_millis(ms)),
        }
    }

    #[test]
    fn the_isn_is_known_before_the_handshake_completes_and_the_time_after() {
        let mut hs = Handshake::new(40000);
        // Another connection's SYN and SYN-ACK, and our SYN's incoming loopback copy.
        hs.observe(&syn(40001, 12001, false, true, 7, 1));
        hs.observe(&syn(12001, 40001, true, false, 9, 2));
        hs.observe(&syn(40000, 12001, false, false, 5, 3));
        assert_eq!((hs.isn(), hs.time()), (None, None));
        // Our SYN leaves: the ISN is known at once, the time only with the SYN-ACK.
        hs.observe(&syn(40000, 12001, false, true, 0xfeed_f00d, 10));
        assert_eq!((hs.isn(), hs.time()), (Some(0xfeed_f00d), None));
        hs.observe(&syn(12001, 40000, true, false, 1234, 13));
        hs.observe(&syn(12001, 40000, true, false, 1234, 20)); // a repeated SYN-ACK
        assert_eq!(hs.isn(), Some(0xfeed_f00d));
        assert_eq!(hs.time(), Some(Duration::from_millis(3)));
        // A retransmitted SYN keeps the ISN but makes the time ambiguous, as before.
        hs.observe(&syn(40000, 12001, false, true, 0xfeed_f00d, 1010));
        assert_eq!((hs.isn(), hs.time()), (Some(0xfeed_f00d), None));
    }

    #[test]
    fn the_handshake_is_complete_with_our_syn_and_its_syn_ack() {
        let mut hs = Handshake::new(40000);
        assert!(!hs.complete());
        hs.observe(&syn(40000, 80, false, true, 7, 1));
        assert!(!hs.complete(), "SYN only");
        hs.observe(&syn(80, 40001, true, false, 9, 2));
        assert!(!hs.complete(), "another connection's SYN-ACK");
        hs.observe(&syn(80, 40000, true, false, 9, 3));
        assert!(hs.complete());
    }

    #[test]
    fn a_packet_without_a_timestamp_of_its_own_leaves_the_handshake_untimed() {
        // As a fresh client saw it before the host's timestamping was on: both copies
        // read one after the other once connect() returned, their stamps filled in at the
        // reads (rejected by `stamp_before_read`), 1.5 µs apart for a 55 µs handshake.
        for (syn_at, synack_at) in [(None, None), (Some(1), None), (None, Some(2))] {
            let mut hs = Handshake::new(40000);
            let mut s = syn(40000, 12001, false, true, 0xfeed_f00d, 0);
            s.at = syn_at.map(Duration::from_millis);
            hs.observe(&s);
            let mut a = syn(12001, 40000, true, false, 77, 0);
            a.at = synack_at.map(Duration::from_millis);
            hs.observe(&a);
            assert!(hs.complete(), "both seen: nothing more to read");
            assert_eq!(hs.isn(), Some(0xfeed_f00d), "the ISN does not need a stamp");
            assert_eq!(hs.time(), None, "{syn_at:?} {synack_at:?}");
            // A later stamped copy (a repeated SYN-ACK) does not time it either.
            hs.observe(&syn(12001, 40000, true, false, 77, 5));
            assert_eq!(hs.time(), None);
        }
    }

    #[test]
    fn syns_that_disagree_give_no_isn() {
        // A stale SYN of an earlier connection on the same port, then ours.
        let mut hs = Handshake::new(40000);
        hs.observe(&syn(40000, 12001, false, true, 100, 1));
        hs.observe(&syn(40000, 12001, false, true, 200, 2));
        hs.observe(&syn(40000, 12001, false, true, 100, 3));
        assert_eq!(hs.isn(), None);
    }
}
