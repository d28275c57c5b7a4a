//! Tests of the SYN's building, classifying and matching, on captured bytes.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};

use super::prober::{overlap, SEQ_STEP};
use super::*;
use crate::icmp::correlate::Unmatched;
use crate::probe::{Clock, IcmpTally, ProbeSpec, Status};

/// The captured packets of tests/fixtures/syn-captured.txt: (name, outgoing, bytes).
pub(crate) fn fixtures() -> Vec<(String, bool, Vec<u8>)> {
    include_str!("../../../tests/fixtures/syn-captured.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = f[2];
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (f[0].to_string(), f[1] == "out", bytes)
        })
        .collect()
}

pub(crate) fn fixture(name: &str) -> (bool, Vec<u8>) {
    let (_, out, b) = fixtures()
        .into_iter()
        .find(|f| f.0 == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    (out, b)
}

pub(super) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What etherparse reads back of a SYN we built.
fn read_back(pkt: &[u8]) -> (SocketAddr, SocketAddr, u32, bool, Vec<TcpOptionElement>) {
    let p = SlicedPacket::from_ip(pkt).expect("a whole, valid packet");
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    let (src, dst, sum_ok) = match p.net.unwrap() {
        NetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            (
                IpAddr::V4(h.source.into()),
                IpAddr::V4(h.destination.into()),
                want == t.checksum(),
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header().to_header();
            let want = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
            (
                IpAddr::V6(h.source.into()),
                IpAddr::V6(h.destination.into()),
                want == t.checksum(),
            )
        }
    };
    assert!(
        t.syn() && !t.ack() && !t.rst() && !t.fin(),
        "flags: SYN only"
    );
    let opts = t.options_iterator().map(|o| o.unwrap()).collect();
    (
        SocketAddr::new(src, t.source_port()),
        SocketAddr::new(dst, t.destination_port()),
        t.sequence_number(),
        sum_ok,
        opts,
    )
}

#[test]
fn what_pnet_builds_etherparse_reads_back_with_valid_checksums() {
    for (src, dst) in [
        ("10.0.0.1:40000", "10.0.0.2:443"),
        ("[fd00::1]:40000", "[fd00::2]:443"),
    ] {
        let f = SynFields {
            src: sa(src),
            dst: sa(dst),
            seq: 0xfeed_f00d,
            ip_id: 7,
            ttl: 3,
        };
        let mut buf = [0u8; 128];
        let n = build_syn(&mut buf, &f).unwrap();
        let (s, d, seq, sum_ok, opts) = read_back(&buf[..n]);
        assert_eq!((s, d, seq, sum_ok), (f.src, f.dst, f.seq, true));
        assert!(matches!(
            opts[0],
            TcpOptionElement::MaximumSegmentSize(1460 | 1440)
        ));
        assert_eq!(opts[1], TcpOptionElement::SelectiveAcknowledgementPermitted);
        assert_eq!(opts[2], TcpOptionElement::Timestamp(0xfeed_f00d, 0));
        assert_eq!(opts[4], TcpOptionElement::WindowScale(7));
        if f.src.is_ipv4() {
            assert_eq!(buf[8], 3, "TTL");
            assert_eq!(u16::from_be_bytes([buf[4], buf[5]]), 7, "IPv4 ID");
        } else {
            assert_eq!(buf[7], 3, "hop limit");
        }
        // The next probe of the flow: only the sequence number, ID and TTL change.
        restamp(&mut buf[..n], 0x0000_0001, 8, 64);
        let (s2, d2, seq2, sum_ok2, _) = read_back(&buf[..n]);
        assert_eq!((s2, d2, seq2, sum_ok2), (f.src, f.dst, 1, true));
    }
    let mixed = SynFields {
        src: sa("10.0.0.1:1"),
        dst: sa("[::1]:2"),
        seq: 0,
        ip_id: 0,
        ttl: 1,
    };
    assert_eq!(
        build_syn(&mut [0; 128], &mixed),
        Err(BuildError::MixedFamilies)
    );
    let v6 = SynFields {
        src: sa("[::1]:1"),
        dst: sa("[::1]:2"),
        ..mixed
    };
    assert_eq!(build_syn(&mut [0; 60], &v6), Err(BuildError::ShortBuffer));
}

#[test]
fn our_built_syn_is_the_syn_that_was_captured() {
    // The captured SYN was built by this code; rebuilding it from its fields gives the
    // same bytes (so what we send is what the wire saw).
    let (_, cap) = fixture("v4_syn");
    let f = SynFields {
        src: sa("10.99.0.1:38515"),
        dst: sa("10.99.0.2:12001"),
        seq: 0x2356_f0e5,
        ip_id: 1,
        ttl: 64,
    };
    let mut buf = [0u8; 128];
    let n = build_syn(&mut buf, &f).unwrap();
    assert_eq!(&buf[..n], &cap[..]);
}

#[test]
fn captured_packets_are_classified() {
    let c = |name: &str| {
        let (out, b) = fixture(name);
        classify(&b, out)
    };
    assert_eq!(
        c("v4_syn"),
        Some(Seen::Syn {
            src: sa("10.99.0.1:38515"),
            dst: sa("10.99.0.2:12001"),
            seq: 0x2356_f0e5
        })
    );
    assert_eq!(
        c("v4_synack"),
        Some(Seen::Answer {
            from: sa("10.99.0.2:12001"),
            to: sa("10.99.0.1:38515"),
            ack: 0x2356_f0e6,
            kind: AnswerKind::SynAck
        })
    );
    // Our kernel's RST to the SYN-ACK, leaving: nothing to match.
    assert_eq!(c("v4_our_rst"), None);
    assert_eq!(
        c("v4_closed_rst"),
        Some(Seen::Answer {
            from: sa("10.99.0.2:12999"),
            to: sa("10.99.0.1:49671"),
            ack: 0x77d4_bc95,
            kind: AnswerKind::Rst
        })
    );
    match c("v4_reject_icmp") {
        Some(Seen::Icmp(e)) => {
            assert_eq!((e.icmp_type, e.code), (3, 13));
            let q = e.quoted.unwrap();
            assert_eq!(q.src, sa("10.99.0.1:50337"));
            assert_eq!(q.seq, Some(0xb487_215b));
        }
        other => panic!("{other:?}"),
    }
    match c("v6_reject_icmp") {
        Some(Seen::Icmp(e)) => {
            assert_eq!((e.v6, e.icmp_type, e.code), (true, 1, 1));
            assert_eq!(e.from, "fd99::2".parse::<IpAddr>().unwrap());
            let q = e.quoted.unwrap();
            assert_eq!(q.src, sa("[fd99::1]:54641"));
            assert_eq!(q.seq, Some(0x0304_d556));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c("v6_synack"),
        Some(Seen::Answer {
            kind: AnswerKind::SynAck,
            ack: 0xa120_67ea,
            ..
        })
    ));
    assert!(matches!(
        c("v6_closed_rst"),
        Some(Seen::Answer {
            kind: AnswerKind::Rst,
            ack: 0xecc9_1a55,
            ..
        })
    ));
    // An answer seen leaving (loopback's other copy, or a server on this host) is not one.
    let (_, synack) = fixture("v4_synack");
    assert_eq!(classify(&synack, true), None);
}

#[test]
fn truncated_and_garbage_packets_are_skipped() {
    for (name, out, b) in fixtures() {
        for n in 0..b.len() {
            // Any prefix: no panic; a prefix without the TCP flags is not an answer.
            let seen = classify(&b[..n], out);
            if n < 20 {
                assert_eq!(seen, None, "{name} cut at {n}");
            }
        }
    }
    let mut source = crate::junk::Junk::new(0x1234_5678);
    for len in 0..300 {
        let junk = source.bytes(len);
        let _ = classify(&junk, false);
        let _ = classify(&junk, true);
    }
}

pub(super) fn spec(seq: u64, target: &str) -> ProbeSpec {
    ProbeSpec {
        seq,
        target: sa(target),
        ttl: None,
        flow: 0,
    }
}

pub(super) fn at(us: u64) -> Option<Duration> {
    Some(Duration::from_micros(1_700_000_000_000_000 + us))
}

fn seen(name: &str) -> Seen {
    let (out, b) = fixture(name);
    classify(&b, out).unwrap()
}

#[test]
fn the_syn_ack_concludes_its_probe_with_the_wire_time_once() {
    let t0 = Instant::now();
    let mut m = Matcher::new(true);
    m.insert(
        spec(1, "10.99.0.2:12001"),
        sa("10.99.0.1:38515"),
        0x2356_f0e5,
        t0,
        Duration::from_secs(1),
    );
    assert_eq!(m.in_flight_to(&sa("10.99.0.2:12001")), 1);
    assert!(m.on_seen(seen("v4_syn"), at(0), t0).is_none());
    // A SYN-ACK for another probe's sequence number (the second probe's): not this one.
    assert!(m.on_seen(seen("v4_synack2"), at(10), t0).is_none());
    let r = m.on_seen(seen("v4_synack"), at(24), t0).unwrap();
    assert_eq!(r.status, Status::Reply);
    assert_eq!(r.seq, 1);
    assert_eq!(r.connect, Some(Duration::from_micros(24)));
    assert_eq!(r.connect_clock, Some(Clock::Wire));
    assert_eq!(r.local_port, Some(38515));
    // A duplicate SYN-ACK concludes nothing more.
    assert!(m.on_seen(seen("v4_synack"), at(30), t0).is_none());
    assert_eq!(m.in_flight(), 0);
    assert_eq!(m.tally(), IcmpTally::default());
}

#[test]
fn a_reset_acknowledging_a_sized_syns_data_concludes_its_probe() {
    // trace --size 120: the SYN carries 60 bytes, and a closed port's reset acknowledges
    // them with the SYN (ack = seq + 61), not seq + 1.
    let t0 = Instant::now();
    let target = "127.0.0.1:12999";
    let Seen::Syn { src, seq, .. } = seen("v4_sized_closed_syn") else {
        panic!("not our SYN");
    };
    let mut plain = Matcher::new(false);
    plain.insert(spec(1, target), src, seq, t0, Duration::from_secs(1));
    // Told nothing of the data, the reset names no probe in flight.
    assert!(plain
        .on_seen(seen("v4_sized_closed_rst"), at(20), t0)
        .is_none());
    let mut m = Matcher::new(false);
    m.insert(spec(1, target), src, seq, t0, Duration::from_secs(1));
    m.carried((src.port(), seq), 60);
    assert!(m.on_seen(seen("v4_sized_closed_syn"), at(0), t0).is_none());
    let r = m.on_seen(seen("v4_sized_closed_rst"), at(20), t0).unwrap();
    assert_eq!(r.status, Status::Refused);
    assert_eq!(r.connect, Some(Duration::from_micros(20)));
    assert_eq!(m.in_flight(), 0);
    // Once it ended, the same reset again concludes nothing.
    assert!(m.on_seen(seen("v4_sized_closed_rst"), at(30), t0).is_none());
    // A SYN-ACK acknowledges the SYN alone: one naming seq + 1 + data is no answer.
    let mut m = Matcher::new(false);
    m.insert(spec(2, target), src, seq, t0, Duration::from_secs(1));
    m.carried((src.port(), seq), 60);
    let Seen::Answer { from, to, ack, .. } = seen("v4_sized_closed_rst") else {
        panic!("not an answer");
    };
    let synack = Seen::Answer {
        from,
        to,
        ack,
        kind: AnswerKind::SynAck,
    };
    assert!(m.on_seen(synack, at(20), t0).is_none());
    assert_eq!(m.in_flight(), 1);
}

#[test]
fn a_verdict_is_stamped_with_the_time_its_probe_left() {
    let t0 = Instant::now();
    let mut m = Matcher::new(false);
    let before = std::time::SystemTime::now();
    m.insert(
        spec(1, "10.99.0.2:12001"),
        sa("10.99.0.1:38515"),
        0x2356_f0e5,
        t0,
        Duration::from_secs(1),
    );
    let after = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    let r = m.on_seen(seen("v4_synack"), at(24), t0).unwrap();
    assert!(
        r.sent_at >= before && r.sent_at <= after,
        "stamped when answered"
    );
}

#[test]
fn answers_to_another_port_or_from_another_host_are_not_ours() {
    let t0 = Instant::now();
    let mut m = Matcher::new(true);
    // Same sequence number, another source port: the SYN-ACK is for port 38515.
    m.insert(
        spec(1, "10.99.0.2:12001"),
        sa("10.99.0.1:38516"),
        0x2356_f0e5,
        t0,
        Duration::from_secs(1),
    );
    assert!(m.on_seen(seen("v4_synack"), at(24), t0).is_none());
    // The right port and sequence number, another target.
    let mut m = Matcher::new(true);
    m.insert(
        spec(1, "10.99.0.3:12001"),
        sa("10.99.0.1:38515"),
        0x2356_f0e5,
        t0,
        Duration::from_secs(1),
    );
    assert!(m.on_seen(seen("v4_synack"), at(24), t0).is_none());
    assert_eq!(m.in_flight(), 1);
}

#[test]
fn rst_means_closed_and_icmp_needs_the_quoted_sequence_number() {
    let t0 = Instant::now();
    let mut m = Matcher::new(true);
    m.insert(
        spec(5, "10.99.0.2:12999"),
        sa("10.99.0.1:49671"),
        0x77d4_bc94,
        t0,
        Duration::from_secs(1),
    );
    let r = m.on_seen(seen("v4_closed_rst"), at(30), t0).unwrap();
    assert_eq!(r.status, Status::Refused);

    // Two probes on the flow the ICMP error is about; it quotes the first one's number.
    let mut m = Matcher::new(true);
    let src = sa("10.99.0.1:50337");
    m.insert(
        spec(2, "10.99.0.2:12007"),
        src,
        0xb487_215b_u32.wrapping_add(SEQ_STEP),
        t0,
        Duration::from_secs(1),
    );
    assert!(
        m.on_seen(seen("v4_reject_icmp"), at(100), t0).is_none(),
        "quotes another probe"
    );
    assert_eq!(m.tally().unmatched, 1);
    assert_eq!(m.drain_unmatched()[0].1, Unmatched::OtherSequence);
    m.insert(
        spec(1, "10.99.0.2:12007"),
        src,
        0xb487_215b,
        t0,
        Duration::from_secs(1),
    );
    m.on_seen(seen("v4_reject_syn"), at(0), t0);
    let r = m.on_seen(seen("v4_reject_icmp"), at(146), t0).unwrap();
    assert_eq!(r.seq, 1);
    match r.status {
        Status::Icmp(rep) => {
            assert_eq!((rep.icmp_type, rep.code), (3, 13));
            assert_eq!(rep.from, "10.99.0.2".parse::<IpAddr>().unwrap());
            assert_eq!(rep.after, Duration::from_micros(146));
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(m.in_flight(), 1, "the other probe is still waiting");
    // The same error again: its probe has ended.
    assert!(m.on_seen(seen("v4_reject_icmp"), at(200), t0).is_none());
    assert_eq!(m.tally().late, 1);
}

#[test]
fn icmpv6_errors_are_matched_the_same_way() {
    let t0 = Instant::now();
    let mut m = Matcher::new(false);
    m.insert(
        spec(1, "[fd99::2]:12007"),
        sa("[fd99::1]:54641"),
        0x0304_d556,
        t0,
        Duration::from_secs(1),
    );
    m.on_seen(seen("v6_reject_syn"), at(0), t0);
    let r = m.on_seen(seen("v6_reject_icmp"), at(57), t0).unwrap();
    assert!(matches!(r.status, Status::Icmp(ref rep) if rep.v6 && rep.code == 1));
}

/// A captured IPv4 segment with other TCP flags (checksums are not checked by `classify`).
fn with_flags(name: &str, flags: u8) -> Seen {
    let (out, mut b) = fixture(name);
    b[20 + 13] = flags;
    classify(&b, out).unwrap()
}

#[test]
fn a_pure_ack_arriving_is_an_answer_of_its_own_kind() {
    // The target's ACK for probe 1's SYN (what Linux sends to a SYN that meets probe 1's
    // half-open connection): the SYN-ACK's ports and ack, flags ACK only.
    assert_eq!(
        with_flags("v4_synack", 0x10),
        Seen::Answer {
            from: sa("10.99.0.2:12001"),
            to: sa("10.99.0.1:38515"),
            ack: 0x2356_f0e6,
            kind: AnswerKind::Ack
        }
    );
    let (_, mut b) = fixture("v4_synack");
    b[33] = 0x11; // FIN-ACK: not an answer to a SYN
    assert_eq!(classify(&b, false), None);
    b[33] = 0x10;
    assert_eq!(classify(&b, true), None, "an ACK leaving");
    assert_eq!(AnswerKind::Ack.as_str(), "ack");
}

/// Three probes on one flow, 10 ms apart: (matcher, target, source, first seq).
fn three_on_one_flow(
    t0: Instant,
    target: &str,
    src: &str,
    first: u32,
) -> (Matcher, SocketAddr, SocketAddr, [u32; 3]) {
    let mut m = Matcher::new(true).with_ack_answers(true);
    let (dst, src) = (sa(target), sa(src));
    let seqs = [0u32, 1, 2].map(|k| first.wrapping_add(k.wrapping_mul(SEQ_STEP)));
    for (k, seq) in seqs.iter().enumerate() {
        let sent = t0 + Duration::from_millis(10 * k as u64);
        m.insert(
            spec(k as u64 + 1, target),
            src,
            *seq,
            sent,
            Duration::from_secs(1),
        );
        m.on_seen(
            Seen::Syn {
                src,
                dst,
                seq: *seq,
            },
            at(10_000 * k as u64),
            sent,
        );
    }
    assert_eq!(m.in_flight_to(&dst), 3);
    (m, dst, src, seqs)
}

#[test]
fn several_in_flight_on_one_flow_syn_ack_to_the_first_ack_to_the_later_ones() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (mut m, _, _, seqs) =
        three_on_one_flow(t0, "10.99.0.2:12001", "10.99.0.1:38515", 0x2356_f0e5);
    // -i shorter than the round trip: probe 1's SYN-ACK comes after 2 and 3 left.
    let r = m
        .on_seen(seen("v4_synack"), at(25_000), t0 + ms(25))
        .unwrap();
    assert_eq!(
        (r.seq, &r.status, r.answer),
        (1, &Status::Reply, Some(AnswerKind::SynAck))
    );
    assert_eq!(r.connect, Some(ms(25)));
    // The target still held probe 1's half-open connection when probe 2's SYN came:
    // its ACK of probe 1's SYN is probe 2's answer, timed from probe 2's departure.
    let dup = with_flags("v4_synack", 0x10);
    let r = m.on_seen(dup.clone(), at(36_000), t0 + ms(36)).unwrap();
    assert_eq!(
        (r.seq, &r.status, r.answer),
        (2, &Status::Reply, Some(AnswerKind::Ack))
    );
    assert_eq!(r.connect, Some(ms(26)));
    assert_eq!(r.connect_clock, Some(Clock::Wire));
    assert_eq!((r.local_port, r.tcp_seq), (Some(38515), Some(seqs[1])));
    // Probe 3's SYN met it too.
    let r = m.on_seen(dup.clone(), at(47_000), t0 + ms(47)).unwrap();
    assert_eq!((r.seq, r.answer), (3, Some(AnswerKind::Ack)));
    assert_eq!(r.connect, Some(ms(27)));
    // A duplicate ACK, a late SYN-ACK: nothing left for them.
    assert!(m.on_seen(dup, at(50_000), t0 + ms(50)).is_none());
    assert!(m
        .on_seen(seen("v4_synack2"), at(51_000), t0 + ms(51))
        .is_none());
    assert_eq!(m.in_flight(), 0);
    assert_eq!(m.tally(), IcmpTally::default());
}

#[test]
fn an_ack_answers_only_a_later_probe_of_its_flow_that_had_left() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let dup = with_flags("v4_synack", 0x10);
    // Probe 2 leaves after the ACK arrived: not its answer. Nor is it probe 1's.
    let mut m = Matcher::new(false).with_ack_answers(true);
    let (src, dst) = (sa("10.99.0.1:38515"), sa("10.99.0.2:12001"));
    let s1 = 0x2356_f0e5_u32;
    m.insert(spec(1, "10.99.0.2:12001"), src, s1, t0, ms(1000));
    m.insert(
        spec(2, "10.99.0.2:12001"),
        src,
        s1.wrapping_add(SEQ_STEP),
        t0,
        ms(1000),
    );
    m.on_seen(Seen::Syn { src, dst, seq: s1 }, at(0), t0);
    let seq2 = s1.wrapping_add(SEQ_STEP);
    m.on_seen(
        Seen::Syn {
            src,
            dst,
            seq: seq2,
        },
        at(50_000),
        t0,
    );
    assert!(m.on_seen(dup.clone(), at(40_000), t0 + ms(40)).is_none());
    assert_eq!(m.in_flight(), 2);
    // An ACK of the later probe's SYN does not answer the earlier one.
    let ack2 = with_flags("v4_synack2", 0x10);
    assert!(m.on_seen(ack2, at(60_000), t0 + ms(60)).is_none());
    // An ACK of a SYN we never sent, or from another host: not ours.
    let Seen::Answer { from, to, .. } = dup.clone() else {
        unreachable!()
    };
    for (from, ack) in [(from, 12345), (sa("10.99.0.3:12001"), s1.wrapping_add(1))] {
        let kind = AnswerKind::Ack;
        assert!(m
            .on_seen(
                Seen::Answer {
                    from,
                    to,
                    ack,
                    kind
                },
                at(70_000),
                t0
            )
            .is_none());
    }
    assert_eq!(m.in_flight(), 2);
    // trace's matcher (probes of a flow with different TTLs) takes no ACK as an answer.
    let (mut m, ..) = three_on_one_flow(t0, "10.99.0.2:12001", "10.99.0.1:38515", s1);
    m.ack_answers = false;
    assert!(m.on_seen(seen("v4_synack"), at(25_000), t0).is_some());
    assert!(m.on_seen(dup, at(36_000), t0).is_none());
    assert_eq!(m.in_flight(), 2);
}

#[test]
fn rst_and_icmp_errors_find_their_own_probe_among_several_on_the_flow() {
    let t0 = Instant::now();
    // Closed port: the RST acknowledges the second probe's SYN.
    let (mut m, dst, ..) = three_on_one_flow(
        t0,
        "10.99.0.2:12999",
        "10.99.0.1:49671",
        0x77d4_bc94_u32.wrapping_sub(SEQ_STEP),
    );
    let r = m.on_seen(seen("v4_closed_rst"), at(30_000), t0).unwrap();
    assert_eq!(
        (r.seq, &r.status, r.answer),
        (2, &Status::Refused, Some(AnswerKind::Rst))
    );
    assert_eq!(m.in_flight_to(&dst), 2);
    // The ICMP error quotes the second probe's sequence number.
    let (mut m, dst, ..) = three_on_one_flow(
        t0,
        "10.99.0.2:12007",
        "10.99.0.1:50337",
        0xb487_215b_u32.wrapping_sub(SEQ_STEP),
    );
    let r = m.on_seen(seen("v4_reject_icmp"), at(30_000), t0).unwrap();
    assert_eq!(r.seq, 2);
    assert!(matches!(r.status, Status::Icmp(ref rep) if rep.code == 13));
    assert_eq!(r.answer, None);
    assert_eq!(m.in_flight_to(&dst), 2);
    // Again: late.
    assert!(m.on_seen(seen("v4_reject_icmp"), at(40_000), t0).is_none());
    assert_eq!(m.tally().late, 1);
    // Ctrl-C: the two still in flight, in sending order.
    let mut done = Vec::new();
    m.interrupt(&mut done);
    let seqs: Vec<u64> = done.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 3]);
    assert!(done.iter().all(|r| r.status == Status::Interrupted));
}

#[test]
fn a_constant_flow_carries_the_probes_that_start_within_the_timeout() {
    let ms = Duration::from_millis;
    assert_eq!(overlap(ms(500), ms(100)), 6);
    assert_eq!(overlap(ms(500), ms(300)), 3);
    assert_eq!(overlap(ms(1000), ms(1000)), 2);
    assert_eq!(overlap(ms(200), ms(1000)), 2);
    assert_eq!(overlap(Duration::from_secs(60), ms(1)), MAX_OVERLAP);
    // Back to back: one at first (a window that grows: `SynProber::with_interval`).
    assert_eq!(overlap(ms(500), Duration::ZERO), 1);
}

#[test]
fn deadlines_conclude_as_timeouts_in_order_and_interrupt_ends_the_rest() {
    let t0 = Instant::now();
    let mut m = Matcher::new(false);
    let w = Duration::from_millis(100);
    m.insert(spec(1, "10.0.0.2:80"), sa("10.0.0.1:1000"), 10, t0, w);
    m.insert(
        spec(2, "10.0.0.2:80"),
        sa("10.0.0.1:1001"),
        20,
        t0 + w / 2,
        w,
    );
    m.insert(spec(3, "10.0.0.3:80"), sa("10.0.0.1:1002"), 30, t0 + w, w);
    assert_eq!(m.next_deadline(), Some(t0 + w));
    let mut done = Vec::new();
    m.expire(t0 + w * 3 / 2, &mut done);
    let seqs: Vec<u64> = done.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2]);
    assert!(done.iter().all(|r| r.status == Status::Timeout));
    assert_eq!(m.in_flight_to(&sa("10.0.0.2:80")), 0);
    done.clear();
    m.interrupt(&mut done);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, Status::Interrupted);
    assert_eq!(m.next_deadline(), None);
}
