//! Hodges-Lehmann shift estimate (median of all pairwise differences
//! canary - baseline) and its Moses/Bauer confidence interval, obtained by
//! inverting the rank-sum test with the normal approximation.
//!
//! Hand-written: it is a few selections over the n·m differences. We use
//! `select_nth_unstable` (O(nm)) instead of sorting (O(nm log nm)) because
//! the judge runs over thousands of metrics per interval.

use super::mann_whitney::two_sided_z;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HodgesLehmann {
    pub estimate: f64,
    /// `None` when the samples are too small for the interval to be bounded
    /// at this confidence (the interval is then (-inf, +inf)).
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Number of pairwise differences examined (n·m).
    pub comparisons: usize,
}

/// Rank k (1-based) of the lower bound among the sorted differences:
/// the smallest shift d with |U(d) - nm/2| - ½ <= z·σ, i.e.
/// `k = ceil(nm/2 - z·σ - ½)`. Returns `None` when k < 1.
pub fn ci_rank(n1: usize, n2: usize, sigma: f64, confidence: f64) -> Option<usize> {
    let nm = (n1 * n2) as f64;
    let k = (nm / 2.0 - two_sided_z(confidence) * sigma - 0.5).ceil();
    if k >= 1.0 { Some(k as usize) } else { None }
}

/// `sigma` is the tie-corrected sd of U from the Mann-Whitney test of the same samples.
pub fn hodges_lehmann(x: &[f64], y: &[f64], sigma: f64, confidence: f64) -> HodgesLehmann {
    let mut diffs: Vec<f64> = Vec::with_capacity(x.len() * y.len());
    for a in x {
        for b in y {
            diffs.push(a - b);
        }
    }
    let nm = diffs.len();
    if nm == 0 {
        return HodgesLehmann {
            estimate: f64::NAN,
            lower: None,
            upper: None,
            comparisons: 0,
        };
    }
    // One selection at the middle partitions the differences; the interval
    // ranks then lie strictly left (lower) or at/right (upper) of it, so the
    // other selections only scan half each.
    let mid = nm / 2;
    let hi = nth(&mut diffs, mid);
    let estimate = if nm % 2 == 1 {
        hi
    } else {
        // Every element left of `mid` is <= hi: the other middle value is their maximum.
        let lo = diffs[..mid]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    };
    let (lower, upper) = match ci_rank(x.len(), y.len(), sigma, confidence) {
        // k <= ceil(nm/2 - 1/2) because z·σ >= 0, so k - 1 < mid <= nm - k.
        Some(k) if k - 1 < mid && nm - k >= mid => {
            let lower = nth(&mut diffs[..mid], k - 1);
            let upper = if nm - k == mid {
                hi
            } else {
                nth(&mut diffs[mid + 1..], nm - k - mid - 1)
            };
            (Some(lower), Some(upper))
        }
        _ => (None, None),
    };
    HodgesLehmann {
        estimate,
        lower,
        upper,
        comparisons: nm,
    }
}

fn nth(v: &mut [f64], i: usize) -> f64 {
    *v.select_nth_unstable_by(i, f64::total_cmp).1
}
