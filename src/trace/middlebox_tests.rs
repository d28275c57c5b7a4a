//! The middlebox report over a trace, fed the quotes and SYN-ACKs captured in the middlebox
//! lab (tests/fixtures/middlebox-captured.txt), and the SYN prober's matching of a quote
//! whose sequence number a middlebox rewrote.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::icmp::parse::{parse_icmpv4_packet, IcmpError};
use crate::icmp::{IcmpReport, Phase};
use crate::packet::diff::tests::{captured, quote_of};
use crate::probe::syn::{Matcher, Seen as Captured};
use crate::probe::{ProbeSpec, Status};

const TARGET: &str = "10.80.4.2:13002";

fn target(case: &str) -> SocketAddr {
    let h = Headers::parse(&captured(&format!("{case}_syn"))).unwrap();
    SocketAddr::new(h.dst, h.dport)
}

fn icmp_of(bytes: &[u8]) -> IcmpError {
    parse_icmpv4_packet(bytes).unwrap().unwrap()
}

/// hop `hop`'s outcome for the probe captured as `case`_syn, answered by `seen` from `from`.
fn outcome(case: &str, hop: u8, from: &str, answer: Answer, seen: Option<Headers>) -> Outcome {
    let sent = Headers::parse(&captured(&format!("{case}_syn"))).unwrap();
    Outcome {
        cycle: 1,
        hop,
        flow: 0,
        query: 0,
        seq: u64::from(hop),
        reprobe: false,
        answer,
        from: Some(from.parse().unwrap()),
        rtt: Some(Duration::from_micros(40)),
        sent_at: SystemTime::UNIX_EPOCH,
        local_port: Some(sent.sport),
        tcp_seq: sent.seq,
        seen,
    }
}

fn time_exceeded(case: &str) -> Answer {
    let err = icmp_of(&captured(&format!("{case}_te3")));
    Answer::TimeExceeded(IcmpReport::of(
        &err,
        Duration::from_micros(40),
        Phase::Connect,
    ))
}

/// A trace of `case` over 4 hops: hops 1 and 2 quote the SYN as sent (they see it before
/// the middlebox on r2), hop 3 quotes what the lab's r3 quoted (`quote` cuts it), hop 4 is
/// the target's SYN-ACK.
fn traced(case: &str, marks: Marks, quote: usize) -> Middlebox {
    let syn = captured(&format!("{case}_syn"));
    let sent = Headers::parse(&syn).unwrap();
    let te = captured(&format!("{case}_te3"));
    let q = quote_of(&te);
    let mut m = Middlebox::probing(sent.src, marks);
    let t = target(case);
    let unchanged = Headers::parse(&syn);
    for (hop, from) in [(1, "10.80.1.1"), (2, "10.80.2.2")] {
        let o = outcome(case, hop, from, time_exceeded(case), unchanged);
        m.record(
            t,
            &HopDone {
                cycle: 1,
                hop,
                outcomes: vec![o],
            },
        );
    }
    let seen = Headers::parse(&q[..quote.min(q.len())]);
    let o = outcome(case, 3, "10.80.3.2", time_exceeded(case), seen);
    m.record(
        t,
        &HopDone {
            cycle: 1,
            hop: 3,
            outcomes: vec![o],
        },
    );
    let sa = Headers::parse(&captured(&format!("{case}_synack")));
    let o = outcome(case, 4, "10.80.4.2", Answer::Reached { open: true }, sa);
    m.record(
        t,
        &HopDone {
            cycle: 1,
            hop: 4,
            outcomes: vec![o],
        },
    );
    m
}

fn plain(a: IpAddr) -> String {
    a.to_string()
}

#[test]
fn an_mss_clamp_is_named_at_the_first_hop_that_shows_it() {
    assert_eq!(target("mss4").to_string(), TARGET);
    let m = traced("mss4", Marks::default(), usize::MAX);
    let all = m.changes();
    assert_eq!(all.len(), 1);
    let s = all[0];
    assert_eq!((s.change.field, s.hop, s.to_target), (Field::Mss, 3, true));
    assert_eq!(s.router, Some("10.80.3.2".parse().unwrap()));
    assert_eq!(m.hops[&1].quote, Quote::Full);
    assert!(m.hops[&1].changes.is_empty() && m.hops[&2].changes.is_empty());
    let lines = m.lines(&mut plain);
    assert_eq!(lines[0], "hop 3 (10.80.3.2): MSS 1460 → 1400 (clamped)");
    assert_eq!(
        lines[1],
        "target's SYN-ACK offers MSS 1460, window scale 10, SACK-permitted, timestamps: the SYN arrived with MSS 1400 (changed at hop 3)"
    );
    assert_eq!(
        lines[2],
        "middleboxes: MSS 1460 → 1400 (clamped): first seen at hop 3 (10.80.3.2), changed between hop 2 and hop 3, and lasts to the target"
    );
    let o = m.offer().unwrap();
    assert_eq!(
        (o.mss, o.wscale, o.sack_perm, o.timestamps, o.ecn),
        (Some(1460), Some(10), true, true, None)
    );
}

#[test]
fn ecn_bleaching_and_the_target_that_never_saw_the_request() {
    let m = traced(
        "ecn4",
        Marks {
            tos: 0,
            ecn_setup: true,
        },
        usize::MAX,
    );
    let all = m.changes();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].change.field, all[0].hop), (Field::EcnFlags, 3));
    assert_eq!(m.offer().unwrap().ecn, Some(false));
    let lines = m.lines(&mut plain);
    assert!(
        lines[0].starts_with("hop 3 (10.80.3.2): ECN bits cleared"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with("ECN not agreed: the SYN arrived without ECN setup (cleared at hop 3)"),
        "{lines:?}"
    );
    // The untouched path: the target agrees.
    let clean = traced(
        "clean4",
        Marks {
            tos: 46 << 2,
            ecn_setup: true,
        },
        usize::MAX,
    );
    assert!(clean.changes().is_empty());
    assert_eq!(clean.offer().unwrap().ecn, Some(true));
    assert_eq!(
        clean.lines(&mut plain).last().unwrap(),
        "middleboxes: none seen: the SYN's quotes (hops 1 to 3) match what was sent"
    );
}

#[test]
fn a_short_quote_says_so_and_never_unchanged() {
    // RFC 792's minimum at hop 3: the IP header and 8 bytes of TCP.
    let m = traced("mss4", Marks::default(), 28);
    assert!(m.changes().is_empty());
    assert_eq!(m.hops[&3].quote, Quote::Ports);
    let lines = m.lines(&mut plain);
    assert_eq!(
        lines[0],
        "hop 3 (10.80.3.2): quote too short to check options"
    );
    assert_eq!(
        lines.last().unwrap(),
        "middleboxes: none seen: the SYN's quotes (hops 1 to 3) match what was sent; hop 3: quote too short to check options"
    );
}

#[test]
fn a_change_undone_later_does_not_reach_the_target() {
    // Hop 3 shows the clamp; a hop 4 router quotes the SYN as sent (a NAT translating back,
    // or another path): the change is not said to reach the target.
    let mut m = traced("mss4", Marks::default(), usize::MAX);
    let syn = captured("mss4_syn");
    let o = outcome(
        "mss4",
        4,
        "10.80.9.9",
        time_exceeded("mss4"),
        Headers::parse(&syn),
    );
    m.record(
        target("mss4"),
        &HopDone {
            cycle: 1,
            hop: 4,
            outcomes: vec![o],
        },
    );
    let s = m.changes()[0];
    assert_eq!((s.hop, s.last_hop, s.to_target), (3, 3, false));
    assert!(m
        .lines(&mut plain)
        .last()
        .unwrap()
        .ends_with("gone again after hop 3"));
}

#[test]
fn nothing_without_syn_probes_and_nothing_to_compare_without_quotes() {
    let mut off = Middlebox::default();
    let o = outcome("mss4", 3, "10.80.3.2", time_exceeded("mss4"), None);
    off.record(
        target("mss4"),
        &HopDone {
            cycle: 1,
            hop: 3,
            outcomes: vec![o.clone()],
        },
    );
    assert!(off.lines(&mut plain).is_empty() && off.hops.is_empty());
    let mut on = Middlebox::probing("10.80.1.2".parse().unwrap(), Marks::default());
    on.record(
        target("mss4"),
        &HopDone {
            cycle: 1,
            hop: 3,
            outcomes: vec![o],
        },
    );
    assert_eq!(
        on.lines(&mut plain),
        ["middleboxes: no router quoted the SYN: nothing to compare"]
    );
}

/// A matcher (keeping unattributed errors) with the probe captured as `case`_syn in flight,
/// its sequence number plus `off`.
fn in_flight(case: &str, off: u32) -> Matcher {
    let syn = Headers::parse(&captured(&format!("{case}_syn"))).unwrap();
    let spec = ProbeSpec {
        seq: 3,
        target: SocketAddr::new(syn.dst, syn.dport),
        ttl: Some(3),
        flow: 0,
    };
    let mut m = Matcher::new(true);
    let src = SocketAddr::new(syn.src, syn.sport);
    m.insert(
        spec,
        src,
        syn.seq.unwrap().wrapping_add(off),
        Instant::now(),
        Duration::from_secs(1),
    );
    m
}

#[test]
fn a_quote_whose_sequence_number_was_rewritten_finds_its_probe_by_timestamp() {
    let syn = Headers::parse(&captured("seq4_syn")).unwrap();
    let err = icmp_of(&captured("seq4_te3"));
    let quoted = err.quote.unwrap();
    assert_eq!(quoted.seq, Some(syn.seq.unwrap().wrapping_add(1_000_000)));
    let now = Instant::now();
    let r = in_flight("seq4", 0)
        .on_seen(Captured::Icmp(err.clone()), None, now)
        .unwrap();
    assert!(matches!(r.status, Status::Icmp(_)));
    assert_eq!((r.tcp_seq, r.seen), (syn.seq, Some(quoted)));
    // A quote of another sequence number and another timestamp stays unattributed.
    let mut other = in_flight("seq4", 7);
    assert!(other.on_seen(Captured::Icmp(err), None, now).is_none());
    assert_eq!(other.in_flight(), 1);
}

#[test]
fn a_quote_whose_source_a_nat_rewrote_is_ours_by_its_timestamp() {
    let syn = Headers::parse(&captured("snat4_syn")).unwrap();
    let err = icmp_of(&captured("snat4_te3"));
    assert_eq!(
        err.quote.unwrap().src,
        "10.80.9.9".parse::<IpAddr>().unwrap()
    );
    let now = Instant::now();
    let r = in_flight("snat4", 0)
        .on_seen(Captured::Icmp(err.clone()), None, now)
        .unwrap();
    let d = diff::diff(&syn, &r.seen.unwrap());
    assert_eq!(
        diff::describe_all(&d),
        ["source 10.80.1.2 → 10.80.9.9 (NAT)"]
    );
    // Without our timestamp in the quote, another source address is not ours.
    let mut cut = err;
    cut.quote = None;
    let mut other = in_flight("snat4", 0);
    assert!(other.on_seen(Captured::Icmp(cut), None, now).is_none());
    let kept = other.drain_unmatched();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, crate::icmp::correlate::Unmatched::OtherSource);
}

/// The one's-complement sum of `data` (RFC 1071), folded.
fn sum16(data: &[u8]) -> u16 {
    let mut s: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[test]
fn padded_syns_are_built_again_padded_with_valid_checksums() {
    // A SYN of 1000 bytes in all (`trace --size 1000`), as a router quotes it (576 bytes of
    // ICMPv4: the quote stops inside the payload; its IP length says 1000).
    let m =
        Middlebox::probing("10.80.1.2".parse().unwrap(), Marks::default()).with_size(Some(1000));
    let o = outcome("mss4", 3, "10.80.3.2", time_exceeded("mss4"), None);
    let sent = m.sent(target("mss4"), &o).unwrap();
    assert_eq!((sent.payload_len, sent.quote), (Some(940), Quote::Full));
    // Rebuild the bytes the same way and check both checksums independently.
    let f = SynFields {
        src: SocketAddr::new(sent.src, sent.sport),
        dst: SocketAddr::new(sent.dst, sent.dport),
        seq: sent.seq.unwrap(),
        ip_id: 0,
        ttl: 3,
    };
    let mut buf = [0u8; 9000];
    let bare = build_syn(&mut buf, &f).unwrap();
    let n = pad(&mut buf, bare, Some(1000));
    assert_eq!(n, 1000);
    assert_eq!(sum16(&buf[..20]), 0xffff, "IPv4 header checksum");
    let mut pseudo = buf[12..20].to_vec();
    pseudo.extend([0, 6]);
    pseudo.extend(((n - 20) as u16).to_be_bytes());
    pseudo.extend(&buf[20..n]);
    assert_eq!(
        sum16(&pseudo),
        0xffff,
        "TCP checksum over the padded segment"
    );
    assert_eq!(Headers::parse(&buf[..n]).unwrap().checksum, sent.checksum);
    // The quote of that SYN matches the padded SYN built again, and not the bare one.
    let quote = Headers::parse(&buf[..548]).unwrap();
    assert!(diff::diff(&sent, &quote).is_empty());
    let bare_sent = Middlebox::probing("10.80.1.2".parse().unwrap(), Marks::default())
        .sent(target("mss4"), &o)
        .unwrap();
    let d = diff::diff(&bare_sent, &quote);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].field, d[0].seen.json()),
        (Field::PayloadLen, Some("940".into()))
    );
    // Below the bare SYN's length, or none: bare. IPv6 too.
    assert_eq!(pad(&mut buf, bare, Some(10)), bare);
    let m6 =
        Middlebox::probing("fd80:1::2".parse().unwrap(), Marks::default()).with_size(Some(1280));
    let h = m6.sent("[fd80:4::2]:13002".parse().unwrap(), &o).unwrap();
    assert_eq!(h.payload_len, Some(1280 - 40 - 40));
}
