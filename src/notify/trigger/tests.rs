//! Table tests of [`super::fired`]: each row a status before and after, and
//! the triggers (with ids) that must fire, no more.

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::api::conditions::{Condition, ConditionStatus};
use crate::api::{
    AbortStatus, CanaryStatus, GateAt, GateStatus, PostPromotionStatus, RevisionRecord,
};

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap()
}

fn healthy(hash: &str) -> RolloutStatus {
    RolloutStatus {
        current_revision: Some(hash.into()),
        stable_revision: Some(hash.into()),
        revision_started_at: Some(t(0)),
        history: vec![record(hash, Outcome::Promoted, 0)],
        conditions: vec![ready("RolloutHealthy", "live")],
        ..RolloutStatus::default()
    }
}

fn record(hash: &str, outcome: Outcome, at: i64) -> RevisionRecord {
    RevisionRecord {
        revision: 1,
        hash: hash.into(),
        images: vec![],
        outcome,
        score: None,
        time: t(at),
    }
}

fn ready(reason: &str, message: &str) -> Condition {
    Condition {
        type_: READY.into(),
        status: ConditionStatus::False,
        reason: reason.into(),
        message: message.into(),
        last_transition_time: t(0),
        observed_generation: None,
    }
}

/// `v1` live, `v2` current with a canary in `phase`.
fn canary(phase: CanaryPhase, traffic: i32) -> RolloutStatus {
    RolloutStatus {
        current_revision: Some("v2".into()),
        revision_started_at: Some(t(100)),
        canary: Some(CanaryStatus {
            phase: Some(phase),
            analysis_name: Some("web-v2-1".into()),
            revision: Some("v2".into()),
            stable_revision: Some("v1".into()),
            attempt: 1,
            traffic_percent: traffic,
            score: matches!(
                phase,
                CanaryPhase::Passed | CanaryPhase::Failed | CanaryPhase::Marginal
            )
            .then_some(42.0),
            ..CanaryStatus::default()
        }),
        ..healthy("v1")
    }
}

fn with_abort(mut s: RolloutStatus, reason: AbortReason) -> RolloutStatus {
    s.abort = Some(AbortStatus {
        revision: "v2".into(),
        reason,
        at: t(200),
    });
    s
}

/// The Ready condition of a revision late for its progress deadline.
fn late(mut s: RolloutStatus) -> RolloutStatus {
    s.conditions = vec![ready(
        "ProgressDeadlineExceeded",
        "revision v2 was not available within 600s; it goes on once its pods are ready",
    )];
    s
}

/// A failed gate `smoke` of v2; `previous`: an `AfterSwitch` gate, traffic
/// back on that revision.
fn gate_failed(mut s: RolloutStatus, previous: Option<&str>) -> RolloutStatus {
    s.gates = vec![GateStatus {
        name: "smoke".into(),
        revision: "v2".into(),
        at: if previous.is_some() {
            GateAt::AfterSwitch
        } else {
            GateAt::BeforeSwitch
        },
        phase: GatePhase::Failed,
        attempt: 1,
        message: Some("Job web-v2-smoke-1 failed: BackoffLimitExceeded".into()),
        job_name: Some("web-v2-smoke-1".into()),
        logs: None,
        attempts: 0,
        last_attempt: None,
        started_at: t(150),
        previous_revision: previous.map(str::to_owned),
    }];
    if let Some(p) = previous {
        s.stable_revision = Some(p.into());
        s.history.push(record(p, Outcome::RolledBack, 280));
    }
    with_abort(s, AbortReason::GateFailed)
}

fn ids(before: &RolloutStatus, after: &RolloutStatus) -> Vec<(Trigger, String)> {
    fired(before, after, t(300))
        .into_iter()
        .map(|h| (h.trigger, h.id))
        .collect()
}

/// (name, before, after, the (trigger, id)s that fire)
type Row = (
    &'static str,
    RolloutStatus,
    RolloutStatus,
    Vec<(Trigger, String)>,
);

#[test]
fn the_table() {
    use Trigger::*;
    let started = |s: &str| (RolloutStarted, format!("rollout-started/v2/{s}"));
    let t100 = t(100).to_rfc3339();
    let t200 = t(200).to_rfc3339();
    let mut promoted_v2 = healthy("v1");
    promoted_v2.current_revision = Some("v2".into());
    promoted_v2.stable_revision = Some("v2".into());
    promoted_v2.revision_started_at = Some(t(100));
    promoted_v2
        .history
        .push(record("v2", Outcome::Promoted, 250));
    let mut undone = promoted_v2.clone();
    undone.current_revision = Some("v1".into());
    undone.stable_revision = Some("v1".into());
    undone.revision_started_at = Some(t(260));
    undone.history.push(record("v1", Outcome::RolledBack, 270));
    let mut manual = canary(CanaryPhase::Passed, 0);
    manual.conditions = vec![ready("AwaitingPromotion", "run redblack promote")];
    let mut window = canary(CanaryPhase::Passed, 0);
    window.conditions = vec![ready(
        "OutsidePromotionWindow",
        "opens at 2026-01-05T08:00:00Z",
    )];
    let mut post = promoted_v2.clone();
    post.post_promotion = Some(PostPromotionStatus {
        revision: "v2".into(),
        previous_revision: "v1".into(),
        analysis_name: "web-v2-post".into(),
        switched_at: t(250),
        phase: PostPromotionPhase::Running,
        score: None,
        message: None,
    });
    let mut post_failed = with_abort(post.clone(), AbortReason::PostPromotionAnalysisFailed);
    post_failed.stable_revision = Some("v1".into());
    if let Some(p) = post_failed.post_promotion.as_mut() {
        p.phase = PostPromotionPhase::Failed;
        p.score = Some(10.0);
    }
    post_failed
        .history
        .push(record("v1", Outcome::RolledBack, 280));

    let rows: Vec<Row> = vec![
        ("no change", healthy("v1"), healthy("v1"), vec![]),
        (
            "a new Rollout's first status: started and promoted",
            RolloutStatus::default(),
            healthy("v1"),
            vec![
                (
                    RolloutStarted,
                    format!("rollout-started/v1/{}", t(0).to_rfc3339()),
                ),
                (Promoted, format!("promoted/v1/{}", t(0).to_rfc3339())),
            ],
        ),
        (
            "a new template with a canary being brought up",
            healthy("v1"),
            canary(CanaryPhase::Progressing, 0),
            vec![
                started(&t100),
                (CanaryStarted, "canary-started/web-v2-1".into()),
            ],
        ),
        (
            "traffic to the canary is no trigger",
            canary(CanaryPhase::Progressing, 0),
            canary(CanaryPhase::Analysing, 10),
            vec![],
        ),
        (
            "a verdict",
            canary(CanaryPhase::Analysing, 10),
            canary(CanaryPhase::Passed, 0),
            vec![(CanaryVerdict, "canary-verdict/web-v2-1/Passed".into())],
        ),
        (
            "the same verdict seen again is no trigger",
            canary(CanaryPhase::Passed, 0),
            canary(CanaryPhase::Passed, 0),
            vec![],
        ),
        (
            "started, canary, verdict and revert seen in one step",
            healthy("v1"),
            with_abort(canary(CanaryPhase::Failed, 0), AbortReason::AnalysisFailed),
            vec![
                started(&t100),
                (CanaryStarted, "canary-started/web-v2-1".into()),
                (CanaryVerdict, "canary-verdict/web-v2-1/Failed".into()),
                (Reverted, format!("reverted/v2/{t200}")),
            ],
        ),
        (
            "a second attempt is a new canary",
            canary(CanaryPhase::Marginal, 0),
            {
                let mut s = canary(CanaryPhase::Analysing, 10);
                if let Some(c) = s.canary.as_mut() {
                    c.analysis_name = Some("web-v2-2".into());
                    c.attempt = 2;
                }
                s
            },
            vec![(CanaryStarted, "canary-started/web-v2-2".into())],
        ),
        (
            "promoted after a passed canary",
            canary(CanaryPhase::Passed, 0),
            promoted_v2.clone(),
            vec![(Promoted, format!("promoted/v2/{}", t(250).to_rfc3339()))],
        ),
        (
            "undo: back to the warm revision",
            promoted_v2.clone(),
            undone,
            vec![
                (
                    RolloutStarted,
                    format!("rollout-started/v1/{}", t(260).to_rfc3339()),
                ),
                (Undo, format!("undo/v1/{}", t(270).to_rfc3339())),
            ],
        ),
        (
            "a missed progress deadline",
            canary(CanaryPhase::Progressing, 0),
            with_abort(
                canary(CanaryPhase::Progressing, 0),
                AbortReason::ProgressDeadlineExceeded,
            ),
            vec![(
                ProgressDeadlineExceeded,
                format!("progress-deadline-exceeded/v2/{t200}"),
            )],
        ),
        (
            "a late revision (progressDeadlineAbort: false): not aborted, said once",
            canary(CanaryPhase::Progressing, 0),
            late(canary(CanaryPhase::Progressing, 0)),
            vec![(
                ProgressDeadlineExceeded,
                format!("progress-deadline-exceeded/v2/{}", t(100).to_rfc3339()),
            )],
        ),
        (
            "still late: nothing new",
            late(canary(CanaryPhase::Progressing, 0)),
            late(canary(CanaryPhase::Progressing, 0)),
            vec![],
        ),
        (
            "aborted for the deadline: the abort says it, once",
            canary(CanaryPhase::Progressing, 0),
            late(with_abort(
                canary(CanaryPhase::Progressing, 0),
                AbortReason::ProgressDeadlineExceeded,
            )),
            vec![(
                ProgressDeadlineExceeded,
                format!("progress-deadline-exceeded/v2/{t200}"),
            )],
        ),
        (
            "a user's abort",
            canary(CanaryPhase::Analysing, 10),
            with_abort(canary(CanaryPhase::Analysing, 0), AbortReason::User),
            vec![(Aborted, format!("aborted/v2/{t200}"))],
        ),
        (
            "waiting for a manual promote",
            canary(CanaryPhase::Passed, 0),
            manual.clone(),
            vec![(
                PausedForPromote,
                format!(
                    "paused-for-promote/v2/{}",
                    short_hash("run redblack promote")
                ),
            )],
        ),
        (
            "still waiting is no trigger",
            manual.clone(),
            manual,
            vec![],
        ),
        (
            "waiting for a promotion window",
            canary(CanaryPhase::Passed, 0),
            window,
            vec![(
                PromotionWaiting,
                format!(
                    "promotion-waiting/v2/{}",
                    short_hash("opens at 2026-01-05T08:00:00Z")
                ),
            )],
        ),
        (
            "a failed post-promotion analysis: reverted, not an undo",
            post,
            post_failed,
            vec![
                (Reverted, format!("reverted/v2/{t200}")),
                (
                    PostPromotionFailed,
                    "post-promotion-failed/web-v2-post".into(),
                ),
            ],
        ),
        (
            "a failed gate before the switch",
            canary(CanaryPhase::Progressing, 0),
            gate_failed(canary(CanaryPhase::Progressing, 0), None),
            vec![(Reverted, format!("reverted/v2/{t200}"))],
        ),
        (
            "a failed AfterSwitch gate: reverted, not an undo",
            promoted_v2.clone(),
            gate_failed(promoted_v2.clone(), Some("v1")),
            vec![(Reverted, format!("reverted/v2/{t200}"))],
        ),
    ];
    for (name, before, after, expected) in rows {
        assert_eq!(ids(&before, &after), expected, "{name}");
    }
}

#[test]
fn severities_and_details() {
    let after = with_abort(canary(CanaryPhase::Failed, 0), AbortReason::AnalysisFailed);
    let fired = fired(&canary(CanaryPhase::Analysing, 10), &after, t(300));
    let verdict = fired
        .iter()
        .find(|h| h.trigger == Trigger::CanaryVerdict)
        .unwrap();
    assert_eq!(verdict.severity, Severity::Critical);
    assert_eq!(verdict.verdict.as_deref(), Some("Failed"));
    assert_eq!(verdict.score, Some(42.0));
    assert_eq!(verdict.analysis.as_deref(), Some("web-v2-1"));
    assert_eq!(verdict.revision.as_deref(), Some("v2"));
    assert_eq!(verdict.stable_revision.as_deref(), Some("v1"));
    assert_eq!(verdict.at, t(300));
    let passed = super::fired(
        &canary(CanaryPhase::Analysing, 10),
        &canary(CanaryPhase::Passed, 0),
        t(300),
    );
    assert_eq!(passed[0].severity, Severity::Info);
    let marginal = super::fired(
        &canary(CanaryPhase::Analysing, 10),
        &canary(CanaryPhase::Marginal, 0),
        t(300),
    );
    assert_eq!(marginal[0].severity, Severity::Warning);
}

#[test]
fn kebab_names() {
    assert_eq!(kebab(Trigger::RolloutStarted), "rollout-started");
    assert_eq!(kebab(Trigger::CanaryVerdict), "canary-verdict");
}

#[test]
fn a_failed_gate_is_named() {
    let before = canary(CanaryPhase::Progressing, 0);
    let fired_before = fired(&before, &gate_failed(before.clone(), None), t(300));
    assert_eq!(
        fired_before[0].summary,
        "revision v2 failed gate smoke; traffic stays on the stable revision"
    );
    assert_eq!(
        fired_before[0].message.as_deref(),
        Some("GateFailed: gate smoke: Job web-v2-smoke-1 failed: BackoffLimitExceeded")
    );
    assert_eq!(fired_before[0].severity, Severity::Critical);
    let after = fired(&before, &gate_failed(before.clone(), Some("v1")), t(300));
    assert_eq!(
        after[0].summary,
        "revision v2 failed gate smoke after the switch; traffic is switched back to v1"
    );
    let pre = fired(
        &before,
        &with_abort(before.clone(), AbortReason::PrePromotionAnalysisFailed),
        t(300),
    );
    assert_eq!(
        pre[0].summary,
        "revision v2 failed its pre-promotion analysis; traffic stays on the stable revision"
    );
}
