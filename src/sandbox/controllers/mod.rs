//! The few controllers a rollout depends on, run in-process against the sandbox
//! store (no HTTP): ReplicaSets, a pod lifecycle simulator, garbage collection by
//! owner references, Endpoints for Services, and Namespace deletion.
//!
//! Every controller is level-triggered: store events only say *which* keys to look
//! at, and each reconcile compares the store's current state with the desired one,
//! writing only when they differ. See `runner` for the shared loop.
//!
//! Known simplifications (this is a simulator, DESIGN.md §4):
//! - ReplicaSets never adopt orphaned pods that match their selector, and never
//!   release pods whose labels stop matching: ownership is the controller
//!   ownerReference only.
//! - Namespaces get a `kubernetes` entry in `metadata.finalizers` (the store only
//!   honours metadata finalizers), which is what keeps a deleted namespace visible
//!   in phase `Terminating` while its contents are deleted.

mod endpoints;
mod gc;
pub mod labels;
mod namespace;
pub mod pod_runtime;
pub mod pods;
mod replicaset;
mod runner;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::registry::{GroupResource, Registry, ResourceType};
use super::store::{Store, StoreError, meta_str};

#[derive(Clone, Debug)]
pub struct ControllersConfig {
    /// How long a simulated pod stays Running-but-not-Ready before turning Ready
    /// (a pod can override it with the `sandbox.redblack.io/ready-after` annotation).
    pub pod_ready_after: Duration,
    /// Period of the safety sweep that re-examines everything, in case an event
    /// was missed; correctness never waits for it.
    pub resync: Duration,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        Self {
            pod_ready_after: Duration::from_secs(2),
            resync: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("kind {0} is not registered")]
    UnknownKind(String),
    #[error("no free {0}")]
    Exhausted(String),
}

/// The running controllers; dropping it stops them.
#[must_use = "dropping the handle stops the controllers"]
pub struct ControllersHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl ControllersHandle {
    /// Stops every controller and waits until their tasks have ended.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // A cancelled task reports a JoinError; that is the expected outcome.
            let _ = task.await;
        }
    }
}

impl Drop for ControllersHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts every controller on the current Tokio runtime (like `tokio::spawn`, it
/// must be called from within one). Each subscribes to the store before its first
/// full listing, so no change can slip between the two.
pub fn start(
    store: Arc<Store>,
    registry: Arc<Registry>,
    cfg: ControllersConfig,
) -> ControllersHandle {
    let types = Builtins::from_registry(&registry);
    let resync = cfg.resync;
    let mut tasks = Vec::new();
    let Some(types) = types else {
        // Only reachable with a registry that lost its built-in kinds.
        tracing::error!(
            "built-in kinds missing from the registry; sandbox controllers not started"
        );
        return ControllersHandle { tasks };
    };
    tasks.push(tokio::spawn(runner::run(
        replicaset::ReplicaSetController::new(store.clone(), types.clone()),
        store.subscribe(),
        resync,
    )));
    tasks.push(tokio::spawn(runner::run(
        pods::PodController::new(store.clone(), types.clone(), cfg.pod_ready_after),
        store.subscribe(),
        resync,
    )));
    tasks.push(tokio::spawn(runner::run(
        gc::GarbageCollector::new(store.clone(), registry.clone()),
        store.subscribe(),
        resync,
    )));
    tasks.push(tokio::spawn(runner::run(
        endpoints::EndpointsController::new(store.clone(), types.clone()),
        store.subscribe(),
        resync,
    )));
    let namespace_events = store.subscribe();
    tasks.push(tokio::spawn(runner::run(
        namespace::NamespaceController::new(store, registry, types),
        namespace_events,
        resync,
    )));
    ControllersHandle { tasks }
}

/// The built-in kinds the controllers write, looked up once.
#[derive(Clone, Debug)]
pub(crate) struct Builtins {
    pub pods: ResourceType,
    pub replicasets: ResourceType,
    pub services: ResourceType,
    pub endpoints: ResourceType,
    pub namespaces: ResourceType,
    pub events: ResourceType,
}

impl Builtins {
    pub(crate) fn from_registry(registry: &Registry) -> Option<Self> {
        Some(Self {
            pods: registry.by_kind("v1", "Pod")?,
            replicasets: registry.by_kind("apps/v1", "ReplicaSet")?,
            services: registry.by_kind("v1", "Service")?,
            endpoints: registry.by_kind("v1", "Endpoints")?,
            namespaces: registry.by_kind("v1", "Namespace")?,
            events: registry.by_kind("v1", "Event")?,
        })
    }
}

/// (namespace, name): how namespaced controllers key their work.
pub(crate) type ObjKey = (String, String);

pub(crate) fn obj_key(obj: &Value) -> ObjKey {
    (
        meta_str(obj, "namespace").unwrap_or("").to_string(),
        meta_str(obj, "name").unwrap_or("").to_string(),
    )
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

pub(crate) fn owner_refs(obj: &Value) -> &[Value] {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The ownerReference marked `controller: true`, if any.
pub(crate) fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_refs(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

pub(crate) fn has_finalizer(obj: &Value, name: &str) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(name)))
}

/// The kind serving `apiVersion`/`kind`, tolerating another version of the same
/// group (owner references may name any served version, as the real GC allows).
pub(crate) fn resolve_kind(
    registry: &Registry,
    api_version: &str,
    kind: &str,
) -> Option<ResourceType> {
    registry.by_kind(api_version, kind).or_else(|| {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        registry
            .all()
            .into_iter()
            .find(|t| t.group == group && t.kind == kind)
    })
}

pub(crate) fn group_resource_of(registry: &Registry, obj: &Value) -> Option<GroupResource> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    resolve_kind(registry, api_version, kind).map(|t| t.group_resource())
}

pub(crate) fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The monotonic instant matching a wall-clock time (now, if it is already past).
pub(crate) fn instant_at(t: chrono::DateTime<chrono::Utc>) -> tokio::time::Instant {
    let ahead = (t - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + ahead
}

/// A pod's `Ready` condition: whether it is True, and since when.
pub(crate) fn pod_ready(pod: &Value) -> (bool, Option<chrono::DateTime<chrono::Utc>>) {
    let cond = pod
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    match cond {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => (
            true,
            c.get("lastTransitionTime")
                .and_then(Value::as_str)
                .and_then(parse_time),
        ),
        _ => (false, None),
    }
}

pub(crate) fn pod_phase(pod: &Value) -> &str {
    pod.get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("")
}
