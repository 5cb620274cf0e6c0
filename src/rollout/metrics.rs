//! What a Rollout reconcile's status write means for the metrics
//! (docs/metrics.md). [`transitions`] is PURE: from the status the reconcile
//! observed and the one it wrote (plus the verdict times of the analyses the
//! status names, and the clock) it derives the events to count. The shell
//! calls [`record`] once, after the plan's writes (its status included) all
//! succeeded: a transition is counted by the reconcile that wrote it, so a
//! restarted operator, which observes it already written, does not count it
//! again.
//!
//! The state of every Rollout (phase, revisions, analysis scores) is not
//! recorded here but read from the caches at each scrape ([`state`]).

pub mod state;

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{CanaryPhase, GatePhase, Outcome, PostPromotionPhase, Rollout, RolloutStatus};
use crate::web::metrics::OperatorMetrics;
use crate::web::rollout_metrics::{NamespaceLabels, reason_labels, verdict_labels};

/// When the analyses named by the written status reached their verdicts
/// (`CanaryAnalysis.status.completedAt`), as observed in the caches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerdictTimes {
    /// Of `status.canary.analysisName`.
    pub canary: Option<DateTime<Utc>>,
    /// Of `status.postPromotion.analysisName`.
    pub post_promotion: Option<DateTime<Utc>>,
}

/// One event to count.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// `status.abort` newly set (the API's `AbortReason` name).
    Aborted { reason: String },
    /// Traffic taken back from a revision after a verdict.
    Reverted { reason: &'static str },
    /// Traffic switched to a new revision (`Promoted` history record), this
    /// long after it became current.
    Live { seconds: f64 },
    /// Traffic changed this long after the verdict `verdict` that caused it.
    VerdictToTraffic { verdict: String, seconds: f64 },
}

/// The events between `before` (observed; `None` for a new Rollout) and
/// `after` (written at `now`).
pub fn transitions(
    before: Option<&RolloutStatus>,
    after: &RolloutStatus,
    verdicts: &VerdictTimes,
    now: DateTime<Utc>,
) -> Vec<Transition> {
    let empty = RolloutStatus::default();
    let before = before.unwrap_or(&empty);
    let mut out = Vec::new();
    if let Some(abort) = &after.abort
        && before.abort.as_ref() != Some(abort)
    {
        out.push(Transition::Aborted {
            reason: format!("{:?}", abort.reason),
        });
    }
    if switched_to_current(before, after) {
        if let Some(started) = after.revision_started_at {
            out.push(Transition::Live {
                seconds: seconds(started, now),
            });
        }
        // The switch a passed (or marginal-promoted) canary waited for.
        if let (Some(canary), Some(at)) = (&after.canary, verdicts.canary)
            && canary.revision == after.current_revision
            && let Some(verdict) = canary.phase.and_then(verdict_name)
        {
            out.push(Transition::VerdictToTraffic {
                verdict: verdict.to_owned(),
                seconds: seconds(at, now),
            });
        }
    }
    if let Some(phase) = canary_traffic_withdrawn(before, after) {
        out.push(Transition::Reverted {
            reason: "CanaryFailed",
        });
        if let Some(at) = verdicts.canary {
            out.push(Transition::VerdictToTraffic {
                verdict: phase.to_owned(),
                seconds: seconds(at, now),
            });
        }
    }
    if switched_back_after_post_promotion(before, after) {
        out.push(Transition::Reverted {
            reason: "PostPromotionFailed",
        });
        if let Some(at) = verdicts.post_promotion {
            out.push(Transition::VerdictToTraffic {
                verdict: "Failed".to_owned(),
                seconds: seconds(at, now),
            });
        }
    }
    if switched_back_after_gate(before, after) {
        out.push(Transition::Reverted {
            reason: "GateFailed",
        });
    }
    out
}

/// Traffic went back to the previous fleet because an `AfterSwitch` gate
/// failed (its record names the revision it goes back to).
fn switched_back_after_gate(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    before.stable_revision != after.stable_revision
        && after.gates.iter().any(|g| {
            g.phase == GatePhase::Failed
                && g.previous_revision.is_some()
                && g.previous_revision == after.stable_revision
        })
}

/// A `Promoted` record for the current revision appeared in the history: the
/// Service now selects it (a rollback to an older revision is not a new
/// revision going live).
fn switched_to_current(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    let Some(current) = after.current_revision.as_deref() else {
        return false;
    };
    after
        .history
        .iter()
        .any(|r| r.outcome == Outcome::Promoted && r.hash == current && !before.history.contains(r))
}

/// The canary of the same revision had traffic and now has none, after a
/// verdict that does not promote it: the verdict's name. (A passed canary's
/// fleets go before the switch; that traffic change is the switch.)
fn canary_traffic_withdrawn(before: &RolloutStatus, after: &RolloutStatus) -> Option<&'static str> {
    let (old, new) = (before.canary.as_ref()?, after.canary.as_ref()?);
    let phase = new.phase?;
    let withdrawn =
        old.revision == new.revision && old.traffic_percent > 0 && new.traffic_percent == 0;
    match phase {
        CanaryPhase::Failed
        | CanaryPhase::Marginal
        | CanaryPhase::Inconclusive
        | CanaryPhase::Error
            if withdrawn =>
        {
            verdict_name(phase)
        }
        _ => None,
    }
}

/// A failed post-promotion analysis switched the Service back to the
/// previous revision in this write.
fn switched_back_after_post_promotion(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    after.post_promotion.as_ref().is_some_and(|p| {
        p.phase == PostPromotionPhase::Failed
            && after.stable_revision.as_ref() == Some(&p.previous_revision)
            && before.stable_revision != after.stable_revision
    })
}

/// The analysis verdict a canary phase records (`None`: no verdict — still
/// judging, or a person promoted).
fn verdict_name(phase: CanaryPhase) -> Option<&'static str> {
    match phase {
        CanaryPhase::Passed => Some("Passed"),
        CanaryPhase::Marginal => Some("Marginal"),
        CanaryPhase::Failed => Some("Failed"),
        CanaryPhase::Inconclusive => Some("Inconclusive"),
        CanaryPhase::Error => Some("Error"),
        CanaryPhase::Progressing | CanaryPhase::Analysing | CanaryPhase::Promoted => None,
    }
}

/// Seconds from `from` to `to`, never negative (clocks of two writers).
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0) as f64) / 1000.0
}

/// The shell's one call, after every write of a plan succeeded: counts what
/// `written` (the status just written at `now`) changed from the observed
/// one, with verdict times read from the analysis cache.
pub fn record_written(
    metrics: &OperatorMetrics,
    analyses: &Store<CanaryAnalysis>,
    rollout: &Rollout,
    written: &RolloutStatus,
    now: DateTime<Utc>,
) {
    let namespace = rollout.namespace().unwrap_or_default();
    let completed_at = |name: Option<&String>| {
        let analysis = analyses.get(&ObjectRef::new(name?).within(&namespace))?;
        let at = analysis.status.as_ref()?.completed_at.as_ref()?;
        DateTime::from_timestamp(at.0.as_second(), 0)
    };
    let verdicts = VerdictTimes {
        canary: completed_at(
            written
                .canary
                .as_ref()
                .and_then(|c| c.analysis_name.as_ref()),
        ),
        post_promotion: completed_at(written.post_promotion.as_ref().map(|p| &p.analysis_name)),
    };
    let events = transitions(rollout.status.as_ref(), written, &verdicts, now);
    record(metrics, &namespace, &events);
}

/// Counts `transitions` of a Rollout in `namespace` (and creates the
/// namespace's zero series, so that the first event shows as an increase).
pub fn record(metrics: &OperatorMetrics, namespace: &str, transitions: &[Transition]) {
    let m = &metrics.rollouts;
    m.touch_rollout_namespace(namespace);
    for t in transitions {
        match t {
            Transition::Aborted { reason } => {
                m.aborts
                    .get_or_create(&reason_labels(namespace, reason))
                    .inc();
            }
            Transition::Reverted { reason } => {
                m.reverts
                    .get_or_create(&reason_labels(namespace, reason))
                    .inc();
            }
            Transition::Live { seconds } => {
                m.time_to_live
                    .get_or_create(&NamespaceLabels {
                        namespace: namespace.to_owned(),
                    })
                    .observe(*seconds);
            }
            Transition::VerdictToTraffic { verdict, seconds } => {
                m.verdict_to_traffic
                    .get_or_create(&verdict_labels(namespace, verdict))
                    .observe(*seconds);
            }
        }
    }
}

#[cfg(test)]
mod tests;
