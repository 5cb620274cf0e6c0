//! Config parsing (defaults, unknown fields), validation paths, schema.

use redblack_judge::{Direction, JudgeConfig, MetricKind, NanStrategy, validate};

fn parse(v: serde_json::Value) -> JudgeConfig {
    serde_json::from_value(v).expect("config parses")
}

fn issue_paths(cfg: &JudgeConfig) -> Vec<String> {
    match validate(cfg) {
        Ok(()) => Vec::new(),
        Err(e) => e.issues.into_iter().map(|i| i.path).collect(),
    }
}

#[test]
fn defaults_follow_kayenta_and_docs() {
    let cfg = parse(serde_json::json!({"metrics": [{"name": "latency"}]}));
    assert_eq!(cfg.confidence, 0.98);
    assert_eq!(
        (cfg.score_thresholds.marginal, cfg.score_thresholds.pass),
        (75.0, 95.0)
    );
    let m = &cfg.metrics[0];
    assert_eq!(m.group, "default");
    assert_eq!(m.direction, Direction::Either);
    assert_eq!(m.nan_strategy, NanStrategy::Remove);
    assert!(!m.outliers.enabled);
    assert_eq!(m.outliers.factor, 3.0);
    assert_eq!(m.kind, MetricKind::Continuous);
    assert!(m.tail.enabled);
    assert!(!m.critical && !m.must_have_data);
    assert!(m.effect_size.allowed_increase.is_none());
    assert_eq!(validate(&cfg), Ok(()));
}

#[test]
fn camel_case_fields_parse() {
    let cfg = parse(serde_json::json!({
        "scoreThresholds": {"marginal": 60, "pass": 80},
        "groups": [{"name": "latency", "weight": 70}, {"name": "errors", "weight": 30}],
        "confidence": 0.95,
        "metrics": [{
            "name": "p99", "group": "latency", "direction": "increase", "nanStrategy": "replace",
            "outliers": {"enabled": true, "factor": 2.5}, "critical": true, "mustHaveData": true,
            "effectSize": {"allowedIncrease": 1.1, "criticalIncrease": 1.5},
            "tail": {"quantiles": [0.9]}
        }, {"name": "5xx", "group": "errors", "kind": "rate"}]
    }));
    assert_eq!(validate(&cfg), Ok(()));
    assert_eq!(cfg.metrics[0].effect_size.critical_increase, Some(1.5));
    assert_eq!(cfg.metrics[1].kind, MetricKind::Rate);
}

#[test]
fn unknown_fields_are_rejected() {
    let err = serde_json::from_value::<JudgeConfig>(serde_json::json!({
        "metrics": [{"name": "a", "allowedIncrease": 1.2}]
    }))
    .expect_err("unknown field");
    assert!(err.to_string().contains("allowedIncrease"), "{err}");
}

#[test]
fn validation_reports_every_issue_with_its_path() {
    let cfg = parse(serde_json::json!({
        "scoreThresholds": {"marginal": 90, "pass": 80},
        "groups": [{"name": "g", "weight": -1}, {"name": "g", "weight": 0}],
        "confidence": 1.0,
        "metrics": [
            {"name": "a", "group": "nope", "effectSize": {"allowedIncrease": 0.9, "allowedDecrease": -0.1}},
            {"name": "a", "group": "g", "tail": {"quantiles": [0.3]}, "outliers": {"factor": 0}},
            {"name": "b", "group": "g", "effectSize": {"allowedIncrease": 1.5, "criticalIncrease": 1.2}}
        ]
    }));
    let paths = issue_paths(&cfg);
    for expected in [
        "confidence",
        "scoreThresholds.marginal",
        "groups[0].weight",
        "groups[1].name",
        "groups",
        "metrics[0].group",
        "metrics[0].effectSize.allowedIncrease",
        "metrics[0].effectSize.allowedDecrease",
        "metrics[1].name",
        "metrics[1].tail.quantiles[0]",
        "metrics[1].outliers.factor",
        "metrics[2].effectSize.criticalIncrease",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "missing {expected} in {paths:?}"
        );
    }
}

#[test]
fn empty_metric_list_is_invalid() {
    let cfg = parse(serde_json::json!({"metrics": []}));
    assert_eq!(issue_paths(&cfg), vec!["metrics".to_string()]);
}

#[test]
fn weights_need_not_sum_to_100() {
    let cfg = parse(serde_json::json!({
        "groups": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}],
        "metrics": [{"name": "x", "group": "a"}, {"name": "y", "group": "b"}]
    }));
    assert_eq!(validate(&cfg), Ok(()));
}

#[test]
fn json_schema_is_generated_for_crd_embedding() {
    let schema = schemars::schema_for!(JudgeConfig);
    let text = serde_json::to_string(&schema).expect("schema json");
    for field in [
        "scoreThresholds",
        "mustHaveData",
        "effectSize",
        "allowedIncrease",
        "nanStrategy",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
    let result = schemars::schema_for!(redblack_judge::JudgeResult);
    let text = serde_json::to_string(&result).expect("schema json");
    assert!(text.contains("decidedBy") && text.contains("ciLower"));
}
