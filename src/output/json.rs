//! The JSON sink: one NDJSON event per line (`crate::event`'s schema). With -q, only the
//! summary.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::SystemTime;

use super::{notice_text, End, PingSink, Tag};
use crate::event::{self, ms, round3, unix_secs, Event, Run, Verdict};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::probe::{Mode, Notice, PingResult, Status};

/// NDJSON events.
pub struct Json<W: Write> {
    pub(super) out: W,
    pub(super) mode: Mode,
    pub(super) quiet: bool,
}

/// `"probe"` of the events: how the probes are sent.
fn probe_name(m: Mode) -> &'static str {
    if m == Mode::Syn {
        "syn"
    } else {
        "connect"
    }
}

impl<W: Write> PingSink for Json<W> {
    fn start_tagged(&mut self, cfg: &Run, src: Option<IpAddr>, tag: Option<Tag>) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let ev = event::Start {
            target: Some(cfg.target_name.into()),
            labels: tag.map(Tag::labels),
            address: Some(cfg.target.to_string().into()),
            source: src.map(|s| s.to_string().into()),
            host: crate::net::hostname().map(Cow::Owned),
            probe: probe_name(cfg.mode),
            mode: Some(cfg.mode.name().into()),
            count: cfg.count,
            interval_ms: Some(ms(cfg.interval)),
            timeout_ms: Some(ms(cfg.timeout)),
            size: cfg.shape.size,
            pmtud: cfg.shape.size.map(|_| cfg.shape.pmtud.name().into()),
            ts: Some(unix_secs(SystemTime::now())),
        };
        Event::Start(ev).write_line(&mut self.out)?;
        self.out.flush()
    }

    fn ping_tagged(&mut self, r: &PingResult, cfg: &Run, tag: Option<Tag>) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        if let Some(n) = &r.notice {
            let message = notice_text(n, tag.map_or(cfg.target_name, |t| t.target), cfg.timeout);
            let (what, saw, now) = match n {
                Notice::NotEcho { saw } => ("not_echo", saw.as_deref(), "connect-only"),
                Notice::NoEcho => ("no_echo", None, "echo"),
                Notice::BlackHole { .. } => ("mtu_black_hole", None, "echo"),
            };
            let ev = event::Notice {
                target: tag.map(|t| t.target),
                labels: tag.map(Tag::labels),
                seq: r.seq,
                what,
                saw,
                now,
                message,
            };
            Event::Notice(ev).write_line(&mut self.out)?;
            self.out.flush()?;
        }
        let (error, icmp) = match &r.status {
            Status::Error(e) => (Some(Cow::Borrowed(e.as_str())), None),
            Status::Icmp(rep) => {
                let d = rep.describe();
                let mtu = rep.mtu();
                (
                    None,
                    Some(event::Icmp {
                        icmp_type: Some(rep.icmp_type),
                        code: Some(rep.code),
                        from: Some(rep.from.to_string().into()),
                        reason: Some(d.reason.into()),
                        after_ms: Some(ms(rep.after)),
                        phase: Some(rep.phase.as_str()),
                        source: Some(rep.source.as_str()),
                        mtu,
                        count: None,
                    }),
                )
            }
            _ => (None, None),
        };
        let ev = event::Ping {
            target: tag.map(|t| t.target.into()),
            labels: tag.map(Tag::labels),
            seq: Some(r.seq),
            probe: probe_name(self.mode),
            ts: Some(unix_secs(r.sent_at)),
            status: Some(Verdict::of(&r.status)),
            phase: Some(r.phase.as_str().into()),
            connect_ms: r.connect.map(ms),
            rtt_ms: r.rtt.map(ms),
            connect_user_ms: r.connect_user.map(ms),
            rtt_user_ms: r.rtt_user.map(ms),
            connect_clock: r.connect_clock.map(|c| c.as_str()),
            rtt_clock: r.rtt_clock.map(|c| c.as_str()),
            local_port: r.local_port,
            tcp_seq: r.tcp_seq,
            answer: r.answer.map(|a| a.as_str()),
            error,
            icmp,
        };
        Event::Ping(ev).write_line(&mut self.out)?;
        self.out.flush()
    }

    fn unmatched(&mut self, err: &IcmpError, why: Unmatched) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let d = err.describe();
        let ev = event::Unmatched {
            icmp_type: err.icmp_type,
            code: err.code,
            from: Some(err.from),
            reason: d.reason,
            why: why.as_str(),
            quoted_src: err.quoted.map(|q| q.src),
            quoted_dst: err.quoted.map(|q| q.dst),
            quoted_seq: err.quoted.and_then(|q| q.seq),
        };
        Event::UnmatchedIcmp(ev).write_line(&mut self.out)
    }

    fn end(&mut self, end: &End, tag: Option<Tag>) -> io::Result<()> {
        let (cfg, s, elapsed) = (end.run, end.stats, end.elapsed);
        let (unmatched, late) = (end.icmp.unmatched, end.icmp.late);
        let r = |x: Option<f64>| x.map(round3);
        let p = |q| r(s.rtt.percentile(q));
        let c = &s.connect;
        let ev = event::Summary {
            target: Some(cfg.target_name.into()),
            labels: tag.map(Tag::labels),
            address: Some(cfg.target.to_string().into()),
            sent: s.sent,
            received: s.replies,
            lost: s.lost,
            timeout: s.timeouts,
            refused: s.refused,
            icmp: s.icmp,
            error: s.errors,
            interrupted: s.interrupted,
            loss_pct: round3(s.loss_pct()),
            rtt_min_ms: r(s.rtt.min()),
            rtt_avg_ms: r(s.rtt.avg()),
            rtt_max_ms: r(s.rtt.max()),
            rtt_mdev_ms: r(s.rtt.mdev()),
            rtt_p50_ms: p(50.0),
            rtt_p90_ms: p(90.0),
            rtt_p99_ms: p(99.0),
            jitter_ms: r(s.jitter()),
            connect_min_ms: r(c.min()),
            connect_avg_ms: r(c.avg()),
            connect_max_ms: r(c.max()),
            icmp_errors: s
                .icmp_rows
                .iter()
                .map(|(k, n)| event::Icmp {
                    icmp_type: Some(k.icmp_type),
                    code: Some(k.code),
                    from: Some(k.from.to_string().into()),
                    reason: Some(
                        crate::icmp::parse::describe(k.v6, k.icmp_type, k.code, k.mtu)
                            .reason
                            .into(),
                    ),
                    count: Some(*n),
                    ..event::Icmp::default()
                })
                .collect(),
            unmatched_icmp: unmatched,
            late_icmp: late,
            elapsed_ms: Some(ms(elapsed)),
        };
        Event::Summary(ev).write_line(&mut self.out)?;
        self.out.flush()
    }
}
