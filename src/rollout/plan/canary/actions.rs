//! Canary actions for a decided state: its fleets (ensured while judging,
//! deleted otherwise) and the CanaryAnalysis of the current attempt.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::super::analysis_spec::{self, CANARY_FIELD, ScopeSpec};
use super::super::records::Records;
use super::super::state::{CanaryStep, State};
use super::super::world::{Fleet, World};
use super::super::{Action, Builder, fleets};
use super::{
    BASELINE, CANARY, analysis_labels, baseline_name, canary_name, config, role_template, wanted,
};
use crate::api::{CanaryStatus, CanaryStrategy, POD_TEMPLATE_HASH_LABEL, ROLE_LABEL, Rollout};

/// Fleets and analysis of the canary for the decided state: ensure them while
/// judging, delete them (after traffic left them: `traffic::plan` runs first)
/// otherwise. Paused and a missing Service leave them alone.
pub fn plan(rollout: &Rollout, world: &World, state: &State, records: &Records, out: &mut Builder) {
    let keep_all = matches!(state, State::Paused | State::ServiceMissing);
    let judging = matches!(state, State::Canary(_));
    let canary = records.canary.as_ref().filter(|_| judging);
    let wanted = canary
        .map(|c| wanted(rollout, world, c))
        .unwrap_or_default();
    if let (Some(c), Some(cfg)) = (canary, config(rollout)) {
        for (name, role, base) in &wanted {
            ensure(rollout, world, cfg, c, name, role, base.as_ref(), out);
        }
        if matches!(state, State::Canary(CanaryStep::Analysing)) {
            ensure_analysis(rollout, world, c, out);
        }
    }
    if keep_all {
        return;
    }
    for fleet in world.role_sets.values() {
        if !wanted.iter().any(|(name, _, _)| *name == fleet.name) {
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

#[allow(clippy::too_many_arguments)]
fn ensure(
    rollout: &Rollout,
    world: &World,
    cfg: &CanaryStrategy,
    c: &CanaryStatus,
    name: &str,
    role: &str,
    base: Option<&PodTemplateSpec>,
    out: &mut Builder,
) {
    if let Some(fleet) = world.role_set(name) {
        if fleet.size != cfg.replicas {
            out.scale(name, fleet.size, cfg.replicas);
        }
        return;
    }
    let Some(base) = base else {
        return;
    };
    let (template, hash) = role_template(base, role);
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut match_labels = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    match_labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    match_labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
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

fn ensure_analysis(rollout: &Rollout, world: &World, c: &CanaryStatus, out: &mut Builder) {
    let (Some(name), Some(start), Some(cfg)) =
        (c.analysis_name.as_ref(), c.analysis_start, config(rollout))
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
        let stable_rs = fleets::replica_set_name(rollout, &stable);
        scope(
            rollout,
            world.fleets.get(&stable),
            &stable_rs,
            &stable,
            "stable",
        )
    };
    // The gate holds the canary when this fails; nothing to create then.
    let Ok(source) = analysis_spec::resolve(
        rollout,
        &world.analysis_templates,
        &cfg.analysis,
        CANARY_FIELD,
        false,
    ) else {
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
