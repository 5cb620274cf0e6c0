//! The few controllers a rollout depends on, run in-process against the sandbox
//! store (no HTTP): Deployments, ReplicaSets, Jobs (`job`), a pod lifecycle simulator, garbage collection by
//! owner references, Endpoints for Services, and Namespace deletion.
//!
//! Every controller is level-triggered: store events only say *which* keys to look
//! at, and each reconcile compares the store's current state with the desired one,
//! writing only when they differ. See `runner` for the shared loop.
//!
//! Known simplifications (this is a simulator; docs/sandbox.md lists them all):
//! - ReplicaSets never adopt orphaned pods that match their selector, and never
//!   release pods whose labels stop matching: ownership is the controller
//!   ownerReference only.
//! - Namespaces get a `kubernetes` entry in `metadata.finalizers` (the store only
//!   honours metadata finalizers), which is what keeps a deleted namespace visible
//!   in phase `Terminating` while its contents are deleted.

mod deployment;
pub(crate) mod endpoints;
pub(crate) mod event_ttl;
mod gc;
pub mod job;
pub mod labels;
mod namespace;
mod objects;
pub mod operator_spec;
pub mod pod_env;
pub mod pod_logs;
pub mod pod_runtime;
pub mod pods;
pub mod process_credentials;
mod process_health;
pub mod process_launch;
pub mod process_probe;
pub mod process_runtime;
pub mod process_spec;
mod process_stop;
mod replicaset;
pub(crate) mod runner;
mod selector_index;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use event_ttl::DEFAULT_EVENT_TTL;

use super::registry::{Registry, ResourceType};
use super::store::{Store, StoreError};

pub(crate) use objects::{
    ObjKey, controlled_by, controller_key, controller_ref, group_resource_of, has_finalizer,
    instant_at, is_deleting, obj_key, owner_refs, parse_time, pod_phase, pod_ready, resolve_kind,
};

#[derive(Clone, Debug)]
pub struct ControllersConfig {
    /// How long a simulated pod stays Running-but-not-Ready before turning Ready
    /// (a pod can override it with the `sandbox.redblack.io/ready-after` annotation).
    pub pod_ready_after: Duration,
    /// Period of the safety sweep that re-examines everything, in case an event
    /// was missed; correctness never waits for it.
    pub resync: Duration,
    /// How demo-app pods run as real processes (`process_runtime`); set
    /// `process.command` to the `redblack` binary to enable them.
    pub process: process_runtime::ProcessConfig,
    /// Where process pods' stdout and stderr go (served as `pods/log`).
    pub logs: pod_logs::PodLogs,
    /// How operator pods reach the API as their ServiceAccount; `None`: they
    /// stay `waiting` with reason `RunContainerError`.
    pub api: Option<process_credentials::ApiAccess>,
    /// Events are deleted this long after their last write (kube-apiserver `--event-ttl`).
    pub event_ttl: Duration,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        Self {
            pod_ready_after: Duration::from_secs(2),
            resync: Duration::from_secs(10),
            process: process_runtime::ProcessConfig::default(),
            logs: pod_logs::PodLogs::default(),
            api: None,
            event_ttl: event_ttl::DEFAULT_EVENT_TTL,
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
        job::JobController::new(store.clone(), types.clone()),
        store.subscribe(),
        resync,
    )));
    tasks.push(tokio::spawn(runner::run(
        deployment::DeploymentController::new(store.clone(), types.clone()),
        store.subscribe(),
        resync,
    )));
    tasks.push(tokio::spawn(runner::run(
        pods::PodController::new(
            types.clone(),
            cfg.pod_ready_after,
            cfg.process.clone(),
            process_launch::ProcessContext {
                store: store.clone(),
                logs: cfg.logs.clone(),
                api: cfg.api.clone(),
                service_accounts: registry.by_kind("v1", "ServiceAccount"),
            },
        ),
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
    let event_kinds: Vec<ResourceType> = [("v1", "Event"), ("events.k8s.io/v1", "Event")]
        .iter()
        .filter_map(|(api_version, kind)| registry.by_kind(api_version, kind))
        .collect();
    tasks.push(tokio::spawn(runner::run(
        event_ttl::EventTtl::new(store.clone(), event_kinds, cfg.event_ttl),
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
    pub deployments: ResourceType,
    pub jobs: ResourceType,
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
            deployments: registry.by_kind("apps/v1", "Deployment")?,
            jobs: registry.by_kind("batch/v1", "Job")?,
            services: registry.by_kind("v1", "Service")?,
            endpoints: registry.by_kind("v1", "Endpoints")?,
            namespaces: registry.by_kind("v1", "Namespace")?,
            events: registry.by_kind("v1", "Event")?,
        })
    }
}
