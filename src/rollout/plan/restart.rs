//! `spec.restartAt` (Argo Rollouts' `restartAt`, set by `redblack restart`):
//! the live fleet's pods that started before it are deleted one at a time —
//! each only while every other pod of the fleet is ready and none is
//! terminating — so the fleet never has fewer than `replicas − 1` ready pods.
//! Its ReplicaSet recreates each (no new revision, no traffic switch). Done
//! when no old pod is left and the fleet is ready again: recorded in
//! `status.restartedAt`. Only while the Rollout is steady: a rollout in
//! progress brings up new pods anyway, and the restart waits for it.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use super::builder::Builder;
use super::ctx::Ctx;
use super::state::{Decision, State};
use crate::api::POD_TEMPLATE_HASH_LABEL;

/// Where the restart stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Restart {
    /// No restart asked, or the asked one is done (`status.restartedAt`).
    Idle,
    /// `restartAt` is in the future: re-plan then.
    Scheduled(DateTime<Utc>),
    /// Waiting: the Rollout is not steady, or the fleet is not all ready.
    Waiting,
    /// Delete this pod now.
    Delete(String),
    /// Every pod started after `restartAt` and the fleet is ready.
    Done(DateTime<Utc>),
}

/// The restart of the live fleet for this plan. Pure.
pub fn progress(ctx: &Ctx, state: &State) -> Restart {
    let Some(at) = ctx.spec().restart_at else {
        return Restart::Idle;
    };
    if ctx.old.restarted_at == Some(at) {
        return Restart::Idle;
    }
    if at > ctx.now {
        return Restart::Scheduled(at);
    }
    let (State::Steady, Some(live)) = (state, ctx.world.active_hash.as_deref()) else {
        return Restart::Waiting;
    };
    let fleet: Vec<&Pod> = ctx
        .world
        .pods
        .iter()
        .filter(|p| label(p) == Some(live))
        .collect();
    let terminating = fleet
        .iter()
        .any(|p| p.metadata.deletion_timestamp.is_some());
    let ready = fleet.iter().filter(|p| is_ready(p)).count();
    let full = !terminating && ready >= usize::try_from(ctx.spec().replicas).unwrap_or(0);
    let oldest = fleet
        .iter()
        .filter(|p| started(p).is_some_and(|t| t < at.timestamp()))
        .min_by_key(|p| started(p));
    match (full, oldest) {
        (false, _) => Restart::Waiting,
        (true, None) => Restart::Done(at),
        (true, Some(pod)) => pod
            .metadata
            .name
            .clone()
            .map_or(Restart::Waiting, Restart::Delete),
    }
}

/// The actions and timers of the restart.
pub fn act(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    match progress(ctx, &decision.state) {
        Restart::Scheduled(at) => out.wakeups.push(at),
        Restart::Delete(name) => {
            out.actions
                .push(super::action::Action::DeletePod { name: name.clone() });
            out.normal(
                "RestartingPod",
                format!(
                    "deleted pod {name} (started before restartAt); its ReplicaSet recreates it"
                ),
            );
        }
        Restart::Done(at) => out.normal(
            "Restarted",
            format!(
                "every pod of the live fleet started after {}",
                at.to_rfc3339()
            ),
        ),
        Restart::Idle | Restart::Waiting => {}
    }
}

/// `status.restartedAt` after this plan.
pub fn restarted_at(ctx: &Ctx, state: &State) -> Option<DateTime<Utc>> {
    match progress(ctx, state) {
        Restart::Done(at) => Some(at),
        _ => ctx.old.restarted_at,
    }
}

/// The pod's creation, in Unix seconds (stored timestamps have whole seconds).
fn started(pod: &Pod) -> Option<i64> {
    Some(pod.metadata.creation_timestamp.as_ref()?.0.as_second())
}

fn label(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
