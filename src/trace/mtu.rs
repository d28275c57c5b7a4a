//! What `trace --size N` found about the path's MTU, from the trace's verdict: the hop
//! whose next link is smaller than the SYNs, and whether its router said so ("packet too
//! big" / "fragmentation needed", with the MTU) or dropped them silently (a black hole
//! there, told from a dead path by one small SYN that reaches the target).

use std::net::IpAddr;

use super::verdict::Kind;

/// The MTU finding of a trace with sized SYNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtuFinding {
    /// The SYNs' length in all.
    pub size: usize,
    /// The last hop the SYNs reached: its router's next link is the smaller one.
    pub hop: u8,
    pub router: Option<IpAddr>,
    /// The MTU the router reported; None: it reported nothing (a black hole).
    pub mtu: Option<u32>,
    pub black_hole: bool,
}

/// Whether an ICMP error (IPv6 when `v6`) says "packet too big" / "fragmentation needed".
pub fn is_too_big(v6: bool, icmp_type: u8, code: u8) -> bool {
    if v6 {
        icmp_type == 2
    } else {
        icmp_type == 3 && code == 4
    }
}

/// The finding of a trace whose SYNs were `size` bytes, from its verdict; `small_reached`:
/// whether a SYN without payload reached the target afterwards (asked only when the sized
/// ones went silent). None: nothing about the MTU (reached, or another failure).
pub fn finding(kind: &Kind, size: usize, small_reached: Option<bool>) -> Option<MtuFinding> {
    match *kind {
        Kind::PathEnds {
            hop,
            router,
            v6,
            icmp_type,
            code,
            info,
            ..
        } if is_too_big(v6, icmp_type, code) => Some(MtuFinding {
            size,
            hop,
            router: Some(router),
            mtu: Some(info),
            black_hole: false,
        }),
        Kind::SilentAfter { hop, router } if small_reached == Some(true) => Some(MtuFinding {
            size,
            hop,
            router,
            mtu: None,
            black_hole: true,
        }),
        _ => None,
    }
}

/// The finding in words, appended to the trace's verdict; `small`: the small SYN's length.
pub fn words(f: &MtuFinding, small: usize) -> String {
    let at = match f.router {
        Some(r) => format!("hop {} ({r})", f.hop),
        None => format!("hop {}", f.hop),
    };
    match f.mtu {
        Some(mtu) => format!(
            "SYNs of {} bytes stop at {at}: its next link's MTU is {mtu} (it says so: 'packet too big')",
            f.size
        ),
        None => format!(
            "SYNs of {} bytes vanish after {at} while {small}-byte SYNs reach the target: a path MTU black hole after hop {}, which sends no 'packet too big'",
            f.size, f.hop
        ),
    }
}

#[cfg(test)]
#[path = "mtu_tests.rs"]
mod tests;
