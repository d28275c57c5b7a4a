//! The extensions of real packets: time exceeded messages the trace lab's client received
//! (tests/fixtures/icmp-ext-captured.txt), parsed by the same path every ICMP error takes.

use super::*;
use crate::icmp::parse::parse_icmpv4_packet;

fn fixture(name: &str) -> Vec<u8> {
    let line = include_str!("../../../tests/fixtures/icmp-ext-captured.txt")
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let hex = line.split_whitespace().nth(1).unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn ext_of(pkt: &[u8]) -> Option<Extensions> {
    parse_icmpv4_packet(pkt)
        .ok()
        .flatten()
        .and_then(|e| e.extensions.map(|b| *b))
}

#[test]
fn linux_time_exceeded_has_none() {
    let e = parse_icmpv4_packet(&fixture("v4_te_plain"))
        .unwrap()
        .unwrap();
    assert_eq!((e.icmp_type, e.code), (11, 0));
    assert_eq!(e.extensions, None);
}

#[test]
fn rfc_4884_mpls_and_interface_information() {
    let pkt = fixture("v4_te_mpls_rfc4884");
    let e = parse_icmpv4_packet(&pkt).unwrap().unwrap();
    // The quote is still read: the SYN it answers.
    let q = e.quoted.unwrap();
    assert_eq!(q.dst, "10.78.4.2:12003".parse().unwrap());
    assert_eq!(q.seq, Some(0xe278_e620));
    let x = e.extensions.unwrap();
    assert!(!x.legacy && !x.truncated);
    assert_eq!(
        x.mpls,
        [
            MplsLabel {
                label: 24001,
                tc: 0,
                bottom: false,
                ttl: 1
            },
            MplsLabel {
                label: 16,
                tc: 5,
                bottom: true,
                ttl: 255
            }
        ]
    );
    assert_eq!(
        x.interfaces,
        [InterfaceInfo {
            role: InterfaceRole::Incoming,
            ifindex: Some(2),
            address: Some("10.78.2.2".parse().unwrap()),
            name: Some("r2-in".into()),
            mtu: Some(1500),
        }]
    );
}

#[test]
fn legacy_layout_mpls() {
    let x = ext_of(&fixture("v4_te_mpls_legacy")).unwrap();
    assert!(x.legacy);
    assert_eq!(
        x.mpls,
        [MplsLabel {
            label: 24002,
            tc: 0,
            bottom: true,
            ttl: 1
        }]
    );
    assert!(x.interfaces.is_empty());
}

#[test]
fn every_truncation_of_the_captured_packets() {
    let pkt = fixture("v4_te_mpls_rfc4884");
    // 20 (IP) + 8 (ICMP) + 128 (quote) = 156: the structure starts there; its header
    // is 4 octets, the MPLS object 12, the interface object 28.
    let start = 156;
    for n in 0..pkt.len() {
        let x = ext_of(&pkt[..n]);
        match n {
            _ if n < start + 16 => assert_eq!(x, None, "cut at {n}"),
            // Cut exactly after the MPLS object: looks whole, the checksum says no.
            _ if n == start + 16 => assert_eq!(x, None, "cut at {n}"),
            _ if n < pkt.len() => {
                let x = x.unwrap_or_else(|| panic!("cut at {n}"));
                assert_eq!(x.mpls.len(), 2, "cut at {n}");
                assert!(x.truncated && x.interfaces.is_empty(), "cut at {n}");
            }
            _ => unreachable!(),
        }
    }
    let legacy = fixture("v4_te_mpls_legacy");
    for n in 0..legacy.len() {
        // Without the length attribute only a whole structure whose checksum verifies
        // counts.
        assert_eq!(ext_of(&legacy[..n]), None, "cut at {n}");
    }
    // Flipped bytes in the structure: refused by the checksum, never a panic.
    for i in start..pkt.len() {
        let mut bad = pkt.clone();
        bad[i] ^= 0x40;
        let _ = ext_of(&bad);
    }
}
