//! Garbage collector: deletes objects whose owners are gone and carries out the
//! `foregroundDeletion` and `orphan` propagation policies, for every kind the
//! registry serves (CRDs included).
//!
//! Like the real one it verifies each owner reference by apiVersion/kind/name and
//! uid before acting: a reference whose owner is absent or has another uid is
//! dangling; an object none of whose owners is alive is deleted.

use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use super::runner::Reconciler;
use super::{ControllerError, has_finalizer, is_deleting, owner_refs, resolve_kind};
use crate::registry::{GroupResource, Registry};
use crate::store::{
    DeleteOptions, EventType, Propagation, Store, StoreError, StoredEvent, UpdateTarget, meta_str,
};

pub(crate) const FOREGROUND: &str = "foregroundDeletion";
pub(crate) const ORPHAN: &str = "orphan";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum GcKey {
    /// An object with owner references: is it still owned?
    Dependent(GroupResource, String, String),
    /// An object being deleted with a propagation finalizer: deal with its dependents.
    Owner(GroupResource, String, String),
}

pub(crate) struct GarbageCollector {
    store: Arc<Store>,
    registry: Arc<Registry>,
}

enum OwnerState {
    /// Exists (or cannot be checked: unknown kinds are left alone).
    Solid,
    Dangling,
    /// Being deleted in the foreground: waits for its dependents.
    Waiting,
}

fn name_of(obj: &Value) -> (String, String) {
    (
        meta_str(obj, "namespace").unwrap_or("").to_string(),
        meta_str(obj, "name").unwrap_or("").to_string(),
    )
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or("")
}

impl GarbageCollector {
    pub(crate) fn new(store: Arc<Store>, registry: Arc<Registry>) -> Self {
        Self { store, registry }
    }

    fn group_resource(&self, obj: &Value) -> Option<GroupResource> {
        super::group_resource_of(&self.registry, obj)
    }

    /// Where the owner an ownerReference names lives: (kind, namespace, name).
    fn owner_location(
        &self,
        dependent_ns: &str,
        r: &Value,
    ) -> Option<(GroupResource, String, String)> {
        let api_version = r.get("apiVersion")?.as_str()?;
        let kind = r.get("kind")?.as_str()?;
        let name = r.get("name")?.as_str()?;
        let rt = resolve_kind(&self.registry, api_version, kind)?;
        let ns = if rt.namespaced { dependent_ns } else { "" };
        Some((rt.group_resource(), ns.to_string(), name.to_string()))
    }

    fn owner_state(&self, dependent_ns: &str, r: &Value) -> OwnerState {
        let Some((gr, ns, name)) = self.owner_location(dependent_ns, r) else {
            tracing::debug!(owner = %r, "owner kind not served; leaving its dependent alone");
            return OwnerState::Solid;
        };
        match self.store.get(&gr, &ns, &name) {
            Some(owner) if meta_str(&owner, "uid") == Some(ref_uid(r)) => {
                if is_deleting(&owner) && has_finalizer(&owner, FOREGROUND) {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        }
    }

    fn attempt_to_delete(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
    ) -> Result<(), ControllerError> {
        let Some(obj) = self.store.get(gr, ns, name) else {
            return Ok(());
        };
        // Already going: deleting again would only churn.
        if is_deleting(&obj) {
            return Ok(());
        }
        let refs = owner_refs(&obj);
        if refs.is_empty() {
            return Ok(());
        }
        let Some(rt) = self.registry.by_group_resource(gr) else {
            // Its kind was unregistered; the store drops such objects itself.
            return Ok(());
        };
        let mut solid = 0;
        let mut gone_uids = Vec::new();
        let mut waiting = false;
        for r in refs {
            match self.owner_state(ns, r) {
                OwnerState::Solid => solid += 1,
                OwnerState::Dangling => gone_uids.push(ref_uid(r).to_string()),
                OwnerState::Waiting => {
                    waiting = true;
                    gone_uids.push(ref_uid(r).to_string());
                }
            }
        }
        if solid > 0 {
            if !gone_uids.is_empty() {
                // Still owned: just drop the references to owners that are going.
                let mut next = (*obj).clone();
                if let Some(list) = next
                    .get_mut("metadata")
                    .and_then(|m| m.get_mut("ownerReferences"))
                    .and_then(Value::as_array_mut)
                {
                    list.retain(|r| !gone_uids.iter().any(|u| u == ref_uid(r)));
                }
                self.store.update(&rt, next, UpdateTarget::Main)?;
            }
            return Ok(());
        }
        let propagation = if waiting {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        tracing::debug!(?gr, namespace = %ns, %name, ?propagation, "collecting object whose owners are gone");
        let opts = DeleteOptions {
            propagation,
            precondition_uid: meta_str(&obj, "uid").map(String::from),
            precondition_rv: None,
            // The object's own grace period: a collected pod terminates gracefully.
            grace_period_seconds: None,
        };
        match self.store.delete(&rt, ns, name, &opts) {
            Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::PreconditionFailed(_)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn remove_finalizer(
        &self,
        gr: &GroupResource,
        owner: &Value,
        finalizer: &str,
    ) -> Result<(), ControllerError> {
        let rt = self
            .registry
            .by_group_resource(gr)
            .ok_or_else(|| ControllerError::UnknownKind(format!("{gr:?}")))?;
        let mut next = owner.clone();
        if let Some(list) = next
            .get_mut("metadata")
            .and_then(|m| m.get_mut("finalizers"))
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f.as_str() != Some(finalizer));
        }
        self.store.update(&rt, next, UpdateTarget::Main)?;
        Ok(())
    }

    fn orphan_dependents(
        &self,
        gr: &GroupResource,
        owner: &Value,
        uid: &str,
    ) -> Result<(), ControllerError> {
        for dep in self.store.dependents(uid) {
            let Some(dgr) = self.group_resource(&dep) else {
                continue;
            };
            let Some(rt) = self.registry.by_group_resource(&dgr) else {
                continue;
            };
            let mut next = (*dep).clone();
            if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                let remaining: Vec<Value> = owner_refs(&dep)
                    .iter()
                    .filter(|r| ref_uid(r) != uid)
                    .cloned()
                    .collect();
                if remaining.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), Value::Array(remaining));
                }
            }
            match self.store.update(&rt, next, UpdateTarget::Main) {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::debug!(
            ?gr,
            owner = meta_str(owner, "name").unwrap_or(""),
            "orphaned dependents"
        );
        self.remove_finalizer(gr, owner, ORPHAN)
    }

    fn delete_dependents(
        &self,
        gr: &GroupResource,
        owner: &Value,
        uid: &str,
    ) -> Result<(), ControllerError> {
        let mut blocked = false;
        for dep in self.store.dependents(uid) {
            let Some(dgr) = self.group_resource(&dep) else {
                continue;
            };
            let (ns, name) = name_of(&dep);
            self.attempt_to_delete(&dgr, &ns, &name)?;
            if let Some(still) = self.store.get(&dgr, &ns, &name) {
                blocked |= owner_refs(&still).iter().any(|r| {
                    ref_uid(r) == uid
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                });
            }
        }
        if blocked {
            // Each dependent's disappearance brings this owner back here.
            return Ok(());
        }
        self.remove_finalizer(gr, owner, FOREGROUND)
    }

    fn process_owner(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
    ) -> Result<(), ControllerError> {
        let Some(owner) = self.store.get(gr, ns, name) else {
            return Ok(());
        };
        if !is_deleting(&owner) {
            return Ok(());
        }
        let uid = meta_str(&owner, "uid").unwrap_or("").to_string();
        if has_finalizer(&owner, ORPHAN) {
            self.orphan_dependents(gr, &owner, &uid)
        } else if has_finalizer(&owner, FOREGROUND) {
            self.delete_dependents(gr, &owner, &uid)
        } else {
            Ok(())
        }
    }

    fn keys_of(&self, gr: &GroupResource, obj: &Value, out: &mut Vec<GcKey>) {
        let (ns, name) = name_of(obj);
        let refs = owner_refs(obj);
        if !refs.is_empty() {
            out.push(GcKey::Dependent(gr.clone(), ns.clone(), name.clone()));
        }
        if is_deleting(obj) && (has_finalizer(obj, FOREGROUND) || has_finalizer(obj, ORPHAN)) {
            out.push(GcKey::Owner(gr.clone(), ns, name));
        }
    }
}

impl Reconciler for GarbageCollector {
    type Key = GcKey;
    const NAME: &'static str = "garbage-collector";
    // Every input is a store object: events (and a full pass on lag) suffice.
    const RESYNC: bool = false;

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<GcKey>) {
        let obj = &event.object;
        let ns = event.namespace();
        // Any change to a dependent may unblock an owner waiting in the foreground.
        for r in owner_refs(obj) {
            if let Some((gr, ons, oname)) = self.owner_location(ns, r) {
                out.push(GcKey::Owner(gr, ons, oname));
            }
        }
        if event.event_type == EventType::Deleted {
            if let Some(uid) = meta_str(obj, "uid") {
                for dep in self.store.dependents(uid) {
                    if let Some(gr) = self.group_resource(&dep) {
                        let (dns, dname) = name_of(&dep);
                        out.push(GcKey::Dependent(gr, dns, dname));
                    }
                }
            }
        } else {
            self.keys_of(&event.gr, obj, out);
        }
    }

    fn all_keys(&mut self) -> Vec<GcKey> {
        let mut out = Vec::new();
        for gr in self.store.kinds() {
            let (objs, _) = self.store.list(&gr, None);
            for obj in objs {
                self.keys_of(&gr, &obj, &mut out);
            }
        }
        out
    }

    fn reconcile(&mut self, key: &GcKey) -> Result<Option<Instant>, ControllerError> {
        match key {
            GcKey::Dependent(gr, ns, name) => self.attempt_to_delete(gr, ns, name)?,
            GcKey::Owner(gr, ns, name) => self.process_owner(gr, ns, name)?,
        }
        Ok(None)
    }
}
