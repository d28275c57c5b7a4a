//! A small mergeable histogram of times: logarithmic bins, 16 per octave (each bin 4.4 %
//! wide, so a percentile read from it is within 2.2 % of a sample), stored sparsely. Bins
//! start at 1 µs; smaller times share the first. Exact min and max are kept
//! ([`Extremes`]), and every percentile is clamped to them.
//!
//! Not a [`crate::stats::Series`]: the report reads times back from event files, so its
//! histograms must merge (a target's files, a bucket's samples) and give the same figures
//! however the samples were split, in memory bounded by the bins.
//!
//! Memory is bounded whatever is recorded: at most one entry per occupied bin, and times
//! from 1 µs to an hour span 512 bins. A bucket of similar times uses a handful.

use crate::stats::Extremes;

/// Bins per octave.
const PER_OCTAVE: f64 = 16.0;
/// The last bin: about 1.2 hours in µs (2^32 µs); larger values go there.
const LAST_BIN: u16 = 32 * 16;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogHist {
    /// (bin, count), sorted by bin.
    bins: Vec<(u16, u32)>,
    extremes: Extremes<f64>,
}

fn bin_of(ms: f64) -> u16 {
    let us = ms * 1e3;
    if us.is_nan() || us <= 1.0 {
        return 0;
    }
    ((us.log2() * PER_OCTAVE).floor() as u64).min(u64::from(LAST_BIN)) as u16
}

/// The geometric middle of a bin, in ms.
fn value_of(bin: u16) -> f64 {
    2f64.powf((f64::from(bin) + 0.5) / PER_OCTAVE) / 1e3
}

impl LogHist {
    /// Record a time in ms (negative and NaN are ignored).
    pub fn record(&mut self, ms: f64) {
        if ms.is_nan() || ms < 0.0 {
            return;
        }
        let b = bin_of(ms);
        match self.bins.binary_search_by_key(&b, |e| e.0) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(1),
            Err(i) => self.bins.insert(i, (b, 1)),
        }
        self.extremes.record(ms);
    }

    /// Add every sample of `other`.
    pub fn merge(&mut self, other: &LogHist) {
        if other.count() == 0 {
            return;
        }
        if self.count() == 0 {
            *self = other.clone();
            return;
        }
        let mut out = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push((x.0, x.1.saturating_add(y.1)));
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.0 < y.0 => out.push(*a.next().expect("peeked")),
                (Some(_), Some(_)) | (None, Some(_)) => out.push(*b.next().expect("peeked")),
                (Some(_), None) => out.push(*a.next().expect("peeked")),
                (None, None) => break,
            }
        }
        self.bins = out;
        self.extremes.merge(&other.extremes);
    }

    pub fn count(&self) -> u64 {
        self.extremes.count()
    }
    pub fn min(&self) -> Option<f64> {
        self.extremes.min()
    }
    pub fn max(&self) -> Option<f64> {
        self.extremes.max()
    }

    /// Percentile `q` (0..=100) by nearest rank, in ms: the middle of the bin holding that
    /// rank, clamped to [min, max] (so p0 and p100 are exact).
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let (min, max) = self.extremes.range()?;
        if q <= 0.0 {
            return Some(min);
        }
        if q >= 100.0 {
            return Some(max);
        }
        let rank = ((q / 100.0) * self.count() as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for &(b, c) in &self.bins {
            seen += u64::from(c);
            if seen >= rank {
                return Some(value_of(b).clamp(min, max));
            }
        }
        Some(max)
    }

    /// Occupied bins (bounds the memory a histogram holds).
    pub fn occupied(&self) -> usize {
        self.bins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_a_bin_of_the_exact_ones() {
        let mut h = LogHist::default();
        let xs: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 0.01).collect();
        for &x in &xs {
            h.record(x);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.min(), Some(0.01));
        assert_eq!(h.max(), Some(10.0));
        for q in [1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0] {
            let exact = xs[(q / 100.0 * 1000.0_f64).ceil() as usize - 1];
            let got = h.percentile(q).unwrap();
            assert!(
                (got / exact - 1.0).abs() < 0.045,
                "p{q}: {got} vs exact {exact}"
            );
        }
        assert_eq!(h.percentile(0.0), Some(0.01));
        assert_eq!(h.percentile(100.0), Some(10.0));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let mut h = LogHist::default();
        h.record(0.083);
        for q in [0.0, 5.0, 50.0, 95.0, 100.0] {
            assert_eq!(h.percentile(q), Some(0.083), "p{q}");
        }
        assert_eq!(LogHist::default().percentile(50.0), None);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (LogHist::default(), LogHist::default(), LogHist::default());
        for i in 0..500 {
            let x = 0.02 + f64::from(i % 37) * 0.37;
            if i % 3 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a, all);
        let mut empty = LogHist::default();
        empty.merge(&all);
        assert_eq!(empty, all);
    }

    #[test]
    fn memory_is_bounded_by_the_bins() {
        let mut h = LogHist::default();
        let mut x = 1e-4;
        while x < 1e8 {
            h.record(x);
            x *= 1.01;
        }
        h.record(f64::MAX);
        h.record(f64::NAN);
        h.record(-1.0);
        assert!(
            h.occupied() <= usize::from(LAST_BIN) + 1,
            "{}",
            h.occupied()
        );
        assert_eq!(h.max(), Some(f64::MAX));
    }
}
