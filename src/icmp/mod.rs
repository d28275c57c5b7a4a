//! ICMP error capture: parsing (with RFC 4884 extensions), correlation to pings, raw sockets,
//! the kernel's error queue.

pub mod correlate;
pub mod extension;
pub mod listener;
pub mod parse;
pub mod recverr;
pub mod unmatched;

pub use correlate::{IcmpReport, Phase, Registry, Source};
