//! Config validation: every issue, each with a field path, so a CRD status or
//! the CLI can point at the exact field.

use std::collections::HashSet;

use super::config::{JudgeConfig, JudgeMode, MetricConfig};
use super::error::{ConfigErrors, ConfigIssue};

/// Checks a config; `Ok(())` means `judge` will accept it.
pub fn validate(config: &JudgeConfig) -> Result<(), ConfigErrors> {
    let mut issues = Vec::new();
    let mut push = |path: String, message: &str| {
        issues.push(ConfigIssue {
            path,
            message: message.to_string(),
        })
    };

    if !(config.confidence > 0.0 && config.confidence < 1.0) {
        push("confidence".into(), "must be in (0, 1)");
    }
    if let Some(tol) = config.tolerance {
        if !(tol >= 0.0 && tol.is_finite()) {
            push("tolerance".into(), "must be a finite number >= 0");
        } else if config.mode == JudgeMode::Sequential {
            // The tolerance is a rule on a fixed-horizon interval; an
            // e-process has none. Silently ignoring it would let a user
            // believe it applies.
            push(
                "tolerance".into(),
                "applies to mode: fixed only (the sequential e-processes have no interval to compare); use effectSize bounds",
            );
        }
    }
    let t = config.score_thresholds;
    for (name, v) in [("marginal", t.marginal), ("pass", t.pass)] {
        if !(0.0..=100.0).contains(&v) {
            push(format!("scoreThresholds.{name}"), "must be in [0, 100]");
        }
    }
    if t.marginal > t.pass {
        push(
            "scoreThresholds.marginal".into(),
            "must not exceed scoreThresholds.pass",
        );
    }

    if let Some(early) = &config.early_pass {
        if config.mode != JudgeMode::Sequential {
            push(
                "earlyPass".into(),
                "needs mode: sequential (only anytime-valid tests may end an analysis early)",
            );
        }
        // NaN fails the comparison too.
        if !(early.margin > 1.0 && early.margin.is_finite()) {
            push("earlyPass.margin".into(), "must be a finite ratio > 1");
        }
    }

    let mut group_names = HashSet::new();
    for (i, g) in config.groups.iter().enumerate() {
        if g.name.is_empty() {
            push(format!("groups[{i}].name"), "must not be empty");
        }
        if !group_names.insert(g.name.as_str()) {
            push(format!("groups[{i}].name"), "duplicate group name");
        }
        // NaN fails this comparison too, which is what we want.
        if !(g.weight >= 0.0 && g.weight.is_finite()) {
            push(
                format!("groups[{i}].weight"),
                "must be a finite number >= 0",
            );
        }
    }
    if !config.groups.is_empty() && !config.groups.iter().any(|g| g.weight > 0.0) {
        push("groups".into(), "at least one group needs a weight > 0");
    }

    if config.metrics.is_empty() {
        push("metrics".into(), "at least one metric is required");
    }
    let mut metric_names = HashSet::new();
    for (i, m) in config.metrics.iter().enumerate() {
        if m.name.is_empty() {
            push(format!("metrics[{i}].name"), "must not be empty");
        }
        if !metric_names.insert(m.name.as_str()) {
            push(format!("metrics[{i}].name"), "duplicate metric name");
        }
        if !config.groups.is_empty() && !group_names.contains(m.group.as_str()) {
            push(
                format!("metrics[{i}].group"),
                "names a group that is not declared in groups",
            );
        }
        validate_metric(i, m, &mut push);
        if config.mode == JudgeMode::Sequential && m.outliers.enabled {
            // Which values are outliers depends on values not seen yet: a
            // decision at step t could change with later data, which no
            // anytime-valid test allows.
            push(
                format!("metrics[{i}].outliers.enabled"),
                "outlier removal cannot be used with mode: sequential (it depends on later samples)",
            );
        }
    }

    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors { issues })
    }
}

fn validate_metric(i: usize, m: &MetricConfig, push: &mut impl FnMut(String, &str)) {
    let p = |field: &str| format!("metrics[{i}].{field}");
    if !(m.outliers.factor > 0.0 && m.outliers.factor.is_finite()) {
        push(p("outliers.factor"), "must be a finite number > 0");
    }
    let e = m.effect_size;
    if let Some(v) = e.allowed_increase
        && !(v >= 1.0 && v.is_finite())
    {
        push(
            p("effectSize.allowedIncrease"),
            "must be a finite ratio >= 1",
        );
    }
    if let Some(v) = e.allowed_decrease
        && !(v > 0.0 && v <= 1.0)
    {
        push(p("effectSize.allowedDecrease"), "must be a ratio in (0, 1]");
    }
    if let Some(v) = e.critical_increase {
        if !(v >= 1.0 && v.is_finite()) {
            push(
                p("effectSize.criticalIncrease"),
                "must be a finite ratio >= 1",
            );
        } else if e.allowed_increase.is_some_and(|a| v < a) {
            push(
                p("effectSize.criticalIncrease"),
                "must be >= effectSize.allowedIncrease",
            );
        }
    }
    if let Some(v) = e.critical_decrease {
        if !(0.0..=1.0).contains(&v) {
            push(
                p("effectSize.criticalDecrease"),
                "must be a ratio in [0, 1]",
            );
        } else if e.allowed_decrease.is_some_and(|a| v > a) {
            push(
                p("effectSize.criticalDecrease"),
                "must be <= effectSize.allowedDecrease",
            );
        }
    }
    for (j, q) in m.tail.quantiles.iter().enumerate() {
        if !(*q > 0.5 && *q < 1.0) {
            push(p(&format!("tail.quantiles[{j}]")), "must be in (0.5, 1)");
        }
    }
    if m.tail.enabled && m.tail.quantiles.is_empty() {
        push(
            p("tail.quantiles"),
            "must not be empty when the tail check is enabled",
        );
    }
}
