//! Secondary indexes over the reflector caches, so a reconcile and a watch
//! mapper touch only the objects of one Rollout: ReplicaSets by controller
//! owner uid, CanaryAnalyses by their Rollout label, and Rollouts by the
//! Services, templates and HTTPRoute they name. Without them `observe()` and
//! the Service mapper scanned every cached object, so the work per reconcile
//! grew with the fleet (N² for a wave at 10,000 Rollouts).
//!
//! kube's `Store` has no secondary index; this is hand-written: a map kept
//! from the same watch events the reflector applies. The index is a
//! *superset* of the cache's truth — keys are added before the reflector
//! applies an event and removed only after — and every lookup re-checks the
//! cached object, so a stale entry can cost a lookup, never a wrong answer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;

use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{ROLLOUT_LABEL, Rollout};
use crate::rollout::observe::template_names;
use crate::runtime::packed::Packed;

/// (namespace, index key)
type Slot = (String, String);
/// (namespace, name)
type Name = (String, String);

#[derive(Default)]
struct Inner {
    by_key: HashMap<Slot, BTreeSet<String>>,
    keys_of: HashMap<Name, Vec<String>>,
    /// Objects applied since the watcher's last `Init` (a relist): those not
    /// among them at `InitDone` are gone.
    relisted: Option<HashSet<Name>>,
}

impl Inner {
    fn add(&mut self, name: &Name, keys: &[String]) {
        let known = self.keys_of.entry(name.clone()).or_default();
        for key in keys {
            if !known.contains(key) {
                known.push(key.clone());
            }
            self.by_key
                .entry((name.0.clone(), key.clone()))
                .or_default()
                .insert(name.1.clone());
        }
    }

    fn remove(&mut self, name: &Name) {
        for key in self.keys_of.remove(name).unwrap_or_default() {
            let slot = (name.0.clone(), key);
            if let Some(names) = self.by_key.get_mut(&slot) {
                names.remove(&name.1);
                if names.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
    }

    fn set(&mut self, name: &Name, keys: &[String]) {
        self.remove(name);
        self.add(name, keys);
    }
}

/// Names of one kind by keys derived from each object (`keys`), per namespace.
pub struct RefIndex<K> {
    inner: Arc<RwLock<Inner>>,
    keys: fn(&K) -> Vec<String>,
}

// Not derived: a derive would require `K: Clone`; clones share the maps.
impl<K> Clone for RefIndex<K> {
    fn clone(&self) -> Self {
        RefIndex {
            inner: self.inner.clone(),
            keys: self.keys,
        }
    }
}

fn name_of<K: kube::Resource>(obj: &K) -> Name {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

impl<K: kube::Resource> RefIndex<K> {
    pub fn new(keys: fn(&K) -> Vec<String>) -> RefIndex<K> {
        RefIndex {
            inner: Arc::new(RwLock::new(Inner::default())),
            keys,
        }
    }

    /// An index of `objects` (a cache's current state), for tests and tools.
    pub fn of<'a>(keys: fn(&K) -> Vec<String>, objects: impl IntoIterator<Item = &'a K>) -> Self
    where
        K: 'a,
    {
        let index = RefIndex::new(keys);
        for obj in objects {
            index.write().set(&name_of(obj), &keys(obj));
        }
        index
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        // Every mutation leaves the maps consistent, so a poisoned lock is usable.
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Names in `ns` filed under `key`, sorted.
    pub fn get(&self, ns: &str, key: &str) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_key
            .get(&(ns.to_owned(), key.to_owned()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Before the reflector applies `event`: only additions.
    pub fn before(&self, event: &Event<K>) {
        let mut inner = self.write();
        match event {
            Event::Init => inner.relisted = Some(HashSet::new()),
            Event::InitApply(obj) | Event::Apply(obj) => {
                let name = name_of(obj);
                inner.add(&name, &(self.keys)(obj));
                if let (Event::InitApply(_), Some(seen)) = (event, inner.relisted.as_mut()) {
                    seen.insert(name);
                }
            }
            Event::Delete(_) | Event::InitDone => {}
        }
    }

    /// After the reflector applied `event`: removals (stale keys, deletions,
    /// objects missing from a relist).
    pub fn after(&self, event: &Event<K>) {
        let mut inner = self.write();
        match event {
            Event::Apply(obj) => inner.set(&name_of(obj), &(self.keys)(obj)),
            Event::Delete(obj) => inner.remove(&name_of(obj)),
            Event::InitDone => {
                let seen = inner.relisted.take().unwrap_or_default();
                let gone: Vec<Name> = inner
                    .keys_of
                    .keys()
                    .filter(|n| !seen.contains(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    inner.remove(&name);
                }
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }

    #[cfg(test)]
    fn slots(&self) -> usize {
        self.inner.read().map(|i| i.by_key.len()).unwrap_or(0)
    }
}

/// The uid of a ReplicaSet's controller owner.
pub fn replica_set_owner<K: kube::Resource>(rs: &K) -> Vec<String> {
    rs.owner_references()
        .iter()
        .filter(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
        .collect()
}

/// A CanaryAnalysis's `rollouts.redblack.io/rollout` label.
pub fn analysis_rollout(analysis: &CanaryAnalysis) -> Vec<String> {
    analysis
        .labels()
        .get(ROLLOUT_LABEL)
        .cloned()
        .into_iter()
        .collect()
}

/// Everything a Rollout names that a watch maps back to it, prefixed by kind
/// so one index serves every mapper.
pub fn rollout_refs(rollout: &Rollout) -> Vec<String> {
    let rb = &rollout.spec.strategy.red_black;
    let mut keys = vec![format!("svc/{}", rb.active_service)];
    keys.extend(rb.preview_service.iter().map(|s| format!("svc/{s}")));
    keys.extend(template_names(rollout).iter().map(|t| format!("tpl/{t}")));
    keys.extend(rollout.spec.http_route_name().map(|r| format!("route/{r}")));
    keys.extend(
        rollout
            .spec
            .workload_ref
            .iter()
            .map(|w| format!("deploy/{}", w.name)),
    );
    keys
}

/// [`rollout_refs`] of a cached (packed) Rollout.
pub fn packed_rollout_refs(rollout: &Packed<Rollout>) -> Vec<String> {
    match rollout.unpack() {
        Ok(r) => rollout_refs(&r),
        // Cannot happen for bytes the cache packed; the Rollout's own
        // reconcile reports it.
        Err(e) => {
            tracing::warn!(error = %e, "indexing a Rollout");
            Vec::new()
        }
    }
}

/// The indexes the controller keeps next to its caches.
#[derive(Clone)]
pub struct Indexes {
    pub replica_sets: RefIndex<Packed<ReplicaSet>>,
    pub analyses: RefIndex<CanaryAnalysis>,
    pub rollouts: RefIndex<Packed<Rollout>>,
}

impl Default for Indexes {
    fn default() -> Self {
        Indexes {
            replica_sets: RefIndex::new(replica_set_owner),
            analyses: RefIndex::new(analysis_rollout),
            rollouts: RefIndex::new(packed_rollout_refs),
        }
    }
}

impl Indexes {
    /// Indexes of the caches' current contents (for tests and tools; the
    /// controller keeps its own from the watches).
    pub fn of(
        rollouts: &Store<Packed<Rollout>>,
        replica_sets: &Store<Packed<ReplicaSet>>,
        analyses: &Store<CanaryAnalysis>,
    ) -> Indexes {
        let (r, rs, a) = (rollouts.state(), replica_sets.state(), analyses.state());
        Indexes {
            replica_sets: RefIndex::of(replica_set_owner, rs.iter().map(|o| &**o)),
            analyses: RefIndex::of(analysis_rollout, a.iter().map(|o| &**o)),
            rollouts: RefIndex::of(packed_rollout_refs, r.iter().map(|o| &**o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn rs(name: &str, owner: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                owner_references: Some(vec![OwnerReference {
                    controller: Some(true),
                    uid: owner.into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        }
    }

    #[test]
    fn a_changed_key_is_added_before_and_the_old_one_dropped_after() {
        let idx = RefIndex::new(replica_set_owner);
        idx.before(&Event::Apply(rs("a", "u1")));
        idx.after(&Event::Apply(rs("a", "u1")));
        assert_eq!(idx.get("ns", "u1"), vec!["a"]);
        // Re-owned: between before and after, both owners find it (a superset).
        idx.before(&Event::Apply(rs("a", "u2")));
        assert_eq!(idx.get("ns", "u1"), vec!["a"]);
        assert_eq!(idx.get("ns", "u2"), vec!["a"]);
        idx.after(&Event::Apply(rs("a", "u2")));
        assert!(idx.get("ns", "u1").is_empty());
        assert_eq!(idx.get("ns", "u2"), vec!["a"]);
        assert!(idx.get("other", "u2").is_empty());
        idx.before(&Event::Delete(rs("a", "u2")));
        assert_eq!(
            idx.get("ns", "u2"),
            vec!["a"],
            "kept until the cache drops it"
        );
        idx.after(&Event::Delete(rs("a", "u2")));
        assert_eq!(idx.slots(), 0);
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_lists() {
        let idx = RefIndex::new(replica_set_owner);
        for e in [Event::Apply(rs("a", "u1")), Event::Apply(rs("b", "u1"))] {
            idx.before(&e);
            idx.after(&e);
        }
        let relist = [
            Event::Init,
            Event::InitApply(rs("b", "u1")),
            Event::InitDone,
        ];
        for e in &relist {
            idx.before(e);
            assert_eq!(idx.get("ns", "u1").len(), 2, "nothing lost mid-relist");
            idx.after(e);
        }
        assert_eq!(idx.get("ns", "u1"), vec!["b"]);
    }
}
