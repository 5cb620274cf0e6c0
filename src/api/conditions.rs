//! Kubernetes-convention conditions, chosen so kstatus (Flux, `kubectl wait`) and
//! Argo CD read health without plug-ins: `Ready` is the summary, `Reconciling`
//! and `Stalled` are the abnormal-true conditions kstatus looks for first.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const PAUSED: &str = "Paused";
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Abnormal-true: the API refuses the Events the operator records on the
/// Rollout (e.g. RBAC without `create` on events.k8s.io Events), so the
/// status is the only place left to say so.
pub const EVENTS_REFUSED: &str = "EventsRefused";
/// Abnormal-true: the API refuses deleting the finished CanaryAnalyses
/// beyond `spec.analysis` (e.g. RBAC without `delete` on canaryanalyses);
/// they are kept, and nothing else about the Rollout is held back.
pub const ANALYSIS_PRUNE_REFUSED: &str = "AnalysisPruneRefused";
/// Abnormal-true: `previewService` is set but the Service does not exist.
pub const PREVIEW_SERVICE_MISSING: &str = "PreviewServiceMissing";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Shaped like `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    #[schemars(schema_with = "date_time")]
    pub last_transition_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A condition the planner wants, before its transition time is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Desired {
            type_,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Builds the new condition list: `lastTransitionTime` is kept from `old` unless
/// the status flipped, so re-planning an unchanged world writes nothing new.
/// Output is sorted by type so that order never produces a diff.
pub fn merge(
    old: &[Condition],
    desired: Vec<Desired>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = desired
        .into_iter()
        .map(|d| {
            let previous = old.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == d.status => p.last_transition_time,
                _ => now,
            };
            Condition {
                type_: d.type_.to_owned(),
                status: d.status,
                reason: d.reason,
                message: d.message,
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Schema of an RFC 3339 timestamp (schemars' chrono support is not enabled).
pub fn date_time(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "format": "date-time"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = t0 + chrono::Duration::minutes(5);
        let first = merge(
            &[],
            vec![Desired::new(READY, ConditionStatus::False, "A", "a")],
            Some(1),
            t0,
        );
        // Same status, new reason/message: time kept.
        let same = merge(
            &first,
            vec![Desired::new(READY, ConditionStatus::False, "B", "b")],
            Some(2),
            t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(
            (same[0].reason.as_str(), same[0].observed_generation),
            ("B", Some(2))
        );
        let flipped = merge(
            &same,
            vec![Desired::new(READY, ConditionStatus::True, "C", "c")],
            Some(2),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
    }

    #[test]
    fn output_is_sorted_by_type() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let out = merge(
            &[],
            vec![
                Desired::new(STALLED, ConditionStatus::True, "x", ""),
                Desired::new(AVAILABLE, ConditionStatus::True, "x", ""),
            ],
            None,
            t0,
        );
        let types: Vec<_> = out.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec![AVAILABLE, STALLED]);
    }
}
