//! `AfterSwitch` gates: judged once the new revision is live, while the
//! previous fleet is kept warm (`Records::protected`). Their records are
//! started by the switch (with the revision traffic goes back to); a failure
//! switches traffic back to that fleet, as a failed post-promotion analysis
//! does (`post_promotion::verdict`); a pass lets the rollout complete.

use super::super::builder::Events;
use super::super::ctx::Ctx;
use super::super::names::gate_job_name;
use super::super::operations::Ops;
use super::super::records::Records;
use super::verdict::{self, Point, Verdict};
use crate::api::{GateAt, GatePhase, GateStatus};

/// Starts the records of the `AfterSwitch` gates of the current revision,
/// switched to from `previous`. A running record after the same previous
/// revision is kept (a switch planned again, or one whose status write was
/// lost, does not restart what runs; a retry already moved it on to a new
/// attempt in `verdict::prune`); any other is (re)started now.
pub fn start(ctx: &Ctx, records: &mut Records, previous: &str) {
    let target = ctx.target();
    if previous == target {
        return;
    }
    let namespace = ctx.rollout.metadata.namespace.clone().unwrap_or_default();
    for gate in ctx.spec().strategy.red_black.gates.iter() {
        if gate.at != GateAt::AfterSwitch {
            continue;
        }
        let found = records
            .gates
            .iter_mut()
            .find(|g| g.name == gate.name && g.revision == target);
        match found {
            Some(record)
                if record.phase == GatePhase::Running
                    && record.previous_revision.as_deref() == Some(previous) => {}
            Some(record) => {
                record.phase = GatePhase::Running;
                record.message = None;
                record.attempts = 0;
                record.last_attempt = None;
                record.started_at = ctx.now;
                record.previous_revision = Some(previous.to_owned());
            }
            None => {
                let job_name = gate
                    .job
                    .as_ref()
                    .map(|_| gate_job_name(ctx.rollout, target, &gate.name, 1));
                records.gates.push(GateStatus {
                    name: gate.name.clone(),
                    revision: target.to_owned(),
                    at: GateAt::AfterSwitch,
                    phase: GatePhase::Running,
                    attempt: 1,
                    message: None,
                    logs: job_name
                        .as_ref()
                        .map(|j| format!("kubectl logs -n {namespace} job/{j}")),
                    job_name,
                    attempts: 0,
                    last_attempt: None,
                    started_at: ctx.now,
                    previous_revision: Some(previous.to_owned()),
                });
            }
        }
    }
}

/// Whether an `AfterSwitch` gate of the current revision was started by its
/// switch and runs: judged even when the revision is no longer live, so that
/// a failure whose revert's status write was lost is found again.
pub fn running(ctx: &Ctx, records: &Records) -> bool {
    records.gates.iter().any(|g| {
        g.at == GateAt::AfterSwitch
            && g.revision == ctx.target()
            && g.previous_revision.is_some()
            && g.phase == GatePhase::Running
    })
}

/// What the `AfterSwitch` gates of the current revision say.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterSwitch {
    /// None started, or all passed.
    Open,
    /// Still running: the previous fleet stays warm, nothing is switched.
    Hold(verdict::GateHold),
    /// Failed: switch back to `to` now (Some), or the abort is recorded in
    /// `ops` and there is nothing to switch back to (already switched back,
    /// or the previous fleet is not available).
    Failed(Option<String>),
}

/// Decides the running `AfterSwitch` gates of the current revision.
pub fn judge(ctx: &Ctx, ops: &mut Ops, records: &mut Records, events: &mut Events) -> AfterSwitch {
    // Decided already (passed, or failed and acted on: as a failed
    // post-promotion analysis, it is not announced again).
    if !running(ctx, records) {
        return AfterSwitch::Open;
    }
    let target = ctx.target();
    match verdict::decide(ctx, Point::AfterSwitch, ops, records, events) {
        Verdict::Open => AfterSwitch::Open,
        Verdict::Hold(hold) => AfterSwitch::Hold(hold),
        Verdict::Failed(_) => {
            let previous = records
                .gates
                .iter()
                .find(|g| {
                    g.at == GateAt::AfterSwitch
                        && g.revision == target
                        && g.phase == GatePhase::Failed
                })
                .and_then(|g| g.previous_revision.clone());
            AfterSwitch::Failed(previous.filter(|p| verdict::can_revert(ctx, p)))
        }
    }
}
