//! Manual operations: annotations the CLI (or a human) sets on the Rollout,
//! value `<hash>[@<nonce>]`. Each distinct value is acted on once; the values
//! already consumed are recorded in `status.operations`, so a restarted
//! operator does not act twice and a stale annotation left in Git is inert.

use super::builder::Events;
use super::ctx::Ctx;
use crate::api::{
    ABORT_ANNOTATION, AbortReason, AbortStatus, CanaryPhase, OperationsStatus, PROMOTE_ANNOTATION,
    RETRY_ANNOTATION, Rollout,
};

/// Manual-operation state for this plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Ops {
    pub abort: Option<AbortStatus>,
    pub approved: Option<String>,
    pub consumed: OperationsStatus,
    /// A retry was accepted in this plan: the progress clock restarts.
    pub retried: bool,
}

fn hash_part(value: &str) -> &str {
    value.split('@').next().unwrap_or(value).trim()
}

fn fresh<'a>(rollout: &'a Rollout, key: &str, consumed: &Option<String>) -> Option<&'a str> {
    let value = rollout.metadata.annotations.as_ref()?.get(key)?;
    (consumed.as_deref() != Some(value.as_str())).then_some(value.as_str())
}

/// The operations in effect for this plan, and the Events that say which new
/// annotations were accepted or ignored.
pub fn consume(ctx: &Ctx) -> (Ops, Events) {
    let (rollout, old, target) = (ctx.rollout, ctx.old, ctx.target());
    let mut out = Events::default();
    // Abort and approval belong to one revision: a new template clears them.
    let mut ops = Ops {
        abort: old.abort.clone().filter(|a| a.revision == target),
        approved: old.approved_revision.clone().filter(|h| h == target),
        consumed: old.operations.clone(),
        retried: false,
    };
    // Abort before retry: when both are new, the retry is the later intent.
    if let Some(value) = fresh(rollout, ABORT_ANNOTATION, &old.operations.abort) {
        ops.consumed.abort = Some(value.to_owned());
        abort(ctx, hash_part(value), &mut ops, &mut out);
    }
    if let Some(value) = fresh(rollout, RETRY_ANNOTATION, &old.operations.retry) {
        ops.consumed.retry = Some(value.to_owned());
        retry(ctx, hash_part(value), &mut ops, &mut out);
    }
    if let Some(value) = fresh(rollout, PROMOTE_ANNOTATION, &old.operations.promote) {
        ops.consumed.promote = Some(value.to_owned());
        promote(ctx, hash_part(value), &mut ops, &mut out);
    }
    (ops, out)
}

/// The current revision's fleet is the one the active Service selects.
fn target_is_active(ctx: &Ctx) -> bool {
    ctx.world.active_hash.as_deref() == Some(ctx.target())
}

/// Only the current, not yet promoted revision can be aborted.
fn abort(ctx: &Ctx, hash: &str, ops: &mut Ops, out: &mut Events) {
    let target = ctx.target();
    if hash == target && !target_is_active(ctx) && ops.abort.is_none() {
        ops.abort = Some(AbortStatus {
            revision: target.to_owned(),
            reason: AbortReason::User,
            at: ctx.now,
        });
        ops.approved = None;
        out.warning(
            "Aborted",
            format!("revision {hash} aborted; traffic stays on the stable revision"),
        );
    } else {
        out.normal("AbortIgnored", format!("abort of {hash} ignored: only the current, not yet promoted revision ({target}) can be aborted"));
    }
}

/// An aborted revision is tried again; a canary held on a verdict (Marginal,
/// Inconclusive, Error) gets a new analysis attempt.
fn retry(ctx: &Ctx, hash: &str, ops: &mut Ops, out: &mut Events) {
    let target = ctx.target();
    let held_canary = ctx.old.canary.as_ref().is_some_and(|c| {
        c.revision.as_deref() == Some(target)
            && (matches!(
                c.phase,
                Some(CanaryPhase::Marginal | CanaryPhase::Inconclusive | CanaryPhase::Error)
            ) || c.analysis_refused.is_some())
    });
    if ops.abort.as_ref().is_some_and(|a| a.revision == hash) {
        ops.abort = None;
        ops.retried = true;
        out.normal("Retried", format!("retrying revision {hash}"));
    } else if held_canary && hash == target && ops.abort.is_none() {
        ops.retried = true;
        out.normal(
            "Retried",
            format!("judging the canary of {hash} again (new analysis attempt)"),
        );
    } else {
        out.normal(
            "RetryIgnored",
            format!("retry of {hash} ignored: it is not an aborted current revision"),
        );
    }
}

/// Approves the current revision, unless it is live or aborted.
fn promote(ctx: &Ctx, hash: &str, ops: &mut Ops, out: &mut Events) {
    let target = ctx.target();
    if hash == target && !target_is_active(ctx) && ops.abort.is_none() {
        ops.approved = Some(target.to_owned());
        out.normal(
            "PromoteAccepted",
            format!("revision {hash} approved; traffic switches once its fleet is available"),
        );
    } else {
        out.normal("PromoteIgnored", format!("promote of {hash} ignored: the current revision is {target} and it must be neither live nor aborted"));
    }
}
