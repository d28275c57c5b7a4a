//! The comparison on SYNs we build, on quotes captured from Linux routers in the middlebox
//! lab (tests/fixtures/middlebox-captured.txt), and on truncated and garbage bytes.

use super::*;
use crate::packet::build::{build_syn, mark_syn, Marks, SynFields};

fn syn(src: &str, dst: &str, marks: Marks) -> Vec<u8> {
    let f = SynFields {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        seq: 0x1234_5678,
        ip_id: 9,
        ttl: 5,
    };
    let mut buf = [0u8; 128];
    let n = build_syn(&mut buf, &f).unwrap();
    mark_syn(&mut buf[..n], marks);
    buf[..n].to_vec()
}

fn v4() -> Vec<u8> {
    syn("10.80.1.2:40001", "10.80.4.2:13001", Marks::default())
}

fn fields(c: &[Change]) -> Vec<&'static str> {
    c.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn our_syn_reads_back_whole_and_equal_to_itself() {
    for pkt in [
        v4(),
        syn("[fd80:1::2]:40001", "[fd80:4::2]:13001", Marks::default()),
    ] {
        let h = Headers::parse(&pkt).unwrap();
        assert_eq!(h.quote, Quote::Full);
        let o = h.options.unwrap();
        assert!(o.mss.is_some() && o.sack_permitted && o.timestamps.is_some());
        assert_eq!(
            (o.window_scale, h.payload_len, h.window),
            (Some(7), Some(0), Some(64240))
        );
        assert_eq!((h.seq, h.sport, h.dport), (Some(0x1234_5678), 40001, 13001));
        assert!(diff(&h, &h).is_empty());
    }
}

#[test]
fn marks_set_tos_and_ecn_setup_with_valid_checksums() {
    let marks = Marks {
        tos: 46 << 2 | 2,
        ecn_setup: true,
    };
    for pkt in [
        syn("10.80.1.2:40001", "10.80.4.2:13001", marks),
        syn("[fd80:1::2]:40001", "[fd80:4::2]:13001", marks),
    ] {
        let h = Headers::parse(&pkt).unwrap();
        assert_eq!((h.dscp(), h.ecn(), h.ecn_flags()), (46, 2, Some(ECE | CWR)));
        assert_eq!(h.syn(), Some(true));
        // The same SYN built plain and marked afterwards differs in the marks and the
        // checksum only; the TCP checksum is recomputed (it covers the flags).
        let plain = Headers::parse(&if h.src.is_ipv6() {
            syn("[fd80:1::2]:40001", "[fd80:4::2]:13001", Marks::default())
        } else {
            v4()
        })
        .unwrap();
        assert_eq!(fields(&diff(&plain, &h)), ["dscp", "ecn", "ecn"]);
        assert_ne!(plain.checksum, h.checksum);
    }
    // The IPv4 header checksum still sums to zero.
    let pkt = syn("10.80.1.2:40001", "10.80.4.2:13001", marks);
    let sum: u32 = pkt[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
}

/// `pkt` with the MSS option's value set to `mss` (our SYN's first option).
fn with_mss(mut pkt: Vec<u8>, mss: u16) -> Vec<u8> {
    pkt[20 + 22..20 + 24].copy_from_slice(&mss.to_be_bytes());
    pkt
}

#[test]
fn each_rewrite_is_named_with_what_was_sent_and_seen() {
    let sent = Headers::parse(&v4()).unwrap();
    let clamped = Headers::parse(&with_mss(v4(), 1400)).unwrap();
    let c = diff(&sent, &clamped);
    assert_eq!(fields(&c), ["mss"]);
    assert_eq!(
        (c[0].sent.json(), c[0].seen.json()),
        (Some("1460".into()), Some("1400".into()))
    );
    assert_eq!(describe(&c[0]), "MSS 1460 → 1400 (clamped)");

    // Options stripped the way TCPOPTSTRIP does: replaced by NOPs.
    let mut stripped = v4();
    stripped[20 + 24..20 + 36].fill(1);
    let c = diff(&sent, &Headers::parse(&stripped).unwrap());
    assert_eq!(fields(&c), ["sack_perm", "timestamps"]);
    assert_eq!(c[1].seen.json(), None);
    assert_eq!(
        describe_all(&c),
        ["SACK-permitted removed", "timestamps removed"]
    );

    // Source NAT: address and port.
    let mut nat = v4();
    nat[12..16].copy_from_slice(&[10, 80, 2, 2]);
    nat[20..22].copy_from_slice(&61000u16.to_be_bytes());
    let c = diff(&sent, &Headers::parse(&nat).unwrap());
    assert_eq!(fields(&c), ["src", "sport"]);
    assert_eq!(
        describe_all(&c),
        ["source 10.80.1.2:40001 → 10.80.2.2:61000 (NAT)"]
    );

    // The TOS byte remarked and ECN bleached: DSCP and ECN, the TCP checksum untouched.
    let marked = syn(
        "10.80.1.2:40001",
        "10.80.4.2:13001",
        Marks {
            tos: 46 << 2 | 2,
            ecn_setup: true,
        },
    );
    let sent_marked = Headers::parse(&marked).unwrap();
    let mut bleached = marked.clone();
    bleached[1] = 0;
    let c = diff(&sent_marked, &Headers::parse(&bleached).unwrap());
    assert_eq!(
        describe_all(&c),
        [
            "DSCP 46 → 0 (remarked)",
            "ECN bits cleared (ECN codepoint ECT(0) → not-ECT)"
        ]
    );

    // Only the checksum differs: said, since nothing else quoted explains it.
    let mut sum = v4();
    sum[20 + 16] ^= 0xff;
    let c = diff(&sent, &Headers::parse(&sum).unwrap());
    assert_eq!(fields(&c), ["checksum"]);
    // With the sequence number rewritten, the checksum's change follows from it.
    let mut seq = v4();
    seq[24..28].copy_from_slice(&7u32.to_be_bytes());
    seq[20 + 16] ^= 0xff;
    let c = diff(&sent, &Headers::parse(&seq).unwrap());
    assert_eq!(fields(&c), ["seq"]);
    assert_eq!(describe(&c[0]), "sequence number 305419896 → 7 (rewritten)");
}

#[test]
fn a_short_quote_checks_only_what_it_holds() {
    let pkt = v4();
    let sent = Headers::parse(&pkt).unwrap();
    // RFC 792's minimum: the IP header and 8 bytes of TCP.
    let short = Headers::parse(&pkt[..28]).unwrap();
    assert_eq!(short.quote, Quote::Ports);
    assert_eq!(
        (short.options, short.window, short.payload_len),
        (None, None, None)
    );
    assert!(diff(&sent, &short).is_empty());
    // The fixed header without every option.
    let header = Headers::parse(&pkt[..44]).unwrap();
    assert_eq!(header.quote, Quote::Header);
    assert!(header.options.is_none() && header.window.is_some());
    // A clamped MSS in a short quote is not seen (not "unchanged": the quote says `ports`).
    let clamped = with_mss(pkt.clone(), 1400);
    assert!(diff(&sent, &Headers::parse(&clamped[..28]).unwrap()).is_empty());
    // Every cut and every garbage byte: no panic.
    for n in 0..pkt.len() {
        let _ = Headers::parse(&pkt[..n]);
    }
    assert!(Headers::parse(&pkt[..23]).is_none());
    let mut x = 0x9e37_79b9u32;
    for _ in 0..2000 {
        let mut g = pkt.clone();
        for b in g.iter_mut().skip(1) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x.is_multiple_of(5) {
                *b = x as u8;
            }
        }
        if let Some(h) = Headers::parse(&g) {
            let _ = describe_all(&diff(&sent, &h));
        }
    }
}

// ---- captured in the middlebox lab ----------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(crate) fn captured(name: &str) -> Vec<u8> {
    include_str!("../../tests/fixtures/middlebox-captured.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .map(|f| unhex(f[2]))
        .unwrap_or_else(|| panic!("fixture {name}"))
}

/// The packet an ICMP error quotes: after the outer IP header (IPv4: its IHL; IPv6: 40
/// bytes) and the 8 bytes of the ICMP header.
pub(crate) fn quote_of(icmp: &[u8]) -> &[u8] {
    let outer = if icmp[0] >> 4 == 4 {
        usize::from(icmp[0] & 0x0f) * 4
    } else {
        40
    };
    &icmp[outer + 8..]
}

/// (case, the changes hop 3's quote shows: field, sent, seen; SEQ: the SYN's sequence number,
/// which our SYN sends as its timestamp value too)
type Expected = &'static [(&'static str, Option<&'static str>, Option<&'static str>)];

const CASES: &[(&str, Expected)] = &[
    ("clean4", &[]),
    ("mss4", &[("mss", Some("1460"), Some("1400"))]),
    (
        "strip4",
        &[
            ("sack_perm", Some("present"), None),
            ("timestamps", Some("SEQ,0"), None),
        ],
    ),
    ("ecn4", &[("ecn", Some("ECE+CWR"), Some("none"))]),
    ("dscp4", &[("dscp", Some("46"), Some("0"))]),
    ("seq4", &[("seq", Some("SEQ"), Some("SEQ+1000000"))]),
    ("mss6", &[("mss", Some("1440"), Some("1380"))]),
    (
        "strip6",
        &[
            ("sack_perm", Some("present"), None),
            ("timestamps", Some("SEQ,0"), None),
        ],
    ),
    ("dscp6", &[("dscp", Some("46"), Some("0"))]),
    ("snat4", &[("src", Some("10.80.1.2"), Some("10.80.9.9"))]),
    ("snat6", &[("src", Some("fd80:1::2"), Some("fd80:9::9"))]),
];

#[test]
fn captured_quotes_of_linux_routers_show_each_middlebox() {
    for (case, want) in CASES {
        let sent = Headers::parse(&captured(&format!("{case}_syn"))).unwrap();
        let icmp = captured(&format!("{case}_te3"));
        let seen = Headers::parse(quote_of(&icmp)).unwrap();
        assert_eq!(
            seen.quote,
            Quote::Full,
            "{case}: Linux quotes the whole SYN"
        );
        let got: Vec<(&str, Option<String>, Option<String>)> = diff(&sent, &seen)
            .iter()
            .map(|c| (c.field.as_str(), c.sent.json(), c.seen.json()))
            .collect();
        let want: Vec<(&str, Option<String>, Option<String>)> = want
            .iter()
            .map(|(f, a, b)| {
                let seq = sent.seq.unwrap();
                let v = |x: &str| {
                    x.replace("SEQ+1000000", &seq.wrapping_add(1_000_000).to_string())
                        .replace("SEQ", &seq.to_string())
                };
                (*f, a.map(v), b.map(v))
            })
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn the_syn_built_again_is_the_syn_captured() {
    // What trace's middlebox report compares with: build_syn and mark_syn from the probe's
    // fields give the bytes that left, byte for byte.
    for (case, marks) in [
        (
            "clean4",
            Marks {
                tos: 46 << 2,
                ecn_setup: true,
            },
        ),
        ("mss4", Marks::default()),
        (
            "dscp6",
            Marks {
                tos: 46 << 2,
                ecn_setup: false,
            },
        ),
        ("mss6", Marks::default()),
    ] {
        let pkt = captured(&format!("{case}_syn"));
        let h = Headers::parse(&pkt).unwrap();
        let ip_id = if h.src.is_ipv6() {
            0
        } else {
            u16::from_be_bytes([pkt[4], pkt[5]])
        };
        let f = SynFields {
            src: std::net::SocketAddr::new(h.src, h.sport),
            dst: std::net::SocketAddr::new(h.dst, h.dport),
            seq: h.seq.unwrap(),
            ip_id,
            ttl: 3,
        };
        let mut buf = [0u8; 128];
        let n = build_syn(&mut buf, &f).unwrap();
        mark_syn(&mut buf[..n], marks);
        assert_eq!(&buf[..n], &pkt[..], "{case}");
    }
}

#[test]
fn captured_quotes_cut_short_check_only_what_they_hold() {
    let sent = Headers::parse(&captured("mss4_syn")).unwrap();
    let icmp = captured("mss4_te3");
    let quote = quote_of(&icmp);
    for n in 0..=quote.len() {
        let Some(seen) = Headers::parse(&quote[..n]) else {
            assert!(n < 24, "a quote with the ports reads ({n} bytes)");
            continue;
        };
        let fields: Vec<&str> = diff(&sent, &seen)
            .iter()
            .map(|c| c.field.as_str())
            .collect();
        match seen.quote {
            // RFC 792's 8 bytes: ports and sequence number, nothing to say of the MSS.
            Quote::Ports => assert!(fields.is_empty(), "{n}: {fields:?}"),
            // The fixed header: the options are cut off, but the checksum covers them: it
            // changed while nothing quoted did.
            Quote::Header => assert_eq!(fields, ["checksum"], "{n}"),
            Quote::Full => assert_eq!(fields, ["mss"], "{n}"),
        }
        assert_eq!(seen.quote == Quote::Full, n >= 60, "{n}");
    }
    // The SYN-ACK (a whole segment) and an ICMPv6 error's quote read as well.
    let sa = Headers::parse(&captured("mss6_synack")).unwrap();
    assert_eq!(
        (sa.syn(), sa.options.unwrap().mss),
        (Some(true), Some(1440))
    );
}
