//! The bounded revision history in status: one record per outcome, derived
//! from what changed between the old status and this plan, so a lost status
//! write is caught up on the next plan.

use chrono::{DateTime, Utc};

use super::operations::Ops;
use super::world::{World, images_of};
use crate::api::{AbortReason, HISTORY_LIMIT, Outcome, RevisionRecord, Rollout, RolloutStatus};

#[allow(clippy::too_many_arguments)]
pub fn record(
    old: &RolloutStatus,
    world: &World,
    ops: &Ops,
    status: &mut RolloutStatus,
    revision: i64,
    now: DateTime<Utc>,
    rollout: &Rollout,
) {
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
                score: None,
                time: now,
            },
        );
    }
    if let Some(abort) = &ops.abort
        && old.abort.as_ref() != Some(abort)
    {
        push(
            status,
            RevisionRecord {
                revision,
                hash: target.clone(),
                images,
                outcome: match abort.reason {
                    AbortReason::User => Outcome::Aborted,
                    AbortReason::ProgressDeadlineExceeded => Outcome::Failed,
                },
                score: None,
                time: now,
            },
        );
    }
}
