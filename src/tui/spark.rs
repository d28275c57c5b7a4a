//! Recent round-trip times kept per row in a bounded ring, and drawn as a one-line sparkline
//! of block characters (a lost probe is a `×`). Memory stays flat however long the view runs.

use std::collections::VecDeque;

/// Samples kept per row unless the caller says otherwise.
pub const RECENT: usize = 64;

/// The last `cap` outcomes of a row: an RTT in milliseconds, or None for a lost probe.
#[derive(Clone, Debug, PartialEq)]
pub struct RttRing {
    buf: VecDeque<Option<f64>>,
    cap: usize,
}

impl Default for RttRing {
    fn default() -> Self {
        RttRing::new(RECENT)
    }
}

impl RttRing {
    pub fn new(cap: usize) -> RttRing {
        let cap = cap.max(1);
        RttRing {
            buf: VecDeque::with_capacity(cap),
            cap,
        }
    }

    pub fn push(&mut self, sample: Option<f64>) {
        if self.buf.len() == self.cap {
            self.buf.pop_front();
        }
        self.buf.push_back(sample);
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Option<f64>> + ExactSizeIterator + '_ {
        self.buf.iter().copied()
    }

    /// Lost samples in the ring.
    pub fn lost(&self) -> usize {
        self.buf.iter().filter(|s| s.is_none()).count()
    }

    /// The last `width` samples as block characters, scaled between their minimum and maximum.
    pub fn sparkline(&self, width: usize) -> String {
        sparkline(
            self.buf
                .iter()
                .copied()
                .skip(self.len().saturating_sub(width)),
        )
    }
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Block characters for `samples` (None: `×`), scaled between their minimum and maximum.
pub fn sparkline(samples: impl Iterator<Item = Option<f64>> + Clone) -> String {
    let (lo, hi) = samples
        .clone()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    let span = hi - lo;
    samples
        .map(|s| match s {
            None => '×',
            Some(_) if span <= 0.0 || !span.is_finite() => BARS[0],
            Some(x) => {
                let i = ((x - lo) / span * (BARS.len() - 1) as f64).round() as usize;
                BARS[i.min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_bounded_and_keeps_the_newest() {
        let mut r = RttRing::new(3);
        for x in 1..=5 {
            r.push(Some(f64::from(x)));
        }
        r.push(None);
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().collect::<Vec<_>>(), [Some(4.0), Some(5.0), None]);
        assert_eq!(r.lost(), 1);
    }

    #[test]
    fn sparkline_scales_between_min_and_max_and_marks_losses() {
        let s = sparkline([Some(1.0), Some(8.0), None, Some(4.5)].into_iter());
        assert_eq!(s, "▁█×▅");
        assert_eq!(sparkline([Some(3.0), Some(3.0)].into_iter()), "▁▁");
        let mut r = RttRing::new(10);
        (0..10).for_each(|x| r.push(Some(f64::from(x))));
        assert_eq!(r.sparkline(4).chars().count(), 4);
    }
}
