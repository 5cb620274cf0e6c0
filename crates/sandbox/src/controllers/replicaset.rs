//! ReplicaSet controller (apps/v1): keeps `spec.replicas` pods alive from the
//! template and reports them in `status`.
//!
//! A ReplicaSet's pods are exactly the pods whose controller ownerReference names
//! its uid (found through the store's owner index); orphans matching the selector
//! are not adopted. Unlike the real controller there are no "expectations": the
//! store is read directly, so a pod just created is already visible.

use std::cmp::Reverse;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::labels::{labels_of, map_matches};
use super::runner::Reconciler;
use super::{
    Builtins, ControllerError, ObjKey, controller_key, controller_ref, instant_at, is_deleting,
    obj_key, pod_phase, pod_ready,
};
use crate::store::{DeleteOptions, Store, StoreError, StoredEvent, UpdateTarget, meta_str};

pub(crate) struct ReplicaSetController {
    store: Arc<Store>,
    types: Builtins,
}

/// The parts of a ReplicaSet the controller acts on.
struct RsSpec {
    replicas: usize,
    min_ready_seconds: i64,
    template: Map<String, Value>,
}

fn parse_spec(rs: &Value) -> Result<RsSpec, String> {
    let spec = rs.get("spec").ok_or("no spec")?;
    let replicas = match spec.get("replicas") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("spec.replicas {v} is not a non-negative integer"))?,
    };
    let min_ready_seconds = match spec.get("minReadySeconds") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("spec.minReadySeconds {v} is not a non-negative integer"))?,
    };
    let template = spec
        .get("template")
        .and_then(Value::as_object)
        .cloned()
        .ok_or("spec.template is missing")?;
    if !template.get("spec").is_some_and(Value::is_object) {
        return Err("spec.template.spec is missing".into());
    }
    Ok(RsSpec {
        replicas,
        min_ready_seconds,
        template,
    })
}

/// (scheduled, phase, ready, since, restarts, created, name)
type Rank = (
    bool,
    u8,
    bool,
    Reverse<Option<DateTime<Utc>>>,
    Reverse<i64>,
    Reverse<String>,
    String,
);

/// Ascending order = deleted first, as the real controller ranks them: unscheduled,
/// then pending, then not ready, then ready for the shortest time, then most
/// restarts, then newest.
fn deletion_rank(pod: &Value) -> Rank {
    let scheduled = pod
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = match pod_phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let (ready, since) = pod_ready(pod);
    let restarts = pod
        .get("status")
        .and_then(|s| s.get("containerStatuses"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    // RFC 3339 UTC timestamps of one format sort as strings.
    let created = meta_str(pod, "creationTimestamp").unwrap_or("").to_string();
    let name = meta_str(pod, "name").unwrap_or("").to_string();
    (
        scheduled,
        phase,
        ready,
        Reverse(since.filter(|_| ready)),
        Reverse(restarts),
        Reverse(created),
        name,
    )
}

impl ReplicaSetController {
    pub(crate) fn new(store: Arc<Store>, types: Builtins) -> Self {
        Self { store, types }
    }

    /// Pods this ReplicaSet controls that count: not being deleted, not finished.
    fn active_pods(&self, uid: &str) -> Vec<Arc<Value>> {
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
            .filter(|p| !is_deleting(p) && !matches!(pod_phase(p), "Succeeded" | "Failed"))
            .collect()
    }

    fn namespace_accepts_pods(&self, ns: &str) -> bool {
        let gr = self.types.namespaces.group_resource();
        self.store
            .get(&gr, "", ns)
            .is_some_and(|n| !is_deleting(&n))
    }

    fn create_pod(&self, rs: &Value, uid: &str, spec: &RsSpec) -> Result<(), ControllerError> {
        let (ns, name) = obj_key(rs);
        let tmeta = spec.template.get("metadata");
        let mut meta = Map::new();
        meta.insert("generateName".into(), json!(format!("{name}-")));
        meta.insert("namespace".into(), json!(ns));
        for field in ["labels", "annotations", "finalizers"] {
            if let Some(v) = tmeta.and_then(|m| m.get(field)).filter(|v| !v.is_null()) {
                meta.insert(field.into(), v.clone());
            }
        }
        meta.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec.template.get("spec").cloned().unwrap_or_else(|| json!({})),
        });
        let created = self.store.create(&self.types.pods, pod)?;
        tracing::debug!(namespace = %ns, replicaset = %name, pod = meta_str(&created, "name").unwrap_or(""), "created pod");
        Ok(())
    }

    fn delete_pod(&self, pod: &Value) -> Result<(), ControllerError> {
        let (ns, name) = obj_key(pod);
        let opts = DeleteOptions {
            precondition_uid: meta_str(pod, "uid").map(String::from),
            ..Default::default()
        };
        match self.store.delete(&self.types.pods, &ns, &name, &opts) {
            // Someone else got there first: the pod is gone or replaced either way.
            Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::PreconditionFailed(_)) => {
                tracing::debug!(namespace = %ns, pod = %name, "deleted excess pod");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The status the pods call for, and when a ready pod next becomes available.
    fn desired_status(
        rs: &Value,
        spec: &RsSpec,
        pods: &[Arc<Value>],
    ) -> (Map<String, Value>, Option<Instant>) {
        let now = Utc::now();
        let template_labels = spec
            .template
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut fully_labeled = 0;
        let mut ready = 0;
        let mut available = 0;
        let mut next: Option<DateTime<Utc>> = None;
        for pod in pods {
            if map_matches(&template_labels, labels_of(pod)) {
                fully_labeled += 1;
            }
            let (is_ready, since) = pod_ready(pod);
            if !is_ready {
                continue;
            }
            ready += 1;
            if spec.min_ready_seconds == 0 {
                available += 1;
                continue;
            }
            // Like the real controller: without a transition time it never counts.
            if let Some(since) = since {
                let at = since + chrono::Duration::seconds(spec.min_ready_seconds);
                if at <= now {
                    available += 1;
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        let mut status = rs
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        status.insert("replicas".into(), json!(pods.len()));
        // The API omits these when zero (omitempty); so do we, to look the same.
        for (field, n) in [
            ("fullyLabeledReplicas", fully_labeled),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ] {
            if n == 0 {
                status.remove(field);
            } else {
                status.insert(field.into(), json!(n));
            }
        }
        if let Some(generation) = rs.get("metadata").and_then(|m| m.get("generation")) {
            status.insert("observedGeneration".into(), generation.clone());
        }
        (status, next.map(instant_at))
    }
}

impl Reconciler for ReplicaSetController {
    type Key = ObjKey;
    const NAME: &'static str = "replicaset";
    // Every input is a store object: events (and a full pass on lag) suffice.
    const RESYNC: bool = false;

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<ObjKey>) {
        let obj = &event.object;
        if event.gr == self.types.replicasets.group_resource() {
            out.push(obj_key(obj));
        } else if event.gr == self.types.pods.group_resource()
            && let Some(key) = controller_key(obj, "ReplicaSet")
        {
            out.push(key);
        }
    }

    fn all_keys(&mut self) -> Vec<ObjKey> {
        let (all, _) = self
            .store
            .list(&self.types.replicasets.group_resource(), None);
        all.iter().map(|rs| obj_key(rs)).collect()
    }

    fn reconcile(&mut self, key: &ObjKey) -> Result<Option<Instant>, ControllerError> {
        let (ns, name) = key;
        let Some(rs) = self
            .store
            .get(&self.types.replicasets.group_resource(), ns, name)
        else {
            // Its pods are the garbage collector's business now.
            return Ok(None);
        };
        let Some(uid) = meta_str(&rs, "uid").map(String::from) else {
            return Ok(None);
        };
        let spec = match parse_spec(&rs) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(namespace = %ns, replicaset = %name, %why, "skipping unparsable ReplicaSet");
                return Ok(None);
            }
        };
        let mut pods = self.active_pods(&uid);
        if !is_deleting(&rs) {
            if pods.len() < spec.replicas && self.namespace_accepts_pods(ns) {
                for _ in pods.len()..spec.replicas {
                    self.create_pod(&rs, &uid, &spec)?;
                }
                pods = self.active_pods(&uid);
            } else if pods.len() > spec.replicas {
                let mut ranked = pods.clone();
                ranked.sort_by_cached_key(|p| deletion_rank(p));
                for pod in &ranked[..pods.len() - spec.replicas] {
                    self.delete_pod(pod)?;
                }
                pods = self.active_pods(&uid);
            }
        }
        let (status, next) = Self::desired_status(&rs, &spec, &pods);
        if rs.get("status").and_then(Value::as_object) != Some(&status) {
            let mut updated = (*rs).clone();
            if let Some(map) = updated.as_object_mut() {
                map.insert("status".into(), Value::Object(status));
            }
            self.store
                .update(&self.types.replicasets, updated, UpdateTarget::Status)?;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_prefers_unscheduled_then_not_ready_then_newest() {
        let pod = |name: &str, node: Option<&str>, ready: bool, created: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "spec": {"nodeName": node},
                   "status": {"phase": "Running", "conditions": [
                       {"type": "Ready", "status": if ready {"True"} else {"False"},
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
        };
        let mut pods = [
            pod("old-ready", Some("sandbox"), true, "2026-01-01T00:00:00Z"),
            pod("new-ready", Some("sandbox"), true, "2026-01-01T00:00:05Z"),
            pod("not-ready", Some("sandbox"), false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", None, false, "2026-01-01T00:00:00Z"),
        ];
        pods.sort_by_cached_key(deletion_rank);
        let names: Vec<_> = pods.iter().map(|p| meta_str(p, "name").unwrap()).collect();
        assert_eq!(
            names,
            ["unscheduled", "not-ready", "new-ready", "old-ready"]
        );
    }

    #[test]
    fn bad_specs_are_reported_not_panicked_on() {
        assert!(parse_spec(&json!({})).is_err());
        assert!(parse_spec(&json!({"spec": {"replicas": -1, "template": {"spec": {}}}})).is_err());
        assert!(parse_spec(&json!({"spec": {"replicas": "3", "template": {"spec": {}}}})).is_err());
        assert!(parse_spec(&json!({"spec": {"replicas": 2}})).is_err());
        let ok = parse_spec(&json!({"spec": {"template": {"spec": {}}}})).unwrap();
        assert_eq!(ok.replicas, 1);
    }
}
