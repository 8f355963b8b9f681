//! The statistics the runner and `eval compare` report: means, spread,
//! percentiles, a score histogram, a paired bootstrap confidence interval
//! and an exact sign test. Resampling uses a fixed seed, so the same two
//! runs always give the same interval (a CI gate must not flap).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bootstrap resamples: enough that the 2.5 % / 97.5 % quantiles move by
/// well under a score point between seeds for suites of 10-1000 cases.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
const SEED: u64 = 0x5e1c_e5ee_d000_0001;

pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (n - 1); 0 for a single value.
pub fn stddev(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    if xs.len() < 2 {
        return Some(0.0);
    }
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    Some(var.sqrt())
}

/// The `p`-th percentile (0-100), nearest-rank on sorted values.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

/// Counts of scores (0..=1) in ten bins of width 0.1; 1.0 goes in the last.
pub fn histogram(scores: &[f64]) -> [u32; 10] {
    let mut bins = [0u32; 10];
    for s in scores {
        let i = ((s.clamp(0.0, 1.0) * 10.0).floor() as usize).min(9);
        bins[i] += 1;
    }
    bins
}

/// A 95 % confidence interval of the mean of `deltas` (paired differences,
/// one per case) by percentile bootstrap: resample the cases with
/// replacement, take the mean each time, read the 2.5th and 97.5th
/// percentiles.
pub fn bootstrap_ci(deltas: &[f64]) -> Option<(f64, f64)> {
    if deltas.is_empty() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let n = deltas.len();
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| deltas[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at =
        |q: f64| means[((q * BOOTSTRAP_RESAMPLES as f64) as usize).min(BOOTSTRAP_RESAMPLES - 1)];
    Some((at(0.025), at(0.975)))
}

/// Exact two-sided sign test (McNemar's exact test on pass/fail pairs):
/// `better` cases flipped to pass, `worse` flipped to fail; the chance of a
/// split at least this uneven if flips were coin tosses. None without flips.
pub fn sign_test(better: u64, worse: u64) -> Option<f64> {
    let n = better + worse;
    if n == 0 {
        return None;
    }
    let k = better.min(worse);
    // P(X <= k) for X ~ Binomial(n, 1/2), in log space (n may be large).
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_c = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_c + ln_half_n).exp();
    }
    Some((2.0 * tail).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_percentiles() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[0.6, 0.8]), Some(0.7));
        let sd = stddev(&[0.6, 0.8, 0.6, 0.8]).unwrap();
        assert!((sd - 0.11547).abs() < 1e-4, "{sd}");
        assert_eq!(stddev(&[0.5]), Some(0.0));
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(50.0));
        assert_eq!(percentile(&xs, 95.0), Some(95.0));
        assert_eq!(
            histogram(&[0.0, 0.05, 0.95, 1.0, 0.5]),
            [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
        );
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_mean() {
        let deltas = [-0.3, -0.2, -0.25, -0.1, -0.3, 0.0, -0.2, -0.15];
        let (lo, hi) = bootstrap_ci(&deltas).unwrap();
        assert_eq!(bootstrap_ci(&deltas), Some((lo, hi)));
        let m = mean(&deltas).unwrap();
        assert!(lo < m && m < hi && hi < 0.0, "{lo} {m} {hi}");
        assert_eq!(bootstrap_ci(&[0.0, 0.0]), Some((0.0, 0.0)));
    }

    #[test]
    fn sign_test_matches_the_binomial() {
        assert_eq!(sign_test(0, 0), None);
        // 0 of 5 flips one way: 2 * 0.5^5.
        assert!((sign_test(0, 5).unwrap() - 0.0625).abs() < 1e-12);
        assert!((sign_test(3, 3).unwrap() - 1.0).abs() < 1e-12);
        assert!(sign_test(0, 12).unwrap() < 0.001);
    }
}
