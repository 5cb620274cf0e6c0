//! Judge output, embedded in the CanaryAnalysis status: every number behind
//! every decision (kayenta #521: users could not see the statistics).
//! Undefined numbers are `None` (JSON null), never NaN.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::config::{Direction, EffectSize, JudgeMode, MetricKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Classification {
    Pass,
    High,
    Low,
    Nodata,
    NodataFailMetric,
    Error,
}

/// Which rule made the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DecidedBy {
    /// Empty side after cleaning.
    Nodata,
    /// Same multiset of values on both sides, or all values equal.
    Identical,
    /// The Hodges-Lehmann interval contains 0 and the tail check found nothing.
    CiContainsZero,
    /// The interval clears the tolerance (excludes 0 when it is 0): location shift.
    MannWhitney,
    /// The interval excludes 0 in a checked direction, but its bound nearest
    /// 0 is within tolerance·|HL| of 0 (Kayenta's tolerance): Pass.
    Tolerance,
    /// The exceedance test on the tails.
    TailCheck,
    /// The exact count test (rate metrics).
    RateTest,
    /// Significant, but only in the direction the metric does not check.
    Direction,
    /// Significant, but the ratio is inside the allowed bounds.
    EffectSizeWithinAllowed,
    /// Significant and beyond a critical bound.
    CriticalBound,
    /// The data was unusable (infinite values, negative counts, length mismatch).
    InvalidData,
    /// The sequential test (`mode: sequential`): its e-value crossed 1/α, or
    /// has not (yet).
    Sequential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Band {
    Pass,
    Marginal,
    Fail,
    /// Too little data to judge (≥ 50% of metrics without data, or a
    /// critical metric without data): score 0, but reported as such so the
    /// controller can say "no traffic?" and hold the canary.
    Inconclusive,
}

/// Mann-Whitney and Hodges-Lehmann numbers (continuous metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationStats {
    pub u: f64,
    pub z: f64,
    pub p_value: f64,
    /// Hodges-Lehmann shift canary - baseline.
    pub hodges_lehmann: f64,
    /// Interval of the shift at `confidence`; null = unbounded (too few samples).
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    /// Cliff's delta = P(c > b) - P(c < b), in [-1, 1].
    pub cliffs_delta: f64,
    /// Hodges-Lehmann shift / |baseline median|; null when the median is 0.
    pub relative_shift: Option<f64>,
    pub comparisons: usize,
    /// tolerance·|hodgesLehmann|: the bound must clear it for High/Low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_bound: Option<f64>,
}

/// Exceedance test numbers (continuous metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TailStats {
    /// "upper" or "lower": the tail with the smallest p-value.
    pub tail: String,
    pub quantile: f64,
    pub threshold: f64,
    pub canary_exceedances: usize,
    pub baseline_exceedances: usize,
    /// Bonferroni-adjusted over `tests` one-sided tests.
    pub p_value: f64,
    pub tests: usize,
}

/// Count test numbers (rate metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateStats {
    pub canary_numerator: f64,
    pub canary_denominator: f64,
    pub baseline_numerator: f64,
    pub baseline_denominator: f64,
    pub canary_rate: f64,
    pub baseline_rate: f64,
    pub p_value: f64,
    pub p_higher: f64,
    pub p_lower: f64,
    /// Interval of the rate ratio; null upper = unbounded.
    pub ratio_ci_lower: Option<f64>,
    pub ratio_ci_upper: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    pub name: String,
    pub group: String,
    pub kind: MetricKind,
    pub direction: Direction,
    pub classification: Classification,
    pub decided_by: DecidedBy,
    pub reason: String,
    pub critical: bool,
    /// The metric failed in a way that forces the score to 0.
    pub critical_failure: bool,
    /// Samples (continuous) or intervals (rate) left after cleaning.
    pub canary_count: usize,
    pub baseline_count: usize,
    pub canary_nan_removed: usize,
    pub baseline_nan_removed: usize,
    pub canary_outliers_removed: usize,
    pub baseline_outliers_removed: usize,
    pub canary_mean: Option<f64>,
    pub baseline_mean: Option<f64>,
    /// canary mean / baseline mean (rates: canary rate / baseline rate);
    /// null when the baseline is 0 or the ratio is not meaningful.
    pub ratio: Option<f64>,
    pub effect_size_bounds: EffectSize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<TailStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateStats>,
    /// The sequential test's numbers (`mode: sequential` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialStats>,
}

/// The e-process of a metric (`mode: sequential`): what decided, and its
/// path over the steps so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialStats {
    /// This test's e-process' share of the analysis' α: 1 − confidence
    /// split evenly over every one-sided test of the analysis, times the
    /// sequential share 0.75 (the rest is the final look's).
    pub alpha: f64,
    /// 1/alpha: an e-value at or above it is evidence enough.
    pub threshold: f64,
    /// The e-value after the last step (the larger of the two directions
    /// for `either`); capped at 1e300.
    pub e_value: f64,
    /// The largest e-value so far: what the decision uses (once crossed,
    /// always crossed).
    pub max_e_value: f64,
    /// Anytime-valid p-value, min(1, 1/maxEValue).
    pub p_value: f64,
    /// The first step (1-based) at which the e-value reached the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossed_at_step: Option<usize>,
    pub steps: usize,
    /// The e-value after every `pathEvery`-th step (and after the last).
    pub path: Vec<f64>,
    /// The stride of `path` in steps: 1 = every step.
    #[serde(default = "one")]
    pub path_every: usize,
    /// The early-pass (non-inferiority) test, when the config asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_pass: Option<EarlyPassStats>,
    /// The final look's fixed-horizon tests, at the end of the lifetime only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_look: Option<FinalLookStats>,
}

/// The final look of a sequential analysis (docs/judge.md, "Final look"):
/// the fixed-horizon rules on the whole window, once, at a level paid from
/// the analysis' α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinalLookStats {
    /// This metric's share of the analysis' α spent on the final look.
    pub alpha: f64,
    /// The level of the fixed tests (the Hodges-Lehmann interval's
    /// 1 − confidence, the tail check's and the rate test's p threshold).
    pub level: f64,
    /// What the fixed rules said at that level.
    pub classification: Classification,
    pub decided_by: DecidedBy,
}

fn one() -> usize {
    1
}

/// A metric's early-pass e-process (`earlyPass` in the config): evidence
/// against "the canary is worse than the baseline by at least `margin`" in
/// every checked direction (docs/judge.md, "Early pass"). Crossing proves
/// non-inferiority; it never fails a canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyPassStats {
    pub margin: f64,
    /// The early-pass error budget of this test: 1 − confidence (not split:
    /// early pass needs every test to cross, see docs/judge.md).
    pub alpha: f64,
    /// 1/alpha.
    pub threshold: f64,
    /// The e-value after the last step (the smaller of the two directions
    /// for `either`); capped at 1e300.
    pub e_value: f64,
    /// The largest e-value so far (for `either`, the smaller direction's).
    pub max_e_value: f64,
    /// Anytime-valid p-value of "worse by the margin", min(1, 1/maxEValue).
    pub p_value: f64,
    /// The first step (1-based) by which every checked direction had crossed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossed_at_step: Option<usize>,
    /// The e-value after every `pathEvery`-th step (and after the last).
    pub path: Vec<f64>,
    #[serde(default = "one")]
    pub path_every: usize,
}

/// Keeps every `every`-th value of `path` and always the last one, where
/// `path` covers `steps` steps.
fn thin(path: &mut Vec<f64>, every: usize, steps: usize) {
    let last = path.last().copied();
    *path = path
        .iter()
        .skip(every - 1)
        .step_by(every)
        .copied()
        .collect();
    if path.len() * every < steps
        && let Some(last) = last
    {
        path.push(last);
    }
}

impl SequentialStats {
    /// Thins `path` to at most `max` entries (a status must stay small over
    /// hours of 1 s steps): every k-th step, the last step always kept.
    pub fn thin_path(&mut self, max: usize) {
        let max = max.max(2);
        if self.path.len() > max {
            let every = self.path.len().div_ceil(max - 1);
            thin(&mut self.path, every, self.steps);
            self.path_every *= every;
        }
        if let Some(early) = self.early_pass.as_mut()
            && early.path.len() > max
        {
            let every = early.path.len().div_ceil(max - 1);
            thin(&mut early.path, every, self.steps);
            early.path_every *= every;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupScore {
    pub name: String,
    /// Configured weight (relative).
    pub weight: f64,
    /// Weight actually applied after normalising over scored groups.
    pub effective_weight: f64,
    /// null when no metric of the group was scored (all Nodata).
    pub score: Option<f64>,
    pub pass: usize,
    pub high: usize,
    pub low: usize,
    pub nodata: usize,
    pub nodata_fail: usize,
    pub error: usize,
}

/// Why the score was forced to 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ForcedZero {
    /// A critical metric failed (High, Low, NodataFailMetric, Error) or a
    /// metric crossed a critical effect-size bound: band Fail.
    CriticalMetricFailed { metrics: Vec<String> },
    /// ≥ 50% of the metrics had no data: band Inconclusive.
    TooMuchNodata { nodata: usize, total: usize },
    /// No metric of a weighted group was scored: band Inconclusive.
    NoScoredMetrics,
    /// A critical metric had no data (Nodata) while the others would have
    /// passed or been marginal: band Inconclusive, since a canary is not
    /// promoted without the metrics marked critical.
    CriticalMetricNodata { metrics: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgeResult {
    /// In [0, 100], rounded to two decimals (Kayenta); the band is decided
    /// on the rounded score.
    pub score: f64,
    pub band: Band,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_zero: Option<ForcedZero>,
    pub confidence: f64,
    /// The mode that judged (`fixed` when absent: results written before
    /// the field existed were all fixed mode).
    #[serde(default)]
    pub mode: JudgeMode,
    /// The tolerance the fixed mode applied; null in sequential mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    pub marginal_threshold: f64,
    pub pass_threshold: f64,
    pub metrics: Vec<MetricResult>,
    pub groups: Vec<GroupScore>,
}
