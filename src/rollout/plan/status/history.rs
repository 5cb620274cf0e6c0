//! The bounded revision history in status: one record per outcome, derived
//! from what changed between the old status and this plan, so a lost status
//! write is caught up on the next plan.

use super::super::ctx::Ctx;
use super::super::records::Records;
use super::super::state::Decision;
use super::super::world::images_of;
use crate::api::{AbortReason, GatePhase, HISTORY_LIMIT, Outcome, RevisionRecord, RolloutStatus};

/// Appends to `status.history` (already a copy of the old one) what this plan
/// changed, in this order: a superseded revision, a switch, an abort.
pub(super) fn record(ctx: &Ctx, decision: &Decision, status: &mut RolloutStatus) {
    superseded(ctx, status);
    switched(ctx, &decision.records, status);
    aborted(ctx, decision, status);
}

/// Appends `record`, dropping the oldest beyond `HISTORY_LIMIT`.
fn push(status: &mut RolloutStatus, record: RevisionRecord) {
    status.history.push(record);
    let excess = status.history.len().saturating_sub(HISTORY_LIMIT);
    status.history.drain(..excess);
}

/// The record of the current revision (`spec.template`).
fn current(ctx: &Ctx, outcome: Outcome, score: Option<f64>) -> RevisionRecord {
    RevisionRecord {
        revision: ctx.world.target_revision(),
        hash: ctx.world.target_hash.clone(),
        images: images_of(&ctx.rollout.spec.template),
        outcome,
        score,
        time: ctx.now,
    }
}

/// The record of an earlier revision, from its observed fleet (if any).
fn earlier(ctx: &Ctx, hash: &str, outcome: Outcome) -> RevisionRecord {
    let fleet = ctx.world.fleets.get(hash);
    RevisionRecord {
        revision: fleet.map_or(0, |f| f.revision),
        hash: hash.to_owned(),
        images: fleet.map(|f| f.images.clone()).unwrap_or_default(),
        outcome,
        score: None,
        time: ctx.now,
    }
}

/// A previous current revision replaced before it ever went live.
fn superseded(ctx: &Ctx, status: &mut RolloutStatus) {
    let old = ctx.old;
    if let Some(previous) = &old.current_revision
        && previous != ctx.target()
        && old.stable_revision.as_ref() != Some(previous)
        && old.abort.as_ref().map(|a| &a.revision) != Some(previous)
    {
        push(status, earlier(ctx, previous, Outcome::Superseded));
    }
}

/// The Service now selects the current revision and the status did not know:
/// recorded from what is observed, so a lost status write is caught up.
fn switched(ctx: &Ctx, records: &Records, status: &mut RolloutStatus) {
    let (old, target) = (ctx.old, ctx.target());
    if ctx.world.service_missing
        || status.stable_revision.as_deref() != Some(target)
        || old.stable_revision.as_deref() == Some(target)
    {
        return;
    }
    let rolled_back = old
        .history
        .iter()
        .any(|r| r.hash == target && matches!(r.outcome, Outcome::Promoted | Outcome::RolledBack));
    let outcome = if rolled_back {
        Outcome::RolledBack
    } else {
        Outcome::Promoted
    };
    push(status, current(ctx, outcome, canary_score(records, target)));
}

/// A new abort of the current revision; after a failed post-promotion
/// analysis, also the previous revision that traffic went back to.
fn aborted(ctx: &Ctx, decision: &Decision, status: &mut RolloutStatus) {
    let (records, target) = (&decision.records, ctx.target());
    let Some(abort) = &decision.ops.abort else {
        return;
    };
    if ctx.old.abort.as_ref() == Some(abort) {
        return;
    }
    let post = records.post_promotion.as_ref().filter(|p| {
        abort.reason == AbortReason::PostPromotionAnalysisFailed && p.revision == target
    });
    let outcome = match abort.reason {
        AbortReason::User => Outcome::Aborted,
        AbortReason::ProgressDeadlineExceeded
        | AbortReason::AnalysisFailed
        | AbortReason::GateFailed
        | AbortReason::PrePromotionAnalysisFailed
        | AbortReason::PostPromotionAnalysisFailed => Outcome::Failed,
    };
    let score = match abort.reason {
        AbortReason::AnalysisFailed => canary_score(records, target),
        AbortReason::PostPromotionAnalysisFailed => post.and_then(|p| p.score),
        _ => None,
    };
    push(status, current(ctx, outcome, score));
    // Traffic went back to the previous revision (a failed post-promotion
    // analysis or `AfterSwitch` gate): say so in its line.
    let previous = match abort.reason {
        AbortReason::PostPromotionAnalysisFailed => post.map(|p| p.previous_revision.clone()),
        AbortReason::GateFailed => records
            .gates
            .iter()
            .find(|g| g.revision == target && g.phase == GatePhase::Failed)
            .and_then(|g| g.previous_revision.clone()),
        _ => None,
    };
    if let Some(previous) = previous
        && status.stable_revision.as_ref() == Some(&previous)
    {
        push(status, earlier(ctx, &previous, Outcome::RolledBack));
    }
}

/// The canary's score, when the canary of `hash` reached a verdict.
fn canary_score(records: &Records, hash: &str) -> Option<f64> {
    records
        .canary
        .as_ref()
        .filter(|c| c.revision.as_deref() == Some(hash))
        .and_then(|c| c.score)
}
