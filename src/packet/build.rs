//! Building the SYN: IP header, TCP header with Linux's options, checksums (pnet's packet
//! builders), into a buffer the caller owns; [`restamp`] gives the next probe of a flow its
//! own sequence number, IPv4 ID and TTL without rebuilding or allocating.

use std::net::{IpAddr, SocketAddr};

use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};

use super::ip::{V4_HEADER_LEN, V6_HEADER_LEN};
use super::tcp::{self as view, kind};

/// TCP options of our SYN, as Linux sends them: MSS (4 bytes), SACK permitted (2),
/// timestamps (10), NOP, window scale (3): 20 bytes.
const OPTIONS_LEN: usize = 20;
const TCP_LEN: usize = view::HEADER_LEN + OPTIONS_LEN;
/// Where the timestamp option's value sits in our options: after MSS, SACK permitted, and
/// the timestamp option's kind and length.
const TS_VALUE_AT: usize = 4 + 2 + 2;
/// Length of an IPv4 SYN (no IP options) and of an IPv6 SYN (no extension headers).
pub const V4_LEN: usize = V4_HEADER_LEN + TCP_LEN;
pub const V6_LEN: usize = V6_HEADER_LEN + TCP_LEN;

/// Longest SYN built (`trace --size`): a jumbo frame.
pub const MAX_SYN_LEN: usize = 9000;

/// The fields of one SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynFields {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    /// IPv4 identification (unused for IPv6).
    pub ip_id: u16,
    /// TTL / hop limit.
    pub ttl: u8,
}

/// Why a SYN could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// Source and destination are not of one family.
    MixedFamilies,
    /// The buffer is shorter than the packet.
    ShortBuffer,
}

/// Build the SYN into `buf` (IP header, TCP header with options, checksums) with pnet's
/// packet builders; returns its length.
pub fn build_syn(buf: &mut [u8], f: &SynFields) -> Result<usize, BuildError> {
    build_syn_sized(buf, f, None)
}

/// [`build_syn`], `total` bytes long in all (IP header included, as traceroute's packet
/// length): the rest after the TCP header is payload, zeros (a target answers the SYN and
/// ignores its data). None, or less than the headers: the SYN without payload.
pub fn build_syn_sized(
    buf: &mut [u8],
    f: &SynFields,
    total: Option<usize>,
) -> Result<usize, BuildError> {
    let (ip_len, bare) = match (f.src.ip(), f.dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (V4_HEADER_LEN, V4_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => (V6_HEADER_LEN, V6_LEN),
        _ => return Err(BuildError::MixedFamilies),
    };
    let len = total.map_or(bare, |t| t.clamp(bare, MAX_SYN_LEN));
    let buf = buf.get_mut(..len).ok_or(BuildError::ShortBuffer)?;
    buf.fill(0);
    {
        let mut tcp = MutableTcpPacket::new(&mut buf[ip_len..]).ok_or(BuildError::ShortBuffer)?;
        tcp.set_source(f.src.port());
        tcp.set_destination(f.dst.port());
        tcp.set_data_offset((TCP_LEN / 4) as u8);
        tcp.set_flags(TcpFlags::SYN);
        tcp.set_window(64240);
        let mss = if ip_len == V4_HEADER_LEN { 1460 } else { 1440 };
        tcp.set_options(&[
            TcpOption::mss(mss),
            TcpOption::sack_perm(),
            TcpOption::timestamp(f.seq, 0),
            TcpOption::nop(),
            TcpOption::wscale(7),
        ]);
    }
    match (f.src.ip(), f.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = MutableIpv4Packet::new(buf).ok_or(BuildError::ShortBuffer)?;
            ip.set_version(4);
            ip.set_header_length(5);
            ip.set_total_length(len as u16);
            ip.set_flags(Ipv4Flags::DontFragment);
            ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
            ip.set_source(s);
            ip.set_destination(d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = MutableIpv6Packet::new(buf).ok_or(BuildError::ShortBuffer)?;
            ip.set_version(6);
            ip.set_payload_length((len - V6_HEADER_LEN) as u16);
            ip.set_next_header(IpNextHeaderProtocols::Tcp);
            ip.set_source(s);
            ip.set_destination(d);
        }
        _ => return Err(BuildError::MixedFamilies),
    }
    restamp(buf, f.seq, f.ip_id, f.ttl);
    Ok(len)
}

/// Give a SYN built by `build_syn` another sequence number (and timestamp value), IPv4 ID
/// and TTL, and recompute its checksums: the per-probe work, with no allocation.
pub fn restamp(pkt: &mut [u8], seq: u32, ip_id: u16, ttl: u8) {
    let v6 = pkt.first().is_some_and(|b| b >> 4 == 6);
    let ip_len = if v6 { V6_HEADER_LEN } else { V4_HEADER_LEN };
    if pkt.len() < ip_len + TCP_LEN {
        return;
    }
    let (ip_bytes, tcp_bytes) = pkt.split_at_mut(ip_len);
    {
        let Ok(mut tcp) = view::Tcp::new_checked(&mut tcp_bytes[..]) else {
            return;
        };
        tcp.set_seq(seq);
        tcp.set_checksum(0);
        let opts = tcp.option_bytes_mut();
        debug_assert_eq!(
            opts[TS_VALUE_AT - 2],
            kind::TIMESTAMPS,
            "a SYN of build_syn"
        );
        opts[TS_VALUE_AT..TS_VALUE_AT + 4].copy_from_slice(&seq.to_be_bytes());
    }
    let Some(mut tcp) = MutableTcpPacket::new(tcp_bytes) else {
        return;
    };
    if v6 {
        let Some(mut ip) = MutableIpv6Packet::new(ip_bytes) else {
            return;
        };
        ip.set_hop_limit(ttl);
        let (s, d) = (ip.get_source(), ip.get_destination());
        let sum = tcp::ipv6_checksum(&tcp.to_immutable(), &s, &d);
        tcp.set_checksum(sum);
    } else {
        let Some(mut ip) = MutableIpv4Packet::new(ip_bytes) else {
            return;
        };
        ip.set_identification(ip_id);
        ip.set_ttl(ttl);
        ip.set_checksum(0);
        let sum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(sum);
        let (s, d) = (ip.get_source(), ip.get_destination());
        let sum = tcp::ipv4_checksum(&tcp.to_immutable(), &s, &d);
        tcp.set_checksum(sum);
    }
}

/// What a SYN carries beyond `build_syn`'s defaults: the IPv4 TOS byte or IPv6 traffic class
/// (DSCP and ECN bits, `--tos`), and the ECN-setup flags ECE and CWR (RFC 3168, `--ecn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub tos: u8,
    pub ecn_setup: bool,
}

impl Marks {
    /// The TOS byte / traffic class alone (`--tos`, `--dscp` of the pings: no ECN setup).
    pub fn tos(tos: u8) -> Marks {
        Marks {
            tos,
            ecn_setup: false,
        }
    }
}

/// Set `marks` in a SYN built by `build_syn` and recompute its checksums (keeping its
/// sequence number, IPv4 ID and TTL); `restamp` keeps them for the flow's later probes.
pub fn mark_syn(pkt: &mut [u8], marks: Marks) {
    let v6 = pkt.first().is_some_and(|b| b >> 4 == 6);
    let ip_len = if v6 { V6_HEADER_LEN } else { V4_HEADER_LEN };
    if pkt.len() < ip_len + TCP_LEN {
        return;
    }
    let (seq, ip_id, ttl) = if v6 {
        pkt[0] = 0x60 | marks.tos >> 4;
        pkt[1] = (marks.tos & 0x0f) << 4 | (pkt[1] & 0x0f);
        (view::Tcp::new_unchecked(&pkt[ip_len..]).seq(), 0, pkt[7])
    } else {
        pkt[1] = marks.tos;
        let id = u16::from_be_bytes([pkt[4], pkt[5]]);
        (view::Tcp::new_unchecked(&pkt[ip_len..]).seq(), id, pkt[8])
    };
    let flags = &mut pkt[ip_len + view::field::FLAGS];
    if marks.ecn_setup {
        *flags |= super::diff::ECE | super::diff::CWR;
    } else {
        *flags &= !(super::diff::ECE | super::diff::CWR);
    }
    restamp(pkt, seq, ip_id, ttl);
}
#[cfg(test)]
#[path = "build_sized_tests.rs"]
mod sized_tests;
