//! PURE: checks a CanaryAnalysis spec and resolves it into what the
//! controller runs: the schedule, the two scopes, parsed templates, and the
//! judge config. Every problem is reported with the path of its field.

use std::fmt;
use std::time::Duration;

use chrono::TimeDelta;

use super::interval::Schedule;
use super::time::from_time;
use crate::analysis::query::{QueryTemplate, Scope};
use crate::api::canary_analysis::{AnalysisScope, CanaryAnalysis, MIN_STEP};
use crate::api::validate::parse_duration;
use redblack_judge::config::DEFAULT_CONFIDENCE;
use redblack_judge::config::DEFAULT_EARLY_PASS_MARGIN;
use redblack_judge::{self as judge, EarlyPassConfig, JudgeConfig, MetricKind};

/// Default query resolution.
pub const DEFAULT_STEP: Duration = Duration::from_secs(30);
/// Prometheus refuses range queries with more points per series than this.
pub const MAX_POINTS: i64 = 11_000;

/// One problem with the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// e.g. `spec.metrics[1].query`
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid spec: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecErrors(pub Vec<SpecIssue>);

/// How a metric is queried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricQueries {
    Continuous(QueryTemplate),
    Rate {
        numerator: QueryTemplate,
        denominator: QueryTemplate,
    },
}

/// A spec that passed every check.
#[derive(Debug, Clone)]
pub struct ResolvedSpec {
    pub prometheus_url: String,
    /// `spec.prometheus` (TLS, auth, headers); `None`: the operator's default endpoint.
    pub endpoint: Option<crate::api::canary_analysis::PrometheusRef>,
    pub schedule: Schedule,
    pub step: Duration,
    pub control: Scope,
    pub experiment: Scope,
    /// `timeShift` of each scope: its queries cover the window moved back by it.
    pub control_shift: TimeDelta,
    pub experiment_shift: TimeDelta,
    pub traffic: Option<QueryTemplate>,
    pub judge: JudgeConfig,
    /// `spec.earlyPass.minDuration`: early pass is allowed, this long
    /// after the start at the earliest (its margin is in `judge.early_pass`).
    pub early_pass_after: Option<TimeDelta>,
    /// Parallel to `judge.metrics`.
    pub queries: Vec<MetricQueries>,
}

/// `d` to the millisecond (durations are at most 100 years: no overflow).
fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Builds the template scope of one side.
pub fn scope(side: &AnalysisScope, default_namespace: &str, default_role: &str) -> Scope {
    let namespace = side
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_owned());
    let role = side.role.clone().unwrap_or_else(|| default_role.to_owned());
    let mut scope = match &side.replica_set {
        Some(rs) => Scope::for_replica_set(
            namespace,
            rs,
            side.revision.clone().unwrap_or_default(),
            role,
        ),
        None => Scope {
            namespace,
            revision: side.revision.clone().unwrap_or_default(),
            role,
            ..Scope::default()
        },
    };
    scope.extra = side.variables.clone();
    scope
}

/// Parses `text` and renders it for every scope, which finds unknown
/// variables, empty values and extras that reuse a built-in name.
fn check_template(
    issues: &mut Vec<SpecIssue>,
    path: &str,
    text: &str,
    scopes: &[(&str, &Scope)],
    window: Duration,
) -> Option<QueryTemplate> {
    let checked = QueryTemplate::parse(text)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            for (name, scope) in scopes {
                t.render(scope, window)
                    .map_err(|e| format!("{e} (rendering for the {name} scope)"))?;
            }
            Ok(t)
        });
    match checked {
        Ok(t) => Some(t),
        Err(message) => {
            issues.push(SpecIssue {
                path: path.to_owned(),
                message,
            });
            None
        }
    }
}

/// Checks and resolves `ca`'s spec. `default_url` is the operator's `--prometheus-url`.
pub fn resolve(ca: &CanaryAnalysis, default_url: Option<&str>) -> Result<ResolvedSpec, SpecErrors> {
    let spec = &ca.spec;
    let mut issues: Vec<SpecIssue> = Vec::new();
    macro_rules! push {
        ($path:expr, $message:expr $(,)?) => {
            issues.push(SpecIssue {
                path: String::from($path),
                message: $message,
            })
        };
    }

    let prometheus_url = match (&spec.prometheus, default_url) {
        (Some(p), _) if p.url.trim().is_empty() => {
            push!("spec.prometheus.url", "must not be empty".into());
            String::new()
        }
        (Some(p), _) => p.url.clone(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => {
            push!(
                "spec.prometheus.url",
                "is not set and the operator has no default (--prometheus-url)".into(),
            );
            String::new()
        }
    };

    let mut duration = |path: &str, text: Option<&String>| -> Option<Duration> {
        match parse_duration(text?) {
            Ok(d) => Some(d),
            Err(err) => {
                issues.push(SpecIssue {
                    path: path.to_owned(),
                    message: err.to_string(),
                });
                None
            }
        }
    };
    let interval = duration("spec.interval", Some(&spec.interval));
    let warmup = duration("spec.warmup", spec.warmup.as_ref());
    let lifetime = duration("spec.lifetime", spec.lifetime.as_ref());
    let step = duration("spec.step", spec.step.as_ref());
    let control_shift = duration("spec.control.timeShift", spec.control.time_shift.as_ref());
    let experiment_shift = duration(
        "spec.experiment.timeShift",
        spec.experiment.time_shift.as_ref(),
    );
    let early_pass_after = spec
        .early_pass
        .as_ref()
        .and_then(|e| duration("spec.earlyPass.minDuration", Some(&e.min_duration)));
    let step_given = spec.step.is_some();
    let step = step.unwrap_or(DEFAULT_STEP);
    let step_usable = step >= MIN_STEP;
    if !step_usable && step_given {
        push!("spec.step", "must be at least 1s".into());
    }

    let start = match spec
        .start_time
        .as_ref()
        .or(ca.metadata.creation_timestamp.as_ref())
    {
        Some(t) => from_time(t),
        None => {
            push!(
                "spec.startTime",
                "is not set and the object has no creationTimestamp".into()
            );
            None
        }
    };
    let end = match (&spec.end_time, spec.lifetime.is_some()) {
        (Some(_), true) => {
            push!(
                "spec.endTime",
                "set exactly one of endTime and lifetime, not both".into()
            );
            None
        }
        (Some(t), false) => from_time(t),
        (None, true) => match (start, lifetime) {
            (Some(s), Some(l)) => Some(s + delta(l)),
            _ => None,
        },
        (None, false) => {
            push!(
                "spec.lifetime",
                "set exactly one of endTime and lifetime".into()
            );
            None
        }
    };
    let schedule = match (start, end, interval) {
        (Some(start), Some(end), Some(interval)) => {
            match Schedule::new(
                start,
                delta(warmup.unwrap_or_default()),
                end,
                delta(interval),
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    let path = match e {
                        super::interval::ScheduleError::IntervalTooShort => "spec.interval",
                        super::interval::ScheduleError::TooManyIntervals { .. } => "spec.interval",
                        super::interval::ScheduleError::EmptyWindow { .. } => {
                            if spec.end_time.is_some() {
                                "spec.endTime"
                            } else {
                                "spec.lifetime"
                            }
                        }
                    };
                    push!(path, e.to_string());
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(s) = &schedule
        && step_usable
    {
        let points = (s.end - s.judged_from).num_milliseconds() / delta(step).num_milliseconds();
        if points > MAX_POINTS {
            push!(
                "spec.step",
                format!(
                    "the window needs {points} points per query at this step, more than Prometheus's {MAX_POINTS}: use a longer step"
                ),
            );
        }
    }

    let namespace = ca
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let control = scope(&spec.control, &namespace, "baseline");
    let experiment = scope(&spec.experiment, &namespace, "canary");

    // Templates: parse, then render against both scopes, which finds unknown
    // variables, empty values and extras that reuse a built-in name.
    let render_step = if step_usable { step } else { DEFAULT_STEP };
    let both = [("control", &control), ("experiment", &experiment)];
    let traffic = spec.traffic.as_deref().and_then(|text| {
        check_template(
            &mut issues,
            "spec.traffic",
            text,
            &[("experiment", &experiment)],
            interval.filter(|d| !d.is_zero()).unwrap_or(render_step),
        )
    });
    let mut queries = Vec::with_capacity(spec.metrics.len());
    for (i, m) in spec.metrics.iter().enumerate() {
        let p = |field: &str| format!("spec.metrics[{i}].{field}");
        match m.judge.kind {
            MetricKind::Continuous => {
                if m.numerator.is_some() || m.denominator.is_some() {
                    push!(
                        &p("numerator"),
                        "numerator/denominator are for kind: rate; a continuous metric has a query"
                            .into()
                    );
                }
                match &m.query {
                    Some(q) => {
                        if let Some(t) =
                            check_template(&mut issues, &p("query"), q, &both, render_step)
                        {
                            queries.push(MetricQueries::Continuous(t));
                        }
                    }
                    None => push!(&p("query"), "is required for a continuous metric".into()),
                }
            }
            MetricKind::Rate => {
                if m.query.is_some() {
                    push!(
                        &p("query"),
                        "a rate metric has numerator and denominator queries, not query".into()
                    );
                }
                let n = match &m.numerator {
                    Some(q) => check_template(&mut issues, &p("numerator"), q, &both, render_step),
                    None => {
                        push!(&p("numerator"), "is required for a rate metric".into());
                        None
                    }
                };
                let d = match &m.denominator {
                    Some(q) => {
                        check_template(&mut issues, &p("denominator"), q, &both, render_step)
                    }
                    None => {
                        push!(&p("denominator"), "is required for a rate metric".into());
                        None
                    }
                };
                if let (Some(numerator), Some(denominator)) = (n, d) {
                    queries.push(MetricQueries::Rate {
                        numerator,
                        denominator,
                    });
                }
            }
        }
    }

    // The judged window in steps: what an unset `mode` resolves by.
    let judged_steps = schedule.map_or(0, |s| {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        u64::try_from((s.end - s.judged_from).num_milliseconds() / step_ms).unwrap_or(0)
    });
    let judge = JudgeConfig {
        score_thresholds: spec.score_thresholds.unwrap_or_default(),
        groups: spec.groups.clone(),
        metrics: spec.metrics.iter().map(|m| m.judge.clone()).collect(),
        confidence: spec.confidence.unwrap_or(DEFAULT_CONFIDENCE),
        mode: spec.resolved_mode(judged_steps),
        early_pass: spec.early_pass.as_ref().map(|e| EarlyPassConfig {
            margin: e.margin.unwrap_or(DEFAULT_EARLY_PASS_MARGIN),
        }),
        tolerance: spec.tolerance,
    };
    if let (Some(min), Some(s)) = (early_pass_after, &schedule)
        && delta(min) > s.end - s.start
    {
        push!(
            "spec.earlyPass.minDuration",
            format!(
                "{} is longer than the analysis window ({}s): the analysis could never pass early",
                spec.early_pass
                    .as_ref()
                    .map_or("", |e| e.min_duration.as_str()),
                (s.end - s.start).num_seconds()
            ),
        );
    }
    if let Err(errors) = judge::validate(&judge) {
        for issue in errors.issues {
            push!(&format!("spec.{}", issue.path), issue.message);
        }
    }

    match schedule {
        Some(schedule) if issues.is_empty() => Ok(ResolvedSpec {
            prometheus_url,
            endpoint: spec.prometheus.clone(),
            schedule,
            step,
            control,
            experiment,
            control_shift: delta(control_shift.unwrap_or_default()),
            experiment_shift: delta(experiment_shift.unwrap_or_default()),
            traffic,
            judge,
            early_pass_after: early_pass_after.map(delta),
            queries,
        }),
        _ => Err(SpecErrors(issues)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::controller::testutil::{analysis, at};
    use redblack_judge::JudgeMode;
    use serde_json::json;

    /// Durations are read by the one grammar, to the millisecond: sub-second
    /// parts count, and a field below its least value names itself.
    #[test]
    fn durations_count_to_the_millisecond() {
        let r = resolve(
            &analysis(
                json!({"lifetime": "500ms", "interval": "1s", "warmup": "250ms",
                             "step": "1s500ms", "control": {"timeShift": "1m500ms"}}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(
            r.schedule.end - r.schedule.start,
            TimeDelta::milliseconds(500)
        );
        assert_eq!(
            r.schedule.judged_from - r.schedule.start,
            TimeDelta::milliseconds(250)
        );
        assert_eq!(r.schedule.total, 1);
        assert_eq!(r.step, Duration::from_millis(1500));
        assert_eq!(r.control_shift, TimeDelta::milliseconds(60_500));
        for (patch, path) in [
            (json!({"interval": "999ms"}), "spec.interval"),
            (json!({"step": "999ms"}), "spec.step"),
            (json!({"lifetime": "1.5m"}), "spec.lifetime"),
            (json!({"warmup": "36501d"}), "spec.warmup"),
        ] {
            let err = resolve(&analysis(patch.clone()), None).expect_err(&patch.to_string());
            assert_eq!(err.0[0].path, path, "{err}");
        }
        let err = resolve(&analysis(json!({"lifetime": "1.5m"})), None).unwrap_err();
        assert_eq!(
            err.0[0].message,
            redblack_duration::parse("1.5m").unwrap_err().to_string()
        );
    }

    /// Sequential unless asked otherwise — or unless the spec sets a field
    /// only the fixed mode has, which keeps the mode it was written for.
    #[test]
    fn the_mode_defaults_to_sequential_on_long_windows_and_fixed_only_fields_keep_fixed() {
        // The test analysis: 10m at a 30s step = 20 steps; at 1s, 600.
        let outliers = json!({"step": "1s", "metrics": [{"name": "latency",
            "direction": "increase", "query": "avg(lat)", "outliers": {"enabled": true}}]});
        for (patch, want) in [
            (json!({"step": "1s"}), JudgeMode::Sequential),
            // 50 steps exactly (warmup excluded), and one fewer.
            (json!({"step": "12s"}), JudgeMode::Sequential),
            (json!({"step": "12s", "warmup": "12s"}), JudgeMode::Fixed),
            (json!({}), JudgeMode::Fixed),
            (json!({"mode": "sequential"}), JudgeMode::Sequential),
            (json!({"step": "1s", "mode": "fixed"}), JudgeMode::Fixed),
            (json!({"step": "1s", "tolerance": 0.25}), JudgeMode::Fixed),
            (outliers, JudgeMode::Fixed),
            (
                json!({"step": "1s", "earlyPass": {"minDuration": "2m"}}),
                JudgeMode::Sequential,
            ),
        ] {
            let r =
                resolve(&analysis(patch.clone()), None).unwrap_or_else(|e| panic!("{patch}: {e}"));
            assert_eq!(r.judge.mode, want, "{patch}");
        }
        // Explicitly sequential with a fixed-only field is still an error.
        let err = resolve(
            &analysis(json!({"mode": "sequential", "tolerance": 0.25})),
            None,
        )
        .expect_err("tolerance with sequential");
        assert!(err.to_string().contains("tolerance"), "{err}");
        // earlyPass asks for the sequential mode, even on a short window…
        let r = resolve(&analysis(json!({"earlyPass": {"minDuration": "2m"}})), None).unwrap();
        assert_eq!(r.judge.mode, JudgeMode::Sequential);
        // …but not against a fixed-only field: refused by name.
        let err = resolve(
            &analysis(json!({"tolerance": 0.1, "earlyPass": {"minDuration": "2m"}})),
            None,
        )
        .expect_err("earlyPass with tolerance");
        assert!(err.to_string().contains("spec.earlyPass"), "{err}");
    }

    #[test]
    fn resolves_a_valid_spec() {
        let ca = analysis(json!({}));
        let r = resolve(&ca, None).unwrap();
        assert_eq!(r.prometheus_url, "http://127.0.0.1:9");
        assert_eq!(r.schedule.total, 10);
        assert_eq!(r.schedule.start, at(0));
        assert_eq!(r.step, Duration::from_secs(30));
        assert_eq!(r.control.role, "baseline");
        assert_eq!(r.experiment.role, "canary");
        assert_eq!(r.experiment.namespace, "shop");
        assert_eq!(r.experiment.replica_set, "web-2");
        assert_eq!(r.judge.confidence, 0.98);
        assert_eq!(r.queries.len(), 2);
    }

    /// `earlyPass`: the margin defaults to 1.2, minDuration is kept; absent
    /// means never.
    #[test]
    fn early_pass_resolves() {
        let r = resolve(
            &analysis(json!({"mode": "sequential", "earlyPass": {"minDuration": "2m"}})),
            None,
        )
        .unwrap();
        assert_eq!(r.early_pass_after, Some(TimeDelta::seconds(120)));
        assert_eq!(r.judge.early_pass, Some(EarlyPassConfig { margin: 1.2 }));
        let r = resolve(
            &analysis(json!({"mode": "sequential",
                             "earlyPass": {"minDuration": "10m", "margin": 1.5}})),
            None,
        )
        .unwrap();
        assert_eq!(r.early_pass_after, Some(TimeDelta::seconds(600)));
        assert_eq!(r.judge.early_pass, Some(EarlyPassConfig { margin: 1.5 }));
        let r = resolve(&analysis(json!({"mode": "sequential"})), None).unwrap();
        assert_eq!((r.early_pass_after, r.judge.early_pass), (None, None));
    }

    /// Each bad input names its field.
    #[test]
    fn bad_specs_name_their_field() {
        let rows: Vec<(serde_json::Value, &str, &str)> = vec![
            (
                json!({"interval": "5 minutes"}),
                "spec.interval",
                "not a duration",
            ),
            (json!({"interval": "0s"}), "spec.interval", "at least 1s"),
            (json!({"warmup": "1h"}), "spec.lifetime", "nothing to judge"),
            (json!({"lifetime": null}), "spec.lifetime", "exactly one"),
            (
                json!({"endTime": "2023-11-14T22:23:20Z"}),
                "spec.endTime",
                "not both",
            ),
            (json!({"step": "0s"}), "spec.step", "at least 1s"),
            (
                json!({"step": "1s", "lifetime": "4h", "interval": "1h"}),
                "spec.step",
                "11000",
            ),
            (
                json!({"scoreThresholds": {"marginal": 90, "pass": 80}}),
                "spec.scoreThresholds.marginal",
                "must not exceed",
            ),
            (json!({"metrics": []}), "spec.metrics", "at least one"),
            (
                json!({"prometheus": {"url": ""}}),
                "spec.prometheus.url",
                "empty",
            ),
            (json!({"confidence": 1.5}), "spec.confidence", "(0, 1)"),
            (
                json!({"mode": "fixed", "earlyPass": {"minDuration": "2m"}}),
                "spec.earlyPass",
                "needs mode: sequential",
            ),
            (
                json!({"mode": "sequential", "earlyPass": {"minDuration": "11m"}}),
                "spec.earlyPass.minDuration",
                "longer than the analysis window (600s)",
            ),
            (
                json!({"mode": "sequential", "earlyPass": {"minDuration": "2 min"}}),
                "spec.earlyPass.minDuration",
                "not a duration",
            ),
            (
                json!({"mode": "sequential", "earlyPass": {"minDuration": "2m", "margin": 1.0}}),
                "spec.earlyPass.margin",
                "finite ratio > 1",
            ),
            (
                json!({"interval": "1s", "lifetime": "2h"}),
                "spec.interval",
                "maximum",
            ),
            (
                json!({"traffic": "sum(x{a=\"${nope}\"})"}),
                "spec.traffic",
                "unknown variable ${nope}",
            ),
            (
                json!({"metrics": [{"name": "m", "query": "rate(x{a=\"${nope}\"}[${interval}])"}]}),
                "spec.metrics[0].query",
                "unknown variable ${nope}",
            ),
            (
                json!({"metrics": [{"name": "m", "query": "x{a=\"${x}\"}"}], "control": {"replicaSet": "a", "variables": {"x": "1"}}}),
                "spec.metrics[0].query",
                "experiment scope",
            ),
            (
                json!({"metrics": [{"name": "m", "query": "sum(x{"}]}),
                "spec.metrics[0].query",
                "never closed",
            ),
            (
                json!({"metrics": [{"name": "m"}]}),
                "spec.metrics[0].query",
                "required",
            ),
            (
                json!({"metrics": [{"name": "m", "kind": "rate", "numerator": "a"}]}),
                "spec.metrics[0].denominator",
                "required",
            ),
            (
                json!({"metrics": [{"name": "m", "kind": "rate", "query": "a", "numerator": "a", "denominator": "b"}]}),
                "spec.metrics[0].query",
                "not query",
            ),
            (
                json!({"metrics": [{"name": "m", "query": "a", "effectSize": {"allowedIncrease": 0.5}}]}),
                "spec.metrics[0].effectSize.allowedIncrease",
                ">= 1",
            ),
            (
                json!({"experiment": {"variables": {"namespace": "x"}, "replicaSet": "b"}, "metrics": [{"name": "m", "query": "x{a=\"${namespace}\"}"}]}),
                "spec.metrics[0].query",
                "built-in",
            ),
            (
                json!({"metrics": [{"name": "m", "query": "x{a=\"${replicaSet}\"}"}], "experiment": {"replicaSet": null}}),
                "spec.metrics[0].query",
                "empty",
            ),
        ];
        for (patch, path, needle) in rows {
            let ca = analysis(patch.clone());
            let err = resolve(&ca, None).expect_err(&patch.to_string());
            let text = err.to_string();
            assert!(
                err.0
                    .iter()
                    .any(|i| i.path == path && i.message.contains(needle)),
                "{patch}: want {path} ~ {needle:?}, got {text}"
            );
        }
    }

    /// The spec shape the Rollout planner creates (docs/rollout.md, "Analysis"
    /// and "Post-promotion analysis") resolves.
    #[test]
    fn the_rollout_planners_spec_resolves() {
        let spec = json!({
            "interval": "5m", "lifetime": "20m",
            "metrics": [{"name": "latency", "query":
                "avg(lat{pod_template_hash=\"${podTemplateHash}\", pod=~\"${podRegex}\"})"}],
            "experiment": {"namespace": "shop", "replicaSet": "web-abc-canary", "revision": "abc",
                           "role": "canary", "variables": {"podTemplateHash": "7d9f"}},
            "control": {"namespace": "shop", "replicaSet": "web-def", "revision": "def",
                        "role": "previous", "timeShift": "20m", "variables": {"podTemplateHash": "5f4d"}},
            "startTime": "2026-11-23T10:00:00Z",
            "prometheus": null
        });
        let mut ca = analysis(json!({}));
        ca.spec = serde_json::from_value(spec).unwrap();
        let r = resolve(&ca, Some("http://prometheus:9090")).unwrap();
        assert_eq!(r.schedule.total, 4);
        assert_eq!(r.control_shift, TimeDelta::minutes(20));
        assert_eq!(
            r.experiment
                .extra
                .get("podTemplateHash")
                .map(String::as_str),
            Some("7d9f")
        );
    }

    #[test]
    fn time_shifts() {
        let ca = analysis(json!({"control": {"timeShift": "1h30m"}}));
        let r = resolve(&ca, None).unwrap();
        assert_eq!(r.control_shift, TimeDelta::minutes(90));
        assert_eq!(r.experiment_shift, TimeDelta::zero());
        let err =
            resolve(&analysis(json!({"experiment": {"timeShift": "-1h"}})), None).unwrap_err();
        assert!(
            err.to_string().contains("spec.experiment.timeShift"),
            "{err}"
        );
    }

    #[test]
    fn default_prometheus_url_is_used_and_required() {
        let ca = analysis(json!({"prometheus": null}));
        assert_eq!(
            resolve(&ca, Some("http://p:9090")).unwrap().prometheus_url,
            "http://p:9090"
        );
        let err = resolve(&ca, None).unwrap_err();
        assert!(
            err.to_string().contains("spec.prometheus.url: is not set"),
            "{err}"
        );
    }
}
