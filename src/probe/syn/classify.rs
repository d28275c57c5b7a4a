//! Classifying what the packet socket captured: our SYN leaving, a SYN-ACK, RST or pure
//! ACK arriving, an ICMP error ([`Seen`]); anything else is skipped.

use std::net::{IpAddr, SocketAddr};

use crate::packet::ip::{proto, Ip};
use crate::packet::tcp::Tcp;

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
    let ip = Ip::parse(pkt)?;
    match (ip.protocol(), ip.src()) {
        (proto::ICMP, IpAddr::V4(_)) if !outgoing => {
            return parse_icmpv4_packet(pkt).ok().flatten().map(Seen::Icmp);
        }
        (proto::ICMPV6, IpAddr::V6(from)) if !outgoing => {
            return parse_icmpv6_message(ip.payload(), from)
                .ok()
                .flatten()
                .map(Seen::Icmp);
        }
        (proto::TCP, _) if !ip.fragmented() => {}
        _ => return None,
    }
    let t = Tcp::new_checked(ip.payload()).ok()?;
    let src = SocketAddr::new(ip.src(), t.src_port());
    let dst = SocketAddr::new(ip.dst(), t.dst_port());
    let answer = |kind| {
        Some(Seen::Answer {
            from: src,
            to: dst,
            ack: t.ack(),
            kind,
        })
    };
    let f = t.flags();
    match (outgoing, f.syn(), f.ack(), f.rst()) {
        (true, true, false, false) => Some(Seen::Syn {
            src,
            dst,
            seq: t.seq(),
        }),
        (false, true, true, false) => answer(AnswerKind::SynAck),
        (false, false, true, true) => answer(AnswerKind::Rst),
        (false, false, true, false) if !f.fin() => answer(AnswerKind::Ack),
        _ => None,
    }
}
