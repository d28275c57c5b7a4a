//! The human sink of a trace: traceroute-style hop lines for the first cycle, an mtr-style
//! report (a table) after several cycles, the notes, and the verdict in words.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{notes, unreachable_mark, End, Setup, TraceSink};
use crate::icmp::extension::MplsLabel;
use crate::icmp::parse::describe;
use crate::trace::dns::Names;
use crate::trace::engine::{Answer, HopDone, Outcome};
use crate::trace::state::{Hop, TraceState};
use crate::trace::TraceRun;

/// Lines as traceroute and mtr print them.
pub struct Lines<W: Write> {
    out: W,
    names: Names,
    /// Silent hops of the first cycle not printed yet (a run of them is shown as one line).
    silent: Vec<HopDone>,
    /// Print traceroute-style lines for the first cycle only.
    lines_for_cycle: u64,
}

impl<W: Write> Lines<W> {
    pub fn new(out: W, names: Names) -> Self {
        Lines {
            out,
            names,
            silent: Vec::new(),
            lines_for_cycle: 1,
        }
    }

    fn addr(&mut self, a: IpAddr) -> String {
        match self.names.name(a) {
            Some(n) => format!("{n} ({a})"),
            None => a.to_string(),
        }
    }

    fn flush_silent(&mut self, trailing: bool) -> io::Result<()> {
        let hops = std::mem::take(&mut self.silent);
        // A star per probe, as traceroute; with several flows, how many.
        let stars = |h: &HopDone| {
            let many = h.outcomes.windows(2).any(|w| w[0].flow != w[1].flow);
            match (many, h.outcomes.len()) {
                (true, n) => format!("*  ({n} probes)"),
                (false, n) => vec!["*"; n].join("  "),
            }
        };
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
                d(h.rtt.last()),
                f(h.rtt.avg()),
                d(h.rtt.best()),
                d(h.rtt.worst()),
                f(h.rtt.mdev())
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
}

impl<W: Write> TraceSink<W> for Lines<W> {
    fn start(&mut self, cfg: &TraceRun, setup: &Setup) -> io::Result<()> {
        let from = setup
            .source
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        let flows = if cfg.multipath {
            format!(
                ", flows as the multipath search needs them (up to {})",
                cfg.flows
            )
        } else if cfg.flows > 1 {
            format!(", {} flows", cfg.flows)
        } else {
            String::new()
        };
        let cycles = match cfg.cycles {
            Some(1) => String::new(),
            Some(n) => format!(", {n} cycles"),
            None => ", cycles until interrupted".to_string(),
        };
        let size = cfg
            .size
            .map(|n| format!(" of {n} bytes (don't fragment)"))
            .unwrap_or_default();
        writeln!(
            self.out,
            "trace to {} ({}){from}: {} probes{size}, {} hops max, {} per hop{flows}{cycles}, timeout {}",
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

    fn hop_done(&mut self, done: &HopDone, target: SocketAddr, flows: u16) -> io::Result<()> {
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

    fn cycle_done(&mut self, cycle: u64) -> io::Result<()> {
        if cycle == self.lines_for_cycle {
            self.flush_silent(true)?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn end(&mut self, end: &End) -> io::Result<()> {
        let (state, verdict) = (end.state, end.verdict);
        self.flush_silent(true)?;
        if state.cycles_done != 1 {
            self.report(state)?;
        }
        for l in notes(state) {
            writeln!(self.out, "{l}")?;
        }
        let names = &mut self.names;
        let mut addr = |a: IpAddr| match names.name(a) {
            Some(n) => format!("{n} {a}"),
            None => a.to_string(),
        };
        for l in state.middlebox.lines(&mut addr) {
            writeln!(self.out, "{l}")?;
        }
        writeln!(self.out, "{}", verdict.text)?;
        self.out.flush()
    }

    fn into_inner(self: Box<Self>) -> W {
        self.out
    }
}
