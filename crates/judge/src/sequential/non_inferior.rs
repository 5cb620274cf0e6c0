//! Continuous metrics, early pass: an e-process against "the canary is worse
//! than the baseline by at least the margin" (non-inferiority).
//!
//! For `direction: increase` the null is "C ≥st m·B with C and B
//! independent within a step" (m = margin > 1). Each pair bets
//! 1 + λ·s with s = +1 when c⁺ < m·b⁺, −1 when c⁺ > m·b⁺, 0 on a tie
//! (x⁺ = max(x, 0)). Under the null E[s | past] ≤ 0, so every product is a
//! nonnegative supermartingale and, by Ville, P(sup ≥ 1/α) ≤ α. Derivation
//! (docs/judge.md, "Early pass"): C ≥st m·B implies C⁺ ≥st m·B⁺ (x ↦ x⁺ is
//! increasing); with X = m·B⁺ and X' an independent copy of it,
//! P(C⁺ > X) ≥ P(X' > X) = P(X' < X) ≥ P(C⁺ < X).
//!
//! The clamp at 0 is what we do with metrics that can be ≤ 0: a pair whose
//! baseline value is ≤ 0 is never evidence for the canary (m·b⁺ = 0, so s is
//! 0 or −1), and the guarantee holds for any real values.
//!
//! `direction: decrease` is the mirror image: the null "m·C ≤st B", the bet
//! s = +1 when m·c⁺ > b⁺ — the increase bet with canary and baseline swapped.
//!
//! A fixed mixture over a few stakes λ is the e-value.

use super::log_sum_exp;
use super::paired::Side;

/// Stakes mixed with equal weights. A healthy canary wins a step with
/// probability p ≈ 0.6–0.9 (depending on the metric's noise against the
/// margin); the growth-optimal stake is 2p − 1, so the grid spans it.
const STAKES: [f64; 4] = [0.2, 0.4, 0.6, 0.8];

/// The sign of one pair's bet: +1 evidence of non-inferiority, −1 against.
/// `bad` is the direction in which the canary would be worse.
pub fn sign(canary: f64, baseline: f64, margin: f64, bad: Side) -> f64 {
    let (c, b) = (canary.max(0.0), baseline.max(0.0));
    // "Canary below margin × baseline" (increase), or with the roles swapped
    // (decrease: baseline below margin × canary).
    let (low, high) = match bad {
        Side::Higher => (c, margin * b),
        Side::Lower => (b, margin * c),
    };
    match low.partial_cmp(&high) {
        Some(std::cmp::Ordering::Less) => 1.0,
        Some(std::cmp::Ordering::Greater) => -1.0,
        // A tie, or NaN (callers never pass it): no bet.
        _ => 0.0,
    }
}

/// ln of the mixture e-value after each step. `pairs[i]` is step i's
/// (canary, baseline), None where a side has no value (no bet that step).
pub fn log_e_path(pairs: &[Option<(f64, f64)>], margin: f64, bad: Side) -> Vec<f64> {
    let ln_w = -(STAKES.len() as f64).ln();
    let (mut wins, mut losses) = (0.0_f64, 0.0_f64);
    pairs
        .iter()
        .map(|pair| {
            if let Some((c, b)) = *pair {
                match sign(c, b, margin, bad) {
                    s if s > 0.0 => wins += 1.0,
                    s if s < 0.0 => losses += 1.0,
                    _ => {}
                }
            }
            log_sum_exp(
                STAKES
                    .iter()
                    .map(|l| ln_w + wins * l.ln_1p() + losses * (-l).ln_1p()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_table() {
        // (canary, baseline, bad side, sign) at margin 1.2.
        let table = [
            (100.0, 100.0, Side::Higher, 1.0),
            (119.0, 100.0, Side::Higher, 1.0),
            (120.0, 100.0, Side::Higher, 0.0),
            (121.0, 100.0, Side::Higher, -1.0),
            // Baseline ≤ 0: never evidence for the canary.
            (-5.0, -1.0, Side::Higher, 0.0),
            (1.0, -1.0, Side::Higher, -1.0),
            (0.0, 0.0, Side::Higher, 0.0),
            // Canary ≤ 0 under a positive baseline: better (increase).
            (-3.0, 1.0, Side::Higher, 1.0),
            // Decrease: worse is lower; 100 vs 119 is within the margin.
            (100.0, 119.0, Side::Lower, 1.0),
            (100.0, 120.0, Side::Lower, 0.0),
            (100.0, 121.0, Side::Lower, -1.0),
            (-1.0, 5.0, Side::Lower, -1.0),
            (5.0, -1.0, Side::Lower, 1.0),
        ];
        for (c, b, side, want) in table {
            assert_eq!(sign(c, b, 1.2, side), want, "{c} vs {b} {side:?}");
        }
    }

    #[test]
    fn a_supermartingale_at_the_boundary_of_the_null() {
        // C = m·B exactly in distribution, independent: B, B' iid uniform on
        // a grid, C = m·B'. The expected next e-value given any past is at
        // most the current one (here exactly: ties have probability 1/n).
        let grid: Vec<f64> = (1..=7).map(f64::from).collect();
        let history = vec![Some((3.0, 1.0)), None, Some((1.0, 4.0))];
        let now = log_e_path(&history, 1.2, Side::Higher)[2].exp();
        let mut next = 0.0;
        for b in &grid {
            for b2 in &grid {
                let mut h = history.clone();
                h.push(Some((1.2 * b2, *b)));
                next += log_e_path(&h, 1.2, Side::Higher)[3].exp();
            }
        }
        next /= (grid.len() * grid.len()) as f64;
        assert!(next <= now * (1.0 + 1e-12), "{now} -> {next}");
        assert!((next - now).abs() < 1e-12 * now, "{now} -> {next}");
    }

    #[test]
    fn a_canary_like_the_baseline_crosses_and_a_worse_one_does_not() {
        let same: Vec<Option<(f64, f64)>> = (0..60)
            .map(|i| Some((100.0 + f64::from(i % 7), 100.0 + f64::from(i % 5))))
            .collect();
        let path = log_e_path(&same, 1.2, Side::Higher);
        assert!(path[59] > (50.0_f64).ln(), "{path:?}");
        let worse: Vec<Option<(f64, f64)>> =
            same.iter().map(|p| p.map(|(c, b)| (c * 1.5, b))).collect();
        let path = log_e_path(&worse, 1.2, Side::Higher);
        assert!(path.iter().all(|l| *l <= 0.0), "{path:?}");
    }
}
