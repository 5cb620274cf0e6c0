//! PURE: the canary report a verdict's notification carries, from the
//! CanaryAnalysis' status (score, band, the failing metrics with their
//! numbers), bounded so that a ledger entry stays small.

use redblack_judge::Classification;
use serde::{Deserialize, Serialize};

use crate::api::canary_analysis::CanaryAnalysisStatus;

/// Failing metrics listed in one notification (the rest are counted).
pub const FAILING_LIMIT: usize = 10;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// `Pass`, `Marginal`, `Fail` or `Inconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Metrics not classified Pass, first [`FAILING_LIMIT`].
    #[serde(default)]
    pub failing_metrics: Vec<FailingMetric>,
    /// Failing metrics beyond [`FAILING_LIMIT`].
    #[serde(default)]
    pub failing_omitted: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailingMetric {
    pub name: String,
    /// The judge's classification (`High`, `Low`, `Nodata`, ...).
    pub classification: String,
    pub critical: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    pub reason: String,
}

/// The report of an analysis' status.
pub fn report(status: &CanaryAnalysisStatus) -> VerdictReport {
    let failing: Vec<FailingMetric> = status
        .metrics
        .iter()
        .filter(|m| m.classification != Classification::Pass)
        .map(|m| FailingMetric {
            name: super::payload::bounded(&m.name, 128),
            classification: format!("{:?}", m.classification),
            critical: m.critical,
            canary_mean: m.canary_mean.filter(|v| v.is_finite()),
            baseline_mean: m.baseline_mean.filter(|v| v.is_finite()),
            ratio: m.ratio.filter(|v| v.is_finite()),
            reason: super::payload::bounded(&m.reason, 256),
        })
        .collect();
    let omitted = failing.len().saturating_sub(FAILING_LIMIT);
    VerdictReport {
        score: status.score,
        band: status.band.map(|b| format!("{b:?}")),
        message: status
            .message
            .as_deref()
            .map(|m| super::payload::bounded(m, 512)),
        failing_metrics: failing.into_iter().take(FAILING_LIMIT).collect(),
        failing_omitted: omitted,
    }
}
