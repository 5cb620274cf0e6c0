//! Rate metrics, sequentially: a mixture likelihood-ratio martingale for the
//! ratio of two Poisson rates, conditional on each step's events.
//!
//! In a step the canary sees x_c events over exposure n_c, the baseline x_b
//! over n_b. If the canary's rate is ρ times the baseline's, then given the
//! step's x = x_c + x_b events, x_c ~ Binomial(x, π(ρ)) with
//! π(ρ) = ρ·n_c / (ρ·n_c + n_b) — the exact conditional test of the fixed
//! mode, one step at a time. Against the null ρ = ρ₀ the likelihood ratio of
//! an alternative ρ₁ multiplies, step by step, into a nonnegative martingale
//! with mean 1; a fixed mixture over alternatives is one too, so by Ville's
//! inequality P(sup_t M_t ≥ 1/α) ≤ α. For the one-sided null ρ ≤ ρ₀ (with
//! ρ₁ > ρ₀) the ratio is a supermartingale (its expectation falls as the
//! true π falls below π(ρ₀)), so the bound holds for every rate the null
//! allows. ρ₀ is 1, or the metric's allowedIncrease (allowedDecrease):
//! a change the user allows is not evidence against the canary.
//!
//! Counts from Prometheus' `increase()` are not integers; the binomial
//! likelihood is used as is (the continuous extension the fixed mode's
//! incomplete beta also uses). The guarantee assumes each step's counts are
//! new events (increase over the step), not a sliding window that counts an
//! event at several steps.

use super::log_sum_exp;

/// Events and exposure of both sides in one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCounts {
    pub canary_events: f64,
    pub canary_exposure: f64,
    pub baseline_events: f64,
    pub baseline_exposure: f64,
}

/// ln(ρ₁/ρ₀) of the alternatives mixed, equal weights: from a 5% change to
/// a 50× one, so a 10× error rate and a 1.3× one are both bet on. The large
/// ratios come twice: a canary whose errors the baseline does not have at all
/// is the case that must fail in seconds, and with equal traffic each such
/// error can at most double the evidence, so every bit of weight counts.
const LOG_RATIOS: [f64; 12] = [
    0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 2.5, 4.0, 4.0,
];

/// ln of the mixture e-value after each step, against `rho0`, betting on a
/// canary rate above it (`higher`) or below it.
pub fn log_e_path(steps: &[StepCounts], rho0: f64, higher: bool) -> Vec<f64> {
    let sign = if higher { 1.0 } else { -1.0 };
    let ln_w = -(LOG_RATIOS.len() as f64).ln();
    let mut log_lr = [0.0_f64; LOG_RATIOS.len()];
    let mut path = Vec::with_capacity(steps.len());
    for s in steps {
        let events = s.canary_events + s.baseline_events;
        if s.canary_exposure > 0.0 && s.baseline_exposure > 0.0 && events > 0.0 {
            let share = |rho: f64| {
                rho * s.canary_exposure / (rho * s.canary_exposure + s.baseline_exposure)
            };
            let p0 = share(rho0);
            for (lr, d) in log_lr.iter_mut().zip(LOG_RATIOS) {
                let p1 = share(rho0 * (sign * d).exp());
                *lr += s.canary_events * (p1 / p0).ln()
                    + s.baseline_events * ((1.0 - p1) / (1.0 - p0)).ln();
            }
        }
        path.push(log_sum_exp(log_lr.iter().map(|l| ln_w + l)));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(xc: f64, xb: f64) -> StepCounts {
        StepCounts {
            canary_events: xc,
            canary_exposure: 100.0,
            baseline_events: xb,
            baseline_exposure: 100.0,
        }
    }

    #[test]
    fn no_events_is_no_evidence() {
        let path = log_e_path(&[step(0.0, 0.0); 5], 1.0, true);
        assert!(path.iter().all(|l| l.abs() < 1e-12), "{path:?}");
    }

    #[test]
    fn the_mean_of_the_martingale_is_one_under_the_null() {
        // One step with x = 4 events split Binomial(4, 1/2): E[M] = 1 exactly.
        let mut mean = 0.0;
        for k in 0..=4_u32 {
            let p = [1.0, 4.0, 6.0, 4.0, 1.0][k as usize] / 16.0;
            let l = log_e_path(&[step(f64::from(k), f64::from(4 - k))], 1.0, true)[0];
            mean += p * l.exp();
        }
        assert!((mean - 1.0).abs() < 1e-12, "{mean}");
    }

    #[test]
    fn errors_only_on_the_canary_grow_the_e_value_fast() {
        // 10% errors vs none at 10 requests a step: ~1 canary error a step.
        let path = log_e_path(&[step(1.0, 0.0); 10], 1.0, true);
        assert!(path.windows(2).all(|w| w[1] > w[0]), "{path:?}");
        assert!(path[9] > (1.0_f64 / 0.01).ln(), "{path:?}");
        // The same counts are no evidence of a lower rate.
        let lower = log_e_path(&[step(1.0, 0.0); 10], 1.0, false);
        assert!(lower[9] < 0.0, "{lower:?}");
    }
}
