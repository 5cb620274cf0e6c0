//! Judge configuration: the shape the CanaryAnalysis spec (and a Rollout's
//! canary analysis) embeds. Every default lives here, next to the reason for it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a whole canary is judged: thresholds, metric groups and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JudgeConfig {
    /// Score bands. Default: marginal 75, pass 95.
    #[serde(default)]
    pub score_thresholds: ScoreThresholds,
    /// Metric groups and their weights. Weights are relative: they are
    /// normalised over the groups that scored, so they need not sum to 100.
    /// Empty: every group named by a metric gets the same weight.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// The metrics to judge (at least one).
    pub metrics: Vec<MetricConfig>,
    /// `mode: sequential` only: also run, per metric, the anytime-valid
    /// test that the canary is *not worse* than the baseline by `margin`,
    /// so that a caller may pass the analysis early (docs/judge.md, "Early
    /// pass"). Absent: never (and no early-pass numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_pass: Option<EarlyPassConfig>,
    /// Confidence level of every test and interval, in (0, 1). Default 0.98
    /// (Kayenta's NetflixACAJudge).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// How the evidence is weighed: `fixed` (Kayenta's tests, one
    /// judgement per look) or `sequential` (anytime-valid e-processes: any
    /// number of looks, one error budget). Default fixed.
    #[serde(default)]
    pub mode: JudgeMode,
    /// Kayenta's tolerance, fixed mode only: a shift is High (Low) only when
    /// its interval's lower bound exceeds tolerance·|Hodges-Lehmann shift|
    /// (its upper bound is below −tolerance·|shift|). 0 = the interval only
    /// has to exclude 0. Finite and >= 0; unset = 0.25 (Kayenta's
    /// production NetflixACAJudge). Does not apply to `mode: sequential`
    /// (setting it there is a validation error). See docs/judge.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

impl JudgeConfig {
    /// The tolerance the fixed mode applies (None in sequential mode).
    pub fn effective_tolerance(&self) -> Option<f64> {
        effective_tolerance(self.mode, self.tolerance)
    }
}

/// The tolerance a config with this `mode` and `tolerance` field applies:
/// the field, else [`DEFAULT_TOLERANCE`], in fixed mode; None in sequential
/// mode, whose e-processes have no interval to compare.
pub fn effective_tolerance(mode: JudgeMode, tolerance: Option<f64>) -> Option<f64> {
    match mode {
        JudgeMode::Fixed => Some(tolerance.unwrap_or(DEFAULT_TOLERANCE)),
        JudgeMode::Sequential => None,
    }
}

/// Fixed-horizon tests or anytime-valid sequential ones. See docs/judge.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JudgeMode {
    /// Every judgement is a test at `confidence` (Kayenta): each extra look
    /// at a growing sample is another chance of a false failure.
    #[default]
    Fixed,
    /// One e-process per metric and direction: the false failure
    /// probability of the whole analysis stays below 1 − confidence however
    /// often it is judged.
    Sequential,
}

/// The early-pass tests' parameter (see [`JudgeConfig::early_pass`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EarlyPassConfig {
    /// The non-inferiority margin, a ratio > 1: a canary is "worse" when its
    /// values are at least `margin` × the baseline's (rates: its rate; for
    /// `direction: decrease`, at most baseline / `margin`). Early pass needs
    /// evidence that no metric is that much worse. Default 1.2.
    #[serde(default = "default_margin")]
    pub margin: f64,
}

/// 1.2: a 20 % degradation is what `allowedIncrease` examples and most
/// SLO-style guards tolerate; a tighter margin costs samples fast (the
/// evidence per step shrinks with ln(margin)², so 1.1 needs ~3× the steps).
pub const DEFAULT_EARLY_PASS_MARGIN: f64 = 1.2;

fn default_margin() -> f64 {
    DEFAULT_EARLY_PASS_MARGIN
}

impl Default for EarlyPassConfig {
    fn default() -> Self {
        Self {
            margin: DEFAULT_EARLY_PASS_MARGIN,
        }
    }
}

/// `score >= pass` is Pass, `score >= marginal` is Marginal, below is Fail.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreThresholds {
    #[serde(default = "default_marginal")]
    pub marginal: f64,
    #[serde(default = "default_pass")]
    pub pass: f64,
}

impl Default for ScoreThresholds {
    fn default() -> Self {
        Self {
            marginal: default_marginal(),
            pass: default_pass(),
        }
    }
}

/// A named group of metrics with a relative weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Relative weight, >= 0.
    pub weight: f64,
}

/// Which change of a metric is bad, and therefore checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Only an increase fails (latency, errors).
    Increase,
    /// Only a decrease fails (throughput, success ratio).
    Decrease,
    /// Both fail (Kayenta's default).
    #[default]
    Either,
}

impl Direction {
    pub fn checks_increase(self) -> bool {
        matches!(self, Direction::Increase | Direction::Either)
    }
    pub fn checks_decrease(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Either)
    }
}

/// What to do with NaN samples (Prometheus gaps, JSON null).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NanStrategy {
    /// Drop them (Kayenta's default).
    #[default]
    Remove,
    /// Replace them with 0 (for counters where "no sample" means "nothing happened").
    Replace,
}

/// Continuous samples, or counts whose ratio is the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetricKind {
    /// One number per interval (latency, CPU): Mann-Whitney + Hodges-Lehmann + tail check.
    #[default]
    Continuous,
    /// Numerator and denominator counts per interval (errors / requests):
    /// exact conditional test on the pooled counts.
    Rate,
}

/// IQR outlier removal, per side. Off by default, as in Kayenta: removing
/// "outliers" would also remove the tail regressions the tail check looks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Values outside [min(Q1 - factor*IQR, P1), max(Q3 + factor*IQR, P99)]
    /// are dropped (Kayenta's fences: never a value between the 1st and
    /// 99th percentiles). Default 3.
    #[serde(default = "default_iqr_factor")]
    pub factor: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            factor: default_iqr_factor(),
        }
    }
}

/// Effect-size bounds, as ratios of means (canary mean / baseline mean; for
/// rate metrics, canary rate / baseline rate). Unset means "no bound".
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectSize {
    /// A significant increase with ratio below this is tolerated (Pass). >= 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_increase: Option<f64>,
    /// A significant decrease with ratio above this is tolerated (Pass). In (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_decrease: Option<f64>,
    /// A significant increase with ratio at or above this is a critical
    /// failure: the canary scores 0. >= allowedIncrease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_increase: Option<f64>,
    /// A significant decrease with ratio at or below this is a critical
    /// failure. In [0, allowedDecrease].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_decrease: Option<f64>,
}

/// The tail check (beyond Kayenta): catches spread/tail regressions that
/// Mann-Whitney misses. See docs/judge.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TailCheckConfig {
    /// Default on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pooled quantiles whose exceedances are compared, each in (0.5, 1).
    /// Default [0.9, 0.95]. More quantiles cost Bonferroni power.
    #[serde(default = "default_tail_quantiles")]
    pub quantiles: Vec<f64>,
}

impl Default for TailCheckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            quantiles: default_tail_quantiles(),
        }
    }
}

/// One metric and how it is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricConfig {
    /// Unique name; samples are matched to the config by it.
    pub name: String,
    /// Group name. Default "default".
    #[serde(default = "default_group")]
    pub group: String,
    /// Which change is bad. Default either.
    #[serde(default)]
    pub direction: Direction,
    /// Default remove.
    #[serde(default)]
    pub nan_strategy: NanStrategy,
    /// Default off.
    #[serde(default)]
    pub outliers: OutlierConfig,
    /// A failure of this metric (High, Low, NodataFailMetric, Error) scores the canary 0.
    #[serde(default)]
    pub critical: bool,
    /// No data is a failure (NodataFailMetric) instead of Nodata.
    #[serde(default)]
    pub must_have_data: bool,
    #[serde(default)]
    pub effect_size: EffectSize,
    /// Default continuous.
    #[serde(default)]
    pub kind: MetricKind,
    /// Continuous metrics only.
    #[serde(default)]
    pub tail: TailCheckConfig,
}

impl MetricConfig {
    /// A metric with every default, for callers that build configs in code.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            group: default_group(),
            direction: Direction::default(),
            nan_strategy: NanStrategy::default(),
            outliers: OutlierConfig::default(),
            critical: false,
            must_have_data: false,
            effect_size: EffectSize::default(),
            kind: MetricKind::default(),
            tail: TailCheckConfig::default(),
        }
    }
}

impl JudgeConfig {
    /// A config with default thresholds, groups and confidence.
    pub fn new(metrics: Vec<MetricConfig>) -> Self {
        Self {
            score_thresholds: ScoreThresholds::default(),
            groups: Vec::new(),
            metrics,
            early_pass: None,
            confidence: default_confidence(),
            mode: JudgeMode::default(),
            tolerance: None,
        }
    }
}

pub const DEFAULT_CONFIDENCE: f64 = 0.98;
/// Kayenta's production NetflixACAJudge: MannWhitneyClassifier(fraction = 0.25).
pub const DEFAULT_TOLERANCE: f64 = 0.25;

fn default_confidence() -> f64 {
    DEFAULT_CONFIDENCE
}
fn default_marginal() -> f64 {
    75.0
}
fn default_pass() -> f64 {
    95.0
}
fn default_iqr_factor() -> f64 {
    3.0
}
fn default_true() -> bool {
    true
}
fn default_tail_quantiles() -> Vec<f64> {
    vec![0.9, 0.95]
}
fn default_group() -> String {
    "default".to_string()
}
