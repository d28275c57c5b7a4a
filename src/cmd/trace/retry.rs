//! A single flow that broke tries a few others before it blames the path. On a
//! load-balanced path, one constant flow takes one branch: when that branch drops or
//! refuses, the trace would say the path breaks, and another run (another source port) that
//! the balancer sends the other way would say it is fine. So when a one-flow trace does not
//! reach the target and names where it broke (silent after a hop, refused at a hop, a loop
//! from a hop), [`OTHER_FLOWS`] more flows are probed at that hop (which router they pass)
//! and at the target (do they get through): a handful of probes, one more round trip (one
//! timeout when some stay silent). If some reach the target, the verdict is partial
//! (`verdict::with_other_flows`); if none do, it stands, and says so.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::engine::{Answer, Plan};
use super::verdict::{self, OtherFlow, Verdict};
use crate::probe::{ProbeSpec, Prober};

/// Flows tried after a single flow broke.
pub const OTHER_FLOWS: u16 = 6;

/// After the cycles of a one-flow trace (`plan.flows` 1) whose verdict `v` names a break:
/// probe the break hop and the target on flows 1 to [`OTHER_FLOWS`] over `prober`, numbered
/// from `first_seq`, and weigh the verdict against them. Returns the verdict and the probes
/// sent. Nothing is sent for a trace of several flows, a verdict that names no break, or
/// once `stop` is raised (a probe in flight then is dropped, and the verdict stands).
pub fn try_other_flows(
    v: Verdict,
    plan: &Plan,
    first_seq: u64,
    prober: &mut dyn Prober,
    stop: &AtomicBool,
) -> io::Result<(Verdict, u64)> {
    let hop = match verdict::break_to_retry(&v.kind) {
        Some(h) if plan.flows <= 1 && !stop.load(Ordering::Relaxed) => h,
        _ => return Ok((v, 0)),
    };
    // Two probes a flow: the break hop's router, then the target.
    let mut specs = Vec::new();
    for i in 1..=OTHER_FLOWS {
        for ttl in [hop, plan.max_hops.max(hop)] {
            specs.push(ProbeSpec {
                seq: first_seq + specs.len() as u64,
                target: plan.target,
                ttl: Some(ttl),
                flow: i,
            });
        }
    }
    for s in &specs {
        prober.send(*s);
    }
    let sent = specs.len() as u64;
    let mut answers: HashMap<u64, Answer> = HashMap::new();
    let mut done = Vec::new();
    while answers.len() < specs.len() && prober.in_flight() > 0 {
        if stop.load(Ordering::Relaxed) {
            prober.interrupt(&mut done);
            return Ok((v, sent));
        }
        prober.poll(Instant::now() + Duration::from_secs(3600), &mut done)?;
        for r in done.drain(..) {
            let ours = r.seq >= first_seq && r.seq < first_seq + sent;
            if let (true, Some(a)) = (ours, Answer::of(&r.status)) {
                answers.insert(r.seq, a);
            }
        }
    }
    let others: Vec<OtherFlow> = specs
        .chunks(2)
        .map(|p| OtherFlow::of(p[0].flow, answers.get(&p[0].seq), answers.get(&p[1].seq)))
        .collect();
    Ok((verdict::with_other_flows(v, &others, plan.target), sent))
}
