//! The status a plan writes: phase, conditions, counters and history, all
//! functions of the old status, the decision and the observed world, so that
//! re-planning an unchanged world yields an identical status.
//!
//! `build` assembles it from parts: the recorded fields (here), the counters
//! (`counters.rs`), the history (`history.rs`), and the phase with its
//! conditions (`phase.rs`, the canary's in `canary.rs`, the `Paused`
//! condition of a person-gate in `paused.rs`). A write the API
//! refused gets the status of `refused.rs` instead.

use crate::api::conditions::{self, Desired};
use crate::api::{ConditionStatus, Phase, RolloutStatus, SpecError};

use super::builder::Builder;
use super::ctx::Ctx;
use super::state::{CanaryStep, Decision, State, new_active_hash};
use super::traffic;

mod canary;
mod counters;
mod gates;
mod history;
mod paused;
mod phase;
mod refused;

pub use refused::{WRITE_REFUSED, build as refused_write};

use ConditionStatus::{False, True};

/// The status of a spec `validate()` rejected: the old one, marked invalid.
pub fn invalid(ctx: &Ctx, errors: &[SpecError], out: &mut Builder) -> RolloutStatus {
    let (rollout, old, world) = (ctx.rollout, ctx.old, ctx.world);
    let mut status = old.clone();
    status.observed_generation = rollout.metadata.generation;
    status.phase = Some(Phase::InvalidSpec);
    counters::fill(ctx, world.active_hash.as_deref(), &mut status);
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
        ctx.now,
    );
    if old.phase != Some(Phase::InvalidSpec) {
        out.warning("InvalidSpec", message);
    }
    status
}

/// The status after the decided plan is applied.
pub fn build(ctx: &Ctx, decision: &Decision, out: &mut Builder) -> RolloutStatus {
    let mut status = recorded(ctx, decision);
    let active = status.stable_revision.clone();
    counters::fill(ctx, active.as_deref(), &mut status);
    history::record(ctx, decision, &mut status);
    let what = format!(
        "revision {} ({})",
        ctx.world.target_revision(),
        ctx.target()
    );
    let (phase, desired) = phase::desired(ctx, decision, active.as_deref(), &what, out);
    status.phase = Some(phase);
    warn_analysis_unavailable(ctx, &decision.state, &desired, out);
    status.conditions = conditions::merge(
        &ctx.old.conditions,
        desired,
        ctx.rollout.metadata.generation,
        ctx.now,
    );
    announce_phase(ctx, phase, &what, out);
    status
}

/// The fields the decision records: revisions, progress clock, operations,
/// the canary and post-promotion records; the history so far.
fn recorded(ctx: &Ctx, decision: &Decision) -> RolloutStatus {
    let (old, world, state) = (ctx.old, ctx.world, &decision.state);
    let (ops, records) = (&decision.ops, &decision.records);
    // While the Service is missing nothing is switched: keep what was stable.
    let active = if world.service_missing {
        old.stable_revision.clone()
    } else {
        new_active_hash(world, state)
    };
    RolloutStatus {
        phase: None,
        observed_generation: ctx.rollout.metadata.generation,
        stable_revision: active,
        current_revision: Some(world.target_hash.clone()),
        progress_started_at: match state {
            State::Progressing { started_at, .. }
            | State::Canary(CanaryStep::Progressing { started_at, .. }) => Some(*started_at),
            _ => None,
        },
        revision_started_at: revision_started_at(ctx),
        restarted_at: super::restart::restarted_at(ctx, state),
        awaiting_promotion_since: match state {
            State::AwaitingPromotion {
                wait: Some((since, _)),
            } => Some(*since),
            _ => None,
        },
        abort: ops.abort.clone(),
        approved_revision: ops.approved.clone(),
        operations: ops.consumed.clone(),
        canary: records.canary.clone().map(|mut c| {
            c.traffic_percent = traffic::share_after(ctx, decision);
            c
        }),
        post_promotion: records.post_promotion.clone(),
        gates: records.gates.clone(),
        pre_promotion: records.pre_promotion.clone(),
        last_score: records.last_score,
        history: old.history.clone(),
        ..RolloutStatus::default()
    }
}

/// When the current revision became current: kept from the old status while
/// the template is unchanged, else now (a new template, or a status written
/// before the field existed — then the measurement starts late, never early).
fn revision_started_at(ctx: &Ctx) -> Option<chrono::DateTime<chrono::Utc>> {
    let old = ctx.old;
    match old.revision_started_at {
        Some(at) if old.current_revision.as_deref() == Some(ctx.target()) => Some(at),
        _ => Some(ctx.now),
    }
}

/// A Warning Event when an analysis becomes unavailable or its create is
/// refused (or the problem changes), not on every re-plan.
fn warn_analysis_unavailable(ctx: &Ctx, state: &State, desired: &[Desired], out: &mut Builder) {
    let reason = match state {
        State::AnalysisUnavailable(problem)
        | State::Canary(CanaryStep::AnalysisUnavailable(problem)) => problem.reason(),
        State::Canary(CanaryStep::AnalysisRefused { .. }) => canary::ANALYSIS_CREATE_FAILED,
        _ => return,
    };
    let Some(now) = desired.iter().find(|d| d.type_ == conditions::PROGRESSING) else {
        return;
    };
    let before = conditions::find(&ctx.old.conditions, conditions::PROGRESSING);
    if before.is_none_or(|c| c.reason != now.reason || c.message != now.message) {
        out.warning(reason, now.message.clone());
    }
}

/// An Event when the phase changes (a Warning for the bad ones).
fn announce_phase(ctx: &Ctx, phase: Phase, what: &str, out: &mut Builder) {
    // One Event per transition: a phase entered through an operation that
    // already said so under the same reason (`Aborted` by a user's abort) is
    // not announced a second time.
    if ctx.old.phase == Some(phase) || out.events.has_reason(&format!("{phase:?}")) {
        return;
    }
    // Degraded by a missed progress deadline: its own Warning said so.
    if phase == Phase::Degraded && out.events.has_reason(super::deadline::EXCEEDED) {
        return;
    }
    let message = format!("phase {phase:?}: {what}");
    match phase {
        Phase::Degraded | Phase::Aborted | Phase::InvalidSpec => {
            out.warning(&format!("{phase:?}"), message)
        }
        _ => out.normal(&format!("{phase:?}"), message),
    }
}
