//! Canary actions for a decided state: its fleets (ensured while judging,
//! deleted otherwise) and the CanaryAnalysis of the current attempt.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::super::action::Action;
use super::super::analysis_spec::{self, ScopeSpec};
use super::super::builder::Builder;
use super::super::ctx::Ctx;
use super::super::names::{
    BASELINE, CANARY, analysis_labels, baseline_name, canary_name, replica_set_name, role_selector,
    role_template,
};
use super::super::state::{CanaryStep, Decision, State};
use super::super::world::{Fleet, RoleFleet};
use crate::api::{CanaryStatus, CanaryStrategy, Rollout};

/// Fleets and analysis of the canary for the decided state: ensure them while
/// judging, delete them (after traffic left them: `plan()` runs the traffic
/// step first) otherwise. Paused and a missing Service leave them alone.
pub fn act(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    let (world, state) = (ctx.world, &decision.state);
    let keep_all = matches!(state, State::Paused | State::ServiceMissing);
    let judging = matches!(state, State::Canary(_));
    let canary = decision.records.canary.as_ref().filter(|_| judging);
    let wanted = canary
        .map(|c| world.canary_fleets(ctx.rollout, c))
        .unwrap_or_default();
    if let (Some(c), Some(cfg)) = (canary, ctx.canary()) {
        for fleet in &wanted {
            ensure(ctx, cfg, c, fleet, out);
        }
        if matches!(state, State::Canary(CanaryStep::Analysing)) {
            ensure_analysis(ctx, c, out);
        }
    }
    if keep_all {
        return;
    }
    for fleet in world.role_sets.values() {
        if !wanted.iter().any(|w| w.name == fleet.name) {
            out.actions.push(Action::DeleteReplicaSet {
                name: fleet.name.clone(),
            });
            out.normal(
                "ReplicaSetDeleted",
                format!(
                    "deleted {} ReplicaSet {}",
                    fleet.role.clone().unwrap_or_default(),
                    fleet.name
                ),
            );
        }
    }
}

/// One fleet of canary `c`: created from its template, or scaled to size.
fn ensure(
    ctx: &Ctx,
    cfg: &CanaryStrategy,
    c: &CanaryStatus,
    wanted: &RoleFleet,
    out: &mut Builder,
) {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let (name, role) = (wanted.name.as_str(), wanted.role);
    if let Some(fleet) = world.role_set(name) {
        if fleet.size != cfg.replicas {
            out.scale(name, fleet.size, cfg.replicas);
        }
        return;
    }
    let Some(base) = &wanted.template else {
        return;
    };
    let (template, hash) = role_template(base, role);
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let match_labels = role_selector(rollout, role, &hash);
    out.actions.push(Action::EnsureReplicaSet {
        name: name.to_owned(),
        hash,
        revision: world.target_revision(),
        replicas: cfg.replicas,
        min_ready_seconds: rollout.spec.min_ready_seconds,
        selector: LabelSelector {
            match_labels: Some(match_labels),
            match_expressions: rollout.spec.selector.match_expressions.clone(),
        },
        template: Box::new(template),
        labels,
        // No revision annotation: a role fleet is not a revision (undo and
        // revision numbering ignore it).
        annotations: BTreeMap::new(),
    });
    out.normal(
        "ReplicaSetCreated",
        format!(
            "created {role} ReplicaSet {name} ({} replicas) for the canary of {}",
            cfg.replicas,
            c.revision.clone().unwrap_or_default()
        ),
    );
}

fn scope(
    rollout: &Rollout,
    fleet: Option<&Fleet>,
    name: &str,
    revision: &str,
    role: &str,
) -> ScopeSpec {
    let mut variables = BTreeMap::new();
    if let Some(f) = fleet {
        // What the pods are labelled with (differs from the revision for roles).
        variables.insert("podTemplateHash".to_owned(), f.hash.clone());
    }
    ScopeSpec {
        namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
        replica_set: name.to_owned(),
        revision: revision.to_owned(),
        role: role.to_owned(),
        variables,
    }
}

/// The CanaryAnalysis of the current attempt, once traffic can flow (its
/// window starts now; the traffic itself follows once it is observed). Not
/// while the API refuses it (`CanaryStep::AnalysisRefused`: not Analysing).
fn ensure_analysis(ctx: &Ctx, c: &CanaryStatus, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let (Some(name), Some(start), Some(cfg)) =
        (c.analysis_name.as_ref(), c.analysis_start, ctx.canary())
    else {
        return;
    };
    if world.analysis(name).is_some() {
        return;
    }
    let revision = c.revision.clone().unwrap_or_default();
    let stable = c.stable_revision.clone().unwrap_or_default();
    let canary = canary_name(rollout, &revision);
    let experiment = scope(rollout, world.role_set(&canary), &canary, &revision, CANARY);
    let control = if cfg.baseline {
        let baseline = baseline_name(rollout, &stable);
        scope(
            rollout,
            world.role_set(&baseline),
            &baseline,
            &stable,
            BASELINE,
        )
    } else {
        let stable_rs = replica_set_name(rollout, &stable);
        scope(
            rollout,
            world.fleets.get(&stable),
            &stable_rs,
            &stable,
            "stable",
        )
    };
    // The gate holds the canary when this fails; nothing to create then.
    let Ok(source) =
        analysis_spec::resolve_canary(rollout, &world.analysis_templates, &cfg.analysis)
    else {
        return;
    };
    let spec = analysis_spec::build(Some(source.body), experiment, control, start, None);
    out.actions.push(Action::EnsureCanaryAnalysis {
        name: name.clone(),
        labels: analysis_labels(rollout, &revision, source.template),
        spec,
    });
    let from = source
        .template
        .map(|t| format!(" from CanaryAnalysisTemplate {t}"))
        .unwrap_or_default();
    out.normal(
        "AnalysisCreated",
        format!("created CanaryAnalysis {name}{from} for the canary of {revision}"),
    );
}
