//! `trace --size N`: the SYNs sized before the trace, and after it, when they went silent,
//! one SYN without payload to the target at the trace's last TTL: when it reaches the
//! target, the silence was the size's (a path MTU black hole), else the path's. That costs
//! one more round trip, or one more timeout on a dead path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::probe::{ProbeSpec, Prober, Shape, Status};
use crate::trace::mtu::{self, MtuFinding};
use crate::trace::verdict::{Kind, Verdict};

/// The length of a SYN without payload (IPv4; IPv6 adds 20): the small probe's, for words.
const SMALL_V4: usize = crate::packet::build::V4_LEN;
const SMALL_V6: usize = crate::packet::build::V6_LEN;
/// The small SYN's number in the run: above any the trace sends.
const SMALL_SEQ: u64 = 1 << 40;

/// Size the prober's SYNs: an error when its probes cannot carry a size (connect() probes,
/// without CAP_NET_RAW).
pub fn size_probes(prober: &mut dyn Prober, size: usize) -> Result<(), Error> {
    let shape = Shape {
        size: Some(size),
        ..Shape::default()
    };
    if prober.set_shape(shape) {
        Ok(())
    } else {
        Err(Error::Usage(
            "--size needs SYN probes: run with CAP_NET_RAW (sudo, or setcap cap_net_raw+ep)".into(),
        ))
    }
}

/// Whether a SYN without payload reaches `target` within `timeout` (the target answers
/// SYN-ACK or RST).
fn small_reaches(prober: &mut dyn Prober, target: SocketAddr, ttl: u8, timeout: Duration) -> bool {
    prober.set_shape(Shape::default());
    prober.send(ProbeSpec {
        seq: SMALL_SEQ,
        target,
        ttl: Some(ttl),
        flow: 0,
    });
    let until = Instant::now() + timeout + Duration::from_millis(50);
    let mut done = Vec::new();
    while Instant::now() < until {
        if prober.poll(until, &mut done).is_err() {
            return false;
        }
        if let Some(r) = done.iter().find(|r| r.seq == SMALL_SEQ) {
            return matches!(r.status, Status::Reply | Status::Refused);
        }
        if prober.in_flight() == 0 && done.is_empty() {
            return false;
        }
        done.clear();
    }
    false
}

/// Add the finding of a trace of `size`-byte SYNs to its verdict (JSON `mtu`, and words).
pub fn judge(
    v: &mut Verdict,
    prober: &mut dyn Prober,
    size: usize,
    target: SocketAddr,
    max_hops: u8,
    timeout: Duration,
) {
    let small_reached = matches!(v.kind, Kind::SilentAfter { .. })
        .then(|| small_reaches(prober, target, max_hops, timeout));
    let Some(f): Option<MtuFinding> = mtu::finding(&v.kind, size, small_reached) else {
        return;
    };
    let small = if target.is_ipv6() { SMALL_V6 } else { SMALL_V4 };
    // A black hole is not a port dropped: the verdict's first clause (where it goes silent),
    // then the finding instead of its guess.
    let head = if f.black_hole {
        v.text.split(';').next().unwrap_or_default().to_string()
    } else {
        v.text.clone()
    };
    v.text = format!("{head}; {}", mtu::words(&f, small));
    v.mtu = Some(f);
}
