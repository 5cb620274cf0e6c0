//! The sandbox's in-memory object store: the semantics of a Kubernetes API server's
//! storage layer (uid, resourceVersion, generation, deletion with finalizers,
//! optimistic concurrency) and a bounded event history for watches.
//!
//! Objects are kept as JSON, so CRD kinds cost nothing extra; every write is one
//! short critical section under a mutex, and watchers get `Arc`s of the same events.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::graceful::{self, Grace};
use super::label_index::LabelIndex;
use super::registry::{GroupResource, ResourceType};
use super::watch_history::{self, HistoryLimits};

/// Live watchers that fall further behind than this are cut off; they resume from
/// their last resourceVersion out of `history`, which is longer.
const BROADCAST_CAPACITY: usize = 8192;
pub use super::watch_history::DEFAULT_HISTORY;

/// Where the store reads the time for the history's age bound (tests inject one).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub gr: GroupResource,
    pub event_type: EventType,
    pub object: Arc<Value>,
}

impl StoredEvent {
    pub fn namespace(&self) -> &str {
        meta_str(&self.object, "namespace").unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict { resource: String, name: String },
    #[error("Precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("{0}")]
    BadRequest(String),
}

/// Which part of an object an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateTarget {
    /// The object itself; `status` is left alone for kinds with a status subresource.
    Main,
    /// Only `status`; everything else is left alone.
    Status,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `gracePeriodSeconds`: `None` takes the object's own (a pod's
    /// `terminationGracePeriodSeconds`); only pods are deleted gracefully.
    pub grace_period_seconds: Option<i64>,
}

impl DeleteOptions {
    /// A delete that removes at once (`--grace-period=0 --force`), as the
    /// kubelet's last delete of a pod it has stopped.
    pub fn now() -> Self {
        Self {
            grace_period_seconds: Some(0),
            ..Self::default()
        }
    }
}

/// What a delete did: removed at once, or marked and waiting for finalizers.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    Deleted(Arc<Value>),
    Pending(Arc<Value>),
}

#[cfg(test)]
mod history_tests;

type ObjectKey = (String, String);

/// A live feed of every change in the store.
pub type EventReceiver = broadcast::Receiver<Arc<StoredEvent>>;

struct Inner {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>>,
    /// owner uid -> dependents, so the garbage collector never scans everything.
    dependents: HashMap<String, HashSet<(GroupResource, String, String)>>,
    /// label → names per kind and namespace, so selectors never scan (`select`).
    labels: LabelIndex,
    /// Events oldest first, each with when it was recorded and its estimated bytes.
    history: VecDeque<(Instant, usize, Arc<StoredEvent>)>,
    /// The sum of the estimated bytes in `history`.
    history_bytes: usize,
    history_limits: HistoryLimits,
    /// The resourceVersion of the newest event dropped from `history`.
    compacted_rv: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    clock: Clock,
    events: broadcast::Sender<Arc<StoredEvent>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn resource_label(gr: &GroupResource) -> String {
    if gr.group.is_empty() {
        gr.resource.clone()
    } else {
        format!("{}.{}", gr.resource, gr.group)
    }
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, StoreError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| StoreError::BadRequest("object must be a JSON object".into()))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    meta.as_object_mut()
        .ok_or_else(|| StoreError::BadRequest("metadata must be an object".into()))
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A copy without `metadata` (and `status` when `drop_status`), for "did the spec change".
fn content_without_meta(obj: &Value, drop_status: bool) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        if drop_status {
            map.remove("status");
        }
    }
    copy
}

fn random_suffix(len: usize) -> String {
    // The alphabet Kubernetes uses for generated names: no vowels, no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Store {
    /// A store whose watch history is bounded by count only.
    pub fn new(history_limit: usize) -> Self {
        Self::with_history(HistoryLimits::count_only(history_limit))
    }

    /// A store whose watch history is bounded by count, age and bytes.
    pub fn with_history(limits: HistoryLimits) -> Self {
        Self::with_history_and_clock(limits, Arc::new(Instant::now))
    }

    /// As `with_history`, reading the time from `clock` (tests move it by hand).
    pub fn with_history_and_clock(limits: HistoryLimits, clock: Clock) -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                dependents: HashMap::new(),
                labels: LabelIndex::default(),
                history: VecDeque::new(),
                history_bytes: 0,
                history_limits: limits,
                compacted_rv: 0,
            }),
            clock,
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-written (every
        // mutation is a single insert/remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(gr)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of one kind (in one namespace, or all), ordered by namespace and
    /// name, with the resourceVersion the snapshot was taken at.
    pub fn list(&self, gr: &GroupResource, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        (Self::list_locked(&inner, gr, namespace), inner.rv)
    }

    fn list_locked(inner: &Inner, gr: &GroupResource, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(map) = inner.objects.get(gr) else {
            return Vec::new();
        };
        match namespace {
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => map.values().cloned().collect(),
        }
    }

    /// A consistent snapshot plus a live subscription that starts right after it.
    pub fn snapshot_and_subscribe(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, EventReceiver) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        (Self::list_locked(&inner, gr, namespace), inner.rv, rx)
    }

    /// Events after `rv` (of every kind: callers filter) plus a live subscription
    /// that continues without a gap; `Gone` when `rv` is older than the history.
    pub fn watch_from(
        &self,
        rv: u64,
    ) -> Result<(Vec<Arc<StoredEvent>>, EventReceiver), StoreError> {
        let mut inner = self.lock();
        self.resumable(&mut inner, rv)?;
        // Events are in rv order: skip the ones the client has, clone the rest.
        let first = inner.history.partition_point(|(_, _, e)| e.rv <= rv);
        let backlog = inner
            .history
            .range(first..)
            .map(|(_, _, e)| e.clone())
            .collect();
        Ok((backlog, self.events.subscribe()))
    }

    /// Whether a watch (or a list continuation) from `rv` would be served:
    /// `Gone` when the history no longer reaches back to it.
    pub fn check_resumable(&self, rv: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        self.resumable(&mut inner, rv)
    }

    /// `Gone` when the history, compacted now, no longer reaches back to `rv`.
    fn resumable(&self, inner: &mut Inner, rv: u64) -> Result<(), StoreError> {
        // Compact first: without writes the age bound would never apply.
        self.compact(inner);
        if rv < inner.compacted_rv {
            return Err(StoreError::Gone {
                requested: rv,
                oldest: inner.compacted_rv,
            });
        }
        Ok(())
    }

    /// Events and estimated bytes the watch history holds now.
    pub fn history_size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.history.len(), inner.history_bytes)
    }

    /// A live subscription to every change from now on (for in-process controllers).
    pub fn subscribe(&self) -> EventReceiver {
        self.events.subscribe()
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<Arc<Value>> {
        let inner = self.lock();
        let Some(keys) = inner.dependents.get(owner_uid) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<Value>> = keys
            .iter()
            .filter_map(|(gr, ns, name)| {
                inner
                    .objects
                    .get(gr)?
                    .get(&(ns.clone(), name.clone()))
                    .cloned()
            })
            .collect();
        out.sort_by(|a, b| meta_str(a, "name").cmp(&meta_str(b, "name")));
        out
    }

    /// Objects of `gr` in `namespace` whose labels include every pair of the
    /// equality `selector` (an empty one selects all), ordered by name: through
    /// the label index, O(matches of the selector's rarest pair), not O(namespace).
    pub fn select(
        &self,
        gr: &GroupResource,
        namespace: &str,
        selector: &Map<String, Value>,
    ) -> Vec<Arc<Value>> {
        let inner = self.lock();
        let Some(names) = inner.labels.candidates(gr, namespace, selector) else {
            return Self::list_locked(&inner, gr, Some(namespace));
        };
        let Some(map) = inner.objects.get(gr) else {
            return Vec::new();
        };
        names
            .into_iter()
            .filter_map(|name| map.get(&(namespace.to_string(), name)).cloned())
            .filter(|obj| {
                let labels = obj
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(Value::as_object);
                selector.iter().all(|(k, v)| {
                    v.as_str()
                        .is_some_and(|v| labels.and_then(|l| l.get(k)?.as_str()) == Some(v))
                })
            })
            .collect()
    }

    /// Every kind that currently has objects (the garbage collector walks these).
    pub fn kinds(&self) -> Vec<GroupResource> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Removes every object of a kind (a deleted CRD takes its objects with it).
    pub fn drop_kind(&self, gr: &GroupResource) {
        let mut inner = self.lock();
        let Some(map) = inner.objects.remove(gr) else {
            return;
        };
        for (_, obj) in map {
            Self::unindex(&mut inner, gr, &obj);
            inner.rv += 1;
            let mut gone = (*obj).clone();
            if let Ok(meta) = metadata_mut(&mut gone) {
                meta.insert("resourceVersion".into(), json!(inner.rv.to_string()));
            }
            self.record(&mut inner, gr, EventType::Deleted, Arc::new(gone));
        }
    }

    pub fn create(&self, rt: &ResourceType, mut obj: Value) -> Result<Arc<Value>, StoreError> {
        let gr = rt.group_resource();
        let mut inner = self.lock();
        let meta = metadata_mut(&mut obj)?;
        if !rt.namespaced {
            meta.remove("namespace");
        }
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if rt.namespaced && namespace.is_empty() {
            return Err(StoreError::BadRequest(
                "the namespace of the object must be set".into(),
            ));
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => loop {
                    let candidate = format!("{prefix}{}", random_suffix(5));
                    let taken = inner
                        .objects
                        .get(&gr)
                        .is_some_and(|m| m.contains_key(&(namespace.clone(), candidate.clone())));
                    if !taken {
                        break candidate;
                    }
                },
                _ => {
                    return Err(StoreError::BadRequest(
                        "name or generateName is required".into(),
                    ));
                }
            },
        };
        if rt.namespaced && rt.kind != "Namespace" {
            let ns_key = GroupResource::new("", "namespaces");
            let exists = inner
                .objects
                .get(&ns_key)
                .is_some_and(|m| m.contains_key(&(String::new(), namespace.clone())));
            if !exists {
                return Err(StoreError::NotFound {
                    resource: "namespaces".into(),
                    name: namespace,
                });
            }
        }
        let key = (namespace, name.clone());
        if inner.objects.get(&gr).is_some_and(|m| m.contains_key(&key)) {
            return Err(StoreError::AlreadyExists {
                resource: resource_label(&gr),
                name,
            });
        }
        let rv = inner.rv + 1;
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(rt.api_version()));
            map.insert("kind".into(), json!(rt.kind));
        }
        let obj = Arc::new(obj);
        inner.rv = rv;
        inner
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key, obj.clone());
        Self::index(&mut inner, &gr, &obj);
        self.record(&mut inner, &gr, EventType::Added, obj.clone());
        Ok(obj)
    }

    /// Replaces an object (or its status). A stale `metadata.resourceVersion` is a
    /// Conflict; a write that changes nothing returns the stored object untouched.
    pub fn update(
        &self,
        rt: &ResourceType,
        mut obj: Value,
        target: UpdateTarget,
    ) -> Result<Arc<Value>, StoreError> {
        let gr = rt.group_resource();
        let namespace = if rt.namespaced {
            meta_str(&obj, "namespace").unwrap_or("").to_string()
        } else {
            String::new()
        };
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let mut inner = self.lock();
        let key = (namespace, name.clone());
        let current = inner
            .objects
            .get(&gr)
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                resource: resource_label(&gr),
                name: name.clone(),
            })?;
        if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(StoreError::Conflict {
                resource: resource_label(&gr),
                name,
            });
        }
        let mut next = match target {
            UpdateTarget::Status => {
                let mut next = (*current).clone();
                if let (Some(map), Some(status)) = (next.as_object_mut(), obj.get("status")) {
                    map.insert("status".into(), status.clone());
                }
                // Status writers may still touch managedFields (server-side apply).
                if let Some(mf) = obj.get("metadata").and_then(|m| m.get("managedFields")) {
                    metadata_mut(&mut next)?.insert("managedFields".into(), mf.clone());
                }
                next
            }
            UpdateTarget::Main => {
                if rt.status_subresource
                    && let Some(map) = obj.as_object_mut()
                {
                    match current.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                let meta = metadata_mut(&mut obj)?;
                for field in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match current.get("metadata").and_then(|m| m.get(field)) {
                        Some(v) => meta.insert(field.into(), v.clone()),
                        None => meta.remove(field),
                    };
                }
                if !meta.contains_key("managedFields")
                    && let Some(mf) = current.get("metadata").and_then(|m| m.get("managedFields"))
                {
                    meta.insert("managedFields".into(), mf.clone());
                }
                if let Some(map) = obj.as_object_mut() {
                    map.insert("apiVersion".into(), json!(rt.api_version()));
                    map.insert("kind".into(), json!(rt.kind));
                }
                obj
            }
        };
        // Compare with the resourceVersion aligned: a no-op write must not bump it.
        metadata_mut(&mut next)?.insert(
            "resourceVersion".into(),
            current["metadata"]["resourceVersion"].clone(),
        );
        if next == *current {
            return Ok(current);
        }
        let spec_changed = content_without_meta(&next, rt.status_subresource)
            != content_without_meta(&current, rt.status_subresource);
        if spec_changed && target == UpdateTarget::Main {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            metadata_mut(&mut next)?.insert("generation".into(), json!(generation + 1));
        }
        let rv = inner.rv + 1;
        metadata_mut(&mut next)?.insert("resourceVersion".into(), json!(rv.to_string()));
        inner.rv = rv;
        Self::unindex(&mut inner, &gr, &current);
        let deleting = next["metadata"].get("deletionTimestamp").is_some();
        let next = Arc::new(next);
        // A pod in its grace period stays until the kubelet deletes it again.
        if deleting && finalizers(&next).is_empty() && graceful::removed_on_update(&current) {
            if let Some(m) = inner.objects.get_mut(&gr) {
                m.remove(&key);
            }
            self.record(&mut inner, &gr, EventType::Deleted, next.clone());
        } else {
            inner
                .objects
                .entry(gr.clone())
                .or_default()
                .insert(key, next.clone());
            Self::index(&mut inner, &gr, &next);
            self.record(&mut inner, &gr, EventType::Modified, next.clone());
        }
        Ok(next)
    }

    /// Deletes at once when nothing holds the object; otherwise marks it with a
    /// deletionTimestamp (and the `foregroundDeletion`/`orphan` finalizer the
    /// propagation policy asks for) and leaves the rest to the garbage collector.
    /// A pod on a node is held by its grace period too (`graceful`): marked with
    /// `deletionGracePeriodSeconds`, removed by the kubelet's delete with grace 0.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, StoreError> {
        let gr = rt.group_resource();
        let ns = if rt.namespaced { namespace } else { "" };
        let key = (ns.to_string(), name.to_string());
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&gr)
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                resource: resource_label(&gr),
                name: name.to_string(),
            })?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&current, "uid")
        {
            return Err(StoreError::PreconditionFailed(format!(
                "UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&current, "uid").unwrap_or("")
            )));
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != meta_str(&current, "resourceVersion")
        {
            return Err(StoreError::Conflict {
                resource: resource_label(&gr),
                name: name.to_string(),
            });
        }
        let grace = graceful::before_delete(rt, &current, opts.grace_period_seconds, Utc::now());
        if grace == Grace::Pending {
            return Ok(DeleteOutcome::Pending(current));
        }
        let mut fins = finalizers(&current);
        let extra = match opts.propagation {
            Propagation::Foreground => Some("foregroundDeletion"),
            Propagation::Orphan => Some("orphan"),
            Propagation::Background => None,
        };
        // Only bother the garbage collector when there is something to do for it.
        if let Some(f) = extra
            && inner
                .dependents
                .get(meta_str(&current, "uid").unwrap_or(""))
                .is_some_and(|d| !d.is_empty())
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        // Deleting again what is already being deleted, with no new finalizer to
        // add, changes nothing: no new resourceVersion, no event (else a caller
        // that retries deletes would feed watchers an endless stream).
        if grace == Grace::Immediate
            && meta_str(&current, "deletionTimestamp").is_some()
            && !fins.is_empty()
            && fins == finalizers(&current)
        {
            return Ok(DeleteOutcome::Pending(current));
        }
        let rv = inner.rv + 1;
        inner.rv = rv;
        let mut next = (*current).clone();
        let meta = metadata_mut(&mut next)?;
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        // A grace period running keeps the object (the kubelet removes it).
        let grace_running = match &grace {
            Grace::Mark {
                deletion_timestamp,
                grace_seconds,
            } => {
                meta.insert("deletionTimestamp".into(), json!(deletion_timestamp));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace_seconds));
                *grace_seconds > 0
            }
            Grace::Immediate | Grace::Pending => false,
        };
        if fins.is_empty() && !grace_running {
            if let Some(m) = inner.objects.get_mut(&gr) {
                m.remove(&key);
            }
            Self::unindex(&mut inner, &gr, &current);
            let next = Arc::new(next);
            self.record(&mut inner, &gr, EventType::Deleted, next.clone());
            return Ok(DeleteOutcome::Deleted(next));
        }
        if !meta.contains_key("deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if fins.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(fins));
        }
        let next = Arc::new(next);
        inner
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key, next.clone());
        self.record(&mut inner, &gr, EventType::Modified, next.clone());
        Ok(DeleteOutcome::Pending(next))
    }

    fn index(inner: &mut Inner, gr: &GroupResource, obj: &Value) {
        let ns = meta_str(obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        inner.labels.insert(gr, &ns, &name, obj);
        for uid in owner_uids(obj) {
            inner
                .dependents
                .entry(uid)
                .or_default()
                .insert((gr.clone(), ns.clone(), name.clone()));
        }
    }

    fn unindex(inner: &mut Inner, gr: &GroupResource, obj: &Value) {
        let ns = meta_str(obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        inner.labels.remove(gr, &ns, &name, obj);
        for uid in owner_uids(obj) {
            if let Some(set) = inner.dependents.get_mut(&uid) {
                set.remove(&(gr.clone(), ns.clone(), name.clone()));
                if set.is_empty() {
                    inner.dependents.remove(&uid);
                }
            }
        }
    }

    fn record(
        &self,
        inner: &mut Inner,
        gr: &GroupResource,
        event_type: EventType,
        object: Arc<Value>,
    ) {
        let event = Arc::new(StoredEvent {
            rv: inner.rv,
            gr: gr.clone(),
            event_type,
            object,
        });
        let bytes = watch_history::approx_bytes(&event.object);
        inner
            .history
            .push_back(((self.clock)(), bytes, event.clone()));
        inner.history_bytes += bytes;
        self.compact(inner);
        // No receivers is normal (nobody watching yet).
        let _ = self.events.send(event);
    }

    /// Drops what the history's bounds no longer cover (`watch_history::to_trim`)
    /// and remembers the newest dropped resourceVersion: older resumes are Gone.
    fn compact(&self, inner: &mut Inner) {
        let drop = watch_history::to_trim(
            inner.history.iter().map(|(at, bytes, _)| (*at, *bytes)),
            inner.history_bytes,
            (self.clock)(),
            &inner.history_limits,
        );
        for _ in 0..drop {
            if let Some((_, bytes, old)) = inner.history.pop_front() {
                inner.history_bytes = inner.history_bytes.saturating_sub(bytes);
                inner.compacted_rv = old.rv;
            }
        }
    }
}
