//! Two-sided Mann-Whitney U test, normal approximation with tie and
//! continuity correction: the same numbers as scipy's
//! `mannwhitneyu(x, y, method="asymptotic", use_continuity=True)`.
//! Hand-written (about 40 lines) because no maintained Rust crate offers the
//! tie-corrected asymptotic test, and we need the tie-corrected variance for
//! the Hodges-Lehmann interval too.

use statrs::function::erf::erfc;

/// Rank statistics of canary (`x`) vs baseline (`y`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the canary: #(x > y) + ½·#(x = y).
    pub u: f64,
    /// Tie-corrected standard deviation of U under H0.
    pub sigma: f64,
    /// Continuity-corrected z, signed: positive when the canary ranks
    /// higher (U > nm/2). |z| = max(0, |U - nm/2| - ½)/σ.
    pub z: f64,
    pub p_value: f64,
}

/// Computes U, its tie-corrected sd and the two-sided p-value.
/// Both sides must be non-empty and NaN-free (the caller cleans them).
pub fn mann_whitney(x: &[f64], y: &[f64]) -> MannWhitney {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Mid-ranks for ties; the tie term Σ(t³ - t) shrinks the variance.
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        let mid_rank = (i + j + 1) as f64 / 2.0;
        let in_x = pooled[i..j].iter().filter(|p| p.1).count() as f64;
        rank_sum_x += in_x * mid_rank;
        tie_term += t * t * t - t;
        i = j;
    }
    let n = n1 + n2;
    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let sigma = tie_corrected_sigma(n1, n2, tie_term);
    let mu = n1 * n2 / 2.0;
    if sigma <= 0.0 || n < 2.0 {
        // All values equal: no evidence of any difference.
        return MannWhitney {
            u,
            sigma: 0.0,
            z: 0.0,
            p_value: 1.0,
        };
    }
    // scipy's statistic is (|U - μ| - ½)/σ, negative when |U - μ| < ½ (its
    // p-value is then clipped to 1); with the magnitude floored at 0 the
    // p-value is the same and the sign can say which side ranks higher.
    let magnitude = ((u - mu).abs() - 0.5).max(0.0) / sigma;
    let p_value = (2.0 * normal_sf(magnitude)).clamp(0.0, 1.0);
    let z = if u < mu { -magnitude } else { magnitude };
    MannWhitney {
        u,
        sigma,
        z,
        p_value,
    }
}

/// sd of U under H0 with ties: nm/12 · ((N+1) - Σ(t³-t)/(N(N-1))).
pub fn tie_corrected_sigma(n1: f64, n2: f64, tie_term: f64) -> f64 {
    let n = n1 + n2;
    if n < 2.0 {
        return 0.0;
    }
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    var.max(0.0).sqrt()
}

/// Upper tail of the standard normal, accurate far into the tail.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// z such that P(|Z| <= z) = confidence.
pub fn two_sided_z(confidence: f64) -> f64 {
    std::f64::consts::SQRT_2 * statrs::function::erf::erf_inv(confidence)
}
