//! Canary decisions: which step the canary of the current revision is in,
//! from its recorded status, its fleets and its analysis' verdict.

use super::super::analysis_spec;
use super::super::builder::Events;
use super::super::ctx::Ctx;
use super::super::deadline::{self, Progress};
use super::super::gates::verdict::{self as gates, Point, Verdict};
use super::super::names::analysis_name;
use super::super::observed::AnalysisPhase;
use super::super::operations::Ops;
use super::super::records::Records;
use super::super::state::{CanaryStep, State};
use serde_json::Value;

use crate::api::{
    AbortReason, AbortStatus, AnalysisRefusal, CanaryPhase, CanaryStatus, CanaryStrategy,
    MarginalAction, value_hash,
};

/// The record of a canary that starts now (first attempt).
fn fresh(ctx: &Ctx) -> CanaryStatus {
    let (rollout, world) = (ctx.rollout, ctx.world);
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
pub(crate) fn decide(
    ctx: &Ctx,
    ops: &mut Ops,
    records: &mut Records,
    out: &mut Events,
) -> Option<State> {
    let cfg = ctx.canary()?;
    let (rollout, world) = (ctx.rollout, ctx.world);
    let target = world.target_hash.clone();
    let mut c = match &ctx.old.canary {
        Some(c)
            if c.revision.as_deref() == Some(target.as_str())
                && c.stable_revision == world.active_hash =>
        {
            c.clone()
        }
        _ => fresh(ctx),
    };
    if ops.retried {
        c.attempt += 1;
        c.phase = Some(CanaryPhase::Progressing);
        c.analysis_name = Some(analysis_name(rollout, &target, c.attempt));
        c.analysis_start = None;
        c.score = None;
        c.message = None;
        c.analysis_refused = None;
    }
    // A failed canary is not promoted by hand either (e.g. a retry consumed
    // while paused never reached the canary record): retry, then judge again.
    let held = matches!(
        c.phase,
        Some(CanaryPhase::Inconclusive | CanaryPhase::Error | CanaryPhase::Failed)
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
    let step = step(ctx, cfg, ops, records, &mut c, out);
    records.last_score = c.score.or(records.last_score);
    records.canary = Some(c);
    step
}

/// The step of canary `c` (updated in place, as its record).
fn step(
    ctx: &Ctx,
    cfg: &CanaryStrategy,
    ops: &mut Ops,
    records: &mut Records,
    c: &mut CanaryStatus,
    out: &mut Events,
) -> Option<State> {
    match c.phase {
        Some(CanaryPhase::Passed | CanaryPhase::Promoted) => return None,
        Some(CanaryPhase::Failed) => return Some(fail(ctx, ops, c, out)),
        Some(phase @ (CanaryPhase::Marginal | CanaryPhase::Inconclusive | CanaryPhase::Error)) => {
            return Some(State::Canary(CanaryStep::Held(phase)));
        }
        Some(CanaryPhase::Analysing) => {}
        Some(CanaryPhase::Progressing) | None => {
            if !ctx.world.canary_fleets_ready(ctx.rollout, c) {
                return Some(progressing(ctx, ops, c, out));
            }
            // `BeforeCanary` gates judge the ready canary before any traffic.
            match gates::decide(ctx, Point::Canary, ops, records, out) {
                Verdict::Open => {}
                Verdict::Hold(hold) => {
                    c.phase = Some(CanaryPhase::Progressing);
                    return Some(State::Canary(CanaryStep::Gated(hold)));
                }
                Verdict::Failed(abort) => return Some(State::Aborted(abort)),
            }
            c.phase = Some(CanaryPhase::Analysing);
        }
    }
    analysing(ctx, cfg, ops, c, out)
}

/// The canary's fleets are not ready yet: the progress deadline decides.
fn progressing(ctx: &Ctx, ops: &mut Ops, c: &mut CanaryStatus, out: &mut Events) -> State {
    let (started_at, deadline, late) = match deadline::progress(ctx, ops.retried) {
        Progress::Exceeded(abort) => {
            ops.abort = Some(abort.clone());
            return State::Aborted(abort);
        }
        Progress::Within {
            started_at,
            deadline,
        } => (started_at, deadline, false),
        Progress::Late {
            started_at,
            deadline,
        } => {
            deadline::announce_late(ctx, out);
            (started_at, deadline, true)
        }
    };
    c.phase = Some(CanaryPhase::Progressing);
    State::Canary(CanaryStep::Progressing {
        started_at,
        deadline,
        late,
    })
}

/// The canary's fleets are ready: traffic, then the analysis and its verdict.
fn analysing(
    ctx: &Ctx,
    cfg: &CanaryStrategy,
    ops: &mut Ops,
    c: &mut CanaryStatus,
    out: &mut Events,
) -> Option<State> {
    let (rollout, world) = (ctx.rollout, ctx.world);
    // No traffic to a canary whose analysis cannot be created (a missing
    // template, an unusable body): it would not be judged. An analysis that
    // exists is never re-resolved (a template change does not touch it).
    let name = c.analysis_name.clone().unwrap_or_default();
    if world.analysis(&name).is_some() {
        c.analysis_refused = None;
    } else {
        match analysis_spec::resolve_canary(rollout, &world.analysis_templates, &cfg.analysis) {
            Err(problem) => {
                c.analysis_start = None;
                c.analysis_refused = None;
                return Some(State::Canary(CanaryStep::AnalysisUnavailable(problem)));
            }
            Ok(source) => {
                if let Some(held) = refused(ctx, c, &name, source.body) {
                    return Some(held);
                }
            }
        }
    }
    // Analysing: the window starts when traffic can flow, with the create of
    // the analysis (AnalysisCreated); traffic follows once the analysis is
    // observed (`traffic.rs`, CanaryTrafficOn). No Event of its own.
    if c.analysis_start.is_none() {
        if world.canary_can_flow(rollout, c) {
            c.analysis_start = Some(ctx.now);
        }
        return Some(State::Canary(CanaryStep::Analysing));
    }
    let Some(analysis) = world.analysis(&name) else {
        return Some(State::Canary(CanaryStep::Analysing));
    };
    c.score = analysis.score.or(c.score);
    c.message = analysis.message.clone();
    verdict(ctx, cfg, ops, c, analysis.phase, out)
}

/// The API refused to create analysis `name` (in this reconcile, or recorded
/// for this body and spec): hold the canary without traffic and without a new
/// create. A refusal recorded for another attempt, another body or another
/// generation of the spec is forgotten, so the create is tried again.
fn refused(ctx: &Ctx, c: &mut CanaryStatus, name: &str, body: &Value) -> Option<State> {
    let body_hash = value_hash(body);
    let generation = ctx.rollout.metadata.generation;
    if let Some(r) = ctx.world.refused.as_ref().filter(|r| r.analysis == name) {
        c.analysis_refused = Some(AnalysisRefusal {
            analysis_name: name.to_owned(),
            message: r.message.clone(),
            body_hash: body_hash.clone(),
            observed_generation: generation,
        });
    }
    let current = c.analysis_refused.as_ref().filter(|r| {
        r.analysis_name == name && r.body_hash == body_hash && r.observed_generation == generation
    });
    let Some(r) = current else {
        c.analysis_refused = None;
        return None;
    };
    let state = State::Canary(CanaryStep::AnalysisRefused {
        analysis: name.to_owned(),
        message: r.message.clone(),
    });
    c.analysis_start = None;
    Some(state)
}

/// What the analysis' phase means for the canary.
fn verdict(
    ctx: &Ctx,
    cfg: &CanaryStrategy,
    ops: &mut Ops,
    c: &mut CanaryStatus,
    phase: AnalysisPhase,
    out: &mut Events,
) -> Option<State> {
    let target = ctx.target();
    let name = c.analysis_name.clone().unwrap_or_default();
    let score = score(c);
    match phase {
        AnalysisPhase::Pending | AnalysisPhase::Running => {
            c.message = None;
            Some(State::Canary(CanaryStep::Analysing))
        }
        AnalysisPhase::Passed => {
            c.phase = Some(CanaryPhase::Passed);
            out.normal(
                "CanaryPassed",
                format!("canary of {target} passed with score {score}; bringing up the full fleet (`redblack report {name}`)"),
            );
            None
        }
        AnalysisPhase::Marginal => marginal(ctx, cfg, ops, c, out),
        AnalysisPhase::Failed => Some(fail(ctx, ops, c, out)),
        AnalysisPhase::Inconclusive | AnalysisPhase::Error => {
            let phase = if phase == AnalysisPhase::Error {
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

/// A marginal verdict, as `canary.marginal` says: fail, judge once more, or
/// hold for a human.
fn marginal(
    ctx: &Ctx,
    cfg: &CanaryStrategy,
    ops: &mut Ops,
    c: &mut CanaryStatus,
    out: &mut Events,
) -> Option<State> {
    let target = ctx.target();
    let score = score(c);
    match cfg.marginal {
        MarginalAction::Fail => Some(fail(ctx, ops, c, out)),
        MarginalAction::Extend if !c.extended => {
            c.extended = true;
            c.attempt += 1;
            c.analysis_name = Some(analysis_name(ctx.rollout, target, c.attempt));
            c.analysis_start = ctx.world.canary_can_flow(ctx.rollout, c).then_some(ctx.now);
            c.message = None;
            out.normal(
                "CanaryExtended",
                format!(
                    "canary of {target} was marginal (score {score}); judging once more as {}",
                    c.analysis_name.clone().unwrap_or_default()
                ),
            );
            Some(State::Canary(CanaryStep::Analysing))
        }
        MarginalAction::Pause | MarginalAction::Extend => {
            let name = c.analysis_name.clone().unwrap_or_default();
            c.phase = Some(CanaryPhase::Marginal);
            out.warning(
                "CanaryMarginal",
                format!("canary of {target} is marginal (score {score}); promote to accept, abort, or retry (`redblack report {name}`)"),
            );
            Some(State::Canary(CanaryStep::Held(CanaryPhase::Marginal)))
        }
    }
}

/// The score as messages print it.
fn score(c: &CanaryStatus) -> String {
    c.score.map_or("none".to_owned(), |s| format!("{s:.1}"))
}

/// A failed verdict: the revision is abandoned (traffic back to stable,
/// canary and baseline removed by the Aborted state's actions).
fn fail(ctx: &Ctx, ops: &mut Ops, c: &mut CanaryStatus, out: &mut Events) -> State {
    let (target, now) = (ctx.target().to_owned(), ctx.now);
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
        let score = score(c);
        out.warning(
            "CanaryFailed",
            format!("canary of {target} failed with score {score}; traffic is back on the stable revision; see `redblack report {name}`"),
        );
    }
    State::Aborted(abort)
}
