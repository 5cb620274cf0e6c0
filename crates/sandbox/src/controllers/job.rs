//! Job controller (batch/v1), enough for run-to-completion pods: one pod at a
//! time from the template (`completions` and `parallelism` 1), a new one per
//! failure until `backoffLimit` failures, `activeDeadlineSeconds` from the
//! Job's `startTime`, and the `Complete` / `Failed` conditions with the real
//! controller's reasons (`BackoffLimitExceeded`, `DeadlineExceeded`). A pod
//! whose image is the project's own runs as a process (`process_runtime`,
//! `restartPolicy: Never`), so `redblack smoke` really runs; any other image
//! is simulated and never finishes (its deadline then fails the Job).
//!
//! The decision ([`decide`]) is pure: the Job's spec and status, its pods'
//! phases and the clock in, what to do out. Pods are the Job's by its
//! controller ownerReference; garbage collection removes them with the Job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::runner::Reconciler;
use super::{
    Builtins, ControllerError, ObjKey, controller_key, controller_ref, instant_at, is_deleting,
    obj_key, parse_time, pod_phase,
};
use crate::store::{DeleteOptions, Store, StoreError, StoredEvent, UpdateTarget, meta_str};

/// What a Job's pods add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: usize,
    pub succeeded: usize,
    pub failed: usize,
}

/// What the controller does for one Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Already finished (a condition says so): nothing.
    Finished,
    /// Create one pod.
    CreatePod,
    /// Wait; look again at `until` (the deadline), if any.
    Wait { until: Option<DateTime<Utc>> },
    /// Write the `Complete` condition.
    Complete,
    /// Write the `Failed` condition with this reason and message, and delete
    /// the active pods.
    Fail {
        reason: &'static str,
        message: String,
    },
}

/// The decision for a Job started at `started` (its `startTime`).
pub fn decide(
    finished: bool,
    counts: Counts,
    backoff_limit: usize,
    deadline_seconds: Option<i64>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Step {
    if finished {
        return Step::Finished;
    }
    if counts.succeeded >= 1 {
        return Step::Complete;
    }
    if counts.failed > backoff_limit {
        return Step::Fail {
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit".into(),
        };
    }
    let deadline = deadline_seconds.map(|s| started + chrono::Duration::seconds(s));
    if let Some(at) = deadline
        && now >= at
    {
        return Step::Fail {
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline".into(),
        };
    }
    if counts.active == 0 {
        return Step::CreatePod;
    }
    Step::Wait { until: deadline }
}

pub(crate) struct JobController {
    store: Arc<Store>,
    types: Builtins,
}

impl JobController {
    pub(crate) fn new(store: Arc<Store>, types: Builtins) -> Self {
        Self { store, types }
    }

    fn pods(&self, uid: &str) -> Vec<Arc<Value>> {
        self.store
            .dependents(uid)
            .into_iter()
            .filter(|p| p.get("kind").and_then(Value::as_str) == Some("Pod"))
            .filter(|p| {
                controller_ref(p)
                    .and_then(|r| r.get("uid"))
                    .and_then(Value::as_str)
                    == Some(uid)
            })
            .collect()
    }

    fn create_pod(&self, job: &Value, uid: &str) -> Result<(), ControllerError> {
        let (ns, name) = obj_key(job);
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let mut meta = Map::new();
        meta.insert("generateName".into(), json!(format!("{name}-")));
        meta.insert("namespace".into(), json!(ns));
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        labels.insert("job-name".into(), json!(name));
        labels.insert("batch.kubernetes.io/job-name".into(), json!(name));
        meta.insert("labels".into(), Value::Object(labels));
        if let Some(a) = template
            .pointer("/metadata/annotations")
            .filter(|v| !v.is_null())
        {
            meta.insert("annotations".into(), a.clone());
        }
        meta.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }]),
        );
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        });
        self.store.create(&self.types.pods, pod)?;
        Ok(())
    }

    fn delete_pod(&self, pod: &Value) -> Result<(), ControllerError> {
        let (ns, name) = obj_key(pod);
        let opts = DeleteOptions {
            precondition_uid: meta_str(pod, "uid").map(String::from),
            ..Default::default()
        };
        match self.store.delete(&self.types.pods, &ns, &name, &opts) {
            Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::PreconditionFailed(_)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn counts(pods: &[Arc<Value>]) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        match pod_phase(p) {
            "Succeeded" => c.succeeded += 1,
            "Failed" => c.failed += 1,
            _ if !is_deleting(p) => c.active += 1,
            _ => {}
        }
    }
    c
}

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(
                    c.get("type").and_then(Value::as_str),
                    Some("Complete" | "Failed")
                ) && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn condition(type_: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": type_, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now,
    })
}

impl Reconciler for JobController {
    type Key = ObjKey;
    const NAME: &'static str = "job";

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<ObjKey>) {
        let obj = &event.object;
        if event.gr == self.types.jobs.group_resource() {
            out.push(obj_key(obj));
        } else if event.gr == self.types.pods.group_resource()
            && let Some(key) = controller_key(obj, "Job")
        {
            out.push(key);
        }
    }

    fn all_keys(&mut self) -> Vec<ObjKey> {
        let (all, _) = self.store.list(&self.types.jobs.group_resource(), None);
        all.iter().map(|j| obj_key(j)).collect()
    }

    fn reconcile(&mut self, key: &ObjKey) -> Result<Option<Instant>, ControllerError> {
        let (ns, name) = key;
        let Some(job) = self.store.get(&self.types.jobs.group_resource(), ns, name) else {
            return Ok(None);
        };
        let Some(uid) = meta_str(&job, "uid").map(String::from) else {
            return Ok(None);
        };
        if is_deleting(&job) {
            return Ok(None);
        }
        let now = Utc::now();
        let now_s = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut status = job
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let started = status
            .get("startTime")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .unwrap_or(now);
        status
            .entry("startTime")
            .or_insert_with(|| json!(now_s.clone()));
        let pods = self.pods(&uid);
        let c = counts(&pods);
        let backoff = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_u64)
            .unwrap_or(6) as usize;
        let deadline = job
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_i64);
        let step = decide(finished(&job), c, backoff, deadline, started, now);
        let mut next = None;
        let mut active = c.active;
        match &step {
            Step::Finished => {}
            Step::CreatePod => {
                self.create_pod(&job, &uid)?;
                active += 1;
            }
            Step::Wait { until } => next = until.map(instant_at),
            Step::Complete => {
                let conds = status.entry("conditions").or_insert_with(|| json!([]));
                if let Some(list) = conds.as_array_mut() {
                    list.push(condition(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        &now_s,
                    ));
                    list.push(condition(
                        "Complete",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        &now_s,
                    ));
                }
                status.insert("completionTime".into(), json!(now_s.clone()));
            }
            Step::Fail { reason, message } => {
                for p in pods
                    .iter()
                    .filter(|p| !is_deleting(p) && !matches!(pod_phase(p), "Succeeded" | "Failed"))
                {
                    self.delete_pod(p)?;
                }
                active = 0;
                let conds = status.entry("conditions").or_insert_with(|| json!([]));
                if let Some(list) = conds.as_array_mut() {
                    list.push(condition("FailureTarget", reason, message, &now_s));
                    list.push(condition("Failed", reason, message, &now_s));
                }
            }
        }
        for (field, n) in [
            ("active", active),
            ("succeeded", c.succeeded),
            ("failed", c.failed),
        ] {
            if n == 0 {
                status.remove(field);
            } else {
                status.insert(field.into(), json!(n));
            }
        }
        status.insert("ready".into(), json!(0));
        if job.get("status").and_then(Value::as_object) != Some(&status) {
            let mut updated = (*job).clone();
            if let Some(map) = updated.as_object_mut() {
                map.insert("status".into(), Value::Object(status));
            }
            self.store
                .update(&self.types.jobs, updated, UpdateTarget::Status)?;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_completes_fails_by_backoff_or_deadline_or_waits() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = t0 + chrono::Duration::seconds(30);
        let c = |active, succeeded, failed| Counts {
            active,
            succeeded,
            failed,
        };
        // (finished, counts, backoffLimit, activeDeadlineSeconds, now, expected)
        type Row = (
            bool,
            Counts,
            usize,
            Option<i64>,
            DateTime<Utc>,
            &'static str,
        );
        let rows: Vec<Row> = vec![
            (true, c(0, 0, 9), 0, None, t0, "Finished"),
            (false, c(0, 0, 0), 0, None, t0, "CreatePod"),
            (false, c(0, 1, 0), 0, None, t0, "Complete"),
            (false, c(0, 0, 1), 0, None, t0, "BackoffLimitExceeded"),
            (false, c(0, 0, 1), 1, None, t0, "CreatePod"),
            (false, c(1, 0, 0), 0, Some(10), later, "DeadlineExceeded"),
            (false, c(1, 0, 0), 0, Some(60), later, "Wait"),
        ];
        for (fin, counts, backoff, deadline, now, want) in rows {
            let got = match decide(fin, counts, backoff, deadline, t0, now) {
                Step::Fail { reason, .. } => reason.to_string(),
                other => format!("{other:?}"),
            };
            assert!(got.starts_with(want), "{counts:?} backoff {backoff}: {got}");
        }
    }
}
