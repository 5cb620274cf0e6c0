//! PURE: the ledger of one Rollout's notifications, kept in a ConfigMap the
//! Rollout owns (`<rollout>-notifications`, key `ledger.json`), so that the
//! next operator continues where the last one stopped:
//!
//! - `observed`: the Rollout status the notifier last acted on (trimmed to
//!   what triggers read). Notifications are the difference between it and
//!   the status now ([`super::trigger::fired`]); the new `observed` and the
//!   new pending notifications are written in ONE write, so a crash either
//!   loses both (the next operator computes them again) or keeps both.
//! - `pending`: notifications not yet acknowledged by a 2xx, each with its
//!   delivery key, attempts and next attempt time (capped exponential
//!   backoff). Removed only after a 2xx, then recorded in `delivered`.
//! - Bounded: at most [`PENDING_LIMIT`] pending (the oldest are dropped and
//!   counted) and [`DELIVERED_LIMIT`] delivered keys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::report::VerdictReport;
use super::trigger::{Happening, fired};
use crate::api::RolloutStatus;
use crate::api::conditions::READY;
use crate::api::notifier::NotificationSubscription;

/// The ConfigMap key holding the ledger's JSON.
pub const LEDGER_KEY: &str = "ledger.json";
/// Pending notifications kept per Rollout while endpoints are down.
pub const PENDING_LIMIT: usize = 100;
/// Delivered keys remembered per Rollout (for people reading the ledger).
pub const DELIVERED_LIMIT: usize = 50;
/// The ledger's format version.
pub const LEDGER_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub version: u32,
    /// The Rollout's status as last acted on (trimmed, [`trim`]).
    pub observed: RolloutStatus,
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// Keys of delivered notifications, newest last.
    #[serde(default)]
    pub delivered: Vec<String>,
    /// Notifications dropped because [`PENDING_LIMIT`] was reached.
    #[serde(default)]
    pub dropped: u64,
}

/// A notification waiting for its 2xx.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// `<rollout uid>/<happening id>/<notifier>`: the same for every attempt
    /// (the `X-Redblack-Delivery` header and the payload's `id`).
    pub key: String,
    pub notifier: String,
    pub happening: Happening,
    /// The canary report of a verdict, read when the notification was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<VerdictReport>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The retry schedule of a failed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after the `attempts`-th failure: `first` doubling, at most `cap`.
    pub fn after(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.first.saturating_mul(factor).min(self.cap)
    }
}

/// The part of a status that triggers read (counters, selectors and every
/// condition but Ready are left out, so they cause no ledger write).
pub fn trim(status: &RolloutStatus) -> RolloutStatus {
    RolloutStatus {
        current_revision: status.current_revision.clone(),
        stable_revision: status.stable_revision.clone(),
        revision_started_at: status.revision_started_at,
        abort: status.abort.clone(),
        canary: status.canary.clone().map(|mut c| {
            // The share moves while judging; no trigger reads it.
            c.traffic_percent = 0;
            c
        }),
        post_promotion: status.post_promotion.clone(),
        conditions: status
            .conditions
            .iter()
            .filter(|c| c.type_ == READY)
            .cloned()
            .collect(),
        history: status.history.clone(),
        ..RolloutStatus::default()
    }
}

/// The Notifiers a happening goes to (each once, in subscription order).
pub fn routes<'a>(subscriptions: &'a [NotificationSubscription], h: &Happening) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for s in subscriptions {
        let wanted = (s.triggers.is_empty() || s.triggers.contains(&h.trigger))
            && h.severity >= s.min_severity;
        if wanted && !out.contains(&s.notifier.as_str()) {
            out.push(&s.notifier);
        }
    }
    out
}

/// What [`Ledger::advance`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Advanced {
    /// The notifications added to `pending`.
    pub added: Vec<Pending>,
    /// The notifications dropped to stay within [`PENDING_LIMIT`].
    pub dropped: Vec<Pending>,
}

impl Ledger {
    /// A ledger that starts at `status`: what happened before it is not
    /// announced (a Rollout seen for the first time, or one that just
    /// subscribed).
    pub fn starting_at(status: Option<&RolloutStatus>) -> Ledger {
        Ledger {
            version: LEDGER_VERSION,
            observed: status.map(trim).unwrap_or_default(),
            ..Ledger::default()
        }
    }

    /// Moves `observed` to `status` and queues what happened in between for
    /// the subscribed Notifiers. `report` gives the canary report of a
    /// verdict's analysis, if it could be read.
    pub fn advance(
        &mut self,
        status: &RolloutStatus,
        uid: &str,
        subscriptions: &[NotificationSubscription],
        report: impl Fn(&Happening) -> Option<VerdictReport>,
        now: DateTime<Utc>,
    ) -> Advanced {
        let after = trim(status);
        let mut advanced = Advanced::default();
        for happening in fired(&self.observed, &after, now) {
            for notifier in routes(subscriptions, &happening) {
                let pending = Pending {
                    key: format!("{uid}/{}/{notifier}", happening.id),
                    notifier: notifier.to_owned(),
                    report: report(&happening),
                    happening: happening.clone(),
                    attempts: 0,
                    next_attempt_at: None,
                    last_error: None,
                };
                advanced.added.push(pending.clone());
                self.pending.push(pending);
            }
        }
        self.observed = after;
        if self.pending.len() > PENDING_LIMIT {
            let excess = self.pending.len() - PENDING_LIMIT;
            advanced.dropped = self.pending.drain(..excess).collect();
            self.dropped += excess as u64;
        }
        advanced
    }

    /// Would [`Ledger::advance`] change anything?
    pub fn behind(&self, status: &RolloutStatus) -> bool {
        self.observed != trim(status)
    }

    /// Keys of the pending notifications due at `now`, oldest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.pending
            .iter()
            .filter(|p| p.next_attempt_at.is_none_or(|at| at <= now))
            .map(|p| p.key.clone())
            .collect()
    }

    /// The earliest retry time of a pending notification.
    pub fn next_attempt(&self) -> Option<DateTime<Utc>> {
        self.pending.iter().filter_map(|p| p.next_attempt_at).min()
    }

    pub fn get(&self, key: &str) -> Option<&Pending> {
        self.pending.iter().find(|p| p.key == key)
    }

    /// A 2xx arrived for `key`: it is no longer pending.
    pub fn delivered(&mut self, key: &str) {
        self.pending.retain(|p| p.key != key);
        self.delivered.push(key.to_owned());
        if self.delivered.len() > DELIVERED_LIMIT {
            let excess = self.delivered.len() - DELIVERED_LIMIT;
            self.delivered.drain(..excess);
        }
    }

    /// A delivery of `key` failed at `now`: retried after the backoff.
    /// Returns the attempts so far.
    pub fn failed(&mut self, key: &str, error: &str, backoff: Backoff, now: DateTime<Utc>) -> u32 {
        let Some(p) = self.pending.iter_mut().find(|p| p.key == key) else {
            return 0;
        };
        p.attempts = p.attempts.saturating_add(1);
        let wait =
            chrono::Duration::from_std(backoff.after(p.attempts)).unwrap_or(chrono::Duration::MAX);
        p.next_attempt_at = Some(now + wait);
        p.last_error = Some(super::payload::bounded(error, 512));
        p.attempts
    }
}

#[cfg(test)]
mod tests;
