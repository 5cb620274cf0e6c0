//! The decision: which state the Rollout is in, derived from the plan's input
//! and the manual operations. A function returning values — the state, the
//! operations and records as they stand after deciding, and the Events that
//! explain the decision; `plan()` applies them. The canary gate
//! (`canary::gate`), the post-promotion verdict (`post_promotion::verdict`),
//! the progress deadline and the promotion windows plug in here.
//!
//! Inside, those steps update `decide`'s own copies of the operations and
//! records (a verdict is recorded as it is reached, so a later step sees it);
//! nothing outside `decide` changes until `plan()` takes its result.

use super::analysis_spec;
use super::auto_promotion::{self, Wait};
use super::builder::Events;
use super::canary::gate;
use super::ctx::Ctx;
use super::deadline::{self, Progress};
use super::gates::after_switch::{self, AfterSwitch};
use super::gates::pre_promotion;
use super::gates::verdict::{self as gates, Point, Verdict};
use super::operations::Ops;
use super::post_promotion::verdict;
use super::records::Records;
use super::state::{Decision, State, SwitchKind};
use super::windows::{self, WindowCheck};
use crate::api::{Outcome, PromotionPolicy, RolloutStatus};

/// Decides the state. Pure: the same input gives the same decision.
pub fn decide(ctx: &Ctx, ops: Ops) -> (Decision, Events) {
    let mut ops = ops;
    let mut records = Records::from_status(ctx.old);
    let mut events = Events::default();
    let state = derive(ctx, &mut ops, &mut records, &mut events);
    if let State::Aborted(abort) = &state {
        deadline::announce(ctx, abort, &mut events);
    }
    let target_size = target_size(ctx, &ops);
    let decision = Decision {
        state,
        ops,
        records,
        target_size,
    };
    (decision, events)
}

/// The state machine itself (docs/rollout.md). Works on `decide`'s own copies.
fn derive(ctx: &Ctx, ops: &mut Ops, records: &mut Records, events: &mut Events) -> State {
    let (spec, world) = (ctx.spec(), ctx.world);
    let target = ctx.target();
    if world.service_missing {
        return State::ServiceMissing;
    }
    let live = world.active_hash.as_deref() == Some(target) && world.target().is_some();
    if live {
        ops.abort = None;
        ops.approved = None;
    }
    // Judged also when the revision is no longer live: if the revert's status
    // write was lost, the Failed verdict is found again and re-applied.
    if let Some(to) = verdict::judge(ctx, ops, records, events) {
        return match to {
            Some(to) if live => State::Revert { to },
            _ => match &ops.abort {
                Some(abort) => State::Aborted(abort.clone()),
                None => State::Steady,
            },
        };
    }
    if live {
        // The promotion's switch happened but its status write did not (the
        // operator died between the two): the records of the post-promotion
        // analysis and of the `AfterSwitch` gates, which that status carried,
        // are made now, or the revision would stay live unjudged.
        if !was_promoted(ctx.old, target) {
            if let Some(post) = verdict::start_after_lost_switch(ctx, records) {
                records.post_promotion = Some(post);
            }
            if let Some(previous) = ctx.old.stable_revision.as_deref() {
                after_switch::start(ctx, records, previous);
            }
        }
    }
    // Also when no longer live, like the post-promotion verdict.
    if live || after_switch::running(ctx, records) {
        match after_switch::judge(ctx, ops, records, events) {
            AfterSwitch::Failed(Some(to)) => return State::Revert { to },
            AfterSwitch::Failed(None) => {
                if let Some(abort) = &ops.abort {
                    return State::Aborted(abort.clone());
                }
            }
            AfterSwitch::Hold(hold) if live => return State::Gated(hold),
            AfterSwitch::Hold(_) | AfterSwitch::Open => {}
        }
    }
    if live {
        return State::Steady;
    }
    gates::prune(ctx, ops, records);
    if let Some(abort) = &ops.abort {
        return State::Aborted(abort.clone());
    }
    if spec.paused {
        return State::Paused;
    }
    let kind = switch_kind(ctx);
    if kind == SwitchKind::Promotion
        && ctx.canary().is_some()
        && let Some(held) = gate::decide(ctx, ops, records, events)
    {
        return held;
    }
    if !world.revision_available(target, target_size(ctx, ops)) {
        return progressing(ctx, ops, events);
    }
    // Gates, then the pre-promotion analysis, judge the available fleet
    // before any promotion rule may switch to it.
    if kind == SwitchKind::Promotion {
        if let Some(held) = gated(gates::decide(ctx, Point::Switch, ops, records, events)) {
            return held;
        }
        if let Some(held) = gated(pre_promotion::decide(ctx, ops, records, events)) {
            return held;
        }
    }
    switch_or_wait(ctx, kind, ops, records, events)
}

/// The state a gate's verdict holds the revision in (None: open).
fn gated(verdict: Verdict) -> Option<State> {
    match verdict {
        Verdict::Open => None,
        Verdict::Hold(hold) => Some(State::Gated(hold)),
        Verdict::Failed(abort) => Some(State::Aborted(abort)),
    }
}

/// `previewReplicaCount` (Argo's): a Manual promotion's fleet is kept at that
/// size until it is approved (a promote, or `autoPromotionSeconds`), then
/// brought to `replicas` and switched to once fully available. Full size
/// otherwise (Automatic, first deploy, rollback, live).
fn target_size(ctx: &Ctx, ops: &Ops) -> i32 {
    let (spec, target) = (ctx.spec(), ctx.target());
    let rb = &spec.strategy.red_black;
    let waits = rb.promotion == PromotionPolicy::Manual
        && ops.approved.as_deref() != Some(target)
        && ctx.world.active_hash.as_deref() != Some(target)
        && switch_kind(ctx) == SwitchKind::Promotion;
    match rb.preview_replica_count {
        Some(n) if waits => n.clamp(0, spec.replicas),
        _ => spec.replicas,
    }
}

/// The current revision's fleet is not (fully) available: still progressing,
/// late, or abandoned by its deadline.
fn progressing(ctx: &Ctx, ops: &mut Ops, events: &mut Events) -> State {
    match deadline::progress(ctx, ops.retried) {
        Progress::Exceeded(abort) => {
            ops.abort = Some(abort.clone());
            State::Aborted(abort)
        }
        Progress::Within {
            started_at,
            deadline,
        } => State::Progressing {
            started_at,
            deadline,
            late: false,
        },
        Progress::Late {
            started_at,
            deadline,
        } => {
            deadline::announce_late(ctx, events);
            State::Progressing {
                started_at,
                deadline,
                late: true,
            }
        }
    }
}

/// What the switch to the current revision would be.
fn switch_kind(ctx: &Ctx) -> SwitchKind {
    if ctx.world.active().is_none() {
        SwitchKind::FirstDeploy
    } else if was_promoted(ctx.old, ctx.target()) {
        SwitchKind::Rollback
    } else {
        SwitchKind::Promotion
    }
}

/// The current revision is available: switch now, or say what it waits for.
fn switch_or_wait(
    ctx: &Ctx,
    kind: SwitchKind,
    ops: &mut Ops,
    records: &mut Records,
    events: &mut Events,
) -> State {
    let rb = &ctx.spec().strategy.red_black;
    let promotion = kind == SwitchKind::Promotion;
    let allowed = !promotion
        || rb.promotion == PromotionPolicy::Automatic
        || ops.approved.as_deref() == Some(ctx.target());
    if !allowed {
        match auto_promotion::wait(ctx) {
            Wait::ForAPerson => return State::AwaitingPromotion { wait: None },
            Wait::Until { since, at } => {
                return State::AwaitingPromotion {
                    wait: Some((since, at)),
                };
            }
            // Recorded as an approval, as a `redblack promote` would be: a
            // closed window or an unavailable analysis still holds the
            // switch, and the approval survives until it happens.
            Wait::Due { since } => {
                ops.approved = Some(ctx.target().to_owned());
                // A preview fleet (`previewReplicaCount`) is brought to full
                // size first; the switch follows once it is available.
                if !ctx
                    .world
                    .revision_available(ctx.target(), ctx.spec().replicas)
                {
                    return progressing(ctx, ops, events);
                }
                events.normal(
                    "AutoPromoted",
                    format!(
                        "revision {} promoted automatically: it waited since {} ({}s, autoPromotionSeconds)",
                        ctx.target(),
                        since.to_rfc3339(),
                        rb.auto_promotion_seconds.unwrap_or_default()
                    ),
                );
            }
        }
    }
    // Never switch to a revision whose post-promotion analysis cannot be created.
    if promotion
        && let Some(source) = &rb.post_promotion_analysis
        && let Err(problem) = analysis_spec::resolve_post_promotion(
            ctx.rollout,
            &ctx.world.analysis_templates,
            source,
        )
    {
        return State::AnalysisUnavailable(problem);
    }
    if promotion
        && let WindowCheck::ClosedUntil(opens_at) = windows::check(&rb.promotion_windows, ctx.now)
    {
        return State::AwaitingWindow { opens_at };
    }
    if promotion && let Some(post) = verdict::start(ctx) {
        records.post_promotion = Some(post);
    }
    if promotion && let Some(previous) = ctx.world.active_hash.as_deref() {
        after_switch::start(ctx, records, previous);
    }
    State::Switch { kind }
}

/// A revision that already served as stable is trusted: going back to it needs
/// no manual promote and no canary (it is a rollback, and rollbacks must be
/// fast) — unless its latest record is a failure (e.g. a failed
/// post-promotion analysis), which must be judged again.
fn was_promoted(old: &RolloutStatus, hash: &str) -> bool {
    old.history
        .iter()
        .rev()
        .find(|r| {
            r.hash == hash
                && matches!(
                    r.outcome,
                    Outcome::Promoted | Outcome::RolledBack | Outcome::Failed
                )
        })
        .is_some_and(|r| matches!(r.outcome, Outcome::Promoted | Outcome::RolledBack))
}
