//! The explicit state of a Rollout, derived from its spec, status and observed
//! children. The canary gate (`canary::gate`), the post-promotion judgement
//! (`post_promotion::judge`) and promotion windows plug in here.

use chrono::{DateTime, Duration, Utc};

use super::analysis_spec::{self, AnalysisProblem, POST_PROMOTION_FIELD};
use super::operations::Ops;
use super::records::Records;
use super::windows::{self, WindowCheck};
use super::world::World;
use super::{Builder, canary, post_promotion};
use crate::api::{
    AbortReason, AbortStatus, CanaryPhase, Outcome, PromotionPolicy, Rollout, RolloutStatus,
};

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
    /// A canary of the current revision is judged before its fleet is brought up.
    Canary(CanaryStep),
    /// Available and allowed, but outside every promotion window.
    AwaitingWindow { opens_at: Option<DateTime<Utc>> },
    /// The post-promotion analysis failed: switch back to `to` (the warm
    /// previous fleet) in this plan.
    Revert { to: String },
    /// Available and allowed, but the post-promotion analysis could not be
    /// created (its template is missing, or its body is unusable): no switch.
    AnalysisUnavailable(AnalysisProblem),
}

#[derive(Clone, Debug, PartialEq)]
pub enum CanaryStep {
    /// Canary and baseline fleets are being brought up; deadline at `deadline`.
    Progressing {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Both are ready: traffic is shared and the analysis runs.
    Analysing,
    /// A verdict that waits for a human (Marginal, Inconclusive, Error).
    Held(CanaryPhase),
    /// Both are ready, but no analysis can be created (its template is
    /// missing, or its body is unusable): no traffic until it can.
    AnalysisUnavailable(AnalysisProblem),
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
#[allow(clippy::too_many_arguments)]
pub(crate) fn derive(
    rollout: &Rollout,
    old: &RolloutStatus,
    world: &World,
    ops: &mut Ops,
    records: &mut Records,
    now: DateTime<Utc>,
    out: &mut Builder,
) -> State {
    let spec = &rollout.spec;
    let target = world.target_hash.as_str();
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
    if let Some(to) = post_promotion::judge(rollout, old, world, ops, records, now, out) {
        return match to {
            Some(to) if live => State::Revert { to },
            _ => match &ops.abort {
                Some(abort) => State::Aborted(abort.clone()),
                None => State::Steady,
            },
        };
    }
    if live {
        return State::Steady;
    }
    if let Some(abort) = &ops.abort {
        return State::Aborted(abort.clone());
    }
    if spec.paused {
        return State::Paused;
    }
    let kind = if world.active().is_none() {
        SwitchKind::FirstDeploy
    } else if was_promoted(old, target) {
        SwitchKind::Rollback
    } else {
        SwitchKind::Promotion
    };
    if kind == SwitchKind::Promotion
        && spec.strategy.red_black.canary.is_some()
        && let Some(held) = canary::gate(rollout, old, world, ops, records, now, out)
    {
        return held;
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
    let allowed = kind != SwitchKind::Promotion
        || spec.strategy.red_black.promotion == PromotionPolicy::Automatic
        || ops.approved.as_deref() == Some(target);
    if !allowed {
        return State::AwaitingPromotion;
    }
    // Never switch to a revision whose post-promotion analysis cannot be created.
    if kind == SwitchKind::Promotion
        && let Some(source) = &spec.strategy.red_black.post_promotion_analysis
        && let Err(problem) = analysis_spec::resolve(
            rollout,
            &world.analysis_templates,
            source,
            POST_PROMOTION_FIELD,
            true,
        )
    {
        return State::AnalysisUnavailable(problem);
    }
    if kind == SwitchKind::Promotion
        && let WindowCheck::ClosedUntil(opens_at) =
            windows::check(&spec.strategy.red_black.promotion_windows, now)
    {
        return State::AwaitingWindow { opens_at };
    }
    if kind == SwitchKind::Promotion
        && let Some(post) = post_promotion::start(rollout, world, now)
    {
        records.post_promotion = Some(post);
    }
    State::Switch { kind }
}

/// A revision that already served as stable is trusted: going back to it needs
/// no manual promote and no canary (it is a rollback, and rollbacks must be
/// fast) — unless its latest record is a failure (e.g. a failed
/// post-promotion analysis), which must be judged again.
pub(crate) fn was_promoted(old: &RolloutStatus, hash: &str) -> bool {
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
