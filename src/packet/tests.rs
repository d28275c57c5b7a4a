//! The views on captured bytes (tests/fixtures), and on every truncation and on garbage:
//! never a panic.

use std::net::IpAddr;

use super::build::{build_syn, SynFields};
use super::icmp::{IcmpType, Icmpv4Type, Icmpv6Type, Unreachable4};
use super::ip::{proto, Ip};
use super::tcp::{Flags, Tcp, TcpOption, TcpOptions, TcpPrefix};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The lines of a fixture file: (name, second column, bytes).
fn fixtures(text: &str) -> Vec<(String, String, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), unhex(f[2]))
        })
        .collect()
}

fn syn_captures() -> Vec<(String, String, Vec<u8>)> {
    fixtures(include_str!("../../tests/fixtures/syn-captured.txt"))
}

fn icmp_captures() -> Vec<(String, String, Vec<u8>)> {
    fixtures(include_str!("../../tests/fixtures/icmp-captured.txt"))
}

fn capture(all: &[(String, String, Vec<u8>)], name: &str) -> Vec<u8> {
    all.iter().find(|f| f.0 == name).unwrap().2.clone()
}

#[test]
fn a_captured_syn_and_its_syn_ack_read_field_by_field() {
    let all = syn_captures();
    let syn = capture(&all, "v4_syn");
    let ip = Ip::parse(&syn).unwrap();
    assert_eq!(ip.src(), "10.99.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(ip.dst(), "10.99.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(
        (ip.protocol(), ip.ttl(), ip.header_len()),
        (proto::TCP, 64, 20)
    );
    assert!(!ip.fragmented() && !ip.is_v6());
    let t = Tcp::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (t.src_port(), t.dst_port(), t.seq()),
        (38515, 12001, 0x2356_f0e5)
    );
    assert_eq!(
        (t.flags(), t.window(), t.header_len()),
        (Flags(Flags::SYN), 64240, 40)
    );
    assert!(t.payload().is_empty());
    let opts: Vec<TcpOption> = t.options().collect();
    assert_eq!(
        opts,
        [
            TcpOption::Mss(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps {
                value: 0x2356_f0e5,
                echo: 0
            },
            TcpOption::Nop,
            TcpOption::WindowScale(7),
        ]
    );
    assert_eq!(
        TcpOptions::parse(t.option_bytes()),
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x2356_f0e5, 0)),
            others: 0,
        }
    );
    let synack = capture(&all, "v4_synack");
    let t = Tcp::new_checked(Ip::parse(&synack).unwrap().payload()).unwrap();
    assert!(t.flags().syn() && t.flags().ack() && !t.flags().rst());
    assert_eq!(t.ack(), 0x2356_f0e6);
    let rst = capture(&all, "v6_closed_rst");
    let ip = Ip::parse(&rst).unwrap();
    assert!(ip.is_v6());
    assert_eq!(ip.header_len(), 40);
    let t = Tcp::new_checked(ip.payload()).unwrap();
    assert!(t.flags().rst() && t.flags().ack());
    assert_eq!(t.ack(), 0xecc9_1a55);
}

#[test]
fn the_quote_of_a_captured_icmp_error_reads_through_ip_options_and_extension_headers() {
    let all = icmp_captures();
    // IPv4: the outer header, 8 bytes of ICMP, the quoted SYN.
    for (name, outer_ihl, quoted_ihl) in [
        ("v4_host_unreach", 20, 20),
        ("v4_ttl_exceeded_ip_options", 28, 28),
    ] {
        let b = capture(&all, name);
        let outer = Ip::v4(&b).unwrap();
        assert_eq!(
            (outer.protocol(), outer.header_len()),
            (proto::ICMP, outer_ihl),
            "{name}"
        );
        let q = Ip::v4(&outer.payload()[8..]).unwrap();
        assert_eq!(
            (q.protocol(), q.header_len()),
            (proto::TCP, quoted_ihl),
            "{name}"
        );
        let t = TcpPrefix::new_checked(q.payload()).unwrap();
        assert!(t.seq().is_some() && t.flags().unwrap().syn(), "{name}");
    }
    let b = capture(&all, "v4_host_unreach");
    let t = TcpPrefix::new_checked(&b[48..]).unwrap();
    assert_eq!(
        (t.src_port(), t.dst_port(), t.seq()),
        (41001, 81, Some(0x851b_5248))
    );
    let whole = t.whole().unwrap();
    assert_eq!(TcpOptions::parse(whole.option_bytes()).mss, Some(1460));
    // IPv6 (from the ICMPv6 header on): a destination options header before TCP.
    let b = capture(&all, "v6_hop_limit_dstopts");
    let q = Ip::v6(&b[8..]).unwrap();
    assert_eq!((q.protocol(), q.header_len()), (proto::TCP, 48));
    assert!(!q.later_fragment());
    assert!(TcpPrefix::new_checked(q.payload()).is_some());
    // The quote cut at 8 bytes of TCP: ports and sequence number, no flags, no header.
    let t = TcpPrefix::new_checked(&b[8 + 48..8 + 48 + 8]).unwrap();
    assert!(t.seq().is_some() && t.flags().is_none() && t.whole().is_none());
}

#[test]
fn what_we_build_reads_back() {
    let f = SynFields {
        src: "[fd00::1]:40000".parse().unwrap(),
        dst: "[fd00::2]:443".parse().unwrap(),
        seq: 7,
        ip_id: 0,
        ttl: 3,
    };
    let mut buf = [0u8; 128];
    let n = build_syn(&mut buf, &f).unwrap();
    let ip = Ip::parse(&buf[..n]).unwrap();
    assert_eq!((ip.ttl(), ip.header_len()), (3, 40));
    let t = Tcp::new_checked(ip.payload()).unwrap();
    let o = TcpOptions::parse(t.option_bytes());
    assert_eq!((o.mss, o.timestamps), (Some(1440), Some((7, 0))));
}

#[test]
fn malformed_options_end_the_list_without_panicking() {
    // MSS with length 0, a length past the end, an unknown kind, end of list.
    assert_eq!(TcpOptions::parse(&[2, 0, 5, 180]), TcpOptions::default());
    assert_eq!(TcpOptions::parse(&[1, 3, 9, 7]), TcpOptions::default());
    let o = TcpOptions::parse(&[30, 3, 0, 2, 3, 1, 0, 3, 3, 7]);
    assert_eq!(
        (o.others, o.mss),
        (2, None),
        "a 3-byte MSS is another option"
    );
    assert_eq!(TcpOptions::parse(&[0, 3, 3, 7]).window_scale, None);
    assert_eq!(TcpOptions::parse(&[4]), TcpOptions::default());
}

#[test]
fn every_truncation_and_garbage_is_read_without_panicking() {
    let mut all: Vec<Vec<u8>> = syn_captures().into_iter().map(|f| f.2).collect();
    all.extend(icmp_captures().into_iter().map(|f| f.2));
    let mut source = crate::junk::Junk::new(0x9e37_79b9);
    all.extend((0..300).map(|len| source.bytes(len)));
    for b in &all {
        for n in 0..=b.len() {
            let cut = &b[..n];
            for start in [0, 8, 20, 28] {
                let at = cut.get(start..).unwrap_or(&[]);
                if let Some(ip) = Ip::parse(at) {
                    let _ = (ip.header_len(), ip.payload(), ip.later_fragment());
                }
                if let Ok(t) = Tcp::new_checked(at) {
                    let _ = (t.flags(), t.window(), t.checksum(), t.payload());
                    let _ = TcpOptions::parse(t.option_bytes());
                    assert!(n >= 20);
                }
                if let Some(t) = TcpPrefix::new_checked(at) {
                    let _ = (t.seq(), t.ack(), t.flags(), t.whole());
                }
            }
        }
    }
    assert!(Tcp::new_checked(&[0u8; 19][..]).is_err());
    // A data offset under 5, or past the end.
    let mut h = [0u8; 20];
    h[12] = 0x40;
    assert!(Tcp::new_checked(&h[..]).is_err());
    h[12] = 0x60;
    assert!(Tcp::new_checked(&h[..]).is_err());
}

#[test]
fn icmp_types_and_codes_have_names_and_keep_other_numbers() {
    assert_eq!(Icmpv4Type::from(11), Icmpv4Type::TimeExceeded);
    assert_eq!(Icmpv4Type::from(42), Icmpv4Type::Other(42));
    assert_eq!(u8::from(Icmpv4Type::Other(42)), 42);
    assert_eq!(u8::from(Icmpv6Type::PacketTooBig), 2);
    assert_eq!(Unreachable4::from(13), Unreachable4::AdminProhibited);
    for t in 0..=255u8 {
        assert_eq!(u8::from(Icmpv4Type::from(t)), t);
        assert_eq!(u8::from(Icmpv6Type::from(t)), t);
    }
    assert!(IcmpType::of(false, 11).is_time_exceeded());
    assert!(IcmpType::of(true, 3).is_time_exceeded());
    assert!(!IcmpType::of(true, 11).is_time_exceeded());
    assert!(IcmpType::of(false, 3).is_too_big(4));
    assert!(!IcmpType::of(false, 3).is_too_big(3));
    assert!(IcmpType::of(true, 2).is_too_big(0));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        if let Some(ip) = Ip::parse(&bytes) {
            let _ = (ip.header_len(), ip.protocol(), ip.payload());
        }
        if let Ok(t) = Tcp::new_checked(&bytes[..]) {
            let _ = (t.seq(), t.ack(), t.flags(), t.window(), t.payload());
            let _ = t.options().count();
        }
        let _ = TcpOptions::parse(&bytes);
        if let Some(t) = TcpPrefix::new_checked(&bytes) {
            let _ = (t.seq(), t.ack(), t.flags(), t.whole());
        }
    }
}
