//! Actions on the revision fleets and the Services for a decided state, in
//! the steps `plan()` calls in order: bring up the current revision,
//! switch (or revert), point the preview Service, then retire the others
//! (keep old fleets warm until their deadline, scale down, prune).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::action::Action;
use super::builder::Builder;
use super::ctx::Ctx;
use super::names::{replica_set_name, service_selector};
use super::state::{Decision, State, new_active_hash};
use super::world::Fleet;
use crate::api::validate::parse_duration;
use crate::api::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, SCALE_DOWN_AT_ANNOTATION};

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

/// The scale-down deadlines this plan wrote (by hash), so that retiring in
/// the same plan honours them before they are observed.
pub type Stamped = BTreeMap<String, DateTime<Utc>>;

/// Whether the current revision's full fleet should be up in this state.
fn target_up(ctx: &Ctx, state: &State) -> bool {
    match state {
        State::Aborted(_) | State::Paused | State::Canary(_) | State::Revert { .. } => false,
        State::ServiceMissing => !ctx.spec().paused,
        _ => true,
    }
}

/// The current revision's fleet up (when its state wants it), and the stable
/// fleet at `spec.replicas` at once (HPA / kubectl scale).
pub fn bring_up(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    let (world, state) = (ctx.world, &decision.state);
    if target_up(ctx, state) {
        ensure_target(ctx, decision.target_size, out);
    }
    let replicas = ctx.spec().replicas;
    if !matches!(state, State::ServiceMissing | State::Switch { .. })
        && let Some(active) = world.active()
        && active.hash != world.target_hash
        && active.size != replicas
    {
        out.scale(&active.name, active.size, replicas);
    }
}

/// The switch of the active Service (a promotion, first deploy or rollback),
/// or the revert after a failed post-promotion analysis. Returns the warm
/// deadlines it wrote.
pub fn switch(ctx: &Ctx, decision: &Decision, out: &mut Builder) -> Stamped {
    let mut stamped = Stamped::new();
    match &decision.state {
        State::Switch { kind } => {
            stamped = stamp_leaving(ctx, out);
            let world = ctx.world;
            let service = &ctx.spec().strategy.red_black.active_service;
            let revision = world.target_revision();
            out.actions.push(Action::SwitchService {
                service: service.clone(),
                hash: world.target_hash.clone(),
                selector: service_selector(ctx.rollout, &world.target_hash),
            });
            out.normal(
                "SwitchedTraffic",
                format!(
                    "Service {service} now selects revision {revision} ({}) [{kind:?}]",
                    world.target_hash
                ),
            );
        }
        State::Revert { to } => revert(ctx, decision, to, out),
        _ => {}
    }
    stamped
}

/// Every other fleet that is up gets its warm deadline BEFORE the switch, so
/// a crash between the two writes never leaves it without one.
fn stamp_leaving(ctx: &Ctx, out: &mut Builder) -> Stamped {
    let world = ctx.world;
    let rb = &ctx.spec().strategy.red_black;
    let at = ctx.now + delay(&rb.scale_down_delay, 30 * 60);
    let mut stamped = Stamped::new();
    for fleet in world.fleets.values() {
        let was_live = world.active_hash.as_deref() == Some(fleet.hash.as_str());
        let up_without_deadline = fleet.size > 0 && fleet.scale_down_at.is_none();
        // The fleet leaving traffic always gets a fresh deadline (a stale one
        // from an earlier life must not cut its warm window short).
        if fleet.hash != world.target_hash && (was_live || up_without_deadline) {
            stamped.insert(fleet.hash.clone(), at);
            out.actions.push(Action::AnnotateReplicaSet {
                name: fleet.name.clone(),
                set: BTreeMap::from([(SCALE_DOWN_AT_ANNOTATION.to_owned(), stamp(at))]),
                remove: Vec::new(),
            });
        }
    }
    stamped
}

/// Old fleets down once their warm deadline passed (beyond `warmRevisions`),
/// and idle fleets beyond `revisionHistoryLimit` deleted. Nothing while the
/// active Service is missing: we cannot know what serves traffic.
pub fn retire(ctx: &Ctx, decision: &Decision, stamped: &Stamped, out: &mut Builder) {
    if matches!(decision.state, State::ServiceMissing) {
        return;
    }
    scale_down_others(ctx, decision, stamped, out);
    prune(ctx, &decision.state, out);
}

/// Back to the warm previous fleet `to` in ONE write; the abandoned revision
/// gets its abort deadline first (as an aborted fleet).
fn revert(ctx: &Ctx, decision: &Decision, to: &str, out: &mut Builder) {
    let (rollout, world, now) = (ctx.rollout, ctx.world, ctx.now);
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
    // Why: a failed `AfterSwitch` gate, or the post-promotion analysis.
    let why = decision
        .ops
        .abort
        .as_ref()
        .map_or(crate::api::AbortReason::PostPromotionAnalysisFailed, |a| {
            a.reason
        });
    out.normal(
        "SwitchedTraffic",
        format!(
            "Service {} selects the previous revision {to} again [{why:?}]",
            rb.active_service
        ),
    );
}

/// The current revision's fleet: created, or reused (undo) and scaled.
fn ensure_target(ctx: &Ctx, size: i32, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
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
        // Born with its role's pod metadata (the first deploy's is live).
        if let Some(meta) = super::pod_metadata::wanted(ctx, hash, world.active_hash.as_deref()) {
            let m = template.metadata.get_or_insert_with(Default::default);
            m.labels
                .get_or_insert_with(Default::default)
                .extend(meta.labels.clone());
            if !meta.annotations.is_empty() {
                m.annotations
                    .get_or_insert_with(Default::default)
                    .extend(meta.annotations.clone());
            }
        }
        if let (Some(rule), Some(live)) = (&spec.strategy.red_black.anti_affinity, world.active())
            && live.hash != *hash
        {
            crate::api::anti_affinity::inject(
                &mut template,
                rule,
                service_selector(rollout, &live.hash),
            );
        }
        let selector = LabelSelector {
            match_labels: Some(service_selector(rollout, hash)),
            match_expressions: spec.selector.match_expressions.clone(),
        };
        out.actions.push(Action::EnsureReplicaSet {
            name: name.clone(),
            hash: hash.clone(),
            revision,
            replicas: size,
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Box::new(template),
            labels,
            annotations: BTreeMap::from([(REVISION_ANNOTATION.to_owned(), revision.to_string())]),
        });
        out.normal(
            "ReplicaSetCreated",
            format!("created ReplicaSet {name} for revision {revision} at {size} replicas"),
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
    if fleet.size != size {
        out.scale(&fleet.name, fleet.size, size);
    }
}

/// The preview Service selects the revision being brought up (or, after an
/// abort, the active one again).
pub fn preview(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    let (rollout, world, state) = (ctx.rollout, ctx.world, &decision.state);
    let target_up = target_up(ctx, state);
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

fn scale_down_others(ctx: &Ctx, decision: &Decision, stamped: &Stamped, out: &mut Builder) {
    let (world, now, state) = (ctx.world, ctx.now, &decision.state);
    let rb = &ctx.spec().strategy.red_black;
    let abort_delay = delay(&rb.abort_scale_down_delay, 10 * 60);
    let aborted = matches!(state, State::Aborted(_));
    // A canary sharing traffic by replica counts widens the active selector to
    // `matchLabels`, which would select every fleet with pods: earlier warm
    // fleets go first (rollback then means the full red/black of that revision).
    let clear_for_canary = matches!(state, State::Canary(_)) && ctx.by_replicas();
    // When no revision of ours is pinned (first deploy, or someone rewrote the
    // Service), it may select every fleet by the base labels: scaling any of
    // them down could cut traffic, so nothing is scaled down until the switch.
    if world.active().is_none() && !matches!(state, State::Switch { .. }) {
        return;
    }

    let mut warm = 0;
    for fleet in candidates(ctx, decision) {
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

/// The fleets with pods that may be scaled down, newest first.
fn candidates<'a>(ctx: &Ctx<'a>, decision: &Decision) -> Vec<&'a Fleet> {
    let (world, state) = (ctx.world, &decision.state);
    let new_active = new_active_hash(world, state);
    let aborted = matches!(state, State::Aborted(_));
    // The previous fleet stays warm until the post-promotion verdict.
    let protected = decision.records.protected(&world.target_hash);
    let mut candidates: Vec<&Fleet> = world
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
        .filter(|f| Some(&f.hash) != protected.as_ref())
        .collect();
    candidates.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.hash.cmp(&b.hash)));
    candidates
}

fn prune(ctx: &Ctx, state: &State, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
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
