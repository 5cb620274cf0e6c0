//! `autoPromotionSeconds` (Argo Rollouts' `blueGreen.autoPromotionSeconds`): a
//! revision waiting for a manual promote is promoted by the operator that many
//! seconds after it started waiting. The wait's start is recorded in
//! `status.awaitingPromotionSince`, so a restarted operator keeps the clock.

use chrono::{DateTime, Duration, Utc};

use super::ctx::Ctx;

/// Where a revision that waits for a manual promote stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wait {
    /// No `autoPromotionSeconds`: it waits for a person.
    ForAPerson,
    /// It waits since `since`, and is promoted at `at` (re-plan then).
    Until {
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The time is up: promote now.
    Due { since: DateTime<Utc> },
}

/// The wait of the current revision, which is available and not approved.
/// The clock starts at the first plan that finds it waiting (kept while the
/// revision stays current and waiting).
pub fn wait(ctx: &Ctx) -> Wait {
    let Some(seconds) = ctx.spec().strategy.red_black.auto_promotion_seconds else {
        return Wait::ForAPerson;
    };
    let old = ctx.old;
    let since = match old.awaiting_promotion_since {
        Some(since) if old.current_revision.as_deref() == Some(ctx.target()) => since,
        _ => ctx.now,
    };
    let at = since + Duration::seconds(i64::from(seconds));
    if ctx.now >= at {
        Wait::Due { since }
    } else {
        Wait::Until { since, at }
    }
}
