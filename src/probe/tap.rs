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
use std::os::fd::RawFd;
use std::time::Duration;

use super::capture::{PacketSocket, PACKET_OUTGOING};
use crate::packet::ip;
use crate::packet::tcp::{Flags, TcpPrefix};

/// Bytes of each packet kept: the IP and TCP headers are enough.
const SNAP: u32 = 128;

/// The filter: IPv4 or IPv6 (no extension headers) TCP with SYN set, leaving for `port` or
/// arriving from it. The direction matters on loopback, where every packet passes twice
/// (out, then in): our own SYN coming back in, and the server's SYN-ACK going out, are
/// dropped in the kernel, so each handshake costs two packets here instead of four.
/// Packets start at the IP header (SOCK_DGRAM packet socket).
pub fn syn_filter(port: u16) -> Vec<libc::sock_filter> {
    use super::capture::bpf::Op::*;
    use super::capture::bpf::*;
    let p = u32::from(port);
    let mut ops = by_version().to_vec(); // M[0] = packet type
    ops.extend([
        L("v4"),
        I(LD | B | ABS, at::V4_PROTOCOL),
        Jeq(6, "v4tcp", "drop"),
        L("v4tcp"),
        I(LDX | B | MSH, 0), // X = IP header length
        I(LD | B | IND, at::FLAGS),
        Jset(0x02, "v4ports", "drop"), // SYN
        L("v4ports"),
        I(LD | H | IND, at::SRC_PORT),
        I(ST, 1), // M[1] = source port
        I(LD | H | IND, at::DST_PORT),
        I(ST, 2), // M[2] = destination port
        Ja("direction"),
        L("v6"),
        I(LD | B | ABS, at::V6_NEXT_HEADER),
        Jeq(6, "v6tcp", "drop"),
        L("v6tcp"),
        I(LD | B | ABS, at::V6_FLAGS),
        Jset(0x02, "v6ports", "drop"), // SYN
        L("v6ports"),
        I(LD | H | ABS, at::V6_SRC_PORT),
        I(ST, 1),
        I(LD | H | ABS, at::V6_DST_PORT),
        I(ST, 2),
        L("direction"),
        I(LD | MEM, 0),
        Jeq(u32::from(PACKET_OUTGOING), "out", "in"),
        L("out"),
        I(LD | MEM, 2),
        Jeq(p, "accept", "drop"), // leaving, to the target
        L("in"),
        I(LD | MEM, 1),
        Jeq(p, "accept", "drop"), // arriving, from the target
        L("accept"),
        I(RET, SNAP),
        L("drop"),
        I(RET, 0),
    ]);
    assemble(&ops)
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
    // The filter passed only TCP right after the IP header (IPv6: no extension headers).
    let tcp = match pkt.first()? >> 4 {
        4 => pkt.get(ip::v4_header_len(pkt[0])..)?,
        6 => pkt.get(ip::V6_HEADER_LEN..)?,
        _ => return None,
    };
    let t = TcpPrefix::new_checked(tcp)?;
    Some(SynHeader {
        src_port: t.src_port(),
        dst_port: t.dst_port(),
        seq: t.seq()?,
        flags: t.flags()?.0,
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
    sock: PacketSocket,
}

impl WireTap {
    /// Open a packet socket for SYNs from or to `port` (needs CAP_NET_RAW).
    pub fn open(port: u16) -> io::Result<WireTap> {
        Ok(WireTap {
            sock: PacketSocket::open(&syn_filter(port))?,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.fd()
    }

    /// Read the waiting packets, calling `f` for each SYN, until the queue is empty or `f`
    /// returns false.
    pub fn drain(&self, mut f: impl FnMut(Syn) -> bool) {
        let mut buf = [0u8; SNAP as usize];
        // (The packet socket keeps a stamp only when it is earlier than the read: see
        // `timing::stamp_before_read`.)
        while let Ok(got) = self.sock.recv(&mut buf) {
            let Some(h) = parse_syn(&buf[..got.len]) else {
                continue;
            };
            let more = f(Syn {
                src_port: h.src_port,
                dst_port: h.dst_port,
                ack: Flags(h.flags).ack(),
                outgoing: got.outgoing,
                seq: h.seq,
                at: got.at,
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

#[cfg(test)]
mod tests {
    use super::super::capture::bpf::{JA, JMP, RET};
    use super::super::capture::run_filter;
    use super::*;

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
