//! PURE planner: (Rollout, observed children, now) -> actions + new status.
//!
//! No I/O and no memory between calls: progress lives in the Rollout's status
//! and in annotations on the ReplicaSets it owns, so a restarted operator
//! continues where it stopped. The flow and its states are described in
//! docs/rollout.md; `state::State` is the explicit state machine.
//!
//! # The pipeline
//!
//! [`plan`] runs its steps in this order, each a function of the one input
//! value (`ctx::Ctx`: the Rollout, its old status, the observed world, the
//! clock) and of what the earlier steps returned:
//!
//! 1. **validate** — an invalid spec only gets its status (`status::invalid`);
//! 2. **operations** — the manual annotations in effect (`operations`);
//! 3. **decide** — the state, as values (`decide` → `state::Decision`);
//! 4. **act** — the actions for that decision, in this order: traffic first
//!    (it leaves a canary before its fleets go), then the current fleet, the
//!    switch or revert, the preview Service, the canary's fleets and
//!    analysis, the post-promotion analysis, and last the retiring of old
//!    fleets;
//! 5. **status** — the status to write (`status`);
//! 6. **housekeeping** — only when steps 4 and 5 write nothing: the
//!    finished CanaryAnalyses beyond the history limits are deleted
//!    (`analysis_history`), so a refused delete never holds back a decision.
//!
//! # Layers
//!
//! A file imports only from its own layer or the layers below (never from
//! this file), and there is no cycle between files; `tests/plan_layers.rs`
//! checks both (its `LAYERS` mirrors this table).
//!
//! | layer | files | holds |
//! |---|---|---|
//! | 1 vocabulary | `observed`, `action`, `builder`, `records`, `analysis_spec`, `windows` | input and output types, analysis bodies, promotion windows |
//! | 2 names | `names` | names, labels and selectors of every child |
//! | 3 world | `world` | the observed world, indexed, and every question about it |
//! | 4 input | `ctx` | the one input value of every step |
//! | 5 decide | `operations`, `state`, `deadline`, `auto_promotion`, `gates/render`, `gates/http`, `gates/verdict`, `gates/pre_promotion`, `gates/after_switch`, `canary/gate`, `post_promotion/verdict`, `decide` | manual operations, the states, the progress deadline, the gates (before and after the switch) and the pre-promotion analysis, the canary gate, the post-promotion verdict, the state machine |
//! | 6 act | `traffic`, `fleets`, `pod_metadata`, `restart`, `workload`, `canary/fleets`, `post_promotion/analysis`, `gates/job`, `analysis_history` | the actions for a decision |
//! | 7 status | `status`, `status/*` | the status to write |
//! | 8 pipeline | `plan.rs` | [`plan`], [`Plan`] and the public re-exports |
//!
//! `canary/mod.rs`, `post_promotion/mod.rs` and `gates/mod.rs` only declare
//! their files.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use crate::api::{Rollout, RolloutStatus, validate};

mod action;
mod analysis_history;
mod analysis_spec;
mod auto_promotion;
mod builder;
mod canary;
mod ctx;
mod deadline;
mod decide;
mod fleets;
mod gates;
mod names;
mod observed;
mod operations;
mod pod_metadata;
mod post_promotion;
mod records;
mod restart;
pub mod state;
mod status;
mod traffic;
pub mod windows;
mod workload;
mod world;

pub use action::Action;
pub use analysis_spec::AnalysisProblem;
pub use builder::{EventType, PlannedEvent};
pub use gates::http::{HttpProbe, due as http_due, judge as http_judge, method_name};
pub use gates::job::GATE_LABEL;
pub use names::{
    analysis_name, baseline_name, canary_name, replica_set_name, role_service_name,
    rollout_label_value, service_selector,
};
pub use observed::{
    AnalysisObservation, AnalysisPhase, HttpCheck, JobObservation, JobPhase, Observed, Refusal,
    RouteBackend, RouteObservation, WorkloadObservation, WriteRefusal,
};
pub use state::{CanaryStep, State, SwitchKind};
pub use status::WRITE_REFUSED;
pub use workload::WORKLOAD_MISSING;
pub use world::{RevisionFacts, revision_number};

use builder::Builder;
use ctx::Ctx;

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The complete status to write (after the actions succeeded).
    pub status: RolloutStatus,
    pub events: Vec<PlannedEvent>,
    /// Re-plan after this long even if nothing is observed to change (a timer:
    /// scale-down delay or progress deadline). Honour it even for a no-op plan.
    pub requeue_after: Option<Duration>,
    /// The state the planner decided on (for logs, metrics and tests).
    pub state: State,
}

impl Plan {
    /// Nothing to do: no actions and the status equals what is stored, so the
    /// shell writes nothing (a status write must not retrigger work forever).
    pub fn is_noop(&self, stored: Option<&RolloutStatus>) -> bool {
        self.actions.is_empty() && stored.is_some_and(|s| *s == self.status)
    }
}

/// Decides what to do. Pure: the same inputs give the same plan.
pub fn plan(rollout: &Rollout, observed: &Observed, now: DateTime<Utc>) -> Plan {
    // 0. workloadRef: the template comes from the Deployment; while it is
    //    missing nothing moves.
    match workload::resolve(rollout, observed) {
        Ok(resolved) => with_ctx(&resolved, observed, now, |ctx| pipeline(ctx, observed)),
        Err(name) => with_ctx(rollout, observed, now, |ctx| {
            let mut out = Builder::default();
            let status = workload::missing(&ctx, &name, &mut out);
            finish(out, status, State::WorkloadMissing { name }, now)
        }),
    }
}

/// Builds the one input value of every step and hands it to `f`.
fn with_ctx<T>(
    rollout: &Rollout,
    observed: &Observed,
    now: DateTime<Utc>,
    f: impl FnOnce(Ctx<'_>) -> T,
) -> T {
    // Stored timestamps have second precision (as metav1.Time); truncating here
    // keeps status byte-identical across re-plans within the same second.
    let now = now.trunc_subsecs(0);
    let old = rollout.status.clone().unwrap_or_default();
    let world = world::World::new(rollout, observed, &old);
    f(Ctx {
        rollout,
        old: &old,
        world: &world,
        now,
    })
}

/// The steps of [`plan`], in order.
fn pipeline(ctx: Ctx, observed: &Observed) -> Plan {
    let (rollout, now) = (ctx.rollout, ctx.now);
    let mut out = Builder::default();

    // 1. validate: an invalid spec touches nothing.
    let errors = validate(rollout);
    if !errors.is_empty() {
        let status = status::invalid(&ctx, &errors, &mut out);
        return finish(out, status, State::InvalidSpec, now);
    }

    // 2. operations: the manual annotations in effect.
    let (ops, events) = operations::consume(&ctx);
    out.events.append(events);

    // 3. decide: the state, as values.
    let (decision, events) = decide::decide(&ctx, ops);
    out.events.append(events);

    // 4. act, in order: traffic leaves the canary before its fleets go; the
    //    warm deadlines the switch writes are honoured when retiring.
    traffic::act(&ctx, &decision, &mut out);
    fleets::bring_up(&ctx, &decision, &mut out);
    let stamped = fleets::switch(&ctx, &decision, &mut out);
    fleets::preview(&ctx, &decision, &mut out);
    pod_metadata::act(&ctx, &mut out);
    canary::fleets::act(&ctx, &decision, &mut out);
    post_promotion::analysis::act(&ctx, &decision, &mut out);
    gates::job::act(
        &ctx,
        &decision.records.gates,
        decision.state.gated(),
        &mut out,
    );
    gates::pre_promotion::act(
        &ctx,
        &decision.records,
        matches!(decision.state, State::Gated(_)),
        &mut out,
    );
    fleets::retire(&ctx, &decision, &stamped, &mut out);
    restart::act(&ctx, &decision, &mut out);

    // 5. status: written after the actions succeeded.
    let mut status = status::build(&ctx, &decision, &mut out);
    // workloadRef scaleDown: onsuccess, once the status says Healthy.
    workload::scale_down(&ctx, observed, &status, &mut out);

    // 6. housekeeping, only in a plan with nothing else to write: a failed
    //    or refused delete then never holds back a decision or its status.
    let refused = observed.prune_refused.as_deref();
    analysis_history::condition(&ctx, &decision, refused, &mut status, &mut out);
    if out.actions.is_empty() && status == *ctx.old && refused.is_none() {
        analysis_history::act(&ctx, &decision, &mut out);
    }
    finish(out, status, decision.state, now)
}

/// What to write after the API refused one of `rollout`'s writes: no action,
/// the stored status with the refusal in its conditions, and a Warning Event
/// the first time (`status::refused_write`). Pure, like [`plan`].
pub fn plan_refused_write(
    rollout: &Rollout,
    refusal: &WriteRefusal,
    now: DateTime<Utc>,
) -> (RolloutStatus, Vec<PlannedEvent>) {
    with_ctx(rollout, &Observed::default(), now, |ctx| {
        let mut out = Builder::default();
        let status = status::refused_write(&ctx, refusal, &mut out);
        (status, out.events.into_vec())
    })
}

fn finish(out: Builder, status: RolloutStatus, state: State, now: DateTime<Utc>) -> Plan {
    let requeue_after = out
        .wakeups
        .iter()
        .filter(|t| **t > now)
        .min()
        .and_then(|t| (*t - now).to_std().ok());
    Plan {
        actions: out.actions,
        status,
        events: out.events.into_vec(),
        requeue_after,
        state,
    }
}
