//! Actions on the fleets and Services for a decided state: bring up the current
//! revision, switch, keep old fleets warm until their deadline, prune.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::records::Records;
use super::state::State;
use super::world::World;
use super::{Action, Builder, canary, post_promotion, traffic};
use crate::api::validate::parse_duration;
use crate::api::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout, SCALE_DOWN_AT_ANNOTATION};

/// `selector.matchLabels` plus the revision hash: what a Service selects.
pub fn service_selector(rollout: &Rollout, hash: &str) -> BTreeMap<String, String> {
    let mut selector = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    selector.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    selector
}

pub fn replica_set_name(rollout: &Rollout, hash: &str) -> String {
    let name = rollout.metadata.name.as_deref().unwrap_or("rollout");
    format!("{name}-{hash}")
}

/// Validation has already accepted the durations; the fallback keeps this total.
fn delay(value: &str, fallback_secs: i64) -> Duration {
    parse_duration(value)
        .ok()
        .and_then(|d| Duration::from_std(d).ok())
        .unwrap_or(Duration::seconds(fallback_secs))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Which revision the active Service selects once this plan is applied.
pub fn new_active_hash(world: &World, state: &State) -> Option<String> {
    match state {
        State::Switch { .. } => Some(world.target_hash.clone()),
        State::Revert { to } => Some(to.clone()),
        _ => world.active_hash.clone(),
    }
}

pub fn plan(
    rollout: &Rollout,
    world: &World,
    state: &State,
    records: &Records,
    now: DateTime<Utc>,
    out: &mut Builder,
) {
    let spec = &rollout.spec;
    let rb = &spec.strategy.red_black;
    // Traffic first: it leaves the canary before its fleets are deleted.
    traffic::plan(rollout, world, state, records, out);
    let target_up = match state {
        State::Aborted(_) | State::Paused | State::Canary(_) | State::Revert { .. } => false,
        State::ServiceMissing => !spec.paused,
        _ => true,
    };
    if target_up {
        ensure_target(rollout, world, out);
    }

    // The stable fleet follows spec.replicas at once (HPA / kubectl scale).
    if !matches!(state, State::ServiceMissing | State::Switch { .. })
        && let Some(active) = world.active()
        && active.hash != world.target_hash
        && active.size != spec.replicas
    {
        out.scale(&active.name, active.size, spec.replicas);
    }

    let scale_down_delay = delay(&rb.scale_down_delay, 30 * 60);
    let mut stamped: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    if let State::Switch { kind } = state {
        // Every other fleet that is up gets its warm deadline BEFORE the switch,
        // so a crash between the two writes never leaves it without one.
        for fleet in world.fleets.values() {
            let was_live = world.active_hash.as_deref() == Some(fleet.hash.as_str());
            let up_without_deadline = fleet.size > 0 && fleet.scale_down_at.is_none();
            // The fleet leaving traffic always gets a fresh deadline (a stale one
            // from an earlier life must not cut its warm window short).
            if fleet.hash != world.target_hash && (was_live || up_without_deadline) {
                let at = now + scale_down_delay;
                stamped.insert(fleet.hash.clone(), at);
                out.actions.push(Action::AnnotateReplicaSet {
                    name: fleet.name.clone(),
                    set: BTreeMap::from([(SCALE_DOWN_AT_ANNOTATION.to_owned(), stamp(at))]),
                    remove: Vec::new(),
                });
            }
        }
        let revision = world.target_revision();
        out.actions.push(Action::SwitchService {
            service: rb.active_service.clone(),
            hash: world.target_hash.clone(),
            selector: service_selector(rollout, &world.target_hash),
        });
        out.normal(
            "SwitchedTraffic",
            format!(
                "Service {} now selects revision {revision} ({}) [{kind:?}]",
                rb.active_service, world.target_hash
            ),
        );
    }

    if let State::Revert { to } = state {
        revert(rollout, world, to, now, out);
    }

    plan_preview(rollout, world, state, target_up, out);
    canary::plan(rollout, world, state, records, out);
    post_promotion::plan(rollout, world, state, records, out);

    if !matches!(state, State::ServiceMissing) {
        let protected = post_promotion::protected(records, world);
        scale_down_others(rollout, world, state, &stamped, protected, now, out);
        prune(rollout, world, state, out);
    }
}

/// Back to the warm previous fleet `to` in ONE write; the abandoned revision
/// gets its abort deadline first (as an aborted fleet).
fn revert(rollout: &Rollout, world: &World, to: &str, now: DateTime<Utc>, out: &mut Builder) {
    let rb = &rollout.spec.strategy.red_black;
    if let Some(fleet) = world.target() {
        let at = now + delay(&rb.abort_scale_down_delay, 10 * 60);
        out.actions.push(Action::AnnotateReplicaSet {
            name: fleet.name.clone(),
            set: BTreeMap::from([(SCALE_DOWN_AT_ANNOTATION.to_owned(), stamp(at))]),
            remove: Vec::new(),
        });
    }
    if let Some(fleet) = world.fleets.get(to)
        && fleet.scale_down_at.is_some()
    {
        out.actions.push(Action::AnnotateReplicaSet {
            name: fleet.name.clone(),
            set: BTreeMap::new(),
            remove: vec![SCALE_DOWN_AT_ANNOTATION.to_owned()],
        });
    }
    out.actions.push(Action::SwitchService {
        service: rb.active_service.clone(),
        hash: to.to_owned(),
        selector: service_selector(rollout, to),
    });
    out.normal(
        "SwitchedTraffic",
        format!(
            "Service {} selects the previous revision {to} again [PostPromotionAnalysisFailed]",
            rb.active_service
        ),
    );
}

fn ensure_target(rollout: &Rollout, world: &World, out: &mut Builder) {
    let spec = &rollout.spec;
    let hash = &world.target_hash;
    let revision = world.target_revision();
    let Some(fleet) = world.target() else {
        let name = replica_set_name(rollout, hash);
        let mut template: PodTemplateSpec = spec.template.clone();
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels = Some(labels.clone());
        let selector = LabelSelector {
            match_labels: Some(service_selector(rollout, hash)),
            match_expressions: spec.selector.match_expressions.clone(),
        };
        out.actions.push(Action::EnsureReplicaSet {
            name: name.clone(),
            hash: hash.clone(),
            revision,
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Box::new(template),
            labels,
            annotations: BTreeMap::from([(REVISION_ANNOTATION.to_owned(), revision.to_string())]),
        });
        out.normal(
            "ReplicaSetCreated",
            format!(
                "created ReplicaSet {name} for revision {revision} at {} replicas",
                spec.replicas
            ),
        );
        return;
    };
    let mut set = BTreeMap::new();
    if fleet.revision != revision {
        // Reusing an old fleet (undo): it becomes the newest revision, as a
        // Deployment renumbers its ReplicaSet.
        set.insert(REVISION_ANNOTATION.to_owned(), revision.to_string());
    }
    let remove: Vec<String> = fleet
        .scale_down_at
        .map(|_| SCALE_DOWN_AT_ANNOTATION.to_owned())
        .into_iter()
        .collect();
    if !set.is_empty() || !remove.is_empty() {
        out.actions.push(Action::AnnotateReplicaSet {
            name: fleet.name.clone(),
            set,
            remove,
        });
    }
    if fleet.size != spec.replicas {
        out.scale(&fleet.name, fleet.size, spec.replicas);
    }
}

fn plan_preview(
    rollout: &Rollout,
    world: &World,
    state: &State,
    target_up: bool,
    out: &mut Builder,
) {
    let Some(preview) = &rollout.spec.strategy.red_black.preview_service else {
        return;
    };
    if !world.preview_exists {
        return;
    }
    let desired = match state {
        State::Aborted(_) => world.active_hash.clone(),
        _ if target_up || world.target().is_some() => Some(world.target_hash.clone()),
        _ => None,
    };
    if let Some(hash) = desired
        && world.preview_hash.as_ref() != Some(&hash)
    {
        out.actions.push(Action::SwitchService {
            service: preview.clone(),
            selector: service_selector(rollout, &hash),
            hash: hash.clone(),
        });
        out.normal(
            "SwitchedPreview",
            format!("preview Service {preview} now selects {hash}"),
        );
    }
}

fn scale_down_others(
    rollout: &Rollout,
    world: &World,
    state: &State,
    stamped: &BTreeMap<String, DateTime<Utc>>,
    protected: Option<String>,
    now: DateTime<Utc>,
    out: &mut Builder,
) {
    let rb = &rollout.spec.strategy.red_black;
    let new_active = new_active_hash(world, state);
    let abort_delay = delay(&rb.abort_scale_down_delay, 10 * 60);
    let aborted = matches!(state, State::Aborted(_));
    // A canary sharing traffic by replica counts widens the active selector to
    // `matchLabels`, which would select every fleet with pods: earlier warm
    // fleets go first (rollback then means the full red/black of that revision).
    let clear_for_canary = matches!(state, State::Canary(_)) && traffic::by_replicas(rollout);
    // When no revision of ours is pinned (first deploy, or someone rewrote the
    // Service), it may select every fleet by the base labels: scaling any of
    // them down could cut traffic, so nothing is scaled down until the switch.
    if world.active().is_none() && !matches!(state, State::Switch { .. }) {
        return;
    }

    let mut candidates: Vec<_> = world
        .fleets
        .values()
        .filter(|f| Some(&f.hash) != new_active.as_ref())
        // Never in the plan that switches away from it: only once the switch
        // is observed (even with warmRevisions 0), so endpoints move first.
        .filter(|f| Some(&f.hash) != world.active_hash.as_ref())
        // The current revision is protected unless it was abandoned, or is
        // back under a canary (its full fleet, e.g. from an earlier promote,
        // waits for the verdict at zero).
        .filter(|f| f.hash != world.target_hash || aborted || matches!(state, State::Canary(_)))
        .filter(|f| f.size > 0)
        // The previous fleet stays warm until the post-promotion verdict.
        .filter(|f| Some(&f.hash) != protected.as_ref())
        .collect();
    candidates.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.hash.cmp(&b.hash)));

    let mut warm = 0;
    for fleet in candidates {
        let failed = aborted && fleet.hash == world.target_hash;
        let deadline = stamped.get(&fleet.hash).copied().or(fleet.scale_down_at);
        let deadline = match (deadline, failed) {
            (Some(at), _) => Some(at),
            (None, true) => {
                let at = now + abort_delay;
                out.actions.push(Action::AnnotateReplicaSet {
                    name: fleet.name.clone(),
                    set: BTreeMap::from([(SCALE_DOWN_AT_ANNOTATION.to_owned(), stamp(at))]),
                    remove: Vec::new(),
                });
                Some(at)
            }
            (None, false) => None,
        };
        let keep = match deadline {
            _ if clear_for_canary => false,
            Some(at) if at > now => {
                if failed {
                    true
                } else {
                    warm += 1;
                    warm <= rb.warm_revisions
                }
            }
            _ => false,
        };
        if keep {
            if let Some(at) = deadline {
                out.wakeups.push(at);
            }
        } else {
            out.scale(&fleet.name, fleet.size, 0);
        }
    }
}

fn prune(rollout: &Rollout, world: &World, state: &State, out: &mut Builder) {
    let new_active = new_active_hash(world, state);
    let limit = usize::try_from(rollout.spec.revision_history_limit).unwrap_or(0);
    let mut idle: Vec<_> = world
        .fleets
        .values()
        .filter(|f| Some(&f.hash) != new_active.as_ref() && f.hash != world.target_hash)
        .filter(|f| f.size == 0 && f.pods == 0)
        .collect();
    idle.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.hash.cmp(&b.hash)));
    for fleet in idle.into_iter().skip(limit) {
        out.actions.push(Action::DeleteReplicaSet {
            name: fleet.name.clone(),
        });
        out.normal(
            "ReplicaSetPruned",
            format!(
                "deleted ReplicaSet {} (revision {}) beyond revisionHistoryLimit {limit}",
                fleet.name, fleet.revision
            ),
        );
    }
}
