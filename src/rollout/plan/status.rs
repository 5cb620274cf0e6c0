//! The status a plan writes: phase, conditions, counters and history, all
//! functions of the old status, the state and the observed world, so that
//! re-planning an unchanged world yields an identical status.

use chrono::{DateTime, Utc};

use super::Builder;
use super::analysis_spec::AnalysisProblem;
use super::fleets::{new_active_hash, service_selector};
use super::history;
use super::operations::Ops;
use super::records::Records;
use super::state::{CanaryStep, State};
use super::traffic;

mod canary;
use super::world::World;
use crate::api::conditions::{self, Desired};
use crate::api::{AbortReason, ConditionStatus, Phase, Rollout, RolloutStatus, SpecError};
use canary::canary_phase;

use ConditionStatus::{False, True, Unknown};

fn selector_string(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Counters and selectors describe the fleet the active Service selects, so an
/// HPA driving the scale subresource sees one fleet, not old + new.
fn fill_counters(
    rollout: &Rollout,
    world: &World,
    active: Option<&str>,
    status: &mut RolloutStatus,
) {
    let fleet = active.and_then(|h| world.fleets.get(h));
    status.replicas = fleet.map_or(0, |f| f.pods);
    status.ready_replicas = fleet.map_or(0, |f| f.ready);
    status.available_replicas = fleet.map_or(0, |f| f.available);
    status.updated_replicas = world.target().map_or(0, |f| f.pods);
    let labels = match active {
        Some(hash) => service_selector(rollout, hash),
        None => rollout
            .spec
            .selector
            .match_labels
            .clone()
            .unwrap_or_default(),
    };
    status.selector = Some(selector_string(&labels));
    status.active_selector = active.map(|h| selector_string(&service_selector(rollout, h)));
}

pub fn invalid(
    rollout: &Rollout,
    old: &RolloutStatus,
    world: &World,
    errors: &[SpecError],
    now: DateTime<Utc>,
    out: &mut Builder,
) -> RolloutStatus {
    let mut status = old.clone();
    status.observed_generation = rollout.metadata.generation;
    status.phase = Some(Phase::InvalidSpec);
    fill_counters(rollout, world, world.active_hash.as_deref(), &mut status);
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    status.conditions = conditions::merge(
        &old.conditions,
        vec![
            Desired::new(
                conditions::INVALID_SPEC,
                True,
                "InvalidSpec",
                message.clone(),
            ),
            Desired::new(
                conditions::READY,
                False,
                "InvalidSpec",
                "the spec is invalid; nothing is changed until it is fixed",
            ),
            Desired::new(conditions::STALLED, True, "InvalidSpec", message.clone()),
        ],
        rollout.metadata.generation,
        now,
    );
    if old.phase != Some(Phase::InvalidSpec) {
        out.warning("InvalidSpec", message);
    }
    status
}

/// A Warning Event when an analysis becomes unavailable (or its problem
/// changes), not on every re-plan.
fn warn_analysis_unavailable(
    old: &RolloutStatus,
    state: &State,
    desired: &[Desired],
    out: &mut Builder,
) {
    let (State::AnalysisUnavailable(problem)
    | State::Canary(CanaryStep::AnalysisUnavailable(problem))) = state
    else {
        return;
    };
    let Some(now) = desired.iter().find(|d| d.type_ == conditions::PROGRESSING) else {
        return;
    };
    let before = conditions::find(&old.conditions, conditions::PROGRESSING);
    if before.is_none_or(|c| c.reason != now.reason || c.message != now.message) {
        out.warning(problem.reason(), now.message.clone());
    }
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    rollout: &Rollout,
    old: &RolloutStatus,
    world: &World,
    state: &State,
    ops: &Ops,
    records: &Records,
    now: DateTime<Utc>,
    out: &mut Builder,
) -> RolloutStatus {
    let spec = &rollout.spec;
    let target = world.target_hash.clone();
    let revision = world.target_revision();
    let active = if world.service_missing {
        old.stable_revision.clone()
    } else {
        new_active_hash(world, state)
    };
    let mut status = RolloutStatus {
        phase: None,
        observed_generation: rollout.metadata.generation,
        stable_revision: active.clone(),
        current_revision: Some(target.clone()),
        progress_started_at: match state {
            State::Progressing { started_at, .. }
            | State::Canary(CanaryStep::Progressing { started_at, .. }) => Some(*started_at),
            _ => None,
        },
        abort: ops.abort.clone(),
        approved_revision: ops.approved.clone(),
        operations: ops.consumed.clone(),
        canary: records.canary.clone().map(|mut c| {
            c.traffic_percent = traffic::share_after(rollout, world, state, records);
            c
        }),
        post_promotion: records.post_promotion.clone(),
        last_score: records.last_score,
        history: old.history.clone(),
        ..RolloutStatus::default()
    };
    fill_counters(rollout, world, active.as_deref(), &mut status);
    history::record(
        old,
        world,
        ops,
        records,
        &mut status,
        revision,
        now,
        rollout,
    );

    let fleet_available = |hash: Option<&str>| {
        hash.and_then(|h| world.fleets.get(h))
            .is_some_and(|f| f.is_available(spec.replicas))
    };
    let active_available = fleet_available(active.as_deref());
    let what = format!("revision {revision} ({target})");
    let mut desired = vec![if active_available {
        Desired::new(
            conditions::AVAILABLE,
            True,
            "MinimumReplicasAvailable",
            "the active fleet has all replicas available",
        )
    } else {
        Desired::new(
            conditions::AVAILABLE,
            False,
            "MinimumReplicasUnavailable",
            "the active fleet does not have all replicas available",
        )
    }];
    if spec.paused {
        desired.push(Desired::new(
            conditions::PAUSED,
            True,
            "SpecPaused",
            "spec.paused is true",
        ));
    }
    if let Some(preview) = &spec.strategy.red_black.preview_service
        && !world.preview_exists
    {
        desired.push(Desired::new(
            conditions::PREVIEW_SERVICE_MISSING,
            True,
            "PreviewServiceNotFound",
            format!("preview Service {preview} not found; create it or remove previewService"),
        ));
    }
    let phase = match state {
        // `invalid()` builds this status; kept total for the type's sake.
        State::InvalidSpec => {
            let msg = "the spec is invalid; nothing is changed until it is fixed";
            desired.push(Desired::new(conditions::READY, False, "InvalidSpec", msg));
            desired.push(Desired::new(conditions::STALLED, True, "InvalidSpec", msg));
            Phase::InvalidSpec
        }
        State::ServiceMissing => {
            let msg = format!(
                "Service {} not found; create it (the operator only switches its selector)",
                spec.strategy.red_black.active_service
            );
            desired.push(Desired::new(
                conditions::READY,
                False,
                "ActiveServiceNotFound",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::STALLED,
                True,
                "ActiveServiceNotFound",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::PROGRESSING,
                False,
                "ActiveServiceNotFound",
                msg,
            ));
            Phase::Degraded
        }
        State::Canary(step) => canary_phase(step, records, &what, &mut desired, out),
        State::AwaitingWindow { opens_at } => {
            if let Some(at) = opens_at {
                out.wakeups.push(*at);
            }
            let when = opens_at.map_or("no window opens in the next week".to_owned(), |t| {
                format!("the next promotion window opens at {}", t.to_rfc3339())
            });
            let msg = format!("{what} is available and waits for a promotion window: {when}");
            desired.push(Desired::new(
                conditions::PROGRESSING,
                True,
                "OutsidePromotionWindow",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::READY,
                False,
                "OutsidePromotionWindow",
                msg,
            ));
            Phase::Paused
        }
        State::Revert { to } => {
            let msg = format!(
                "{what} failed its post-promotion analysis; traffic is switched back to {to}"
            );
            desired.push(Desired::new(
                conditions::PROGRESSING,
                False,
                "PostPromotionAnalysisFailed",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::READY,
                False,
                "PostPromotionAnalysisFailed",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::STALLED,
                True,
                "PostPromotionAnalysisFailed",
                msg,
            ));
            Phase::Degraded
        }
        State::Steady | State::Switch { .. } => {
            let live = matches!(state, State::Switch { .. }) || fleet_available(Some(&target));
            desired.push(Desired::new(
                conditions::PROGRESSING,
                True,
                "NewReplicaSetAvailable",
                format!("{what} is live"),
            ));
            if live {
                desired.push(Desired::new(
                    conditions::READY,
                    True,
                    "RolloutHealthy",
                    format!("{what} is live and available"),
                ));
            } else {
                let msg = format!("{what} is live but not all replicas are available");
                desired.push(Desired::new(
                    conditions::READY,
                    False,
                    "ScalingActiveFleet",
                    msg.clone(),
                ));
                desired.push(Desired::new(
                    conditions::RECONCILING,
                    True,
                    "ScalingActiveFleet",
                    msg,
                ));
            }
            match (spec.paused, live) {
                (true, _) => Phase::Paused,
                (false, true) => Phase::Healthy,
                (false, false) => Phase::Progressing,
            }
        }
        State::Aborted(abort) => {
            let (reason, msg, phase) = match abort.reason {
                AbortReason::User => (
                    "RolloutAborted",
                    format!(
                        "{what} was aborted; traffic stays on the stable revision; retry or apply a new template"
                    ),
                    Phase::Aborted,
                ),
                AbortReason::ProgressDeadlineExceeded => (
                    "ProgressDeadlineExceeded",
                    format!(
                        "{what} was not available within {}s; traffic stays on the stable revision; fix the template or retry",
                        spec.progress_deadline_seconds
                    ),
                    Phase::Degraded,
                ),
                AbortReason::AnalysisFailed => {
                    let c = records.canary.as_ref();
                    let name = c.and_then(|c| c.analysis_name.clone()).unwrap_or_default();
                    let score = c
                        .and_then(|c| c.score)
                        .map_or("none".to_owned(), |s| format!("{s:.1}"));
                    (
                        "CanaryFailed",
                        format!(
                            "the canary of {what} failed its analysis (score {score}); traffic is on the stable revision; see `redblack report {name}`; retry or apply a new template"
                        ),
                        Phase::Degraded,
                    )
                }
                AbortReason::PostPromotionAnalysisFailed => {
                    let p = records.post_promotion.as_ref();
                    let name = p.map(|p| p.analysis_name.clone()).unwrap_or_default();
                    let score = p
                        .and_then(|p| p.score)
                        .map_or("none".to_owned(), |s| format!("{s:.1}"));
                    (
                        "PostPromotionAnalysisFailed",
                        format!(
                            "{what} failed its post-promotion analysis (score {score}) and was rolled back; see `redblack report {name}`"
                        ),
                        Phase::Degraded,
                    )
                }
            };
            desired.push(Desired::new(
                conditions::PROGRESSING,
                False,
                reason,
                msg.clone(),
            ));
            desired.push(Desired::new(conditions::READY, False, reason, msg.clone()));
            desired.push(Desired::new(conditions::STALLED, True, reason, msg));
            phase
        }
        State::Paused => {
            desired.push(Desired::new(
                conditions::PROGRESSING,
                Unknown,
                "RolloutPaused",
                format!("{what} waits: spec.paused is true"),
            ));
            desired.push(Desired::new(
                conditions::READY,
                False,
                "RolloutPaused",
                format!("{what} is not live; the rollout is paused"),
            ));
            Phase::Paused
        }
        State::Progressing { deadline, .. } => {
            out.wakeups.push(*deadline);
            let msg = format!("{what} is being brought up");
            desired.push(Desired::new(
                conditions::PROGRESSING,
                True,
                "ReplicaSetUpdated",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::READY,
                False,
                "RevisionProgressing",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::RECONCILING,
                True,
                "RevisionProgressing",
                msg,
            ));
            Phase::Progressing
        }
        State::AnalysisUnavailable(problem) => {
            let msg = format!(
                "{what} is available but is not switched to, its post-promotion analysis cannot be created: {problem}; {}",
                problem.fix()
            );
            let invalid = matches!(problem, AnalysisProblem::Invalid { .. });
            desired.push(Desired::new(
                conditions::PROGRESSING,
                if invalid { False } else { True },
                problem.reason(),
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::READY,
                False,
                problem.reason(),
                msg.clone(),
            ));
            desired.push(Desired::new(
                if invalid {
                    conditions::STALLED
                } else {
                    conditions::RECONCILING
                },
                True,
                problem.reason(),
                msg,
            ));
            if invalid {
                Phase::Degraded
            } else {
                Phase::Progressing
            }
        }
        State::AwaitingPromotion => {
            let msg = format!("{what} is available; run `redblack promote` to switch traffic");
            desired.push(Desired::new(
                conditions::PROGRESSING,
                True,
                "AwaitingPromotion",
                msg.clone(),
            ));
            desired.push(Desired::new(
                conditions::READY,
                False,
                "AwaitingPromotion",
                msg,
            ));
            Phase::Paused
        }
    };
    status.phase = Some(phase);
    warn_analysis_unavailable(old, state, &desired, out);
    status.conditions =
        conditions::merge(&old.conditions, desired, rollout.metadata.generation, now);
    if old.phase != Some(phase) {
        let message = format!("phase {phase:?}: {what}");
        match phase {
            Phase::Degraded | Phase::Aborted | Phase::InvalidSpec => {
                out.warning(&format!("{phase:?}"), message)
            }
            _ => out.normal(&format!("{phase:?}"), message),
        }
    }
    status
}
