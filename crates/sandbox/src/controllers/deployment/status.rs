//! A Deployment's status as the real controller computes it (`calculateStatus`,
//! `syncRolloutStatus`, `checkPausedConditions` of
//! `k8s.io/kubernetes/pkg/controller/deployment`): counts summed over its
//! ReplicaSets and the `Available` and `Progressing` conditions that
//! `kubectl rollout status` and `helm --wait` read.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::model::{DeployView, RsView};
use crate::controllers::parse_time;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// One `DeploymentCondition`, times as the API prints them.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub last_update: String,
    pub last_transition: String,
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: &str,
        reason: &str,
        message: String,
        now: DateTime<Utc>,
    ) -> Self {
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        Self {
            type_: type_.into(),
            status: status.into(),
            last_update: at.clone(),
            last_transition: at,
            reason: reason.into(),
            message,
        }
    }

    fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let type_ = v.get("type")?.as_str()?.to_string();
        Some(Self {
            type_,
            status: s("status"),
            last_update: s("lastUpdateTime"),
            last_transition: s("lastTransitionTime"),
            reason: s("reason"),
            message: s("message"),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "type": self.type_,
            "status": self.status,
            "lastUpdateTime": self.last_update,
            "lastTransitionTime": self.last_transition,
            "reason": self.reason,
            "message": self.message,
        })
    }
}

/// `DeploymentStatus`, the fields the controller computes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Status {
    pub observed_generation: i64,
    pub replicas: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
    pub unavailable: i64,
    pub collision_count: Option<i64>,
    pub conditions: Vec<Condition>,
}

impl Status {
    pub fn from_json(status: &Map<String, Value>) -> Self {
        let n = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);
        Self {
            observed_generation: n("observedGeneration"),
            replicas: n("replicas"),
            updated: n("updatedReplicas"),
            ready: n("readyReplicas"),
            available: n("availableReplicas"),
            unavailable: n("unavailableReplicas"),
            collision_count: status.get("collisionCount").and_then(Value::as_i64),
            conditions: status
                .get("conditions")
                .and_then(Value::as_array)
                .map(|c| c.iter().filter_map(Condition::from_json).collect())
                .unwrap_or_default(),
        }
    }

    /// The JSON the API returns: zero counts omitted (`omitempty`).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("observedGeneration", self.observed_generation),
            ("replicas", self.replicas),
            ("updatedReplicas", self.updated),
            ("readyReplicas", self.ready),
            ("availableReplicas", self.available),
            ("unavailableReplicas", self.unavailable),
        ] {
            if v != 0 {
                m.insert(k.into(), json!(v));
            }
        }
        if !self.conditions.is_empty() {
            m.insert(
                "conditions".into(),
                Value::Array(self.conditions.iter().map(Condition::to_json).collect()),
            );
        }
        if let Some(c) = self.collision_count {
            m.insert("collisionCount".into(), json!(c));
        }
        m
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    pub fn remove_condition(&mut self, type_: &str) {
        self.conditions.retain(|c| c.type_ != type_);
    }

    /// `SetDeploymentCondition`: nothing changes when status and reason are the
    /// same; the transition time survives when only the reason changes; the
    /// condition moves to the end.
    pub fn set_condition(&mut self, mut cond: Condition) {
        if let Some(cur) = self.condition(&cond.type_) {
            if cur.status == cond.status && cur.reason == cond.reason {
                return;
            }
            if cur.status == cond.status {
                cond.last_transition = cur.last_transition.clone();
            }
        }
        self.remove_condition(&cond.type_);
        self.conditions.push(cond);
    }
}

/// `calculateStatus`: counts over every ReplicaSet and the `Available` condition.
pub fn calculate(
    d: &DeployView,
    current: &Status,
    all: &[&RsView],
    new: Option<&RsView>,
    now: DateTime<Utc>,
) -> Status {
    let available: i64 = all.iter().map(|r| r.available).sum();
    let total: i64 = all.iter().map(|r| r.replicas).sum();
    let mut status = Status {
        observed_generation: d.generation,
        replicas: all.iter().map(|r| r.status_replicas).sum(),
        updated: new.map_or(0, |r| r.status_replicas),
        ready: all.iter().map(|r| r.ready).sum(),
        available,
        unavailable: (total - available).max(0),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
    };
    if available >= d.replicas - d.max_unavailable() {
        status.set_condition(Condition::new(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        ));
    } else {
        status.set_condition(Condition::new(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        ));
    }
    status
}

/// `DeploymentComplete`.
pub fn complete(d: &DeployView, s: &Status) -> bool {
    s.updated == d.replicas
        && s.replicas == d.replicas
        && s.available == d.replicas
        && s.observed_generation >= d.generation
}

/// `DeploymentProgressing`: any sign of progress since the last status.
fn progressing(old: &Status, new: &Status) -> bool {
    new.updated > old.updated
        || (new.replicas - new.updated) < (old.replicas - old.updated)
        || new.ready > old.ready
        || new.available > old.available
}

/// `DeploymentTimedOut`: no progress reported for `progressDeadlineSeconds`.
fn timed_out(d: &DeployView, s: &Status, now: DateTime<Utc>) -> bool {
    let (Some(deadline), Some(cond)) = (d.progress_deadline_seconds, s.condition(PROGRESSING))
    else {
        return false;
    };
    match cond.reason.as_str() {
        NEW_RS_AVAILABLE => false,
        TIMED_OUT => true,
        _ => parse_time(&cond.last_update)
            .is_some_and(|from| from + chrono::Duration::seconds(deadline) < now),
    }
}

/// `syncRolloutStatus`: the status with the `Progressing` condition brought up to date.
pub fn rollout(
    d: &DeployView,
    current: &Status,
    all: &[&RsView],
    new: Option<&RsView>,
    now: DateTime<Utc>,
) -> Status {
    let mut status = calculate(d, current, all, new, now);
    if d.progress_deadline_seconds.is_none() {
        status.remove_condition(PROGRESSING);
        return status;
    }
    let cur = current.condition(PROGRESSING);
    let done =
        status.replicas == status.updated && cur.is_some_and(|c| c.reason == NEW_RS_AVAILABLE);
    if done {
        return status;
    }
    let new_name = new.map(|r| r.name.as_str()).unwrap_or("");
    if complete(d, &status) {
        status.set_condition(Condition::new(
            PROGRESSING,
            "True",
            NEW_RS_AVAILABLE,
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            now,
        ));
    } else if progressing(current, &status) {
        let msg = match new {
            Some(r) => format!("ReplicaSet \"{}\" is progressing.", r.name),
            None => format!("Deployment \"{}\" is progressing.", d.name),
        };
        let mut cond = Condition::new(PROGRESSING, "True", "ReplicaSetUpdated", msg, now);
        // Progress moves lastUpdateTime even when the reason stays the same.
        if let Some(c) = cur {
            if c.status == "True" {
                cond.last_transition = c.last_transition.clone();
            }
            status.remove_condition(PROGRESSING);
        }
        status.set_condition(cond);
    } else if timed_out(d, &status, now) {
        status.set_condition(Condition::new(
            PROGRESSING,
            "False",
            TIMED_OUT,
            format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            now,
        ));
    }
    status
}

/// When a rollout without progress must be looked at again to time out
/// (`requeueStuckDeployment`).
pub fn deadline(d: &DeployView, s: &Status) -> Option<DateTime<Utc>> {
    let deadline = d.progress_deadline_seconds?;
    let cond = s.condition(PROGRESSING)?;
    if complete(d, s) || cond.reason == TIMED_OUT || cond.reason == NEW_RS_AVAILABLE || d.paused {
        return None;
    }
    parse_time(&cond.last_update).map(|t| t + chrono::Duration::seconds(deadline + 1))
}

/// `checkPausedConditions`: `Progressing` turns Unknown while paused, so a
/// resumed Deployment does not time out on a stale deadline.
pub fn paused_conditions(d: &DeployView, s: &mut Status, now: DateTime<Utc>) {
    if d.progress_deadline_seconds.is_none() {
        return;
    }
    let cond = s.condition(PROGRESSING);
    if cond.is_some_and(|c| c.reason == TIMED_OUT) {
        return;
    }
    let paused_cond = cond.is_some_and(|c| c.reason == PAUSED);
    if d.paused && !paused_cond {
        s.set_condition(Condition::new(
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused".into(),
            now,
        ));
    } else if !d.paused && paused_cond {
        s.set_condition(Condition::new(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed".into(),
            now,
        ));
    }
}
