//! The gates' decisions: which gates run at a point (before the canary's
//! traffic, before the switch), their records in `status.gates`, and whether
//! the point is open, held, or failed. Pure: from the records, the observed
//! Jobs, the HTTP attempts of this reconcile and the clock.

use chrono::{DateTime, Utc};

use super::super::builder::Events;
use super::super::ctx::Ctx;
use super::super::names::gate_job_name;
use super::super::observed::JobPhase;
use super::super::operations::Ops;
use super::super::records::Records;
use crate::api::{AbortReason, AbortStatus, Gate, GateAt, GatePhase, GateStatus};

/// Where the new revision stands: the point it reached in the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// The canary's fleets are ready; no traffic yet.
    Canary,
    /// The full fleet is available; not switched yet.
    Switch,
    /// Switched: the revision is live, the previous fleet kept warm.
    AfterSwitch,
}

/// What holds the new revision at a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateHold {
    /// `gate smoke (Job web-5f7c-smoke-1)`, `pre-promotion analysis web-5f7c-pre-1`.
    pub what: String,
    /// The latest word: an HTTP attempt's answer, a Job's state.
    pub message: Option<String>,
    /// Re-plan then (a Job is polled; an HTTP attempt is due).
    pub wake_at: DateTime<Utc>,
}

/// The verdict at a point.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Open,
    Hold(GateHold),
    Failed(AbortStatus),
}

/// How often an undecided Job gate is looked at again (Jobs are read, not
/// watched: only while a gate runs).
pub const JOB_POLL_SECONDS: i64 = 2;

/// The gates that run at `point`: without a canary, `BeforeCanary` gates run
/// before the switch.
pub fn at_point<'a>(ctx: &Ctx<'a>, point: Point) -> impl Iterator<Item = &'a Gate> {
    let canary = ctx.canary().is_some();
    ctx.spec()
        .strategy
        .red_black
        .gates
        .iter()
        .filter(move |g| match (point, g.at) {
            (Point::Canary, GateAt::BeforeCanary) => canary,
            (Point::Switch, GateAt::BeforeSwitch) => true,
            (Point::Switch, GateAt::BeforeCanary) => !canary,
            (Point::AfterSwitch, GateAt::AfterSwitch) => true,
            _ => false,
        })
}

/// Only the current revision's records are kept; a retry starts the gates
/// of the current revision again (a new attempt: a new Job).
pub fn prune(ctx: &Ctx, ops: &Ops, records: &mut Records) {
    let target = ctx.target();
    records.gates.retain(|g| g.revision == target);
    if ops.retried {
        for g in &mut records.gates {
            g.attempt += 1;
            g.phase = GatePhase::Running;
            g.message = None;
            g.attempts = 0;
            g.last_attempt = None;
            g.started_at = ctx.now;
            g.job_name = g
                .job_name
                .as_ref()
                .map(|_| gate_job_name(ctx.rollout, target, &g.name, g.attempt));
        }
    }
}

/// Decides the gates at `point` for the current revision, updating their
/// records. A failure records an abort in `ops` and is announced once.
pub fn decide(
    ctx: &Ctx,
    point: Point,
    ops: &mut Ops,
    records: &mut Records,
    events: &mut Events,
) -> Verdict {
    let mut hold: Option<GateHold> = None;
    for gate in at_point(ctx, point) {
        let record = record_of(ctx, gate, records);
        let before = record.phase;
        step(ctx, gate, record);
        match record.phase {
            GatePhase::Passed => {
                if before != GatePhase::Passed {
                    events.normal(
                        "GatePassed",
                        format!("gate {} passed for {}", gate.name, record.revision),
                    );
                }
            }
            GatePhase::Failed => {
                let message = record.message.clone().unwrap_or_default();
                let logs = record
                    .logs
                    .as_ref()
                    .map(|l| format!("; logs: {l}"))
                    .unwrap_or_default();
                let abort = AbortStatus {
                    revision: record.revision.clone(),
                    reason: AbortReason::GateFailed,
                    at: ctx.now,
                };
                let traffic = match &record.previous_revision {
                    Some(previous) if point == Point::AfterSwitch => {
                        if can_revert(ctx, previous) {
                            format!("switching traffic back to {previous}")
                        } else {
                            format!(
                                "the previous fleet {previous} is not available: traffic stays; undo to bring it back"
                            )
                        }
                    }
                    _ => "traffic stays on the stable revision".to_owned(),
                };
                let after = if point == Point::AfterSwitch {
                    " after the switch"
                } else {
                    ""
                };
                events.warning(
                    "GateFailed",
                    format!(
                        "gate {} failed for {}{after}: {message}{logs}; {traffic}",
                        gate.name, record.revision
                    ),
                );
                ops.abort = Some(abort.clone());
                ops.approved = None;
                return Verdict::Failed(abort);
            }
            GatePhase::Running => {
                if hold.is_none() {
                    hold = Some(held(ctx, gate, record));
                }
            }
        }
    }
    hold.map_or(Verdict::Open, Verdict::Hold)
}

/// The record of `gate` for the current revision, started now if there is none.
fn record_of<'r>(ctx: &Ctx, gate: &Gate, records: &'r mut Records) -> &'r mut GateStatus {
    let target = ctx.target();
    let at = records
        .gates
        .iter()
        .position(|g| g.name == gate.name && g.revision == target);
    let index = match at {
        Some(i) => i,
        None => {
            let job_name = gate
                .job
                .as_ref()
                .map(|_| gate_job_name(ctx.rollout, target, &gate.name, 1));
            let namespace = ctx.rollout.metadata.namespace.clone().unwrap_or_default();
            records.gates.push(GateStatus {
                name: gate.name.clone(),
                revision: target.to_owned(),
                at: gate.at,
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
                previous_revision: None,
            });
            records.gates.len() - 1
        }
    };
    &mut records.gates[index]
}

/// Moves a running record on from what was observed.
fn step(ctx: &Ctx, gate: &Gate, record: &mut GateStatus) {
    if record.phase != GatePhase::Running {
        return;
    }
    if gate.job.is_some() {
        let Some(job) = record
            .job_name
            .as_ref()
            .and_then(|name| ctx.world.jobs.iter().find(|j| &j.name == name))
        else {
            return;
        };
        match job.phase {
            JobPhase::Running => record.message = Some(format!("Job {} is running", job.name)),
            JobPhase::Complete => {
                record.phase = GatePhase::Passed;
                record.message = Some(format!("Job {} completed", job.name));
            }
            JobPhase::Failed => {
                record.phase = GatePhase::Failed;
                record.message = Some(format!(
                    "Job {} failed: {}",
                    job.name,
                    job.message.clone().unwrap_or_default()
                ));
            }
        }
    } else if let Some(http) = &gate.http {
        let Some(check) = ctx
            .world
            .http_checks
            .iter()
            .find(|c| c.gate == gate.name && c.revision == record.revision)
        else {
            return;
        };
        record.attempts += 1;
        record.last_attempt = Some(ctx.now);
        record.message = Some(format!(
            "attempt {}/{}: {}",
            record.attempts,
            http.retries + 1,
            check.message
        ));
        if check.passed {
            record.phase = GatePhase::Passed;
        } else if record.attempts > http.retries {
            record.phase = GatePhase::Failed;
        }
    }
}

/// What a running gate holds, and when to look again.
fn held(ctx: &Ctx, gate: &Gate, record: &GateStatus) -> GateHold {
    let what = match &record.job_name {
        Some(job) => format!("gate {} (Job {job})", gate.name),
        None => format!("gate {} (HTTP)", gate.name),
    };
    let wake_at = match &gate.http {
        Some(http) => {
            super::http::next_attempt(record, http).max(ctx.now + chrono::Duration::seconds(1))
        }
        None => ctx.now + chrono::Duration::seconds(JOB_POLL_SECONDS),
    };
    GateHold {
        what,
        message: record.message.clone(),
        wake_at,
    }
}

/// Traffic can go back to `previous` after a failed `AfterSwitch` gate: the
/// current revision is live and the previous fleet is still fully available
/// (kept warm).
pub fn can_revert(ctx: &Ctx, previous: &str) -> bool {
    ctx.world.active_hash.as_deref() == Some(ctx.target())
        && ctx.world.revision_available(previous, ctx.spec().replicas)
}
