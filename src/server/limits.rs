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

#[cfg(test)]
mod tests {
    use super::*;

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
