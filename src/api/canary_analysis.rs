//! The `CanaryAnalysis` custom resource (`redblack.io/v1alpha1`): one judgement
//! of an experiment (canary) against a control (baseline) over a time window
//! made of intervals. The status *is* the canary report (docs/canary-analysis.md).
//!
//! Semantics (schedule, early end, verdict, status bounds): docs/canary-analysis.md.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DURATION_PATTERN;
use redblack_judge::{
    Band, GroupConfig, GroupScore, JudgeMode, MetricConfig, MetricResult, ScoreThresholds,
};

/// API group of every redblack resource.
pub const GROUP: &str = "redblack.io";
/// API version of this resource.
pub const VERSION: &str = "v1alpha1";

/// The shortest `interval`: a judgement is a round of queries.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest `step`: Prometheus's resolution is counted in points per second.
pub const MIN_STEP: Duration = Duration::from_secs(1);

/// Every duration field of a CanaryAnalysis spec (all carry
/// [`DURATION_PATTERN`]): its path under `spec` and the least value the
/// analysis controller takes. A Rollout checks its inline analyses with it.
pub const DURATION_FIELDS: [(&[&str], Duration); 7] = [
    (&["lifetime"], Duration::ZERO),
    (&["interval"], MIN_INTERVAL),
    (&["warmup"], Duration::ZERO),
    (&["step"], MIN_STEP),
    (&["control", "timeShift"], Duration::ZERO),
    (&["experiment", "timeShift"], Duration::ZERO),
    (&["earlyPass", "minDuration"], Duration::ZERO),
];

/// One automated canary analysis: metrics of an experiment scope compared with a
/// control scope, interval by interval. Created by the Rollout controller for
/// each canary, or by hand (e.g. retrospectively, with `startTime` and `endTime`
/// in the past).
// The lint mistakes repeated `printcolumn(type_ = ...)` for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "redblack.io",
    version = "v1alpha1",
    kind = "CanaryAnalysis",
    plural = "canaryanalyses",
    namespaced,
    status = "CanaryAnalysisStatus",
    shortname = "rbca",
    category = "redblack",
    doc = "An automated canary analysis: experiment vs control, judged interval by interval.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Score", type_ = "number", json_path = ".status.score"),
    printcolumn(
        name = "Intervals",
        type_ = "string",
        json_path = ".status.intervalProgress",
        description = "judged/total intervals"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.endTime) != has(self.lifetime)", "message": "set exactly one of endTime and lifetime"},
    {"rule": "!has(self.scoreThresholds) || !has(self.scoreThresholds.marginal) || !has(self.scoreThresholds.pass) || self.scoreThresholds.marginal <= self.scoreThresholds.pass",
     "message": "scoreThresholds.marginal must not exceed scoreThresholds.pass"},
    {"rule": "!has(self.earlyPass) || !has(self.mode) || self.mode == 'sequential'",
     "message": "earlyPass needs mode: sequential"}
]))]
pub struct CanaryAnalysisSpec {
    /// Prometheus to query. Default: the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRef>,
    /// The control (baseline) scope. Its role defaults to `baseline`.
    pub control: AnalysisScope,
    /// The experiment (canary) scope. Its role defaults to `canary`.
    pub experiment: AnalysisScope,
    /// Start of the analysis window (RFC 3339). Default: the object's creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// End of the analysis window. Exactly one of `endTime` and `lifetime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Length of the analysis window from `startTime`, e.g. `30m`. Exactly one of `endTime` and `lifetime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub lifetime: Option<String>,
    /// Length of one interval, e.g. `5m`: a judgement is made at every interval boundary.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: String,
    /// Time after `startTime` that is not judged (caches warming up, connections moving). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub warmup: Option<String>,
    /// Query resolution: one sample per metric and scope every `step`. Default 30s.
    /// The judge wants at least 50 samples per metric: a window of 25 minutes at 30s.
    /// In metric queries `${interval}` is the step (each point summarises one step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub step: Option<String>,
    /// Traffic query template, evaluated for the experiment at the end of each
    /// interval with `${interval}` = the interval's length. Zero, NaN or no
    /// value: the interval is Inconclusive ("canary received no traffic").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
    /// Score bands. Default: marginal 75, pass 95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_thresholds: Option<ScoreThresholds>,
    /// Metric groups and their relative weights. Empty: equal weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupConfig>,
    /// Confidence of every statistical test, in (0, 1). Default 0.98.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// How the evidence is judged. `sequential`: anytime-valid tests
    /// evaluated at every step — the analysis fails as soon as a metric's
    /// evidence crosses — and the fixed-horizon tests once at the end; the
    /// false failure probability of the whole analysis stays below
    /// 1 − confidence. `fixed`: Kayenta's tests at every interval boundary,
    /// each at `confidence` (every extra look is another chance of a false
    /// failure). Unset: `sequential` when the judged window holds at least
    /// 50 steps or `earlyPass` is set, `fixed` when `tolerance` or outlier
    /// removal is set or the window is shorter. See docs/judge.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<JudgeMode>,
    /// `mode: sequential` only, opt-in: end the analysis Passed as soon as
    /// every metric is shown (anytime-valid, at `confidence`) to be no worse
    /// than the baseline by `margin`, but not before `minDuration` after
    /// the start. Absent: a passing analysis runs its whole window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_pass: Option<EarlyPass>,
    /// Kayenta's tolerance (`mode: fixed` only; an error with `sequential`;
    /// set without a mode, it keeps the analysis in `fixed`):
    /// a shift is High (Low) only when its interval's lower bound exceeds
    /// tolerance·|Hodges-Lehmann shift| (upper bound below −tolerance·|shift|).
    /// Finite, >= 0; 0 = the interval only has to exclude 0. Default 0.25
    /// (Kayenta's production NetflixACAJudge). See docs/judge.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// The metrics (at least one).
    #[schemars(length(min = 1))]
    pub metrics: Vec<AnalysisMetric>,
}

/// The fewest steps in the judged window for which an analysis without
/// `mode` is judged sequentially ([`CanaryAnalysisSpec::resolved_mode`]).
pub const SEQUENTIAL_DEFAULT_MIN_STEPS: u64 = 50;

impl CanaryAnalysisSpec {
    /// The judge mode: `mode` when set; else `fixed` when the spec sets a
    /// field only the fixed mode has (Kayenta's `tolerance`, outlier
    /// removal on a metric); else `sequential` when it sets `earlyPass` or
    /// the judged window holds at least [`SEQUENTIAL_DEFAULT_MIN_STEPS`]
    /// steps; else `fixed` (docs/judge.md, "Which mode"). Why the window:
    /// below ~50 points per side one fixed look has more power than the
    /// anytime-valid tests and the final look's share of α (measured
    /// there); why the fields: such a spec was written for the fixed mode
    /// and keeps it rather than failing validation after an upgrade.
    pub fn resolved_mode(&self, judged_steps: u64) -> JudgeMode {
        if let Some(mode) = self.mode {
            return mode;
        }
        let fixed_only =
            self.tolerance.is_some() || self.metrics.iter().any(|m| m.judge.outliers.enabled);
        if fixed_only {
            JudgeMode::Fixed
        } else if self.early_pass.is_some() || judged_steps >= SEQUENTIAL_DEFAULT_MIN_STEPS {
            // earlyPass exists only in sequential mode: asking for it asks for the mode.
            JudgeMode::Sequential
        } else {
            JudgeMode::Fixed
        }
    }
}

/// When a sequential analysis may pass before its end (`spec.earlyPass`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// The margin is checked by the controller (phase Error naming
// spec.earlyPass.margin), not by CEL: an integer written in a number field
// would make a CEL comparison with 1.0 a type question.
pub struct EarlyPass {
    /// The least time from the analysis start before it may pass early
    /// (e.g. `2m`: slow leaks and the first cache misses need some time to
    /// show). At most the analysis window.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub min_duration: String,
    /// The non-inferiority margin, a ratio > 1: the canary passes early once
    /// no metric can be `margin` times worse than the baseline (rate:
    /// its rate; `direction: decrease`: `margin` times lower). Default 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

/// Where to query, and how (docs/canary-analysis.md, "Metric endpoints").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.basicAuth) && has(self.bearerTokenSecretRef))", "message": "set at most one of basicAuth and bearerTokenSecretRef"}
]))]
pub struct PrometheusRef {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`. The operator
    /// queries only URLs its allow-list permits.
    pub url: String,
    /// TLS settings (CA, client certificate, server name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::endpoint::EndpointTls>,
    /// Basic authentication; the password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<super::endpoint::BasicAuth>,
    /// `Authorization: Bearer` token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret_ref: Option<super::endpoint::SecretKeyRef>,
    /// Extra request headers (e.g. a tenant ID).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<super::endpoint::EndpointHeader>,
}

impl PrometheusRef {
    /// A plain endpoint: the URL alone.
    pub fn url(url: impl Into<String>) -> Self {
        PrometheusRef {
            url: url.into(),
            tls: None,
            basic_auth: None,
            bearer_token_secret_ref: None,
            headers: Vec::new(),
        }
    }
}

/// One side of the comparison: the values its query templates see.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisScope {
    /// `${namespace}`. Default: the CanaryAnalysis's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `${replicaSet}`; `${podRegex}` is derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_set: Option<String>,
    /// `${revision}` (pod-template hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `${role}`. Default `baseline` (control) / `canary` (experiment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Extra template variables; may not reuse a built-in name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Query this scope over the window shifted this far into the past:
    /// `[start - timeShift, end - timeShift]` (e.g. the previous fleet before
    /// a switch, for post-promotion analysis). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub time_shift: Option<String>,
}

/// A judge metric plus the PromQL it is measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.kind) && self.kind == 'rate') ? (has(self.numerator) && has(self.denominator) && !has(self.query)) : (has(self.query) && !has(self.numerator) && !has(self.denominator))",
     "message": "a continuous metric has a query; a rate metric (kind: rate) has numerator and denominator"}
]))]
pub struct AnalysisMetric {
    /// How the metric is judged (name, group, direction, effect sizes, kind…).
    #[serde(flatten)]
    pub judge: MetricConfig,
    /// Continuous metrics: a template returning one series per scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Rate metrics: the numerator count per step (e.g. errors), one series per scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerator: Option<String>,
    /// Rate metrics: the denominator count per step (e.g. requests), one series per scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<String>,
}

/// Where an analysis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CanaryAnalysisPhase {
    /// The window has not started yet.
    Pending,
    /// Intervals are being judged.
    Running,
    /// Final score at or above the pass threshold.
    Passed,
    /// Final score between the marginal and pass thresholds.
    Marginal,
    /// An interval scored at or below the marginal threshold (early end), or the final score did.
    Failed,
    /// Not enough evidence (no canary traffic, too many metrics without data).
    Inconclusive,
    /// The analysis could not be run: invalid spec, invalid query, unreachable Prometheus.
    Error,
}

impl CanaryAnalysisPhase {
    /// Whether the analysis is over (nothing more will be judged for this generation).
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            CanaryAnalysisPhase::Pending | CanaryAnalysisPhase::Running
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CanaryAnalysisPhase::Pending => "Pending",
            CanaryAnalysisPhase::Running => "Running",
            CanaryAnalysisPhase::Passed => "Passed",
            CanaryAnalysisPhase::Marginal => "Marginal",
            CanaryAnalysisPhase::Failed => "Failed",
            CanaryAnalysisPhase::Inconclusive => "Inconclusive",
            CanaryAnalysisPhase::Error => "Error",
        }
    }
}

impl std::fmt::Display for CanaryAnalysisPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysisStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CanaryAnalysisPhase>,
    /// Human-readable state: the verdict and why, or what is wrong (naming the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Score of the latest judged interval (cumulative window), 0..100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Band of the latest judged interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the controller started judging this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the verdict (or the error) was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// The resolved window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<AnalysisWindow>,
    /// Intervals judged so far (the controller continues after this one on restart).
    #[serde(default)]
    pub completed_intervals: u32,
    /// Intervals in the window.
    #[serde(default)]
    pub total_intervals: u32,
    /// `completed/total`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_progress: Option<String>,
    /// The latest judged intervals, oldest first (at most 20; `aggregate` counts all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalResult>,
    /// Counts over every judged interval, including those dropped from `intervals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<IntervalAggregate>,
    /// Why the latest judgement has its score (thresholds, forced zero…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// Per metric: classification and every number behind it, from the latest judgement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
    /// Metrics left out of `metrics` to keep the object small (passing ones
    /// first; see docs/canary-analysis.md). Absent when none were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_omitted: Option<u32>,
    /// Per group scores of the latest judgement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupScore>,
    /// Consecutive failed attempts to reach the metric source (reset by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_failures: Option<SourceFailures>,
    /// `Ready`, `Completed`, `Stalled` (kstatus-friendly; see docs/canary-analysis.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Set when the analysis passed early (`spec.earlyPass`): when the
    /// evidence crossed and when the analysis passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_pass: Option<EarlyPassStatus>,
}

/// How a sequential analysis passed early (`spec.earlyPass`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyPassStatus {
    /// The step point at which the last metric's non-inferiority test
    /// crossed (`judgedFrom + crossedAtStep × step`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossed_at: Option<Time>,
    /// That step, 1-based from `judgedFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossed_at_step: Option<u32>,
    /// The look that passed the analysis (≥ start + minDuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// The judge's reason (every metric shown within the margin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// Nested status objects have only optional fields: server-side apply removes
// the fields a manager stops applying but may leave their parent behind as
// `{}`, which must still decode (and compare equal to "absent", see
// `analysis::controller::canonical::canonical`).

/// The window as resolved from the spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisWindow {
    /// `startTime` (or the creation time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Time>,
    /// `start + warmup`: where judged data begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_from: Option<Time>,
    /// `endTime` (or `start + lifetime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
    /// Interval length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<i64>,
    /// Step in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_seconds: Option<i64>,
}

/// One judged interval. Each judgement covers `[window.judgedFrom, end]`
/// (cumulative, as Kayenta); `start` is where this interval began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalResult {
    /// 1-based.
    pub index: u32,
    pub start: Time,
    pub end: Time,
    /// null when the interval was inconclusive before judging (no traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub band: Band,
    /// Why the interval is Inconclusive (e.g. "canary received no traffic").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_reason: Option<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

/// Counts over every judged interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalAggregate {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub judged: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pass: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub marginal: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fail: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconclusive: u32,
    /// Lowest score of a scored interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// Sum of the scores of scored intervals (with `scored`, the mean).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub score_sum: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scored: u32,
}

/// The summary of the latest judgement.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Judgement {
    /// The interval it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// `mode: sequential`: the end of the judged window when the judgement
    /// was made between interval boundaries (the step at which the evidence
    /// crossed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The mode that judged (`spec.mode`, or the default it resolved to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<JudgeMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marginal_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_threshold: Option<f64>,
}

/// Consecutive transient failures of the metric source.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceFailures {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Not before this time is the source asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Time>,
}

impl CanaryAnalysis {
    /// Whether the status describes the current spec (`observedGeneration`).
    pub fn is_observed(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.observed_generation.is_some() && s.observed_generation == self.metadata.generation
        })
    }

    /// The verdict once the analysis of the current spec is over: Passed,
    /// Marginal, Failed, Inconclusive or Error; `None` while Pending/Running
    /// or before the controller has seen this generation.
    pub fn verdict(&self) -> Option<CanaryAnalysisPhase> {
        let phase = self.status.as_ref()?.phase?;
        (self.is_observed() && phase.is_terminal()).then_some(phase)
    }

    /// Score of the latest judged interval.
    pub fn score(&self) -> Option<f64> {
        self.status.as_ref()?.score
    }
}

impl AnalysisScope {
    /// The pods of one ReplicaSet (`${podRegex}` is derived from its name).
    pub fn replica_set(replica_set: impl Into<String>, revision: impl Into<String>) -> Self {
        AnalysisScope {
            replica_set: Some(replica_set.into()),
            revision: Some(revision.into()),
            ..AnalysisScope::default()
        }
    }
}

/// Why a Rollout's inline analysis body is not a CanaryAnalysis spec.
#[derive(Debug, thiserror::Error)]
pub enum InlineSpecError {
    #[error("the inline analysis must be an object")]
    NotAnObject,
    #[error("invalid inline analysis: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// The spec of the CanaryAnalysis for one canary, from a Rollout's inline
/// analysis body (a CanaryAnalysis spec, usually without scopes or times).
/// The given scopes' `replicaSet` and `revision` override the body's; the
/// body's other scope fields (namespace, role, variables) are kept.
pub fn spec_for_canary(
    inline: &serde_json::Value,
    control: &AnalysisScope,
    experiment: &AnalysisScope,
) -> Result<CanaryAnalysisSpec, InlineSpecError> {
    let mut body = inline
        .as_object()
        .cloned()
        .ok_or(InlineSpecError::NotAnObject)?;
    for (key, scope) in [("control", control), ("experiment", experiment)] {
        let mut merged = match body.remove(key) {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let serde_json::Value::Object(given) = serde_json::to_value(scope)? {
            for (k, v) in given {
                if k == "variables" {
                    let vars = merged
                        .entry("variables")
                        .or_insert_with(|| serde_json::Value::Object(Default::default()));
                    if let (Some(into), Some(from)) = (vars.as_object_mut(), v.as_object()) {
                        into.extend(from.clone());
                    }
                } else {
                    merged.insert(k, v);
                }
            }
        }
        body.insert(key.to_owned(), serde_json::Value::Object(merged));
    }
    Ok(serde_json::from_value(serde_json::Value::Object(body))?)
}

/// The CustomResourceDefinition, for `redblack crd` and tests.
pub fn crd() -> CustomResourceDefinition {
    CanaryAnalysis::crd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_has_names_columns_and_status() {
        let crd = crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.kind, "CanaryAnalysis");
        assert_eq!(crd.spec.names.plural, "canaryanalyses");
        assert_eq!(crd.spec.names.short_names, Some(vec!["rbca".to_string()]));
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["redblack".to_string()])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Phase", "Score", "Intervals", "Age", "Message"]);
        let schema = serde_json::to_value(&version.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert!(spec["x-kubernetes-validations"].is_array(), "{spec}");
        assert_eq!(spec["properties"]["metrics"]["minItems"], 1);
        // The flattened judge config: the metric has its query and the judge's fields.
        let metric = &spec["properties"]["metrics"]["items"]["properties"];
        for field in [
            "name",
            "query",
            "numerator",
            "denominator",
            "direction",
            "effectSize",
            "kind",
        ] {
            assert!(
                metric.get(field).is_some(),
                "metric field {field} missing: {metric}"
            );
        }
    }

    #[test]
    fn verdict_needs_the_current_generation_and_a_terminal_phase() {
        let mut ca: CanaryAnalysis = serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysis",
            "metadata": {"name": "x", "namespace": "ns", "generation": 2},
            "spec": {"control": {}, "experiment": {}, "lifetime": "1m", "interval": "1m", "metrics": []}
        }))
        .unwrap();
        assert_eq!(ca.verdict(), None);
        let status = |phase, generation| CanaryAnalysisStatus {
            phase: Some(phase),
            observed_generation: Some(generation),
            ..CanaryAnalysisStatus::default()
        };
        ca.status = Some(status(CanaryAnalysisPhase::Passed, 1));
        assert_eq!(ca.verdict(), None, "stale generation");
        ca.status = Some(status(CanaryAnalysisPhase::Running, 2));
        assert_eq!(ca.verdict(), None);
        ca.status = Some(status(CanaryAnalysisPhase::Failed, 2));
        assert_eq!(ca.verdict(), Some(CanaryAnalysisPhase::Failed));
    }

    #[test]
    fn spec_for_a_canary_from_an_inline_body() {
        let inline = serde_json::json!({
            "lifetime": "30m", "interval": "5m",
            "control": {"variables": {"code": "5.."}},
            "metrics": [{"name": "latency", "query": "q"}]
        });
        let spec = spec_for_canary(
            &inline,
            &AnalysisScope::replica_set("web-base", "aaa"),
            &AnalysisScope::replica_set("web-canary", "bbb"),
        )
        .unwrap();
        assert_eq!(spec.control.replica_set.as_deref(), Some("web-base"));
        assert_eq!(
            spec.control.variables.get("code").map(String::as_str),
            Some("5..")
        );
        assert_eq!(spec.experiment.revision.as_deref(), Some("bbb"));
        assert_eq!(spec.interval, "5m");
        let err = spec_for_canary(
            &serde_json::json!({"lifetime": "1m"}),
            &AnalysisScope::default(),
            &AnalysisScope::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        assert!(matches!(
            spec_for_canary(
                &serde_json::json!([]),
                &AnalysisScope::default(),
                &AnalysisScope::default()
            ),
            Err(InlineSpecError::NotAnObject)
        ));
    }

    #[test]
    fn metric_flattens_the_judge_config() {
        let m: AnalysisMetric = serde_json::from_value(serde_json::json!({
            "name": "latency", "direction": "increase", "query": "x",
            "effectSize": {"allowedIncrease": 1.1}
        }))
        .unwrap();
        assert_eq!(m.judge.name, "latency");
        assert_eq!(m.judge.effect_size.allowed_increase, Some(1.1));
        assert_eq!(m.query.as_deref(), Some("x"));
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["query"], "x");
        assert_eq!(back["direction"], "increase");
    }
}
