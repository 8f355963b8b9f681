//! A fixed-bucket histogram of durations on atomics: one `fetch_add` per
//! bucket hit, count and sum, no lock (prometheus-client's own histogram
//! takes a write lock per observation). Read at scrape time; a scrape that
//! races an observation may see the count one ahead of the buckets, which
//! Prometheus tolerates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in nanoseconds, ascending; `+Inf` is implied.
pub type Bounds = &'static [u64];

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Gateway overhead and plugin calls: 5 µs to 1 s, dense below a few ms so
/// p50 and p99 of a sub-millisecond overhead can be read (a quantile is
/// interpolated inside one bucket; these are at most 2x apart).
pub const FINE: Bounds = &[
    5 * US,
    10 * US,
    20 * US,
    35 * US,
    50 * US,
    75 * US,
    100 * US,
    150 * US,
    200 * US,
    300 * US,
    500 * US,
    750 * US,
    MS,
    3 * MS / 2,
    2 * MS,
    3 * MS,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    S,
];

/// Whole requests, upstream calls and time to first token: 1 ms to 2 min.
pub const COARSE: Bounds = &[
    MS,
    5 * MS / 2,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    S,
    5 * S / 2,
    5 * S,
    10 * S,
    30 * S,
    60 * S,
    120 * S,
];

/// Durations observed against [`Bounds`].
#[derive(Debug)]
pub struct Histogram {
    bounds: Bounds,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// What a scrape reads from a [`Histogram`], in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sum: f64,
    pub count: u64,
    /// `(upper bound, observations in this bucket only)`, without `+Inf`
    /// (prometheus-client's encoder accumulates them).
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Bounds are few (≤ 23) and sorted: a binary search.
        let i = self.bounds.partition_point(|&b| b < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        let buckets = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(&b, n)| (b as f64 / 1e9, n.load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let h = Histogram::new(&[10, 100]);
        for ns in [1, 10, 11, 100, 101, 5000] {
            h.observe(Duration::from_nanos(ns));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        assert_eq!(s.buckets, vec![(10e-9, 2), (100e-9, 2)]);
        assert!((s.sum - 5223e-9).abs() < 1e-15);
    }

    #[test]
    fn bounds_ascend() {
        for b in [FINE, COARSE] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
