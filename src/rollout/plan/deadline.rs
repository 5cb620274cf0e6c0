//! The progress deadline: the one rule for how long the current revision (or
//! its canary's fleets) may take to become available, and what a miss means.
//! The clock starts when the revision became current and restarts on a retry.
//!
//! A miss is reported, not acted on, by default (Argo Rollouts'
//! `progressDeadlineAbort: false`): the revision is Degraded while late and
//! carries on when its pods become ready — a slow image pull or a node that
//! took long to come up heals without a person. `progressDeadlineAbort: true`
//! abandons it instead, until a `retry` or a new template.

use chrono::{DateTime, Duration, Utc};

use super::builder::Events;
use super::ctx::Ctx;
use crate::api::conditions;
use crate::api::{AbortReason, AbortStatus};

/// Reason of the conditions and of the Warning Event of a missed deadline.
pub const EXCEEDED: &str = "ProgressDeadlineExceeded";

#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Still within the deadline: re-plan at `deadline` at the latest.
    Within {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Missed, and the spec does not abort on a miss: still brought up,
    /// reported Degraded until available (no timer: the pods' readiness
    /// triggers the next plan).
    Late {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Missed with `progressDeadlineAbort`: the revision is abandoned.
    Exceeded(AbortStatus),
}

/// Where the current revision stands against its deadline. `retried`: a retry
/// was accepted in this plan, so the clock starts again now.
pub fn progress(ctx: &Ctx, retried: bool) -> Progress {
    let target = ctx.target();
    let spec = ctx.spec();
    let started_at = match (
        ctx.old.current_revision.as_deref(),
        ctx.old.progress_started_at,
    ) {
        (Some(current), Some(started)) if current == target && !retried => started,
        _ => ctx.now,
    };
    let deadline = started_at + Duration::seconds(i64::from(spec.progress_deadline_seconds));
    if ctx.now < deadline {
        return Progress::Within {
            started_at,
            deadline,
        };
    }
    if !spec.progress_deadline_abort {
        return Progress::Late {
            started_at,
            deadline,
        };
    }
    Progress::Exceeded(AbortStatus {
        revision: target.to_owned(),
        reason: AbortReason::ProgressDeadlineExceeded,
        at: ctx.now,
    })
}

/// A Warning Event the first time the deadline abandons a revision (not on
/// every re-plan of the aborted state).
pub fn announce(ctx: &Ctx, abort: &AbortStatus, events: &mut Events) {
    if abort.reason == AbortReason::ProgressDeadlineExceeded
        && ctx.old.abort.as_ref() != Some(abort)
    {
        events.warning(
            EXCEEDED,
            format!(
                "revision {} was not available within {}s; traffic stays where it was",
                ctx.target(),
                ctx.spec().progress_deadline_seconds
            ),
        );
    }
}

/// A Warning Event when the current revision becomes late (not on every
/// re-plan while it stays late): the old status of the same revision already
/// said so in its Progressing condition.
pub fn announce_late(ctx: &Ctx, events: &mut Events) {
    let said = ctx.old.current_revision.as_deref() == Some(ctx.target())
        && conditions::find(&ctx.old.conditions, conditions::PROGRESSING)
            .is_some_and(|c| c.reason == EXCEEDED);
    if !said {
        events.warning(
            EXCEEDED,
            format!(
                "revision {} was not available within {}s; it goes on once its pods are ready (traffic stays where it was until then)",
                ctx.target(),
                ctx.spec().progress_deadline_seconds
            ),
        );
    }
}
