//! Correlation of real captured ICMP errors to pings, through a fake socket: no root needed.
//! The packets are in tests/fixtures/icmp-captured.txt (scripts/capture-icmp-fixtures.sh).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tcpping_diag::icmp::listener::{handle_packet, pump, Handled, IcmpSocket};
use tcpping_diag::icmp::{Phase, Registry, Source};

fn fixture(name: &str) -> (Vec<u8>, IpAddr) {
    let text = include_str!("fixtures/icmp-captured.txt");
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let mut f = line.split(' ').skip(1);
    let from: IpAddr = f.next().unwrap().parse().unwrap();
    let hex = f.next().unwrap();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    (bytes, from)
}

/// A socket that hands out captured packets, then would block.
struct FakeSocket {
    v6: bool,
    packets: VecDeque<(Vec<u8>, IpAddr)>,
}

impl IcmpSocket for FakeSocket {
    fn is_v6(&self) -> bool {
        self.v6
    }
    fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        let (p, from) = self.packets.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        buf[..p.len()].copy_from_slice(&p);
        Ok((p.len(), from))
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const CLIENT4: &str = "10.201.1.2:41001";
const SERVER4: &str = "10.201.2.2:81";

#[test]
fn the_right_ping_gets_the_error_with_its_router_and_phase() {
    let reg = Registry::new();
    let t0 = Instant::now();
    reg.register(7, sa(CLIENT4), sa(SERVER4), t0);
    let (bytes, from) = fixture("v4_host_unreach");
    let mut sock = FakeSocket {
        v6: false,
        packets: VecDeque::from([(bytes, from)]),
    };
    let mut matched = Vec::new();
    pump(&mut sock, &reg, &mut [0u8; 2048], |seq| matched.push(seq)).unwrap();
    assert_eq!(matched, vec![7]);
    let rep = reg.report(41001).expect("attributed");
    assert_eq!((rep.icmp_type, rep.code, rep.v6), (3, 1, false));
    assert_eq!(rep.from, "10.201.1.1".parse::<IpAddr>().unwrap());
    assert_eq!(rep.phase, Phase::Connect);
    assert_eq!(rep.source, Source::Raw);
    assert_eq!(rep.describe().title, "Destination Host Unreachable");
    assert_eq!(reg.unmatched_count(), 0);
}

#[test]
fn an_error_during_the_echo_is_marked_so() {
    let reg = Registry::new();
    reg.register(
        1,
        sa("10.201.1.2:41003"),
        sa("10.201.2.2:83"),
        Instant::now() - Duration::from_millis(5),
    );
    reg.set_phase(41003, Phase::Echo);
    let (bytes, from) = fixture("v4_admin_prohib");
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Matched(1)
    );
    let rep = reg.report(41003).unwrap();
    assert_eq!((rep.code, rep.phase), (13, Phase::Echo));
    assert!(rep.after >= Duration::from_millis(5));
}

#[test]
fn a_wrong_port_is_not_attributed() {
    let reg = Registry::new();
    reg.register(1, sa("10.201.1.2:41002"), sa(SERVER4), Instant::now());
    let (bytes, from) = fixture("v4_host_unreach");
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
    assert_eq!(reg.report(41002), None);
    assert_eq!(reg.unmatched_count(), 1);
}

#[test]
fn a_stale_ping_is_not_attributed_but_known_as_late() {
    let reg = Registry::new();
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    assert_eq!(reg.unregister(41001), None);
    let (bytes, from) = fixture("v4_host_unreach");
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
    // Ours, but too late: not counted as someone else's.
    assert_eq!((reg.unmatched_count(), reg.late_count()), (0, 1));
    let why: Vec<_> = reg
        .drain_unmatched()
        .into_iter()
        .map(|(_, w)| w.as_str())
        .collect();
    assert_eq!(why, vec!["quotes a ping that already ended"]);
    // A port that never was a ping of ours is foreign.
    let reg = Registry::new();
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
    assert_eq!((reg.unmatched_count(), reg.late_count()), (1, 0));
}

#[test]
fn a_spoofed_source_or_another_destination_is_not_attributed() {
    // Same port, but our address is another: the quoted source is not us.
    let reg = Registry::new();
    reg.register(1, sa("10.9.9.9:41001"), sa(SERVER4), Instant::now());
    let (bytes, from) = fixture("v4_host_unreach");
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
    // Same port and source, another target port.
    let reg = Registry::new();
    reg.register(1, sa(CLIENT4), sa("10.201.2.2:82"), Instant::now());
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
    let why: Vec<_> = reg
        .drain_unmatched()
        .into_iter()
        .map(|(_, w)| w.as_str())
        .collect();
    assert_eq!(why, vec!["quotes another destination"]);
}

#[test]
fn udp_quotes_echo_replies_and_garbage_are_never_attributed() {
    let reg = Registry::new();
    reg.register(1, sa("10.201.1.2:9"), sa("10.201.2.2:9"), Instant::now());
    let (udp, from) = fixture("v4_udp_port_unreach");
    assert_eq!(
        handle_packet(&reg, false, &udp, from, Instant::now()),
        Handled::Unmatched
    );
    let (echo, from) = fixture("v4_echo_reply");
    assert_eq!(
        handle_packet(&reg, false, &echo, from, Instant::now()),
        Handled::Skipped
    );
    assert_eq!(
        handle_packet(&reg, false, &[0x45, 0, 1], from, Instant::now()),
        Handled::Skipped
    );
    assert_eq!(
        handle_packet(&reg, false, &[0xff; 64], from, Instant::now()),
        Handled::Skipped
    );
    // A truncated real error: cut inside the quoted ports.
    let (bytes, from) = fixture("v4_host_unreach");
    assert_eq!(
        handle_packet(&reg, false, &bytes[..50], from, Instant::now()),
        Handled::Unmatched
    );
}

#[test]
fn icmpv6_errors_are_attributed_by_the_same_rules() {
    let reg = Registry::new();
    let (bytes, from) = fixture("v6_admin_prohib");
    // Learn the quoted 4-tuple from the parser, then check both outcomes.
    let IpAddr::V6(from6) = from else { panic!() };
    let err = tcpping_diag::icmp::parse::parse_icmpv6_message(&bytes, from6)
        .unwrap()
        .unwrap();
    let q = err.quoted.expect("quotes TCP");
    assert_eq!(q.src.ip(), "fd01:1::2".parse::<IpAddr>().unwrap());
    reg.register(3, q.src, q.dst, Instant::now());
    let mut sock = FakeSocket {
        v6: true,
        packets: VecDeque::from([(bytes.clone(), from), (vec![1, 2, 3], from)]),
    };
    let mut matched = Vec::new();
    pump(&mut sock, &reg, &mut [0u8; 2048], |seq| matched.push(seq)).unwrap();
    assert_eq!(
        matched,
        vec![3],
        "the garbage packet after it was skipped, not fatal"
    );
    let rep = reg.report(q.src.port()).unwrap();
    assert_eq!((rep.icmp_type, rep.code, rep.v6), (1, 1, true));
    assert_eq!(
        rep.describe().reason,
        "communication with destination administratively prohibited"
    );
}

#[test]
fn without_verbose_unmatched_errors_are_counted_not_kept() {
    let reg = Registry::new().with_unmatched_log(false);
    let (bytes, from) = fixture("v4_host_unreach");
    for _ in 0..3 {
        assert_eq!(
            handle_packet(&reg, false, &bytes, from, Instant::now()),
            Handled::Unmatched
        );
    }
    assert_eq!(reg.unmatched_count(), 3);
    assert!(reg.drain_unmatched().is_empty());
}

// ---- the quoted sequence number --------------------------------------------------------

/// The sequence number quoted by the captured v4_host_unreach: the ISN of the SYN it
/// answers (bytes 52..56 of the capture: 85 1b 52 48).
const QUOTED_SEQ: u32 = 0x851b_5248;

/// Why the errors handled so far were not attributed.
fn whys(reg: &Registry) -> Vec<&'static str> {
    reg.drain_unmatched()
        .into_iter()
        .map(|(_, w)| w.as_str())
        .collect()
}

/// v4_host_unreach handled by a registry whose ping on its 4-tuple has the window
/// (isn, used); None: no window (no packet socket).
fn host_unreach_with_window(window: Option<(u32, u32)>) -> (Registry, Handled) {
    let reg = Registry::new();
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    if let Some((isn, used)) = window {
        reg.set_seq_window(41001, isn, used);
    }
    let (bytes, from) = fixture("v4_host_unreach");
    let h = handle_packet(&reg, false, &bytes, from, Instant::now());
    (reg, h)
}

#[test]
fn during_the_handshake_only_our_isn_is_ours() {
    // The quote is our SYN: its sequence number is our ISN.
    let (reg, h) = host_unreach_with_window(Some((QUOTED_SEQ, 1)));
    assert_eq!(h, Handled::Matched(1));
    assert!(reg.report(41001).is_some());
    assert_eq!(reg.unmatched_count(), 0);
    // One before our ISN, or far beyond it: the exact 4-tuple, but not a segment we sent.
    for isn in [QUOTED_SEQ + 1, QUOTED_SEQ - 100_000] {
        let (reg, h) = host_unreach_with_window(Some((isn, 1)));
        assert_eq!(h, Handled::Unmatched, "isn {isn:#x}");
        assert_eq!(reg.report(41001), None);
        assert_eq!((reg.unmatched_count(), reg.late_count()), (1, 0));
        assert_eq!(
            whys(&reg),
            vec!["quotes our connection with a sequence number we never sent (forged?)"]
        );
    }
    // The SYN-ACK's ack, ISN + 1, before any data: the top of the window, still ours
    // (an error about the first data segment can beat the window's update).
    let (_, h) = host_unreach_with_window(Some((QUOTED_SEQ - 1, 1)));
    assert_eq!(h, Handled::Matched(1));
    let (_, h) = host_unreach_with_window(Some((QUOTED_SEQ - 2, 1)));
    assert_eq!(h, Handled::Unmatched);
}

#[test]
fn after_data_was_sent_its_sequence_numbers_are_ours() {
    // 25 bytes sent: ISN + 1 (the first data byte) up to ISN + 26 are ours.
    for isn in [QUOTED_SEQ - 1, QUOTED_SEQ - 20, QUOTED_SEQ - 26] {
        let (_, h) = host_unreach_with_window(Some((isn, 26)));
        assert_eq!(h, Handled::Matched(1), "quote = isn + {}", QUOTED_SEQ - isn);
    }
    let (reg, h) = host_unreach_with_window(Some((QUOTED_SEQ - 27, 26)));
    assert_eq!(h, Handled::Unmatched);
    assert_eq!(reg.unmatched_count(), 1);
}

#[test]
fn without_an_isn_the_four_tuple_decides() {
    // No packet socket (unprivileged) or the SYN was missed: as before the check existed.
    let (reg, h) = host_unreach_with_window(None);
    assert_eq!(h, Handled::Matched(1));
    assert!(reg.report(41001).is_some());
    // A quote too short for the sequence number: the 4-tuple decides too.
    let reg = Registry::new();
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.set_seq_window(41001, QUOTED_SEQ + 1000, 1);
    let (bytes, from) = fixture("v4_host_unreach");
    let cut = &bytes[..54]; // TCP starts at 48: ports, and half the sequence number
    assert_eq!(
        handle_packet(&reg, false, cut, from, Instant::now()),
        Handled::Matched(1)
    );
    // ... while the whole quote, with its sequence number, is refused.
    let reg = Registry::new();
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.set_seq_window(41001, QUOTED_SEQ + 1000, 1);
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
}

#[test]
fn a_persistent_connection_passes_its_window_again_for_each_ping() {
    let reg = Registry::new();
    let (bytes, from) = fixture("v4_host_unreach");
    // Ping 1: window set, then the ping ends.
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.set_seq_window(41001, QUOTED_SEQ + 1000, 1 + 25);
    reg.unregister(41001);
    // Ping 2 on the same connection: `register` starts without a window ...
    reg.register(2, sa(CLIENT4), sa(SERVER4), Instant::now());
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Matched(2)
    );
    // ... so the client sets it again, and the window is enforced for ping 2 too.
    reg.register(2, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.set_seq_window(41001, QUOTED_SEQ + 1000, 1 + 25 + 25);
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
    assert_eq!(reg.report(41001), None);
}

#[test]
fn a_report_taken_from_a_connection_names_the_quoted_offset_and_frees_the_next() {
    let reg = Registry::new();
    let (bytes, from) = fixture("v4_host_unreach");
    // A connection carrying several pings: its window covers all their bytes.
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.set_seq_window(41001, QUOTED_SEQ - 30, 1 + 75);
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Matched(1)
    );
    let (report, quoted) = reg.take_report(41001).unwrap();
    assert_eq!((report.icmp_type, quoted), (3, Some(30)));
    assert_eq!(reg.take_report(41001), None);
    // The next error on the connection is attributed again (to another of its pings).
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Matched(1)
    );
    assert!(reg.take_report(41001).is_some());
    // Without a window, no offset.
    reg.register(2, sa(CLIENT4), sa(SERVER4), Instant::now());
    handle_packet(&reg, false, &bytes, from, Instant::now());
    assert_eq!(reg.take_report(41001).map(|(_, q)| q), Some(None));
}

#[test]
fn the_window_wraps_around_u32_max() {
    // The captured error, its quoted sequence number rewritten (bytes 52..56; checksums
    // are not checked): a connection whose ISN is just below 2^32.
    let (mut bytes, from) = fixture("v4_host_unreach");
    let quote = |bytes: &mut Vec<u8>, seq: u32| bytes[52..56].copy_from_slice(&seq.to_be_bytes());
    let isn = u32::MAX - 9; // 0xffff_fff6
    let check = |bytes: &[u8], used: u32| {
        let reg = Registry::new();
        reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
        reg.set_seq_window(41001, isn, used);
        handle_packet(&reg, false, bytes, from, Instant::now())
    };
    // 100 bytes sent: the window runs from 0xffff_fff6 through 0 to 91 (ISN + 1 + 100, the
    // next byte's sequence number).
    for (seq, ours) in [
        (isn, true),
        (u32::MAX, true),
        (0, true),
        (91, true),
        (92, false),
        (isn - 1, false),
        (0x8000_0000, false),
    ] {
        quote(&mut bytes, seq);
        let want = if ours {
            Handled::Matched(1)
        } else {
            Handled::Unmatched
        };
        assert_eq!(check(&bytes, 101), want, "quoted seq {seq:#x}");
    }
    // A connection that sent 2^32 bytes or more (the client passes u32::MAX): every
    // sequence number is ours.
    quote(&mut bytes, isn - 1);
    assert_eq!(check(&bytes, u32::MAX), Handled::Matched(1));
}

#[test]
fn an_error_that_arrives_before_the_isn_is_read_waits_for_it() {
    // On a fast path the router's error is handled while connect() is still in the kernel,
    // before the ping thread reads its ISN from the packet socket: the error waits for it.
    let (bytes, from) = fixture("v4_host_unreach");
    for (isn, want) in [
        (Some(QUOTED_SEQ), Handled::Matched(1)),
        (Some(QUOTED_SEQ + 1), Handled::Unmatched),
        (Some(QUOTED_SEQ - 100_000), Handled::Unmatched),
        // The packet socket did not see the SYN: the 4-tuple decides.
        (None, Handled::Matched(1)),
    ] {
        // A wait long enough that only the settling ends it.
        let reg = Registry::new().with_isn_wait(Duration::from_secs(30));
        reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
        reg.await_seq_window(41001);
        let h = std::thread::scope(|s| {
            let listener = s.spawn(|| handle_packet(&reg, false, &bytes, from, Instant::now()));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!listener.is_finished(), "judged before the ISN was known");
            match isn {
                Some(isn) => reg.set_seq_window(41001, isn, 1),
                None => reg.seq_window_unknown(41001),
            }
            listener.join().unwrap()
        });
        assert_eq!(h, want, "isn {isn:?}");
        let unmatched = u64::from(want == Handled::Unmatched);
        assert_eq!(reg.unmatched_count(), unmatched);
    }
}

#[test]
fn an_isn_that_never_comes_leaves_the_four_tuple_to_decide() {
    let reg = Registry::new().with_isn_wait(Duration::from_millis(30));
    reg.register(1, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.await_seq_window(41001);
    let (bytes, from) = fixture("v4_host_unreach");
    let t = Instant::now();
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Matched(1)
    );
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    // A known window is not forgotten by a late "unknown".
    reg.register(2, sa(CLIENT4), sa(SERVER4), Instant::now());
    reg.set_seq_window(41001, QUOTED_SEQ + 1, 1);
    reg.seq_window_unknown(41001);
    assert_eq!(
        handle_packet(&reg, false, &bytes, from, Instant::now()),
        Handled::Unmatched
    );
}
