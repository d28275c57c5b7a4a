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

/// Bytes of each packet kept: the IP and TCP headers are enough.
const SNAP: u32 = 128;
const PACKET_OUTGOING: u8 = 4;
const SO_TIMESTAMPNS: libc::c_int = 35;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: IPv4 or IPv6 (no extension headers) TCP with SYN set, from or to `port`.
/// Packets start at the IP header (SOCK_DGRAM packet socket).
pub fn syn_filter(port: u16) -> Vec<libc::sock_filter> {
    let p = u32::from(port);
    const ACCEPT: usize = 20;
    const DROP: usize = 21;
    const V6: usize = 12;
    // Relative jump from instruction `at` to `to`.
    let j = |at: usize, to: usize| (to - at - 1) as u8;
    vec![
        ins(LD | B | ABS, 0, 0, 0),                    // 0: version/IHL
        ins(ALU | AND, 0, 0, 0xf0),                    // 1
        ins(JMP | JEQ, 0, j(2, V6), 0x40),             // 2: IPv4?
        ins(LD | B | ABS, 0, 0, 9),                    // 3: protocol
        ins(JMP | JEQ, 0, j(4, DROP), 6),              // 4: TCP?
        ins(LDX | B | MSH, 0, 0, 0),                   // 5: X = IP header length
        ins(LD | B | IND, 0, 0, 13),                   // 6: TCP flags
        ins(JMP | JSET, 0, j(7, DROP), 0x02),          // 7: SYN?
        ins(LD | H | IND, 0, 0, 0),                    // 8: source port
        ins(JMP | JEQ, j(9, ACCEPT), 0, p),            // 9
        ins(LD | H | IND, 0, 0, 2),                    // 10: destination port
        ins(JMP | JEQ, j(11, ACCEPT), j(11, DROP), p), // 11
        ins(LD | B | ABS, 0, 0, 6),                    // 12: IPv6 next header
        ins(JMP | JEQ, 0, j(13, DROP), 6),             // 13: TCP?
        ins(LD | B | ABS, 0, 0, 40 + 13),              // 14: TCP flags
        ins(JMP | JSET, 0, j(15, DROP), 0x02),         // 15: SYN?
        ins(LD | H | ABS, 0, 0, 40),                   // 16: source port
        ins(JMP | JEQ, j(17, ACCEPT), 0, p),           // 17
        ins(LD | H | ABS, 0, 0, 42),                   // 18: destination port
        ins(JMP | JEQ, j(19, ACCEPT), j(19, DROP), p), // 19
        ins(RET, 0, 0, SNAP),                          // 20: accept
        ins(RET, 0, 0, 0),                             // 21: drop
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
    /// Kernel timestamp, since the Unix epoch.
    pub at: Duration,
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
    first_syn: Option<Duration>,
    syns: u32,
    /// The SYNs' sequence number; None after SYNs that disagree (a stale connection that
    /// had the same port): then no ISN is trusted.
    isn: Option<u32>,
    isn_conflict: bool,
    /// The first SYN-ACK in.
    first_synack: Option<Duration>,
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

    /// Our initial sequence number, once our SYN was seen.
    pub fn isn(&self) -> Option<u32> {
        self.isn
    }

    /// First SYN out to first SYN-ACK in. None when either was not seen (or SYNs were
    /// retransmitted).
    pub fn time(&self) -> Option<Duration> {
        match (self.first_syn, self.first_synack) {
            (Some(a), Some(b)) if self.syns == 1 && b >= a => Some(b - a),
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
        tap.drain(|_| {});
        Ok(tap)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read every waiting packet, calling `f` for each SYN.
    pub fn drain(&self, mut f: impl FnMut(Syn)) {
        let mut buf = [0u8; SNAP as usize];
        loop {
            // SAFETY: zeroed sockaddr_ll is valid; recvmsg fills it.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut at = None;
            let got = recv_from_ll(self.fd(), &mut buf, &mut from, |level, kind, bytes| {
                if level == libc::SOL_SOCKET && kind == SO_TIMESTAMPNS {
                    at = crate::timing::parse_scm_timestamping(bytes);
                }
            });
            let Ok(n) = got else { return };
            let (Some(h), Some(at)) = (parse_syn(&buf[..n]), at) else {
                continue;
            };
            f(Syn {
                src_port: h.src_port,
                dst_port: h.dst_port,
                ack: h.flags & 0x10 != 0,
                outgoing: from.sll_pkttype == PACKET_OUTGOING,
                seq: h.seq,
                at,
            });
        }
    }

    /// Read every waiting packet into `hs`: the connection's ISN as soon as its SYN has
    /// left, its handshake time (`Handshake::time`) once the SYN-ACK is in.
    pub fn update(&self, hs: &mut Handshake) {
        self.drain(|s| hs.observe(&s));
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

    #[test]
    fn filter_jumps_stay_inside_the_program() {
        let f = syn_filter(12001);
        for (i, ins) in f.iter().enumerate() {
            if ins.code & 0x07 == JMP {
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
        let v4 = unhex(concat!(
            "4500003c046b40003f061ebc0ac901020ac90202a0290051851b524800000000",
            "a002faf018c40000020405b40402080ae5c5cec7000000000103030a"
        ));
        assert_eq!(parse_syn(&v4), hdr(41001, 81, 0x851b_5248, 0x02));
        let v6 = unhex(concat!(
            "6001cc3a0028063ffd010001000000000000000000000002fd01000200000000",
            "0000000000000002a4110053fb27c43300000000a002fd20fa380000020405a0",
            "0402080ad3428bf8000000000103030a"
        ));
        assert_eq!(parse_syn(&v6), hdr(42001, 83, 0xfb27_c433, 0x02));
    }

    fn syn(src_port: u16, dst_port: u16, ack: bool, outgoing: bool, seq: u32, ms: u64) -> Syn {
        Syn {
            src_port,
            dst_port,
            ack,
            outgoing,
            seq,
            at: Duration::from_millis(ms),
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
    fn syns_that_disagree_give_no_isn() {
        // A stale SYN of an earlier connection on the same port, then ours.
        let mut hs = Handshake::new(40000);
        hs.observe(&syn(40000, 12001, false, true, 100, 1));
        hs.observe(&syn(40000, 12001, false, true, 200, 2));
        hs.observe(&syn(40000, 12001, false, true, 100, 3));
        assert_eq!(hs.isn(), None);
    }
}
