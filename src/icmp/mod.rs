//! ICMP error capture: parsing, correlation to pings, raw sockets, the kernel's error queue.

pub mod correlate;
pub mod listener;
pub mod parse;
pub mod recverr;

pub use correlate::{IcmpReport, Phase, Registry, Source};
