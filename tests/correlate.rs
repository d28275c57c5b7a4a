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
