//! Phase and conditions while a canary is judged: what a human (and kstatus)
//! reads about the canary step, with the score, the analysis and the verbs.

use super::super::analysis_spec::AnalysisProblem;
use super::super::builder::Builder;
use super::super::ctx::Ctx;
use super::super::deadline::EXCEEDED;
use super::super::records::Records;
use super::super::state::CanaryStep;
use super::paused::waits_for_a_person;
use crate::api::conditions::{self, Desired};
use crate::api::{CanaryPhase, CanaryStatus, ConditionStatus, Phase};

use ConditionStatus::{False, True};

/// Reason of the conditions (and of the Warning Event) of a canary whose
/// analysis the API refused to create.
pub const ANALYSIS_CREATE_FAILED: &str = "AnalysisCreateFailed";

/// How a canary step reads: reason and message of its conditions, the phase,
/// and whether the operator is still at work (Reconciling) or needs a human
/// (Stalled).
struct Reading {
    reason: &'static str,
    msg: String,
    phase: Phase,
    reconciling: bool,
    stalled: bool,
}

impl Reading {
    fn working(reason: &'static str, msg: String) -> Reading {
        Reading {
            reason,
            msg,
            phase: Phase::Progressing,
            reconciling: true,
            stalled: false,
        }
    }
}

/// Phase and conditions while a canary is judged.
pub(super) fn canary_phase(
    ctx: &Ctx,
    step: &CanaryStep,
    records: &Records,
    what: &str,
    desired: &mut Vec<Desired>,
    out: &mut Builder,
) -> Phase {
    let c = records.canary.clone().unwrap_or_default();
    if let CanaryStep::Progressing {
        deadline,
        late: false,
        ..
    } = step
    {
        out.wakeups.push(*deadline);
    }
    if let CanaryStep::Gated(hold) = step {
        out.wakeups.push(hold.wake_at);
    }
    let observed = c
        .analysis_name
        .as_deref()
        .is_some_and(|name| ctx.world.analysis(name).is_some());
    let reading = read(step, &c, observed, what, &waiting_for(ctx));
    let reading = late(ctx, step, reading);
    let Reading {
        reason,
        msg,
        phase,
        reconciling,
        stalled,
    } = reading;
    let progressing = if stalled { False } else { True };
    desired.push(Desired::new(
        conditions::PROGRESSING,
        progressing,
        reason,
        msg.clone(),
    ));
    desired.push(Desired::new(conditions::READY, False, reason, msg.clone()));
    if reconciling {
        desired.push(Desired::new(
            conditions::RECONCILING,
            True,
            reason,
            msg.clone(),
        ));
    }
    if stalled {
        desired.push(Desired::new(conditions::STALLED, True, reason, msg.clone()));
    }
    // Held on a Marginal or Inconclusive verdict: a person decides.
    if phase == Phase::Paused {
        return waits_for_a_person(reason, msg, desired);
    }
    phase
}

/// Canary fleets past the progress deadline (`progressDeadlineAbort` false):
/// Degraded (Stalled) while late, as `phase::late` — they go on once ready.
fn late(ctx: &Ctx, step: &CanaryStep, reading: Reading) -> Reading {
    if !matches!(step, CanaryStep::Progressing { late: true, .. }) {
        return reading;
    }
    Reading {
        reason: EXCEEDED,
        msg: format!(
            "{}, and were not ready within {}s; the canary goes on once they are (fix the template if they never will)",
            reading.msg,
            ctx.spec().progress_deadline_seconds
        ),
        phase: Phase::Degraded,
        reconciling: false,
        stalled: true,
    }
}

/// What a ready canary without traffic waits for: the HTTPRoute (named, and
/// said to be missing when it is not observed), or the other fleets' pods
/// to go (a widened active Service would select them too).
fn waiting_for(ctx: &Ctx) -> String {
    let Some(route) = ctx.rollout.spec.http_route_name() else {
        return "waiting to give it traffic once the other fleets are scaled down (the widened active Service would select their pods too)".to_owned();
    };
    let ns = ctx
        .rollout
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default");
    if ctx.world.route.is_none() {
        format!(
            "it gets no traffic: HTTPRoute {ns}/{route} (spec.strategy.redBlack.trafficRouting.httpRoute.name) was not found; create it or correct the name"
        )
    } else {
        format!("waiting to give it traffic through HTTPRoute {ns}/{route}")
    }
}

/// `observed`: the analysis of the current attempt is in the cache;
/// `waiting`: what a ready canary without traffic waits for.
fn read(step: &CanaryStep, c: &CanaryStatus, observed: bool, what: &str, waiting: &str) -> Reading {
    let name = c.analysis_name.clone().unwrap_or_default();
    match step {
        CanaryStep::Progressing { .. } => Reading::working(
            "CanaryProgressing",
            format!("the canary and baseline of {what} are being brought up"),
        ),
        CanaryStep::Analysing if c.analysis_start.is_none() => Reading::working(
            "CanaryWaitingForTraffic",
            format!("the canary of {what} is ready; {waiting}"),
        ),
        CanaryStep::Analysing if !observed => Reading::working(
            "CanaryWaitingForAnalysis",
            format!(
                "the canary of {what} is ready; analysis {name} is being created, traffic follows once it exists"
            ),
        ),
        CanaryStep::Analysing => Reading::working(
            "CanaryAnalysing",
            format!("the canary of {what} is being judged by analysis {name}"),
        ),
        CanaryStep::Held(phase) => held(*phase, c, &name, what),
        CanaryStep::Gated(hold) => Reading::working(
            super::gates::GATE_RUNNING,
            format!(
                "the canary of {what} is ready and waits for {}{}; no traffic until it passes",
                hold.what,
                hold.message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        ),
        CanaryStep::AnalysisRefused { analysis, message } => Reading {
            reason: ANALYSIS_CREATE_FAILED,
            msg: format!(
                "the canary of {what} is ready but gets no traffic: the API refused to create CanaryAnalysis {analysis}: {message}; fix the analysis (its CanaryAnalysisTemplate or the Rollout's spec; it is created again once either changes) or `redblack retry`, or abort"
            ),
            phase: Phase::Degraded,
            reconciling: false,
            stalled: true,
        },
        CanaryStep::AnalysisUnavailable(problem) => {
            let invalid = matches!(problem, AnalysisProblem::Invalid { .. });
            Reading {
                reason: problem.reason(),
                msg: format!(
                    "the canary of {what} is ready but gets no traffic and no analysis: {problem}; {}",
                    problem.fix()
                ),
                phase: if invalid {
                    Phase::Degraded
                } else {
                    Phase::Progressing
                },
                reconciling: !invalid,
                stalled: invalid,
            }
        }
    }
}

/// A verdict that waits for a human: Marginal, Error, or Inconclusive.
fn held(phase: CanaryPhase, c: &CanaryStatus, name: &str, what: &str) -> Reading {
    let score = c.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
    let reason_message = c.message.clone().unwrap_or_default();
    // An Error needs a fix (Degraded, Stalled); the others wait for a verb.
    let waiting = |reason, msg, phase| Reading {
        reason,
        msg,
        phase,
        reconciling: false,
        stalled: phase == Phase::Degraded,
    };
    match phase {
        CanaryPhase::Marginal => waiting(
            "CanaryMarginal",
            format!(
                "the canary of {what} scored {score} (marginal); promote to accept, abort, or retry; see `redblack report {name}`"
            ),
            Phase::Paused,
        ),
        CanaryPhase::Error => waiting(
            "AnalysisError",
            format!(
                "analysis {name} of {what} could not run: {reason_message}; fix it and retry, or abort"
            ),
            Phase::Degraded,
        ),
        _ => waiting(
            "CanaryInconclusive",
            format!("analysis {name} of {what} is inconclusive: {reason_message}; retry or abort"),
            Phase::Paused,
        ),
    }
}
