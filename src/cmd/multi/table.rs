//! The closing table of a many-targets run: one line per target, as `fping -s` and
//! `mtr --report` print them. Pure formatting, tested without a network.

use crate::stats::Stats;

/// The header line.
pub fn header(width: usize) -> String {
    format!(
        "{:<width$} {:>7} {:>7} {:>6}  {:>8} {:>8} {:>8} {:>8}  {}",
        "TARGET",
        "SENT",
        "RECV",
        "LOSS%",
        "MIN ms",
        "AVG ms",
        "MAX ms",
        "P99 ms",
        "WHAT WENT WRONG"
    )
}

fn ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

/// What went wrong, most frequent first: counts of the verdicts other than replies, and
/// the most frequent ICMP error with its router.
pub fn problems(s: &Stats) -> String {
    let mut parts: Vec<(u64, String)> = [
        (s.lost, "LOST"),
        (s.timeouts, "timeout"),
        (s.refused, "refused"),
        (s.errors, "error"),
        (s.interrupted, "interrupted"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| (*n, format!("{n} {w}")))
    .collect();
    if s.icmp > 0 {
        let top = s
            .icmp_rows
            .iter()
            .max_by_key(|(k, n)| (**n, std::cmp::Reverse(*k)));
        let what = match top {
            Some((k, _)) => format!(
                "{} icmp ({}{}/{} from {}{})",
                s.icmp,
                if k.v6 { "v6 " } else { "" },
                k.icmp_type,
                k.code,
                k.from,
                if s.icmp_rows.len() + usize::from(s.icmp_other > 0) > 1 {
                    ", and others"
                } else {
                    ""
                }
            ),
            None => format!("{} icmp", s.icmp),
        };
        parts.push((s.icmp, what));
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    parts
        .into_iter()
        .map(|(_, p)| p)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One target's line; `note` replaces the numbers for a target that never started (a name
/// that did not resolve).
pub fn line(name: &str, width: usize, s: &Stats, note: Option<&str>) -> String {
    if let Some(note) = note {
        return format!(
            "{name:<width$} {:>7} {:>7} {:>6}  {note}",
            s.sent, s.replies, "-"
        );
    }
    let loss = if s.sent == 0 {
        "-".to_string()
    } else {
        format!("{:.1}", s.loss_pct())
    };
    format!(
        "{name:<width$} {:>7} {:>7} {:>6}  {:>8} {:>8} {:>8} {:>8}  {}",
        s.sent,
        s.replies,
        loss,
        ms(s.rtt.min()),
        ms(s.rtt.avg()),
        ms(s.rtt.max()),
        ms(s.rtt.percentile(99.0)),
        problems(s)
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::{IcmpReport, Phase, Source};
    use crate::probe::{PingResult, Status};
    use std::time::Duration;

    fn reply(ms: f64) -> PingResult {
        PingResult {
            rtt: Some(Duration::from_secs_f64(ms / 1e3)),
            ..PingResult::new(1, Status::Reply)
        }
    }

    fn icmp(code: u8, from: &str) -> PingResult {
        PingResult::new(
            1,
            Status::Icmp(IcmpReport {
                icmp_type: 3,
                code,
                v6: false,
                info: 0,
                from: from.parse().unwrap(),
                after: Duration::from_micros(300),
                phase: Phase::Connect,
                source: Source::Raw,
                extensions: None,
            }),
        )
    }

    #[test]
    fn a_healthy_target_and_a_rejected_one() {
        let mut ok = Stats::compact();
        for v in [0.1, 0.3, 0.2] {
            ok.record(&reply(v));
        }
        let w = 16;
        assert_eq!(
            line("10.77.2.2:12001", w, &ok, None),
            "10.77.2.2:12001        3       3    0.0     0.100    0.200    0.300    0.300"
        );
        let mut bad = Stats::compact();
        for _ in 0..3 {
            bad.record(&icmp(1, "10.77.1.1"));
        }
        bad.record(&PingResult::new(4, Status::Timeout));
        assert_eq!(
            line("10.77.2.2:12005", w, &bad, None),
            "10.77.2.2:12005        4       0  100.0         -        -        -        -  3 icmp (3/1 from 10.77.1.1), 1 timeout"
        );
        bad.record(&icmp(13, "10.77.1.9"));
        assert!(problems(&bad).starts_with("4 icmp (3/1 from 10.77.1.1, and others)"));
        let header = header(w);
        assert!(header.starts_with("TARGET           "), "{header}");
        assert_eq!(
            line(
                "nx.invalid:1",
                w,
                &Stats::compact(),
                Some("not resolved: no such host")
            ),
            "nx.invalid:1           0       0      -  not resolved: no such host"
        );
    }
}
