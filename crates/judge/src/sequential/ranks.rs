//! Continuous metrics, sequentially: an e-process on **sequential ranks**.
//!
//! Take the observations of both sides in arrival order (each step: the
//! baseline's value, then the canary's). The sequential rank of the t-th
//! observation is its rank among the first t. If canary and baseline values
//! are i.i.d. from one distribution, these ranks are independent and uniform
//! on {1..t} whatever the labels (Rényi); with u = (rank − 1 + W)/t, W a
//! uniform draw, u is exactly Uniform(0, 1). Ties are broken by a fixed
//! pseudo-random jitter given to each observation once, which is what makes
//! tied values (a timeout, a histogram bucket bound) uniform too.
//!
//! A bet is a density g on [0, 1] (∫g = 1, g ≥ 0). Under the null,
//! E[g(u)] = 1 for every observation, so the running product of the bets is a
//! nonnegative martingale with mean 1, and so is any fixed mixture of such
//! products: by Ville's inequality P(sup_t M_t ≥ 1/α) ≤ α — at every look,
//! however often the analysis looks. Against "canary higher" we bet on high
//! u for canary observations (and low u for baseline ones, for the location
//! bets); against "canary lower" the mirror image.
//!
//! Two families of bets, mixed with equal weight per family:
//! - location: exponential tilts g_λ(u) = λ·e^{λu}/(e^λ − 1), which profit
//!   from a shift of the whole distribution (what Mann-Whitney sees);
//! - tail: g(u) = 1 − a + a·1{u > q}/(1 − q) on canary observations only,
//!   which profit from a canary whose slowest values exceed the pool's
//!   quantile q more often than 1 − q (what the tail check sees, kayenta #780).

/// One observation in arrival order; `step` is its 0-based step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub value: f64,
    pub canary: bool,
    pub step: usize,
}

/// Which change the e-process bets on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Canary values higher than the baseline's.
    Higher,
    /// Canary values lower.
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bet {
    /// Exponential tilt with rate λ > 0.
    Tilt(f64),
    /// Tail bet at pooled quantile q with stake a ∈ (0, 1].
    Tail { q: f64, a: f64 },
}

/// Tilts from a small to a large shift: a mixture pays nearly as well as the
/// best single λ in hindsight, at the price of log(#bets).
const TILTS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];
/// Stakes of the tail bets: a small stake loses little when the tail is
/// normal, a large one wins fast when it is not.
const TAIL_STAKES: [f64; 2] = [0.2, 0.5];

/// splitmix64: a fixed, well-mixed stream of bits per (index, stream), so
/// the "random" jitter and W are the same on every run (the judgement is a
/// pure function of the data) yet independent of the data.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform in (0, 1) for observation `i` of `stream`.
fn uniform(i: usize, stream: u64) -> f64 {
    let bits = mix((i as u64).wrapping_mul(2).wrapping_add(stream << 40)) >> 11;
    // 53 bits, shifted off 0 so that a density's logarithm is finite.
    (bits as f64 + 0.5) / (1u64 << 53) as f64
}

/// u ∈ (0, 1) for every observation but the first (None: nothing to rank
/// against). O(n²) in the worst case from the inserts, which is nothing next
/// to a Prometheus query for the few thousand steps an analysis has.
pub fn sequential_uniforms(observations: &[Observation]) -> Vec<Option<f64>> {
    let mut seen: Vec<(f64, f64)> = Vec::with_capacity(observations.len());
    let mut out = Vec::with_capacity(observations.len());
    for (i, o) in observations.iter().enumerate() {
        let key = (o.value, uniform(i, 1));
        let below =
            seen.partition_point(|&(v, j)| v.total_cmp(&key.0).then(j.total_cmp(&key.1)).is_lt());
        out.push(if seen.is_empty() {
            None
        } else {
            Some((below as f64 + uniform(i, 2)) / (seen.len() + 1) as f64)
        });
        seen.insert(below, key);
    }
    out
}

fn ln_density(bet: Bet, u: f64) -> f64 {
    match bet {
        // ln(λ e^{λu} / (e^λ − 1)) = ln λ + λ(u − 1) − ln(1 − e^{−λ})
        Bet::Tilt(l) => l.ln() + l * (u - 1.0) - (-(-l).exp_m1()).ln(),
        Bet::Tail { q, a } => {
            let hit = if u > q { 1.0 / (1.0 - q) } else { 0.0 };
            (1.0 - a + a * hit).ln()
        }
    }
}

/// ln g of one observation for `bet` betting on `side`.
fn ln_bet(bet: Bet, side: Side, o: &Observation, u: f64) -> f64 {
    // Canary higher ⇔ canary u high ⇔ baseline u low.
    let toward = match (side, o.canary) {
        (Side::Higher, true) | (Side::Lower, false) => u,
        (Side::Higher, false) | (Side::Lower, true) => 1.0 - u,
    };
    match bet {
        Bet::Tilt(_) => ln_density(bet, toward),
        // The tail bets are about the canary's tail only.
        Bet::Tail { .. } if o.canary => ln_density(bet, toward),
        Bet::Tail { .. } => 0.0,
    }
}

fn bets(tail_quantiles: &[f64]) -> Vec<(f64, Bet)> {
    let tails: Vec<Bet> = tail_quantiles
        .iter()
        .filter(|q| **q > 0.0 && **q < 1.0)
        .flat_map(|&q| TAIL_STAKES.iter().map(move |&a| Bet::Tail { q, a }))
        .collect();
    let families = if tails.is_empty() { 1.0 } else { 2.0 };
    let mut out: Vec<(f64, Bet)> = TILTS
        .iter()
        .map(|&l| (1.0 / (families * TILTS.len() as f64), Bet::Tilt(l)))
        .collect();
    let each = 1.0 / (families * tails.len().max(1) as f64);
    out.extend(tails.into_iter().map(|b| (each, b)));
    out
}

/// ln of the mixture e-value after each of `steps` steps (ln 1 = 0 before
/// any evidence), betting on `side`; `tail_quantiles` empty = location bets
/// only.
pub fn log_e_path(
    observations: &[Observation],
    steps: usize,
    side: Side,
    tail_quantiles: &[f64],
) -> Vec<f64> {
    let bets = bets(tail_quantiles);
    let us = sequential_uniforms(observations);
    let mut log_products = vec![0.0_f64; bets.len()];
    let mut path = Vec::with_capacity(steps);
    let mut next = observations.iter().zip(&us).peekable();
    for step in 0..steps {
        while let Some((o, u)) = next.next_if(|(o, _)| o.step == step) {
            if let Some(u) = *u {
                for (lp, (_, bet)) in log_products.iter_mut().zip(&bets) {
                    *lp += ln_bet(*bet, side, o, u);
                }
            }
        }
        path.push(log_sum_exp(
            bets.iter()
                .zip(&log_products)
                .map(|((w, _), lp)| w.ln() + lp),
        ));
    }
    path
}

/// ln Σ e^{x}, without overflow.
pub(crate) fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.map(|x| (x - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bet_is_a_density() {
        // ∫ g = 1 by the midpoint rule on a fine grid.
        for (_, bet) in bets(&[0.9, 0.95]) {
            let n = 200_000;
            let integral: f64 = (0..n)
                .map(|i| ln_density(bet, (i as f64 + 0.5) / n as f64).exp())
                .sum::<f64>()
                / n as f64;
            assert!((integral - 1.0).abs() < 1e-3, "{bet:?}: {integral}");
        }
    }

    #[test]
    fn the_mixture_weights_sum_to_one() {
        for q in [vec![], vec![0.9], vec![0.9, 0.95]] {
            let total: f64 = bets(&q).iter().map(|(w, _)| w).sum();
            assert!((total - 1.0).abs() < 1e-12, "{q:?}: {total}");
        }
    }

    #[test]
    fn sequential_ranks_of_sorted_values_are_extreme() {
        let obs: Vec<Observation> = (0..10)
            .map(|i| Observation {
                value: i as f64,
                canary: true,
                step: i,
            })
            .collect();
        let us = sequential_uniforms(&obs);
        assert_eq!(us[0], None);
        // Each new value is the largest so far: u in ((t−1)/t, 1).
        for (t, u) in us.iter().enumerate().skip(1) {
            let u = u.unwrap_or_default();
            let n = (t + 1) as f64;
            assert!(u > (n - 1.0) / n && u < 1.0, "t={t}: {u}");
        }
    }

    #[test]
    fn ties_are_ranked_at_random_not_at_the_bottom() {
        // 200 equal values: their sequential u must look uniform, not 0.
        let obs: Vec<Observation> = (0..200)
            .map(|i| Observation {
                value: 1.0,
                canary: i % 2 == 0,
                step: i / 2,
            })
            .collect();
        let us: Vec<f64> = sequential_uniforms(&obs).into_iter().flatten().collect();
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        assert!((mean - 0.5).abs() < 0.06, "{mean}");
    }
}
