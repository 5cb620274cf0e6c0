//! `spec.workloadRef` in the planner: the Rollout as planned (its template,
//! and its selector when unset, taken from the observed Deployment), the
//! status while the Deployment is missing (nothing moves), and
//! `scaleDown: onsuccess` (the Deployment scaled to 0 once Healthy).
//!
//! The shell only reads the Deployment into [`Observed::workload`]; every
//! decision about it is made here.

use std::borrow::Cow;

use super::action::Action;
use super::builder::Builder;
use super::ctx::Ctx;
use super::observed::Observed;
use crate::api::conditions::{self, Desired};
use crate::api::workload_ref::ScaleDown;
use crate::api::{ConditionStatus, Phase, Rollout, RolloutStatus};

/// Reason of the conditions and the Event while the Deployment is missing.
pub const WORKLOAD_MISSING: &str = "WorkloadMissing";

/// The Rollout the pipeline plans: unchanged without `workloadRef`; with it,
/// the Deployment's template (and selector, when the Rollout sets none).
/// Err(name of the Deployment) when it was not observed.
pub fn resolve<'a>(rollout: &'a Rollout, observed: &Observed) -> Result<Cow<'a, Rollout>, String> {
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(Cow::Borrowed(rollout));
    };
    let Some(workload) = &observed.workload else {
        return Err(reference.name.clone());
    };
    let mut resolved = rollout.clone();
    resolved.spec.template = workload.template.clone();
    let unset = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        s.match_labels.is_none() && s.match_expressions.is_none()
    };
    if unset(&resolved.spec.selector) {
        resolved.spec.selector = workload.selector.clone();
    }
    Ok(Cow::Owned(resolved))
}

/// The status while the `workloadRef` Deployment `name` is missing: the
/// stored one, Degraded, with Ready False and Stalled True naming it; no
/// action (fleets and traffic stay as they are). One Warning Event when it
/// goes missing.
pub fn missing(ctx: &Ctx, name: &str, out: &mut Builder) -> RolloutStatus {
    let (rollout, old) = (ctx.rollout, ctx.old);
    let ns = rollout.metadata.namespace.as_deref().unwrap_or_default();
    let message = format!(
        "workloadRef: Deployment {name} not found in namespace {ns}; nothing is changed until it exists"
    );
    let mut status = old.clone();
    status.observed_generation = rollout.metadata.generation;
    status.phase = Some(Phase::Degraded);
    status.conditions = conditions::merge(
        &old.conditions,
        vec![
            Desired::new(
                conditions::READY,
                ConditionStatus::False,
                WORKLOAD_MISSING,
                message.clone(),
            ),
            Desired::new(
                conditions::STALLED,
                ConditionStatus::True,
                WORKLOAD_MISSING,
                message.clone(),
            ),
        ],
        rollout.metadata.generation,
        ctx.now,
    );
    let was = conditions::find(&old.conditions, conditions::READY);
    if was.is_none_or(|c| c.reason != WORKLOAD_MISSING || c.message != message) {
        out.warning(WORKLOAD_MISSING, message);
    }
    status
}

/// `scaleDown: onsuccess`: once the status to write is Healthy, the
/// Deployment is scaled to 0 (Argo Rollouts' semantics); `never` leaves it.
pub fn scale_down(ctx: &Ctx, observed: &Observed, status: &RolloutStatus, out: &mut Builder) {
    let Some(reference) = &ctx.spec().workload_ref else {
        return;
    };
    let Some(workload) = &observed.workload else {
        return;
    };
    if reference.scale_down != Some(ScaleDown::OnSuccess)
        || status.phase != Some(Phase::Healthy)
        || workload.replicas == 0
    {
        return;
    }
    out.actions.push(Action::ScaleDeployment {
        name: reference.name.clone(),
        replicas: 0,
    });
    out.normal(
        "ScaledDeployment",
        format!(
            "scaled Deployment {} (workloadRef, scaleDown: onsuccess) from {} to 0: the Rollout is Healthy",
            reference.name, workload.replicas
        ),
    );
}
