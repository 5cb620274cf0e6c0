//! The bounded revision history in status: one record per outcome, derived
//! from what changed between the old status and this plan, so a lost status
//! write is caught up on the next plan.

use super::super::ctx::Ctx;
use super::super::records::Records;
use super::super::state::Decision;
use super::super::world::images_of;
use crate::api::{AbortReason, HISTORY_LIMIT, Outcome, RevisionRecord, RolloutStatus};

/// Appends to `status.history` (already a copy of the old one) what this plan
/// changed: a superseded revision, a switch, an abort.
pub(super) fn record(ctx: &Ctx, decision: &Decision, status: &mut RolloutStatus) {
    let (rollout, old, world, now) = (ctx.rollout, ctx.old, ctx.world, ctx.now);
    let (ops, records) = (&decision.ops, &decision.records);
    let revision = world.target_revision();
    let target = &world.target_hash;
    let images = images_of(&rollout.spec.template);
    let push = |status: &mut RolloutStatus, record: RevisionRecord| {
        status.history.push(record);
        let excess = status.history.len().saturating_sub(HISTORY_LIMIT);
        status.history.drain(..excess);
    };
    // A previous current revision replaced before it ever went live.
    if let Some(previous) = &old.current_revision
        && previous != target
        && old.stable_revision.as_ref() != Some(previous)
        && old.abort.as_ref().map(|a| &a.revision) != Some(previous)
    {
        let fleet = world.fleets.get(previous);
        push(
            status,
            RevisionRecord {
                revision: fleet.map_or(0, |f| f.revision),
                hash: previous.clone(),
                images: fleet.map(|f| f.images.clone()).unwrap_or_default(),
                outcome: Outcome::Superseded,
                score: None,
                time: now,
            },
        );
    }
    // The Service now selects the current revision and the status did not know:
    // recorded from what is observed, so a lost status write is caught up.
    if !world.service_missing
        && status.stable_revision.as_ref() == Some(target)
        && old.stable_revision.as_ref() != Some(target)
    {
        let rolled_back = old.history.iter().any(|r| {
            &r.hash == target && matches!(r.outcome, Outcome::Promoted | Outcome::RolledBack)
        });
        push(
            status,
            RevisionRecord {
                revision,
                hash: target.clone(),
                images: images.clone(),
                outcome: if rolled_back {
                    Outcome::RolledBack
                } else {
                    Outcome::Promoted
                },
                score: canary_score(records, target),
                time: now,
            },
        );
    }
    if let Some(abort) = &ops.abort
        && old.abort.as_ref() != Some(abort)
    {
        let post = records.post_promotion.as_ref().filter(|p| {
            abort.reason == AbortReason::PostPromotionAnalysisFailed && p.revision == *target
        });
        push(
            status,
            RevisionRecord {
                revision,
                hash: target.clone(),
                images,
                outcome: match abort.reason {
                    AbortReason::User => Outcome::Aborted,
                    AbortReason::ProgressDeadlineExceeded
                    | AbortReason::AnalysisFailed
                    | AbortReason::PostPromotionAnalysisFailed => Outcome::Failed,
                },
                score: match abort.reason {
                    AbortReason::AnalysisFailed => canary_score(records, target),
                    AbortReason::PostPromotionAnalysisFailed => post.and_then(|p| p.score),
                    _ => None,
                },
                time: now,
            },
        );
        // Traffic went back to the previous revision: say so in its line.
        if let Some(p) = post
            && status.stable_revision.as_ref() == Some(&p.previous_revision)
        {
            let fleet = world.fleets.get(&p.previous_revision);
            push(
                status,
                RevisionRecord {
                    revision: fleet.map_or(0, |f| f.revision),
                    hash: p.previous_revision.clone(),
                    images: fleet.map(|f| f.images.clone()).unwrap_or_default(),
                    outcome: Outcome::RolledBack,
                    score: None,
                    time: now,
                },
            );
        }
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
