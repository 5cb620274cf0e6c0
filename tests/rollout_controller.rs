//! The Rollout controller against the in-process sandbox: real HTTP, real kube
//! client, the operator started in-process with `run_controller`.

mod support;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use redblack::api::conditions::{self, find};
use redblack::api::{
    ConditionStatus, Outcome, POD_TEMPLATE_HASH_LABEL, Phase, SCALE_DOWN_AT_ANNOTATION,
};
use serde_json::json;
use support::*;

const FAST: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_deploy_creates_owned_fleet_and_switches_the_service() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let created = env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let running = env.start_controller();

    let rollout = env.wait_phase("web", Phase::Healthy).await;
    assert!(
        running.readiness.is_ready(),
        "ready after the caches synced"
    );
    let hash = hash_of(&rollout);
    let status = rollout.status.clone().unwrap();
    assert_eq!(status.observed_generation, created.metadata.generation);
    assert_eq!(status.stable_revision.as_deref(), Some(hash.as_str()));
    assert_eq!(status.current_revision.as_deref(), Some(hash.as_str()));
    assert_eq!(status.ready_replicas, 2);
    let ready = find(&status.conditions, conditions::READY).unwrap();
    assert_eq!(ready.status, ConditionStatus::True);

    let owned = env.owned(&rollout).await;
    assert_eq!(owned.len(), 1, "one ReplicaSet");
    let rs = &owned[0];
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    let owner = &rs.owner_references()[0];
    assert_eq!(owner.kind, "Rollout");
    assert_eq!(Some(&owner.uid), rollout.uid().as_ref());
    assert_eq!(owner.controller, Some(true));
    assert_eq!(rs.status.as_ref().unwrap().ready_replicas, Some(2));

    let selector = env.selector("web").await;
    assert_eq!(selector.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        selector.get(POD_TEMPLATE_HASH_LABEL),
        Some(&hash),
        "the Service selects the new fleet"
    );
    let reasons = env
        .wait_event_reasons(
            &rollout,
            &["ReplicaSetCreated", "SwitchedTraffic", "Healthy"],
        )
        .await;
    for expected in ["ReplicaSetCreated", "SwitchedTraffic", "Healthy"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "event {expected} in {reasons:?}"
        );
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_brings_up_new_fleet_switches_keeps_old_warm_then_retires_it() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let manifest = set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/scaleDownDelay",
        json!("3s"),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let v1 = env.wait_phase("web", Phase::Healthy).await;
    let h1 = hash_of(&v1);

    let updated = env.set_image("web", "demo:2").await;
    let h2 = hash_of(&updated);
    assert_ne!(h1, h2);
    env.wait_selected("web", &h2).await;
    let v2 = env.wait_phase("web", Phase::Healthy).await;
    let status = v2.status.clone().unwrap();
    assert_eq!(status.stable_revision.as_deref(), Some(h2.as_str()));
    let promoted = status
        .history
        .iter()
        .find(|h| h.hash == h2 && h.outcome == Outcome::Promoted)
        .expect("history records the promotion");

    // The old fleet was given its warm window at the moment of the switch.
    let old = env.rs_for("web", &h1).await.expect("old fleet kept");
    let at = old
        .annotations()
        .get(SCALE_DOWN_AT_ANNOTATION)
        .expect("scale-down-at set on the fleet leaving traffic")
        .clone();
    let at = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
    assert_eq!(
        (at.with_timezone(&chrono::Utc) - promoted.time).num_seconds(),
        3,
        "warm until switch + scaleDownDelay"
    );

    // … and retired after it.
    let old = eventually("the old fleet is scaled to zero", || async {
        let rs = env.rs_for("web", &h1).await?;
        (rs.spec.replicas == Some(0) && rs.status.as_ref()?.replicas == 0).then_some(rs)
    })
    .await;
    assert!(env.pod_uids(&h1).await.is_empty());
    assert_eq!(old.spec.replicas, Some(0));
    let new = env.wait_rs_size("web", &h2, 2).await;
    assert_eq!(new.status.unwrap().ready_replicas, Some(2));
    assert_eq!(env.selected("web").await.as_deref(), Some(h2.as_str()));
    running.stop().await.unwrap();
}

/// Annotations on the pod template that the sandbox's pod simulator reads.
fn with_pod_annotation(v: serde_json::Value, key: &str, value: &str) -> serde_json::Value {
    let pointer = format!(
        "/spec/template/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    );
    set(v, &pointer, json!(value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_inside_the_warm_window_switches_at_once_to_the_same_pods() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    // Any NEW pod of revision 1 would take 4s to become ready: the undo must
    // not need one.
    let v1 = with_pod_annotation(
        rollout_json("web", "demo:1", 2),
        "sandbox.redblack.io/ready-after",
        "4s",
    );
    env.create_rollout(v1).await;
    let running = env.start_controller();
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    let h1 = hash_of(&r1);
    let pods_before = env.pod_uids(&h1).await;
    assert_eq!(pods_before.len(), 2);

    let r2 = env
        .patch(
            "web",
            json!({"spec": {"template": {
                "metadata": {"annotations": {"sandbox.redblack.io/ready-after": null}},
                "spec": {"containers": [{"name": "app", "image": "demo:2"}]}
            }}}),
        )
        .await;
    let h2 = hash_of(&r2);
    env.wait_selected("web", &h2).await;
    env.wait_phase("web", Phase::Healthy).await;

    let out = redblack::cli::rollouts::undo(&env.client, NS, "web", None)
        .await
        .expect("undo");
    assert!(out.contains("revision 1"), "{out}");
    env.wait_selected("web", &h1).await;
    // Switched to the very pods that served before: nothing was started or
    // waited for.
    assert_eq!(env.pod_uids(&h1).await, pods_before);
    let rs1 = env.rs_for("web", &h1).await.unwrap();
    assert_eq!(rs1.status.as_ref().unwrap().ready_replicas, Some(2));
    let back = env.wait_phase("web", Phase::Healthy).await;
    let status = back.status.unwrap();
    assert_eq!(status.stable_revision.as_deref(), Some(h1.as_str()));
    assert!(
        status
            .history
            .iter()
            .any(|h| h.hash == h1 && h.outcome == Outcome::RolledBack),
        "{:?}",
        status.history
    );
    // Revision 1's fleet became the newest revision (as a Deployment renumbers).
    assert_eq!(
        rs1.annotations()
            .get(redblack::api::REVISION_ANNOTATION)
            .map(String::as_str),
        Some("3")
    );
    // The v2 fleet is now the warm one.
    let rs2 = env.rs_for("web", &h2).await.unwrap();
    assert!(rs2.annotations().contains_key(SCALE_DOWN_AT_ANNOTATION));
    assert_eq!(rs2.spec.replicas, Some(2));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_the_warm_window_scales_up_waits_then_switches() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let manifest = set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/scaleDownDelay",
        json!("1s"),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    let old_pods = env.pod_uids(&h1).await;
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    env.wait_selected("web", &h2).await;
    eventually("revision 1 is scaled to zero", || async {
        let rs = env.rs_for("web", &h1).await?;
        (rs.spec.replicas == Some(0) && env.pod_uids(&h1).await.is_empty()).then_some(())
    })
    .await;

    redblack::cli::rollouts::undo(&env.client, NS, "web", Some(1))
        .await
        .expect("undo --to-revision 1");
    env.wait_selected("web", &h1).await;
    let rs1 = env.wait_rs_size("web", &h1, 2).await;
    assert_eq!(rs1.status.unwrap().ready_replicas, Some(2));
    let new_pods = env.pod_uids(&h1).await;
    assert_eq!(new_pods.len(), 2);
    assert!(
        new_pods.iter().all(|p| !old_pods.contains(p)),
        "the cold fleet was brought up with new pods"
    );
    let r = env.wait_phase("web", Phase::Healthy).await;
    assert!(
        r.status
            .unwrap()
            .history
            .iter()
            .any(|h| h.hash == h1 && h.outcome == Outcome::RolledBack)
    );
    running.stop().await.unwrap();
}

/// The default (`progressDeadlineAbort: false`): a first deploy whose pods
/// are ready only after the deadline is Degraded while late (one Warning) and
/// goes live by itself once they are — no retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_first_deploy_is_degraded_then_heals_without_retry() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    // Ready 12s after start against a 2s deadline: a wide window in which
    // the late state is observed even on a busy machine.
    let manifest = set(
        set(
            rollout_json("web", "demo:1", 2),
            "/spec/progressDeadlineSeconds",
            json!(2),
        ),
        "/spec/template/metadata/annotations",
        json!({"sandbox.redblack.io/ready-after": "12s"}),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();

    let degraded = env.wait_phase("web", Phase::Degraded).await;
    let hash = hash_of(&degraded);
    let status = degraded.status.clone().unwrap();
    assert_eq!(status.abort, None, "a late revision is not aborted");
    assert_eq!(
        env.selected("web").await,
        None,
        "nothing switched while late"
    );
    let progressing = find(&status.conditions, conditions::PROGRESSING).unwrap();
    assert_eq!(progressing.status, ConditionStatus::False);
    assert_eq!(progressing.reason, "ProgressDeadlineExceeded");
    assert!(
        progressing.message.contains(&hash),
        "{}",
        progressing.message
    );

    let healthy = env.wait_phase("web", Phase::Healthy).await;
    assert_eq!(hash_of(&healthy), hash);
    assert_eq!(env.selected("web").await.as_deref(), Some(hash.as_str()));
    let status = healthy.status.clone().unwrap();
    assert!(
        status.history.iter().all(|h| h.outcome != Outcome::Failed),
        "{:?}",
        status.history
    );
    // Events are recorded after the status write: wait for the switch's.
    let reasons = env
        .wait_event_reasons(&healthy, &["ProgressDeadlineExceeded", "SwitchedTraffic"])
        .await;
    let warnings = reasons
        .iter()
        .filter(|r| *r == "ProgressDeadlineExceeded")
        .count();
    assert_eq!(warnings, 1, "one Warning for one miss: {reasons:?}");
    assert!(!reasons.iter().any(|r| r == "Retried"), "{reasons:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_progress_deadline_with_abort_degrades_and_leaves_traffic_alone() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let manifest = set(
        set(
            rollout_json("web", "demo:1", 2),
            "/spec/progressDeadlineSeconds",
            json!(2),
        ),
        "/spec/progressDeadlineAbort",
        json!(true),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);

    let broken = env
        .patch(
            "web",
            json!({"spec": {"template": {
                "metadata": {"annotations": {"sandbox.redblack.io/never-ready": "true"}},
                "spec": {"containers": [{"name": "app", "image": "demo:broken"}]}
            }}}),
        )
        .await;
    let h2 = hash_of(&broken);
    let degraded = env.wait_phase("web", Phase::Degraded).await;
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    let status = degraded.status.clone().unwrap();
    assert_eq!(status.stable_revision.as_deref(), Some(h1.as_str()));
    let progressing = find(&status.conditions, conditions::PROGRESSING).unwrap();
    assert_eq!(progressing.status, ConditionStatus::False);
    assert_eq!(progressing.reason, "ProgressDeadlineExceeded");
    assert!(progressing.message.contains(&h2), "{}", progressing.message);
    assert!(
        status
            .history
            .iter()
            .any(|h| h.hash == h2 && h.outcome == Outcome::Failed)
    );
    // Events are recorded after the status write: wait for it, do not race it.
    eventually("the ProgressDeadlineExceeded Event", || async {
        let reasons = env.event_reasons(&degraded).await;
        reasons
            .iter()
            .any(|r| r == "ProgressDeadlineExceeded")
            .then_some(())
    })
    .await;
    // The failed fleet is kept for debugging, the live one untouched.
    let rs2 = env.rs_for("web", &h2).await.unwrap();
    assert!(rs2.annotations().contains_key(SCALE_DOWN_AT_ANNOTATION));
    let rs1 = env.rs_for("web", &h1).await.unwrap();
    assert_eq!(rs1.spec.replicas, Some(2));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_promotion_abort_retry_and_promote_through_the_cli() {
    use redblack::cli::rollouts::{abort, promote, retry};
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let manifest = set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/promotion",
        json!("Manual"),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    // A first deploy needs no promote.
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);

    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    let waiting = env.wait_phase("web", Phase::Paused).await;
    let progressing = find(
        &waiting.status.as_ref().unwrap().conditions,
        conditions::PROGRESSING,
    )
    .unwrap()
    .clone();
    assert_eq!(progressing.reason, "AwaitingPromotion");
    env.wait_rs_size("web", &h2, 2).await;
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));

    abort(&env.client, NS, "web").await.expect("abort");
    let aborted = env.wait_phase("web", Phase::Aborted).await;
    let status = aborted.status.unwrap();
    assert_eq!(
        status.abort.as_ref().map(|a| a.revision.as_str()),
        Some(h2.as_str())
    );
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    let rs2 = env.rs_for("web", &h2).await.unwrap();
    assert!(rs2.annotations().contains_key(SCALE_DOWN_AT_ANNOTATION));
    // Promoting an aborted revision is refused by the CLI.
    assert!(promote(&env.client, NS, "web").await.is_err());

    retry(&env.client, NS, "web").await.expect("retry");
    let again = eventually("the abort is cleared", || async {
        let r = env.get("web").await;
        let s = r.status.clone()?;
        (s.abort.is_none() && s.phase == Some(Phase::Paused)).then_some(r)
    })
    .await;
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));

    promote(&env.client, NS, "web").await.expect("promote");
    env.wait_selected("web", &h2).await;
    let done = env.wait_phase("web", Phase::Healthy).await;
    // The Events follow the status writes they describe: wait for them.
    let reasons = env
        .wait_event_reasons(
            &done,
            &["Aborted", "Retried", "PromoteAccepted", "SwitchedTraffic"],
        )
        .await;
    for r in ["Aborted", "Retried", "PromoteAccepted"] {
        let n = reasons.iter().filter(|x| *x == r).count();
        assert_eq!(n, 1, "one {r} Event for one operation: {reasons:?}");
    }
    assert!(again.status.unwrap().operations.retry.is_some());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_a_new_revision_and_resume_rolls_it_out() {
    use redblack::cli::rollouts::{pause, resume};
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);

    pause(&env.client, NS, "web").await.expect("pause");
    env.wait_phase("web", Phase::Paused).await;
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    let paused = env.wait_phase("web", Phase::Paused).await;
    assert_eq!(
        paused.status.as_ref().unwrap().current_revision.as_deref(),
        Some(h2.as_str())
    );
    assert!(
        env.rs_for("web", &h2).await.is_none(),
        "no fleet while paused"
    );
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    let paused_cond = find(&paused.status.unwrap().conditions, conditions::PAUSED)
        .unwrap()
        .clone();
    assert_eq!(paused_cond.status, ConditionStatus::True);

    resume(&env.client, NS, "web").await.expect("resume");
    env.wait_selected("web", &h2).await;
    env.wait_phase("web", Phase::Healthy).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_subresource_drives_the_live_fleet() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);

    // What `kubectl scale rbro/web --replicas 4` and an HPA do.
    env.rollouts()
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect("scale");
    let rs = env.wait_rs_size("web", &h1, 4).await;
    assert_eq!(rs.status.unwrap().ready_replicas, Some(4));
    let r = eventually("status reports 4 ready", || async {
        let r = env.get("web").await;
        (r.status.as_ref()?.ready_replicas == 4).then_some(r)
    })
    .await;
    let scale = env.rollouts().get_scale("web").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(4));
    assert_eq!(scale.status.map(|s| s.replicas), Some(4));
    assert_eq!(
        env.owned(&r).await.len(),
        1,
        "scaling is not a new revision"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_name_the_field_create_nothing_and_never_loop() {
    let env = Env::start(FAST).await;
    let cases = [
        (
            "mismatch",
            set(
                rollout_json("mismatch", "demo:1", 1),
                "/spec/template/metadata/labels",
                json!({"app": "something-else"}),
            ),
            "spec.template.metadata.labels",
        ),
        (
            "deadline",
            set(
                set(
                    rollout_json("deadline", "demo:1", 1),
                    "/spec/minReadySeconds",
                    json!(30),
                ),
                "/spec/progressDeadlineSeconds",
                json!(10),
            ),
            "spec.progressDeadlineSeconds",
        ),
        (
            "hashlabel",
            set(
                set(
                    rollout_json("hashlabel", "demo:1", 1),
                    "/spec/selector/matchLabels",
                    json!({"app": "hashlabel", (POD_TEMPLATE_HASH_LABEL): "x"}),
                ),
                "/spec/template/metadata/labels",
                json!({"app": "hashlabel", (POD_TEMPLATE_HASH_LABEL): "x"}),
            ),
            "spec.selector.matchLabels",
        ),
        (
            "timezone",
            set(
                rollout_json("timezone", "demo:1", 1),
                "/spec/strategy/redBlack/promotionWindows",
                json!([{"start": "09:00", "end": "17:00", "timeZone": "Mars/Olympus_Mons"}]),
            ),
            "spec.strategy.redBlack.promotionWindows[0].timeZone",
        ),
    ];
    for (name, manifest, _) in &cases {
        env.create_service(name, name).await;
        env.create_rollout(manifest.clone()).await;
    }
    let running = env.start_controller();
    for (name, _, field) in &cases {
        let r = env.wait_phase(name, Phase::InvalidSpec).await;
        let status = r.status.clone().unwrap();
        let invalid = find(&status.conditions, conditions::INVALID_SPEC).unwrap();
        assert_eq!(invalid.status, ConditionStatus::True);
        assert!(
            invalid.message.contains(field),
            "{name}: {field} in {:?}",
            invalid.message
        );
        let ready = find(&status.conditions, conditions::READY).unwrap();
        assert_eq!(ready.status, ConditionStatus::False);
        assert!(env.owned(&r).await.is_empty(), "{name}: no ReplicaSet");
        let selector = env.selector(name).await;
        assert_eq!(
            selector,
            [("app".to_owned(), name.to_string())].into(),
            "{name}: Service untouched"
        );
        let reasons = env.wait_event_reasons(&r, &["InvalidSpec"]).await;
        assert_eq!(
            reasons.iter().filter(|x| *x == "InvalidSpec").count(),
            1,
            "{name}: one InvalidSpec event, {reasons:?}"
        );
    }
    // No loop: quiet means quiet.
    let before = env.writes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.writes(), before, "an invalid Rollout causes no writes");

    // Fixing the spec lets it proceed.
    env.patch("deadline", json!({"spec": {"minReadySeconds": 0}}))
        .await;
    env.wait_phase("deadline", Phase::Healthy).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_is_a_condition_not_a_crash() {
    let env = Env::start(FAST).await;
    env.create_rollout(rollout_json("lonely", "demo:1", 1))
        .await;
    let running = env.start_controller();
    let r = env.wait_phase("lonely", Phase::Degraded).await;
    let status = r.status.clone().unwrap();
    let ready = find(&status.conditions, conditions::READY).unwrap();
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "ActiveServiceNotFound");
    let stalled = find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!(stalled.status, ConditionStatus::True);
    // The fleet is prepared meanwhile.
    let hash = hash_of(&r);
    env.wait_rs_size("lonely", &hash, 1).await;

    env.create_service("lonely", "lonely").await;
    env.wait_selected("lonely", &hash).await;
    env.wait_phase("lonely", Phase::Healthy).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_rollout_causes_no_writes() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 3)).await;
    let running = env.start_controller();
    env.wait_phase("web", Phase::Healthy).await;
    let reconciles = || {
        running
            .metrics
            .encode()
            .unwrap()
            .lines()
            .find(|l| l.starts_with("redblack_reconciles_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Let trailing watch events settle, then snapshot.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = env.sandbox.request_counts();
    let writes = |c: &redblack_sandbox::RequestCounts| {
        let by = c.by_verb();
        ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|v| by.get(*v).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let before = writes(&counts);
    let reconciles_before = reconciles();

    // Provoke reconciles without changing anything the operator decides on:
    // a label on the Service, an unrelated annotation on the Rollout.
    // One at a time: two triggers for the same Rollout that arrive before
    // its reconcile starts are merged into one reconcile (the controller's
    // queue), so waiting for two reconciles after two quick writes failed
    // once on a loaded machine.
    env.services()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    eventually("the operator reconciled the touched Service", || async {
        (reconciles() > reconciles_before).then_some(())
    })
    .await;
    let reconciles_between = reconciles();
    env.patch(
        "web",
        json!({"metadata": {"annotations": {"example.com/note": "hi"}}}),
    )
    .await;
    eventually("the operator reconciled the touched Rollout", || async {
        (reconciles() > reconciles_between).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        writes(&counts),
        before + 2,
        "only the test's own two writes: {:?}",
        counts.snapshot()
    );
    running.stop().await.unwrap();
}

/// The operator is killed (its task aborted wherever it is, mid-request
/// included) right after the k-th write of an update, for every k, and a fresh
/// one started: the rollout still ends exactly where it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_at_every_step_of_an_update_still_converges() {
    let env = Env::start(Duration::from_millis(100)).await;
    // Writes of one uninterrupted update, measured first.
    let mut steps = None;
    let mut k = 0;
    loop {
        k += 1;
        let name = match steps {
            None => "baseline".to_owned(),
            Some(_) => format!("k{k}"),
        };
        env.create_service(&name, &name).await;
        let manifest = set(
            rollout_json(&name, "demo:1", 2),
            "/spec/strategy/redBlack/scaleDownDelay",
            json!("2s"),
        );
        env.create_rollout(manifest).await;
        let first = env.start_controller();
        let h1 = hash_of(&env.wait_phase(&name, Phase::Healthy).await);
        first.stop().await.unwrap();

        let h2 = hash_of(&env.set_image(&name, "demo:2").await);
        let base = env.object_writes();
        let running = env.start_controller();
        let survivor = if steps.is_some() {
            // Kill right after the k-th write (or at the end if there are fewer).
            eventually(&format!("write {k} of the update"), || async {
                let done = env.selected(&name).await.as_deref() == Some(h2.as_str())
                    && env.rs_for(&name, &h1).await?.spec.replicas == Some(0);
                (env.object_writes() >= base + k || done).then_some(())
            })
            .await;
            running.kill().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            env.start_controller()
        } else {
            running
        };

        env.wait_selected(&name, &h2).await;
        let old = eventually("the old fleet is retired", || async {
            let rs = env.rs_for(&name, &h1).await?;
            (rs.spec.replicas == Some(0) && env.pod_uids(&h1).await.is_empty()).then_some(rs)
        })
        .await;
        let r = env.wait_phase(&name, Phase::Healthy).await;
        assert!(old.annotations().contains_key(SCALE_DOWN_AT_ANNOTATION));
        env.wait_rs_size(&name, &h2, 2).await;
        assert_eq!(
            env.owned(&r).await.len(),
            2,
            "k={k}: one fleet per revision"
        );
        let status = r.status.clone().unwrap();
        assert_eq!(status.stable_revision.as_deref(), Some(h2.as_str()));
        let promoted: Vec<_> = status.history.iter().filter(|h| h.hash == h2).collect();
        assert_eq!(promoted.len(), 1, "k={k}: {:?}", status.history);
        assert_eq!(promoted[0].outcome, Outcome::Promoted);
        survivor.stop().await.unwrap();

        match steps {
            None => {
                let n = env.object_writes() - base;
                assert!(n >= 4, "an update takes several writes, saw {n}");
                eprintln!("an uninterrupted update made {n} writes; killing after each");
                steps = Some(n);
                k = 0;
            }
            Some(n) if k >= n => break,
            Some(_) => {}
        }
    }
}

/// The canary actions against the sandbox: role Services, HTTPRoute weights
/// and the CanaryAnalysis (the test plays the analysis controller and passes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_through_an_http_route_is_judged_then_promoted() {
    use redblack::api::ROLLOUT_LABEL;
    use redblack::api::canary_analysis::CanaryAnalysis;
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    create_route(&env, "web-route", "web").await;
    let routes = http_routes(&env);
    let manifest = routed_canary("web", "web-route");
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    let h1 = hash_of(&r1);

    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    let analyses: kube::Api<CanaryAnalysis> = kube::Api::namespaced(env.client.clone(), NS);
    let analysis = eventually("a CanaryAnalysis is created", || async {
        analyses
            .list(&kube::api::ListParams::default().labels(ROLLOUT_LABEL))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        analysis.owner_references()[0].uid,
        r1.uid().unwrap(),
        "owned by the Rollout"
    );
    for role in ["web-canary", "web-baseline"] {
        let svc = eventually(&format!("role Service {role}"), || async {
            env.services().get_opt(role).await.ok().flatten()
        })
        .await;
        assert_eq!(svc.owner_references()[0].kind, "Rollout");
    }
    let weights = eventually("the route sends a share to the canary", || async {
        let r = routes.get("web-route").await.ok()?;
        let refs = r
            .data
            .pointer("/spec/rules/0/backendRefs")?
            .as_array()?
            .clone();
        refs.iter()
            .any(|b| b["name"] == "web-canary" && b["weight"].as_i64().unwrap_or(0) > 0)
            .then_some(refs)
    })
    .await;
    let total: i64 = weights.iter().filter_map(|b| b["weight"].as_i64()).sum();
    assert_eq!(total, 100, "{weights:?}");
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));

    // The verdict.
    analyses
        .patch_status(
            &analysis.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Passed", "score": 100.0}})),
        )
        .await
        .expect("verdict written");
    env.wait_selected("web", &h2).await;
    env.wait_phase("web", Phase::Healthy).await;
    let refs = eventually("the route is back on the active Service", || async {
        let r = routes.get("web-route").await.ok()?;
        let refs = r
            .data
            .pointer("/spec/rules/0/backendRefs")?
            .as_array()?
            .clone();
        refs.iter()
            .all(|b| b["name"] == "web" || b["weight"].as_i64() == Some(0))
            .then_some(refs)
    })
    .await;
    assert!(refs.iter().any(|b| b["name"] == "web"), "{refs:?}");
    running.stop().await.unwrap();
}

/// Analyses by template name against the sandbox: a canary whose
/// CanaryAnalysisTemplate does not exist yet is held (no traffic, no
/// analysis) with the reason; creating the template makes the analysis appear
/// with the template's metrics, labelled with it; a template whose body is not
/// a CanaryAnalysis spec is reported as the same body inline is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_waits_for_its_analysis_template_then_is_judged_by_it() {
    use kube::api::{ListParams, PostParams};
    use redblack::api::ROLLOUT_LABEL;
    use redblack::api::analysis_template::{ANALYSIS_TEMPLATE_LABEL, CanaryAnalysisTemplate};
    use redblack::api::canary_analysis::CanaryAnalysis;

    let env = Env::start(FAST).await;
    let templates: kube::Api<CanaryAnalysisTemplate> =
        kube::Api::namespaced(env.client.clone(), NS);
    let analyses: kube::Api<CanaryAnalysis> = kube::Api::namespaced(env.client.clone(), NS);
    let template = |name: &str, body: serde_json::Value| -> CanaryAnalysisTemplate {
        serde_json::from_value(json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysisTemplate",
            "metadata": {"name": name}, "spec": body
        }))
        .expect("template JSON")
    };
    let good = json!({
        "interval": "1m",
        "lifetime": "10m",
        "metrics": [{"name": "errors",
                     "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]
    });
    // Not a CanaryAnalysis spec: no interval.
    let broken = json!({"lifetime": "10m", "metrics": [{"name": "errors", "query": "q"}]});
    let with_analysis = |name: &str, analysis: serde_json::Value| {
        set(
            rollout_json(name, "demo:1", 2),
            "/spec/strategy/redBlack/canary",
            json!({"replicas": 1, "analysis": analysis}),
        )
    };
    let cases = [
        ("web", json!({"templateName": "latency"})),
        ("tpl", json!({"templateName": "broken"})),
        ("inl", json!({"inline": broken.clone()})),
    ];
    for (name, analysis) in &cases {
        env.create_service(name, name).await;
        env.create_rollout(with_analysis(name, analysis.clone()))
            .await;
    }
    templates
        .create(&PostParams::default(), &template("broken", broken.clone()))
        .await
        .expect("template created");
    let running = env.start_controller();
    let mut stable = Vec::new();
    for (name, _) in &cases {
        // The first deploy has no canary (nothing to compare with).
        stable.push(hash_of(&env.wait_phase(name, Phase::Healthy).await));
        env.set_image(name, "demo:2").await;
    }
    let progressing = |name: &'static str, reason: &'static str| {
        let env = &env;
        async move {
            eventually(&format!("{name} reports {reason}"), || async {
                let r = env.rollouts().get(name).await.ok()?;
                let s = r.status.as_ref()?;
                let c = find(&s.conditions, conditions::PROGRESSING)?;
                (c.reason == reason && s.observed_generation == r.metadata.generation)
                    .then(|| (r.clone(), c.clone()))
            })
            .await
        }
    };

    // Missing: held with the reason, its canary fleets up, no traffic, no analysis.
    let (held, condition) = progressing("web", "AnalysisTemplateNotFound").await;
    assert!(
        condition
            .message
            .contains(r#"CanaryAnalysisTemplate "latency" not found in namespace "default""#),
        "{}",
        condition.message
    );
    assert_eq!(
        held.status.as_ref().unwrap().phase,
        Some(Phase::Progressing)
    );
    let canary = held.status.as_ref().unwrap().canary.clone().unwrap();
    assert_eq!((canary.traffic_percent, canary.analysis_start), (0, None));
    let h2 = hash_of(&held);
    assert!(
        env.replica_sets()
            .get_opt(&format!("web-{h2}-canary"))
            .await
            .unwrap()
            .is_some(),
        "the canary fleet is up"
    );
    assert_eq!(
        env.selector("web").await,
        [
            ("app".to_owned(), "web".to_owned()),
            (POD_TEMPLATE_HASH_LABEL.to_owned(), stable[0].clone())
        ]
        .into(),
        "traffic stays on the stable revision only"
    );
    let owned = |name: &'static str| {
        let analyses = analyses.clone();
        async move {
            analyses
                .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}")))
                .await
                .expect("list analyses")
                .items
        }
    };
    assert!(
        owned("web").await.is_empty(),
        "no analysis without its body"
    );
    env.wait_event_reasons(&held, &["AnalysisTemplateNotFound"])
        .await;

    // An unusable body: the same reason and the same problem, inline or not.
    let (_, from_template) = progressing("tpl", "InvalidAnalysis").await;
    let (_, from_inline) = progressing("inl", "InvalidAnalysis").await;
    let problem = |message: &str| {
        let (what, rest) = message
            .split_once(" is not a usable CanaryAnalysis spec: ")
            .unwrap_or_else(|| panic!("{message}"));
        let what = what.rsplit(": ").next().unwrap_or_default().to_owned();
        (what, rest.split(';').next().unwrap_or_default().to_owned())
    };
    let (what, template_problem) = problem(&from_template.message);
    assert_eq!(what, r#"CanaryAnalysisTemplate "broken""#);
    let (what, inline_problem) = problem(&from_inline.message);
    assert_eq!(what, "spec.strategy.redBlack.canary.analysis.inline");
    assert_eq!(template_problem, inline_problem);
    assert!(template_problem.contains("missing field `interval`"));
    for name in ["tpl", "inl"] {
        let r = env.wait_phase(name, Phase::Degraded).await;
        let s = r.status.unwrap();
        assert_eq!(
            find(&s.conditions, conditions::STALLED).map(|c| c.status),
            Some(ConditionStatus::True)
        );
        assert!(owned(name).await.is_empty(), "{name}: no analysis");
    }
    // Held means quiet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = env.writes();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.writes(), before, "held Rollouts cause no writes");

    // The template appears: traffic and the analysis, from the template.
    templates
        .create(&PostParams::default(), &template("latency", good.clone()))
        .await
        .expect("template created");
    let analysis = eventually("the analysis of web is created", || async {
        owned("web").await.into_iter().next()
    })
    .await;
    assert_eq!(
        analysis
            .labels()
            .get(ANALYSIS_TEMPLATE_LABEL)
            .map(String::as_str),
        Some("latency")
    );
    let metrics: Vec<_> = analysis
        .spec
        .metrics
        .iter()
        .map(|m| (m.judge.name.clone(), m.query.clone()))
        .collect();
    assert_eq!(
        metrics,
        [(
            "errors".to_owned(),
            good["metrics"][0]["query"].as_str().map(str::to_owned)
        )]
    );
    assert_eq!(analysis.spec.interval, "1m");
    assert_eq!(
        analysis.spec.experiment.replica_set.as_deref(),
        Some(format!("web-{h2}-canary").as_str())
    );
    progressing("web", "CanaryAnalysing").await;

    // Editing the template never touches the analysis created from it.
    let mut edited = good.clone();
    edited["interval"] = json!("5m");
    let mut current = templates.get("latency").await.unwrap();
    current.spec = template("latency", edited).spec;
    templates
        .replace("latency", &PostParams::default(), &current)
        .await
        .expect("template edited");

    // Fixing the broken template lets that canary proceed too.
    let mut fixed = templates.get("broken").await.unwrap();
    fixed.spec = template("broken", good.clone()).spec;
    templates
        .replace("broken", &PostParams::default(), &fixed)
        .await
        .expect("template fixed");
    let fixed_analysis = eventually("the analysis of tpl is created", || async {
        owned("tpl").await.into_iter().next()
    })
    .await;
    assert_eq!(fixed_analysis.spec.interval, "1m");
    let unchanged = analyses.get(&analysis.name_any()).await.unwrap();
    assert_eq!(
        unchanged.spec, analysis.spec,
        "an analysis is never updated"
    );
    assert_eq!(unchanged.metadata.generation, analysis.metadata.generation);

    // The verdict (the test plays the analysis controller).
    analyses
        .patch_status(
            &analysis.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Passed", "score": 100.0}})),
        )
        .await
        .expect("verdict written");
    env.wait_selected("web", &h2).await;
    env.wait_phase("web", Phase::Healthy).await;
    running.stop().await.unwrap();
}

/// A 2-pod Rollout `name` with a canary routed through the HTTPRoute `route`.
fn routed_canary(name: &str, route: &str) -> serde_json::Value {
    set(
        set(
            rollout_json(name, "demo:1", 2),
            "/spec/strategy/redBlack/canary",
            json!({
                "replicas": 1,
                "analysis": {"inline": {
                    "interval": "1m",
                    "lifetime": "10m",
                    "experiment": {"variables": {"app": name}},
                    "metrics": [{"name": "errors",
                                 "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]
                }}
            }),
        ),
        "/spec/strategy/redBlack/trafficRouting",
        json!({"httpRoute": {"name": route}}),
    )
}

fn http_routes(env: &Env) -> kube::Api<kube::api::DynamicObject> {
    use kube::api::{ApiResource, GroupVersionKind};
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    kube::Api::namespaced_with(env.client.clone(), NS, &ApiResource::from_gvk(&gvk))
}

async fn create_route(env: &Env, name: &str, backend: &str) {
    let route: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}
    }))
    .expect("route JSON");
    http_routes(env)
        .create(&kube::api::PostParams::default(), &route)
        .await
        .expect("route created");
}

/// The route as stored, read in-process (not counted as a request).
fn stored_route(env: &Env, name: &str) -> Option<serde_json::Value> {
    let gr =
        redblack_sandbox::registry::GroupResource::new("gateway.networking.k8s.io", "httproutes");
    env.sandbox.store().get(&gr, NS, name).map(|v| (*v).clone())
}

/// The route's first rule's backends with a positive weight, by name.
fn weighted(route: &serde_json::Value) -> Vec<(String, i64)> {
    route
        .pointer("/spec/rules/0/backendRefs")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["name"].as_str()?.to_owned(), b["weight"].as_i64()?)))
        .filter(|(_, w)| *w > 0)
        .collect()
}

/// With the Gateway API served at startup, HTTPRoutes come from a watch: a
/// routed canary makes no GET of its route (reconciles read the cache, the
/// weights write is guarded by the cached resourceVersion), and a user's edit
/// of the weights during the analysis wakes the Rollout at once (the resync is
/// an hour) and is corrected, keeping the user's other route fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_canary_reads_its_route_from_the_watch_and_corrects_edits_at_once() {
    use redblack::api::CanaryPhase;
    use redblack::api::ROLLOUT_LABEL;
    use redblack::api::canary_analysis::CanaryAnalysis;
    use redblack::cli::controller::ControllerConfig;
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    create_route(&env, "web-route", "web").await;
    env.create_rollout(routed_canary("web", "web-route")).await;
    let running = Running::start_with(
        env.client.clone(),
        ControllerConfig {
            canary_analysis: false,
            resync: Duration::from_secs(3600),
            ..ControllerConfig::default()
        },
    );
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    assert!(
        running.readiness.is_ready(),
        "ready: the route cache synced"
    );
    let h1 = hash_of(&r1);
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    eventually("the canary is analysed with its share", || async {
        let r = env.get("web").await;
        let c = r.status?.canary?;
        let route = stored_route(&env, "web-route")?;
        (c.phase == Some(CanaryPhase::Analysing)
            && weighted(&route).iter().any(|(n, _)| n == "web-canary"))
        .then_some(())
    })
    .await;

    // A user (or GitOps) puts everything back on `web` and adds a match.
    http_routes(&env)
        .patch(
            "web-route",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/app"}}],
                "backendRefs": [{"name": "web", "port": 80, "weight": 100}]
            }]}})),
        )
        .await
        .expect("user edit");
    let corrected = eventually("the operator restores the canary's share", || async {
        let route = stored_route(&env, "web-route")?;
        let w = weighted(&route);
        (w.iter().any(|(n, _)| n == "web-canary") && w.iter().any(|(n, _)| n == "web-baseline"))
            .then_some(route)
    })
    .await;
    assert_eq!(
        corrected.pointer("/spec/rules/0/matches/0/path/value"),
        Some(&json!("/app")),
        "the user's match is kept: {corrected}"
    );
    assert_eq!(
        corrected.pointer("/spec/parentRefs/0/name"),
        Some(&json!("gw"))
    );

    // The verdict (the test plays the analysis controller).
    let analyses: kube::Api<CanaryAnalysis> = kube::Api::namespaced(env.client.clone(), NS);
    let analysis = analyses
        .list(&kube::api::ListParams::default().labels(ROLLOUT_LABEL))
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("the canary's analysis");
    analyses
        .patch_status(
            &analysis.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Passed", "score": 100.0}})),
        )
        .await
        .expect("verdict written");
    env.wait_selected("web", &h2).await;
    env.wait_phase("web", Phase::Healthy).await;
    eventually("the route is back on the active Service", || async {
        let route = stored_route(&env, "web-route")?;
        (weighted(&route) == [("web".to_owned(), 100)]).then_some(())
    })
    .await;
    assert_ne!(h1, h2);

    let counts = env.sandbox.request_counts();
    assert_eq!(
        counts.get("get", "httproutes"),
        0,
        "no reconcile read the route from the API"
    );
    assert!(
        counts.get("list", "httproutes") >= 1,
        "the route cache listed"
    );
    assert!(counts.get("watch", "httproutes") >= 1, "and watches");
    assert!(
        counts.get("patch", "httproutes") >= 3,
        "on, the correction, off (plus the user's edit)"
    );
    running.stop().await.unwrap();
}

/// Without the Gateway API the operator starts, becomes ready and runs
/// Rollouts; a Gateway API installed later is used through the fallback (the
/// route read per reconcile, no watch until a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gateway_api_the_operator_is_ready_and_reads_routes_installed_later() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DeleteParams, PostParams};
    use redblack::cli::controller::ControllerConfig;
    let env = Env::start(FAST).await;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(env.client.clone());
    let gateway = "gateway.networking.k8s.io/v1";
    crds.delete(
        "httproutes.gateway.networking.k8s.io",
        &DeleteParams::default(),
    )
    .await
    .expect("HTTPRoute CRD deleted");
    eventually("HTTPRoutes are no longer served", || async {
        match env.client.list_api_group_resources(gateway).await {
            Ok(list) => (!list.resources.iter().any(|r| r.name == "httproutes")).then_some(()),
            Err(_) => Some(()),
        }
    })
    .await;
    env.create_service("web", "web").await;
    env.create_rollout(routed_canary("web", "web-route")).await;
    let running = Running::start_with(
        env.client.clone(),
        ControllerConfig {
            canary_analysis: false,
            ..ControllerConfig::default()
        },
    );
    env.wait_phase("web", Phase::Healthy).await;
    eventually("the operator is ready", || async {
        running.readiness.is_ready().then_some(())
    })
    .await;

    // The Gateway API arrives after the operator started.
    let crd: CustomResourceDefinition =
        serde_json::from_value(redblack_sandbox::server::crd::httproute_crd())
            .expect("HTTPRoute CRD JSON");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("HTTPRoute CRD created");
    eventually("HTTPRoutes are served", || async {
        let list = env.client.list_api_group_resources(gateway).await.ok()?;
        list.resources
            .iter()
            .any(|r| r.name == "httproutes")
            .then_some(())
    })
    .await;
    create_route(&env, "web-route", "web").await;
    env.set_image("web", "demo:2").await;
    eventually("the canary gets its share through the route", || async {
        let route = stored_route(&env, "web-route")?;
        weighted(&route)
            .iter()
            .any(|(n, _)| n == "web-canary")
            .then_some(())
    })
    .await;
    let counts = env.sandbox.request_counts();
    assert!(
        counts.get("get", "httproutes") >= 1,
        "routes are read per reconcile"
    );
    assert_eq!(
        counts.get("list", "httproutes") + counts.get("watch", "httproutes"),
        0,
        "no route watch until a restart"
    );
    running.stop().await.unwrap();
}

/// A restarted operator continues without noise: it plans nothing before its
/// ReplicaSet and Service caches have listed (their lists are delayed here,
/// so a plan made too early would see the live fleet and the Service
/// missing), writes no status that is not Healthy, records no
/// `ReplicaSetCreated`, and never touches a revision number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_writes_nothing_before_its_caches_list() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use redblack::api::{REVISION_ANNOTATION, Rollout};
    use redblack::rollout::controller::ROLLOUT_CONTROLLER_NAME;
    use redblack_sandbox::{FaultAction, FaultConfig, FaultRule};

    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let first = env.start_controller();
    env.wait_phase("web", Phase::Healthy).await;
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    let healthy = eventually("revision 2 is live and Healthy", || async {
        let r = env.get("web").await;
        let s = r.status.as_ref()?;
        (s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() == Some(h2.as_str()))
            .then_some(r)
    })
    .await;
    env.wait_event_reasons(&healthy, &["ReplicaSetCreated", "SwitchedTraffic"])
        .await;
    first.stop().await.unwrap();

    let revisions = |sets: &[ReplicaSet]| -> Vec<(String, Option<String>)> {
        let mut v: Vec<_> = sets
            .iter()
            .map(|rs| {
                (
                    rs.name_any(),
                    rs.annotations().get(REVISION_ANNOTATION).cloned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let fleets_before = revisions(&env.owned(&healthy).await);
    assert!(
        fleets_before.iter().any(|(_, r)| r.as_deref() == Some("2")),
        "revision 2 exists: {fleets_before:?}"
    );
    let history_before = healthy.status.clone().unwrap().history;
    let created_before = env.count_events(&healthy, "ReplicaSetCreated").await;

    let rollouts = Recorder::<Rollout>::start(env.rollouts()).await;
    let sets = Recorder::<ReplicaSet>::start(env.replica_sets()).await;
    // The new operator's ReplicaSet and Service lists answer late: a plan
    // made before they did would see neither the fleet nor the Service.
    let slow_list = |resource: &str, millis| FaultRule {
        verb: Some("list".into()),
        resource: Some(resource.into()),
        probability: 1.0,
        action: FaultAction::Latency { millis },
    };
    env.sandbox.set_faults(FaultConfig {
        rules: vec![slow_list("replicasets", 3000), slow_list("services", 1500)],
        watch_cut_after: None,
    });
    let second = env.start_controller();
    eventually("the new operator is ready", || async {
        second.readiness.is_ready().then_some(())
    })
    .await;
    eventually("the new operator reconciled the Rollout", || async {
        (finished_reconciles(&second.metrics, ROLLOUT_CONTROLLER_NAME) >= 1).then_some(())
    })
    .await;
    env.sandbox.set_faults(FaultConfig::default());

    let now = env.get("web").await;
    rollouts.caught_up_with(&now).await;
    let phases: Vec<_> = rollouts
        .seen()
        .iter()
        .filter(|r| r.name_any() == "web")
        .map(|r| r.status.as_ref().and_then(|s| s.phase))
        .collect();
    assert!(
        phases.iter().all(|p| *p == Some(Phase::Healthy)),
        "every status since the restart is Healthy: {phases:?}"
    );
    let status = now.status.clone().unwrap();
    assert_eq!(status.stable_revision.as_deref(), Some(h2.as_str()));
    assert_eq!(status.history, history_before, "no history line added");

    for rs in env.owned(&now).await {
        sets.caught_up_with(&rs).await;
    }
    let numbers: Vec<(String, Option<String>)> = sets
        .seen()
        .iter()
        .map(|rs| {
            (
                rs.name_any(),
                rs.annotations().get(REVISION_ANNOTATION).cloned(),
            )
        })
        .collect();
    for (name, number) in &numbers {
        let before = fleets_before.iter().find(|(n, _)| n == name);
        assert_eq!(
            before.map(|(_, r)| r),
            Some(number),
            "{name} keeps its revision number: {numbers:?}"
        );
    }
    assert_eq!(revisions(&env.owned(&now).await), fleets_before);
    assert_eq!(
        env.count_events(&now, "ReplicaSetCreated").await,
        created_before,
        "no ReplicaSetCreated after the restart: {:?}",
        env.event_reasons(&now).await
    );
    second.stop().await.unwrap();
}

/// An analysis body the API refuses (the CanaryAnalysis CRD's `metrics`
/// has minItems 1): the canary is held without traffic, the Rollout says why
/// (naming the analysis, quoting the API) and one Warning Event is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_the_api_refuses_holds_the_canary_without_traffic_and_says_why() {
    let env = Env::start(FAST).await;
    let name = "refused";
    env.create_service(name, name).await;
    env.create_rollout(set(
        rollout_json(name, "demo:1", 2),
        "/spec/strategy/redBlack/canary",
        json!({"replicas": 1, "analysis": {"inline": {
            "interval": "1m", "lifetime": "10m", "metrics": []
        }}}),
    ))
    .await;
    let _running = env.start_controller();
    let stable = hash_of(&env.wait_phase(name, Phase::Healthy).await);
    let stable_selector: std::collections::BTreeMap<String, String> = [
        ("app".to_owned(), name.to_owned()),
        (POD_TEMPLATE_HASH_LABEL.to_owned(), stable.clone()),
    ]
    .into();
    assert_eq!(env.selector(name).await, stable_selector);
    let service_patches = || env.sandbox.request_counts().get("patch", "services");
    let patches_before = service_patches();
    let updated = env.set_image(name, "demo:2").await;
    let analysis = format!("{name}-{}-1", hash_of(&updated));

    let held = eventually("the Rollout reports AnalysisCreateFailed", || async {
        let r = env.rollouts().get(name).await.ok()?;
        let s = r.status.as_ref()?;
        let c = find(&s.conditions, conditions::PROGRESSING)?;
        (c.reason == "AnalysisCreateFailed" && s.observed_generation == r.metadata.generation)
            .then(|| r.clone())
    })
    .await;
    let status = held.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    for type_ in [
        conditions::PROGRESSING,
        conditions::READY,
        conditions::STALLED,
    ] {
        let c = find(&status.conditions, type_).unwrap();
        assert_eq!(c.reason, "AnalysisCreateFailed", "{type_}");
        assert!(
            c.message.contains(&format!("CanaryAnalysis {analysis}")),
            "{}",
            c.message
        );
        assert!(
            c.message.contains("should have at least 1 items"),
            "the API's message: {}",
            c.message
        );
    }
    let canary = status.canary.clone().unwrap();
    assert_eq!((canary.traffic_percent, canary.analysis_start), (0, None));
    assert_eq!(
        canary.analysis_refused.map(|r| r.analysis_name),
        Some(analysis.clone())
    );
    assert_eq!(
        env.selector(name).await,
        stable_selector,
        "the Service never selects the canary"
    );
    assert_eq!(
        service_patches(),
        patches_before,
        "the active Service was never widened"
    );
    let warnings = eventually("the Warning Event is recorded", || async {
        let reasons = env.event_reasons(&held).await;
        let n = reasons
            .iter()
            .filter(|r| *r == "AnalysisCreateFailed")
            .count();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(warnings, 1, "exactly one Warning Event");
}

/// Every write the API refuses for good reaches the user: the Rollout goes
/// Degraded with Stalled/Ready/Progressing naming the write and quoting the
/// API, one Warning Event per refusal (none per retry, which backs off), the
/// Service stays on the live fleet, and the rollout continues once the cause
/// is gone. Here an admission policy first refuses the new ReplicaSet, then
/// the Service switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_become_conditions_and_one_event_each_then_the_rollout_continues() {
    use redblack_sandbox::{FaultAction, FaultConfig, FaultRule};
    let refuse = |resource: &str, code| FaultConfig {
        rules: vec![FaultRule {
            verb: Some("patch".into()),
            resource: Some(resource.into()),
            probability: 1.0,
            action: FaultAction::Error { code },
        }],
        watch_cut_after: None,
    };
    let env = Env::start(FAST).await;
    let name = "policed";
    env.create_service(name, name).await;
    env.create_rollout(rollout_json(name, "demo:1", 2)).await;
    let running = env.start_controller();
    let v1 = hash_of(&env.wait_phase(name, Phase::Healthy).await);

    // 1. The new fleet's apply is refused.
    env.sandbox.set_faults(refuse("replicasets", 403));
    let updated = env.set_image(name, "demo:2").await;
    let v2 = hash_of(&updated);
    let stalled_on = |needle: String| {
        let env = &env;
        async move {
            eventually(&format!("Stalled names {needle}"), || async {
                let r = env.rollouts().get(name).await.ok()?;
                let s = r.status.as_ref()?;
                let c = find(&s.conditions, conditions::STALLED)?;
                (c.reason == "WriteRefused"
                    && c.message.contains(&needle)
                    && s.observed_generation == r.metadata.generation)
                    .then(|| r.clone())
            })
            .await
        }
    };
    let held = stalled_on(format!("applying ReplicaSet {name}-{v2}")).await;
    let status = held.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    for type_ in [conditions::READY, conditions::PROGRESSING] {
        let c = find(&status.conditions, type_).unwrap();
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "WriteRefused")
        );
    }
    let stalled = find(&status.conditions, conditions::STALLED).unwrap();
    assert!(
        stalled.message.contains("403 Forbidden"),
        "{}",
        stalled.message
    );
    assert!(
        stalled.message.contains("injected fault: forbidden"),
        "{}",
        stalled.message
    );
    assert_eq!(env.selected(name).await, Some(v1.clone()));
    env.wait_event_reasons(&held, &["WriteRefused"]).await;
    // Retries go on (with backoff) and say nothing new.
    let done = finished_reconciles(&running.metrics, "rollout");
    eventually("two more reconciles are refused", || async {
        (finished_reconciles(&running.metrics, "rollout") >= done + 2).then_some(())
    })
    .await;
    assert_eq!(env.count_events(&held, "WriteRefused").await, 1);
    assert!(env.rs_for(name, &v2).await.is_none());

    // 2. The fleet comes up, but the switch is refused: another refusal,
    //    another Event; traffic stays on v1.
    env.sandbox.set_faults(refuse("services", 422));
    let held = stalled_on(format!("switching Service {name}")).await;
    let stalled = find(
        &held.status.as_ref().unwrap().conditions,
        conditions::STALLED,
    )
    .unwrap()
    .clone();
    assert!(
        stalled.message.contains("422 Invalid"),
        "{}",
        stalled.message
    );
    assert!(env.rs_for(name, &v2).await.is_some());
    assert_eq!(env.selected(name).await, Some(v1.clone()));
    eventually("the second refusal's Event is recorded", || async {
        (env.count_events(&held, "WriteRefused").await == 2).then_some(())
    })
    .await;

    // 3. The cause is gone: the rollout continues, and the conditions clear.
    env.sandbox.set_faults(FaultConfig::default());
    env.wait_selected(name, &v2).await;
    let healthy = env.wait_phase(name, Phase::Healthy).await;
    let conditions = &healthy.status.as_ref().unwrap().conditions;
    assert!(
        conditions.iter().all(|c| c.reason != "WriteRefused"),
        "{conditions:?}"
    );
    assert_eq!(env.count_events(&healthy, "WriteRefused").await, 2);
}

/// A valid Rollout name of 250 characters (with a dot) goes through a whole
/// update, and its Events are recorded: kube's Recorder named them
/// `<name>.<16 hex>`, over 253 characters, and the API refused every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_250_character_rollout_rolls_out_and_its_events_are_recorded() {
    let env = Env::start(FAST).await;
    let name = format!("{}.v2", "w".repeat(247));
    assert_eq!(name.len(), 250);
    env.create_service("longname", "longname").await;
    let manifest = set(
        set(
            set(
                rollout_json(&name, "demo:1", 1),
                "/spec/selector/matchLabels/app",
                json!("longname"),
            ),
            "/spec/template/metadata/labels/app",
            json!("longname"),
        ),
        "/spec/strategy/redBlack/activeService",
        json!("longname"),
    );
    env.create_rollout(manifest).await;
    let _running = env.start_controller();
    env.wait_phase(&name, Phase::Healthy).await;
    let updated = env.set_image(&name, "demo:2").await;
    env.wait_selected("longname", &hash_of(&updated)).await;
    let healthy = env.wait_phase(&name, Phase::Healthy).await;
    let reasons = env
        .wait_event_reasons(&healthy, &["ReplicaSetCreated", "Healthy"])
        .await;
    assert!(
        reasons.iter().filter(|r| *r == "ReplicaSetCreated").count() >= 2,
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_promotion_seconds_promotes_a_waiting_revision_without_a_person() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let manifest = set(
        set(
            rollout_json("web", "demo:1", 2),
            "/spec/strategy/redBlack/promotion",
            json!("Manual"),
        ),
        "/spec/strategy/redBlack/autoPromotionSeconds",
        json!(2),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    env.wait_phase("web", Phase::Healthy).await;

    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    let waiting = eventually("v2 waits, with the start of its wait", || async {
        let r = env.get("web").await;
        let s = r.status.clone()?;
        (s.phase == Some(Phase::Paused) && s.current_revision.as_deref() == Some(h2.as_str()))
            .then_some(s.awaiting_promotion_since?)
    })
    .await;
    let paused = find(
        &env.get("web").await.status.unwrap().conditions,
        conditions::PAUSED,
    )
    .unwrap()
    .clone();
    assert_eq!(paused.reason, "AwaitingPromotion");
    // No promote from anyone: the operator's timer switches, not before
    // the wait's start + 2 s (checked on the Promoted record below).
    env.wait_selected("web", &h2).await;
    let done = env.wait_phase("web", Phase::Healthy).await;
    let status = done.status.clone().unwrap();
    let promoted = status
        .history
        .iter()
        .rev()
        .find(|h| h.hash == h2 && h.outcome == Outcome::Promoted)
        .expect("a Promoted record");
    assert!(
        promoted.time >= waiting + chrono::Duration::seconds(2),
        "promoted at {} but waiting since {waiting}",
        promoted.time
    );
    assert_eq!(status.awaiting_promotion_since, None);
    env.wait_event_reasons(&done, &["AutoPromoted"]).await;
    running.stop().await.unwrap();
}

/// The live fleet's pods (not terminating) and how many are ready.
async fn live_pods(env: &Env, hash: &str) -> (Vec<String>, usize) {
    use k8s_openapi::api::core::v1::Pod;
    let pods: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), NS);
    let list = pods
        .list(
            &kube::api::ListParams::default().labels(&format!("{POD_TEMPLATE_HASH_LABEL}={hash}")),
        )
        .await
        .unwrap();
    let up: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let ready = up
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    (up.iter().map(|p| p.name_any()).collect(), ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_through_the_cli_recreates_the_live_pods_one_at_a_time() {
    use redblack::cli::rollouts::restart;
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 3)).await;
    let running = env.start_controller();
    let before = env.wait_phase("web", Phase::Healthy).await;
    let hash = hash_of(&before);
    let (old, _) = eventually("3 ready pods", || async {
        let (names, ready) = live_pods(&env, &hash).await;
        (ready == 3 && names.len() == 3).then_some((names, ready))
    })
    .await;
    // The restart is only asked for once the second of the newest pod's
    // creation has passed: pods created in restartAt's second count as new.
    eventually("a second after the pods' creation", || async {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(env.client.clone(), NS);
        let list = pods.list(&Default::default()).await.ok()?;
        let newest = list
            .items
            .iter()
            .filter_map(|p| p.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
            .max()?;
        (chrono::Utc::now().timestamp() > newest).then_some(())
    })
    .await;

    restart(&env.client, NS, "web").await.expect("restart");
    // Sample the fleet until the restart is recorded: never fewer than 2 of 3
    // ready pods in any sample.
    let min_ready = std::cell::Cell::new(3);
    let done = eventually("status.restartedAt = spec.restartAt", || async {
        let (_, ready) = live_pods(&env, &hash).await;
        min_ready.set(min_ready.get().min(ready));
        let r = env.get("web").await;
        let s = r.status.clone()?;
        (s.restarted_at.is_some() && s.restarted_at == r.spec.restart_at).then_some(r)
    })
    .await;
    assert!(
        min_ready.get() >= 2,
        "a sample saw {} ready",
        min_ready.get()
    );
    let (now, ready) = live_pods(&env, &hash).await;
    assert_eq!(ready, 3);
    assert!(
        now.iter().all(|n| !old.contains(n)),
        "every old pod was replaced: old {old:?}, now {now:?}"
    );
    // No new revision, no switch.
    assert_eq!(hash_of(&done), hash);
    assert_eq!(env.selected("web").await.as_deref(), Some(hash.as_str()));
    assert_eq!(env.owned(&done).await.len(), 1, "one ReplicaSet");
    let reasons = env
        .wait_event_reasons(&done, &["RestartingPod", "Restarted"])
        .await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "RestartingPod").count(),
        3,
        "one pod at a time, three in all: {reasons:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_replica_count_waits_small_and_scales_up_on_the_cli_promote() {
    use redblack::cli::rollouts::promote;
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let manifest = set(
        set(
            rollout_json("web", "demo:1", 3),
            "/spec/strategy/redBlack/promotion",
            json!("Manual"),
        ),
        "/spec/strategy/redBlack/previewReplicaCount",
        json!(1),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    assert_eq!(
        env.rs_for("web", &h1).await.unwrap().spec.replicas,
        Some(3),
        "a first deploy is full size"
    );

    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    env.wait_phase("web", Phase::Paused).await;
    assert_eq!(env.rs_for("web", &h2).await.unwrap().spec.replicas, Some(1));
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));

    promote(&env.client, NS, "web").await.expect("promote");
    env.wait_selected("web", &h2).await;
    let rs2 = env.rs_for("web", &h2).await.unwrap();
    assert_eq!(rs2.spec.replicas, Some(3));
    assert_eq!(
        rs2.status.unwrap().ready_replicas,
        Some(3),
        "the promoted fleet is full (the switch waits for it: planner rows)"
    );
    running.stop().await.unwrap();
}
