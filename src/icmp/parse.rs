//! Parsing of ICMP / ICMPv6 error messages that answer a TCP ping, and a plain-English
//! description table for them.
//!
//! * [`parse_icmpv4_packet`] takes a whole IPv4 datagram as a raw `IPPROTO_ICMP` socket
//!   returns it (IPv4 header included).
//! * [`parse_icmpv6_message`] takes an ICMPv6 message starting at the ICMPv6 header, as a
//!   raw `IPPROTO_ICMPV6` socket returns it, plus the sender address from `recvfrom`.
//! * [`describe`] is a pure table from (family, type, code, info) to text; it is shared with
//!   the kernel's `IP_RECVERR` / `IPV6_RECVERR` error queue, whose `sock_extended_err` carries
//!   the same four values (`ee_info` holds the MTU or the parameter-problem pointer).
//!
//! The quoted ("invoking") packet inside an error is parsed laxly: it is usually cut short
//! (RFC 792 only guarantees the IP header plus 8 bytes), its length field then exceeds what
//! is present, and its checksums are never checked. TCP ports are read from the first four
//! bytes of the quoted TCP header, the sequence number from the next four (when the quote
//! reaches that far). Nothing in this module panics on any input.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use etherparse::icmpv4::{DestUnreachableHeader, ParameterProblemHeader};
use etherparse::{Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpNumber, LaxIpv4Slice};

use crate::packet::diff::Headers;
use crate::packet::icmp::{
    IcmpType, Icmpv4Type as V4, Icmpv6Type as V6, Unreachable4, Unreachable6,
};
use crate::packet::ip::{self, Ip};
use crate::packet::tcp::TcpPrefix;

/// The TCP endpoints and sequence number quoted inside an ICMP error (only the first 8
/// bytes of TCP are guaranteed; the ports are read from bytes 0..4, the sequence number
/// from bytes 4..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Source of the quoted packet: our local address and port.
    pub src: SocketAddr,
    /// Destination of the quoted packet: the pinged address and port.
    pub dst: SocketAddr,
    /// Sequence number of the quoted segment; None when the quote stops before it ends
    /// (fewer than 8 bytes of TCP).
    pub seq: Option<u32>,
}

/// An ICMP or ICMPv6 error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpError {
    /// Reporting node: the outer IPv4 source address, or for IPv6 the address passed in
    /// (raw ICMPv6 sockets strip the IP header; it comes from `recvfrom`).
    pub from: IpAddr,
    /// True for ICMPv6.
    pub v6: bool,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Next-hop MTU (v4 fragmentation needed, v6 packet too big) or parameter-problem
    /// pointer, else 0.
    pub info: u32,
    /// None when the quoted packet is not TCP or is too short to hold the ports.
    pub quoted: Option<QuotedTcp>,
    /// Protocol / next header (after any extension headers) of the quoted packet, if it
    /// could be read.
    pub quoted_proto: Option<u8>,
    /// RFC 4884 extensions after the quoted packet (MPLS labels, interface information):
    /// see `super::extension`. None when there are none.
    pub extensions: Option<Box<super::extension::Extensions>>,
    /// The quoted TCP packet's headers as far as the quote goes (what the router received:
    /// compared with what was sent by `packet::diff`). None when it is not TCP.
    pub quote: Option<Headers>,
}

impl IcmpError {
    /// Plain-English and ping-style description of this error.
    pub fn describe(&self) -> Description {
        describe(self.v6, self.icmp_type, self.code, self.info)
    }

    /// Its type, named, with its family.
    pub fn kind(&self) -> IcmpType {
        IcmpType::of(self.v6, self.icmp_type)
    }
}

/// Why a buffer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer ends before the named header does.
    Truncated(&'static str),
    /// A well-formed IPv4 packet that does not carry ICMP.
    NotIcmp,
    /// The named part is not valid.
    Malformed(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated(what) => write!(f, "truncated {what}"),
            ParseError::NotIcmp => f.write_str("not an ICMP packet"),
            ParseError::Malformed(what) => write!(f, "malformed {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole IPv4 datagram as a raw `IPPROTO_ICMP` socket returns it (IPv4 header,
/// options included, then the ICMP message).
///
/// `Ok(None)` is a valid ICMP message that is not an error we care about (echo
/// reply/request, redirect, timestamp, ...).
pub fn parse_icmpv4_packet(buf: &[u8]) -> Result<Option<IcmpError>, ParseError> {
    use etherparse::err::ipv4::HeaderSliceError;

    let Some(first) = buf.first() else {
        return Err(ParseError::Truncated("ipv4 header"));
    };
    if first >> 4 != 4 {
        return Err(ParseError::Malformed("ipv4 header (version is not 4)"));
    }
    let (ip, _auth_err) = LaxIpv4Slice::from_slice(buf).map_err(|e| match e {
        HeaderSliceError::Len(_) => ParseError::Truncated("ipv4 header"),
        HeaderSliceError::Content(_) => ParseError::Malformed("ipv4 header"),
    })?;
    let header = ip.header();
    if header.protocol() != IpNumber::ICMP {
        return Err(ParseError::NotIcmp);
    }
    if header.fragments_offset().value() != 0 {
        // Only the first fragment starts with the ICMP header (raw sockets get reassembled
        // datagrams, so this does not happen in practice).
        return Err(ParseError::Malformed("ipv4 fragment"));
    }
    // LaxIpv4Slice falls back to the slice length when total_len is inconsistent.
    let msg = ip.payload().payload;
    if msg.len() < 8 {
        return Err(ParseError::Truncated("icmp header"));
    }
    let Ok(icmp) = Icmpv4Slice::from_slice(msg) else {
        // At least 8 bytes but rejected: a timestamp message of the wrong length, which is
        // not an error message anyway.
        return Ok(None);
    };
    let b = icmp.bytes5to8();
    let info = match icmp.icmp_type() {
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu,
        }) => u32::from(next_hop_mtu),
        Icmpv4Type::DestinationUnreachable(_) | Icmpv4Type::TimeExceeded(_) => 0,
        Icmpv4Type::ParameterProblem(ParameterProblemHeader::PointerIndicatesError(p)) => {
            u32::from(p)
        }
        // Like the kernel (icmp_unreach), keep the pointer byte for every code.
        Icmpv4Type::ParameterProblem(_) => u32::from(b[0]),
        Icmpv4Type::Unknown { type_u8, .. } => match V4::from(type_u8) {
            // destination unreachable / time exceeded with a code etherparse doesn't name
            V4::DestUnreachable | V4::TimeExceeded => 0,
            V4::SourceQuench => 0, // deprecated (RFC 6633), still quotes the packet
            V4::ParameterProblem => u32::from(b[0]),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let (quoted, quoted_proto) = quoted(Ip::v4(icmp.payload()));
    Ok(Some(IcmpError {
        from: IpAddr::V4(header.source_addr()),
        v6: false,
        icmp_type: icmp.type_u8(),
        code: icmp.code_u8(),
        info,
        quoted,
        quoted_proto,
        extensions: super::extension::from_icmp(false, icmp.type_u8(), b, icmp.payload())
            .map(Box::new),
        quote: Headers::parse(icmp.payload()),
    }))
}

/// Parses an ICMPv6 message starting at the ICMPv6 header (as a raw `IPPROTO_ICMPV6`
/// socket returns it). `from` is the sender address reported by `recvfrom`.
///
/// `Ok(None)` is an informational message (type >= 128: echo, neighbour discovery, ...).
/// Every error type (< 128) is reported, including ones without a name (RFC 4443 2.4 (d)).
pub fn parse_icmpv6_message(buf: &[u8], from: Ipv6Addr) -> Result<Option<IcmpError>, ParseError> {
    let icmp = Icmpv6Slice::from_slice(buf).map_err(|_| ParseError::Truncated("icmpv6 header"))?;
    let type_u8 = icmp.type_u8();
    if type_u8 >= 128 {
        return Ok(None);
    }
    let info = match icmp.icmp_type() {
        Icmpv6Type::PacketTooBig { mtu } => mtu,
        Icmpv6Type::ParameterProblem(h) => h.pointer,
        Icmpv6Type::DestinationUnreachable(_) | Icmpv6Type::TimeExceeded(_) => 0,
        // codes etherparse doesn't name: take the MTU / pointer all the same
        Icmpv6Type::Unknown { bytes5to8, .. }
            if matches!(V6::from(type_u8), V6::PacketTooBig | V6::ParameterProblem) =>
        {
            u32::from_be_bytes(bytes5to8)
        }
        _ => 0,
    };
    let (quoted, quoted_proto) = quoted(Ip::v6(icmp.payload()));
    Ok(Some(IcmpError {
        from: IpAddr::V6(from),
        v6: true,
        icmp_type: type_u8,
        code: icmp.code_u8(),
        info,
        quoted,
        quoted_proto,
        extensions: super::extension::from_icmp(true, type_u8, icmp.bytes5to8(), icmp.payload())
            .map(Box::new),
        quote: Headers::parse(icmp.payload()),
    }))
}

/// The TCP endpoints and sequence number quoted in an ICMP error (the quote read by the
/// `ip` view: `Ip::v4` for ICMP, `Ip::v6` for ICMPv6), and the quoted packet's protocol.
fn quoted(ip: Option<Ip>) -> (Option<QuotedTcp>, Option<u8>) {
    // None: the header, an IPv4 authentication header or an IPv6 extension header is cut
    // off or invalid: the upper protocol is unknown.
    let Some(ip) = ip else {
        return (None, None);
    };
    let proto = ip.protocol();
    // A non-first fragment does not start with the TCP header.
    if proto != ip::proto::TCP || ip.later_fragment() {
        return (None, Some(proto));
    }
    let quoted = TcpPrefix::new_checked(ip.payload()).map(|t| QuotedTcp {
        src: SocketAddr::new(ip.src(), t.src_port()),
        dst: SocketAddr::new(ip.dst(), t.dst_port()),
        seq: t.seq(),
    });
    (quoted, Some(proto))
}

/// Text for one ICMP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Lowercase plain English, e.g. "destination host unreachable",
    /// "fragmentation needed (next-hop MTU 1400)".
    pub reason: String,
    /// As iputils `ping` prints it, e.g. "Destination Host Unreachable",
    /// "Frag needed and DF set (mtu = 1400)"; for IPv6 as `ping -6` does, e.g.
    /// "Destination unreachable: Administratively prohibited", "Packet too big: mtu=1280".
    pub title: String,
}

fn desc(reason: impl Into<String>, title: impl Into<String>) -> Description {
    Description {
        reason: reason.into(),
        title: title.into(),
    }
}

/// Plain-English description of an ICMP (`v6 == false`) or ICMPv6 error. A pure table,
/// usable for raw-socket captures and for the kernel's `IP_RECVERR` error queue (origin,
/// type, code, info). Unknown types and codes get a generic text; it never panics.
pub fn describe(v6: bool, icmp_type: u8, code: u8, info: u32) -> Description {
    if v6 {
        describe_v6(icmp_type, code, info)
    } else {
        describe_v4(icmp_type, code, info)
    }
}

fn describe_v4(icmp_type: u8, code: u8, info: u32) -> Description {
    match V4::from(icmp_type) {
        V4::DestUnreachable => {
            let (reason, title) = match Unreachable4::from(code) {
                Unreachable4::Net => (
                    "destination network unreachable",
                    "Destination Net Unreachable",
                ),
                Unreachable4::Host => (
                    "destination host unreachable",
                    "Destination Host Unreachable",
                ),
                Unreachable4::Protocol => (
                    "destination protocol unreachable",
                    "Destination Protocol Unreachable",
                ),
                Unreachable4::Port => (
                    "destination port unreachable",
                    "Destination Port Unreachable",
                ),
                Unreachable4::FragNeeded => {
                    let reason = if info == 0 {
                        // pre-RFC 1191 routers leave the MTU field zero
                        "fragmentation needed (next-hop MTU not reported)".to_string()
                    } else {
                        format!("fragmentation needed (next-hop MTU {info})")
                    };
                    return desc(reason, format!("Frag needed and DF set (mtu = {info})"));
                }
                Unreachable4::SourceRouteFailed => ("source route failed", "Source Route Failed"),
                Unreachable4::NetUnknown => {
                    ("destination network unknown", "Destination Net Unknown")
                }
                Unreachable4::HostUnknown => {
                    ("destination host unknown", "Destination Host Unknown")
                }
                Unreachable4::SourceHostIsolated => {
                    ("source host isolated", "Source Host Isolated")
                }
                Unreachable4::NetProhibited => (
                    "network administratively prohibited",
                    "Destination Net Prohibited",
                ),
                Unreachable4::HostProhibited => (
                    "host administratively prohibited",
                    "Destination Host Prohibited",
                ),
                Unreachable4::NetTos => (
                    "network unreachable for type of service",
                    "Destination Net Unreachable for Type of Service",
                ),
                Unreachable4::HostTos => (
                    "host unreachable for type of service",
                    "Destination Host Unreachable for Type of Service",
                ),
                Unreachable4::AdminProhibited => (
                    "communication administratively prohibited",
                    "Communication Administratively Prohibited",
                ),
                Unreachable4::HostPrecedenceViolation => {
                    ("host precedence violation", "Precedence Violation")
                }
                Unreachable4::PrecedenceCutoff => {
                    ("precedence cutoff in effect", "Precedence Cutoff")
                }
                _ => {
                    return desc(
                        format!("destination unreachable (unknown code {code})"),
                        format!("Dest Unreachable, Bad Code: {code}"),
                    );
                }
            };
            desc(reason, title)
        }
        V4::SourceQuench => desc("source quench", "Source Quench"),
        V4::Redirect => {
            let (reason, title) = match code {
                0 => ("redirect for network", "Redirect Network"),
                1 => ("redirect for host", "Redirect Host"),
                2 => (
                    "redirect for type of service and network",
                    "Redirect Type of Service and Network",
                ),
                3 => (
                    "redirect for type of service and host",
                    "Redirect Type of Service and Host",
                ),
                _ => {
                    return desc(
                        format!("redirect (unknown code {code})"),
                        format!("Redirect, Bad Code: {code}"),
                    );
                }
            };
            desc(reason, title)
        }
        V4::TimeExceeded => match code {
            0 => desc("time to live exceeded in transit", "Time to live exceeded"),
            1 => desc(
                "fragment reassembly time exceeded",
                "Frag reassembly time exceeded",
            ),
            _ => desc(
                format!("time exceeded (unknown code {code})"),
                format!("Time exceeded, Bad Code: {code}"),
            ),
        },
        V4::ParameterProblem => {
            let reason = match code {
                0 => format!("parameter problem (pointer {info})"),
                1 => "parameter problem: missing a required option".to_string(),
                2 => format!("parameter problem: bad length (pointer {info})"),
                _ => format!("parameter problem (unknown code {code}, pointer {info})"),
            };
            desc(reason, format!("Parameter problem: pointer = {info}"))
        }
        V4::EchoReply => desc("echo reply", "Echo Reply"),
        V4::EchoRequest => desc("echo request", "Echo Request"),
        _ => desc(
            format!("icmp type {icmp_type} code {code}"),
            format!("Bad ICMP type: {icmp_type}"),
        ),
    }
}

fn describe_v6(icmp_type: u8, code: u8, info: u32) -> Description {
    match V6::from(icmp_type) {
        V6::DestUnreachable => {
            let (reason, what) = match Unreachable6::from(code) {
                Unreachable6::NoRoute => ("no route to destination", "No route"),
                Unreachable6::AdminProhibited => (
                    "communication with destination administratively prohibited",
                    "Administratively prohibited",
                ),
                Unreachable6::BeyondScope => (
                    "beyond scope of source address",
                    "Beyond scope of source address",
                ),
                Unreachable6::Address => ("destination address unreachable", "Address unreachable"),
                Unreachable6::Port => ("destination port unreachable", "Port unreachable"),
                Unreachable6::SourcePolicyFailed => (
                    "source address failed ingress/egress policy",
                    "Source address failed ingress/egress policy",
                ),
                Unreachable6::RejectRoute => {
                    ("reject route to destination", "Reject route to destination")
                }
                Unreachable6::SourceRoutingHeader => (
                    "error in source routing header",
                    "Error in source routing header",
                ),
                // RFC 8883: the extension headers did not fit in what the node could examine
                Unreachable6::HeadersTooLong => ("headers too long", "Headers too long"),
                _ => {
                    return desc(
                        format!("destination unreachable (unknown code {code})"),
                        format!("Destination unreachable: Unknown code {code}"),
                    );
                }
            };
            desc(reason, format!("Destination unreachable: {what}"))
        }
        V6::PacketTooBig => {
            let mut title = format!("Packet too big: mtu={info}");
            if code != 0 {
                title.push_str(&format!(", code={code}"));
            }
            desc(format!("packet too big (MTU {info})"), title)
        }
        V6::TimeExceeded => match code {
            0 => desc("hop limit exceeded in transit", "Time exceeded: Hop limit"),
            1 => desc(
                "fragment reassembly time exceeded",
                "Time exceeded: Defragmentation failure",
            ),
            _ => desc(
                format!("time exceeded (unknown code {code})"),
                format!("Time exceeded: code {code}"),
            ),
        },
        V6::ParameterProblem => {
            // RFC 4443 (0-2; the titles are iputils ping's), RFC 7112 (3), RFC 8754 (4),
            // RFC 8883 (5-10): the IANA registry as of 2026
            let (reason, what) = match code {
                0 => ("erroneous header field", "Wrong header field"),
                1 => ("unrecognized next header type", "Unknown header"),
                2 => ("unrecognized ipv6 option", "Unknown option"),
                3 => (
                    "first fragment has an incomplete header chain",
                    "Incomplete header chain in first fragment",
                ),
                4 => (
                    "segment routing upper-layer header error",
                    "SR upper-layer header error",
                ),
                5 => (
                    "unrecognized next header type encountered by an intermediate node",
                    "Unknown header at intermediate node",
                ),
                6 => ("extension header too big", "Extension header too big"),
                7 => (
                    "extension header chain too long",
                    "Extension header chain too long",
                ),
                8 => ("too many extension headers", "Too many extension headers"),
                9 => (
                    "too many options in an extension header",
                    "Too many options in extension header",
                ),
                10 => ("option too big", "Option too big"),
                _ => {
                    return desc(
                        format!("parameter problem (unknown code {code}, pointer {info})"),
                        format!("Parameter problem: code {code} at {info}"),
                    );
                }
            };
            desc(
                format!("parameter problem: {reason} (pointer {info})"),
                format!("Parameter problem: {what} at {info}"),
            )
        }
        V6::EchoRequest => desc("echo request", "Echo request"),
        V6::EchoReply => desc("echo reply", "Echo reply"),
        _ if icmp_type < 128 => desc(
            format!("icmpv6 error type {icmp_type} code {code}"),
            format!("ICMPv6 error type {icmp_type}, code {code}"),
        ),
        _ => desc(
            format!("icmpv6 type {icmp_type} code {code}"),
            "unknown icmp type",
        ),
    }
}

#[cfg(test)]
mod tests;
