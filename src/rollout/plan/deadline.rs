//! The progress deadline: the one rule for how long the current revision (or
//! its canary's fleets) may take to become available before it is abandoned.
//! The clock starts when the revision became current and restarts on a retry.

use chrono::{DateTime, Duration, Utc};

use super::builder::Events;
use super::ctx::Ctx;
use crate::api::{AbortReason, AbortStatus};

#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Still within the deadline: re-plan at `deadline` at the latest.
    Within {
        started_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Missed: the revision is abandoned with this abort.
    Exceeded(AbortStatus),
}

/// Where the current revision stands against its deadline. `retried`: a retry
/// was accepted in this plan, so the clock starts again now.
pub fn progress(ctx: &Ctx, retried: bool) -> Progress {
    let target = ctx.target();
    let started_at = match (
        ctx.old.current_revision.as_deref(),
        ctx.old.progress_started_at,
    ) {
        (Some(current), Some(started)) if current == target && !retried => started,
        _ => ctx.now,
    };
    let deadline = started_at + Duration::seconds(i64::from(ctx.spec().progress_deadline_seconds));
    if ctx.now >= deadline {
        return Progress::Exceeded(AbortStatus {
            revision: target.to_owned(),
            reason: AbortReason::ProgressDeadlineExceeded,
            at: ctx.now,
        });
    }
    Progress::Within {
        started_at,
        deadline,
    }
}

/// A Warning Event the first time the deadline abandons a revision (not on
/// every re-plan of the aborted state).
pub fn announce(ctx: &Ctx, abort: &AbortStatus, events: &mut Events) {
    if abort.reason == AbortReason::ProgressDeadlineExceeded
        && ctx.old.abort.as_ref() != Some(abort)
    {
        events.warning(
            "ProgressDeadlineExceeded",
            format!(
                "revision {} was not available within {}s; traffic stays where it was",
                ctx.target(),
                ctx.spec().progress_deadline_seconds
            ),
        );
    }
}
