//! The explicit state of a Rollout, derived from its spec, status and observed
//! children. The canary issue adds states here (canary + baseline fleets,
//! analysis running, verdicts) without touching how actions are executed.

use chrono::{DateTime, Duration, Utc};

use super::operations::Ops;
use super::world::World;
use crate::api::{AbortReason, AbortStatus, Outcome, PromotionPolicy, Rollout, RolloutStatus};

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// `validate()` found errors: nothing is touched.
    InvalidSpec,
    /// The active Service does not exist: fleets may be prepared, nothing is switched
    /// and nothing is scaled down (we cannot know what serves traffic).
    ServiceMissing,
    /// The active Service selects the current revision.
    Steady,
    /// The current revision was abandoned (by a user or the progress deadline).
    Aborted(AbortStatus),
    /// `spec.paused` while the current revision is not live.
    Paused,
    /// The current revision's fleet is being brought up; deadline at `deadline`.
    Progressing {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Available, waiting for a manual promote.
    AwaitingPromotion,
    /// Available and allowed: switch the active Service in this plan.
    Switch { kind: SwitchKind },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchKind {
    /// Nothing served traffic before.
    FirstDeploy,
    /// Back to a revision that was promoted before (undo / GitOps revert).
    Rollback,
    Promotion,
}

impl SwitchKind {
    pub fn outcome(self) -> Outcome {
        match self {
            SwitchKind::Rollback => Outcome::RolledBack,
            SwitchKind::FirstDeploy | SwitchKind::Promotion => Outcome::Promoted,
        }
    }
}

/// Decides the state. May turn a missed deadline into an abort (recorded in `ops`).
pub(crate) fn derive(
    rollout: &Rollout,
    old: &RolloutStatus,
    world: &World,
    ops: &mut Ops,
    now: DateTime<Utc>,
) -> State {
    let spec = &rollout.spec;
    let target = world.target_hash.as_str();
    if world.service_missing {
        return State::ServiceMissing;
    }
    if world.active_hash.as_deref() == Some(target) && world.target().is_some() {
        ops.abort = None;
        ops.approved = None;
        return State::Steady;
    }
    if let Some(abort) = &ops.abort {
        return State::Aborted(abort.clone());
    }
    if spec.paused {
        return State::Paused;
    }
    let available = world
        .target()
        .is_some_and(|f| f.is_available(spec.replicas));
    if !available {
        let started_at = match (old.current_revision.as_deref(), old.progress_started_at) {
            (Some(current), Some(started)) if current == target && !ops.retried => started,
            _ => now,
        };
        let deadline = started_at + Duration::seconds(i64::from(spec.progress_deadline_seconds));
        if now >= deadline {
            let abort = AbortStatus {
                revision: target.to_owned(),
                reason: AbortReason::ProgressDeadlineExceeded,
                at: now,
            };
            ops.abort = Some(abort.clone());
            return State::Aborted(abort);
        }
        return State::Progressing {
            started_at,
            deadline,
        };
    }
    let kind = if world.active().is_none() {
        SwitchKind::FirstDeploy
    } else if was_promoted(old, target) {
        SwitchKind::Rollback
    } else {
        SwitchKind::Promotion
    };
    let allowed = kind != SwitchKind::Promotion
        || spec.strategy.red_black.promotion == PromotionPolicy::Automatic
        || ops.approved.as_deref() == Some(target);
    if allowed {
        State::Switch { kind }
    } else {
        State::AwaitingPromotion
    }
}

/// A revision that already served as stable is trusted: going back to it needs
/// no manual promote (it is a rollback, and rollbacks must be fast).
fn was_promoted(old: &RolloutStatus, hash: &str) -> bool {
    old.history
        .iter()
        .any(|r| r.hash == hash && matches!(r.outcome, Outcome::Promoted | Outcome::RolledBack))
}
