//! The status of a Rollout whose write the API refused: the stored status with
//! Stalled/Ready/Progressing saying which object, which write and the API's
//! words. Nothing else changes — the write did not happen, so the world the
//! stored status describes is still the world.

use crate::api::conditions::{self, Desired};
use crate::api::{ConditionStatus, Phase, RolloutStatus};

use super::super::builder::Builder;
use super::super::ctx::Ctx;
use super::super::observed::WriteRefusal;

use ConditionStatus::{False, True};

/// The `reason` of the conditions and of the Warning Event.
pub const WRITE_REFUSED: &str = "WriteRefused";

/// Longest API message quoted in a condition (the Event note has its own
/// bound); an admission webhook may answer with pages.
const MESSAGE_CAP: usize = 1024;

/// The stored status, `Degraded` (a person must act: nothing progresses until
/// the cause is removed), with the refusal in Stalled/Ready/Progressing and
/// without Reconciling (kstatus reads Stalled and Reconciling as exclusive).
/// A Warning Event when the refusal is new or its words changed, never on a
/// retry that is refused the same way.
pub fn build(ctx: &Ctx, refusal: &WriteRefusal, out: &mut Builder) -> RolloutStatus {
    let old = ctx.old;
    let message = format!(
        "the API refused {what} ({code} {reason}): {api}; redblack retries with backoff until \
         the cause (an admission webhook, a quota, RBAC, the Rollout's spec) is removed",
        what = refusal.what,
        code = refusal.code,
        reason = refusal.reason,
        api = cap(&refusal.message),
    );
    let replaced = [
        conditions::STALLED,
        conditions::READY,
        conditions::PROGRESSING,
        conditions::RECONCILING,
    ];
    let desired = vec![
        Desired::new(
            conditions::PROGRESSING,
            False,
            WRITE_REFUSED,
            message.clone(),
        ),
        Desired::new(conditions::READY, False, WRITE_REFUSED, message.clone()),
        Desired::new(conditions::STALLED, True, WRITE_REFUSED, message.clone()),
    ];
    let generation = ctx.rollout.metadata.generation;
    // Every other condition is kept as it was: the write did not happen.
    let mut kept: Vec<_> = old
        .conditions
        .iter()
        .filter(|c| !replaced.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    kept.extend(conditions::merge(
        &old.conditions,
        desired,
        generation,
        ctx.now,
    ));
    kept.sort_by(|a, b| a.type_.cmp(&b.type_));
    let before = conditions::find(&old.conditions, conditions::STALLED);
    if before.is_none_or(|c| c.reason != WRITE_REFUSED || c.message != message) {
        out.warning(WRITE_REFUSED, message);
    }
    RolloutStatus {
        phase: Some(Phase::Degraded),
        observed_generation: generation,
        conditions: kept,
        ..old.clone()
    }
}

/// At most [`MESSAGE_CAP`] bytes, cut at a character boundary, marked when cut.
fn cap(message: &str) -> String {
    if message.len() <= MESSAGE_CAP {
        return message.to_owned();
    }
    let mut end = MESSAGE_CAP;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}
