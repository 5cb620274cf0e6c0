//! The tail check (beyond Kayenta). Mann-Whitney compares locations; a canary
//! whose bulk matches the baseline but whose worst 10-30% is far worse
//! (kayenta #780) can pass it. We count, for each configured pooled quantile
//! q, how many canary values exceed the pooled q-quantile, and test that
//! count with the exact hypergeometric law it follows when canary and
//! baseline come from the same distribution (samples exchangeable,
//! conditional on the pooled values; Mood's quantile test). Exact and
//! distribution-free, so the false-positive rate is at most 1 - confidence;
//! with several quantiles / both directions we apply Bonferroni.
//! Ties at the threshold (every slow request timing out at the same 30 s,
//! histogram_quantile on a bucket bound) are counted as exceedances when that
//! keeps the tail's size closer to the quantile's; see [`exceedance_rule`].
//! Hand-written: the hypergeometric upper tail summed in log space is a few
//! lines on top of statrs' `ln_binomial`, and stays accurate for p ~ 1e-30.

use statrs::function::factorial::ln_binomial;

use super::config::Direction;

/// Which tail was found worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    Upper,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailTest {
    /// The tail and quantile with the smallest p-value.
    pub tail: Tail,
    pub quantile: f64,
    /// The pooled order statistic used as the threshold.
    pub threshold: f64,
    /// Whether values equal to `threshold` were counted as exceedances
    /// (a tied tail; see [`exceedance_rule`]).
    pub inclusive: bool,
    pub canary_exceedances: usize,
    pub baseline_exceedances: usize,
    /// Bonferroni-adjusted p-value (over quantiles × tails tested).
    pub p_value: f64,
    /// How many one-sided tests were combined.
    pub tests: usize,
}

/// Runs the exceedance test on the tails `direction` marks as bad.
/// Returns `None` when no tail is checked or the samples are empty.
pub fn tail_test(
    x: &[f64],
    y: &[f64],
    direction: Direction,
    quantiles: &[f64],
) -> Option<TailTest> {
    if x.is_empty() || y.is_empty() || quantiles.is_empty() {
        return None;
    }
    let mut pooled: Vec<f64> = x.iter().chain(y.iter()).copied().collect();
    pooled.sort_by(f64::total_cmp);
    let last_index = pooled.len() - 1;
    let last = last_index as f64;
    // Validated quantiles are in (0.5, 1); clamping keeps an unvalidated
    // config (judge_metric callers) from indexing out of bounds.
    let index = |pos: f64| (pos.max(0.0) as usize).min(last_index);

    let mut tails = Vec::with_capacity(2);
    if direction.checks_increase() {
        tails.push(Tail::Upper);
    }
    if direction.checks_decrease() {
        tails.push(Tail::Lower);
    }
    let tests = tails.len() * quantiles.len();
    let mut best: Option<TailTest> = None;
    for &tail in &tails {
        for &q in quantiles {
            // An order statistic, not an interpolation: the test then depends
            // on ranks only, so it is invariant under shifting and scaling.
            // `untied` is how many pooled positions lie beyond the threshold's.
            let (i, untied) = match tail {
                Tail::Upper => {
                    let i = index((q * last).floor());
                    (i, last_index - i)
                }
                Tail::Lower => {
                    let i = index(((1.0 - q) * last).ceil());
                    (i, i)
                }
            };
            let threshold = pooled[i];
            let inclusive = exceedance_rule(&pooled, tail, threshold, untied);
            let beyond = |v: f64| match (tail, inclusive) {
                (Tail::Upper, false) => v > threshold,
                (Tail::Upper, true) => v >= threshold,
                (Tail::Lower, false) => v < threshold,
                (Tail::Lower, true) => v <= threshold,
            };
            let k = x.iter().filter(|v| beyond(**v)).count();
            let kb = y.iter().filter(|v| beyond(**v)).count();
            let p = hypergeometric_sf(pooled.len(), k + kb, x.len(), k);
            if best.is_none_or(|b| p < b.p_value) {
                best = Some(TailTest {
                    tail,
                    quantile: q,
                    threshold,
                    inclusive,
                    canary_exceedances: k,
                    baseline_exceedances: kb,
                    p_value: p,
                    tests,
                });
            }
        }
    }
    best.map(|mut b| {
        b.p_value = (b.p_value * tests as f64).min(1.0);
        b
    })
}

/// Whether values equal to `threshold` count as exceedances: whichever of
/// "strictly beyond" and "at or beyond" gives a pooled tail size closer to
/// `untied` (the size the tail would have without ties); on a tie between
/// the two, strictly beyond. Without ties at the threshold this is always
/// "strictly beyond" (sizes `untied` and `untied + 1`), the classic rule.
///
/// Why: when the tail sits at one value (every slow request times out at
/// 30 s) the order statistic lies inside that block of ties, so "strictly
/// beyond" leaves an empty tail and the test can never reject. Why it stays
/// exact: the choice looks at the sorted pooled values only, never at which
/// side a value came from, so conditional on the pooled multiset the set of
/// exceeding values is fixed and the canary's share of it is still exactly
/// Hypergeometric(N, K, n) under exchangeability. Counting ties also uses
/// counts only, so the test still depends on ranks alone.
fn exceedance_rule(sorted: &[f64], tail: Tail, threshold: f64, untied: usize) -> bool {
    // `sorted` is ascending (total order); partition_point counts the
    // leading run of values before the threshold's block of ties.
    let below = sorted.partition_point(|v| *v < threshold);
    let at_or_below = sorted.partition_point(|v| *v <= threshold);
    let (strict, inclusive) = match tail {
        Tail::Upper => (sorted.len() - at_or_below, sorted.len() - below),
        Tail::Lower => (below, at_or_below),
    };
    inclusive.abs_diff(untied) < strict.abs_diff(untied)
}

/// P(X >= k) for X ~ Hypergeometric(population, successes, draws).
pub fn hypergeometric_sf(population: usize, successes: usize, draws: usize, k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let hi = successes.min(draws);
    if k > hi {
        return 0.0;
    }
    let lo_valid = draws.saturating_sub(population - successes);
    let denom = ln_binomial(population as u64, draws as u64);
    let mut sum = 0.0;
    for i in k.max(lo_valid)..=hi {
        let ln = ln_binomial(successes as u64, i as u64)
            + ln_binomial((population - successes) as u64, (draws - i) as u64)
            - denom;
        sum += ln.exp();
    }
    sum.min(1.0)
}
