//! What `trace` prints: traceroute-style hop lines for the first cycle, an mtr-style report
//! after several cycles, and the verdict in words; or NDJSON events (`trace_start`, one
//! `probe` per query's verdict, one `hop` per hop at the end, and the `trace` summary).

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::dns::Names;
use super::engine::{Answer, HopDone, Outcome};
use super::state::{flows_needed, Hop, TraceState, MDA_ALPHA};
use super::verdict::{Kind, Verdict};
use crate::cli::{Output, TraceConfig};
use crate::event::{self, round3, unix_secs, us_ms as ms, Event, ProbeStatus};
use crate::icmp::extension::{InterfaceInfo, MplsLabel};
use crate::icmp::parse::describe;

/// How the trace probes, for the start line.
#[derive(Clone, Debug)]
pub struct Setup {
    /// "syn" or "connect".
    pub probe: &'static str,
    pub source: Option<IpAddr>,
    /// Our source port of each flow (SYN probes).
    pub ports: Vec<u16>,
}

/// traceroute's mark after an unreachable's time: !N, !H, !X, ...
pub fn unreachable_mark(v6: bool, t: u8, code: u8) -> String {
    let m = match (v6, t, code) {
        (false, 3, 0) | (true, 1, 0) => "!N",
        (false, 3, 1) | (true, 1, 3) => "!H",
        (false, 3, 2 | 3) | (true, 1, 4) => "!P",
        (false, 3, 4) => "!F",
        (false, 3, 5) => "!S",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "!X",
        (false, 3, 14) => "!V",
        (false, 3, 15) => "!C",
        _ => return format!("!<{t}/{code}>"),
    };
    m.to_string()
}

/// Totals of the run that are not in the state.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunTotals {
    pub probes_sent: u64,
    pub reprobes: u64,
    pub unmatched_icmp: u64,
    pub late_icmp: u64,
    pub elapsed: Duration,
}

/// Writes a trace in the chosen format.
pub struct TraceWriter<W: Write> {
    out: W,
    format: Output,
    names: Names,
    /// Silent hops of the first cycle not printed yet (a run of them is shown as one line).
    silent: Vec<HopDone>,
    /// Print traceroute-style lines for the first cycle only.
    lines_for_cycle: u64,
    timeout: Duration,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(out: W, cfg: &TraceConfig) -> Self {
        TraceWriter {
            out,
            format: cfg.output,
            names: Names::new(cfg.resolve),
            silent: Vec::new(),
            lines_for_cycle: 1,
            timeout: cfg.timeout,
        }
    }

    /// The writer's output (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn json(&mut self, ev: Event) -> io::Result<()> {
        ev.write_line(&mut self.out)
    }

    fn addr(&mut self, a: IpAddr) -> String {
        match self.names.name(a) {
            Some(n) => format!("{n} ({a})"),
            None => a.to_string(),
        }
    }

    pub fn start(&mut self, cfg: &TraceConfig, setup: &Setup) -> io::Result<()> {
        if self.format == Output::Json {
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
                ts: Some(unix_secs(SystemTime::now())),
            };
            self.json(Event::TraceStart(ev))?;
            return self.out.flush();
        }
        let from = setup
            .source
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        let flows = if cfg.flows > 1 {
            format!(", {} flows", cfg.flows)
        } else {
            String::new()
        };
        let cycles = match cfg.cycles {
            Some(1) => String::new(),
            Some(n) => format!(", {n} cycles"),
            None => ", cycles until interrupted".to_string(),
        };
        writeln!(
            self.out,
            "trace to {} ({}){from}: {} probes, {} hops max, {} per hop{flows}{cycles}, timeout {}",
            cfg.target_name,
            cfg.target,
            setup.probe.to_uppercase(),
            cfg.max_hops,
            if cfg.queries == 1 {
                "1 query".to_string()
            } else {
                format!("{} queries", cfg.queries)
            },
            humantime::format_duration(cfg.timeout)
        )?;
        self.out.flush()
    }

    /// One hop of one cycle has every verdict.
    pub fn hop_done(&mut self, done: &HopDone, target: SocketAddr, flows: u16) -> io::Result<()> {
        if self.format == Output::Json {
            for o in &done.outcomes {
                self.probe_json(o)?;
            }
            return self.out.flush();
        }
        if done.cycle != self.lines_for_cycle {
            return Ok(());
        }
        if done.outcomes.iter().all(|o| !o.answer.answered())
            && done
                .outcomes
                .iter()
                .all(|o| !matches!(o.answer, Answer::Error(_)))
        {
            self.silent.push(done.clone());
            return Ok(());
        }
        self.flush_silent(false)?;
        let lines = self.hop_lines(done, target, flows);
        for l in lines {
            writeln!(self.out, "{l}")?;
        }
        self.out.flush()
    }

    /// The first cycle is over: print what silent hops are left.
    pub fn cycle_done(&mut self, cycle: u64) -> io::Result<()> {
        if self.format == Output::Human && cycle == self.lines_for_cycle {
            self.flush_silent(true)?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn flush_silent(&mut self, trailing: bool) -> io::Result<()> {
        let hops = std::mem::take(&mut self.silent);
        let stars = |h: &HopDone| vec!["*"; h.outcomes.len()].join("  ");
        if trailing && hops.len() > 2 {
            let (first, last) = (&hops[0], &hops[hops.len() - 1]);
            let probes: usize = hops[1..].iter().map(|h| h.outcomes.len()).sum();
            writeln!(self.out, "{:2}  {}", first.hop, stars(first))?;
            writeln!(
                self.out,
                "    hops {} to {}: no answer ({probes} probes)",
                first.hop + 1,
                last.hop
            )?;
            return Ok(());
        }
        for h in &hops {
            writeln!(self.out, "{:2}  {}", h.hop, stars(h))?;
        }
        Ok(())
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

    /// traceroute-style lines of one hop.
    fn hop_lines(&mut self, done: &HopDone, target: SocketAddr, flows: u16) -> Vec<String> {
        let mut lines = Vec::new();
        let rtt = |o: &Outcome| match (&o.answer, o.rtt) {
            (Answer::Error(_), _) => "!E".to_string(),
            (a, Some(d)) if a.answered() => {
                let mark = match a {
                    Answer::Unreachable(r) => {
                        format!(" {}", unreachable_mark(r.v6, r.icmp_type, r.code))
                    }
                    _ => String::new(),
                };
                format!("{:.3} ms{mark}", d.as_secs_f64() * 1e3)
            }
            _ => "*".to_string(),
        };
        let tag = |o: &Outcome| match o.answer {
            Answer::Reached { open: true } => " [open]",
            Answer::Reached { open: false } => " [closed]",
            _ => "",
        };
        let mut first = true;
        let prefix = |first: &mut bool| {
            let p = if *first {
                format!("{:2}  ", done.hop)
            } else {
                "    ".to_string()
            };
            *first = false;
            p
        };
        if flows <= 1 {
            // As traceroute: the address when it changes, then the times (or *).
            let mut line = String::new();
            let mut shown: Option<IpAddr> = None;
            for o in &done.outcomes {
                if let (Some(a), true) = (o.from, o.answer.answered()) {
                    if shown != Some(a) {
                        let name = self.addr(a);
                        line.push_str(&format!("  {name}{}", tag(o)));
                        shown = Some(a);
                    }
                }
                line.push_str(&format!("  {}", rtt(o)));
            }
            lines.push(format!("{}{}", prefix(&mut first), line.trim_start()));
        } else {
            // Grouped by router, with the flows that reached it.
            let mut groups: Vec<(Option<IpAddr>, Vec<&Outcome>)> = Vec::new();
            for o in &done.outcomes {
                let key = o.from.filter(|_| o.answer.answered());
                match groups.iter_mut().find(|g| g.0 == key) {
                    Some(g) => g.1.push(o),
                    None => groups.push((key, vec![o])),
                }
            }
            groups.sort_by_key(|g| g.0.is_none());
            for (addr, os) in groups {
                let fl: std::collections::BTreeSet<u16> = os.iter().map(|o| o.flow).collect();
                let fl: Vec<String> = fl.iter().map(u16::to_string).collect();
                let fword = if fl.len() == 1 { "flow" } else { "flows" };
                let what = match addr {
                    Some(a) => {
                        let times: Vec<f64> = os
                            .iter()
                            .filter_map(|o| o.rtt)
                            .map(|d| d.as_secs_f64() * 1e3)
                            .collect();
                        let n = os.len();
                        let mark = match &os[0].answer {
                            Answer::Unreachable(r) => {
                                format!(" {}", unreachable_mark(r.v6, r.icmp_type, r.code))
                            }
                            _ => String::new(),
                        };
                        let t = if times.is_empty() {
                            String::new()
                        } else {
                            let min = times.iter().copied().fold(f64::INFINITY, f64::min);
                            let max = times.iter().copied().fold(0.0, f64::max);
                            let avg = times.iter().sum::<f64>() / times.len() as f64;
                            format!("  {min:.3}/{avg:.3}/{max:.3} ms{mark}")
                        };
                        format!(
                            "{}{}{t}  ({n} {})",
                            self.addr(a),
                            tag(os[0]),
                            if n == 1 { "answer" } else { "answers" }
                        )
                    }
                    None => {
                        let n = os.len();
                        format!("*  ({n} {})", if n == 1 { "probe" } else { "probes" })
                    }
                };
                lines.push(format!(
                    "{}{what}  {fword} {}",
                    prefix(&mut first),
                    fl.join(",")
                ));
            }
        }
        lines.extend(self.extension_lines(&done.outcomes));
        for o in &done.outcomes {
            if let Answer::Error(e) = &o.answer {
                let l = format!("    error: {e}");
                if !lines.contains(&l) {
                    lines.push(l);
                }
            }
        }
        let _ = target;
        lines
    }

    fn extension_lines(&mut self, outcomes: &[Outcome]) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        let many = {
            let mut a: Vec<IpAddr> = outcomes.iter().filter_map(|o| o.from).collect();
            a.sort();
            a.dedup();
            a.len() > 1
        };
        for o in outcomes {
            let Some(e) = o.answer.icmp().and_then(|r| r.extensions.as_deref()) else {
                continue;
            };
            let who = match (many, o.from) {
                (true, Some(a)) => format!("{a}: "),
                _ => String::new(),
            };
            if !e.mpls.is_empty() {
                let labels: Vec<String> = e.mpls.iter().map(MplsLabel::to_string).collect();
                let l = format!("    {who}MPLS {}", labels.join(" | "));
                if !lines.contains(&l) {
                    lines.push(l);
                }
            }
            for i in &e.interfaces {
                let l = format!("    {who}{i}");
                if !lines.contains(&l) {
                    lines.push(l);
                }
            }
        }
        lines
    }

    /// The end: the hop events and the summary (JSON), or the report when several cycles
    /// ran and the verdict (human).
    pub fn finish(
        &mut self,
        cfg: &TraceConfig,
        state: &TraceState,
        verdict: &Verdict,
        totals: RunTotals,
    ) -> io::Result<()> {
        match self.format {
            Output::Json => {
                for h in state.hops() {
                    self.hop_json(state, h)?;
                }
                self.trace_json(cfg, state, verdict, totals)?;
            }
            Output::Human => {
                self.flush_silent(true)?;
                if state.cycles_done != 1 {
                    self.report(state)?;
                }
                for l in notes(state) {
                    writeln!(self.out, "{l}")?;
                }
                writeln!(self.out, "{}", verdict.text)?;
            }
        }
        self.out.flush()
    }

    fn hop_json(&mut self, state: &TraceState, h: &Hop) -> io::Result<()> {
        let mut seen: Vec<&super::state::Router> =
            h.routers.iter().filter(|r| r.addr.is_some()).collect();
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
                avg_ms: r.rtt.avg_ms().map(round3),
            })
            .collect();
        let k = h.next_hops();
        let needed = flows_needed(k.max(1), MDA_ALPHA);
        let ev = event::Hop {
            hop: Some(h.hop.into()),
            routers,
            router_details,
            sent: Some(h.sent),
            received: Some(h.received),
            loss_pct: Some(round3(h.loss_pct())),
            last_ms: h.rtt.last.map(ms),
            avg_ms: h.rtt.avg_ms().map(round3),
            best_ms: h.rtt.best.map(ms),
            worst_ms: h.rtt.worst.map(ms),
            stddev_ms: h.rtt.stddev_ms().map(round3),
            flows_answered: h.flows_answered(),
            next_hops: k,
            flows_needed: (state.flows > 1).then_some(needed),
            enough_flows: (state.flows > 1).then_some(h.flows_answered() >= needed),
            rate_limited: state.rate_limited(h.hop),
            errors: &h.local_errors,
        };
        self.json(Event::Hop(ev))
    }

    fn trace_json(
        &mut self,
        cfg: &TraceConfig,
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
            k => (None, None, k.hop()),
        };
        let breaks = !matches!(v.kind, Kind::Reached { .. });
        let ev = event::Trace {
            verdict: Some(v.kind.name().into()),
            hops: hops.map(u32::from),
            break_hop: if breaks {
                v.kind.hop().map(u32::from)
            } else {
                None
            },
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
            cycles: state.cycles_done,
            probes_sent: totals.probes_sent,
            reprobes: totals.reprobes,
            unmatched_icmp: totals.unmatched_icmp,
            late_icmp: totals.late_icmp,
            elapsed_ms: ms(totals.elapsed),
        };
        self.json(Event::Trace(ev))
    }

    /// The mtr-style report over every cycle.
    fn report(&mut self, state: &TraceState) -> io::Result<()> {
        writeln!(
            self.out,
            "HOP  {:<32} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "ADDRESS", "LOSS%", "SNT", "LAST", "AVG", "BEST", "WRST", "STDEV"
        )?;
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        let d = |x: Option<Duration>| f(x.map(|d| d.as_secs_f64() * 1e3));
        let hops: Vec<Hop> = state.hops().cloned().collect();
        for h in &hops {
            let mut routers: Vec<_> = h.routers.iter().filter(|r| r.addr.is_some()).collect();
            routers.sort_by_key(|r| std::cmp::Reverse(r.count));
            let first = match routers.first() {
                Some(r) => {
                    let a = r.addr.map(|a| self.addr(a)).unwrap_or_default();
                    let tag = if r.open > 0 {
                        " [open]"
                    } else if r.closed > 0 {
                        " [closed]"
                    } else {
                        ""
                    };
                    format!("{a}{tag}")
                }
                None => "*".to_string(),
            };
            writeln!(
                self.out,
                "{:>3}  {:<32} {:>5.1}% {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
                h.hop,
                first,
                h.loss_pct(),
                h.sent,
                d(h.rtt.last),
                f(h.rtt.avg_ms()),
                d(h.rtt.best),
                d(h.rtt.worst),
                f(h.rtt.stddev_ms())
            )?;
            let multi = routers.len() > 1 || state.flows > 1;
            for (i, r) in routers.iter().enumerate() {
                let a = r.addr.map(|a| self.addr(a)).unwrap_or_default();
                if i > 0 {
                    writeln!(self.out, "     {a}")?;
                }
                if multi {
                    let fl: Vec<String> = r.flows.iter().map(u16::to_string).collect();
                    writeln!(
                        self.out,
                        "       {} answers, flows {}",
                        r.count,
                        fl.join(",")
                    )?;
                }
                for m in &r.mpls {
                    let labels: Vec<String> = m.iter().map(MplsLabel::to_string).collect();
                    writeln!(self.out, "       MPLS {}", labels.join(" | "))?;
                }
                for i in &r.interfaces {
                    writeln!(self.out, "       {i}")?;
                }
                for e in &r.errors {
                    let reason = describe(e.v6, e.icmp_type, e.code, e.info).reason;
                    writeln!(self.out, "       {} x {reason}", e.count)?;
                }
            }
        }
        Ok(())
    }

    /// The timeout, for texts.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A probe's answer as its event names it.
fn status(a: &Answer) -> ProbeStatus {
    match a {
        Answer::TimeExceeded(_) => ProbeStatus::TimeExceeded,
        Answer::Reached { .. } => ProbeStatus::Reached,
        Answer::Unreachable(_) => ProbeStatus::Unreachable,
        Answer::Timeout => ProbeStatus::Timeout,
        Answer::Error(_) => ProbeStatus::Error,
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

/// Notes under the hops: rate-limiting routers, and hops where the flows were too few for
/// the multipath detection algorithm's confidence.
pub fn notes(state: &TraceState) -> Vec<String> {
    let mut out = Vec::new();
    // (next hops seen, flows answered, flows needed) -> hops
    let mut short: Vec<((usize, usize, usize), Vec<u8>)> = Vec::new();
    for h in state.hops() {
        if state.rate_limited(h.hop) {
            let who = h
                .main_router()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            out.push(format!(
                "note: hop {}{who} answered {} of {} probes while later hops answered more: it rate-limits its ICMP; not a break",
                h.hop, h.received, h.sent
            ));
        }
        if state.flows > 1 && h.received > 0 {
            let k = h.next_hops();
            let needed = flows_needed(k.max(1), MDA_ALPHA);
            let answered = h.flows_answered();
            if answered < needed {
                let key = (k, answered, needed);
                match short.iter_mut().find(|(x, _)| *x == key) {
                    Some((_, hops)) => hops.push(h.hop),
                    None => short.push((key, vec![h.hop])),
                }
            }
        }
    }
    for ((k, answered, needed), hops) in short {
        let hops: Vec<String> = hops.iter().map(u8::to_string).collect();
        out.push(format!(
            "note: hop{} {}: {k} next hop{} seen on {answered} answering flows; {needed} are needed to rule out one more at 95% confidence (--flows)",
            if hops.len() == 1 { "" } else { "s" },
            hops.join(", "),
            if k == 1 { "" } else { "s" }
        ));
    }
    out
}
