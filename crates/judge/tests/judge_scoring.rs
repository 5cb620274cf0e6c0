//! Kayenta scoring with our documented choices.

use redblack_judge::{
    Band, ForcedZero, GroupConfig, JudgeConfig, JudgeError, MetricConfig, MetricSamples, judge,
};

fn shifted(n: usize, shift: f64) -> Vec<f64> {
    (0..n).map(|i| 100.0 + (i % 17) as f64 + shift).collect()
}

/// Samples for `name` that Pass (identical) or go High (large shift).
fn sample(name: &str, high: bool) -> MetricSamples {
    let b = shifted(60, 0.0);
    let c = if high { shifted(60, 50.0) } else { b.clone() };
    MetricSamples::continuous(name, &c, &b)
}

fn metric(name: &str, group: &str) -> MetricConfig {
    MetricConfig {
        group: group.into(),
        ..MetricConfig::new(name)
    }
}

#[test]
fn group_scores_and_relative_weights() {
    let mut cfg = JudgeConfig::new(vec![
        metric("a1", "a"),
        metric("a2", "a"),
        metric("b1", "b"),
        metric("b2", "b"),
    ]);
    cfg.groups = vec![
        GroupConfig {
            name: "a".into(),
            weight: 1.0,
        },
        GroupConfig {
            name: "b".into(),
            weight: 3.0,
        },
    ];
    let r = judge(
        &cfg,
        &[
            sample("a1", false),
            sample("a2", true),
            sample("b1", false),
            sample("b2", false),
        ],
    )
    .expect("judge");
    assert_eq!(r.groups[0].score, Some(50.0));
    assert_eq!(r.groups[1].score, Some(100.0));
    // 50·0.25 + 100·0.75
    assert!((r.score - 87.5).abs() < 1e-9, "{}", r.score);
    assert_eq!(r.band, Band::Marginal);
    assert!(r.forced_zero.is_none());
}

#[test]
fn group_without_scored_metrics_drops_out() {
    let mut cfg = JudgeConfig::new(vec![
        metric("a1", "a"),
        metric("b1", "b"),
        metric("c1", "c"),
    ]);
    cfg.groups = ["a", "b", "c"]
        .iter()
        .map(|n| GroupConfig {
            name: n.to_string(),
            weight: 1.0,
        })
        .collect();
    // c1 has no samples: Nodata, group c has no score, a and b share the weight.
    let r = judge(&cfg, &[sample("a1", false), sample("b1", true)]).expect("judge");
    assert_eq!(r.groups[2].score, None);
    assert!((r.score - 50.0).abs() < 1e-9);
    assert!((r.groups[0].effective_weight - 50.0).abs() < 1e-9);
    assert_eq!(r.band, Band::Fail);
}

#[test]
fn critical_failure_forces_zero() {
    let crit = MetricConfig {
        critical: true,
        ..MetricConfig::new("c")
    };
    let cfg = JudgeConfig::new(vec![crit, MetricConfig::new("x"), MetricConfig::new("y")]);
    let r = judge(
        &cfg,
        &[sample("c", true), sample("x", false), sample("y", false)],
    )
    .expect("judge");
    assert_eq!((r.score, r.band), (0.0, Band::Fail));
    assert_eq!(
        r.forced_zero,
        Some(ForcedZero::CriticalMetricFailed {
            metrics: vec!["c".into()]
        })
    );
    assert!(r.reason.contains("critical"));
    // Without the critical flag, the same data scores 2/3.
    let cfg = JudgeConfig::new(vec![
        MetricConfig::new("c"),
        MetricConfig::new("x"),
        MetricConfig::new("y"),
    ]);
    let r = judge(
        &cfg,
        &[sample("c", true), sample("x", false), sample("y", false)],
    )
    .expect("judge");
    // Rounded to two decimals, as Kayenta reports it.
    assert_eq!(r.score, 66.67);
}

#[test]
fn half_the_metrics_without_data_is_inconclusive() {
    let cfg = JudgeConfig::new(vec![MetricConfig::new("x"), MetricConfig::new("y")]);
    let r = judge(&cfg, &[sample("x", false)]).expect("judge");
    assert_eq!((r.score, r.band), (0.0, Band::Inconclusive));
    assert_eq!(
        r.forced_zero,
        Some(ForcedZero::TooMuchNodata {
            nodata: 1,
            total: 2
        })
    );
    let cfg = JudgeConfig::new(vec![
        MetricConfig::new("x"),
        MetricConfig::new("y"),
        MetricConfig::new("z"),
    ]);
    let r = judge(&cfg, &[sample("x", false), sample("y", false)]).expect("judge");
    assert_eq!((r.score, r.band), (100.0, Band::Pass));
}

#[test]
fn nodata_fail_metric_counts_against_the_group() {
    let m = MetricConfig {
        must_have_data: true,
        ..MetricConfig::new("m")
    };
    let cfg = JudgeConfig::new(vec![
        m,
        MetricConfig::new("a"),
        MetricConfig::new("b"),
        MetricConfig::new("c"),
    ]);
    let r = judge(
        &cfg,
        &[sample("a", false), sample("b", false), sample("c", false)],
    )
    .expect("judge");
    assert!((r.score - 75.0).abs() < 1e-9);
    assert_eq!(r.band, Band::Marginal);
}

#[test]
fn caller_errors_are_typed() {
    let cfg = JudgeConfig::new(vec![MetricConfig::new("x")]);
    assert!(matches!(
        judge(&cfg, &[sample("nope", false)]),
        Err(JudgeError::UnknownMetric(_))
    ));
    assert!(matches!(
        judge(&cfg, &[sample("x", false), sample("x", false)]),
        Err(JudgeError::DuplicateSamples(_))
    ));
    let rate = MetricConfig {
        kind: redblack_judge::MetricKind::Rate,
        ..MetricConfig::new("x")
    };
    assert!(matches!(
        judge(&JudgeConfig::new(vec![rate]), &[sample("x", false)]),
        Err(JudgeError::KindMismatch { .. })
    ));
    assert!(matches!(
        judge(&JudgeConfig::new(vec![]), &[]),
        Err(JudgeError::InvalidConfig(_))
    ));
}

#[test]
fn result_serializes_camel_case_without_nan() {
    let cfg = JudgeConfig::new(vec![
        MetricConfig::new("x"),
        MetricConfig::new("y"),
        MetricConfig::new("z"),
    ]);
    let r = judge(&cfg, &[sample("x", true), sample("y", false)]).expect("judge");
    let v = serde_json::to_value(&r).expect("serialize");
    assert_eq!(v["metrics"][0]["decidedBy"], "mann-whitney");
    assert!(
        v["metrics"][0]["location"]["ciLower"]
            .as_f64()
            .is_some_and(|x| x > 0.0)
    );
    assert_eq!(v["metrics"][2]["classification"], "Nodata");
    let back: redblack_judge::JudgeResult = serde_json::from_value(v).expect("roundtrip");
    assert_eq!(back, r);
}

/// "No promotion on missing data": a critical metric without data must not
/// let the canary pass on the other metrics' score.
#[test]
fn critical_metric_without_data_is_never_a_pass() {
    struct Case {
        name: &'static str,
        /// Metrics: (name, critical, mustHaveData, samples: None = absent,
        /// Some(None) = empty, Some(Some(high)) = values).
        metrics: Vec<(&'static str, bool, bool, Option<Option<bool>>)>,
        band: Band,
        forced: Option<ForcedZero>,
        reason: &'static str,
    }
    let pass = Some(Some(false));
    let high = Some(Some(true));
    let crit_nodata = || ForcedZero::CriticalMetricNodata {
        metrics: vec!["crit".into()],
    };
    let cases = [
        Case {
            name: "three passing, critical metric with empty samples",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("c", false, false, pass),
                ("crit", true, false, Some(None)),
            ],
            band: Band::Inconclusive,
            forced: Some(crit_nodata()),
            reason: "crit",
        },
        Case {
            name: "three passing, critical metric absent",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("c", false, false, pass),
                ("crit", true, false, None),
            ],
            band: Band::Inconclusive,
            forced: Some(crit_nodata()),
            reason: "crit",
        },
        Case {
            name: "a Marginal score is held too (a human could promote it)",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("c", false, false, pass),
                ("d", false, false, pass),
                ("e", false, false, high),
                ("crit", true, false, None),
            ],
            band: Band::Inconclusive,
            forced: Some(crit_nodata()),
            reason: "crit",
        },
        Case {
            name: "a failing score stays Fail (Inconclusive would hold, not roll back)",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, high),
                ("c", false, false, high),
                ("crit", true, false, None),
            ],
            band: Band::Fail,
            forced: None,
            reason: "crit",
        },
        Case {
            name: "a score at the marginal threshold fails (the controller's <= rule)",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("c", false, false, pass),
                ("d", false, false, high),
                ("crit", true, false, None),
            ],
            band: Band::Fail,
            forced: None,
            reason: "crit",
        },
        Case {
            name: "a critical failure takes precedence",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("failing", true, false, high),
                ("crit", true, false, None),
            ],
            band: Band::Fail,
            forced: Some(ForcedZero::CriticalMetricFailed {
                metrics: vec!["failing".into()],
            }),
            reason: "failing",
        },
        Case {
            name: "critical with mustHaveData stays a critical failure",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("c", false, false, pass),
                ("crit", true, true, None),
            ],
            band: Band::Fail,
            forced: Some(ForcedZero::CriticalMetricFailed {
                metrics: vec!["crit".into()],
            }),
            reason: "crit",
        },
        Case {
            name: "half the metrics without data is still too much nodata",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, None),
                ("crit", true, false, None),
                ("c", false, false, pass),
            ],
            band: Band::Inconclusive,
            forced: Some(ForcedZero::TooMuchNodata {
                nodata: 2,
                total: 4,
            }),
            reason: "no data",
        },
        Case {
            name: "a critical metric with data passes as before",
            metrics: vec![
                ("a", false, false, pass),
                ("b", false, false, pass),
                ("c", false, false, pass),
                ("crit", true, false, pass),
            ],
            band: Band::Pass,
            forced: None,
            reason: "pass threshold",
        },
    ];
    for case in &cases {
        let cfg = JudgeConfig::new(
            case.metrics
                .iter()
                .map(|(name, critical, must_have_data, _)| MetricConfig {
                    critical: *critical,
                    must_have_data: *must_have_data,
                    ..MetricConfig::new(*name)
                })
                .collect(),
        );
        let samples: Vec<MetricSamples> = case
            .metrics
            .iter()
            .filter_map(|(name, _, _, s)| match s {
                None => None,
                Some(None) => Some(MetricSamples::continuous(*name, &[], &[])),
                Some(Some(high)) => Some(sample(name, *high)),
            })
            .collect();
        let r = judge(&cfg, &samples).expect("judge");
        println!(
            "{}: {:?} score {:.1} {:?}: {}",
            case.name, r.band, r.score, r.forced_zero, r.reason
        );
        assert_eq!(
            (r.band, &r.forced_zero),
            (case.band, &case.forced),
            "{}: {}",
            case.name,
            r.reason
        );
        if r.band == Band::Inconclusive {
            assert_eq!(r.score, 0.0, "{}", case.name);
        }
        assert!(
            r.reason.contains(case.reason),
            "{}: {}",
            case.name,
            r.reason
        );
    }
}

#[test]
fn critical_metric_nodata_serializes_like_the_other_forced_zeros() {
    let v = serde_json::to_value(ForcedZero::CriticalMetricNodata {
        metrics: vec!["crit".into()],
    })
    .expect("serialize");
    assert_eq!(
        v,
        serde_json::json!({"type": "criticalMetricNodata", "metrics": ["crit"]})
    );
    let back: ForcedZero = serde_json::from_value(v).expect("deserialize");
    assert_eq!(
        back,
        ForcedZero::CriticalMetricNodata {
            metrics: vec!["crit".into()]
        }
    );
}
