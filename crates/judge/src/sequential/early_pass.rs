//! Early pass (`earlyPass` in the config, `mode: sequential` only): per
//! metric, an e-process against the *reverse* null "the canary is worse than
//! the baseline by at least the margin", in every direction the metric
//! checks; and the analysis-level verdict "every metric proved
//! non-inferior, none failed, none without data". See docs/judge.md
//! ("Early pass").
//!
//! Error budget: a false early pass needs *every* metric's test to cross,
//! including the test of the metric that really is worse, which crosses with
//! probability ≤ α under its null. So each test runs at the whole
//! α = 1 − confidence and the early-pass error of the analysis is still ≤ α
//! (an intersection-union test, Berger 1982): no split over the tests, which
//! would only slow every early pass down.

use super::{counts, e_of, non_inferior, paired, per_step, step_counts};
use crate::config::{JudgeConfig, MetricConfig};
use crate::result::{Band, Classification, EarlyPassStats, JudgeResult, MetricResult};
use crate::samples::{MetricSamples, Side};
use serde::{Deserialize, Serialize};

/// ln e-value paths, one per checked bad direction.
fn paths(cfg: &MetricConfig, samples: &MetricSamples, margin: f64) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for (checked, bad) in [
        (cfg.direction.checks_increase(), paired::Side::Higher),
        (cfg.direction.checks_decrease(), paired::Side::Lower),
    ] {
        if !checked {
            continue;
        }
        let path = match (&samples.canary, &samples.baseline) {
            (Side::Values(c), Side::Values(b)) => {
                let (c, b) = (per_step(c, cfg.nan_strategy), per_step(b, cfg.nan_strategy));
                let pairs: Vec<Option<(f64, f64)>> = (0..c.len().max(b.len()))
                    .map(|i| Some((c.get(i).copied().flatten()?, b.get(i).copied().flatten()?)))
                    .collect();
                non_inferior::log_e_path(&pairs, margin, bad)
            }
            (Side::Counts(c), Side::Counts(b)) => {
                let steps = step_counts(c, b, cfg.nan_strategy);
                // The same mixture likelihood ratio as the failure test, on
                // the other side of the margin: null "rate ≥ margin ×
                // baseline" betting on lower ratios (increase), or "rate ≤
                // baseline / margin" betting on higher ones (decrease).
                match bad {
                    paired::Side::Higher => counts::log_e_path(&steps, margin, false),
                    paired::Side::Lower => counts::log_e_path(&steps, 1.0 / margin, true),
                }
            }
            _ => Vec::new(),
        };
        out.push(path);
    }
    out
}

/// Adds the early-pass numbers to `r.sequential` (already decided by
/// `decide_sequential`). No-op without `earlyPass` or sequential stats
/// (Nodata, invalid data: such a metric is never eligible).
pub fn attach(
    config: &JudgeConfig,
    cfg: &MetricConfig,
    samples: &MetricSamples,
    r: &mut MetricResult,
) {
    let (Some(early), Some(seq)) = (config.early_pass, r.sequential.as_mut()) else {
        return;
    };
    let alpha = 1.0 - config.confidence;
    let log_threshold = -alpha.ln();
    let paths = paths(cfg, samples, early.margin);
    let steps = paths.iter().map(Vec::len).max().unwrap_or(0);
    // Every direction must cross: the pass step is the last first-crossing.
    let crossings: Vec<Option<usize>> = paths
        .iter()
        .map(|p| p.iter().position(|l| *l >= log_threshold))
        .collect();
    let crossed = if crossings.is_empty() || crossings.iter().any(Option::is_none) {
        None
    } else {
        crossings.iter().flatten().max().map(|s| s + 1)
    };
    let min_over = |f: &dyn Fn(&Vec<f64>) -> f64| paths.iter().map(f).fold(f64::INFINITY, f64::min);
    let path: Vec<f64> = (0..steps)
        .map(|i| e_of(min_over(&|p| p.get(i).copied().unwrap_or(0.0))))
        .collect();
    let max_e = if paths.is_empty() {
        1.0
    } else {
        e_of(min_over(&|p| p.iter().copied().fold(0.0, f64::max)))
    };
    seq.early_pass = Some(EarlyPassStats {
        margin: early.margin,
        alpha,
        threshold: 1.0 / alpha,
        e_value: path.last().copied().unwrap_or(1.0),
        max_e_value: max_e,
        p_value: (1.0 / max_e.max(1.0)).min(1.0),
        crossed_at_step: crossed,
        path,
        path_every: 1,
    });
}

/// Whether a judgement lets the analysis pass early, and why (not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlyPassVerdict {
    /// Every metric proved non-inferior, none failed, none without data,
    /// and the band is Pass.
    pub eligible: bool,
    /// The step (1-based) by which the last metric crossed, when eligible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossed_at_step: Option<usize>,
    pub reason: String,
}

/// The analysis-level early-pass verdict of `result`; None when the config
/// had no `earlyPass` (no metric carries early-pass numbers).
pub fn early_pass_verdict(result: &JudgeResult) -> Option<EarlyPassVerdict> {
    fn early(m: &MetricResult) -> Option<&EarlyPassStats> {
        m.sequential.as_ref()?.early_pass.as_ref()
    }
    let margin = result.metrics.iter().find_map(early)?.margin;
    let mut waiting = Vec::new();
    let mut last = 0;
    for m in &result.metrics {
        let why = match (m.classification, early(m)) {
            (Classification::Pass, Some(e)) => match e.crossed_at_step {
                Some(step) => {
                    last = last.max(step);
                    continue;
                }
                None => format!(
                    "{} (e-value {} < {})",
                    m.name,
                    super::fmt_e(e.e_value),
                    super::fmt_e(e.threshold)
                ),
            },
            (Classification::Pass, None) => format!("{} (no early-pass test)", m.name),
            (c, _) => format!("{} ({c:?})", m.name),
        };
        waiting.push(why);
    }
    if !waiting.is_empty() {
        return Some(EarlyPassVerdict {
            eligible: false,
            crossed_at_step: None,
            reason: format!(
                "not yet shown within margin {margin}: {}",
                waiting.join(", ")
            ),
        });
    }
    if result.band != Band::Pass {
        return Some(EarlyPassVerdict {
            eligible: false,
            crossed_at_step: None,
            reason: format!("band {:?}: {}", result.band, result.reason),
        });
    }
    Some(EarlyPassVerdict {
        eligible: true,
        crossed_at_step: Some(last),
        reason: format!(
            "all {} metric(s) shown no worse than the baseline by a factor of {margin} (anytime-valid, confidence {}) by step {last}",
            result.metrics.len(),
            result.confidence
        ),
    })
}
