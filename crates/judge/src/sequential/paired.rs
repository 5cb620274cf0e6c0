//! Continuous metrics, sequentially: an e-process on the **pairs** of a step.
//!
//! Each step brings one canary and one baseline value, measured over the
//! same seconds of the same traffic. If the canary is no different, the two
//! values of a step are exchangeable: given the unordered pair {x, y} (and
//! everything before the step), which of the two is the canary's is a fair
//! coin. So a bet that pays 1 + λ·w·s — s = +1 when the canary's value is the
//! larger, −1 when the smaller, 0 on a tie; w ∈ [0, 1] any function of the
//! unordered pair and of the past; λ ∈ [0, 1) — has expectation exactly 1,
//! and the running product of the bets is a nonnegative martingale. By
//! Ville's inequality P(sup_t M_t ≥ 1/α) ≤ α, at every look. Pairing also
//! removes what both fleets share at a step (a load burst, a slow node).
//!
//! The weights say which steps to bet on:
//! - signed rank: w = the rank of |canary − baseline| among the steps so far
//!   (Wilcoxon's signed-rank test, made sequential) — a shift of the whole
//!   distribution;
//! - tail: w = 1 when the larger value of the pair is above the pooled
//!   quantile q of the values before the step, else 0 — a canary whose slow
//!   values are slower than anything normal (kayenta #780), judged on the
//!   steps where something is slow. Betting on lower values is the mirror
//!   image: the smaller value below the order statistic ⌈(1−q)·(N−1)⌉, as
//!   the fixed tail check's lower tail.
//!
//! A fixed mixture over both families and a few stakes λ is the e-value.

use super::log_sum_exp;

/// Which change the e-process bets on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Canary values higher than the baseline's.
    Higher,
    /// Canary values lower.
    Lower,
}

/// Stakes: a small one loses little on noise, a large one wins fast on a
/// gross regression.
const STAKES: [f64; 3] = [0.3, 0.6, 0.9];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Weight {
    SignedRank,
    /// Pair's extreme beyond the past pooled quantile q.
    Tail(f64),
}

/// The value at quantile q of `sorted` (an order statistic, no interpolation).
fn order_statistic(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * (sorted.len() - 1) as f64).floor() as usize).min(sorted.len() - 1);
    sorted.get(i).copied()
}

/// The mirror image of `order_statistic(sorted, q)` from the bottom:
/// index (N−1) − ⌊q·(N−1)⌋ = ⌈(1−q)·(N−1)⌉, the fixed tail check's lower
/// threshold, so that betting on lower values is betting on higher values
/// of the negated metric.
fn lower_order_statistic(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let from_top = ((q * last as f64).floor() as usize).min(last);
    sorted.get(last - from_top).copied()
}

fn insert_sorted(v: &mut Vec<f64>, x: f64) {
    let at = v.partition_point(|y| y.total_cmp(&x).is_lt());
    v.insert(at, x);
}

/// ln of the mixture e-value after each step. `pairs[i]` is step i's
/// (canary, baseline), None where a side has no value (no bet that step).
pub fn log_e_path(pairs: &[Option<(f64, f64)>], side: Side, tail_quantiles: &[f64]) -> Vec<f64> {
    let mut weights = vec![Weight::SignedRank];
    weights.extend(
        tail_quantiles
            .iter()
            .filter(|q| **q > 0.0 && **q < 1.0)
            .map(|q| Weight::Tail(*q)),
    );
    // Half the mass on the location family, half on the tails (if any).
    let family_mass = |w: &Weight| match w {
        Weight::SignedRank if weights.len() == 1 => 1.0,
        Weight::SignedRank => 0.5,
        Weight::Tail(_) => 0.5 / (weights.len() - 1) as f64,
    };
    let components: Vec<(f64, Weight, f64)> = weights
        .iter()
        .flat_map(|w| {
            STAKES
                .iter()
                .map(move |l| ((family_mass(w) / STAKES.len() as f64).ln(), *w, *l))
        })
        .collect();
    let mut log_products = vec![0.0_f64; components.len()];
    let mut past_values: Vec<f64> = Vec::new();
    let mut past_gaps: Vec<f64> = Vec::new();
    let mut path = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if let Some((c, b)) = *pair {
            // A numeric comparison: −0 and +0 are a tie (total_cmp orders them).
            let s = match (c.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal), side) {
                (std::cmp::Ordering::Equal, _) => 0.0,
                (std::cmp::Ordering::Greater, Side::Higher)
                | (std::cmp::Ordering::Less, Side::Lower) => 1.0,
                _ => -1.0,
            };
            let gap = (c - b).abs();
            // Label-free facts of the step: the gap and the pair's extreme.
            let rank =
                (past_gaps.partition_point(|g| *g < gap) + 1) as f64 / (past_gaps.len() + 1) as f64;
            let extreme = match side {
                Side::Higher => c.max(b),
                Side::Lower => c.min(b),
            };
            for (lp, (_, weight, stake)) in log_products.iter_mut().zip(&components) {
                let w = match weight {
                    Weight::SignedRank => rank,
                    Weight::Tail(q) => {
                        let beyond = match side {
                            Side::Higher => {
                                order_statistic(&past_values, *q).is_some_and(|t| extreme > t)
                            }
                            Side::Lower => {
                                lower_order_statistic(&past_values, *q).is_some_and(|t| extreme < t)
                            }
                        };
                        if beyond { 1.0 } else { 0.0 }
                    }
                };
                *lp += (1.0 + stake * w * s).ln();
            }
            insert_sorted(&mut past_values, c);
            insert_sorted(&mut past_values, b);
            insert_sorted(&mut past_gaps, gap);
        }
        path.push(log_sum_exp(
            components
                .iter()
                .zip(&log_products)
                .map(|((ln_w, _, _), lp)| ln_w + lp),
        ));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixture_is_a_martingale_step_by_step() {
        // After any history, the next step's e-value averaged over the two
        // equally likely labellings of its pair is the current e-value.
        let history: Vec<Option<(f64, f64)>> =
            vec![Some((1.0, 0.5)), Some((0.2, 0.9)), None, Some((3.0, 1.0))];
        for side in [Side::Higher, Side::Lower] {
            for (x, y) in [(5.0, 0.1), (0.7, 0.6), (2.0, 2.0)] {
                let mut a = history.clone();
                a.push(Some((x, y)));
                let mut b = history.clone();
                b.push(Some((y, x)));
                let (pa, pb) = (
                    log_e_path(&a, side, &[0.9, 0.95]),
                    log_e_path(&b, side, &[0.9, 0.95]),
                );
                let now = pa[3].exp();
                let next = 0.5 * pa[4].exp() + 0.5 * pb[4].exp();
                assert!(
                    (next - now).abs() < 1e-12 * now.max(1.0),
                    "{side:?} {x},{y}: {now} -> {next}"
                );
            }
        }
    }

    #[test]
    fn a_canary_always_higher_crosses_and_ties_are_no_evidence() {
        let higher: Vec<Option<(f64, f64)>> =
            (0..30).map(|i| Some((2.0 + f64::from(i), 1.0))).collect();
        let path = log_e_path(&higher, Side::Higher, &[0.9, 0.95]);
        assert!(path[29] > (100.0_f64).ln(), "{path:?}");
        let ties = vec![Some((1.0, 1.0)); 30];
        assert!(
            log_e_path(&ties, Side::Higher, &[0.9])
                .iter()
                .all(|l| l.abs() < 1e-12)
        );
    }

    #[test]
    fn betting_lower_is_betting_higher_on_the_negated_values() {
        let pairs: Vec<Option<(f64, f64)>> = (0..40)
            .map(|i| {
                let x = f64::from((i * 37) % 23) + if i % 5 == 0 { 50.0 } else { 0.0 };
                (i % 9 != 4).then_some((x, f64::from((i * 11) % 19)))
            })
            .collect();
        let negated: Vec<Option<(f64, f64)>> =
            pairs.iter().map(|p| p.map(|(c, b)| (-c, -b))).collect();
        for quantiles in [&[][..], &[0.9], &[0.9, 0.95]] {
            assert_eq!(
                log_e_path(&pairs, Side::Lower, quantiles),
                log_e_path(&negated, Side::Higher, quantiles),
                "{quantiles:?}"
            );
        }
    }

    #[test]
    fn a_signed_zero_is_a_tie() {
        // −0 = +0: no bet, whichever side has the sign bit.
        let pairs = vec![Some((1.0, 2.0)), Some((-0.0, 0.0)), Some((0.0, -0.0))];
        for side in [Side::Higher, Side::Lower] {
            let path = log_e_path(&pairs, side, &[0.9]);
            assert_eq!(path[0], path[1], "{side:?}: {path:?}");
            assert_eq!(path[1], path[2], "{side:?}: {path:?}");
        }
    }
}
