//! Table-driven planner tests: one row per state of the red/black flow.

mod common;

use common::{Sim, condition, switches_to};
use redblack::api::{
    ABORT_ANNOTATION, ConditionStatus, Outcome, PROMOTE_ANNOTATION, Phase, PromotionPolicy,
    RETRY_ANNOTATION, REVISION_ANNOTATION, SCALE_DOWN_AT_ANNOTATION,
};
use redblack::rollout::{Action, EventType, Plan, State};

struct Case {
    name: &'static str,
    /// Builds the world; returns it ready for the plan under test.
    given: fn() -> Sim,
    then: fn(&Sim, &Plan),
}

fn ensures(plan: &Plan) -> Vec<&Action> {
    plan.actions
        .iter()
        .filter(|a| matches!(a, Action::EnsureReplicaSet { .. }))
        .collect()
}

fn scaled(plan: &Plan, sim: &Sim, hash: &str) -> Option<i32> {
    let name = sim.rs(hash).and_then(|rs| rs.metadata.name.clone())?;
    plan.actions.iter().find_map(|a| match a {
        Action::ScaleReplicaSet { name: n, replicas } if *n == name => Some(*replicas),
        _ => None,
    })
}

fn phase(plan: &Plan) -> Phase {
    plan.status.phase.unwrap()
}

/// v1 live and stable, spec changed to v2, v2's fleet created (not ready yet).
fn v2_created() -> Sim {
    let mut sim = Sim::steady("web:1", 3);
    sim.set_image("web:2");
    sim.step();
    sim
}

/// v1 live, manual promotion with `autoPromotionSeconds: secs`, v2's fleet
/// available (the next plan finds it waiting).
fn manual_auto(secs: i32) -> Sim {
    let mut sim = Sim::steady("web:1", 3);
    sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
    sim.rollout.spec.strategy.red_black.auto_promotion_seconds = Some(secs);
    sim.set_image("web:2");
    sim.step();
    sim.make_ready();
    sim
}

/// v1 live with 3 replicas, `spec.restartAt = now + at_offset` seconds, and
/// the live fleet's pods `pod-i` created `offset` seconds from now, ready or not.
fn restarting(at_offset: i64, pods: &[(i64, bool)]) -> Sim {
    use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    let mut sim = Sim::steady("web:1", 3);
    let hash = sim.active_hash().unwrap();
    let now = sim.now;
    sim.rollout.spec.restart_at = Some(now + chrono::Duration::seconds(at_offset));
    let ts = |t: chrono::DateTime<chrono::Utc>| {
        Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap())
    };
    sim.observed.pods = pods
        .iter()
        .enumerate()
        .map(|(i, (offset, ready))| Pod {
            metadata: ObjectMeta {
                name: Some(format!("pod-{i}")),
                labels: Some(
                    [(
                        redblack::api::POD_TEMPLATE_HASH_LABEL.to_owned(),
                        hash.clone(),
                    )]
                    .into(),
                ),
                creation_timestamp: Some(ts(now + chrono::Duration::seconds(*offset))),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".to_owned(),
                    status: if *ready { "True" } else { "False" }.to_owned(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
        .collect();
    sim
}

fn deleted_pods(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeletePod { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// v1 live, v2 promoted just now; v1 warm.
fn v2_promoted() -> (Sim, String) {
    let mut sim = v2_created();
    sim.make_ready();
    let v1 = sim.active_hash().unwrap();
    sim.step();
    assert_eq!(sim.active_hash(), Some(sim.hash()));
    (sim, v1)
}

/// A steady world whose spec `break_it` makes invalid.
fn invalid(break_it: fn(&mut Sim)) -> Sim {
    let mut sim = Sim::steady("web:1", 3);
    break_it(&mut sim);
    sim.bump_generation();
    sim
}

/// The plan only reports the invalid spec, in a message that contains `text`
/// (the field and what is wrong with it).
fn invalid_names(plan: &Plan, text: &str) {
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(phase(plan), Phase::InvalidSpec);
    let c = condition(plan, "InvalidSpec").unwrap();
    assert_eq!(c.status, ConditionStatus::True);
    assert!(
        c.message.contains(text),
        "{:?} does not contain {text:?}",
        c.message
    );
}

/// 250 characters, with dots: a valid Rollout name.
fn long_rollout_name() -> String {
    let name = format!("{}.{}.{}", "a".repeat(100), "b".repeat(100), "c".repeat(48));
    assert_eq!(name.len(), 250);
    name
}

/// Asserts that every name and label value `action` writes is one the API
/// server accepts; returns the kind of object it writes.
fn check_names(action: &Action) -> &'static str {
    use redblack::api::k8s_names::{
        REPLICA_SET_NAME_MAX, is_dns1035_label, is_dns1123_subdomain, is_label_value,
    };
    let values = |labels: &std::collections::BTreeMap<String, String>| {
        for (k, v) in labels {
            assert!(is_label_value(v), "label {k}={v:?} of {action:?}");
        }
    };
    match action {
        Action::EnsureReplicaSet {
            name,
            labels,
            template,
            selector,
            ..
        } => {
            assert!(
                name.len() <= REPLICA_SET_NAME_MAX && is_dns1123_subdomain(name),
                "{name}"
            );
            values(labels);
            values(template.metadata.as_ref().unwrap().labels.as_ref().unwrap());
            values(selector.match_labels.as_ref().unwrap());
            if name.ends_with("-canary") {
                "canary"
            } else if name.ends_with("-baseline") {
                "baseline"
            } else {
                "replicaSet"
            }
        }
        Action::EnsureRoleService { name, selector, .. } => {
            assert!(is_dns1035_label(name), "{name}");
            values(selector);
            "roleService"
        }
        Action::EnsureCanaryAnalysis { name, labels, .. } => {
            assert!(is_dns1123_subdomain(name), "{name}");
            values(labels);
            if name.contains("-post-") {
                "postPromotion"
            } else {
                "analysis"
            }
        }
        Action::SetRouteWeights { backends, .. } => {
            for b in backends {
                assert!(is_dns1035_label(&b.service), "{}", b.service);
            }
            "route"
        }
        Action::SwitchService { selector, .. } => {
            values(selector);
            "switch"
        }
        // A Job's name is also its pods' `job-name` label value.
        Action::EnsureJob { name, job } => {
            assert!(is_dns1123_subdomain(name) && name.len() <= 63, "{name}");
            values(job.metadata.labels.as_ref().unwrap());
            "job"
        }
        Action::ScaleReplicaSet { .. }
        | Action::AnnotateReplicaSet { .. }
        | Action::DeleteReplicaSet { .. }
        | Action::DeletePod { .. }
        | Action::DeleteCanaryAnalysis { .. }
        | Action::ScaleDeployment { .. }
        | Action::SetPodMetadata { .. } => "other",
    }
}

fn v1_hash() -> String {
    Sim::new("web:1", 3).hash()
}

const CASES: &[Case] = &[
    Case {
        name: "first deploy: create the fleet at full size, do not switch yet",
        given: || Sim::new("web:1", 3),
        then: |sim, plan| {
            let ensure = ensures(plan);
            assert_eq!(ensure.len(), 1);
            let Action::EnsureReplicaSet {
                name,
                replicas,
                revision,
                template,
                ..
            } = ensure[0]
            else {
                unreachable!()
            };
            assert_eq!(name, &format!("web-{}", sim.hash()));
            assert_eq!((*replicas, *revision), (3, 1));
            let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            assert_eq!(
                labels.get(redblack::api::POD_TEMPLATE_HASH_LABEL),
                Some(&sim.hash())
            );
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(phase(plan), Phase::Progressing);
            assert!(plan.events.iter().any(|e| e.reason == "ReplicaSetCreated"));
        },
    },
    Case {
        name: "first deploy waiting: not ready, nothing to do, deadline timer set",
        given: || {
            let mut sim = Sim::new("web:1", 3);
            sim.step();
            sim.advance(10);
            sim
        },
        then: |_, plan| {
            assert!(plan.actions.is_empty());
            assert_eq!(phase(plan), Phase::Progressing);
            assert_eq!(
                plan.requeue_after,
                Some(std::time::Duration::from_secs(590))
            );
            assert_eq!(
                condition(plan, "Reconciling").unwrap().status,
                ConditionStatus::True
            );
        },
    },
    Case {
        name: "first deploy ready: point the active Service",
        given: || {
            let mut sim = Sim::new("web:1", 3);
            sim.step();
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
            assert_eq!(phase(plan), Phase::Healthy);
            assert_eq!(
                condition(plan, "Ready").unwrap().status,
                ConditionStatus::True
            );
            assert_eq!(plan.status.stable_revision, Some(sim.hash()));
            assert_eq!(
                plan.status.history.last().unwrap().outcome,
                Outcome::Promoted
            );
        },
    },
    Case {
        name: "steady: re-planning is a no-op",
        given: || Sim::steady("web:1", 3),
        then: |sim, plan| {
            assert!(plan.is_noop(sim.rollout.status.as_ref()), "{plan:#?}");
            assert_eq!(
                plan.status.selector.as_deref(),
                Some(
                    format!(
                        "app=web,rollouts.redblack.io/pod-template-hash={}",
                        sim.hash()
                    )
                    .as_str()
                )
            );
        },
    },
    Case {
        name: "update: new fleet created beside the old, traffic untouched",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.set_image("web:2");
            sim
        },
        then: |sim, plan| {
            let ensure = ensures(plan);
            assert_eq!(ensure.len(), 1);
            assert!(matches!(
                ensure[0],
                Action::EnsureReplicaSet {
                    revision: 2,
                    replicas: 3,
                    ..
                }
            ));
            assert!(!plan.actions.iter().any(Action::touches_traffic));
            assert_eq!(plan.status.stable_revision, Some(v1_hash()));
            assert_eq!(plan.status.current_revision, Some(sim.hash()));
        },
    },
    Case {
        name: "update waiting: partially ready new fleet is not selected",
        given: || {
            let mut sim = v2_created();
            sim.make_ready();
            let h = sim.hash();
            let rs = sim
                .observed
                .replica_sets
                .iter_mut()
                .find(|r| common::rs_hash(r) == h)
                .unwrap();
            rs.status.as_mut().unwrap().ready_replicas = Some(2);
            sim
        },
        then: |_, plan| {
            assert!(plan.actions.is_empty(), "{:?}", plan.actions);
            assert_eq!(phase(plan), Phase::Progressing);
        },
    },
    Case {
        name: "update ready, automatic: old fleet gets its warm deadline, then ONE switch",
        given: || {
            let mut sim = v2_created();
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            let pos_annotate = plan.actions.iter().position(|a| matches!(a, Action::AnnotateReplicaSet { set, .. } if set.contains_key(SCALE_DOWN_AT_ANNOTATION)));
            let pos_switch = plan.actions.iter().position(Action::touches_traffic);
            assert!(pos_annotate.unwrap() < pos_switch.unwrap());
            assert_eq!(
                plan.actions.iter().filter(|a| a.touches_traffic()).count(),
                1
            );
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
            assert_eq!(
                scaled(plan, sim, &v1_hash()),
                None,
                "old fleet stays at full size"
            );
            assert_eq!(phase(plan), Phase::Healthy);
        },
    },
    Case {
        name: "manual promotion: available fleet waits, phase Paused, Paused=True AwaitingPromotion",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(phase(plan), Phase::Paused);
            assert_eq!(
                condition(plan, "Ready").unwrap().reason,
                "AwaitingPromotion"
            );
            let paused = condition(plan, "Paused").unwrap();
            assert_eq!(
                (paused.status, paused.reason.as_str()),
                (ConditionStatus::True, "AwaitingPromotion")
            );
        },
    },
    Case {
        name: "autoPromotionSeconds: the waiting fleet records since when and wakes at the deadline",
        given: || {
            let mut sim = manual_auto(60);
            sim.step();
            sim.advance(20);
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(phase(plan), Phase::Paused);
            let since = sim
                .rollout
                .status
                .as_ref()
                .unwrap()
                .awaiting_promotion_since;
            assert!(since.is_some(), "the first wait recorded its start");
            assert_eq!(plan.status.awaiting_promotion_since, since, "kept");
            assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(40)));
            let paused = condition(plan, "Paused").unwrap();
            assert_eq!(paused.reason, "AwaitingPromotion");
            assert!(
                paused.message.contains("promoted automatically at"),
                "{}",
                paused.message
            );
        },
    },
    Case {
        name: "autoPromotionSeconds: one second early still waits",
        given: || {
            let mut sim = manual_auto(60);
            sim.step();
            sim.advance(59);
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(1)));
        },
    },
    Case {
        name: "autoPromotionSeconds: at the deadline the revision is promoted, with an AutoPromoted Event",
        given: || {
            let mut sim = manual_auto(60);
            sim.step();
            sim.advance(60);
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
            assert!(plan.events.iter().any(|e| e.reason == "AutoPromoted"));
            assert_eq!(plan.status.awaiting_promotion_since, None);
        },
    },
    Case {
        name: "autoPromotionSeconds: the clock starts when the fleet becomes available, not at the new template",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.rollout.spec.strategy.red_black.auto_promotion_seconds = Some(60);
            sim.set_image("web:2");
            sim.step();
            sim.advance(300);
            sim.step();
            sim.make_ready();
            sim.advance(30);
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), None, "waited 30s of 60");
            assert!(plan.status.awaiting_promotion_since.is_some());
        },
    },
    Case {
        name: "autoPromotionSeconds: a new template restarts the clock",
        given: || {
            let mut sim = manual_auto(60);
            sim.step();
            sim.advance(50);
            sim.set_image("web:3");
            sim.step();
            sim.make_ready();
            sim.advance(30);
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), None, "web:3 waited 30s of 60");
        },
    },
    Case {
        name: "autoPromotionSeconds: a closed promotion window still holds the auto-promoted revision, approved",
        given: || {
            let mut sim = manual_auto(60);
            sim.rollout.spec.strategy.red_black.promotion_windows =
                serde_json::from_value(serde_json::json!([
                    {"days": ["Sat"], "start": "00:00", "end": "00:01", "timeZone": "UTC"}
                ]))
                .unwrap();
            sim.step();
            sim.advance(60);
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(plan.status.approved_revision, Some(sim.hash()));
            assert_eq!(
                condition(plan, "Paused").unwrap().reason,
                "PromotionWindowClosed"
            );
        },
    },
    Case {
        name: "restart: restartAt in the future deletes nothing and wakes at it",
        given: || restarting(30, &[(-100, true), (-90, true), (-80, true)]),
        then: |_, plan| {
            assert!(deleted_pods(plan).is_empty());
            assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(30)));
        },
    },
    Case {
        name: "restart: all ready, all older — the oldest pod alone is deleted",
        given: || restarting(0, &[(-90, true), (-100, true), (-80, true)]),
        then: |sim, plan| {
            assert_eq!(deleted_pods(plan), vec!["pod-1".to_owned()]);
            assert!(plan.events.iter().any(|e| e.reason == "RestartingPod"));
            assert_eq!(switches_to(plan, "web"), None, "no traffic switch");
            assert!(
                ensures(plan).iter().all(
                    |a| matches!(a, Action::EnsureReplicaSet { hash, .. } if *hash == sim.hash())
                ),
                "no new revision"
            );
            assert_eq!(plan.status.restarted_at, None, "not done");
        },
    },
    Case {
        name: "restart: a pod still terminating holds the next delete",
        given: || {
            let mut sim = restarting(0, &[(-100, true), (-90, true), (-80, true)]);
            sim.observed.pods[0].metadata.deletion_timestamp =
                sim.observed.pods[0].metadata.creation_timestamp.clone();
            sim
        },
        then: |_, plan| assert!(deleted_pods(plan).is_empty()),
    },
    Case {
        name: "restart: 2 of 3 ready (the replacement not ready yet) holds the next delete",
        given: || restarting(0, &[(-100, true), (-90, true), (5, false)]),
        then: |_, plan| assert!(deleted_pods(plan).is_empty()),
    },
    Case {
        name: "restart: every pod newer and all ready — done, recorded in restartedAt",
        given: || restarting(0, &[(1, true), (2, true), (3, true)]),
        then: |sim, plan| {
            assert!(deleted_pods(plan).is_empty());
            assert_eq!(plan.status.restarted_at, sim.rollout.spec.restart_at);
            assert!(plan.events.iter().any(|e| e.reason == "Restarted"));
        },
    },
    Case {
        name: "restart: a restartAt already done deletes nothing, even older pods",
        given: || {
            let mut sim = restarting(0, &[(-100, true), (-90, true), (-80, true)]);
            let at = sim.rollout.spec.restart_at;
            sim.rollout.status.as_mut().unwrap().restarted_at = at;
            sim
        },
        then: |_, plan| assert!(deleted_pods(plan).is_empty()),
    },
    Case {
        name: "restart: waits while a new revision rolls out (not steady)",
        given: || {
            let mut sim = restarting(0, &[(-100, true), (-90, true), (-80, true)]);
            sim.set_image("web:2");
            sim
        },
        then: |_, plan| assert!(deleted_pods(plan).is_empty()),
    },
    Case {
        name: "previewReplicaCount: the new fleet is created at the preview size and waits for its promote",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.rollout.spec.strategy.red_black.preview_replica_count = Some(1);
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            assert_eq!(sim.size(&sim.hash()), Some(1), "created at 1");
            assert_eq!(scaled(plan, sim, &sim.hash()), None);
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(
                condition(plan, "Paused").unwrap().reason,
                "AwaitingPromotion"
            );
        },
    },
    Case {
        name: "previewReplicaCount: a promote scales the fleet to replicas first, no switch yet",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.rollout.spec.strategy.red_black.preview_replica_count = Some(1);
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim.step();
            let h = sim.hash();
            sim.annotate(PROMOTE_ANNOTATION, &h);
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &sim.hash()), Some(3));
            assert_eq!(switches_to(plan, "web"), None, "1 of 3 available");
            assert_eq!(phase(plan), Phase::Progressing);
        },
    },
    Case {
        name: "previewReplicaCount: once full and available after the promote, one switch",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.rollout.spec.strategy.red_black.preview_replica_count = Some(1);
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim.step();
            let h = sim.hash();
            sim.annotate(PROMOTE_ANNOTATION, &h);
            sim.step();
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
        },
    },
    Case {
        name: "previewReplicaCount + autoPromotionSeconds: at the deadline the fleet is scaled up, then switched",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.rollout.spec.strategy.red_black.preview_replica_count = Some(1);
            sim.rollout.spec.strategy.red_black.auto_promotion_seconds = Some(60);
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim.step();
            sim.advance(60);
            let plan = sim.step();
            assert_eq!(switches_to(&plan, "web"), None, "not at 1 of 3");
            assert_eq!(sim.size(&sim.hash()), Some(3), "scaled up at the deadline");
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
        },
    },
    Case {
        name: "manual promotion: promote annotation switches, once",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim.step();
            let h = sim.hash();
            sim.annotate(PROMOTE_ANNOTATION, &h);
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
            assert_eq!(plan.status.operations.promote, Some(sim.hash()));
            assert!(plan.events.iter().any(|e| e.reason == "PromoteAccepted"));
        },
    },
    Case {
        name: "scaleDownDelay not elapsed: old fleet stays warm, timer set",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.advance(29 * 60);
            sim
        },
        then: |_, plan| {
            assert!(plan.actions.is_empty(), "{:?}", plan.actions);
            assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(60)));
        },
    },
    Case {
        name: "scaleDownDelay elapsed: old fleet scaled to zero",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.advance(30 * 60);
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &v1_hash()), Some(0));
            assert!(!plan.actions.iter().any(Action::touches_traffic));
        },
    },
    Case {
        name: "pruning: idle fleets beyond revisionHistoryLimit deleted, oldest first",
        given: || {
            let mut sim = Sim::steady("web:1", 2);
            sim.rollout.spec.revision_history_limit = 1;
            for image in ["web:2", "web:3", "web:4"] {
                sim.set_image(image);
                sim.settle();
            }
            // settle pruned already; add the check that exactly limit idle remain.
            sim
        },
        then: |sim, plan| {
            assert!(plan.actions.is_empty());
            assert_eq!(sim.observed.replica_sets.len(), 2, "current + 1 idle");
            let revisions: Vec<_> = sim
                .observed
                .replica_sets
                .iter()
                .map(|r| r.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION].clone())
                .collect();
            assert!(revisions.contains(&"4".to_owned()) && revisions.contains(&"3".to_owned()));
        },
    },
    Case {
        name: "pruning: a single plan deletes the oldest idle fleet",
        given: || {
            let mut sim = Sim::steady("web:1", 2);
            for image in ["web:2", "web:3"] {
                sim.set_image(image);
                sim.settle();
            }
            sim.rollout.spec.revision_history_limit = 1;
            sim
        },
        then: |sim, plan| {
            let deleted: Vec<_> = plan
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::DeleteReplicaSet { name } => Some(name.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(deleted, vec![format!("web-{}", v1_hash())]);
            assert!(!deleted.contains(&format!("web-{}", sim.hash())));
        },
    },
    Case {
        name: "deadline miss with progressDeadlineAbort: traffic stays, Degraded, Progressing=False names the revision",
        given: || {
            let mut sim = v2_created();
            sim.rollout.spec.progress_deadline_abort = true;
            sim.advance(600);
            sim
        },
        then: |sim, plan| {
            assert!(!plan.actions.iter().any(Action::touches_traffic));
            assert_eq!(phase(plan), Phase::Degraded);
            let progressing = condition(plan, "Progressing").unwrap();
            assert_eq!(
                (progressing.status, progressing.reason.as_str()),
                (ConditionStatus::False, "ProgressDeadlineExceeded")
            );
            assert!(progressing.message.contains(&sim.hash()));
            assert_eq!(
                condition(plan, "Stalled").unwrap().status,
                ConditionStatus::True
            );
            assert!(
                plan.events.iter().any(
                    |e| e.type_ == EventType::Warning && e.reason == "ProgressDeadlineExceeded"
                )
            );
            assert_eq!(plan.status.history.last().unwrap().outcome, Outcome::Failed);
            // The failed fleet gets its abortScaleDownDelay deadline (10m).
            assert_eq!(
                plan.requeue_after,
                Some(std::time::Duration::from_secs(600))
            );
        },
    },
    Case {
        name: "deadline miss with progressDeadlineAbort: failed fleet scaled down after abortScaleDownDelay",
        given: || {
            let mut sim = v2_created();
            sim.rollout.spec.progress_deadline_abort = true;
            sim.advance(600);
            sim.step();
            sim.advance(600);
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &sim.hash()), Some(0));
            assert_eq!(sim.active_hash(), Some(v1_hash()));
            assert_eq!(phase(plan), Phase::Degraded);
        },
    },
    Case {
        name: "abort: traffic stays on stable, phase Aborted, new fleet annotated for scale-down",
        given: || {
            let mut sim = v2_created();
            sim.make_ready();
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            let h = sim.hash();
            sim.annotate(ABORT_ANNOTATION, &h);
            sim
        },
        then: |sim, plan| {
            assert!(!plan.actions.iter().any(Action::touches_traffic));
            assert_eq!(phase(plan), Phase::Aborted);
            assert!(plan.actions.iter().any(|a| matches!(a, Action::AnnotateReplicaSet { name, set, .. } if *name == format!("web-{}", sim.hash()) && set.contains_key(SCALE_DOWN_AT_ANNOTATION))));
            assert_eq!(
                plan.status.history.last().unwrap().outcome,
                Outcome::Aborted
            );
            // One Event for one abort: the phase is not announced again
            // under the same reason.
            let aborted = plan.events.iter().filter(|e| e.reason == "Aborted").count();
            assert_eq!(aborted, 1, "{:?}", plan.events);
        },
    },
    Case {
        name: "retry: aborted revision progresses again, fleet back up, deadline cleared",
        given: || {
            let mut sim = v2_created();
            sim.rollout.spec.progress_deadline_abort = true;
            sim.advance(600);
            sim.step();
            sim.advance(600);
            sim.step(); // failed fleet scaled to 0
            let h = sim.hash();
            sim.annotate(RETRY_ANNOTATION, &h);
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &sim.hash()), Some(3));
            assert!(plan.actions.iter().any(|a| matches!(a, Action::AnnotateReplicaSet { remove, .. } if remove.iter().any(|k| k == SCALE_DOWN_AT_ANNOTATION))));
            assert_eq!(phase(plan), Phase::Progressing);
            assert_eq!(plan.status.abort, None);
            assert_eq!(plan.status.progress_started_at, Some(sim.now));
        },
    },
    Case {
        name: "pause: a new template is not rolled out",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.paused = true;
            sim.set_image("web:2");
            sim
        },
        then: |_, plan| {
            assert!(plan.actions.is_empty());
            assert_eq!(phase(plan), Phase::Paused);
            assert_eq!(
                condition(plan, "Paused").unwrap().status,
                ConditionStatus::True
            );
            assert_eq!(plan.status.progress_started_at, None);
        },
    },
    Case {
        name: "resume: the new fleet is created and the deadline starts now",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.paused = true;
            sim.set_image("web:2");
            sim.step();
            sim.advance(3600);
            sim.rollout.spec.paused = false;
            sim
        },
        then: |sim, plan| {
            assert_eq!(ensures(plan).len(), 1);
            assert_eq!(plan.status.progress_started_at, Some(sim.now));
        },
    },
    Case {
        name: "undo inside the warm window: switch back at once, no waiting",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.advance(60);
            sim.set_image("web:1");
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(v1_hash()));
            assert!(ensures(plan).is_empty());
            assert!(plan.actions.iter().any(|a| matches!(a, Action::AnnotateReplicaSet { name, set, .. } if *name == format!("web-{}", sim.hash()) && set.get(REVISION_ANNOTATION) == Some(&"3".to_owned()))));
            assert_eq!(
                plan.status.history.last().unwrap().outcome,
                Outcome::RolledBack
            );
        },
    },
    Case {
        name: "undo under Manual promotion: a previously live revision needs no promote",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
            sim.set_image("web:1");
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), Some(v1_hash()));
            assert_eq!(
                plan.state,
                redblack::rollout::State::Switch {
                    kind: redblack::rollout::SwitchKind::Rollback
                }
            );
        },
    },
    Case {
        name: "undo after the window: scale the old fleet up, do not switch yet",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.advance(31 * 60);
            sim.step();
            sim.set_image("web:1");
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &v1_hash()), Some(3));
            assert_eq!(switches_to(plan, "web"), None);
            assert!(ensures(plan).is_empty());
        },
    },
    Case {
        name: "undo after the window: once ready, switch",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.advance(31 * 60);
            sim.step();
            sim.set_image("web:1");
            sim.step();
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), Some(v1_hash()));
        },
    },
    Case {
        name: "scale: the stable fleet follows spec.replicas at once",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.replicas = 5;
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &sim.hash()), Some(5));
            assert!(!plan.actions.iter().any(Action::touches_traffic));
        },
    },
    Case {
        name: "scale during an update: stable and new fleet both follow",
        given: || {
            let mut sim = v2_created();
            sim.rollout.spec.replicas = 5;
            sim
        },
        then: |sim, plan| {
            assert_eq!(scaled(plan, sim, &sim.hash()), Some(5));
            assert_eq!(scaled(plan, sim, &v1_hash()), Some(5));
        },
    },
    Case {
        name: "invalid spec: no actions at all, InvalidSpec names the field and fix",
        given: || {
            let mut sim = v2_created();
            sim.make_ready();
            sim.rollout.spec.strategy.red_black.preview_service = Some("web".to_owned());
            sim
        },
        then: |_, plan| {
            assert!(plan.actions.is_empty());
            assert_eq!(phase(plan), Phase::InvalidSpec);
            assert_eq!(plan.state, redblack::rollout::State::InvalidSpec);
            let c = condition(plan, "InvalidSpec").unwrap();
            assert_eq!(c.status, ConditionStatus::True);
            assert!(
                c.message.contains("spec.strategy.redBlack.previewService"),
                "{}",
                c.message
            );
            assert!(plan.events.iter().any(|e| e.type_ == EventType::Warning));
        },
    },
    Case {
        name: "invalid spec: a container without an image",
        given: || {
            invalid(|sim| {
                sim.rollout.spec.template.spec.as_mut().unwrap().containers[0].image = None;
            })
        },
        then: |_, plan| invalid_names(plan, "spec.template.spec.containers[0].image: is missing"),
    },
    Case {
        name: "invalid spec: two containers with one name (init containers count)",
        given: || {
            invalid(|sim| {
                let pod = sim.rollout.spec.template.spec.as_mut().unwrap();
                let mut init = pod.containers[0].clone();
                init.image = Some("busybox".to_owned());
                pod.init_containers = Some(vec![init]);
            })
        },
        then: |_, plan| {
            invalid_names(
                plan,
                "spec.template.spec.containers[0].name: \"web\" is also the name of spec.template.spec.initContainers[0]",
            )
        },
    },
    Case {
        name: "invalid spec: a container name that is not a DNS-1123 label",
        given: || {
            invalid(|sim| {
                sim.rollout.spec.template.spec.as_mut().unwrap().containers[0].name =
                    "Web_1".to_owned();
            })
        },
        then: |_, plan| {
            invalid_names(
                plan,
                "spec.template.spec.containers[0].name: \"Web_1\" is not a container name",
            )
        },
    },
    Case {
        name: "invalid spec: a label key and a label value the API would refuse",
        given: || {
            invalid(|sim| {
                let labels = sim
                    .rollout
                    .spec
                    .template
                    .metadata
                    .as_mut()
                    .unwrap()
                    .labels
                    .as_mut()
                    .unwrap();
                labels.insert("tier/x/y".to_owned(), "a".to_owned());
                labels.insert("track".to_owned(), "-stable".to_owned());
            })
        },
        then: |_, plan| {
            invalid_names(
                plan,
                "spec.template.metadata.labels: key \"tier/x/y\" is not a label key",
            );
            invalid_names(
                plan,
                "spec.template.metadata.labels: value \"-stable\" of track is not a label value",
            );
        },
    },
    Case {
        name: "invalid spec: a matchLabels value over 63 characters",
        given: || {
            invalid(|sim| {
                let long = "v".repeat(64);
                sim.rollout
                    .spec
                    .selector
                    .match_labels
                    .as_mut()
                    .unwrap()
                    .insert("app".to_owned(), long.clone());
                let meta = sim.rollout.spec.template.metadata.as_mut().unwrap();
                meta.labels.as_mut().unwrap().insert("app".to_owned(), long);
            })
        },
        then: |_, plan| invalid_names(plan, "spec.selector.matchLabels: value \"vvvv"),
    },
    Case {
        name: "invalid spec: an unknown selector operator, and In without values",
        given: || {
            invalid(|sim| {
                sim.rollout.spec.selector.match_expressions = Some(
                    serde_json::from_value(serde_json::json!([
                        {"key": "app", "operator": "Equals", "values": ["web"]},
                        {"key": "app", "operator": "In"},
                    ]))
                    .unwrap(),
                );
            })
        },
        then: |_, plan| {
            invalid_names(
                plan,
                "spec.selector.matchExpressions[0].operator: \"Equals\" is not a selector operator",
            );
            invalid_names(
                plan,
                "spec.selector.matchExpressions[1].values: is empty, but operator In needs values",
            );
        },
    },
    Case {
        name: "a 250-character dotted Rollout name: every name and label value written is valid",
        given: || {
            let mut sim = Sim::with_canary(true, true, "Pause");
            sim.rollout.metadata.name = Some(long_rollout_name());
            sim.rollout.spec.strategy.red_black.post_promotion_analysis = Some(
                serde_json::from_value(serde_json::json!({"inline": common::analysis_body()}))
                    .unwrap(),
            );
            sim.set_image("web:2");
            sim
        },
        then: |sim, plan| {
            let mut sim = sim.clone();
            let mut plan = plan.clone();
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..60 {
                for action in &plan.actions {
                    seen.insert(check_names(action));
                }
                if plan.is_noop(sim.rollout.status.as_ref()) {
                    match plan.requeue_after {
                        Some(wait) => sim.now += chrono::Duration::from_std(wait).unwrap(),
                        None => break,
                    }
                } else {
                    sim.apply(&plan);
                }
                sim.make_ready();
                sim.judge_running_with_traffic(
                    redblack::rollout::plan::AnalysisPhase::Passed,
                    97.0,
                );
                plan = sim.plan();
            }
            assert_eq!(phase(&plan), Phase::Healthy, "{:#?}", plan.status);
            for kind in [
                "replicaSet",
                "canary",
                "baseline",
                "roleService",
                "analysis",
                "postPromotion",
                "route",
            ] {
                assert!(seen.contains(kind), "no {kind} written: {seen:?}");
            }
        },
    },
    Case {
        name: "active Service missing: clear condition, Service never touched, nothing scaled down",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.observed.active_service = None;
            sim.advance(3600);
            sim
        },
        then: |_, plan| {
            assert!(!plan.actions.iter().any(Action::touches_traffic));
            assert!(!plan.actions.iter().any(|a| matches!(
                a,
                Action::ScaleReplicaSet { replicas: 0, .. } | Action::DeleteReplicaSet { .. }
            )));
            let ready = condition(plan, "Ready").unwrap();
            assert_eq!(ready.reason, "ActiveServiceNotFound");
            assert!(ready.message.contains("Service web not found"));
            assert_eq!(phase(plan), Phase::Degraded);
        },
    },
    Case {
        name: "preview Service follows the new fleet before the switch",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.preview_service = Some("web-preview".to_owned());
            sim.observed.preview_service = Some(common::service("web-preview"));
            sim.set_image("web:2");
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web-preview"), Some(sim.hash()));
            assert_eq!(switches_to(plan, "web"), None);
        },
    },
    Case {
        name: "preview Service missing: a condition says so, the rollout proceeds",
        given: || {
            let mut sim = v2_created();
            sim.rollout.spec.strategy.red_black.preview_service = Some("web-preview".to_owned());
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            let c = condition(plan, "PreviewServiceMissing").unwrap();
            assert!(c.message.contains("web-preview"));
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
        },
    },
    Case {
        name: "superseded: a new template replaces an unpromoted one, which is scaled down",
        given: || {
            let mut sim = v2_created();
            sim.set_image("web:3");
            sim
        },
        then: |sim, plan| {
            let v2 = Sim::new("web:2", 3).hash();
            assert_eq!(scaled(plan, sim, &v2), Some(0));
            assert_eq!(ensures(plan).len(), 1);
            assert_eq!(
                plan.status.history.last().unwrap().outcome,
                Outcome::Superseded
            );
        },
    },
    Case {
        name: "no revision pinned on the Service: nothing is scaled down",
        given: || {
            let (mut sim, _) = v2_promoted();
            sim.observed.active_service = Some(common::service("web"));
            sim.advance(3600);
            sim.set_image("web:3");
            sim
        },
        then: |_, plan| {
            assert!(
                !plan.actions.iter().any(|a| matches!(
                    a,
                    Action::ScaleReplicaSet { replicas: 0, .. } | Action::DeleteReplicaSet { .. }
                )),
                "{:?}",
                plan.actions
            );
            assert_eq!(ensures(plan).len(), 1);
        },
    },
    Case {
        name: "abort of the live revision is ignored (use undo)",
        given: || {
            let mut sim = Sim::steady("web:1", 3);
            let h = sim.hash();
            sim.annotate(ABORT_ANNOTATION, &h);
            sim
        },
        then: |sim, plan| {
            assert!(plan.actions.is_empty());
            assert_eq!(phase(plan), Phase::Healthy);
            assert!(plan.events.iter().any(|e| e.reason == "AbortIgnored"));
            assert_eq!(plan.status.operations.abort, Some(sim.hash()));
        },
    },
];

#[test]
fn planner_table() {
    let mut failures = Vec::new();
    for case in CASES {
        let sim = (case.given)();
        let plan = sim.plan();
        // Every row also checks determinism.
        assert_eq!(plan, sim.plan(), "{}: planning twice differs", case.name);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.then)(&sim, &plan)));
        if let Err(err) = result {
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_stale_promote_annotation_is_consumed_once() {
    let mut sim = Sim::steady("web:1", 3);
    sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
    sim.annotate(PROMOTE_ANNOTATION, "nothing-like-this");
    let plan = sim.step();
    assert!(plan.events.iter().any(|e| e.reason == "PromoteIgnored"));
    // Later a new revision must still wait for its own promote.
    sim.set_image("web:2");
    sim.step();
    sim.make_ready();
    let plan = sim.step();
    assert_eq!(switches_to(&plan, "web"), None);
    assert!(
        !sim.plan()
            .events
            .iter()
            .any(|e| e.reason.starts_with("Promote"))
    );
}

#[test]
fn lost_status_write_is_caught_up_from_the_observed_service() {
    let mut sim = v2_created();
    sim.make_ready();
    let before = sim.rollout.status.clone();
    let plan = sim.plan();
    for a in &plan.actions {
        sim.apply_action(a);
    }
    sim.rollout.status = before; // the status write failed
    let plan = sim.plan();
    assert_eq!(switches_to(&plan, "web"), None, "already switched");
    assert_eq!(plan.status.stable_revision, Some(sim.hash()));
    assert_eq!(
        plan.status.history.last().unwrap().outcome,
        Outcome::Promoted
    );
}

#[test]
fn warm_revisions_limits_how_many_old_fleets_stay_up() {
    let mut sim = Sim::steady("web:1", 2);
    for image in ["web:2", "web:3"] {
        sim.set_image(image);
        sim.step();
        sim.make_ready();
        sim.step();
    }
    // v1 and v2 both have warm deadlines, but warmRevisions = 1 keeps only v2.
    let plan = sim.step();
    let _ = plan;
    assert_eq!(sim.size(&v1_hash()), Some(0));
    assert_eq!(sim.size(&Sim::new("web:2", 2).hash()), Some(2));
}

#[test]
fn ensured_replica_sets_are_owned_by_the_rollout() {
    let sim = Sim::new("web:1", 3);
    let plan = sim.plan();
    let rs = plan.actions[0].replica_set(&sim.rollout).unwrap();
    let owner = &rs.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Rollout", "web", Some(true))
    );
    assert_eq!(rs.metadata.namespace.as_deref(), Some("default"));
    let hash = sim.hash();
    assert_eq!(
        rs.spec.selector.match_labels.unwrap()[redblack::api::POD_TEMPLATE_HASH_LABEL],
        hash
    );
    assert_eq!(rs.metadata.annotations.unwrap()[REVISION_ANNOTATION], "1");
}

#[test]
fn sub_second_clock_differences_do_not_change_the_status() {
    let mut sim = Sim::new("web:1", 3);
    sim.now += chrono::Duration::milliseconds(200);
    let a = sim.plan();
    sim.now += chrono::Duration::milliseconds(700);
    let b = sim.plan();
    assert_eq!(a.status, b.status);
    let stored = serde_json::to_string(&a.status).unwrap();
    assert!(
        stored.contains("\"progressStartedAt\":\"2026-01-01T12:00:00Z\""),
        "{stored}"
    );
}

#[test]
fn undo_helper_lands_on_the_previous_fleet_and_switches_while_warm() {
    use redblack::rollout::undo::{UndoError, same_revision, template_for_undo};
    let (mut sim, v1) = v2_promoted();
    let template = template_for_undo(&sim.observed.replica_sets, &sim.hash(), None).unwrap();
    assert!(same_revision(&template, sim.rs(&v1).unwrap()));
    sim.rollout.spec.template = template;
    assert_eq!(sim.hash(), v1);
    assert_eq!(switches_to(&sim.plan(), "web"), Some(v1.clone()));
    let by_number = template_for_undo(&sim.observed.replica_sets, "", Some(1)).unwrap();
    assert_eq!(redblack::api::pod_template_hash(&by_number), v1);
    assert_eq!(
        template_for_undo(&sim.observed.replica_sets, "", Some(9)),
        Err(UndoError::NoSuchRevision(9))
    );
}

/// The revision-number rule, case by case (`revision_number`).
#[test]
fn revision_numbers_only_grow_table() {
    use redblack::rollout::plan::{RevisionFacts, revision_number};
    let f = |own_fleet, own_recorded, other_fleets, recorded| RevisionFacts {
        own_fleet,
        own_recorded,
        other_fleets,
        recorded,
    };
    let rows: &[(&str, RevisionFacts, i64)] = &[
        ("the first revision", f(None, None, 0, 0), 1),
        ("a new template after 1 and 2", f(None, None, 2, 2), 3),
        ("its fleet is already the newest", f(Some(3), None, 2, 2), 3),
        (
            "live at 2, promoted and recorded",
            f(Some(2), Some(2), 1, 2),
            2,
        ),
        // A plan made while the fleets are not observed (no ReplicaSet cache
        // yet) keeps the recorded number instead of starting over at 1.
        ("live at 2, no fleet observed", f(None, Some(2), 0, 2), 2),
        ("no fleet observed, a new template", f(None, None, 0, 5), 6),
        (
            "undo: an old fleet reused is renumbered",
            f(Some(1), Some(1), 2, 2),
            3,
        ),
        (
            "a lowered annotation is repaired",
            f(Some(1), Some(2), 1, 2),
            2,
        ),
        // Back to a template whose fleet is gone, after newer revisions.
        (
            "an old template without its fleet",
            f(None, Some(3), 0, 5),
            6,
        ),
        ("an old template, newer fleets", f(None, Some(3), 5, 5), 6),
        // Revision annotations are text anyone can edit; the largest number
        // must not overflow (found by spec_fuzz: a debug-build panic).
        (
            "a revision annotation at i64::MAX",
            f(None, None, i64::MAX, 0),
            i64::MAX,
        ),
        (
            "a recorded revision at i64::MAX",
            f(None, None, 0, i64::MAX),
            i64::MAX,
        ),
    ];
    for (name, facts, want) in rows {
        assert_eq!(revision_number(facts), *want, "{name}: {facts:?}");
    }
}

/// A plan made from a world where the live fleet is not observed (as from
/// an empty ReplicaSet cache) does not number the live template 1 again.
#[test]
fn a_live_revision_keeps_its_number_when_its_fleet_is_not_observed() {
    let (mut sim, _) = v2_promoted();
    sim.settle();
    let status = sim.rollout.status.clone().unwrap();
    let live = status
        .history
        .iter()
        .filter(|r| r.hash == sim.hash())
        .map(|r| r.revision)
        .max()
        .expect("v2 recorded");
    assert_eq!(live, 2);
    sim.observed.replica_sets.clear();
    let plan = sim.plan();
    let numbers: Vec<i64> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::EnsureReplicaSet { revision, .. } => Some(*revision),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, vec![live], "{:?}", plan.actions);
}

/// A write the API refused: the stored status, Degraded, with Stalled/Ready/
/// Progressing naming the write and quoting the API; one Warning Event for
/// the refusal, none for a retry refused the same way; the next plan that
/// gets through replaces every WriteRefused condition.
#[test]
fn a_refused_write_is_said_once_in_conditions_and_cleared_by_the_next_plan() {
    use redblack::rollout::plan::{WRITE_REFUSED, WriteRefusal, plan_refused_write};
    let mut sim = v2_created();
    let refusal = WriteRefusal {
        what: "applying ReplicaSet web-abc".into(),
        code: 403,
        reason: "Forbidden".into(),
        message: "admission webhook \"policy.example.com\" denied the request: no :latest".into(),
    };
    let stored = sim.rollout.status.clone().unwrap();
    let (status, events) = plan_refused_write(&sim.rollout, &refusal, sim.now);
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(
        status.stable_revision, stored.stable_revision,
        "nothing else changes"
    );
    assert_eq!(status.history, stored.history);
    assert_eq!(status.observed_generation, sim.rollout.metadata.generation);
    let find = |t: &str| status.conditions.iter().find(|c| c.type_ == t).cloned();
    let stalled = find("Stalled").unwrap();
    assert_eq!(stalled.status, ConditionStatus::True);
    assert_eq!(stalled.reason, WRITE_REFUSED);
    for needle in [
        "applying ReplicaSet web-abc",
        "403 Forbidden",
        "policy.example.com",
    ] {
        assert!(
            stalled.message.contains(needle),
            "{needle} in {}",
            stalled.message
        );
    }
    for t in ["Ready", "Progressing"] {
        let c = find(t).unwrap();
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, WRITE_REFUSED)
        );
    }
    assert!(
        find("Reconciling").is_none(),
        "Stalled and Reconciling are exclusive"
    );
    assert_eq!(
        find("Available"),
        stored
            .conditions
            .iter()
            .find(|c| c.type_ == "Available")
            .cloned()
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].type_, events[0].reason.as_str()),
        (EventType::Warning, WRITE_REFUSED)
    );

    // Retried and refused the same way: the same status, no Event.
    sim.rollout.status = Some(status.clone());
    sim.now += chrono::Duration::seconds(7);
    let (again, events) = plan_refused_write(&sim.rollout, &refusal, sim.now);
    assert_eq!(again, status);
    assert!(events.is_empty(), "{events:?}");

    // Refused with other words: said again.
    let other = WriteRefusal {
        message: "exceeded quota: pods=10".into(),
        ..refusal.clone()
    };
    let (_, events) = plan_refused_write(&sim.rollout, &other, sim.now);
    assert_eq!(events.len(), 1);

    // A page-long webhook answer is quoted in part.
    let long = WriteRefusal {
        message: "é".repeat(5000),
        ..refusal
    };
    let (capped, _) = plan_refused_write(&sim.rollout, &long, sim.now);
    let message = &capped
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message;
    assert!(message.len() < 1500, "{}", message.len());

    // The write gets through: the next plan's status has no trace of it.
    let plan = sim.plan();
    assert!(
        plan.status
            .conditions
            .iter()
            .all(|c| c.reason != WRITE_REFUSED),
        "{:?}",
        plan.status.conditions
    );
    assert_ne!(plan.status.phase, Some(Phase::Degraded));
}

/// Progress deadline: a missed deadline without `progressDeadlineAbort` is
/// reported (Degraded, one Warning) and heals once the pods are ready; with
/// it the revision is abandoned. One row per (when, abort, what then).
#[test]
fn progress_deadline_table() {
    struct Row {
        name: &'static str,
        given: fn() -> Sim,
        then: fn(&Sim, &Plan),
    }
    fn late_update() -> Sim {
        let mut sim = v2_created();
        sim.advance(600);
        sim
    }
    fn late_first_deploy() -> Sim {
        let mut sim = Sim::new("web:1", 3);
        sim.step();
        sim.advance(600);
        sim
    }
    fn deadline_events(plan: &Plan) -> usize {
        plan.events
            .iter()
            .filter(|e| e.type_ == EventType::Warning && e.reason == "ProgressDeadlineExceeded")
            .count()
    }
    fn is_late(sim: &Sim, plan: &Plan) {
        assert_eq!(phase(plan), Phase::Degraded);
        assert_eq!(
            plan.state,
            State::Progressing {
                started_at: plan.status.progress_started_at.unwrap(),
                deadline: plan.status.progress_started_at.unwrap() + chrono::Duration::seconds(600),
                late: true,
            }
        );
        assert!(plan.status.abort.is_none(), "no abort is recorded");
        assert!(!plan.actions.iter().any(Action::touches_traffic));
        let progressing = condition(plan, "Progressing").unwrap();
        assert_eq!(
            (progressing.status, progressing.reason.as_str()),
            (ConditionStatus::False, "ProgressDeadlineExceeded")
        );
        assert!(progressing.message.contains(&sim.hash()));
        assert!(progressing.message.contains("goes on once"));
        assert_eq!(
            condition(plan, "Stalled").unwrap().status,
            ConditionStatus::True
        );
        assert!(condition(plan, "Reconciling").is_none());
        // The late fleet is not retired and not scaled down.
        assert!(!plan.actions.iter().any(|a| matches!(
            a,
            Action::ScaleReplicaSet { replicas: 0, .. } | Action::DeleteReplicaSet { .. }
        )));
        assert!(
            plan.status
                .history
                .iter()
                .all(|h| !(h.hash == sim.hash() && h.outcome == Outcome::Failed))
        );
        // No timer from a deadline in the past (it would spin).
        assert!(
            plan.requeue_after
                .is_none_or(|d| d > std::time::Duration::from_secs(0))
        );
    }
    let rows = [
        Row {
            name: "update within the deadline: Progressing, timer at the deadline",
            given: || {
                let mut sim = v2_created();
                sim.advance(599);
                sim
            },
            then: |_, plan| {
                assert_eq!(phase(plan), Phase::Progressing);
                assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(1)));
                assert_eq!(deadline_events(plan), 0);
            },
        },
        Row {
            name: "update late (default): Degraded while late, fleet kept, one Warning",
            given: late_update,
            then: |sim, plan| {
                is_late(sim, plan);
                assert_eq!(deadline_events(plan), 1);
                assert!(!plan.events.iter().any(|e| e.reason == "Degraded"));
            },
        },
        Row {
            name: "update still late on the next plan: no second Warning",
            given: || {
                let mut sim = late_update();
                sim.step();
                sim.advance(30);
                sim
            },
            then: |sim, plan| {
                is_late(sim, plan);
                assert_eq!(deadline_events(plan), 0);
                assert!(plan.events.is_empty(), "{:?}", plan.events);
            },
        },
        Row {
            name: "update late, then ready: switched without retry",
            given: || {
                let mut sim = late_update();
                sim.step();
                sim.advance(120);
                sim.make_ready();
                sim
            },
            then: |sim, plan| {
                assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
                assert_eq!(phase(plan), Phase::Healthy);
                assert_eq!(
                    condition(plan, "Progressing").unwrap().reason,
                    "NewReplicaSetAvailable"
                );
            },
        },
        Row {
            name: "first deploy late: Degraded, nothing switched",
            given: late_first_deploy,
            then: |sim, plan| {
                is_late(sim, plan);
                assert_eq!(switches_to(plan, "web"), None);
                assert_eq!(deadline_events(plan), 1);
            },
        },
        Row {
            name: "first deploy late, then ready: switched, Healthy",
            given: || {
                let mut sim = late_first_deploy();
                sim.step();
                sim.make_ready();
                sim
            },
            then: |sim, plan| {
                assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
                assert_eq!(phase(plan), Phase::Healthy);
            },
        },
        Row {
            name: "late with manual promotion, then ready: awaits the promote",
            given: || {
                let mut sim = late_update();
                sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
                sim.step();
                sim.make_ready();
                sim
            },
            then: |_, plan| {
                assert_eq!(phase(plan), Phase::Paused);
                assert_eq!(switches_to(plan, "web"), None);
                assert_eq!(
                    condition(plan, "Progressing").unwrap().reason,
                    "AwaitingPromotion"
                );
            },
        },
        Row {
            name: "progressDeadlineAbort: aborted, ready pods do not bring it back",
            given: || {
                let mut sim = late_update();
                sim.rollout.spec.progress_deadline_abort = true;
                sim.step();
                sim.make_ready();
                sim
            },
            then: |sim, plan| {
                assert_eq!(phase(plan), Phase::Degraded);
                assert!(matches!(plan.state, State::Aborted(_)));
                assert_eq!(switches_to(plan, "web"), None);
                assert_eq!(
                    plan.status.abort.as_ref().map(|a| a.revision.clone()),
                    Some(sim.hash())
                );
            },
        },
        Row {
            name: "retry while late is not needed: ignored, still late",
            given: || {
                let mut sim = late_update();
                sim.step();
                let h = sim.hash();
                sim.annotate(RETRY_ANNOTATION, &h);
                sim
            },
            then: |sim, plan| {
                is_late(sim, plan);
                assert!(plan.events.iter().any(|e| e.reason == "RetryIgnored"));
            },
        },
    ];
    let mut failures = Vec::new();
    for row in rows {
        let sim = (row.given)();
        let plan = sim.plan();
        assert_eq!(plan, sim.plan(), "{}: planning twice differs", row.name);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (row.then)(&sim, &plan)));
        if let Err(err) = result {
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", row.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- Gates and the pre-promotion analysis (docs/rollout.md, "Gates") ----

/// v1 live (3 pods), `gates` set, v2's fleet available (the next plan judges).
fn gated(gates: serde_json::Value) -> Sim {
    let mut sim = Sim::steady("web:1", 3);
    sim.rollout.spec.strategy.red_black.gates = serde_json::from_value(gates).unwrap();
    sim.set_image("web:2");
    sim.step();
    sim.make_ready();
    sim
}

fn smoke_job() -> serde_json::Value {
    serde_json::json!([{"name": "smoke", "at": "BeforeSwitch", "job": {"template": {"spec": {
        "containers": [{"name": "t", "image": "redblack/redblack",
            "args": ["smoke", "--url", "http://${previewService}/${revision}"]}]}}}}])
}

fn http_gate(retries: i32) -> serde_json::Value {
    serde_json::json!([{"name": "health", "at": "BeforeSwitch", "http": {
        "url": "http://127.0.0.1:1/${revision}", "retries": retries, "retryInterval": "10s"}}])
}

fn job_outcome(sim: &mut Sim, phase: redblack::rollout::plan::JobPhase, message: Option<&str>) {
    for j in &mut sim.observed.jobs {
        j.phase = phase;
        j.message = message.map(str::to_owned);
    }
}

fn http_result(sim: &mut Sim, passed: bool, message: &str) {
    let probes = redblack::rollout::plan::http_due(&sim.rollout, sim.now);
    sim.observed.http_checks = probes
        .iter()
        .map(|p| redblack::rollout::plan::HttpCheck {
            gate: p.gate.clone(),
            revision: p.revision.clone(),
            passed,
            message: message.to_owned(),
        })
        .collect();
}

fn job_of(plan: &Plan) -> Option<&k8s_openapi::api::batch::v1::Job> {
    plan.actions.iter().find_map(|a| match a {
        Action::EnsureJob { job, .. } => Some(&**job),
        _ => None,
    })
}

fn after_job() -> serde_json::Value {
    serde_json::json!([{"name": "verify", "at": "AfterSwitch", "job": {"template": {"spec": {
        "containers": [{"name": "t", "image": "redblack/redblack",
            "args": ["smoke", "--url", "http://${activeService}/"]}]}}}}])
}

fn after_http() -> serde_json::Value {
    serde_json::json!([{"name": "health", "at": "AfterSwitch", "http": {
        "url": "http://127.0.0.1:1/${revision}", "retries": 0}}])
}

/// v2 switched to with `gates` (scaleDownDelay 30s); the next plan sees it live.
fn switched(gates: serde_json::Value) -> Sim {
    let mut sim = gated(gates);
    sim.rollout.spec.strategy.red_black.scale_down_delay = "30s".to_owned();
    let plan = sim.step();
    assert_eq!(switches_to(&plan, "web"), Some(sim.hash()));
    sim
}

/// As `switched`, with an inline postPromotionAnalysis as well.
fn switched_with_post(gates: serde_json::Value) -> Sim {
    let mut sim = gated(gates);
    sim.rollout.spec.strategy.red_black.scale_down_delay = "30s".to_owned();
    sim.rollout.spec.strategy.red_black.post_promotion_analysis = Some(
        serde_json::from_value(
            serde_json::json!({"inline": {"interval": "1m", "lifetime": "20m", "metrics": []}}),
        )
        .unwrap(),
    );
    let plan = sim.step();
    assert_eq!(switches_to(&plan, "web"), Some(sim.hash()));
    sim
}

type GateRow = (&'static str, fn() -> Sim, fn(&Sim, &Plan));

const GATE_ROWS: &[GateRow] = &[
    (
        "a Job gate holds the available fleet: its Job is created, rendered, no switch",
        || gated(smoke_job()),
        |sim, plan| {
            assert!(matches!(plan.state, State::Gated(_)), "{:?}", plan.state);
            assert_eq!(switches_to(plan, "web"), None);
            let job = job_of(plan).expect("a Job");
            let name = format!("web-{}-smoke-1", sim.hash());
            assert_eq!(job.metadata.name.as_deref(), Some(name.as_str()));
            assert_eq!(
                job.metadata.owner_references.as_ref().unwrap()[0].kind,
                "Rollout"
            );
            let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
            let args = pod.containers[0].args.as_ref().unwrap();
            assert_eq!(
                args[2],
                format!("http://${{previewService}}/{}", sim.hash()),
                "no previewService: kept as written"
            );
            assert_eq!(
                job.spec.as_ref().unwrap().active_deadline_seconds,
                Some(600)
            );
            let c = condition(plan, "Progressing").unwrap();
            assert_eq!(c.reason, "GateRunning");
            assert!(c.message.contains("gate smoke"), "{}", c.message);
            assert_eq!(phase(plan), Phase::Progressing);
            assert!(plan.requeue_after.unwrap() <= std::time::Duration::from_secs(2));
            let g = &plan.status.gates[0];
            assert_eq!(
                g.logs.as_deref(),
                Some(format!("kubectl logs -n default job/{name}").as_str())
            );
        },
    ),
    (
        "a running Job keeps holding, and is not created again",
        || {
            let mut sim = gated(smoke_job());
            sim.step();
            sim
        },
        |_, plan| {
            assert!(matches!(plan.state, State::Gated(_)));
            assert!(job_of(plan).is_none());
            assert_eq!(switches_to(plan, "web"), None);
        },
    ),
    (
        "a completed Job opens the gate: the switch follows",
        || {
            let mut sim = gated(smoke_job());
            sim.step();
            job_outcome(&mut sim, redblack::rollout::plan::JobPhase::Complete, None);
            sim
        },
        |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
            assert!(plan.events.iter().any(|e| e.reason == "GatePassed"));
            assert_eq!(plan.status.gates[0].phase, redblack::api::GatePhase::Passed);
        },
    ),
    (
        "a failed Job aborts: no switch, Stalled GateFailed names the gate and its logs",
        || {
            let mut sim = gated(smoke_job());
            sim.step();
            job_outcome(
                &mut sim,
                redblack::rollout::plan::JobPhase::Failed,
                Some("BackoffLimitExceeded: Job has reached the specified backoff limit"),
            );
            sim
        },
        |sim, plan| {
            assert!(matches!(plan.state, State::Aborted(_)));
            assert_eq!(switches_to(plan, "web"), None);
            let c = condition(plan, "Stalled").unwrap();
            assert_eq!(c.reason, "GateFailed");
            assert!(c.message.contains("gate smoke failed"), "{}", c.message);
            assert!(c.message.contains("BackoffLimitExceeded"), "{}", c.message);
            assert!(
                c.message
                    .contains(&format!("job/web-{}-smoke-1", sim.hash())),
                "{}",
                c.message
            );
            let e = plan
                .events
                .iter()
                .find(|e| e.reason == "GateFailed")
                .unwrap();
            assert_eq!(e.type_, EventType::Warning);
            assert_eq!(phase(plan), Phase::Degraded);
        },
    ),
    (
        "a retry after a failed gate runs it again with a new Job",
        || {
            let mut sim = gated(smoke_job());
            sim.step();
            job_outcome(
                &mut sim,
                redblack::rollout::plan::JobPhase::Failed,
                Some("DeadlineExceeded: x"),
            );
            sim.step();
            let hash = sim.hash();
            sim.annotate(RETRY_ANNOTATION, &hash);
            sim
        },
        |sim, plan| {
            let job = job_of(plan).expect("a new Job");
            assert_eq!(
                job.metadata.name,
                Some(format!("web-{}-smoke-2", sim.hash()))
            );
            assert!(matches!(plan.state, State::Gated(_)));
        },
    ),
    (
        "an HTTP gate: its first attempt is due once recorded; a failure with retries left holds",
        || {
            let mut sim = gated(http_gate(1));
            sim.step();
            http_result(&mut sim, false, "GET http://127.0.0.1:1/x: cannot connect");
            assert_eq!(sim.observed.http_checks.len(), 1, "due at once");
            sim
        },
        |sim, plan| {
            assert!(matches!(plan.state, State::Gated(_)));
            assert_eq!(switches_to(plan, "web"), None);
            let g = &plan.status.gates[0];
            assert_eq!(
                (g.attempts, g.phase),
                (1, redblack::api::GatePhase::Running)
            );
            assert!(g.message.as_deref().unwrap().starts_with("attempt 1/2"));
            assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(10)));
            let probes = redblack::rollout::plan::http_due(&sim.rollout, sim.now);
            assert_eq!(probes[0].url, format!("http://127.0.0.1:1/{}", sim.hash()));
        },
    ),
    (
        "an HTTP gate that fails its last attempt aborts; no switch",
        || {
            let mut sim = gated(http_gate(1));
            sim.step();
            http_result(&mut sim, false, "cannot connect");
            sim.step();
            sim.observed.http_checks.clear();
            assert!(
                redblack::rollout::plan::http_due(&sim.rollout, sim.now).is_empty(),
                "not before its interval"
            );
            sim.advance(10);
            http_result(&mut sim, false, "cannot connect");
            sim
        },
        |_, plan| {
            assert!(matches!(plan.state, State::Aborted(_)));
            assert_eq!(switches_to(plan, "web"), None);
            let c = condition(plan, "Stalled").unwrap();
            assert!(
                c.message.contains("gate health failed") && c.message.contains("attempt 2/2"),
                "{}",
                c.message
            );
        },
    ),
    (
        "an HTTP gate that answers as configured opens: the switch follows",
        || {
            let mut sim = gated(http_gate(0));
            sim.step();
            http_result(&mut sim, true, "answered 200");
            sim
        },
        |sim, plan| assert_eq!(switches_to(plan, "web"), Some(sim.hash())),
    ),
    (
        "prePromotionAnalysis: created against the live fleet, no switch until judged",
        || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.pre_promotion_analysis = Some(
                serde_json::from_value(serde_json::json!({"inline": common::analysis_body()}))
                    .unwrap(),
            );
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim
        },
        |sim, plan| {
            assert!(matches!(plan.state, State::Gated(_)));
            assert_eq!(switches_to(plan, "web"), None);
            let spec = plan
                .actions
                .iter()
                .find_map(|a| match a {
                    Action::EnsureCanaryAnalysis { name, spec, .. } if name.contains("-pre-") => {
                        Some(spec)
                    }
                    _ => None,
                })
                .expect("the pre-promotion analysis");
            assert_eq!(spec["experiment"]["revision"], sim.hash());
            assert_eq!(spec["experiment"]["role"], "preview");
            assert_eq!(spec["control"]["role"], "stable");
        },
    ),
    (
        "prePromotionAnalysis Failed: aborted, no switch, the condition names it",
        || {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.pre_promotion_analysis = Some(
                serde_json::from_value(serde_json::json!({"inline": common::analysis_body()}))
                    .unwrap(),
            );
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim.step();
            let name = sim
                .observed
                .analyses
                .iter()
                .find(|a| a.name.contains("-pre-"))
                .unwrap()
                .name
                .clone();
            sim.judge(
                &name,
                redblack::rollout::plan::AnalysisPhase::Failed,
                Some(12.0),
                "bad",
            );
            sim
        },
        |_, plan| {
            assert!(matches!(plan.state, State::Aborted(_)));
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(
                condition(plan, "Stalled").unwrap().reason,
                "PrePromotionAnalysisFailed"
            );
            assert!(
                plan.events
                    .iter()
                    .any(|e| e.reason == "PrePromotionAnalysisFailed")
            );
        },
    ),
    (
        "prePromotionAnalysis Passed with Manual promotion: waits for the promote",
        || {
            let mut sim = Sim::steady("web:1", 3);
            let rb = &mut sim.rollout.spec.strategy.red_black;
            rb.promotion = PromotionPolicy::Manual;
            rb.pre_promotion_analysis = Some(
                serde_json::from_value(serde_json::json!({"inline": common::analysis_body()}))
                    .unwrap(),
            );
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim.step();
            let name = sim
                .observed
                .analyses
                .iter()
                .find(|a| a.name.contains("-pre-"))
                .unwrap()
                .name
                .clone();
            sim.judge(
                &name,
                redblack::rollout::plan::AnalysisPhase::Passed,
                Some(95.0),
                "",
            );
            sim
        },
        |_, plan| {
            assert!(
                matches!(plan.state, State::AwaitingPromotion { .. }),
                "{:?}",
                plan.state
            );
            assert_eq!(switches_to(plan, "web"), None);
        },
    ),
    (
        "a BeforeCanary gate holds a ready canary without traffic",
        || {
            let mut sim = Sim::with_canary(false, true, "Pause");
            sim.rollout.spec.strategy.red_black.gates = serde_json::from_value(serde_json::json!(
                [{"name": "smoke", "at": "BeforeCanary", "http": {"url": "http://${canaryService}/"}}])).unwrap();
            sim.set_image("web:2");
            sim.step();
            sim.make_ready();
            sim
        },
        |_, plan| {
            assert!(
                matches!(
                    plan.state,
                    State::Canary(redblack::rollout::plan::CanaryStep::Gated(_))
                ),
                "{:?}",
                plan.state
            );
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(c.traffic_percent, 0);
            assert!(c.analysis_start.is_none());
            assert!(!plan.actions.iter().any(|a| a.touches_traffic()));
            assert!(
                !plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::EnsureCanaryAnalysis { .. }))
            );
        },
    ),
    // ---- AfterSwitch gates: judged live, the previous fleet warm ----
    (
        "an AfterSwitch gate does not hold the switch; the switch records it against the previous revision, no Job yet",
        || gated(after_job()),
        |sim, plan| {
            assert_eq!(switches_to(plan, "web"), Some(sim.hash()));
            assert!(
                job_of(plan).is_none(),
                "no Job before the switch is observed"
            );
            let g = &plan.status.gates[0];
            assert_eq!(g.at, redblack::api::GateAt::AfterSwitch);
            assert_eq!(g.phase, redblack::api::GatePhase::Running);
            assert_eq!(g.previous_revision, Some(v1_hash()));
        },
    ),
    (
        "live, its AfterSwitch Job runs: Progressing GateRunning, the previous fleet warm past scaleDownDelay",
        || {
            let mut sim = switched(after_job());
            let plan = sim.step();
            assert!(job_of(&plan).is_some(), "the Job once live");
            sim.advance(7200);
            sim
        },
        |sim, plan| {
            assert!(matches!(plan.state, State::Gated(_)), "{:?}", plan.state);
            assert_eq!(phase(plan), Phase::Progressing);
            assert_eq!(scaled(plan, sim, &v1_hash()), None, "kept warm");
            let c = condition(plan, "Progressing").unwrap();
            assert_eq!(c.reason, "GateRunning");
            assert!(
                c.message.contains("is live and waits for gate verify"),
                "{}",
                c.message
            );
        },
    ),
    (
        "a failed AfterSwitch Job switches traffic back to the warm previous fleet",
        || {
            let mut sim = switched(after_job());
            sim.step();
            job_outcome(
                &mut sim,
                redblack::rollout::plan::JobPhase::Failed,
                Some("BackoffLimitExceeded: x"),
            );
            sim
        },
        |sim, plan| {
            assert_eq!(plan.state, State::Revert { to: v1_hash() });
            assert_eq!(switches_to(plan, "web"), Some(v1_hash()));
            let abort = plan.status.abort.as_ref().expect("abort");
            assert_eq!(abort.reason, redblack::api::AbortReason::GateFailed);
            assert_eq!(abort.revision, sim.hash());
            let c = condition(plan, "Stalled").unwrap();
            assert_eq!(c.reason, "GateFailed");
            assert!(
                c.message.contains("gate verify failed") && c.message.contains("after the switch"),
                "{}",
                c.message
            );
            let e = plan
                .events
                .iter()
                .find(|e| e.reason == "GateFailed")
                .expect("Event");
            assert!(
                e.message
                    .contains(&format!("switching traffic back to {}", v1_hash())),
                "{}",
                e.message
            );
            assert!(
                plan.events
                    .iter()
                    .any(|e| e.reason == "SwitchedTraffic" && e.message.contains("[GateFailed]"))
            );
        },
    ),
    (
        "after the revert: Aborted GateFailed, history says the previous revision is back",
        || {
            let mut sim = switched(after_job());
            sim.step();
            job_outcome(
                &mut sim,
                redblack::rollout::plan::JobPhase::Failed,
                Some("x"),
            );
            sim.step();
            sim
        },
        |sim, plan| {
            assert!(matches!(plan.state, State::Aborted(_)), "{:?}", plan.state);
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(plan.status.stable_revision, Some(v1_hash()));
            let outcomes: Vec<_> = plan
                .status
                .history
                .iter()
                .map(|r| (r.hash.clone(), r.outcome))
                .collect();
            assert!(
                outcomes.contains(&(sim.hash(), redblack::api::Outcome::Failed)),
                "{outcomes:?}"
            );
            assert_eq!(
                outcomes.last(),
                Some(&(v1_hash(), redblack::api::Outcome::RolledBack)),
                "{outcomes:?}"
            );
        },
    ),
    (
        "a passed AfterSwitch Job completes the rollout: Healthy, the previous fleet goes after its delay",
        || {
            let mut sim = switched(after_job());
            sim.step();
            job_outcome(&mut sim, redblack::rollout::plan::JobPhase::Complete, None);
            sim.advance(7200);
            sim
        },
        |sim, plan| {
            assert_eq!(plan.state, State::Steady);
            assert_eq!(phase(plan), Phase::Healthy);
            assert_eq!(scaled(plan, sim, &v1_hash()), Some(0));
            assert!(plan.events.iter().any(|e| e.reason == "GatePassed"));
        },
    ),
    (
        "an AfterSwitch HTTP gate is due only after the switch; its last failed attempt switches back",
        || {
            let mut sim = gated(after_http());
            assert!(redblack::rollout::plan::http_due(&sim.rollout, sim.now).is_empty());
            sim.step();
            http_result(
                &mut sim,
                false,
                "GET http://127.0.0.1:1/x: connection refused",
            );
            assert_eq!(sim.observed.http_checks.len(), 1, "due once switched");
            sim
        },
        |_, plan| {
            assert_eq!(plan.state, State::Revert { to: v1_hash() });
            assert!(
                plan.status.gates[0]
                    .message
                    .as_deref()
                    .unwrap()
                    .contains("connection refused")
            );
        },
    ),
    (
        "with postPromotionAnalysis too: a passed gate still keeps the fleet warm for the analysis",
        || {
            let mut sim = switched_with_post(after_job());
            sim.step();
            job_outcome(&mut sim, redblack::rollout::plan::JobPhase::Complete, None);
            sim.advance(7200);
            sim
        },
        |sim, plan| {
            assert_eq!(plan.state, State::Steady);
            assert_eq!(
                scaled(plan, sim, &v1_hash()),
                None,
                "warm until the analysis decides"
            );
        },
    ),
    (
        "with postPromotionAnalysis too: a failed gate switches back while the analysis runs",
        || {
            let mut sim = switched_with_post(after_job());
            sim.step();
            job_outcome(
                &mut sim,
                redblack::rollout::plan::JobPhase::Failed,
                Some("x"),
            );
            sim
        },
        |_, plan| assert_eq!(plan.state, State::Revert { to: v1_hash() }),
    ),
];

#[test]
fn gates_table() {
    let mut failures = Vec::new();
    for (name, given, then) in GATE_ROWS {
        let sim = given();
        let plan = sim.plan();
        assert_eq!(plan, sim.plan(), "{name}: planning twice differs");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| then(&sim, &plan)));
        if let Err(err) = result {
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{name}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---- workloadRef: the template comes from a Deployment ----

mod workload_ref {
    use super::*;
    use redblack::api::pod_template_hash;
    use redblack::api::workload_ref::{ScaleDown, WorkloadRef};
    use redblack::rollout::plan::{WORKLOAD_MISSING, WorkloadObservation};

    /// `sim`'s Rollout turned into one with `workloadRef: web` (no template,
    /// no selector), the Deployment observed with the template it had.
    fn referencing(mut sim: Sim, scale_down: Option<ScaleDown>) -> Sim {
        let spec = &mut sim.rollout.spec;
        sim.observed.workload = Some(WorkloadObservation {
            template: std::mem::take(&mut spec.template),
            selector: std::mem::take(&mut spec.selector),
            replicas: 3,
        });
        spec.workload_ref = Some(WorkloadRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            scale_down,
        });
        sim
    }

    fn deployment_hash(sim: &Sim) -> String {
        pod_template_hash(&sim.observed.workload.as_ref().unwrap().template)
    }

    fn scaled_deployment(plan: &Plan) -> Option<i32> {
        plan.actions.iter().find_map(|a| match a {
            Action::ScaleDeployment { name, replicas } if name == "web" => Some(*replicas),
            _ => None,
        })
    }

    fn settled(scale_down: Option<ScaleDown>) -> Sim {
        let mut sim = referencing(Sim::new("web:1", 3), scale_down);
        sim.settle();
        sim
    }

    #[test]
    fn the_deployments_template_and_selector_are_rolled_out() {
        let sim = referencing(Sim::new("web:1", 3), None);
        let plan = sim.plan();
        let ensured = ensures(&plan);
        assert_eq!(ensured.len(), 1, "{:?}", plan.actions);
        let Action::EnsureReplicaSet {
            hash,
            selector,
            template,
            ..
        } = ensured[0]
        else {
            unreachable!()
        };
        assert_eq!(*hash, deployment_hash(&sim));
        assert_eq!(
            selector
                .match_labels
                .as_ref()
                .unwrap()
                .get("app")
                .map(String::as_str),
            Some("web"),
            "the Deployment's selector"
        );
        let image = template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref();
        assert_eq!(image, Some("web:1"));
        assert_eq!(scaled_deployment(&plan), None);
    }

    #[test]
    fn never_leaves_the_deployment_alone() {
        let sim = settled(Some(ScaleDown::Never));
        let plan = sim.plan();
        assert_eq!(phase(&plan), Phase::Healthy);
        assert!(
            plan.is_noop(sim.rollout.status.as_ref()),
            "{:?}",
            plan.actions
        );
        assert_eq!(sim.observed.workload.as_ref().unwrap().replicas, 3);
        assert_eq!(sim.active_hash(), Some(deployment_hash(&sim)));
    }

    #[test]
    fn onsuccess_scales_the_deployment_to_zero_once_healthy_only() {
        // Not Healthy yet (the first fleet is not ready): the Deployment stays.
        let mut sim = referencing(Sim::new("web:1", 3), Some(ScaleDown::OnSuccess));
        let plan = sim.step();
        assert_ne!(phase(&plan), Phase::Healthy);
        assert_eq!(scaled_deployment(&plan), None);
        // Healthy: scaled to 0 once, then nothing more.
        sim.settle();
        assert_eq!(phase(&sim.plan()), Phase::Healthy);
        assert_eq!(sim.observed.workload.as_ref().unwrap().replicas, 0);
        assert!(sim.plan().is_noop(sim.rollout.status.as_ref()));
        // Someone scales it up again: scaled down again while Healthy.
        sim.observed.workload.as_mut().unwrap().replicas = 2;
        assert_eq!(scaled_deployment(&sim.plan()), Some(0));
    }

    #[test]
    fn a_new_deployment_template_is_a_new_revision() {
        let mut sim = settled(None);
        let h1 = deployment_hash(&sim);
        let template = &mut sim.observed.workload.as_mut().unwrap().template;
        template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
        let h2 = deployment_hash(&sim);
        assert_ne!(h1, h2);
        let plan = sim.plan();
        let ensured = ensures(&plan);
        assert_eq!(ensured.len(), 1);
        assert!(matches!(ensured[0], Action::EnsureReplicaSet { hash, .. } if *hash == h2));
        assert_eq!(plan.status.current_revision.as_deref(), Some(h2.as_str()));
        sim.settle();
        assert_eq!(sim.active_hash(), Some(h2));
    }

    #[test]
    fn a_missing_deployment_moves_nothing_and_recovers() {
        let mut sim = settled(None);
        let h1 = deployment_hash(&sim);
        let deployment = sim.observed.workload.take();
        let plan = sim.step();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.state, State::WorkloadMissing { name: "web".into() });
        assert_eq!(phase(&plan), Phase::Degraded);
        let ready = condition(&plan, "Ready").unwrap();
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, WORKLOAD_MISSING);
        assert!(
            ready.message.contains("Deployment web"),
            "{}",
            ready.message
        );
        assert_eq!(
            condition(&plan, "Stalled").unwrap().status,
            ConditionStatus::True
        );
        assert_eq!(plan.status.stable_revision.as_deref(), Some(h1.as_str()));
        assert!(
            plan.events
                .iter()
                .any(|e| e.reason == WORKLOAD_MISSING && e.type_ == EventType::Warning)
        );
        // Re-planned while still missing: nothing new (no second Event).
        let again = sim.plan();
        assert!(again.is_noop(sim.rollout.status.as_ref()), "{again:?}");
        // The Deployment appears: Healthy again, the conditions say so.
        sim.observed.workload = deployment;
        sim.settle();
        let plan = sim.plan();
        assert_eq!(phase(&plan), Phase::Healthy);
        let ready = condition(&plan, "Ready").unwrap();
        assert_eq!(ready.status, ConditionStatus::True);
        assert_ne!(
            condition(&plan, "Stalled").map(|c| c.status),
            Some(ConditionStatus::True)
        );
    }
}
