//! The transitions table: which status writes count, and which do not.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{Transition, VerdictTimes, transitions};
use crate::api::RolloutStatus;
use crate::web::metrics::OperatorMetrics;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn st(v: Value) -> RolloutStatus {
    serde_json::from_value(v).unwrap()
}

fn promoted(hash: &str, at: i64) -> Value {
    json!({"revision": 2, "hash": hash, "images": [], "outcome": "Promoted", "time": t(at)})
}

fn canary(phase: &str, traffic: i32) -> Value {
    json!({"phase": phase, "revision": "b", "analysisName": "web-b-1", "attempt": 1,
           "trafficPercent": traffic})
}

#[test]
fn transitions_table() {
    let verdicts = VerdictTimes {
        canary: Some(t(90)),
        post_promotion: Some(t(95)),
    };
    let live = |s| Transition::Live { seconds: s };
    let v2t = |v: &str, s| Transition::VerdictToTraffic {
        verdict: v.to_owned(),
        seconds: s,
    };
    let rows: Vec<(&str, Option<Value>, Value, Vec<Transition>)> = vec![
        (
            "first deploy goes live",
            None,
            json!({"currentRevision": "a", "stableRevision": "a", "revisionStartedAt": t(0),
                   "history": [promoted("a", 100)]}),
            vec![live(100.0)],
        ),
        (
            "a passed canary's switch: time to live and verdict to traffic",
            Some(
                json!({"currentRevision": "b", "stableRevision": "a", "revisionStartedAt": t(0),
                        "canary": canary("Passed", 0)}),
            ),
            json!({"currentRevision": "b", "stableRevision": "b", "revisionStartedAt": t(0),
                   "canary": canary("Passed", 0), "history": [promoted("b", 100)]}),
            vec![live(100.0), v2t("Passed", 10.0)],
        ),
        (
            "the same status observed again (restart): nothing",
            Some(
                json!({"currentRevision": "b", "stableRevision": "b", "revisionStartedAt": t(0),
                        "canary": canary("Passed", 0), "history": [promoted("b", 100)]}),
            ),
            json!({"currentRevision": "b", "stableRevision": "b", "revisionStartedAt": t(0),
                   "canary": canary("Passed", 0), "history": [promoted("b", 100)]}),
            vec![],
        ),
        (
            "a manual promote: live, but no verdict",
            Some(
                json!({"currentRevision": "b", "stableRevision": "a", "revisionStartedAt": t(0),
                        "canary": canary("Promoted", 20)}),
            ),
            json!({"currentRevision": "b", "stableRevision": "b", "revisionStartedAt": t(0),
                   "canary": canary("Promoted", 0), "history": [promoted("b", 100)]}),
            vec![live(100.0)],
        ),
        (
            "a failed canary: abort, revert, verdict to traffic",
            Some(
                json!({"currentRevision": "b", "stableRevision": "a", "canary": canary("Analysing", 20)}),
            ),
            json!({"currentRevision": "b", "stableRevision": "a", "canary": canary("Failed", 0),
                   "abort": {"revision": "b", "reason": "AnalysisFailed", "at": t(100)}}),
            vec![
                Transition::Aborted {
                    reason: "AnalysisFailed".into(),
                },
                Transition::Reverted {
                    reason: "CanaryFailed",
                },
                v2t("Failed", 10.0),
            ],
        ),
        (
            "the verdict recorded while traffic still flows: the revert counts when it leaves",
            Some(
                json!({"currentRevision": "b", "canary": canary("Failed", 20),
                        "abort": {"revision": "b", "reason": "AnalysisFailed", "at": t(100)}}),
            ),
            json!({"currentRevision": "b", "canary": canary("Failed", 0),
                   "abort": {"revision": "b", "reason": "AnalysisFailed", "at": t(100)}}),
            vec![
                Transition::Reverted {
                    reason: "CanaryFailed",
                },
                v2t("Failed", 10.0),
            ],
        ),
        (
            "a user abort of a canary without traffic: only the abort",
            Some(json!({"currentRevision": "b", "canary": canary("Progressing", 0)})),
            json!({"currentRevision": "b", "canary": canary("Progressing", 0),
                   "abort": {"revision": "b", "reason": "User", "at": t(100)}}),
            vec![Transition::Aborted {
                reason: "User".into(),
            }],
        ),
        (
            "a failed post-promotion analysis switches back",
            Some(json!({"currentRevision": "b", "stableRevision": "b",
                        "postPromotion": {"revision": "b", "previousRevision": "a", "analysisName": "p",
                                          "switchedAt": t(50), "phase": "Running"}})),
            json!({"currentRevision": "b", "stableRevision": "a",
                   "postPromotion": {"revision": "b", "previousRevision": "a", "analysisName": "p",
                                     "switchedAt": t(50), "phase": "Failed"},
                   "abort": {"revision": "b", "reason": "PostPromotionAnalysisFailed", "at": t(210)}}),
            vec![
                Transition::Aborted {
                    reason: "PostPromotionAnalysisFailed".into(),
                },
                Transition::Reverted {
                    reason: "PostPromotionFailed",
                },
                v2t("Failed", 5.0),
            ],
        ),
        (
            "a failed AfterSwitch gate switches back",
            Some(json!({"currentRevision": "b", "stableRevision": "b",
                        "gates": [{"name": "smoke", "revision": "b", "at": "AfterSwitch", "phase": "Running",
                                   "attempt": 1, "startedAt": t(50), "previousRevision": "a"}]})),
            json!({"currentRevision": "b", "stableRevision": "a",
                   "gates": [{"name": "smoke", "revision": "b", "at": "AfterSwitch", "phase": "Failed",
                              "attempt": 1, "startedAt": t(50), "previousRevision": "a"}],
                   "abort": {"revision": "b", "reason": "GateFailed", "at": t(100)}}),
            vec![
                Transition::Aborted {
                    reason: "GateFailed".into(),
                },
                Transition::Reverted {
                    reason: "GateFailed",
                },
            ],
        ),
        (
            "a rollback to an older revision is not a revision going live",
            Some(
                json!({"currentRevision": "a", "stableRevision": "b", "revisionStartedAt": t(0),
                        "history": [promoted("a", 10), promoted("b", 20)]}),
            ),
            json!({"currentRevision": "a", "stableRevision": "a", "revisionStartedAt": t(0),
                   "history": [promoted("a", 10), promoted("b", 20),
                               {"revision": 1, "hash": "a", "images": [], "outcome": "RolledBack", "time": t(100)}]}),
            vec![],
        ),
    ];
    for (what, before, after, want) in rows {
        let before = before.map(st);
        let got = transitions(before.as_ref(), &st(after), &verdicts, t(100));
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn a_verdict_time_in_the_future_counts_as_zero() {
    let before = st(json!({"currentRevision": "b", "canary": canary("Analysing", 20)}));
    let after = st(json!({"currentRevision": "b", "canary": canary("Failed", 0)}));
    let verdicts = VerdictTimes {
        canary: Some(t(101) + Duration::milliseconds(500)),
        post_promotion: None,
    };
    let got = transitions(Some(&before), &after, &verdicts, t(100));
    assert!(got.contains(&Transition::VerdictToTraffic {
        verdict: "Failed".into(),
        seconds: 0.0
    }));
}

#[test]
fn recording_counts_and_observes_with_zero_series_first() {
    let m = OperatorMetrics::new();
    super::record(&m, "shop", &[]);
    let text = m.encode().unwrap_or_default();
    assert!(
        text.contains(
            r#"redblack_rollout_aborts_total{namespace="shop",reason="AnalysisFailed"} 0"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"redblack_rollout_time_to_live_seconds_count{namespace="shop"} 0"#),
        "{text}"
    );
    super::record(
        &m,
        "shop",
        &[
            Transition::Aborted {
                reason: "AnalysisFailed".into(),
            },
            Transition::Live { seconds: 3.0 },
            Transition::VerdictToTraffic {
                verdict: "Failed".into(),
                seconds: 0.5,
            },
        ],
    );
    let text = m.encode().unwrap_or_default();
    for line in [
        r#"redblack_rollout_aborts_total{namespace="shop",reason="AnalysisFailed"} 1"#,
        r#"redblack_rollout_time_to_live_seconds_sum{namespace="shop"} 3.0"#,
        r#"redblack_rollout_verdict_to_traffic_seconds_count{namespace="shop",verdict="Failed"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
