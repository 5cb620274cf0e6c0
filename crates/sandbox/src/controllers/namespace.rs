//! Namespace controller: a deleted Namespace takes everything in it along.
//!
//! Live namespaces get phase `Active` and a `kubernetes` finalizer in
//! `metadata.finalizers` (the store honours only metadata finalizers; the real API
//! keeps this one in `spec.finalizers`). Deleting the namespace then leaves it in
//! phase `Terminating` while every namespaced object of every served kind is
//! deleted; once none is left the finalizer goes and the namespace disappears.
//! A namespace deleted outright (created before the controller ran) still has
//! its contents deleted, just without the visible Terminating phase.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::runner::Reconciler;
use super::{Builtins, ControllerError, has_finalizer, is_deleting};
use crate::registry::{GroupResource, Registry};
use crate::store::{DeleteOptions, Store, StoreError, StoredEvent, UpdateTarget, meta_str};

pub const NAMESPACE_FINALIZER: &str = "kubernetes";

pub(crate) struct NamespaceController {
    store: Arc<Store>,
    registry: Arc<Registry>,
    types: Builtins,
    /// Namespaces being emptied: any change inside one is a reason to look again.
    terminating: HashSet<String>,
}

fn without_finalizer(list: Option<&Value>) -> Option<Value> {
    let list = list?.as_array()?;
    Some(Value::Array(
        list.iter()
            .filter(|f| f.as_str() != Some(NAMESPACE_FINALIZER))
            .cloned()
            .collect(),
    ))
}

impl NamespaceController {
    pub(crate) fn new(store: Arc<Store>, registry: Arc<Registry>, types: Builtins) -> Self {
        Self {
            store,
            registry,
            types,
            terminating: HashSet::new(),
        }
    }

    fn namespaced_kinds(&self) -> Vec<GroupResource> {
        let kinds: BTreeSet<GroupResource> = self
            .registry
            .all()
            .into_iter()
            .filter(|t| t.namespaced && t.kind != "Namespace")
            .map(|t| t.group_resource())
            .collect();
        kinds.into_iter().collect()
    }

    /// Deletes everything in `ns`; returns how many objects are still there
    /// (held by finalizers, or created meanwhile).
    fn purge(&self, ns: &str) -> Result<usize, ControllerError> {
        let mut remaining = 0;
        for gr in self.namespaced_kinds() {
            let Some(rt) = self.registry.by_group_resource(&gr) else {
                continue;
            };
            let (objs, _) = self.store.list(&gr, Some(ns));
            for obj in objs {
                if is_deleting(&obj) {
                    remaining += 1;
                    continue;
                }
                let name = meta_str(&obj, "name").unwrap_or("");
                let opts = DeleteOptions {
                    precondition_uid: meta_str(&obj, "uid").map(String::from),
                    ..Default::default()
                };
                match self.store.delete(&rt, ns, name, &opts) {
                    Ok(crate::store::DeleteOutcome::Pending(_)) => remaining += 1,
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    // Replaced under the same name: it is still there.
                    Err(StoreError::PreconditionFailed(_)) => remaining += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(remaining)
    }

    fn set_phase(&self, ns_obj: &Value, phase: &str) -> Result<(), ControllerError> {
        let current = ns_obj
            .get("status")
            .and_then(|s| s.get("phase"))
            .and_then(Value::as_str);
        if current == Some(phase) {
            return Ok(());
        }
        let mut next = ns_obj.clone();
        if let Some(map) = next.as_object_mut() {
            let status = map.entry("status").or_insert_with(|| json!({}));
            if let Some(s) = status.as_object_mut() {
                s.insert("phase".into(), json!(phase));
            } else {
                *status = json!({"phase": phase});
            }
        }
        self.store
            .update(&self.types.namespaces, next, UpdateTarget::Status)?;
        Ok(())
    }
}

impl Reconciler for NamespaceController {
    type Key = String;
    const NAME: &'static str = "namespace";
    // Every input is a store object: events (and a full pass on lag) suffice.
    const RESYNC: bool = false;

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<String>) {
        if event.gr == self.types.namespaces.group_resource() {
            out.push(meta_str(&event.object, "name").unwrap_or("").to_string());
        } else if self.terminating.contains(event.namespace()) {
            out.push(event.namespace().to_string());
        }
    }

    fn all_keys(&mut self) -> Vec<String> {
        let (all, _) = self
            .store
            .list(&self.types.namespaces.group_resource(), None);
        let mut keys: Vec<String> = all
            .iter()
            .filter_map(|n| meta_str(n, "name").map(String::from))
            .collect();
        keys.extend(self.terminating.iter().cloned());
        keys
    }

    fn reconcile(&mut self, ns: &String) -> Result<Option<Instant>, ControllerError> {
        let gr = self.types.namespaces.group_resource();
        let Some(obj) = self.store.get(&gr, "", ns) else {
            self.terminating.remove(ns);
            let left = self.purge(ns)?;
            if left > 0 {
                tracing::debug!(namespace = %ns, left, "deleted namespace still has objects held by finalizers");
            }
            return Ok(None);
        };
        if !is_deleting(&obj) {
            self.terminating.remove(ns);
            let obj = if has_finalizer(&obj, NAMESPACE_FINALIZER) {
                obj
            } else {
                let mut next = (*obj).clone();
                if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                    match list.as_array_mut() {
                        Some(l) => l.push(json!(NAMESPACE_FINALIZER)),
                        None => *list = json!([NAMESPACE_FINALIZER]),
                    }
                }
                self.store
                    .update(&self.types.namespaces, next, UpdateTarget::Main)?
            };
            self.set_phase(&obj, "Active")?;
            return Ok(None);
        }
        self.terminating.insert(ns.clone());
        self.set_phase(&obj, "Terminating")?;
        let left = self.purge(ns)?;
        if left > 0 {
            tracing::debug!(namespace = %ns, left, "namespace terminating, waiting for its objects");
            return Ok(None);
        }
        let Some(current) = self.store.get(&gr, "", ns) else {
            return Ok(None);
        };
        let mut next = (*current).clone();
        let spec_fins = without_finalizer(next.get("spec").and_then(|s| s.get("finalizers")));
        if let (Some(f), Some(spec)) = (
            spec_fins,
            next.get_mut("spec").and_then(Value::as_object_mut),
        ) {
            spec.insert("finalizers".into(), f);
        }
        let meta_fins = without_finalizer(next.get("metadata").and_then(|m| m.get("finalizers")));
        if let (Some(f), Some(meta)) = (
            meta_fins,
            next.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            meta.insert("finalizers".into(), f);
        }
        self.store
            .update(&self.types.namespaces, next, UpdateTarget::Main)?;
        self.terminating.remove(ns);
        tracing::info!(namespace = %ns, "namespace emptied and finalized");
        Ok(None)
    }
}
