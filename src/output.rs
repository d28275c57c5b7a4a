//! What the user sees: ping-style lines for people, NDJSON for programs.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::event::Run;
use crate::event::{self, ms, round3, unix_secs, Event, Labels, Verdict};
use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
use crate::probe::syn::AnswerKind;
use crate::probe::Mode;
use crate::probe::{IcmpTally, Notice, Phase, PingResult, Status};
use crate::stats::Stats;

/// How results are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Lines as ping writes them.
    Human,
    /// NDJSON events.
    Json,
}

/// In a run of many targets: the target an event is about (as typed) and its labels. JSON
/// events get `"target"` and `"labels"`; human lines start with the target.
#[derive(Clone, Copy, Debug)]
pub struct Tag<'a> {
    pub target: &'a str,
    pub labels: &'a [(String, String)],
}

impl<'a> Tag<'a> {
    fn labels(self) -> Labels<'a> {
        Labels(Cow::Borrowed(self.labels))
    }
}

fn probe_name(m: Mode) -> &'static str {
    if m == Mode::Syn {
        "syn"
    } else {
        "connect"
    }
}

/// The words of a notice about `name` (as typed).
pub fn notice_text(n: &Notice, name: &str, timeout: Duration) -> String {
    let now = "timing the handshake of its pings from now on, as --connect-only (--echo makes \
               such answers errors)";
    match n {
        Notice::NotEcho { saw: Some(saw) } => {
            format!("{name} does not speak the echo protocol: it sent \"{saw}\"; {now}")
        }
        Notice::NotEcho { saw: None } => format!(
            "{name} closed the connection after the request without answering: not an echo \
             server; {now}"
        ),
        Notice::NoEcho => format!(
            "{name} accepted the connection but sent nothing within {} ms: if it is not an \
             echo server, --connect-only or --syn time the handshake",
            timeout.as_millis()
        ),
    }
}

/// `n` and the word for it, singular or plural: "1 reply", "2 replies".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Writes events in the chosen format. Errors are write errors (a closed pipe).
pub struct Reporter<W: Write> {
    out: W,
    format: Format,
    mode: Mode,
    /// Only the start line (human) and the summary.
    quiet: bool,
}

impl<W: Write> Reporter<W> {
    /// `quiet`: only the start line (human) and the summary.
    pub fn new(out: W, format: Format, mode: Mode, quiet: bool) -> Self {
        Reporter {
            out,
            format,
            mode,
            quiet,
        }
    }

    /// The start of a run: ping's header line, or a `start` event (not with -q).
    pub fn start(&mut self, cfg: &Run, src: Option<IpAddr>) -> io::Result<()> {
        self.start_tagged(cfg, src, None)
    }

    /// `start`, of one of many targets.
    pub fn start_tagged(
        &mut self,
        cfg: &Run,
        src: Option<IpAddr>,
        tag: Option<Tag>,
    ) -> io::Result<()> {
        if self.format == Format::Json {
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
                ts: Some(unix_secs(SystemTime::now())),
            };
            Event::Start(ev).write_line(&mut self.out)?;
            return self.out.flush();
        }
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
        writeln!(
            self.out,
            "TCPPING {} ({}){from}: {count}, {mode}, timeout {}",
            cfg.target_name,
            cfg.target,
            humantime::format_duration(cfg.timeout)
        )?;
        self.out.flush()
    }

    pub fn ping(&mut self, r: &PingResult, cfg: &Run) -> io::Result<()> {
        self.ping_tagged(r, cfg, None)
    }

    /// `ping`, of one of many targets.
    pub fn ping_tagged(&mut self, r: &PingResult, cfg: &Run, tag: Option<Tag>) -> io::Result<()> {
        if let Some(n) = &r.notice {
            self.notice(r.seq, n, cfg, tag)?;
        }
        if self.quiet {
            return Ok(());
        }
        match self.format {
            Format::Json => self.ping_json(r, tag),
            Format::Human => {
                if let Some(t) = tag {
                    write!(self.out, "{} ", t.target)?;
                }
                self.ping_human(r, cfg)
            }
        }
    }

    /// What a ping found out about its target, once: a `notice` event, or a line (on
    /// stderr with -q, which keeps stdout to the start line and the summary).
    fn notice(&mut self, seq: u64, n: &Notice, cfg: &Run, tag: Option<Tag>) -> io::Result<()> {
        let name = tag.map_or(cfg.target_name, |t| t.target);
        let message = notice_text(n, name, cfg.timeout);
        match self.format {
            Format::Human if self.quiet => {
                eprintln!("tcpping-diag: note: {message}");
                Ok(())
            }
            Format::Human => {
                if let Some(t) = tag {
                    write!(self.out, "{} ", t.target)?;
                }
                writeln!(self.out, "note: {message}")?;
                self.out.flush()
            }
            Format::Json if self.quiet => Ok(()),
            Format::Json => {
                let (what, saw, now) = match n {
                    Notice::NotEcho { saw } => ("not_echo", saw.as_deref(), "connect-only"),
                    Notice::NoEcho => ("no_echo", None, "echo"),
                };
                let ev = event::Notice {
                    target: tag.map(|t| t.target),
                    labels: tag.map(Tag::labels),
                    seq,
                    what,
                    saw,
                    now,
                    message,
                };
                Event::Notice(ev).write_line(&mut self.out)?;
                self.out.flush()
            }
        }
    }

    fn ping_json(&mut self, r: &PingResult, tag: Option<Tag>) -> io::Result<()> {
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

    fn ping_human(&mut self, r: &PingResult, cfg: &Run) -> io::Result<()> {
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

    /// An ICMP error about none of our pings (shown with -v).
    pub fn unmatched(&mut self, err: &IcmpError, why: Unmatched) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let d = err.describe();
        match self.format {
            Format::Json => {
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
            Format::Human => {
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
        }
    }

    pub fn summary(
        &mut self,
        cfg: &Run,
        s: &Stats,
        icmp: IcmpTally,
        elapsed: Duration,
    ) -> io::Result<()> {
        self.summary_tagged(cfg, s, icmp, elapsed, None)
    }

    /// `summary`, of one of many targets.
    pub fn summary_tagged(
        &mut self,
        cfg: &Run,
        s: &Stats,
        icmp: IcmpTally,
        elapsed: Duration,
        tag: Option<Tag>,
    ) -> io::Result<()> {
        let (unmatched, late) = (icmp.unmatched, icmp.late);
        if self.format == Format::Json {
            return self.summary_json(cfg, s, unmatched, late, elapsed, tag);
        }
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

    fn summary_json(
        &mut self,
        cfg: &Run,
        s: &Stats,
        unmatched: u64,
        late: u64,
        elapsed: Duration,
        tag: Option<Tag>,
    ) -> io::Result<()> {
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
