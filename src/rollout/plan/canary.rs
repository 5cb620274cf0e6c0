//! The canary gate: before the full fleet of a new revision is brought up, a
//! canary of it is judged against a fresh baseline of the stable revision.
//! `gate` decides (recording every decision in `status.canary`, so a restart
//! or a deleted CanaryAnalysis never reverses one); `plan` emits the canary's
//! fleets and its analysis. Traffic is `traffic.rs`'s business.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::analysis_spec::{self, ScopeSpec};
use super::operations::Ops;
use super::records::Records;
use super::state::{CanaryStep, State};
use super::world::{Fleet, World};
use super::{Action, AnalysisPhase, Builder, fleets, traffic};
use crate::api::{
    AbortReason, AbortStatus, CanaryPhase, CanaryStatus, CanaryStrategy, MarginalAction,
    POD_TEMPLATE_HASH_LABEL, ROLE_LABEL, ROLLOUT_LABEL, Rollout, RolloutStatus, pod_template_hash,
};

pub const CANARY: &str = "canary";
pub const BASELINE: &str = "baseline";

fn rollout_name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("rollout")
}

/// `<rollout>-<hash>-canary`: the canary of revision `hash`.
pub fn canary_name(rollout: &Rollout, hash: &str) -> String {
    format!("{}-{hash}-canary", rollout_name(rollout))
}

/// `<rollout>-<stable hash>-baseline`: a fresh copy of the stable revision.
pub fn baseline_name(rollout: &Rollout, stable_hash: &str) -> String {
    format!("{}-{stable_hash}-baseline", rollout_name(rollout))
}

/// `<rollout>-<hash>-<attempt>`: the CanaryAnalysis of one attempt.
pub fn analysis_name(rollout: &Rollout, hash: &str, attempt: i32) -> String {
    format!("{}-{hash}-{attempt}", rollout_name(rollout))
}

/// `<rollout>-canary` / `<rollout>-baseline`: the Services of the roles.
pub fn role_service_name(rollout: &Rollout, role: &str) -> String {
    format!("{}-{role}", rollout_name(rollout))
}

pub fn config(rollout: &Rollout) -> Option<&CanaryStrategy> {
    rollout.spec.strategy.red_black.canary.as_ref()
}

/// The pod template of a role's fleet and the hash its pods are labelled
/// with: `base` (without our hash label) plus the role label, hashed as is.
/// The hash differs from the revision's, so no revision Service (which
/// selects `matchLabels` + revision hash) ever selects canary or baseline pods.
pub fn role_template(base: &PodTemplateSpec, role: &str) -> (PodTemplateSpec, String) {
    let mut template = base.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.remove(POD_TEMPLATE_HASH_LABEL);
    labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
    meta.labels = Some(labels.clone());
    let hash = pod_template_hash(&template);
    labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels = Some(labels);
    (template, hash)
}

/// The fleets a canary needs: (name, role, template source). The baseline's
/// template is the stable fleet's (None when that fleet has no template).
pub fn wanted(
    rollout: &Rollout,
    world: &World,
    canary: &CanaryStatus,
) -> Vec<(String, &'static str, Option<PodTemplateSpec>)> {
    let Some(cfg) = config(rollout) else {
        return Vec::new();
    };
    let revision = canary.revision.clone().unwrap_or_default();
    let mut out = vec![(
        canary_name(rollout, &revision),
        CANARY,
        Some(rollout.spec.template.clone()),
    )];
    if cfg.baseline
        && let Some(stable) = &canary.stable_revision
    {
        let template = world.fleets.get(stable).and_then(|f| f.template.clone());
        out.push((baseline_name(rollout, stable), BASELINE, template));
    }
    out
}

/// Canary (and baseline, when on) exist with all their pods available.
pub fn fleets_ready(rollout: &Rollout, world: &World, canary: &CanaryStatus) -> bool {
    let Some(cfg) = config(rollout) else {
        return false;
    };
    let wanted = wanted(rollout, world, canary);
    wanted.len() == 1 + usize::from(cfg.baseline)
        && wanted.iter().all(|(name, _, _)| {
            world
                .role_set(name)
                .is_some_and(|f| f.is_available(cfg.replicas))
        })
}

fn fresh(rollout: &Rollout, world: &World) -> CanaryStatus {
    let revision = world.target_hash.clone();
    CanaryStatus {
        phase: Some(CanaryPhase::Progressing),
        analysis_name: Some(analysis_name(rollout, &revision, 1)),
        revision: Some(revision),
        stable_revision: world.active_hash.clone(),
        attempt: 1,
        ..CanaryStatus::default()
    }
}

/// Decides the canary's step for the current revision. None: the gate is open
/// (passed or promoted by a human), continue with the full fleet. Some(state):
/// hold there (a canary step, or Aborted after a failed verdict or a missed
/// deadline).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gate(
    rollout: &Rollout,
    old: &RolloutStatus,
    world: &World,
    ops: &mut Ops,
    records: &mut Records,
    now: DateTime<Utc>,
    out: &mut Builder,
) -> Option<State> {
    let cfg = config(rollout)?;
    let target = world.target_hash.clone();
    let mut c = match &old.canary {
        Some(c)
            if c.revision.as_deref() == Some(target.as_str())
                && c.stable_revision == world.active_hash =>
        {
            c.clone()
        }
        _ => fresh(rollout, world),
    };
    if ops.retried {
        c.attempt += 1;
        c.phase = Some(CanaryPhase::Progressing);
        c.analysis_name = Some(analysis_name(rollout, &target, c.attempt));
        c.analysis_start = None;
        c.score = None;
        c.message = None;
    }
    let held = matches!(
        c.phase,
        Some(CanaryPhase::Inconclusive | CanaryPhase::Error)
    );
    if ops.approved.as_deref() == Some(target.as_str()) {
        if held {
            // Without evidence a promote would be a blind switch: retry or abort.
            ops.approved = None;
            out.normal(
                "PromoteIgnored",
                format!(
                    "promote of {target} ignored: its analysis was {:?} ({}); retry or abort",
                    c.phase.unwrap_or(CanaryPhase::Error),
                    c.message.clone().unwrap_or_default()
                ),
            );
        } else {
            if !matches!(c.phase, Some(CanaryPhase::Passed | CanaryPhase::Promoted)) {
                c.phase = Some(CanaryPhase::Promoted);
                out.normal(
                    "CanaryPromoted",
                    format!("canary of {target} promoted by hand; the full fleet comes up"),
                );
            }
            records.canary = Some(c);
            return None;
        }
    }
    let step = decide(rollout, cfg, old, world, ops, &mut c, now, out);
    records.last_score = c.score.or(records.last_score);
    records.canary = Some(c);
    step
}

#[allow(clippy::too_many_arguments)]
fn decide(
    rollout: &Rollout,
    cfg: &CanaryStrategy,
    old: &RolloutStatus,
    world: &World,
    ops: &mut Ops,
    c: &mut CanaryStatus,
    now: DateTime<Utc>,
    out: &mut Builder,
) -> Option<State> {
    let target = world.target_hash.clone();
    match c.phase {
        Some(CanaryPhase::Passed | CanaryPhase::Promoted) => return None,
        Some(CanaryPhase::Failed) => return Some(fail(world, ops, c, now, out)),
        Some(phase @ (CanaryPhase::Marginal | CanaryPhase::Inconclusive | CanaryPhase::Error)) => {
            return Some(State::Canary(CanaryStep::Held(phase)));
        }
        Some(CanaryPhase::Analysing) => {}
        Some(CanaryPhase::Progressing) | None => {
            if !fleets_ready(rollout, world, c) {
                let started_at = match (old.current_revision.as_deref(), old.progress_started_at) {
                    (Some(current), Some(started)) if current == target && !ops.retried => started,
                    _ => now,
                };
                let deadline = started_at
                    + Duration::seconds(i64::from(rollout.spec.progress_deadline_seconds));
                if now >= deadline {
                    let abort = AbortStatus {
                        revision: target,
                        reason: AbortReason::ProgressDeadlineExceeded,
                        at: now,
                    };
                    ops.abort = Some(abort.clone());
                    return Some(State::Aborted(abort));
                }
                c.phase = Some(CanaryPhase::Progressing);
                return Some(State::Canary(CanaryStep::Progressing {
                    started_at,
                    deadline,
                }));
            }
            c.phase = Some(CanaryPhase::Analysing);
        }
    }
    // Analysing: the window starts when traffic does.
    if c.analysis_start.is_none() {
        if traffic::can_flow(rollout, world, c) {
            c.analysis_start = Some(now);
            out.normal(
                "CanaryTrafficStarted",
                format!(
                    "canary of {target} and its baseline receive traffic; analysis {} starts",
                    c.analysis_name.clone().unwrap_or_default()
                ),
            );
        }
        return Some(State::Canary(CanaryStep::Analysing));
    }
    let name = c.analysis_name.clone().unwrap_or_default();
    let Some(analysis) = world.analysis(&name) else {
        return Some(State::Canary(CanaryStep::Analysing));
    };
    c.score = analysis.score.or(c.score);
    c.message = analysis.message.clone();
    let report = format!("`redblack report {name}`");
    let score = c.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
    match analysis.phase {
        AnalysisPhase::Pending | AnalysisPhase::Running => {
            c.message = None;
            Some(State::Canary(CanaryStep::Analysing))
        }
        AnalysisPhase::Passed => {
            c.phase = Some(CanaryPhase::Passed);
            out.normal(
                "CanaryPassed",
                format!("canary of {target} passed with score {score}; bringing up the full fleet ({report})"),
            );
            None
        }
        AnalysisPhase::Marginal => {
            match cfg.marginal {
                MarginalAction::Fail => Some(fail(world, ops, c, now, out)),
                MarginalAction::Extend if !c.extended => {
                    c.extended = true;
                    c.attempt += 1;
                    c.analysis_name = Some(analysis_name(rollout, &target, c.attempt));
                    c.analysis_start = traffic::can_flow(rollout, world, c).then_some(now);
                    c.message = None;
                    out.normal(
                    "CanaryExtended",
                    format!("canary of {target} was marginal (score {score}); judging once more as {}", c.analysis_name.clone().unwrap_or_default()),
                );
                    Some(State::Canary(CanaryStep::Analysing))
                }
                MarginalAction::Pause | MarginalAction::Extend => {
                    c.phase = Some(CanaryPhase::Marginal);
                    out.warning(
                    "CanaryMarginal",
                    format!("canary of {target} is marginal (score {score}); promote to accept, abort, or retry ({report})"),
                );
                    Some(State::Canary(CanaryStep::Held(CanaryPhase::Marginal)))
                }
            }
        }
        AnalysisPhase::Failed => Some(fail(world, ops, c, now, out)),
        AnalysisPhase::Inconclusive | AnalysisPhase::Error => {
            let phase = if analysis.phase == AnalysisPhase::Error {
                CanaryPhase::Error
            } else {
                CanaryPhase::Inconclusive
            };
            c.phase = Some(phase);
            out.warning(
                &format!("Canary{phase:?}"),
                format!(
                    "analysis {name} of {target} is {phase:?}: {}; the canary is held (retry or abort)",
                    c.message.clone().unwrap_or_default()
                ),
            );
            Some(State::Canary(CanaryStep::Held(phase)))
        }
    }
}

/// A failed verdict: the revision is abandoned (traffic back to stable,
/// canary and baseline removed by the Aborted state's actions).
fn fail(
    world: &World,
    ops: &mut Ops,
    c: &mut CanaryStatus,
    now: DateTime<Utc>,
    out: &mut Builder,
) -> State {
    let target = world.target_hash.clone();
    let first = c.phase != Some(CanaryPhase::Failed);
    c.phase = Some(CanaryPhase::Failed);
    let abort = match &ops.abort {
        Some(a) if a.revision == target => a.clone(),
        _ => AbortStatus {
            revision: target.clone(),
            reason: AbortReason::AnalysisFailed,
            at: now,
        },
    };
    ops.abort = Some(abort.clone());
    ops.approved = None;
    if first {
        let name = c.analysis_name.clone().unwrap_or_default();
        let score = c.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
        out.warning(
            "CanaryFailed",
            format!("canary of {target} failed with score {score}; traffic is back on the stable revision; see `redblack report {name}`"),
        );
    }
    State::Aborted(abort)
}

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
    let spec = analysis_spec::build(
        cfg.analysis.inline.as_ref(),
        experiment,
        control,
        start,
        None,
    );
    out.actions.push(Action::EnsureCanaryAnalysis {
        name: name.clone(),
        labels: analysis_labels(rollout, &revision),
        spec,
    });
    out.normal(
        "AnalysisCreated",
        format!("created CanaryAnalysis {name} for the canary of {revision}"),
    );
}

pub fn analysis_labels(rollout: &Rollout, revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ROLLOUT_LABEL.to_owned(), rollout_name(rollout).to_owned()),
        (POD_TEMPLATE_HASH_LABEL.to_owned(), revision.to_owned()),
    ])
}
