use chrono::{TimeZone, Utc};

use super::*;
use crate::api::notifier::{Severity, Trigger};
use crate::notify::report::FailingMetric;

fn pending() -> Pending {
    Pending {
        key: "uid-1/canary-verdict/web-v2-1/Failed/team".into(),
        notifier: "team".into(),
        happening: Happening {
            trigger: Trigger::CanaryVerdict,
            severity: Severity::Critical,
            id: "canary-verdict/web-v2-1/Failed".into(),
            summary: "canary of revision v2: Failed (score 12.0)".into(),
            revision: Some("v2".into()),
            stable_revision: Some("v1".into()),
            verdict: Some("Failed".into()),
            score: Some(12.0),
            analysis: Some("web-v2-1".into()),
            message: Some("errors <high> & slow".into()),
            at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
        },
        report: Some(VerdictReport {
            score: Some(12.0),
            band: Some("Fail".into()),
            message: None,
            failing_metrics: vec![FailingMetric {
                name: "errors".into(),
                classification: "High".into(),
                critical: true,
                canary_mean: Some(0.1),
                baseline_mean: Some(0.001),
                ratio: Some(100.0),
                reason: "canary higher".into(),
            }],
            failing_omitted: 0,
        }),
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
    }
}

fn rollout() -> RolloutRef {
    RolloutRef {
        namespace: "default".into(),
        name: "web".into(),
        uid: "uid-1".into(),
        dashboard: None,
    }
}

/// RFC 4231, test case 2.
#[test]
fn hmac_sha256_matches_the_rfc_vector() {
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn the_webhook_payload_is_the_documented_v1() {
    let body: Value = serde_json::from_slice(&webhook_body(&pending(), &rollout())).unwrap();
    assert_eq!(
        body,
        json!({
            "apiVersion": "redblack.notification/v1",
            "kind": "Notification",
            "id": "uid-1/canary-verdict/web-v2-1/Failed/team",
            "notifier": "team",
            "rollout": {"namespace": "default", "name": "web", "uid": "uid-1"},
            "event": {
                "trigger": "CanaryVerdict",
                "severity": "Critical",
                "id": "canary-verdict/web-v2-1/Failed",
                "summary": "canary of revision v2: Failed (score 12.0)",
                "revision": "v2",
                "stableRevision": "v1",
                "verdict": "Failed",
                "score": 12.0,
                "analysis": "web-v2-1",
                "message": "errors <high> & slow",
                "at": "2026-01-01T00:00:00Z"
            },
            "report": {
                "score": 12.0,
                "band": "Fail",
                "failingMetrics": [{
                    "name": "errors", "classification": "High", "critical": true,
                    "canaryMean": 0.1, "baselineMean": 0.001, "ratio": 100.0,
                    "reason": "canary higher"
                }],
                "failingOmitted": 0
            }
        })
    );
}

#[test]
fn a_dashboard_link_is_part_of_the_rollout() {
    let mut r = rollout();
    r.dashboard = Some("https://grafana.example/d/rb?var-rollout=web".into());
    let body: Value = serde_json::from_slice(&webhook_body(&pending(), &r)).unwrap();
    assert_eq!(
        body["rollout"],
        json!({"namespace": "default", "name": "web", "uid": "uid-1",
               "dashboard": "https://grafana.example/d/rb?var-rollout=web"})
    );
    let slack: Value = serde_json::from_slice(&slack_body(&pending(), &r)).unwrap();
    let all = serde_json::to_string(&slack["blocks"]).unwrap();
    assert!(
        all.contains("<https://grafana.example/d/rb?var-rollout=web|Dashboard>"),
        "{all}"
    );
}

#[test]
fn the_slack_body_has_complete_text_and_escaped_blocks() {
    let body: Value = serde_json::from_slice(&slack_body(&pending(), &rollout())).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[Critical] default/web: canary of revision v2: Failed (score 12.0)"),
        "{text}"
    );
    assert!(text.contains("Score 12.0 (Fail)"), "{text}");
    assert!(
        text.contains("• errors [critical]: High (canary 0.1000, baseline 0.0010, ratio 100.0000)"),
        "{text}"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "redblack: canary verdict");
    let all = serde_json::to_string(blocks).unwrap();
    assert!(all.contains("errors &lt;high&gt; &amp; slow"), "{all}");
    assert!(!all.contains("<high>"), "{all}");
    assert_eq!(blocks.last().unwrap()["type"], "context");
    for b in blocks {
        assert!(
            ["header", "section", "context"].contains(&b["type"].as_str().unwrap()),
            "{b}"
        );
    }
}

#[test]
fn bounded_cuts_on_a_character_boundary() {
    assert_eq!(bounded("short", 10), "short");
    let cut = bounded("ééééééé", 8);
    assert!(cut.len() <= 8 + "…".len() && cut.ends_with('…'), "{cut}");
}
