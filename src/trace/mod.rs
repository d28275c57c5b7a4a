//! Trace's logic, below the command line and the output: which probe leaves when, what the
//! answers add up to per hop, and the verdict. Pure: driven by `cmd::trace` over a
//! [`Prober`](crate::probe::Prober), read by the sinks in `output::trace` and the live view.
//!
//! - [`engine`]: the strategy (which probe leaves when, which answers count);
//! - [`mda`]: the per-router stopping rule and the adaptive multipath search (`--multipath`);
//! - [`state`]: per-hop accounting over cycles (loss, RTTs, routers, flows, MPLS);
//! - [`verdict`]: the verdict in words and fields (reached, refused, loop, silent ...);
//! - [`middlebox`]: what routers' quotes show a middlebox changed in the SYN (tracebox);
//! - [`dns`]: reverse names of the routers, cached, for the human output.

pub mod dns;
pub mod engine;
pub mod mda;
pub mod middlebox;
pub mod mtu;
pub mod state;
pub mod verdict;

use std::net::SocketAddr;
use std::time::Duration;

/// What a trace was asked to do, as its output shows it (the command line's `TraceConfig`
/// gives one: `TraceConfig::run`).
#[derive(Clone, Debug)]
pub struct TraceRun {
    /// What the user typed, for display.
    pub target_name: String,
    pub target: SocketAddr,
    pub max_hops: u8,
    pub queries: u16,
    pub flows: u16,
    /// None: until interrupted.
    pub cycles: Option<u64>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Reverse DNS names for the routers.
    pub resolve: bool,
    /// The adaptive search (`--multipath`): `flows` is its budget, not what it sends.
    pub multipath: bool,
    /// `--size`: the SYNs' length in all, IP header included (None: bare SYNs).
    pub size: Option<usize>,
}
