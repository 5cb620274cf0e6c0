//! PURE statistics: tests, effect sizes, classification, scoring.
//!
//! Entry point: [`judge`] (validate the config, classify every metric, score).
//! Semantics and input format: docs/judge.md. No I/O in this crate, and no
//! kube or tokio: the operator, the CLI and the benchmarks all call the same code.
#![forbid(unsafe_code)]

pub mod classify;
pub mod config;
pub mod error;
pub mod hodges_lehmann;
pub mod mann_whitney;
pub mod outliers;
pub mod rates;
pub mod report;
pub mod result;
pub mod samples;
pub mod score;
pub mod sequential;
pub mod tail;
pub mod validate;

use std::collections::{HashMap, HashSet};

pub use config::{
    Direction, EarlyPassConfig, EffectSize, GroupConfig, JudgeConfig, JudgeMode, MetricConfig,
    MetricKind, NanStrategy, OutlierConfig, ScoreThresholds, TailCheckConfig, effective_tolerance,
};
pub use error::{ConfigErrors, ConfigIssue, JudgeError};
pub use report::render_report;
pub use result::{
    Band, Classification, DecidedBy, EarlyPassStats, FinalLookStats, ForcedZero, GroupScore,
    JudgeResult, LocationStats, MetricResult, RateStats, SequentialStats, TailStats,
};
pub use samples::{Counts, MetricSamples, Side};
pub use sequential::early_pass::{EarlyPassVerdict, early_pass_verdict};
pub use validate::validate;

/// Which look at an analysis a judgement is (`mode: sequential` only; the
/// fixed mode judges every look alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Look {
    /// A look before the end of the analysis' lifetime: the e-processes
    /// decide alone.
    #[default]
    Interim,
    /// The last look, at the end of the lifetime fixed in advance: the
    /// fixed-horizon tests also judge the whole window, at the final look's
    /// share of α (docs/judge.md, "Final look"). Judge at most one window
    /// per analysis as `Final`.
    Final,
}

/// Judges one interval (or a whole window) of samples against `config`, as
/// an interim look ([`judge_at`] with [`Look::Interim`]).
pub fn judge(config: &JudgeConfig, samples: &[MetricSamples]) -> Result<JudgeResult, JudgeError> {
    judge_at(config, samples, Look::Interim)
}

/// Judges one interval (or a whole window) of samples against `config`.
///
/// Metrics declared in the config but absent from `samples` are Nodata (or
/// NodataFailMetric with `mustHaveData`). Samples naming an undeclared
/// metric, given twice, or of the wrong kind are caller errors.
pub fn judge_at(
    config: &JudgeConfig,
    samples: &[MetricSamples],
    look: Look,
) -> Result<JudgeResult, JudgeError> {
    validate(config)?;
    // Sets, not scans: Netflix ACA judged >1500 metrics per canary, and the
    // benchmark 10,000; a linear scan per sample would be quadratic.
    let declared: HashSet<&str> = config.metrics.iter().map(|m| m.name.as_str()).collect();
    let mut by_name: HashMap<&str, &MetricSamples> = HashMap::with_capacity(samples.len());
    for s in samples {
        if !declared.contains(s.name.as_str()) {
            return Err(JudgeError::UnknownMetric(s.name.clone()));
        }
        if by_name.insert(s.name.as_str(), s).is_some() {
            return Err(JudgeError::DuplicateSamples(s.name.clone()));
        }
    }
    let alpha_test = sequential::alpha_per_test(config);
    // Sequential mode: the fixed statistics are description only, so they
    // are computed with the raw rule.
    let tolerance = config.effective_tolerance().unwrap_or(0.0);
    let mut results = Vec::with_capacity(config.metrics.len());
    for cfg in &config.metrics {
        results.push(match by_name.get(cfg.name.as_str()) {
            None => classify::classify_missing(cfg),
            Some(s) => {
                let mut r = judge_metric(cfg, config.confidence, tolerance, s)?;
                if config.mode == JudgeMode::Sequential {
                    sequential::decide_sequential(cfg, alpha_test, s, &mut r);
                    if look == Look::Final {
                        let alpha_metric = alpha_test * sequential::tests_of(cfg) as f64;
                        sequential::final_look::decide_final(cfg, alpha_metric, s, &mut r);
                    }
                    sequential::early_pass::attach(config, cfg, s, &mut r);
                }
                r
            }
        });
    }
    Ok(score::score(config, results))
}

/// Classifies one metric (no scoring), fixed mode. `cfg`, `confidence` and
/// `tolerance` (Kayenta's, 0 = the interval only has to exclude 0; what
/// [`JudgeConfig::effective_tolerance`] gives) should come from a config
/// that passed [`validate`]; other values never panic but can give
/// meaningless statistics.
pub fn judge_metric(
    cfg: &MetricConfig,
    confidence: f64,
    tolerance: f64,
    samples: &MetricSamples,
) -> Result<MetricResult, JudgeError> {
    match (cfg.kind, &samples.canary, &samples.baseline) {
        (MetricKind::Continuous, Side::Values(c), Side::Values(b)) => Ok(
            classify::classify_continuous(cfg, confidence, tolerance, c, b),
        ),
        (MetricKind::Rate, Side::Counts(c), Side::Counts(b)) => {
            Ok(classify::classify_rate(cfg, confidence, c, b))
        }
        (kind, c, b) => Err(JudgeError::KindMismatch {
            name: cfg.name.clone(),
            expected: match kind {
                MetricKind::Continuous => "continuous",
                MetricKind::Rate => "rate",
            },
            found: if c.kind_name() == b.kind_name() {
                c.kind_name()
            } else {
                "mixed"
            },
        }),
    }
}
