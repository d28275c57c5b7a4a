//! ICMP extensions (RFC 4884): the objects a router may append to a time exceeded or
//! destination unreachable message after the quoted datagram. Two are decoded:
//!
//! - MPLS label stack (RFC 4950, class 1, c-type 1): the labels the probe carried when its
//!   TTL expired inside an MPLS tunnel;
//! - interface information (RFC 5837, class 2): the router's interface (role, ifIndex,
//!   address, name, MTU) the probe came in on or would have left by.
//!
//! Where the extension structure starts:
//! - RFC 4884 ("compliant"): a length attribute in the ICMP header gives the length of the
//!   quoted ("original datagram") field, in 32-bit words for ICMPv4 (the header's 6th
//!   octet; types 3, 11, 12) and 64-bit words for ICMPv6 (the 5th octet; types 1 and 3). The
//!   structure follows it.
//! - Older MPLS routers ("non-compliant", RFC 4884 section 5.5) leave the length at zero,
//!   quote exactly 128 octets and append the structure: for ICMPv4 with a zero length, a
//!   valid header (version 2 and a checksum that verifies) at octet 128 is taken as one.
//!
//! The structure is a 4-octet header (version 2, a 16-bit one's complement checksum over the
//! whole structure; zero means none was sent) and objects, each with a 4-octet header
//! (length in octets including it, class-num, c-type). Pure functions over bytes: nothing
//! here panics on any input; a cut-off structure (the capture keeps the first bytes of a
//! packet) gives the objects that are whole and says it was truncated.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The version of the ICMP extension structure (RFC 4884 section 7).
pub const VERSION: u8 = 2;
/// The quoted datagram is padded to at least this many octets when extensions follow,
/// and non-compliant routers quote exactly this many.
pub const ORIGINAL_DATAGRAM_MIN: usize = 128;
/// Class-num of the MPLS label stack object (RFC 4950).
pub const CLASS_MPLS: u8 = 1;
/// Class-num of the interface information object (RFC 5837).
pub const CLASS_INTERFACE: u8 = 2;

/// One MPLS label stack entry (RFC 3032 layout: label 20 bits, traffic class 3, bottom of
/// stack 1, TTL 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MplsLabel {
    pub label: u32,
    /// Traffic class (the former EXP bits).
    pub tc: u8,
    /// Bottom of stack.
    #[serde(rename = "s")]
    pub bottom: bool,
    pub ttl: u8,
}

impl MplsLabel {
    /// Decode one 4-octet entry.
    pub fn from_bytes(b: [u8; 4]) -> MplsLabel {
        let v = u32::from_be_bytes(b);
        MplsLabel {
            label: v >> 12,
            tc: ((v >> 9) & 0x7) as u8,
            bottom: (v >> 8) & 1 == 1,
            ttl: (v & 0xff) as u8,
        }
    }

    /// Encode (for tests and forgers): the exact inverse of `from_bytes`.
    pub fn to_bytes(self) -> [u8; 4] {
        let v = (self.label & 0xf_ffff) << 12
            | u32::from(self.tc & 0x7) << 9
            | u32::from(self.bottom) << 8
            | u32::from(self.ttl);
        v.to_be_bytes()
    }
}

impl fmt::Display for MplsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "L={} TC={} S={} TTL={}",
            self.label,
            self.tc,
            u8::from(self.bottom),
            self.ttl
        )
    }
}

/// Which interface an interface information object describes (RFC 5837 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceRole {
    /// The interface the probe arrived on.
    Incoming,
    /// A sub-IP component (e.g. a bundle member) of the incoming interface.
    SubIpIncoming,
    /// The interface the probe would have left by.
    Outgoing,
    /// The next hop the probe would have been sent to.
    NextHop,
}

impl InterfaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            InterfaceRole::Incoming => "incoming",
            InterfaceRole::SubIpIncoming => "incoming sub-IP component",
            InterfaceRole::Outgoing => "outgoing",
            InterfaceRole::NextHop => "next hop",
        }
    }
}

impl serde::Serialize for InterfaceRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One interface information object (RFC 5837).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InterfaceInfo {
    pub role: InterfaceRole,
    pub ifindex: Option<u32>,
    pub address: Option<IpAddr>,
    pub name: Option<String>,
    pub mtu: Option<u32>,
}

impl fmt::Display for InterfaceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} interface", self.role.as_str())?;
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        if let Some(i) = self.ifindex {
            write!(f, " ifindex {i}")?;
        }
        if let Some(a) = self.address {
            write!(f, " {a}")?;
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        Ok(())
    }
}

/// What an ICMP message's extension structure carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The MPLS label stack, top label first (empty: none).
    pub mpls: Vec<MplsLabel>,
    /// Interface information objects, in the order sent.
    pub interfaces: Vec<InterfaceInfo>,
    /// Objects of other classes: (class-num, c-type).
    pub other: Vec<(u8, u8)>,
    /// The structure was found without the RFC 4884 length attribute (a pre-RFC 4884 MPLS
    /// router: 128 octets quoted, then the structure).
    pub legacy: bool,
    /// The buffer ended inside an object: later objects may be missing, and the checksum
    /// could not be checked.
    pub truncated: bool,
}

impl Extensions {
    pub fn is_empty(&self) -> bool {
        self.mpls.is_empty() && self.interfaces.is_empty() && self.other.is_empty()
    }
}

/// Why an extension structure was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtError {
    /// Shorter than the 4-octet extension header.
    Short,
    /// The header's version is not 2.
    Version(u8),
    /// The checksum does not verify.
    Checksum,
    /// An object's length is below 4 or not a multiple of 4.
    ObjectLength(u16),
}

impl fmt::Display for ExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtError::Short => f.write_str("extension structure shorter than its header"),
            ExtError::Version(v) => write!(f, "extension version {v}, not {VERSION}"),
            ExtError::Checksum => f.write_str("extension checksum does not verify"),
            ExtError::ObjectLength(n) => write!(f, "extension object length {n}"),
        }
    }
}

impl std::error::Error for ExtError {}

/// The internet checksum (RFC 1071) of `b`: the one's complement of the one's complement
/// sum of its 16-bit words (an odd last octet padded with zero).
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = b.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether this ICMP type may carry the RFC 4884 length attribute, and where it is:
/// `(index into bytes 5..8 of the header, octets per unit)`.
fn length_attribute(v6: bool, icmp_type: u8) -> Option<(usize, usize)> {
    use crate::packet::icmp::{IcmpType, Icmpv4Type as V4, Icmpv6Type as V6};
    match IcmpType::of(v6, icmp_type) {
        // ICMPv4 destination unreachable, time exceeded, parameter problem: the 6th octet
        // of the header (the 2nd of bytes 5..8), in 32-bit words.
        IcmpType::V4(V4::DestUnreachable | V4::TimeExceeded | V4::ParameterProblem) => Some((1, 4)),
        // ICMPv6 destination unreachable, time exceeded: the 5th octet, in 64-bit words.
        IcmpType::V6(V6::DestUnreachable | V6::TimeExceeded) => Some((0, 8)),
        _ => None,
    }
}

/// The extension structure of an ICMP error, if it has one: `bytes5to8` are octets 5..8 of
/// the ICMP header (the length attribute is there), `payload` what follows the 8-octet
/// header (the quoted datagram, then the structure). A structure that is malformed or
/// whose checksum fails is not reported (None).
pub fn from_icmp(
    v6: bool,
    icmp_type: u8,
    bytes5to8: [u8; 4],
    payload: &[u8],
) -> Option<Extensions> {
    let (at, unit) = length_attribute(v6, icmp_type)?;
    let quoted = usize::from(bytes5to8[at]) * unit;
    if quoted > 0 {
        // RFC 4884: the structure, if any, follows the quoted datagram.
        let rest = payload.get(quoted..)?;
        if rest.is_empty() {
            return None;
        }
        return parse_structure(rest).ok().filter(|e| !e.is_empty());
    }
    if v6 || payload.len() <= ORIGINAL_DATAGRAM_MIN {
        return None;
    }
    // Non-compliant ICMPv4 (RFC 4884 section 5.5): 128 octets quoted, then a structure
    // that must show a valid version and a checksum that verifies.
    let rest = &payload[ORIGINAL_DATAGRAM_MIN..];
    let has_sum = rest.len() >= 4 && rest[2..4] != [0, 0];
    if !has_sum {
        return None;
    }
    let mut e = parse_structure(rest).ok()?;
    if e.truncated || e.is_empty() {
        // The checksum could not vouch for it.
        return None;
    }
    e.legacy = true;
    Some(e)
}

/// Parse an extension structure (header and objects).
pub fn parse_structure(b: &[u8]) -> Result<Extensions, ExtError> {
    let [h0, _, s0, s1, objects @ ..] = b else {
        return Err(ExtError::Short);
    };
    let version = h0 >> 4;
    if version != VERSION {
        return Err(ExtError::Version(version));
    }
    let mut ext = Extensions::default();
    let mut rest = objects;
    while !rest.is_empty() {
        let [l0, l1, class, ctype, after @ ..] = rest else {
            ext.truncated = true;
            break;
        };
        let len = u16::from_be_bytes([*l0, *l1]);
        if len < 4 || len % 4 != 0 {
            return Err(ExtError::ObjectLength(len));
        }
        let body_len = usize::from(len) - 4;
        let Some(body) = after.get(..body_len) else {
            ext.truncated = true;
            break;
        };
        match *class {
            CLASS_MPLS if *ctype == 1 => ext.mpls.extend(
                body.chunks_exact(4)
                    .map(|c| MplsLabel::from_bytes([c[0], c[1], c[2], c[3]])),
            ),
            CLASS_INTERFACE => match parse_interface(*ctype, body) {
                Some(i) => ext.interfaces.push(i),
                None => ext.other.push((*class, *ctype)),
            },
            _ => ext.other.push((*class, *ctype)),
        }
        rest = &after[body_len..];
    }
    let sum = u16::from_be_bytes([*s0, *s1]);
    if sum != 0 && !ext.truncated && checksum(b) != 0 {
        return Err(ExtError::Checksum);
    }
    Ok(ext)
}

/// An interface information object's body (RFC 5837 section 4): the c-type says which
/// sub-objects follow, in this order: ifIndex, IP address, name, MTU. None: a sub-object
/// is cut short or malformed.
pub fn parse_interface(ctype: u8, body: &[u8]) -> Option<InterfaceInfo> {
    let role = match ctype >> 6 {
        0 => InterfaceRole::Incoming,
        1 => InterfaceRole::SubIpIncoming,
        2 => InterfaceRole::Outgoing,
        _ => InterfaceRole::NextHop,
    };
    let (has_index, has_addr, has_name, has_mtu) = (
        ctype & 0x08 != 0,
        ctype & 0x04 != 0,
        ctype & 0x02 != 0,
        ctype & 0x01 != 0,
    );
    let mut rest = body;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    let u32_of = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let ifindex = if has_index {
        Some(u32_of(take(4)?))
    } else {
        None
    };
    let address = if has_addr {
        let h = take(4)?;
        match u16::from_be_bytes([h[0], h[1]]) {
            // Address family numbers (IANA): 1 IPv4, 2 IPv6.
            1 => {
                let a = take(4)?;
                Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
            }
            2 => {
                let a: [u8; 16] = take(16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => return None,
        }
    } else {
        None
    };
    let name = if has_name {
        let len = usize::from(*take(1)?.first()?);
        // The length counts its own octet, is a multiple of 4 and at most 64.
        if len < 4 || len % 4 != 0 || len > 64 {
            return None;
        }
        let raw = take(len - 1)?;
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    } else {
        None
    };
    let mtu = if has_mtu {
        Some(u32_of(take(4)?))
    } else {
        None
    };
    Some(InterfaceInfo {
        role,
        ifindex,
        address,
        name,
        mtu,
    })
}

/// Build an extension structure (header with checksum, then the objects): the inverse of
/// `parse_structure`, for tests and the lab's forger fixtures.
pub fn build_structure(objects: &[(u8, u8, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![VERSION << 4, 0, 0, 0];
    for (class, ctype, body) in objects {
        let len = (body.len() + 4) as u16;
        b.extend_from_slice(&len.to_be_bytes());
        b.push(*class);
        b.push(*ctype);
        b.extend_from_slice(body);
    }
    let sum = checksum(&b);
    b[2..4].copy_from_slice(&sum.to_be_bytes());
    b
}

/// The body of an interface information object and its c-type, for tests and forgers.
pub fn build_interface(info: &InterfaceInfo) -> (u8, Vec<u8>) {
    let role = match info.role {
        InterfaceRole::Incoming => 0,
        InterfaceRole::SubIpIncoming => 1,
        InterfaceRole::Outgoing => 2,
        InterfaceRole::NextHop => 3,
    };
    let mut ctype = role << 6;
    let mut body = Vec::new();
    if let Some(i) = info.ifindex {
        ctype |= 0x08;
        body.extend_from_slice(&i.to_be_bytes());
    }
    if let Some(a) = info.address {
        ctype |= 0x04;
        match a {
            IpAddr::V4(a) => {
                body.extend_from_slice(&[0, 1, 0, 0]);
                body.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                body.extend_from_slice(&[0, 2, 0, 0]);
                body.extend_from_slice(&a.octets());
            }
        }
    }
    if let Some(n) = &info.name {
        ctype |= 0x02;
        let n = &n.as_bytes()[..n.len().min(63)];
        let len = (n.len() + 1).div_ceil(4) * 4;
        body.push(len as u8);
        body.extend_from_slice(n);
        body.resize(body.len() + len - 1 - n.len(), 0);
    }
    if let Some(m) = info.mtu {
        ctype |= 0x01;
        body.extend_from_slice(&m.to_be_bytes());
    }
    (ctype, body)
}

#[cfg(test)]
mod tests;

/// The extensions of real packets: time exceeded messages the trace lab's client received
/// (tests/fixtures/icmp-ext-captured.txt), parsed by the same path every ICMP error takes.
#[cfg(test)]
mod captured;
