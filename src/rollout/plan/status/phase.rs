//! The phase and the conditions of each state: what a human (and kstatus)
//! reads about where the Rollout stands and what to do about it.

use super::super::analysis_spec::AnalysisProblem;
use super::super::builder::Builder;
use super::super::ctx::Ctx;
use super::super::deadline::EXCEEDED;
use super::super::state::{Decision, State};
use super::canary::canary_phase;
use super::paused::{AWAITING_PROMOTION, PROMOTION_WINDOW_CLOSED, waits_for_a_person};
use crate::api::conditions::{self, Desired};
use crate::api::{AbortReason, AbortStatus, ConditionStatus, Phase};

use ConditionStatus::{False, True, Unknown};

/// The phase and the desired conditions for the decided state. `active` is
/// the revision the active Service selects once the plan is applied.
pub(super) fn desired(
    ctx: &Ctx,
    decision: &Decision,
    active: Option<&str>,
    what: &str,
    out: &mut Builder,
) -> (Phase, Vec<Desired>) {
    let mut desired = common(ctx, active);
    let d = &mut desired;
    let phase = match &decision.state {
        // `invalid()` builds this status; kept total for the type's sake.
        State::InvalidSpec => {
            let msg = "the spec is invalid; nothing is changed until it is fixed";
            d.push(Desired::new(conditions::READY, False, "InvalidSpec", msg));
            d.push(Desired::new(conditions::STALLED, True, "InvalidSpec", msg));
            Phase::InvalidSpec
        }
        // `workload::missing()` builds this status; kept total likewise.
        State::WorkloadMissing { name } => {
            let msg = format!("workloadRef: Deployment {name} not found");
            d.push(Desired::new(
                conditions::READY,
                False,
                "WorkloadMissing",
                msg.clone(),
            ));
            d.push(Desired::new(
                conditions::STALLED,
                True,
                "WorkloadMissing",
                msg,
            ));
            Phase::Degraded
        }
        State::ServiceMissing => service_missing(ctx, d),
        State::Canary(step) => canary_phase(ctx, step, &decision.records, what, d, out),
        State::AwaitingWindow { opens_at } => awaiting_window(*opens_at, what, d, out),
        State::Revert { to } => revert(decision, to, what, d),
        State::Steady | State::Switch { .. } => live(ctx, &decision.state, what, d),
        State::Aborted(abort) => aborted(ctx, decision, abort, what, d),
        State::Paused => paused(what, d),
        State::Progressing { late: true, .. } => late(ctx, what, d),
        State::Progressing { deadline, .. } => {
            out.wakeups.push(*deadline);
            progressing(what, d)
        }
        State::AnalysisUnavailable(problem) => analysis_unavailable(problem, what, d),
        State::Gated(hold) => {
            let live = ctx.world.active_hash.as_deref() == Some(ctx.target());
            super::gates::held(hold, live, what, d, out)
        }
        State::AwaitingPromotion { wait } => {
            if let Some((_, at)) = wait {
                out.wakeups.push(*at);
            }
            awaiting_promotion(what, wait.map(|(_, at)| at), d)
        }
    };
    (phase, desired)
}

/// The conditions of every state: Available, Paused, PreviewServiceMissing.
fn common(ctx: &Ctx, active: Option<&str>) -> Vec<Desired> {
    let spec = ctx.spec();
    let mut desired = vec![if fleet_available(ctx, active) {
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
    if let Some(message) = &ctx.world.events_refused {
        desired.push(Desired::new(
            conditions::EVENTS_REFUSED,
            True,
            "EventCreateRefused",
            format!("the API refused recording an Event on this Rollout: {message}"),
        ));
    }
    if let Some(preview) = &spec.strategy.red_black.preview_service
        && !ctx.world.preview_exists
    {
        desired.push(Desired::new(
            conditions::PREVIEW_SERVICE_MISSING,
            True,
            "PreviewServiceNotFound",
            format!("preview Service {preview} not found; create it or remove previewService"),
        ));
    }
    desired
}

fn fleet_available(ctx: &Ctx, hash: Option<&str>) -> bool {
    hash.is_some_and(|h| ctx.world.revision_available(h, ctx.spec().replicas))
}

/// Ready False, Stalled True, Progressing False: the same reason and message.
fn stalled(reason: &str, msg: &str, d: &mut Vec<Desired>) {
    d.push(Desired::new(conditions::PROGRESSING, False, reason, msg));
    d.push(Desired::new(conditions::READY, False, reason, msg));
    d.push(Desired::new(conditions::STALLED, True, reason, msg));
}

fn service_missing(ctx: &Ctx, d: &mut Vec<Desired>) -> Phase {
    let msg = format!(
        "Service {} not found; create it (the operator only switches its selector)",
        ctx.spec().strategy.red_black.active_service
    );
    let reason = "ActiveServiceNotFound";
    d.push(Desired::new(conditions::READY, False, reason, msg.clone()));
    d.push(Desired::new(conditions::STALLED, True, reason, msg.clone()));
    d.push(Desired::new(conditions::PROGRESSING, False, reason, msg));
    Phase::Degraded
}

fn awaiting_window(
    opens_at: Option<chrono::DateTime<chrono::Utc>>,
    what: &str,
    d: &mut Vec<Desired>,
    out: &mut Builder,
) -> Phase {
    if let Some(at) = opens_at {
        out.wakeups.push(at);
    }
    let when = opens_at.map_or("no window opens in the next week".to_owned(), |t| {
        format!("the next promotion window opens at {}", t.to_rfc3339())
    });
    let msg = format!("{what} is available and waits for a promotion window: {when}");
    let reason = "OutsidePromotionWindow";
    d.push(Desired::new(
        conditions::PROGRESSING,
        True,
        reason,
        msg.clone(),
    ));
    d.push(Desired::new(conditions::READY, False, reason, msg.clone()));
    waits_for_a_person(PROMOTION_WINDOW_CLOSED, msg, d)
}

fn revert(decision: &Decision, to: &str, what: &str, d: &mut Vec<Desired>) -> Phase {
    let gate = decision
        .ops
        .abort
        .as_ref()
        .filter(|a| a.reason == AbortReason::GateFailed)
        .and_then(|a| super::gates::failed(&decision.records, &a.revision, what));
    match gate {
        Some((reason, msg)) => stalled(reason, &msg, d),
        None => {
            let msg = format!(
                "{what} failed its post-promotion analysis; traffic is switched back to {to}"
            );
            stalled("PostPromotionAnalysisFailed", &msg, d);
        }
    }
    Phase::Degraded
}

/// Steady, or switching in this plan: the current revision is live.
fn live(ctx: &Ctx, state: &State, what: &str, d: &mut Vec<Desired>) -> Phase {
    let live = matches!(state, State::Switch { .. }) || fleet_available(ctx, Some(ctx.target()));
    d.push(Desired::new(
        conditions::PROGRESSING,
        True,
        "NewReplicaSetAvailable",
        format!("{what} is live"),
    ));
    if live {
        d.push(Desired::new(
            conditions::READY,
            True,
            "RolloutHealthy",
            format!("{what} is live and available"),
        ));
    } else {
        let msg = format!("{what} is live but not all replicas are available");
        let reason = "ScalingActiveFleet";
        d.push(Desired::new(conditions::READY, False, reason, msg.clone()));
        d.push(Desired::new(conditions::RECONCILING, True, reason, msg));
    }
    match (ctx.spec().paused, live) {
        (true, _) => Phase::Paused,
        (false, true) => Phase::Healthy,
        (false, false) => Phase::Progressing,
    }
}

fn aborted(
    ctx: &Ctx,
    decision: &Decision,
    abort: &AbortStatus,
    what: &str,
    d: &mut Vec<Desired>,
) -> Phase {
    let records = &decision.records;
    let score = |s: Option<f64>| s.map_or("none".to_owned(), |s| format!("{s:.1}"));
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
                ctx.spec().progress_deadline_seconds
            ),
            Phase::Degraded,
        ),
        // `AnalysisFailed` too: a status written before `GateFailed` existed.
        AbortReason::GateFailed
        | AbortReason::PrePromotionAnalysisFailed
        | AbortReason::AnalysisFailed
            if let Some((reason, msg)) = super::gates::failed(records, &abort.revision, what) =>
        {
            (reason, msg, Phase::Degraded)
        }
        AbortReason::GateFailed | AbortReason::PrePromotionAnalysisFailed => (
            "GateFailed",
            format!(
                "{what} failed a gate; traffic is on the stable revision; retry or apply a new template"
            ),
            Phase::Degraded,
        ),
        AbortReason::AnalysisFailed => {
            let c = records.canary.as_ref();
            let name = c.and_then(|c| c.analysis_name.clone()).unwrap_or_default();
            let score = score(c.and_then(|c| c.score));
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
            let score = score(p.and_then(|p| p.score));
            (
                "PostPromotionAnalysisFailed",
                format!(
                    "{what} failed its post-promotion analysis (score {score}) and was rolled back; see `redblack report {name}`"
                ),
                Phase::Degraded,
            )
        }
    };
    stalled(reason, &msg, d);
    phase
}

fn paused(what: &str, d: &mut Vec<Desired>) -> Phase {
    d.push(Desired::new(
        conditions::PROGRESSING,
        Unknown,
        "RolloutPaused",
        format!("{what} waits: spec.paused is true"),
    ));
    d.push(Desired::new(
        conditions::READY,
        False,
        "RolloutPaused",
        format!("{what} is not live; the rollout is paused"),
    ));
    Phase::Paused
}

fn progressing(what: &str, d: &mut Vec<Desired>) -> Phase {
    let msg = format!("{what} is being brought up");
    d.push(Desired::new(
        conditions::PROGRESSING,
        True,
        "ReplicaSetUpdated",
        msg.clone(),
    ));
    let reason = "RevisionProgressing";
    d.push(Desired::new(conditions::READY, False, reason, msg.clone()));
    d.push(Desired::new(conditions::RECONCILING, True, reason, msg));
    Phase::Progressing
}

/// Past the progress deadline, still brought up (`progressDeadlineAbort`
/// false): Degraded while late — Stalled, not Reconciling, so kstatus says
/// Failed as Argo says Degraded (the two are exclusive by the kstatus
/// convention) — and it goes on by itself once the pods are ready: no
/// `retry` needed.
fn late(ctx: &Ctx, what: &str, d: &mut Vec<Desired>) -> Phase {
    let msg = format!(
        "{what} was not available within {}s; it goes on once its pods are ready (traffic stays where it was until then); fix the template if they never will",
        ctx.spec().progress_deadline_seconds
    );
    stalled(EXCEEDED, &msg, d);
    Phase::Degraded
}

/// Available, but its post-promotion analysis cannot be created: no switch.
fn analysis_unavailable(problem: &AnalysisProblem, what: &str, d: &mut Vec<Desired>) -> Phase {
    let msg = format!(
        "{what} is available but is not switched to, its post-promotion analysis cannot be created: {problem}; {}",
        problem.fix()
    );
    let invalid = matches!(problem, AnalysisProblem::Invalid { .. });
    let reason = problem.reason();
    let progressing = if invalid { False } else { True };
    d.push(Desired::new(
        conditions::PROGRESSING,
        progressing,
        reason,
        msg.clone(),
    ));
    d.push(Desired::new(conditions::READY, False, reason, msg.clone()));
    // Invalid waits for a human (Stalled); a missing template may appear.
    let waiting = if invalid {
        conditions::STALLED
    } else {
        conditions::RECONCILING
    };
    d.push(Desired::new(waiting, True, reason, msg));
    if invalid {
        Phase::Degraded
    } else {
        Phase::Progressing
    }
}

fn awaiting_promotion(
    what: &str,
    auto_at: Option<chrono::DateTime<chrono::Utc>>,
    d: &mut Vec<Desired>,
) -> Phase {
    let msg = match auto_at {
        None => format!("{what} is available; run `redblack promote` to switch traffic"),
        Some(at) => format!(
            "{what} is available; it is promoted automatically at {} (autoPromotionSeconds), or run `redblack promote` now",
            at.to_rfc3339()
        ),
    };
    let reason = AWAITING_PROMOTION;
    d.push(Desired::new(
        conditions::PROGRESSING,
        True,
        reason,
        msg.clone(),
    ));
    d.push(Desired::new(conditions::READY, False, reason, msg.clone()));
    waits_for_a_person(reason, msg, d)
}
