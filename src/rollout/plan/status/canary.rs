//! Phase and conditions while a canary is judged: what a human (and kstatus)
//! reads about the canary step, with the score, the analysis and the verbs.

use super::super::analysis_spec::AnalysisProblem;
use super::super::builder::Builder;
use super::super::records::Records;
use super::super::state::CanaryStep;
use crate::api::conditions::{self, Desired};
use crate::api::{CanaryPhase, ConditionStatus, Phase};

use ConditionStatus::{False, True};

/// Phase and conditions while a canary is judged.
pub(super) fn canary_phase(
    step: &CanaryStep,
    records: &Records,
    what: &str,
    desired: &mut Vec<Desired>,
    out: &mut Builder,
) -> Phase {
    let c = records.canary.clone().unwrap_or_default();
    let name = c.analysis_name.clone().unwrap_or_default();
    let score = c.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
    let reason_message = c.message.clone().unwrap_or_default();
    let (reason, msg, phase, reconciling, stalled) = match step {
        CanaryStep::Progressing { deadline, .. } => {
            out.wakeups.push(*deadline);
            (
                "CanaryProgressing",
                format!("the canary and baseline of {what} are being brought up"),
                Phase::Progressing,
                true,
                false,
            )
        }
        CanaryStep::Analysing if c.analysis_start.is_none() => (
            "CanaryWaitingForTraffic",
            format!(
                "the canary of {what} is ready; waiting to give it traffic (HTTPRoute present, other fleets scaled down)"
            ),
            Phase::Progressing,
            true,
            false,
        ),
        CanaryStep::Analysing => (
            "CanaryAnalysing",
            format!("the canary of {what} is being judged by analysis {name}"),
            Phase::Progressing,
            true,
            false,
        ),
        CanaryStep::Held(CanaryPhase::Marginal) => (
            "CanaryMarginal",
            format!(
                "the canary of {what} scored {score} (marginal); promote to accept, abort, or retry; see `redblack report {name}`"
            ),
            Phase::Paused,
            false,
            false,
        ),
        CanaryStep::Held(CanaryPhase::Error) => (
            "AnalysisError",
            format!(
                "analysis {name} of {what} could not run: {reason_message}; fix it and retry, or abort"
            ),
            Phase::Degraded,
            false,
            true,
        ),
        CanaryStep::AnalysisUnavailable(problem) => {
            let invalid = matches!(problem, AnalysisProblem::Invalid { .. });
            (
                problem.reason(),
                format!(
                    "the canary of {what} is ready but gets no traffic and no analysis: {problem}; {}",
                    problem.fix()
                ),
                if invalid {
                    Phase::Degraded
                } else {
                    Phase::Progressing
                },
                !invalid,
                invalid,
            )
        }
        CanaryStep::Held(_) => (
            "CanaryInconclusive",
            format!("analysis {name} of {what} is inconclusive: {reason_message}; retry or abort"),
            Phase::Paused,
            false,
            false,
        ),
    };
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
        desired.push(Desired::new(conditions::STALLED, True, reason, msg));
    }
    phase
}
