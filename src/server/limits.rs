//! What keeps a peer from flooding the log: accept failures retried with backoff and
//! summarised, and budgets of log lines. Pure bookkeeping over given instants, so it is
//! tested without sockets or clocks.

use std::time::{Duration, Instant};

/// First wait after a failed accept; it doubles with each failure in a row, up to the maximum.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// While accept keeps failing, one summary line this often.
pub const ACCEPT_SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// Accept failures in a row (out of file descriptors or memory: the connection stays in the
/// backlog, so the next accept fails the same way until something is freed). The first is
/// logged; the rest are counted, and summarised every `ACCEPT_SUMMARY_EVERY` and when
/// accepting works again.
#[derive(Debug)]
pub struct AcceptTrouble {
    /// The wait after the last failure; zero when the last accept worked.
    backoff: Duration,
    /// Failures not yet in a log line, since `since`.
    count: u64,
    since: Instant,
    error: String,
}

impl AcceptTrouble {
    pub fn new(now: Instant) -> Self {
        AcceptTrouble {
            backoff: Duration::ZERO,
            count: 0,
            since: now,
            error: String::new(),
        }
    }

    /// An accept failed with `error`: the line to log, if any, and how long to wait.
    pub fn failed(&mut self, now: Instant, error: &str) -> (Option<String>, Duration) {
        if self.backoff.is_zero() {
            self.backoff = ACCEPT_BACKOFF_MIN;
            self.count = 0;
            self.since = now;
            self.error = error.to_string();
            let line = format!(
                "accept failed: {error} (retrying after {} ms, then twice as long each time up to {} s; further failures are counted, not logged one by one)",
                ACCEPT_BACKOFF_MIN.as_millis(),
                ACCEPT_BACKOFF_MAX.as_secs()
            );
            return (Some(line), self.backoff);
        }
        self.count += 1;
        if self.error != error {
            self.error = error.to_string();
        }
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
        let mut line = None;
        if now.duration_since(self.since) >= ACCEPT_SUMMARY_EVERY {
            line = Some(self.summary(now));
            self.count = 0;
            self.since = now;
        }
        (line, self.backoff)
    }

    /// An accept worked: the line to log if it had been failing.
    pub fn succeeded(&mut self, now: Instant) -> Option<String> {
        if self.backoff.is_zero() {
            return None;
        }
        self.backoff = Duration::ZERO;
        Some(if self.count == 0 {
            "accepting again".to_string()
        } else {
            format!("{}; accepting again", self.summary(now))
        })
    }

    fn summary(&self, now: Instant) -> String {
        format!(
            "accept failed {} times in the last {:.1} s: {}",
            self.count,
            now.duration_since(self.since).as_secs_f64(),
            self.error
        )
    }
}

/// Log lines about one client (invalid or oversized requests, timeouts) per second; the rest
/// are counted and the count logged.
pub const CLIENT_LINES_PER_SEC: u32 = 5;
/// Log lines about clients and rejected connections, all together, per second.
pub const ALL_LINES_PER_SEC: u32 = 50;
/// Characters of a client's bytes shown in a log line (after escaping).
pub const SHOWN_CHARS: usize = 120;

/// At most `max` lines per second (in windows of a second from the first line); the others
/// are counted.
#[derive(Debug)]
pub struct LineBudget {
    max: u32,
    window: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LineBudget {
    pub fn new(max: u32) -> Self {
        LineBudget {
            max,
            window: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// May a line be logged at `now`? If so, how many were suppressed before it (to be
    /// said first).
    pub fn take(&mut self, now: Instant) -> Option<u64> {
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1))
        {
            self.window = Some(now);
            self.used = 0;
        }
        if self.used < self.max {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Lines suppressed and not reported yet (to say at the end); the count restarts.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// A client's bytes in a log line: escaped on one line, the first `SHOWN_CHARS` characters,
/// then `… (N bytes)` when there was more.
pub struct Shown<'a>(pub &'a [u8]);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        // Text escaped as Rust's {:?} does, bytes that are not UTF-8 as \xNN.
        let mut chars = self.0.utf8_chunks().flat_map(|chunk| {
            let invalid = chunk.invalid().iter().flat_map(|b| {
                let hex = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('?');
                ['\\', 'x', hex(b >> 4), hex(b & 0xf)]
            });
            chunk.valid().escape_debug().chain(invalid)
        });
        for c in chars.by_ref().take(SHOWN_CHARS) {
            f.write_char(c)?;
        }
        if chars.next().is_some() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_budget_per_second() {
        let t0 = Instant::now();
        let mut b = LineBudget::new(3);
        let took: Vec<Option<u64>> = (0..10).map(|_| b.take(t0)).collect();
        assert_eq!(took[..3], [Some(0); 3]);
        assert!(took[3..].iter().all(Option::is_none));
        // Within the same second: still nothing.
        assert_eq!(b.take(t0 + Duration::from_millis(999)), None);
        // The next second: a line, after saying that 8 were suppressed.
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(8));
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(b.take_suppressed(), 0);
        b.take(t0 + Duration::from_secs(1));
        assert_eq!(b.take(t0 + Duration::from_secs(1)), None);
        assert_eq!(b.take_suppressed(), 1);
    }

    #[test]
    fn shown_bytes_are_escaped_and_truncated() {
        assert_eq!(Shown(b"ping 1 x").to_string(), "ping 1 x");
        assert_eq!(Shown(b"a\n\x00\xff\t").to_string(), "a\\n\\0\\xff\\t");
        assert_eq!(Shown("café \u{1}".as_bytes()).to_string(), "café \\u{1}");
        // A UTF-8 sequence cut short is shown byte by byte.
        assert_eq!(Shown(b"\xc3x\xe2\x82").to_string(), "\\xc3x\\xe2\\x82");
        assert_eq!(
            Shown(&[b'x'; SHOWN_CHARS]).to_string(),
            "x".repeat(SHOWN_CHARS)
        );
        let long = Shown(&[b'x'; 1000]).to_string();
        assert_eq!(long, format!("{}… (1000 bytes)", "x".repeat(SHOWN_CHARS)));
        // Escapes count as the characters they print: a line stays short whatever the bytes.
        let ctl = Shown(&[1u8; 1000]).to_string();
        assert!(ctl.starts_with("\\u{1}\\u{1}"), "{ctl}");
        assert_eq!(
            ctl.chars().count(),
            SHOWN_CHARS + "… (1000 bytes)".chars().count()
        );
    }

    const EMFILE: &str = "Too many open files";

    #[test]
    fn accept_failures_back_off_and_are_summarised() {
        let t0 = Instant::now();
        let mut a = AcceptTrouble::new(t0);
        assert_eq!(a.succeeded(t0), None, "nothing to say when all is well");
        let (line, wait) = a.failed(t0, EMFILE);
        assert!(line
            .unwrap()
            .starts_with("accept failed: Too many open files (retrying"));
        assert_eq!(wait, ACCEPT_BACKOFF_MIN);
        // Failing for a minute, at the pace of the backoff: a line every 5 s, not per failure.
        let mut now = t0 + wait;
        let mut lines = Vec::new();
        let mut waits = Vec::new();
        while now < t0 + Duration::from_secs(60) {
            let (line, wait) = a.failed(now, EMFILE);
            lines.extend(line);
            waits.push(wait);
            now += wait;
        }
        assert_eq!(
            &waits[..7],
            [20, 40, 80, 160, 320, 640, 1000].map(Duration::from_millis)
        );
        assert!(waits.iter().all(|&w| w <= ACCEPT_BACKOFF_MAX));
        assert!((11..=12).contains(&lines.len()), "{lines:?}");
        // 11 failures in the first 5.3 s (waits of 10 ms to 1 s), then one a second.
        assert!(
            lines[0].starts_with("accept failed 11 times in the last 5.3 s"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("accept failed 5 times in the last 5.0 s"),
            "{}",
            lines[1]
        );
        assert!(lines.iter().all(|l| l.ends_with(": Too many open files")));
        let last = a.succeeded(now).unwrap();
        assert!(
            last.ends_with(": Too many open files; accepting again"),
            "{last}"
        );
        assert_eq!(a.succeeded(now), None);
        // A new run of failures starts with a full line and the shortest wait again.
        let (line, wait) = a.failed(now, "Cannot allocate memory");
        assert!(line
            .unwrap()
            .starts_with("accept failed: Cannot allocate memory"));
        assert_eq!(wait, ACCEPT_BACKOFF_MIN);
        assert_eq!(a.succeeded(now).as_deref(), Some("accepting again"));
    }
}
