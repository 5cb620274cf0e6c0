//! Deployment controller (apps/v1): rolls a Deployment's pods from one
//! ReplicaSet to the next as kube-controller-manager does. The decision is
//! `plan::plan` (pure, table- and property-tested); this module only reads the
//! store, hands the observed objects to it and writes what it decided.
//!
//! A Deployment's ReplicaSets are exactly those whose controller
//! ownerReference names its uid; like the ReplicaSet controller, it never
//! adopts or releases by selector.

mod model;
mod plan;
mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::runner::Reconciler;
use super::{
    Builtins, ControllerError, ObjKey, controlled_by, controller_ref, instant_at, is_deleting,
    obj_key, pod_phase,
};
use crate::store::{DeleteOptions, Store, StoreError, StoredEvent, UpdateTarget, meta_str};
use plan::{NewReplicaSet, Plan};

pub(crate) struct DeploymentController {
    store: Arc<Store>,
    types: Builtins,
}

fn ref_str<'a>(r: &'a Value, field: &str) -> Option<&'a str> {
    r.get(field).and_then(Value::as_str)
}

impl DeploymentController {
    pub(crate) fn new(store: Arc<Store>, types: Builtins) -> Self {
        Self { store, types }
    }

    /// Objects of `kind` whose controller is `uid`.
    fn controlled(&self, uid: &str, kind: &str) -> Vec<Arc<Value>> {
        self.store
            .dependents(uid)
            .into_iter()
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
            .filter(|o| controller_ref(o).and_then(|r| ref_str(r, "uid")) == Some(uid))
            .collect()
    }

    fn namespace_active(&self, ns: &str) -> bool {
        let gr = self.types.namespaces.group_resource();
        self.store
            .get(&gr, "", ns)
            .is_some_and(|n| !is_deleting(&n))
    }

    fn create(
        &self,
        d: &Value,
        uid: &str,
        new: &NewReplicaSet,
    ) -> Result<Created, ControllerError> {
        let (ns, name) = obj_key(d);
        let mut spec = Map::new();
        spec.insert("replicas".into(), json!(new.replicas));
        if new.min_ready_seconds > 0 {
            spec.insert("minReadySeconds".into(), json!(new.min_ready_seconds));
        }
        spec.insert("selector".into(), new.selector.clone());
        spec.insert("template".into(), new.template.clone());
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": new.name,
                "namespace": ns,
                "labels": new.labels,
                "annotations": new.annotations,
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": name,
                    "uid": uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": spec,
        });
        match self.store.create(&self.types.replicasets, rs) {
            Ok(_) => {
                tracing::debug!(namespace = %ns, deployment = %name, replicaset = %new.name, "created replica set");
                Ok(Created::Yes)
            }
            Err(StoreError::AlreadyExists { .. }) => Ok(Created::Collision),
            Err(e) => Err(e.into()),
        }
    }

    fn update_rs(&self, current: &Value, u: &plan::RsUpdate) -> Result<(), ControllerError> {
        let mut rs = current.clone();
        rs["spec"]["replicas"] = json!(u.replicas);
        if u.min_ready_seconds > 0 {
            rs["spec"]["minReadySeconds"] = json!(u.min_ready_seconds);
        } else if let Some(spec) = rs.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("minReadySeconds");
        }
        rs["metadata"]["annotations"] = Value::Object(u.annotations.clone());
        self.store
            .update(&self.types.replicasets, rs, UpdateTarget::Main)?;
        Ok(())
    }

    fn delete_rs(&self, rs: &Value) -> Result<(), ControllerError> {
        let (ns, name) = obj_key(rs);
        let opts = DeleteOptions {
            precondition_uid: meta_str(rs, "uid").map(String::from),
            ..Default::default()
        };
        match self
            .store
            .delete(&self.types.replicasets, &ns, &name, &opts)
        {
            Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::PreconditionFailed(_)) => {
                tracing::debug!(namespace = %ns, replicaset = %name, "deleted old replica set");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes what `plan` decided, in the real controller's order: the new
    /// ReplicaSet, sizes, deletions, then the Deployment's revision and status.
    fn apply(
        &self,
        d: &Arc<Value>,
        uid: &str,
        rss: &[Arc<Value>],
        plan: &Plan,
    ) -> Result<(), ControllerError> {
        if let Some(new) = &plan.create {
            let ns = meta_str(d, "namespace").unwrap_or("");
            if !self.namespace_active(ns) {
                return Ok(());
            }
            if self.create(d, uid, new)? == Created::Collision {
                // Another object holds the name: count the collision, so the
                // next hash differs (`collisionCount`), and try again.
                let mut updated = (**d).clone();
                let count = updated
                    .pointer("/status/collisionCount")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if !updated.get("status").is_some_and(Value::is_object) {
                    updated["status"] = json!({});
                }
                updated["status"]["collisionCount"] = json!(count + 1);
                self.store
                    .update(&self.types.deployments, updated, UpdateTarget::Status)?;
                return Ok(());
            }
        }
        for u in &plan.updates {
            if let Some(rs) = rss
                .iter()
                .find(|r| meta_str(r, "name") == Some(u.name.as_str()))
            {
                self.update_rs(rs, u)?;
            }
        }
        for name in &plan.deletes {
            if let Some(rs) = rss
                .iter()
                .find(|r| meta_str(r, "name") == Some(name.as_str()))
            {
                self.delete_rs(rs)?;
            }
        }
        let mut current = d.clone();
        if let Some(revision) = &plan.revision {
            let mut updated = (**d).clone();
            if !updated["metadata"]
                .get("annotations")
                .is_some_and(Value::is_object)
            {
                updated["metadata"]["annotations"] = json!({});
            }
            updated["metadata"]["annotations"][model::REVISION] = json!(revision);
            current = self
                .store
                .update(&self.types.deployments, updated, UpdateTarget::Main)?;
        }
        if current.get("status").and_then(Value::as_object) != Some(&plan.status) {
            let mut updated = (*current).clone();
            updated["status"] = Value::Object(plan.status.clone());
            self.store
                .update(&self.types.deployments, updated, UpdateTarget::Status)?;
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Created {
    Yes,
    Collision,
}

impl Reconciler for DeploymentController {
    type Key = ObjKey;
    const NAME: &'static str = "deployment";
    // Every input is a store object: events (and a full pass on lag) suffice.
    const RESYNC: bool = false;

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<ObjKey>) {
        let obj = &event.object;
        let ns = event.namespace().to_string();
        if event.gr == self.types.deployments.group_resource() {
            out.push(obj_key(obj));
        } else if event.gr == self.types.replicasets.group_resource() {
            if let Some(name) = controlled_by(obj, "Deployment").and_then(|r| ref_str(r, "name")) {
                out.push((ns, name.to_string()));
            }
        } else if event.gr == self.types.pods.group_resource()
            && event.event_type == crate::store::EventType::Deleted
            // A pod gone is what `Recreate` waits for; its ReplicaSet's status
            // does not change when a terminating pod finally goes.
            && let Some(rs_name) = controlled_by(obj, "ReplicaSet").and_then(|r| ref_str(r, "name"))
            && let Some(rs) = self.store.get(&self.types.replicasets.group_resource(), &ns, rs_name)
            && let Some(name) = controlled_by(&rs, "Deployment").and_then(|r| ref_str(r, "name"))
        {
            out.push((ns, name.to_string()));
        }
    }

    fn all_keys(&mut self) -> Vec<ObjKey> {
        let (all, _) = self
            .store
            .list(&self.types.deployments.group_resource(), None);
        all.iter().map(|d| obj_key(d)).collect()
    }

    fn reconcile(&mut self, key: &ObjKey) -> Result<Option<Instant>, ControllerError> {
        let (ns, name) = key;
        let Some(d) = self
            .store
            .get(&self.types.deployments.group_resource(), ns, name)
        else {
            return Ok(None);
        };
        let Some(uid) = meta_str(&d, "uid").map(String::from) else {
            return Ok(None);
        };
        let view = match model::parse_deployment(&d) {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(namespace = %ns, deployment = %name, %why, "skipping unparsable Deployment");
                return Ok(None);
            }
        };
        let rss = self.controlled(&uid, "ReplicaSet");
        let views: Vec<model::RsView> = rss
            .iter()
            .map(|rs| {
                let rs_uid = meta_str(rs, "uid").unwrap_or("");
                let running = self
                    .controlled(rs_uid, "Pod")
                    .iter()
                    .filter(|p| !matches!(pod_phase(p), "Succeeded" | "Failed"))
                    .count();
                model::parse_replica_set(rs, i64::try_from(running).unwrap_or(i64::MAX))
            })
            .collect();
        let plan = plan::plan(&view, &views, Utc::now());
        self.apply(&d, &uid, &rss, &plan)?;
        Ok(plan.requeue_at.map(instant_at))
    }
}
