//! The IP layer of a packet, IPv4 or IPv6, read laxly over etherparse: addresses, the
//! protocol after any IPv6 extension headers, the header's real length, and the payload as
//! far as the buffer goes.

use std::net::IpAddr;

use etherparse::{Ipv6ExtensionSlice, LaxIpv4Slice, LaxIpv6Slice};

/// IP protocol numbers we look at.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const ICMPV6: u8 = 58;
}

/// Offsets of the header fields that tell the protocol carried.
pub mod field {
    /// IPv4: the protocol.
    pub const V4_PROTOCOL: usize = 9;
    /// IPv6: the next header (the protocol when no extension header follows).
    pub const V6_NEXT_HEADER: usize = 6;
}

/// Length of an IPv4 header without options, and of the fixed IPv6 header.
pub const V4_HEADER_LEN: usize = 20;
pub const V6_HEADER_LEN: usize = 40;

/// The length of an IPv4 header from its first byte (the IHL, in 32-bit words), unchecked.
pub fn v4_header_len(first: u8) -> usize {
    usize::from(first & 0x0f) * 4
}

/// An IP packet, possibly cut short, seen from its IP header on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip<'a> {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ttl: u8,
    header_len: usize,
    fragmented: bool,
    later_fragment: bool,
    payload: &'a [u8],
}

impl<'a> Ip<'a> {
    /// Read an IPv4 or IPv6 packet, by its version. None: not IP, its header is cut short or
    /// invalid, or an IPv4 authentication header or an IPv6 extension header cannot be read
    /// (then the protocol carried is unknown).
    pub fn parse(buf: &'a [u8]) -> Option<Ip<'a>> {
        match buf.first()? >> 4 {
            4 => Self::v4(buf),
            6 => Self::v6(buf),
            _ => None,
        }
    }

    /// Read an IPv4 packet (header with options). The payload ends at the total length, or
    /// at the buffer's end when that is shorter (or the total length is inconsistent).
    pub fn v4(buf: &'a [u8]) -> Option<Ip<'a>> {
        let (ip, auth_err) = LaxIpv4Slice::from_slice(buf).ok()?;
        if auth_err.is_some() {
            return None;
        }
        let h = ip.header();
        let payload = ip.payload();
        Some(Ip {
            src: IpAddr::V4(h.source_addr()),
            dst: IpAddr::V4(h.destination_addr()),
            protocol: payload.ip_number.0,
            ttl: h.ttl(),
            header_len: h.slice().len(),
            fragmented: payload.fragmented,
            later_fragment: h.fragments_offset().value() != 0,
            payload: payload.payload,
        })
    }

    /// Read an IPv6 packet and its extension headers.
    pub fn v6(buf: &'a [u8]) -> Option<Ip<'a>> {
        let (ip, ext_err) = LaxIpv6Slice::from_slice(buf).ok()?;
        if ext_err.is_some() {
            return None;
        }
        let h = ip.header();
        let payload = ip.payload();
        let later_fragment = ip.extensions().clone().into_iter().any(|ext| match ext {
            // Offset = the top 13 bits of bytes 2..4. Read them directly: etherparse 0.16's
            // Ipv6FragmentHeaderSlice::fragment_offset() mixes in the M flag bit, so it
            // reports offset 1 for a first fragment with more fragments following.
            Ipv6ExtensionSlice::Fragment(frag) => match frag.slice() {
                [_, _, hi, lo, ..] => u16::from_be_bytes([*hi, *lo]) >> 3 != 0,
                _ => false,
            },
            _ => false,
        });
        Some(Ip {
            src: IpAddr::V6(h.source_addr()),
            dst: IpAddr::V6(h.destination_addr()),
            protocol: payload.ip_number.0,
            ttl: h.hop_limit(),
            header_len: V6_HEADER_LEN + ip.extensions().slice().len(),
            fragmented: payload.fragmented,
            later_fragment,
            payload: payload.payload,
        })
    }

    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }

    pub fn src(&self) -> IpAddr {
        self.src
    }

    pub fn dst(&self) -> IpAddr {
        self.dst
    }

    /// The protocol of the payload: after the IPv6 extension headers (see [`proto`]).
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// IPv4 TTL or IPv6 hop limit.
    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    /// Bytes before the payload: the IPv4 header with its options, or the IPv6 header with
    /// its extension headers.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Part of a fragmented datagram (first or later): its payload is not whole.
    pub fn fragmented(&self) -> bool {
        self.fragmented
    }

    /// A fragment other than the first: its payload does not start with the upper-layer
    /// header.
    pub fn later_fragment(&self) -> bool {
        self.later_fragment
    }

    /// The payload, as far as the buffer goes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}
