//! Typed views over the TCP/IP packets tcpping-diag sends and captures, in smoltcp's manner:
//! named fields instead of offsets, read in place (no copy, no allocation), and building
//! and re-stamping our SYNs in a buffer the caller owns.
//!
//! - [`ip`]: an IPv4 or IPv6 header and where its payload starts (IPv4 options and IPv6
//!   extension headers included), laxly: a capture cut at its snap length, or the quote
//!   inside an ICMP error, is still read as far as it goes (etherparse's lax slices).
//! - [`tcp`]: a TCP header ([`tcp::Tcp`]: ports, sequence and acknowledgment numbers,
//!   flags, window, options) and the start of one quoted in an ICMP error or cut short
//!   ([`tcp::TcpPrefix`]: only its first 8 bytes are guaranteed in a quote); TCP options parsed
//!   ([`tcp::TcpOptions`]: MSS, window scale, SACK, timestamps).
//! - [`icmp`]: ICMP and ICMPv6 types and codes as enums, with an `Other(u8)` case.
//! - [`build`]: our SYN built with pnet's packet builders, and re-stamped per probe.
//!
//! The contract (smoltcp's `wire`): a view is made with `new_checked` (or `parse`), which
//! checks the length; once it is made, no accessor panics, whatever the bytes say. Nothing
//! in this module panics on any input.

pub mod build;
pub mod diff;
pub mod icmp;
pub mod ip;
pub mod tcp;

#[cfg(test)]
mod tests;
