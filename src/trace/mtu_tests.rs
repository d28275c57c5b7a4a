use super::*;

fn ends(v6: bool, icmp_type: u8, code: u8, info: u32) -> Kind {
    Kind::PathEnds {
        hop: 1,
        probe_hop: 2,
        router: "10.81.1.1".parse().unwrap(),
        v6,
        icmp_type,
        code,
        info,
    }
}

#[test]
fn a_router_that_says_packet_too_big_is_named_with_its_mtu() {
    for (v6, t, c) in [(false, 3, 4), (true, 2, 0)] {
        let f = finding(&ends(v6, t, c, 1400), 1500, None).unwrap();
        assert_eq!(f.hop, 1);
        assert_eq!(f.mtu, Some(1400));
        assert!(!f.black_hole);
        assert_eq!(
            words(&f, 60),
            "SYNs of 1500 bytes stop at hop 1 (10.81.1.1): its next link's MTU is 1400 (it says so: 'packet too big')"
        );
    }
    // Other refusals are not about the MTU: admin prohibited, port unreachable.
    assert_eq!(finding(&ends(false, 3, 13, 0), 1500, None), None);
    assert_eq!(finding(&ends(true, 1, 1, 0), 1500, None), None);
    assert_eq!(finding(&ends(false, 2, 0, 1400), 1500, None), None);
}

#[test]
fn silence_is_a_black_hole_only_when_small_syns_pass() {
    let kind = Kind::SilentAfter {
        hop: 1,
        router: Some("fd81:1::1".parse().unwrap()),
    };
    let f = finding(&kind, 1500, Some(true)).unwrap();
    assert!(f.black_hole);
    assert_eq!(f.mtu, None);
    assert_eq!(
        words(&f, 60),
        "SYNs of 1500 bytes vanish after hop 1 (fd81:1::1) while 60-byte SYNs reach the target: a path MTU black hole after hop 1, which sends no 'packet too big'"
    );
    // Small SYNs are lost too, or were not tried: a dead path, nothing about the MTU.
    assert_eq!(finding(&kind, 1500, Some(false)), None);
    assert_eq!(finding(&kind, 1500, None), None);
    // A trace that reached the target says nothing.
    assert_eq!(
        finding(&Kind::Reached { hop: 3, open: true }, 1500, Some(true)),
        None
    );
}
