use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// By hand, per RFC 4884 figure 5 and RFC 4950 figure 1: version 2, checksum 0xbd15
/// (verified below), one MPLS object of 12 octets with two entries:
/// label 24001 TC 0 S 0 TTL 1, label 16 TC 5 S 1 TTL 255.
const MPLS_TWO_LABELS: &str = "2000 bd15  000c 0101  05dc 1001  0001 0bff";

#[test]
fn mpls_label_stack_by_hand() {
    let b = hex(MPLS_TWO_LABELS);
    assert_eq!(checksum(&b), 0, "the checksum in the fixture verifies");
    let e = parse_structure(&b).unwrap();
    assert_eq!(
        e.mpls,
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
    assert!(e.interfaces.is_empty() && e.other.is_empty() && !e.truncated);
    assert_eq!(e.mpls[0].to_string(), "L=24001 TC=0 S=0 TTL=1");
    for m in &e.mpls {
        assert_eq!(MplsLabel::from_bytes(m.to_bytes()), *m);
    }
    assert_eq!(build_structure(&[(1, 1, b[8..].to_vec())]), b);
}

/// By hand, per RFC 5837 figures 2-6: incoming interface (role 0) with ifIndex 7,
/// IPv4 address 10.78.2.2, name "r2-in" (length octet 8: 1 + 5 + 2 of padding), MTU 1500:
/// c-type 0b00_00_1111.
const INTERFACE_V4: &str = "2000 0000  001c 020f  0000 0007  0001 0000 0a4e 0202  \
                            0872 322d 696e 0000  0000 05dc";

#[test]
fn interface_information_by_hand() {
    let b = hex(INTERFACE_V4);
    let e = parse_structure(&b).unwrap();
    assert_eq!(
        e.interfaces,
        [InterfaceInfo {
            role: InterfaceRole::Incoming,
            ifindex: Some(7),
            address: Some("10.78.2.2".parse().unwrap()),
            name: Some("r2-in".into()),
            mtu: Some(1500),
        }]
    );
    assert_eq!(
        e.interfaces[0].to_string(),
        "incoming interface \"r2-in\" ifindex 7 10.78.2.2 mtu 1500"
    );
    // The builder gives the same object (the checksum aside: 0 in the fixture).
    let (ctype, body) = build_interface(&e.interfaces[0]);
    assert_eq!((ctype, &body[..]), (0x0f, &b[8..]));
    // Only some sub-objects: outgoing role, IPv6 address and name.
    let i = InterfaceInfo {
        role: InterfaceRole::Outgoing,
        ifindex: None,
        address: Some("fd78:2::2".parse().unwrap()),
        name: Some("ge-0/0/1.100".into()),
        mtu: None,
    };
    let (ctype, body) = build_interface(&i);
    assert_eq!(ctype, 0x80 | 0x04 | 0x02);
    assert_eq!(parse_interface(ctype, &body), Some(i));
}

#[test]
fn the_checksum_is_checked_unless_zero() {
    let mut b = hex(MPLS_TWO_LABELS);
    b[9] ^= 1;
    assert_eq!(parse_structure(&b), Err(ExtError::Checksum));
    b[2..4].copy_from_slice(&[0, 0]);
    assert_eq!(
        parse_structure(&b).unwrap().mpls.len(),
        2,
        "no checksum sent"
    );
}

#[test]
fn malformed_structures_are_refused() {
    assert_eq!(parse_structure(&[0x20, 0, 0]), Err(ExtError::Short));
    assert_eq!(
        parse_structure(&hex("1000 0000 0008 0101 0000 0000")),
        Err(ExtError::Version(1))
    );
    assert_eq!(
        parse_structure(&hex("2000 0000 0006 0101 0000 0000")),
        Err(ExtError::ObjectLength(6))
    );
    assert_eq!(
        parse_structure(&hex("2000 0000 0002 0101")),
        Err(ExtError::ObjectLength(2))
    );
    // Unknown classes and c-types are listed, not decoded.
    let e = parse_structure(&hex("2000 0000 0008 0302 dead beef 0004 0102")).unwrap();
    assert_eq!(e.other, [(3, 2), (1, 2)]);
    // An interface object whose name length is not a multiple of 4: kept as "other".
    let e = parse_structure(&hex("2000 0000 0008 0202 0561 6263 6400")).unwrap();
    assert_eq!(e.other, [(2, 2)]);
    assert!(e.interfaces.is_empty());
}

#[test]
fn every_truncation_gives_the_whole_objects_and_never_panics() {
    let mut b = hex(MPLS_TWO_LABELS);
    b.extend_from_slice(&hex(INTERFACE_V4)[4..]);
    let sum = checksum(&{
        let mut z = b.clone();
        z[2..4].copy_from_slice(&[0, 0]);
        z
    });
    b[2..4].copy_from_slice(&sum.to_be_bytes());
    let whole = parse_structure(&b).unwrap();
    assert_eq!((whole.mpls.len(), whole.interfaces.len()), (2, 1));
    for n in 0..b.len() {
        match parse_structure(&b[..n]) {
            Err(ExtError::Short) => assert!(n < 4),
            // Cut exactly after an object: it looks whole, and the checksum (over the
            // whole structure) fails.
            Err(ExtError::Checksum) => assert!(n == 4 || n == 16, "cut at {n}"),
            Ok(e) => {
                assert!(e.truncated, "cut at {n}: {e:?}");
                if n < 16 {
                    assert!(e.mpls.is_empty() && e.interfaces.is_empty());
                } else {
                    assert_eq!(e.mpls.len(), 2);
                    assert!(e.interfaces.is_empty());
                }
            }
            Err(other) => panic!("cut at {n}: {other:?}"),
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut source = crate::junk::Junk::new(0x9e37_79b9);
    for len in 0..400 {
        let junk = source.bytes(len);
        let _ = parse_structure(&junk);
        let mut v2 = junk.clone();
        if let Some(b) = v2.first_mut() {
            *b = 0x20;
        }
        let _ = parse_structure(&v2);
        for t in [3, 11, 12, 1] {
            let _ = from_icmp(false, t, [0, (len % 64) as u8, 0, 0], &junk);
            let _ = from_icmp(true, t, [(len % 32) as u8, 0, 0, 0], &junk);
            let _ = from_icmp(false, t, [0, 0, 0, 0], &v2);
        }
        for ctype in [0xff, 0x0f, 0x4c, 0x02] {
            let _ = parse_interface(ctype, &junk);
        }
    }
}

/// A 60-octet quoted SYN padded to 128, as a router that supports RFC 4884 quotes it.
fn padded_quote() -> Vec<u8> {
    let mut q = vec![0x45, 0, 0, 60];
    q.resize(60, 0xab);
    q.resize(ORIGINAL_DATAGRAM_MIN, 0);
    q
}

#[test]
fn located_by_the_rfc_4884_length_attribute() {
    let ext = hex(MPLS_TWO_LABELS);
    let mut payload = padded_quote();
    payload.extend_from_slice(&ext);
    // ICMPv4 time exceeded: length 32 words = 128 octets, in the 6th header octet.
    let e = from_icmp(false, 11, [0, 32, 0, 0], &payload).unwrap();
    assert_eq!(e.mpls.len(), 2);
    assert!(!e.legacy);
    // ICMPv6 time exceeded (type 3): 16 units of 8 octets, in the 5th header octet.
    let e = from_icmp(true, 3, [16, 0, 0, 0], &payload).unwrap();
    assert_eq!(e.mpls.len(), 2);
    // The same bytes in a type that has no length attribute: nothing.
    assert_eq!(from_icmp(false, 4, [0, 32, 0, 0], &payload), None);
    assert_eq!(from_icmp(true, 2, [16, 0, 0, 0], &payload), None);
    // A length that points past the end, or at the very end: nothing.
    assert_eq!(from_icmp(false, 11, [0, 60, 0, 0], &payload), None);
    assert_eq!(
        from_icmp(false, 11, [0, 32, 0, 0], &payload[..ORIGINAL_DATAGRAM_MIN]),
        None
    );
    // A length that is right but points at garbage (bad version): nothing.
    assert_eq!(from_icmp(false, 11, [0, 16, 0, 0], &payload), None);
}

#[test]
fn legacy_routers_without_the_length_attribute() {
    let ext = hex(MPLS_TWO_LABELS);
    let mut payload = padded_quote();
    payload.extend_from_slice(&ext);
    let e = from_icmp(false, 11, [0, 0, 0, 0], &payload).unwrap();
    assert!(e.legacy);
    assert_eq!(e.mpls[1].label, 16);
    // Not for ICMPv6 (RFC 4884 5.5 is about ICMPv4 MPLS implementations).
    assert_eq!(from_icmp(true, 3, [0, 0, 0, 0], &payload), None);
    // Without a checksum the bytes after octet 128 could be anything: not taken.
    let mut no_sum = payload.clone();
    no_sum[130..132].copy_from_slice(&[0, 0]);
    assert_eq!(from_icmp(false, 11, [0, 0, 0, 0], &no_sum), None);
    // A long quoted datagram (no extension): its bytes at 128 do not verify.
    let mut long = padded_quote();
    long.extend_from_slice(&[0x20; 40]);
    assert_eq!(from_icmp(false, 3, [0, 0, 0, 0], &long), None);
    // Exactly 128 octets: nothing follows.
    assert_eq!(from_icmp(false, 11, [0, 0, 0, 0], &padded_quote()), None);
}
