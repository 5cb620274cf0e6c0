//! Rate metrics (errors / requests) judged on pooled counts with the exact
//! conditional test for a ratio of two Poisson rates: given x = x_c + x_b
//! events, x_c ~ Binomial(x, n_c / (n_c + n_b)) when both rates are equal.
//! Exact, so 0/1/2 events are judged on their evidence (kayenta #426):
//! 3/100 vs 0/10,000 is significant; 2/1,000 vs 0/50 is not.
//! Counts may be non-integer (Prometheus `increase()`); the regularized
//! incomplete beta gives the continuous extension of the binomial tail.

use statrs::function::beta::checked_beta_reg;

use super::config::Direction;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateTest {
    pub canary_events: f64,
    pub canary_exposure: f64,
    pub baseline_events: f64,
    pub baseline_exposure: f64,
    /// One-sided p-value that the canary rate is higher.
    pub p_higher: f64,
    /// One-sided p-value that the canary rate is lower.
    pub p_lower: f64,
    /// p-value for the bad direction(s) (Bonferroni ×2 for `either`).
    pub p_value: f64,
    /// Clopper-Pearson interval of the rate ratio at `confidence`; `None` = unbounded.
    pub ratio_lower: Option<f64>,
    pub ratio_upper: Option<f64>,
}

/// I_x(a, b), or `None` where statrs cannot evaluate it (extreme counts).
fn beta_tail(a: f64, b: f64, x: f64) -> Option<f64> {
    checked_beta_reg(a, b, x).ok().filter(|p| p.is_finite())
}

/// The x with I_x(a, b) = p, by bisection. statrs' `inv_beta_reg` (AS 64
/// Newton iteration) never returns for some extreme arguments; bisection
/// always ends, and 80 halvings of [0, 1] are well below f64 resolution for
/// the proportions a rate test sees.
fn beta_quantile(a: f64, b: f64, p: f64) -> Option<f64> {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if beta_tail(a, b, mid)? < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

/// Both exposures must be > 0. `None` when the counts are beyond what the
/// incomplete beta function can evaluate (e.g. 1e300 events): the caller
/// reports that as an Error rather than a made-up p-value.
pub fn rate_test(
    canary_events: f64,
    canary_exposure: f64,
    baseline_events: f64,
    baseline_exposure: f64,
    direction: Direction,
    confidence: f64,
) -> Option<RateTest> {
    let (xc, xb) = (canary_events, baseline_events);
    let pi0 = canary_exposure / (canary_exposure + baseline_exposure);
    // P(X >= xc) = I_pi0(xc, xb + 1); P(X <= xc) = I_(1-pi0)(xb, xc + 1).
    let p_higher: f64 = if xc > 0.0 {
        beta_tail(xc, xb + 1.0, pi0)?
    } else {
        1.0
    };
    let p_lower = if xb > 0.0 {
        beta_tail(xb, xc + 1.0, 1.0 - pi0)?
    } else {
        1.0
    };
    let p_value = match direction {
        Direction::Increase => p_higher,
        Direction::Decrease => p_lower,
        Direction::Either => (2.0 * p_higher.min(p_lower)).min(1.0),
    };

    // Clopper-Pearson for pi = share of events in the canary, mapped to the
    // rate ratio pi/(1-pi) · n_b/n_c.
    let alpha = 1.0 - confidence;
    let exposure_ratio = baseline_exposure / canary_exposure;
    let to_ratio = |pi: f64| pi / (1.0 - pi) * exposure_ratio;
    let ratio_lower = if xc > 0.0 {
        Some(to_ratio(beta_quantile(xc, xb + 1.0, alpha / 2.0)?))
    } else {
        Some(0.0)
    };
    let ratio_upper = if xb > 0.0 {
        Some(to_ratio(beta_quantile(xc + 1.0, xb, 1.0 - alpha / 2.0)?))
    } else {
        None
    };
    Some(RateTest {
        canary_events: xc,
        canary_exposure,
        baseline_events: xb,
        baseline_exposure,
        p_higher,
        p_lower,
        p_value,
        ratio_lower,
        ratio_upper,
    })
}
