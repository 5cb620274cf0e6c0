//! The sandbox's tiny data plane (docs/sandbox.md): an HTTP listener on 127.0.0.1
//! for every Service and every Gateway API HTTPRoute, forwarding each request to
//! a ready pod process.
//!
//! - Service: a random ready pod among those its *current* selector picks (read
//!   from the store per request, so a selector switch moves the next request).
//! - HTTPRoute: the first rule whose path matches, then a weighted random choice
//!   among its `backendRefs` (Services in the route's namespace), then as above.
//!
//! No ready pod → `503` with a body that says why; a pod that fails → `502`;
//! one that does not answer in time → `504`. Each answer names its pod in the
//! `x-sandbox-pod` header. Only pods that run as processes (`redblack/demo-app`
//! images) can answer; simulated pods are counted in the 503 message. See
//! docs/live-fleet.md.

pub mod backends;
mod listeners;
mod proxy;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::controllers::runner;
use crate::registry::{GroupResource, Registry};
use crate::store::Store;

pub use proxy::POD_HEADER;

/// The listener's port, on the Service or HTTPRoute it serves.
pub const PROXY_PORT_ANNOTATION: &str = "sandbox.redblack.io/proxy-port";

#[derive(Clone, Debug)]
pub struct DataPlaneConfig {
    /// How long a pod may take to answer before the client gets a 504.
    pub upstream_timeout: Duration,
    /// Period of the safety sweep over all Services and HTTPRoutes.
    pub resync: Duration,
    /// Write `sandbox.redblack.io/proxy-port` on each Service and HTTPRoute.
    /// The write bumps the object's resourceVersion once after creation (a
    /// client holding the older version gets a 409, as with any controller);
    /// off, the ports are only available from `DataPlaneHandle`.
    pub annotate: bool,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(30),
            resync: Duration::from_secs(10),
            annotate: true,
        }
    }
}

/// What a listener serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Service { namespace: String, name: String },
    HttpRoute { namespace: String, name: String },
}

impl Target {
    pub fn service(namespace: &str, name: &str) -> Self {
        Target::Service {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn http_route(namespace: &str, name: &str) -> Self {
        Target::HttpRoute {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn parts(&self) -> (GroupResource, &str, &str) {
        match self {
            Target::Service { namespace, name } => (backends::services(), namespace, name),
            Target::HttpRoute { namespace, name } => (backends::httproutes(), namespace, name),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Service { namespace, name } => write!(f, "service {namespace}/{name}"),
            Target::HttpRoute { namespace, name } => write!(f, "httproute {namespace}/{name}"),
        }
    }
}

/// The running data plane; dropping it closes every listener.
#[must_use = "dropping the handle stops the data plane"]
pub struct DataPlaneHandle {
    task: Option<JoinHandle<()>>,
    ports: listeners::Ports,
}

impl DataPlaneHandle {
    /// The local port serving `target`, once its listener is open.
    pub fn port(&self, target: &Target) -> Option<u16> {
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
            .copied()
    }

    /// `http://127.0.0.1:PORT` for a Service, once its listener is open.
    pub fn service_url(&self, namespace: &str, name: &str) -> Option<String> {
        self.port(&Target::service(namespace, name))
            .map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// `http://127.0.0.1:PORT` for an HTTPRoute, once its listener is open.
    pub fn route_url(&self, namespace: &str, name: &str) -> Option<String> {
        self.port(&Target::http_route(namespace, name))
            .map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// Every open listener and its port.
    pub fn ports(&self) -> BTreeMap<Target, u16> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes every listener and waits until they are gone.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            // Aborting drops the controller, and with it every listener.
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for DataPlaneHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Starts the data plane on the current Tokio runtime (call it from within one,
/// like `tokio::spawn`). HTTPRoutes are served once the Gateway API CRD is
/// registered (the listener works before; only the annotation needs the kind).
pub fn start(store: Arc<Store>, registry: Arc<Registry>, cfg: DataPlaneConfig) -> DataPlaneHandle {
    let ports: listeners::Ports = Arc::new(Mutex::new(BTreeMap::new()));
    let proxy = Arc::new(proxy::Proxy::new(store.clone(), cfg.upstream_timeout));
    let controller =
        listeners::ListenerController::new(store.clone(), registry, proxy, ports.clone())
            .annotating(cfg.annotate);
    let task = tokio::spawn(runner::run(controller, store.subscribe(), cfg.resync));
    DataPlaneHandle {
        task: Some(task),
        ports,
    }
}
