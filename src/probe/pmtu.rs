//! `--pmtu`'s search, pure: which request size to try next, and what the answers say. The
//! driver (`cmd::pmtu`) sends each size as one echo ping on its own connection, DF set, and
//! feeds back an [`Answer`].
//!
//! 1. a small request ([`SMALL`] bytes): unless it passes, the path's trouble is not its MTU;
//! 2. the largest request the route allows (its MTU less the IP and TCP headers): when it
//!    passes, so does every size;
//! 3. a "packet too big" at any step names the router and the MTU: the search ends there,
//!    confirmed by one request that fits that MTU (the kernel, told too, sends smaller
//!    segments from then on, so larger requests would pass by being cut);
//! 4. otherwise larger requests vanish: bisection between the largest that passed and the
//!    smallest that did not, to the byte. No router said anything: a black hole.
//!
//! Sizes are request bytes; the packet on the wire adds the headers ([`on_wire`]).

use std::net::IpAddr;

pub use super::connect::on_wire;
use super::connect::{MAX_SIZE, SMALL};

/// The request size whose segment is `mtu` bytes on the wire.
pub fn fits(mtu: usize, v6: bool) -> usize {
    mtu.saturating_sub(on_wire(0, v6))
}

/// What one request of the search got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Its echo came back.
    Passed,
    /// A "packet too big" / "fragmentation needed" from `router` with `mtu`.
    TooBig { router: IpAddr, mtu: u32 },
    /// Nothing within the timeout, after the handshake.
    Vanished,
    /// Anything else (refused, a handshake that timed out, another error), in words.
    Failed(String),
}

/// Where the search ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The path MTU (`mtu`, on the wire), the largest request that passed, and the router
    /// that reported it (None: none did; `black_hole` when larger requests vanished).
    Found {
        mtu: usize,
        largest: usize,
        router: Option<IpAddr>,
        black_hole: bool,
    },
    /// Even the small request failed: not an MTU problem.
    SmallFails(String),
    /// The largest request there is (`-s`'s limit, below the route's MTU) passed: the path
    /// MTU is at least its segment's size.
    AtLeast { largest: usize },
    /// Larger requests got an answer that is not their echo (a server's limit on a line, an
    /// error): the limit is not the path's, and no black hole is claimed.
    Limited { largest: usize, why: String },
}

/// The search's state.
#[derive(Clone, Debug)]
pub struct Search {
    v6: bool,
    /// The largest request the route allows.
    top: usize,
    /// Largest size known to pass, smallest known to vanish.
    lo: Option<usize>,
    hi: Option<usize>,
    /// The route allows more than the largest request (`MAX_SIZE`).
    capped: bool,
    /// A larger request failed with an answer (not silence): why.
    failed: Option<String>,
    /// A router's report, awaiting its confirmation by a request that fits it.
    reported: Option<(IpAddr, u32)>,
    done: Option<Outcome>,
    /// Requests tried so far.
    pub tried: usize,
}

impl Search {
    /// A search toward a target of the family (`v6`) whose route has MTU `route_mtu`.
    pub fn new(route_mtu: usize, v6: bool) -> Search {
        Search {
            v6,
            top: fits(route_mtu, v6).clamp(SMALL, MAX_SIZE),
            capped: fits(route_mtu, v6) > MAX_SIZE,
            failed: None,
            lo: None,
            hi: None,
            reported: None,
            done: None,
            tried: 0,
        }
    }

    /// The size to try next; None: the search is over ([`Search::outcome`]).
    pub fn next(&self) -> Option<usize> {
        if self.done.is_some() {
            return None;
        }
        if let Some((_, mtu)) = self.reported {
            return Some(fits(mtu as usize, self.v6).max(SMALL));
        }
        match (self.lo, self.hi) {
            (None, _) => Some(SMALL),
            (Some(_), None) => Some(self.top),
            (Some(lo), Some(hi)) => Some(lo + (hi - lo) / 2),
        }
    }

    /// Feed the answer to the size `next` gave.
    pub fn answer(&mut self, size: usize, a: Answer) {
        self.tried += 1;
        if let Some((router, mtu)) = self.reported {
            // The confirmation of a router's report: the MTU stands whatever the kernel
            // did with it; a request that fits it and still fails is said as such.
            self.done = Some(match a {
                Answer::Passed | Answer::TooBig { .. } => Outcome::Found {
                    mtu: mtu as usize,
                    largest: size,
                    router: Some(router),
                    black_hole: false,
                },
                Answer::Vanished | Answer::Failed(_) => Outcome::Found {
                    mtu: on_wire(self.lo.unwrap_or(SMALL), self.v6),
                    largest: self.lo.unwrap_or(SMALL),
                    router: Some(router),
                    black_hole: true,
                },
            });
            return;
        }
        match a {
            Answer::Passed => {
                self.lo = Some(size);
                if size >= self.top && self.capped {
                    self.done = Some(Outcome::AtLeast { largest: size });
                } else if size >= self.top {
                    self.done = Some(Outcome::Found {
                        mtu: on_wire(size, self.v6),
                        largest: size,
                        router: None,
                        black_hole: false,
                    });
                }
            }
            Answer::TooBig { router, mtu } => {
                if self.lo.is_none() {
                    // Even the small request was too big: said by the router, as found.
                    self.done = Some(Outcome::Found {
                        mtu: mtu as usize,
                        largest: 0,
                        router: Some(router),
                        black_hole: false,
                    });
                    return;
                }
                self.reported = Some((router, mtu));
            }
            Answer::Vanished | Answer::Failed(_) if self.lo.is_none() => {
                let why = match a {
                    Answer::Failed(w) => w,
                    _ => "no echo".into(),
                };
                self.done = Some(Outcome::SmallFails(why));
                return;
            }
            Answer::Failed(why) => {
                self.failed = Some(why);
                self.hi = Some(size);
            }
            Answer::Vanished => self.hi = Some(size),
        }
        if let (Some(lo), Some(hi)) = (self.lo, self.hi) {
            if hi <= lo + 1 && self.failed.is_some() {
                self.done = Some(Outcome::Limited {
                    largest: lo,
                    why: self.failed.clone().unwrap_or_default(),
                });
            } else if hi <= lo + 1 {
                self.done = Some(Outcome::Found {
                    mtu: on_wire(lo, self.v6),
                    largest: lo,
                    router: None,
                    black_hole: true,
                });
            }
        }
    }

    /// The outcome, once `next` says None.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.done.as_ref()
    }
}

#[cfg(test)]
#[path = "pmtu_tests.rs"]
mod tests;
