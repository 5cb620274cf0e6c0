//! Judge input: the samples of one metric, canary and baseline.
//! JSON `null` is a NaN sample (a gap), handled by the metric's nanStrategy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Samples of one metric, matched to its config by `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSamples {
    pub name: String,
    pub canary: Side,
    pub baseline: Side,
}

/// One side of a metric: a list of values (continuous), or per-interval counts (rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Side {
    /// One value per interval; `null` is NaN.
    Values(Vec<Option<f64>>),
    /// Numerator and denominator per interval (same length).
    Counts(Counts),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Counts {
    pub numerator: Vec<Option<f64>>,
    pub denominator: Vec<Option<f64>>,
}

impl Side {
    /// Continuous values; a `None` becomes NaN.
    pub fn values(values: &[f64]) -> Self {
        Side::Values(values.iter().map(|v| Some(*v)).collect())
    }
    /// Rate counts per interval.
    pub fn counts(numerator: &[f64], denominator: &[f64]) -> Self {
        Side::Counts(Counts {
            numerator: numerator.iter().map(|v| Some(*v)).collect(),
            denominator: denominator.iter().map(|v| Some(*v)).collect(),
        })
    }
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Side::Values(_) => "continuous",
            Side::Counts(_) => "rate",
        }
    }
}

impl MetricSamples {
    pub fn continuous(name: impl Into<String>, canary: &[f64], baseline: &[f64]) -> Self {
        Self {
            name: name.into(),
            canary: Side::values(canary),
            baseline: Side::values(baseline),
        }
    }
}

pub(crate) fn to_nan(values: &[Option<f64>]) -> Vec<f64> {
    values.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}
