use chrono::{TimeZone, Utc};

use super::*;
use crate::api::notifier::{Severity, Trigger};
use crate::api::{CanaryPhase, CanaryStatus};

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap()
}

fn sub(notifier: &str, triggers: &[Trigger], min: Severity) -> NotificationSubscription {
    NotificationSubscription {
        notifier: notifier.into(),
        triggers: triggers.to_vec(),
        min_severity: min,
    }
}

fn canary(phase: CanaryPhase, traffic: i32) -> RolloutStatus {
    RolloutStatus {
        current_revision: Some("v2".into()),
        stable_revision: Some("v1".into()),
        canary: Some(CanaryStatus {
            phase: Some(phase),
            analysis_name: Some("web-v2-1".into()),
            revision: Some("v2".into()),
            traffic_percent: traffic,
            ..CanaryStatus::default()
        }),
        ready_replicas: traffic,
        ..RolloutStatus::default()
    }
}

#[test]
fn routes_filter_by_trigger_and_severity_each_notifier_once() {
    let analysing = canary(CanaryPhase::Analysing, 10);
    let failed = fired(&analysing, &canary(CanaryPhase::Failed, 0), t(1)).remove(0);
    let passed = fired(&analysing, &canary(CanaryPhase::Passed, 0), t(1)).remove(0);
    let subs = [
        sub("all", &[], Severity::Info),
        sub("pager", &[], Severity::Critical),
        sub("verdicts", &[Trigger::CanaryVerdict], Severity::Info),
        sub("promotions", &[Trigger::Promoted], Severity::Info),
        sub("all", &[Trigger::CanaryVerdict], Severity::Info),
    ];
    assert_eq!(routes(&subs, &failed), ["all", "pager", "verdicts"]);
    assert_eq!(routes(&subs, &passed), ["all", "verdicts"]);
}

#[test]
fn advance_queues_once_and_a_replay_queues_nothing() {
    let subs = [sub("team", &[], Severity::Info)];
    let mut ledger = Ledger::starting_at(Some(&canary(CanaryPhase::Analysing, 10)));
    assert!(
        !ledger.behind(&canary(CanaryPhase::Analysing, 20)),
        "traffic is no change"
    );
    let after = canary(CanaryPhase::Failed, 0);
    assert!(ledger.behind(&after));
    let advanced = ledger.advance(&after, "uid", &subs, |_| None, t(5));
    assert_eq!(advanced.added.len(), 1);
    assert_eq!(
        ledger.pending[0].key,
        "uid/canary-verdict/web-v2-1/Failed/team"
    );
    assert!(!ledger.behind(&after));
    let again = ledger.advance(&after, "uid", &subs, |_| None, t(6));
    assert!(again.added.is_empty());
    assert_eq!(ledger.pending.len(), 1);
    // The ledger survives a round trip through its JSON (the ConfigMap).
    let json = serde_json::to_string(&ledger).unwrap();
    assert_eq!(serde_json::from_str::<Ledger>(&json).unwrap(), ledger);
}

#[test]
fn a_new_ledger_announces_nothing_of_the_past() {
    let status = canary(CanaryPhase::Failed, 0);
    let mut ledger = Ledger::starting_at(Some(&status));
    let subs = [sub("team", &[], Severity::Info)];
    assert!(
        ledger
            .advance(&status, "uid", &subs, |_| None, t(1))
            .added
            .is_empty()
    );
}

#[test]
fn failures_back_off_capped_and_delivery_removes() {
    let backoff = Backoff {
        first: Duration::from_secs(1),
        cap: Duration::from_secs(10),
    };
    assert_eq!(
        (1..=6)
            .map(|n| backoff.after(n).as_secs())
            .collect::<Vec<_>>(),
        [1, 2, 4, 8, 10, 10]
    );
    assert_eq!(backoff.after(u32::MAX), Duration::from_secs(10));
    let subs = [sub("team", &[], Severity::Info)];
    let mut ledger = Ledger::starting_at(Some(&canary(CanaryPhase::Analysing, 10)));
    ledger.advance(
        &canary(CanaryPhase::Failed, 0),
        "uid",
        &subs,
        |_| None,
        t(0),
    );
    let key = ledger.pending[0].key.clone();
    assert_eq!(ledger.due(t(0)), std::slice::from_ref(&key));
    assert_eq!(ledger.failed(&key, "503", backoff, t(0)), 1);
    assert_eq!(ledger.failed(&key, "503", backoff, t(1)), 2);
    assert_eq!(ledger.next_attempt(), Some(t(3)));
    assert!(ledger.due(t(2)).is_empty());
    assert_eq!(ledger.due(t(3)), std::slice::from_ref(&key));
    assert_eq!(ledger.get(&key).unwrap().last_error.as_deref(), Some("503"));
    ledger.delivered(&key);
    assert!(ledger.pending.is_empty());
    assert_eq!(ledger.delivered, [key]);
    assert_eq!(ledger.next_attempt(), None);
}

#[test]
fn pending_and_delivered_are_bounded() {
    let subs = [sub("team", &[], Severity::Info)];
    let mut ledger = Ledger::starting_at(None);
    let mut dropped = 0;
    for i in 0..(PENDING_LIMIT + 7) {
        let mut s = canary(CanaryPhase::Analysing, 0);
        if let Some(c) = s.canary.as_mut() {
            c.analysis_name = Some(format!("web-v2-{i}"));
        }
        s.current_revision = Some("v2".into());
        dropped += ledger
            .advance(&s, "uid", &subs, |_| None, t(0))
            .dropped
            .len();
    }
    assert_eq!(ledger.pending.len(), PENDING_LIMIT);
    // The first status fires RolloutStarted too: one more than the loop.
    assert_eq!(dropped, 8);
    assert_eq!(ledger.dropped, 8);
    assert!(
        ledger.pending[0].key.contains("web-v2-7/"),
        "{}",
        ledger.pending[0].key
    );
    for i in 0..(DELIVERED_LIMIT + 3) {
        ledger.delivered(&format!("k{i}"));
    }
    assert_eq!(ledger.delivered.len(), DELIVERED_LIMIT);
    assert_eq!(ledger.delivered[0], "k3");
}
