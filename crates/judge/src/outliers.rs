//! Cleaning before any test: NaN strategy, then (optionally) IQR outlier
//! removal with Kayenta's percentile-widened fences.

use super::config::{NanStrategy, OutlierConfig};

/// What cleaning removed from one side, reported so users see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub nan: usize,
    pub outliers: usize,
}

/// Applies the NaN strategy, then IQR removal; returns the kept values.
pub fn clean(values: &[f64], nan: NanStrategy, outliers: OutlierConfig) -> (Vec<f64>, Removed) {
    let mut removed = Removed::default();
    let mut kept: Vec<f64> = Vec::with_capacity(values.len());
    for &v in values {
        if v.is_nan() {
            match nan {
                NanStrategy::Remove => removed.nan += 1,
                NanStrategy::Replace => kept.push(0.0),
            }
        } else {
            kept.push(v);
        }
    }
    if outliers.enabled && kept.len() >= 4 {
        let mut sorted = kept.clone();
        sorted.sort_by(f64::total_cmp);
        let q1 = quantile_sorted(&sorted, 0.25);
        let q3 = quantile_sorted(&sorted, 0.75);
        let iqr = q3 - q1;
        // Kayenta's fences: the IQR rule widened to the 1st/99th
        // percentiles, so a value between them is never removed.
        let (p1, p99) = (
            quantile_sorted(&sorted, 0.01),
            quantile_sorted(&sorted, 0.99),
        );
        let lo = (q1 - outliers.factor * iqr).min(p1);
        let hi = (q3 + outliers.factor * iqr).max(p99);
        let before = kept.len();
        kept.retain(|v| *v >= lo && *v <= hi);
        removed.outliers = before - kept.len();
    }
    (kept, removed)
}

/// Linear-interpolated quantile (numpy's default) of a sorted, non-empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (sorted[lo], sorted[hi.min(sorted.len() - 1)]);
    a + (b - a) * (pos - lo as f64)
}
