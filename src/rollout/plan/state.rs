//! The vocabulary of the decision: the explicit states of a Rollout and the
//! `Decision` that carries one. Which state applies is decided in
//! `decide.rs`; the actions and the status match on it.

use chrono::{DateTime, Utc};

use super::analysis_spec::AnalysisProblem;
pub use super::gates::verdict::GateHold;
use super::operations::Ops;
use super::records::Records;
use super::world::World;
use crate::api::{AbortStatus, CanaryPhase};

/// What was decided: the input of the actions and of the status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub state: State,
    /// Operations in effect after deciding (a missed deadline or a failed
    /// verdict records an abort; a live revision clears abort and approval).
    pub ops: Ops,
    /// Canary and post-promotion records after deciding.
    pub records: Records,
    /// The size the current revision's fleet is brought to: `replicas`, or
    /// `previewReplicaCount` while a Manual promotion is not approved.
    pub target_size: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// `validate()` found errors: nothing is touched.
    InvalidSpec,
    /// The `workloadRef` Deployment `name` does not exist: nothing is touched.
    WorkloadMissing { name: String },
    /// The active Service does not exist: fleets may be prepared, nothing is switched
    /// and nothing is scaled down (we cannot know what serves traffic).
    ServiceMissing,
    /// The active Service selects the current revision.
    Steady,
    /// The current revision was abandoned (by a user or the progress deadline).
    Aborted(AbortStatus),
    /// `spec.paused` while the current revision is not live.
    Paused,
    /// The current revision's fleet is being brought up; deadline at
    /// `deadline`, missed when `late` (Degraded, still brought up).
    Progressing {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
        late: bool,
    },
    /// Available, waiting for a manual promote; with `autoPromotionSeconds`,
    /// `wait` is (since when, promoted automatically at).
    AwaitingPromotion {
        wait: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
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
    /// Available, but a gate or the pre-promotion analysis has not passed
    /// yet (`status.gates`, `status.prePromotion`): no switch. Or live, an
    /// `AfterSwitch` gate running: the previous fleet is kept warm.
    Gated(GateHold),
}

#[derive(Clone, Debug, PartialEq)]
pub enum CanaryStep {
    /// Canary and baseline fleets are being brought up; deadline at
    /// `deadline`, missed when `late` (Degraded, still brought up).
    Progressing {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
        late: bool,
    },
    /// Both are ready: traffic is shared and the analysis runs.
    Analysing,
    /// A verdict that waits for a human (Marginal, Inconclusive, Error).
    Held(CanaryPhase),
    /// Both are ready, but no analysis can be created (its template is
    /// missing, or its body is unusable): no traffic until it can.
    AnalysisUnavailable(AnalysisProblem),
    /// Both are ready, but the API refused to create the analysis (recorded
    /// in `status.canary.analysisRefused`): no traffic, and no new create
    /// until the body or the spec changes, or a retry.
    AnalysisRefused { analysis: String, message: String },
    /// Both are ready, but a `BeforeCanary` gate has not passed yet: no
    /// traffic to the canary.
    Gated(GateHold),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchKind {
    /// Nothing served traffic before.
    FirstDeploy,
    /// Back to a revision that was promoted before (undo / GitOps revert).
    Rollback,
    Promotion,
}

impl State {
    /// Held at a gate (before the switch, or before the canary's traffic).
    pub fn gated(&self) -> bool {
        matches!(self, State::Gated(_) | State::Canary(CanaryStep::Gated(_)))
    }
}

/// Which revision the active Service selects once a plan in `state` is applied.
pub(crate) fn new_active_hash(world: &World, state: &State) -> Option<String> {
    match state {
        State::Switch { .. } => Some(world.target_hash.clone()),
        State::Revert { to } => Some(to.clone()),
        _ => world.active_hash.clone(),
    }
}
