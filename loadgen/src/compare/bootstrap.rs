//! The B/A ratio of a figure measured in paired windows, with a percentile
//! bootstrap confidence interval over the pairs.
//!
//! Each pair is one A window and the B window right after it; resampling
//! whole pairs keeps the drift of a noisy machine (which both windows of a
//! pair share) out of the interval. The estimator is the ratio of the means,
//! `mean(B) / mean(A)`, both for the point estimate and for every resample.
//! The RNG is seeded, so the same windows always give the same interval.

use serde::{Deserialize, Serialize};

/// Resamples drawn for an interval.
pub const RESAMPLES: usize = 2000;
/// Two-sided confidence of the interval.
pub const CONFIDENCE: f64 = 0.95;

/// `{"ratio", "ci_low", "ci_high"}` in the JSON report; `null` fields when
/// A's figure was zero in every pair (no ratio exists).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub ratio: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

impl Ratio {
    pub const NONE: Ratio = Ratio {
        ratio: None,
        ci_low: None,
        ci_high: None,
    };
}

fn mean_ratio(pairs: &[(f64, f64)], picks: impl Iterator<Item = usize>) -> Option<f64> {
    let (mut a, mut b, mut n) = (0.0, 0.0, 0usize);
    for i in picks {
        let (x, y) = pairs[i];
        a += x;
        b += y;
        n += 1;
    }
    if n == 0 || a <= 0.0 {
        return None;
    }
    let r = b / a;
    r.is_finite().then_some(r)
}

/// The value below which a share `q` of the sorted values lie (linear
/// interpolation between closest ranks, as numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// The ratio of `pairs` (A, B) with its bootstrap interval at `confidence`.
pub fn ratio_ci(pairs: &[(f64, f64)], resamples: usize, confidence: f64, seed: u64) -> Ratio {
    let Some(ratio) = mean_ratio(pairs, 0..pairs.len()) else {
        return Ratio::NONE;
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = pairs.len();
    let mut draws: Vec<f64> = (0..resamples)
        .filter_map(|_| mean_ratio(pairs, (0..n).map(|_| rng.usize(..n))))
        .collect();
    draws.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Ratio {
        ratio: Some(ratio),
        ci_low: quantile(&draws, tail),
        ci_high: quantile(&draws, 1.0 - tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&v, 0.125), Some(1.5));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn a_constant_ratio_has_a_zero_width_interval() {
        let pairs: Vec<(f64, f64)> = (1..=10).map(|i| (i as f64, 1.25 * i as f64)).collect();
        let r = ratio_ci(&pairs, RESAMPLES, CONFIDENCE, 7);
        let (ratio, lo, hi) = (r.ratio.unwrap(), r.ci_low.unwrap(), r.ci_high.unwrap());
        assert!((ratio - 1.25).abs() < 1e-12);
        assert!(
            (lo - 1.25).abs() < 1e-12 && (hi - 1.25).abs() < 1e-12,
            "{r:?}"
        );
    }

    #[test]
    fn the_ratio_is_of_the_means_and_the_interval_brackets_it() {
        let pairs = [(1.0, 1.0), (1.0, 3.0), (2.0, 2.0), (2.0, 6.0)];
        let r = ratio_ci(&pairs, RESAMPLES, CONFIDENCE, 1);
        assert_eq!(r.ratio, Some(2.0));
        let (lo, hi) = (r.ci_low.unwrap(), r.ci_high.unwrap());
        assert!(lo < 2.0 && 2.0 < hi, "{r:?}");
        // Every resample's ratio lies between the smallest and largest pair ratio.
        assert!(lo >= 1.0 && hi <= 3.0, "{r:?}");
    }

    #[test]
    fn seeded_and_deterministic() {
        let pairs: Vec<(f64, f64)> = (0..10)
            .map(|i| (10.0 + (i % 3) as f64, 11.0 + (i % 4) as f64))
            .collect();
        let a = ratio_ci(&pairs, RESAMPLES, CONFIDENCE, 42);
        let b = ratio_ci(&pairs, RESAMPLES, CONFIDENCE, 42);
        assert_eq!(a, b);
    }

    #[test]
    fn no_ratio_when_a_measured_nothing() {
        assert_eq!(ratio_ci(&[(0.0, 1.0)], 100, CONFIDENCE, 1), Ratio::NONE);
        assert_eq!(ratio_ci(&[], 100, CONFIDENCE, 1), Ratio::NONE);
    }

    /// The interval covers the true ratio about 95 % of the time: 400
    /// simulated comparisons of 10 pairs whose B is 1.2 × A times noise.
    #[test]
    fn covers_the_true_ratio_at_about_the_asked_rate() {
        let mut rng = fastrand::Rng::with_seed(2024);
        let truth = 1.2;
        let trials = 400;
        let mut covered = 0;
        let mut widths = Vec::new();
        for t in 0..trials {
            let pairs: Vec<(f64, f64)> = (0..10)
                .map(|_| {
                    // Shared drift per pair, and independent noise per window.
                    let drift = 1.0 + 0.5 * rng.f64();
                    let a = 100.0 * drift * (0.9 + 0.2 * rng.f64());
                    let b = truth * 100.0 * drift * (0.9 + 0.2 * rng.f64());
                    (a, b)
                })
                .collect();
            let r = ratio_ci(&pairs, 1000, CONFIDENCE, t);
            let (lo, hi) = (r.ci_low.unwrap(), r.ci_high.unwrap());
            if lo <= truth && truth <= hi {
                covered += 1;
            }
            widths.push(hi - lo);
        }
        let share = covered as f64 / trials as f64;
        // The percentile bootstrap runs a little narrow with 10 pairs.
        assert!((0.85..=0.99).contains(&share), "coverage {share}");
        let mean_width = widths.iter().sum::<f64>() / trials as f64;
        assert!(mean_width > 0.01 && mean_width < 0.2, "width {mean_width}");
    }
}
