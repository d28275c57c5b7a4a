//! Classifying what the packet socket captured: our SYN leaving, a SYN-ACK, RST or pure
//! ACK arriving, an ICMP error ([`Seen`]); anything else is skipped.

use std::net::{IpAddr, SocketAddr};

use etherparse::{LaxIpv6Slice, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::icmp::parse::{parse_icmpv4_packet, parse_icmpv6_message, IcmpError};

/// What an answer says about the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// SYN-ACK: the port is open.
    SynAck,
    /// RST: closed.
    Rst,
    /// A pure ACK (no SYN, no RST), acknowledging an earlier probe's SYN: the target still
    /// held that probe's half-open connection when a later SYN of the flow met it, and
    /// answered the later SYN with this ACK. The port is open.
    Ack,
}

impl AnswerKind {
    /// Its name in JSON (`"answer"`).
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::SynAck => "syn-ack",
            AnswerKind::Rst => "rst",
            AnswerKind::Ack => "ack",
        }
    }
}

/// A packet the packet socket showed, as far as SYN probing cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A SYN leaving this host (ours, when its 4-tuple and sequence number are a probe's).
    Syn {
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
    },
    /// A SYN-ACK, an RST with ACK, or a pure ACK arriving.
    Answer {
        from: SocketAddr,
        to: SocketAddr,
        ack: u32,
        kind: AnswerKind,
    },
    /// An ICMP or ICMPv6 error arriving.
    Icmp(IcmpError),
}

/// Read one packet (from its IP header on; possibly cut at the snap length) as the packet
/// socket gave it. None: nothing a SYN probe looks at (or malformed).
pub fn classify(pkt: &[u8], outgoing: bool) -> Option<Seen> {
    match pkt.first()? >> 4 {
        4 if pkt.get(9) == Some(&1) => {
            return (!outgoing)
                .then(|| parse_icmpv4_packet(pkt).ok().flatten().map(Seen::Icmp))
                .flatten();
        }
        6 if !outgoing => {
            let (ip, _) = LaxIpv6Slice::from_slice(pkt).ok()?;
            let payload = ip.payload();
            if payload.ip_number == etherparse::IpNumber::IPV6_ICMP {
                let from = ip.header().source_addr();
                return parse_icmpv6_message(payload.payload, from)
                    .ok()
                    .flatten()
                    .map(Seen::Icmp);
            }
        }
        4 | 6 => {}
        _ => return None,
    }
    let p = LaxSlicedPacket::from_ip(pkt).ok()?;
    let (src, dst) = match p.net? {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        return None;
    };
    let src = SocketAddr::new(src, t.source_port());
    let dst = SocketAddr::new(dst, t.destination_port());
    match (outgoing, t.syn(), t.ack(), t.rst()) {
        (true, true, false, false) => Some(Seen::Syn {
            src,
            dst,
            seq: t.sequence_number(),
        }),
        (false, true, true, false) => Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.acknowledgment_number(),
            kind: AnswerKind::SynAck,
        }),
        (false, false, true, true) => Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.acknowledgment_number(),
            kind: AnswerKind::Rst,
        }),
        (false, false, true, false) if !t.fin() => Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.acknowledgment_number(),
            kind: AnswerKind::Ack,
        }),
        _ => None,
    }
}
