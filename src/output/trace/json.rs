//! The JSON sink of a trace: NDJSON events (`crate::event::trace`): `trace_start`, one
//! `probe` per query's verdict, one `hop` per hop at the end, and the `trace` verdict.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::SystemTime;

use super::{forwards, End, RunTotals, Setup, TraceSink};
use crate::event::{self, round3, unix_secs, us_ms as ms, Event, ProbeStatus};
use crate::icmp::extension::{InterfaceInfo, MplsLabel};
use crate::icmp::parse::describe;
use crate::packet::diff;
use crate::trace::dns::Names;
use crate::trace::engine::{Answer, HopDone, Outcome};
use crate::trace::state::{Hop, Router, TraceState};
use crate::trace::verdict::{How, Kind, Verdict};
use crate::trace::TraceRun;

/// NDJSON events.
pub struct Events<W: Write> {
    out: W,
    names: Names,
}

impl<W: Write> Events<W> {
    pub fn new(out: W, names: Names) -> Self {
        Events { out, names }
    }

    fn json(&mut self, ev: Event) -> io::Result<()> {
        ev.write_line(&mut self.out)
    }

    fn probe_json(&mut self, o: &Outcome) -> io::Result<()> {
        let ext = o.answer.icmp().and_then(|r| r.extensions.as_deref());
        let (mpls, interfaces): (&[MplsLabel], &[InterfaceInfo]) = match ext {
            Some(e) => (&e.mpls, &e.interfaces),
            None => (&[], &[]),
        };
        let name = o.from.and_then(|a| self.names.name(a));
        let ev = event::Probe {
            hop: Some(o.hop.into()),
            query: Some(u32::from(o.query) + 1),
            flow: Some(o.flow.into()),
            cycle: Some(o.cycle),
            ts: Some(unix_secs(o.sent_at)),
            status: Some(status(&o.answer)),
            from: o.from.map(|a| a.to_string().into()),
            name,
            rtt_ms: o.rtt.map(ms),
            port: match o.answer {
                Answer::Reached { open } => Some(if open { "open" } else { "closed" }),
                _ => None,
            },
            icmp: o
                .answer
                .icmp()
                .map(|r| icmp(r.icmp_type, r.code, r.describe().reason)),
            mpls,
            interfaces,
            error: match &o.answer {
                Answer::Error(e) => Some(e.as_str()),
                _ => None,
            },
            seq: o.seq,
            reprobe: o.reprobe,
            local_port: o.local_port,
        };
        self.json(Event::Probe(ev))
    }

    fn hop_json(&mut self, state: &TraceState, h: &Hop) -> io::Result<()> {
        let mut seen: Vec<&Router> = h.routers.iter().filter(|r| r.addr.is_some()).collect();
        seen.sort_by_key(|r| std::cmp::Reverse(r.count));
        let routers = seen
            .iter()
            .filter_map(|r| r.addr)
            .map(|a| a.to_string().into())
            .collect();
        let router_details: Vec<event::Router> = seen
            .iter()
            .map(|r| event::Router {
                address: r.addr,
                name: r.addr.and_then(|a| self.names.name(a)),
                flows: r.flows.iter().copied().collect(),
                count: r.count,
                time_exceeded: r.time_exceeded,
                port: if r.open > 0 {
                    Some("open")
                } else if r.closed > 0 {
                    Some("closed")
                } else {
                    None
                },
                icmp: r
                    .errors
                    .iter()
                    .map(|e| event::Icmp {
                        count: Some(e.count),
                        ..icmp(
                            e.icmp_type,
                            e.code,
                            describe(e.v6, e.icmp_type, e.code, e.info).reason,
                        )
                    })
                    .collect(),
                mpls: &r.mpls,
                interfaces: &r.interfaces,
                avg_ms: r.rtt.avg().map(round3),
            })
            .collect();
        let k = h.next_hops();
        // The stopping rule, per router of the hop before (`trace::mda`); none at a hop
        // that does not forward (the destination's).
        let rule = state
            .flow_rules()
            .and_then(|r| r.get(&h.hop).cloned())
            .filter(|_| forwards(h));
        let ev = event::Hop {
            hop: Some(h.hop.into()),
            routers,
            router_details,
            sent: Some(h.sent),
            received: Some(h.received),
            loss_pct: Some(round3(h.loss_pct())),
            last_ms: h.rtt.last().map(ms),
            avg_ms: h.rtt.avg().map(round3),
            best_ms: h.rtt.best().map(ms),
            worst_ms: h.rtt.worst().map(ms),
            stddev_ms: h.rtt.mdev().map(round3),
            flows_answered: h.flows_answered(),
            next_hops: k,
            flows_needed: rule.as_ref().map(|r| r.needed),
            enough_flows: rule.as_ref().map(|r| r.enough),
            rate_limited: state.rate_limited(h.hop),
            errors: &h.local_errors,
            changes: hop_changes(state, h.hop),
            quote: state.middlebox.hops.get(&h.hop).map(|q| q.quote.as_str()),
        };
        self.json(Event::Hop(ev))
    }

    fn trace_json(
        &mut self,
        cfg: &TraceRun,
        state: &TraceState,
        v: &Verdict,
        totals: RunTotals,
    ) -> io::Result<()> {
        let (port, icmp, hops) = match &v.kind {
            Kind::Reached { hop, open } => (
                Some(if *open { "open" } else { "closed" }),
                None,
                Some(*hop),
            ),
            Kind::PathEnds {
                probe_hop,
                v6,
                icmp_type,
                code,
                info,
                ..
            } => (
                None,
                Some(icmp(
                    *icmp_type,
                    *code,
                    describe(*v6, *icmp_type, *code, *info).reason,
                )),
                Some(*probe_hop),
            ),
            Kind::Partial { hop, open, broken } => (
                Some(if *open { "open" } else { "closed" }),
                broken.first().and_then(|b| branch_icmp(&b.how)),
                *hop,
            ),
            k => (None, None, k.hop()),
        };
        let ev = event::Trace {
            verdict: Some(v.kind.name().into()),
            hops: hops.map(u32::from),
            break_hop: v.kind.break_hop().map(u32::from),
            break_router: v.kind.router().map(|a| a.to_string().into()),
            loop_routers: match &v.kind {
                Kind::Loop { routers, .. } => Some(routers),
                _ => None,
            },
            text: Some(v.text.as_str().into()),
            target: &cfg.target_name,
            address: Some(cfg.target),
            port,
            icmp,
            flows: v.flows,
            flows_reached: v.flows_reached,
            flows_broken: v.flows_broken(),
            broken: match &v.kind {
                Kind::Partial { broken, .. } => broken
                    .iter()
                    .map(|b| event::trace::Broken {
                        hop: b.hop,
                        router: b.router,
                        how: b.how.name(),
                        icmp: branch_icmp(&b.how),
                        flows: b.flows.clone(),
                        count: b.flows.len(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            lengths: v
                .lengths
                .iter()
                .map(|l| event::trace::Length {
                    hops: l.hop,
                    flows: l.flows.clone(),
                    through: l.through.map(|t| t.1),
                    through_hop: l.through.map(|t| t.0),
                })
                .collect(),
            other_flows: v
                .other_flows
                .map(|(tried, reached)| event::trace::OtherFlows { tried, reached }),
            cycles: state.cycles_done,
            probes_sent: totals.probes_sent,
            reprobes: totals.reprobes,
            unmatched_icmp: totals.unmatched_icmp,
            late_icmp: totals.late_icmp,
            elapsed_ms: ms(totals.elapsed),
            multipath: state.multipath,
            confidence: state
                .multipath
                .then(|| (100.0 * (1.0 - state.alpha)).round() as u8),
            changes: state
                .middlebox
                .changes()
                .iter()
                .map(|s| change(&s.change, s.hop, Some(s.to_target)))
                .collect(),
            syn_ack: state.middlebox.offer().map(|o| event::SynAck {
                mss: o.mss,
                wscale: o.wscale,
                sack_perm: o.sack_perm,
                timestamps: o.timestamps,
                ecn: o.ecn,
            }),
            mtu: v.mtu.as_ref().map(|m| event::TraceMtu {
                size: m.size,
                hop: m.hop,
                router: m.router.map(|r| r.to_string()),
                mtu: m.mtu,
                black_hole: m.black_hole,
            }),
        };
        self.json(Event::Trace(ev))
    }
}

impl<W: Write> TraceSink<W> for Events<W> {
    fn start(&mut self, cfg: &TraceRun, setup: &Setup) -> io::Result<()> {
        let ev = event::TraceStart {
            target: Some(cfg.target_name.as_str().into()),
            address: Some(cfg.target.to_string().into()),
            source: setup.source.map(|s| s.to_string().into()),
            host: crate::net::hostname().map(Into::into),
            max_hops: Some(cfg.max_hops.into()),
            queries: Some(cfg.queries.into()),
            flows: Some(cfg.flows.into()),
            probe: setup.probe,
            ports: &setup.ports,
            cycles: cfg.cycles,
            timeout_ms: ms(cfg.timeout),
            interval_ms: ms(cfg.interval),
            size: cfg.size,
            ts: Some(unix_secs(SystemTime::now())),
        };
        self.json(Event::TraceStart(ev))?;
        self.out.flush()
    }

    fn hop_done(&mut self, done: &HopDone, _: SocketAddr, _: u16) -> io::Result<()> {
        for o in &done.outcomes {
            self.probe_json(o)?;
        }
        self.out.flush()
    }

    fn end(&mut self, end: &End) -> io::Result<()> {
        let (cfg, state, verdict, totals) = (end.cfg, end.state, end.verdict, end.totals);
        for h in state.hops() {
            self.hop_json(state, h)?;
        }
        self.trace_json(cfg, state, verdict, totals)?;
        self.out.flush()
    }

    fn into_inner(self: Box<Self>) -> W {
        self.out
    }
}

/// A probe's answer as its event names it.
/// A change for the JSON.
fn change(c: &diff::Change, hop: u8, to_target: Option<bool>) -> event::Change {
    event::Change {
        field: c.field.as_str(),
        sent: c.sent.json(),
        seen: c.seen.json(),
        hop: hop.into(),
        to_target,
    }
}

/// The changes a hop's quotes show, each with the hop where it first shows.
fn hop_changes(state: &TraceState, hop: u8) -> Vec<event::Change> {
    let Some(h) = state.middlebox.hops.get(&hop) else {
        return Vec::new();
    };
    let all = state.middlebox.changes();
    h.changes
        .iter()
        .map(|c| {
            let first = all
                .iter()
                .find(|s| s.change.field == c.field)
                .map_or(hop, |s| s.hop);
            change(c, first, None)
        })
        .collect()
}

fn status(a: &Answer) -> ProbeStatus {
    match a {
        Answer::TimeExceeded(_) => ProbeStatus::TimeExceeded,
        Answer::Reached { .. } => ProbeStatus::Reached,
        Answer::Unreachable(_) => ProbeStatus::Unreachable,
        Answer::Timeout => ProbeStatus::Timeout,
        Answer::Error(_) => ProbeStatus::Error,
    }
}

/// The ICMP error a broken branch is refused with.
fn branch_icmp(how: &How) -> Option<event::Icmp<'static>> {
    match how {
        How::Refused {
            v6,
            icmp_type,
            code,
            info,
        } => Some(icmp(
            *icmp_type,
            *code,
            describe(*v6, *icmp_type, *code, *info).reason,
        )),
        _ => None,
    }
}

/// An ICMP error in a trace event: type, code and reason.
fn icmp(icmp_type: u8, code: u8, reason: String) -> event::Icmp<'static> {
    event::Icmp {
        icmp_type: Some(icmp_type),
        code: Some(code),
        reason: Some(reason.into()),
        ..event::Icmp::default()
    }
}
