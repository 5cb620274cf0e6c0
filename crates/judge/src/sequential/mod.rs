//! Anytime-valid judgement (`mode: sequential`): every metric is an
//! e-process evaluated after every step, and a metric is High/Low as soon as
//! its e-value reaches 1/α_test — at whatever step the analysis happens to
//! look, as often as it likes. See docs/judge.md ("Sequential mode").
//!
//! The error budget: α = 1 − confidence for the whole analysis, split evenly
//! over every one-sided test the config makes (one per metric, two for
//! `direction: either`). By Ville's inequality each test falsely crosses with
//! probability ≤ α_test over the whole analysis, and by the union bound a
//! healthy canary gets any false High/Low with probability ≤ α.
//!
//! Continuous metrics are judged on the pairs of a step (`paired`), rate
//! metrics on the events of a step (`counts`).
//!
//! The fixed-horizon statistics (Mann-Whitney, Hodges-Lehmann, tail check,
//! exact rate test) are still computed, as description for the report; only
//! the decision is the e-process'.

pub mod counts;
pub mod early_pass;
pub mod final_look;
pub mod non_inferior;
pub mod paired;

use super::classify::{decide, finish};
use super::config::{Direction, JudgeConfig, MetricConfig, MetricKind, NanStrategy};
use super::result::{Classification, DecidedBy, MetricResult, SequentialStats};
use super::samples::{Counts, MetricSamples, Side};
use counts::StepCounts;

/// ln Σ e^{x}, without overflow.
pub(crate) fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// e-values above this are reported as this: "overwhelming" needs no digits,
/// and JSON has no infinity.
const E_VALUE_CAP: f64 = 1e300;

/// The number of one-sided tests `config` makes.
pub fn tests_in(config: &JudgeConfig) -> usize {
    config.metrics.iter().map(tests_of).sum()
}

/// α of one one-sided test: the analysis' α = 1 − confidence, split evenly.
/// Its e-process spends [`final_look::SEQUENTIAL_SHARE`] of it over all
/// looks, the final look the rest.
pub fn alpha_per_test(config: &JudgeConfig) -> f64 {
    (1.0 - config.confidence) / tests_in(config).max(1) as f64
}

/// The number of one-sided tests of one metric.
pub fn tests_of(cfg: &MetricConfig) -> usize {
    match cfg.direction {
        Direction::Either => 2,
        _ => 1,
    }
}

/// The values of one side per step after the NaN strategy (None: no value).
pub(super) fn per_step(values: &[Option<f64>], nan: NanStrategy) -> Vec<Option<f64>> {
    values
        .iter()
        .map(|v| match (v.filter(|x| !x.is_nan()), nan) {
            (Some(x), _) => Some(x),
            (None, NanStrategy::Replace) => Some(0.0),
            (None, NanStrategy::Remove) => None,
        })
        .collect()
}

pub(super) fn step_counts(canary: &Counts, baseline: &Counts, nan: NanStrategy) -> Vec<StepCounts> {
    let get = |v: &[Option<f64>], i: usize| {
        let x = v.get(i).copied().flatten().filter(|x| !x.is_nan());
        match nan {
            NanStrategy::Replace => Some(x.unwrap_or(0.0)),
            NanStrategy::Remove => x,
        }
    };
    // A step with a count missing is still a step, without a bet (no
    // exposure is no evidence), as a continuous step without its pair: the
    // path and the crossing step count the steps of the samples.
    let no_data = StepCounts {
        canary_events: 0.0,
        canary_exposure: 0.0,
        baseline_events: 0.0,
        baseline_exposure: 0.0,
    };
    let steps = canary.numerator.len().max(baseline.numerator.len());
    (0..steps)
        .map(|i| {
            let step = || {
                Some(StepCounts {
                    canary_events: get(&canary.numerator, i)?,
                    canary_exposure: get(&canary.denominator, i)?,
                    baseline_events: get(&baseline.numerator, i)?,
                    baseline_exposure: get(&baseline.denominator, i)?,
                })
            };
            step().unwrap_or(no_data)
        })
        .collect()
}

/// One checked direction's ln e-value path.
struct Path {
    label: Classification,
    log_e: Vec<f64>,
}

fn paths(cfg: &MetricConfig, samples: &MetricSamples) -> Vec<Path> {
    let mut out = Vec::new();
    let dirs = [
        (cfg.direction.checks_increase(), Classification::High),
        (cfg.direction.checks_decrease(), Classification::Low),
    ];
    for (checked, label) in dirs {
        if !checked {
            continue;
        }
        let higher = label == Classification::High;
        let log_e = match (&samples.canary, &samples.baseline) {
            (Side::Values(c), Side::Values(b)) => {
                let quantiles: &[f64] = if cfg.tail.enabled {
                    &cfg.tail.quantiles
                } else {
                    &[]
                };
                let (c, b) = (per_step(c, cfg.nan_strategy), per_step(b, cfg.nan_strategy));
                let pairs: Vec<Option<(f64, f64)>> = (0..c.len().max(b.len()))
                    .map(|i| Some((c.get(i).copied().flatten()?, b.get(i).copied().flatten()?)))
                    .collect();
                let side = if higher {
                    paired::Side::Higher
                } else {
                    paired::Side::Lower
                };
                paired::log_e_path(&pairs, side, quantiles)
            }
            (Side::Counts(c), Side::Counts(b)) => {
                let e = cfg.effect_size;
                let rho0 = if higher {
                    e.allowed_increase
                } else {
                    e.allowed_decrease
                }
                .unwrap_or(1.0);
                counts::log_e_path(&step_counts(c, b, cfg.nan_strategy), rho0, higher)
            }
            // judge_metric has already refused mixed kinds.
            _ => Vec::new(),
        };
        out.push(Path { label, log_e });
    }
    out
}

pub(super) fn e_of(log_e: f64) -> f64 {
    log_e.exp().min(E_VALUE_CAP)
}

/// Decides `r` (already filled with the fixed-horizon description by
/// `judge_metric`) from the e-processes of its checked directions, each
/// spending [`final_look::SEQUENTIAL_SHARE`] of `alpha_test`.
pub fn decide_sequential(
    cfg: &MetricConfig,
    alpha_test: f64,
    samples: &MetricSamples,
    r: &mut MetricResult,
) {
    let alpha_test = alpha_test * final_look::SEQUENTIAL_SHARE;
    // No data and unusable data are decided as in the fixed mode.
    if matches!(
        r.classification,
        Classification::Nodata | Classification::NodataFailMetric
    ) || r.decided_by == DecidedBy::InvalidData
    {
        return;
    }
    let threshold = 1.0 / alpha_test;
    let log_threshold = -alpha_test.ln();
    let paths = paths(cfg, samples);
    let steps = paths.iter().map(|p| p.log_e.len()).max().unwrap_or(0);
    // The first step at which some direction crossed, and which.
    let crossing = paths
        .iter()
        .filter_map(|p| {
            p.log_e
                .iter()
                .position(|l| *l >= log_threshold)
                .map(|step| (step, p.label))
        })
        .min_by_key(|(step, _)| *step);
    let path: Vec<f64> = (0..steps)
        .map(|i| {
            e_of(
                paths
                    .iter()
                    .filter_map(|p| p.log_e.get(i).copied())
                    .fold(f64::NEG_INFINITY, f64::max),
            )
        })
        .collect();
    let max_e = path.iter().copied().fold(0.0, f64::max);
    let current = path.last().copied().unwrap_or(1.0);
    r.sequential = Some(SequentialStats {
        alpha: alpha_test,
        threshold,
        e_value: current,
        max_e_value: max_e.max(current),
        p_value: (1.0 / max_e.max(1.0)).min(1.0),
        crossed_at_step: crossing.map(|(step, _)| step + 1),
        steps,
        path,
        path_every: 1,
        early_pass: None,
        final_look: None,
    });
    // Start over: the fixed-horizon decision is description only.
    r.critical_failure = false;
    match crossing {
        Some((step, label)) => {
            let what = format!(
                "sequential test: e-value reached {} ≥ 1/α = {} at step {} of {steps}",
                fmt_e(max_e),
                fmt_e(threshold),
                step + 1
            );
            let ratio = match cfg.kind {
                MetricKind::Continuous => r.ratio,
                // +inf when the baseline had no events: beyond any bound.
                MetricKind::Rate => match (r.canary_mean, r.baseline_mean) {
                    (Some(c), Some(b)) if b > 0.0 => Some(c / b),
                    (Some(c), Some(_)) if c > 0.0 => Some(f64::INFINITY),
                    _ => None,
                },
            };
            finish(cfg, r, label, DecidedBy::Sequential, ratio, &what);
        }
        None => decide(
            r,
            Classification::Pass,
            DecidedBy::Sequential,
            format!(
                "no evidence of a change yet: e-value {} < 1/α = {} after {steps} steps",
                fmt_e(current),
                fmt_e(threshold)
            ),
        ),
    }
}

/// An e-value for people: 3 significant digits.
pub fn fmt_e(e: f64) -> String {
    if e >= 1e4 {
        format!("{e:.2e}")
    } else if e >= 99.5 {
        // 1/0.01 is 99.99999999999999 in floating point: say 100.
        format!("{e:.0}")
    } else {
        format!("{e:.3}")
    }
}
