//! When each target's probes leave: a timer heap of next-send times, first sends spread over
//! one interval so that many targets do not send in a burst, and retry times for names
//! that do not resolve. Pure: no clock reads, tested without a network.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Offset of the first probe of target `i` of `n` started together: evenly over one
/// interval (target 0 at once).
pub fn spread(i: usize, n: usize, interval: Duration) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let i = (i % n) as u128;
    Duration::from_nanos((interval.as_nanos() * i / n as u128) as u64)
}

/// Offset of the first probe of a target added while others run (a re-read file): a place
/// in the interval fixed by its name (FNV-1a), so that targets added together spread out
/// too, and the same target lands at the same place every time.
pub fn offset_of(name: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Duration::from_nanos(((interval.as_nanos() * u128::from(h >> 32)) >> 32) as u64)
}

/// First retry of a name that did not resolve.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Wait before the next try after `failures` failed ones (1 or more): 1 s, doubling, at
/// most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    (RETRY_FIRST * (1u32 << shift)).min(RETRY_MAX)
}

/// The next due time of a target sending every `interval` from `due`: the next point of
/// its grid after `now`'s missed ones are skipped (a target whose probe had to wait long is
/// not made to catch up with a burst).
pub fn next_due(due: Instant, interval: Duration, now: Instant) -> Instant {
    if interval.is_zero() {
        return now;
    }
    let next = due + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(next).as_nanos() / interval.as_nanos();
    next + Duration::from_nanos(((behind + 1) * interval.as_nanos()) as u64)
}

/// A timer: (when, slot, generation). A slot reused by another target has another
/// generation, so a stale entry is recognised and skipped when it comes out.
pub type Timer = (Instant, usize, u32);

/// A min-heap of timers.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    pub fn push(&mut self, at: Instant, slot: usize, generation: u32) {
        self.heap.push(Reverse((at, slot, generation)));
    }

    /// The earliest time.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.0)
    }

    /// Take the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        if self.next()? <= now {
            self.heap.pop().map(|Reverse(t)| t)
        } else {
            None
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sends_are_spread_evenly_over_the_interval() {
        let i = Duration::from_secs(1);
        let offs: Vec<Duration> = (0..4).map(|k| spread(k, 4, i)).collect();
        assert_eq!(
            offs,
            [0, 250, 500, 750].map(Duration::from_millis).to_vec(),
            "4 targets"
        );
        // 10,000 targets: 100 µs apart, the last one before the interval ends.
        assert_eq!(spread(1, 10_000, i), Duration::from_micros(100));
        assert!(spread(9_999, 10_000, i) < i);
        assert_eq!(spread(0, 0, i), Duration::ZERO);
        assert_eq!(spread(3, 5, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn added_targets_land_within_the_interval_at_a_place_fixed_by_their_name() {
        let i = Duration::from_secs(2);
        let offs: Vec<Duration> = (0..1000)
            .map(|k| offset_of(&format!("10.0.{}.{}:443", k / 256, k % 256), i))
            .collect();
        assert!(offs.iter().all(|&o| o < i));
        assert_eq!(offset_of("a:1", i), offset_of("a:1", i));
        // Spread, not bunched: every tenth of the interval gets some.
        for tenth in 0..10 {
            let lo = i * tenth / 10;
            let hi = i * (tenth + 1) / 10;
            let n = offs.iter().filter(|&&o| o >= lo && o < hi).count();
            assert!((50..=150).contains(&n), "tenth {tenth}: {n} of 1000");
        }
    }

    #[test]
    fn retries_back_off_to_five_minutes() {
        let secs: Vec<u64> = (1..=12).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(0), RETRY_FIRST);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn the_grid_is_kept_and_missed_points_are_skipped() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // On time: the next point of the grid.
        assert_eq!(next_due(t0, s, t0 + Duration::from_millis(3)), t0 + s);
        // 2.5 intervals late: the next point after now, not three at once.
        assert_eq!(next_due(t0, s, t0 + s * 5 / 2), t0 + s * 3);
        // Exactly on a grid point: the one after it.
        assert_eq!(next_due(t0, s, t0 + s * 2), t0 + s * 3);
        // Back to back (-i 0): now.
        let now = t0 + Duration::from_millis(7);
        assert_eq!(next_due(t0, Duration::ZERO, now), now);
    }

    #[test]
    fn timers_come_out_in_time_order_when_due() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Timers::default();
        t.push(t0 + ms(30), 3, 0);
        t.push(t0 + ms(10), 1, 0);
        t.push(t0 + ms(20), 2, 7);
        assert_eq!(t.next(), Some(t0 + ms(10)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + ms(25)), Some((t0 + ms(10), 1, 0)));
        assert_eq!(t.pop_due(t0 + ms(25)), Some((t0 + ms(20), 2, 7)));
        assert_eq!(t.pop_due(t0 + ms(25)), None);
        assert_eq!(t.len(), 1);
    }
}
