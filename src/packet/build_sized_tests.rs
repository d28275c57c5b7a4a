//! SYNs of a given length (`trace --size`): the length fields, the payload, the checksums.

use super::*;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::Packet;

fn fields(src: &str, dst: &str) -> SynFields {
    SynFields {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        seq: 0x0102_0304,
        ip_id: 7,
        ttl: 5,
    }
}

#[test]
fn a_sized_ipv4_syn_carries_zeros_to_its_length_with_good_checksums() {
    let mut buf = vec![0xAA; MAX_SYN_LEN];
    let f = fields("10.81.1.2:40000", "10.81.3.2:12001");
    let n = build_syn_sized(&mut buf, &f, Some(1500)).unwrap();
    assert_eq!(n, 1500);
    let ip = Ipv4Packet::new(&buf[..n]).unwrap();
    assert_eq!(ip.get_total_length(), 1500);
    assert_eq!(
        ip.get_flags() & Ipv4Flags::DontFragment,
        Ipv4Flags::DontFragment
    );
    assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
    let tcp = TcpPacket::new(ip.payload()).unwrap();
    assert_eq!(tcp.get_flags(), TcpFlags::SYN);
    assert_eq!(tcp.payload().len(), 1500 - V4_LEN);
    assert!(tcp.payload().iter().all(|&b| b == 0));
    let (s, d) = (ip.get_source(), ip.get_destination());
    assert_eq!(tcp.get_checksum(), tcp::ipv4_checksum(&tcp, &s, &d));
    // Restamped (the next probe of the flow): the checksum covers the payload still.
    restamp(&mut buf[..n], 99, 8, 6);
    let ip = Ipv4Packet::new(&buf[..n]).unwrap();
    let tcp = TcpPacket::new(ip.payload()).unwrap();
    assert_eq!(tcp.get_sequence(), 99);
    assert_eq!(tcp.get_checksum(), tcp::ipv4_checksum(&tcp, &s, &d));
}

#[test]
fn a_sized_ipv6_syn_sets_its_payload_length() {
    let mut buf = vec![0; MAX_SYN_LEN];
    let f = fields("[fd81:1::2]:40000", "[fd81:3::2]:12001");
    let n = build_syn_sized(&mut buf, &f, Some(1500)).unwrap();
    assert_eq!(n, 1500);
    let ip = Ipv6Packet::new(&buf[..n]).unwrap();
    assert_eq!(usize::from(ip.get_payload_length()), 1500 - V6_HEADER_LEN);
    let tcp = TcpPacket::new(ip.payload()).unwrap();
    let (s, d) = (ip.get_source(), ip.get_destination());
    assert_eq!(tcp.get_checksum(), tcp::ipv6_checksum(&tcp, &s, &d));
}

#[test]
fn sizes_outside_the_bounds_are_clamped_and_short_buffers_refused() {
    let f = fields("10.81.1.2:40000", "10.81.3.2:12001");
    let mut buf = vec![0; MAX_SYN_LEN + 100];
    // Less than the headers: the SYN without payload; more than a jumbo frame: 9000.
    assert_eq!(build_syn_sized(&mut buf, &f, Some(10)), Ok(V4_LEN));
    assert_eq!(build_syn_sized(&mut buf, &f, None), Ok(V4_LEN));
    assert_eq!(build_syn_sized(&mut buf, &f, Some(65_000)), Ok(MAX_SYN_LEN));
    assert_eq!(
        build_syn_sized(&mut [0; 200], &f, Some(1500)),
        Err(BuildError::ShortBuffer)
    );
}
