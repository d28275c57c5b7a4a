//! The search over simulated paths: a link of some MTU, whose router reports it or not.

use super::*;

/// A path whose smallest link has `mtu`, its router `router` saying so or not (`says`);
/// `dead`: nothing passes at all.
struct Path {
    mtu: usize,
    says: bool,
    dead: bool,
    v6: bool,
}

impl Path {
    fn answer(&self, size: usize) -> Answer {
        if self.dead {
            return Answer::Failed("timeout in the handshake".into());
        }
        if on_wire(size, self.v6) <= self.mtu {
            Answer::Passed
        } else if self.says {
            Answer::TooBig {
                router: "10.81.1.1".parse().unwrap(),
                mtu: self.mtu as u32,
            }
        } else {
            Answer::Vanished
        }
    }
}

fn run(path: &Path, route_mtu: usize) -> (Outcome, Vec<usize>) {
    let mut s = Search::new(route_mtu, path.v6);
    let mut sizes = Vec::new();
    while let Some(size) = s.next() {
        sizes.push(size);
        s.answer(size, path.answer(size));
        assert!(sizes.len() <= 20, "the search does not end: {sizes:?}");
    }
    assert_eq!(s.tried, sizes.len());
    (s.outcome().cloned().unwrap(), sizes)
}

#[test]
fn a_black_hole_is_bisected_to_the_byte() {
    for v6 in [false, true] {
        for mtu in [1280, 1400, 1492, 1499] {
            let path = Path {
                mtu,
                says: false,
                dead: false,
                v6,
            };
            let (out, sizes) = run(&path, 1500);
            assert_eq!(
                out,
                Outcome::Found {
                    mtu,
                    largest: fits(mtu, v6),
                    router: None,
                    black_hole: true
                },
                "mtu {mtu} v6 {v6}: {sizes:?}"
            );
            // A small one first, then the largest the route allows, then halves.
            assert_eq!(sizes[0], SMALL);
            assert_eq!(sizes[1], fits(1500, v6));
            assert!(sizes.len() <= 2 + 11, "{sizes:?}");
        }
    }
}

#[test]
fn a_router_that_reports_ends_the_search_with_its_mtu() {
    let path = Path {
        mtu: 1400,
        says: true,
        dead: false,
        v6: false,
    };
    let (out, sizes) = run(&path, 1500);
    assert_eq!(
        out,
        Outcome::Found {
            mtu: 1400,
            largest: 1348,
            router: Some("10.81.1.1".parse().unwrap()),
            black_hole: false
        }
    );
    // Small, the largest (too big: reported), then the size that fits the report.
    assert_eq!(sizes, [SMALL, 1448, 1348]);
}

#[test]
fn a_clean_path_passes_at_the_route_mtu_in_two_tries() {
    let path = Path {
        mtu: 9000,
        says: true,
        dead: false,
        v6: true,
    };
    let (out, sizes) = run(&path, 1500);
    assert_eq!(
        out,
        Outcome::Found {
            mtu: 1500,
            largest: 1428,
            router: None,
            black_hole: false
        }
    );
    assert_eq!(sizes, [SMALL, 1428]);
}

#[test]
fn a_dead_path_is_not_an_mtu_problem() {
    let path = Path {
        mtu: 1400,
        says: false,
        dead: true,
        v6: false,
    };
    let (out, sizes) = run(&path, 1500);
    assert_eq!(out, Outcome::SmallFails("timeout in the handshake".into()));
    assert_eq!(sizes, [SMALL]);
}

#[test]
fn a_route_smaller_than_the_small_request_still_ends() {
    let path = Path {
        mtu: 90,
        says: false,
        dead: false,
        v6: false,
    };
    // Route MTU 100: the largest request is 48, less than SMALL: SMALL is tried, vanishes.
    let (out, _) = run(&path, 100);
    assert_eq!(out, Outcome::SmallFails("no echo".into()));
}

/// Loopback (MTU 65535) and a server that answers requests over its line limit with an
/// error: the search tries no request over `MAX_SIZE`, and says "at least" when the largest
/// passes; a larger request that gets an answer other than its echo is the server's limit,
/// never a black hole.
#[test]
fn a_route_larger_than_any_request_and_a_server_limit_are_not_black_holes() {
    let open = Path {
        mtu: 65535,
        says: false,
        dead: false,
        v6: false,
    };
    let (out, sizes) = run(&open, 65535);
    assert_eq!(out, Outcome::AtLeast { largest: MAX_SIZE });
    assert!(sizes.iter().all(|&s| s <= MAX_SIZE), "{sizes:?}");

    let mut s = Search::new(65535, false);
    let mut tried = 0;
    while let Some(size) = s.next() {
        tried += 1;
        assert!(tried <= 20, "the search does not end");
        let a = if size <= 4000 {
            Answer::Passed
        } else {
            Answer::Failed("unexpected reply: ERROR request longer than 4000 bytes".into())
        };
        s.answer(size, a);
    }
    match s.outcome().unwrap() {
        Outcome::Limited { largest, why } => {
            assert_eq!(*largest, 4000);
            assert!(why.contains("longer than 4000"), "{why}");
        }
        other => panic!("expected the server's limit, got {other:?}"),
    }
}
