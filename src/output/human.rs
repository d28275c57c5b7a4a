//! The human sink: ping's lines (the start line, a line per ping, the summary).

use std::io::{self, Write};
use std::net::IpAddr;

use super::{count, notice_text, End, PingSink, Tag};
use crate::event::{ms, Run};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::probe::syn::AnswerKind;
use crate::probe::{Mode, Notice, Phase, PingResult, Status};

/// Lines as ping writes them. With -q, only the start line and the summary (notices go to
/// stderr).
pub struct Human<W: Write> {
    pub(super) out: W,
    pub(super) mode: Mode,
    pub(super) quiet: bool,
}

impl<W: Write> Human<W> {
    /// What a ping found out about its target, once: a line (on stderr with -q, which keeps
    /// stdout to the start line and the summary).
    fn notice(&mut self, n: &Notice, cfg: &Run, tag: Option<Tag>) -> io::Result<()> {
        let name = tag.map_or(cfg.target_name, |t| t.target);
        let message = notice_text(n, name, cfg.timeout);
        if self.quiet {
            eprintln!("tcpping-diag: note: {message}");
            return Ok(());
        }
        if let Some(t) = tag {
            write!(self.out, "{} ", t.target)?;
        }
        writeln!(self.out, "note: {message}")?;
        self.out.flush()
    }

    fn ping_line(&mut self, r: &PingResult, cfg: &Run) -> io::Result<()> {
        let seq = r.seq;
        let target = cfg.target;
        let times = |r: &PingResult| {
            let mut parts = Vec::new();
            if let Some(c) = r.connect {
                parts.push(format!("connect={:.3} ms", ms(c)));
            }
            if let Some(t) = r.rtt {
                parts.push(format!("rtt={:.3} ms", ms(t)));
            }
            parts.join(" ")
        };
        match &r.status {
            Status::Reply if self.mode == Mode::Syn && r.answer == Some(AnswerKind::Ack) => {
                writeln!(
                    self.out,
                    "seq={seq} port open: ACK from {target} (its SYN met an earlier probe's \
                     half-open connection) time={:.3} ms",
                    r.connect.map_or(0.0, ms)
                )?
            }
            Status::Reply if self.mode == Mode::Syn => writeln!(
                self.out,
                "seq={seq} port open: SYN-ACK from {target} time={:.3} ms",
                r.connect.map_or(0.0, ms)
            )?,
            Status::Refused if self.mode == Mode::Syn => writeln!(
                self.out,
                "seq={seq} port closed: RST from {target} time={:.3} ms",
                r.connect.map_or(0.0, ms)
            )?,
            Status::Timeout if self.mode == Mode::Syn => writeln!(
                self.out,
                "seq={seq} timeout: no answer to the SYN within {} ms",
                cfg.timeout.as_millis()
            )?,
            Status::Reply if self.mode == Mode::ConnectOnly || r.handshake_only => writeln!(
                self.out,
                "seq={seq} connected to {target}: time={:.3} ms",
                r.connect.map_or(0.0, ms)
            )?,
            Status::Reply => writeln!(self.out, "seq={seq} reply from {target}: {}", times(r))?,
            Status::Lost => writeln!(
                self.out,
                "seq={seq} LOST: the server dropped it ({})",
                times(r)
            )?,
            Status::Timeout => {
                // The phase it was in, not whether this ping timed a handshake: on a
                // persistent connection the handshake was an earlier ping's.
                let what = match (r.phase, r.connect) {
                    (Phase::Connect, _) => "no answer to the handshake".to_string(),
                    (Phase::Echo, Some(c)) => {
                        format!("connected in {:.3} ms, but no echo", ms(c))
                    }
                    (Phase::Echo, None) => "no echo on the open connection".to_string(),
                };
                writeln!(
                    self.out,
                    "seq={seq} timeout: {what} within {} ms",
                    cfg.timeout.as_millis()
                )?
            }
            Status::Refused => writeln!(
                self.out,
                "seq={seq} refused: {target} answered RST (nothing listens on that port)"
            )?,
            Status::Icmp(rep) => {
                let d = rep.describe();
                let when = match rep.phase {
                    crate::icmp::Phase::Connect => "",
                    crate::icmp::Phase::Echo => ", while waiting for the echo",
                };
                writeln!(
                    self.out,
                    "seq={seq} From {}: {} (ICMP{} type {} code {}) after {:.3} ms{when}",
                    rep.from,
                    d.title,
                    if rep.v6 { "v6" } else { "" },
                    rep.icmp_type,
                    rep.code,
                    ms(rep.after)
                )?
            }
            Status::Error(e) => writeln!(self.out, "seq={seq} error: {e}")?,
            Status::Interrupted => {
                writeln!(self.out, "seq={seq} interrupted before an answer came")?
            }
        }
        self.out.flush()
    }
}

impl<W: Write> PingSink for Human<W> {
    fn start_tagged(&mut self, cfg: &Run, src: Option<IpAddr>, _: Option<Tag>) -> io::Result<()> {
        let count = cfg.count.map_or("until interrupted".to_string(), |n| {
            format!("{n} ping{}", if n == 1 { "" } else { "s" })
        });
        let mode = match cfg.mode {
            Mode::Echo => "connection per ping",
            Mode::ConnectOnly => "handshake only",
            Mode::Persistent => "one connection",
            Mode::Syn => match cfg.flow {
                crate::probe::syn::Flow::Constant => "SYN probes, one flow",
                crate::probe::syn::Flow::PerProbe => "SYN probes, a source port per probe",
            },
        };
        let from = src.map(|s| format!(" from {s}")).unwrap_or_default();
        // -s: the requests' size and Don't Fragment.
        let size = cfg.shape.size.map_or(String::new(), |n| {
            format!(", {n}-byte requests (-M {})", cfg.shape.pmtud.name())
        });
        writeln!(
            self.out,
            "TCPPING {} ({}){from}: {count}, {mode}{size}, timeout {}",
            cfg.target_name,
            cfg.target,
            humantime::format_duration(cfg.timeout)
        )?;
        self.out.flush()
    }

    fn ping_tagged(&mut self, r: &PingResult, cfg: &Run, tag: Option<Tag>) -> io::Result<()> {
        if let Some(n) = &r.notice {
            self.notice(n, cfg, tag)?;
        }
        if self.quiet {
            return Ok(());
        }
        if let Some(t) = tag {
            write!(self.out, "{} ", t.target)?;
        }
        self.ping_line(r, cfg)
    }

    fn unmatched(&mut self, err: &IcmpError, why: Unmatched) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let d = err.describe();
        let q = err
            .quoted
            .map(|q| match q.seq {
                Some(seq) => format!(", quoting {} -> {} seq {seq}", q.src, q.dst),
                None => format!(", quoting {} -> {}", q.src, q.dst),
            })
            .unwrap_or_default();
        writeln!(
            self.out,
            "   not ours: From {}: {} (ICMP{} type {} code {}){q}: {}",
            err.from,
            d.title,
            if err.v6 { "v6" } else { "" },
            err.icmp_type,
            err.code,
            why.as_str()
        )
    }

    fn end(&mut self, end: &End, _: Option<Tag>) -> io::Result<()> {
        let (cfg, s, elapsed) = (end.run, end.stats, end.elapsed);
        let (unmatched, late) = (end.icmp.unmatched, end.icmp.late);
        let o = &mut self.out;
        writeln!(o, "\n--- {} tcpping-diag statistics ---", cfg.target_name)?;
        let mut parts = vec![
            count(s.sent, "ping sent", "pings sent"),
            count(s.replies, "reply", "replies"),
        ];
        for (n, one, many) in [
            (s.lost, "LOST", "LOST"),
            (s.timeouts, "timeout", "timeouts"),
            (s.refused, "refused", "refused"),
            (s.interrupted, "interrupted", "interrupted"),
        ] {
            if n > 0 {
                parts.push(count(n, one, many));
            }
        }
        if s.icmp + s.errors > 0 {
            parts.push(format!("+{}", count(s.icmp + s.errors, "error", "errors")));
        }
        parts.push(format!("{:.1}% loss", s.loss_pct()));
        parts.push(format!("time {} ms", elapsed.as_millis()));
        writeln!(o, "{}", parts.join(", "))?;
        if let (Some(min), Some(avg), Some(max), Some(mdev)) =
            (s.rtt.min(), s.rtt.avg(), s.rtt.max(), s.rtt.mdev())
        {
            let what = if cfg.mode.handshake_only() || s.handshake_only() {
                "connect"
            } else {
                "RTT"
            };
            writeln!(o, "Maximum {what} (in milliseconds) = {max:.3}")?;
            writeln!(o, "Minimum {what} (in milliseconds) = {min:.3}")?;
            writeln!(o, "Average {what} (in milliseconds) = {avg:.3}")?;
            let label = what.to_lowercase();
            writeln!(
                o,
                "{label} min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
            )?;
            let p = |q| s.rtt.percentile(q).unwrap_or(0.0);
            write!(
                o,
                "{label} p50/p90/p99 = {:.3}/{:.3}/{:.3} ms",
                p(50.0),
                p(90.0),
                p(99.0)
            )?;
            match s.jitter() {
                Some(j) => writeln!(o, ", jitter {j:.3} ms")?,
                None => writeln!(o)?,
            }
        }
        if !cfg.mode.handshake_only() && !s.handshake_only() {
            if let (Some(min), Some(avg), Some(max)) =
                (s.connect.min(), s.connect.avg(), s.connect.max())
            {
                writeln!(o, "connect min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms")?;
            }
        }
        writeln!(o, "Packet loss rate: {:.6}%", s.loss_pct())?;
        if !s.icmp_rows.is_empty() {
            writeln!(o, "ICMP errors:")?;
            for (k, n) in &s.icmp_rows {
                let d = crate::icmp::parse::describe(k.v6, k.icmp_type, k.code, k.mtu);
                writeln!(
                    o,
                    "  {n:>6}  {} (ICMP{} {}/{}) from {}",
                    d.title,
                    if k.v6 { "v6" } else { "" },
                    k.icmp_type,
                    k.code,
                    k.from
                )?;
            }
            if s.icmp_other > 0 {
                writeln!(o, "  {:>6}  others", s.icmp_other)?;
            }
        }
        if late > 0 {
            writeln!(
                o,
                "{} arrived for pings that had already ended",
                count(late, "ICMP error", "ICMP errors")
            )?;
        }
        if unmatched > 0 {
            writeln!(
                o,
                "{} none of our pings (other programs, ended pings, or spoofed: wrong ports or sequence numbers; -v shows them)",
                count(unmatched, "ICMP error quoted", "ICMP errors quoted")
            )?;
        }
        o.flush()
    }
}
