//! An embedded control plane that speaks the Kubernetes HTTP API well enough for
//! the real `kube` client and `kubectl`: a SIMULATOR for demos and tests, never a
//! production cluster. docs/sandbox.md says what it covers and what it does not.
//!
//! `testing` holds the harnesses tests start beside it (a real Prometheus).

pub mod auth;
pub mod controllers;
pub mod dataplane;
pub mod graceful;
pub mod kubeconfig;
mod label_index;
pub mod patch;
pub mod prometheus_sd;
pub mod registry;
pub mod schema;
pub mod server;
pub mod store;
pub mod testing;
pub mod watch_history;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use server::{FaultAction, FaultConfig, FaultRule, RequestCounts};

use registry::Registry;
use server::faults::Faults;
use server::state::AppState;
use store::Store;

/// How a sandbox is started.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Events kept for watches resuming from an old resourceVersion (older → 410).
    pub watch_history: usize,
    /// Events older than this are compacted, as etcd does every 5 minutes
    /// (`None`: no age bound).
    pub watch_history_max_age: Option<Duration>,
    /// The history's objects stay under this many estimated bytes (`None`: no
    /// byte bound); see `watch_history`.
    pub watch_history_max_bytes: Option<usize>,
    /// Events are deleted this long after their last write, as
    /// kube-apiserver's `--event-ttl` (default 1 hour) does.
    pub event_ttl: Duration,
    /// How long a simulated pod takes to become Ready (used by the controllers).
    pub pod_ready_after: Duration,
    pub faults: FaultConfig,
    /// How pods of the demo-app image run as real processes (no command: they
    /// stay waiting with a clear reason).
    pub process: controllers::process_runtime::ProcessConfig,
    /// Where to keep a Prometheus file-SD list of the running process pods.
    pub prometheus_sd_file: Option<std::path::PathBuf>,
    /// Who a request without credentials is (default: the administrator,
    /// because kubectl sends no token over plain http).
    pub anonymous: auth::Anonymous,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            watch_history: store::DEFAULT_HISTORY,
            watch_history_max_age: Some(watch_history::DEFAULT_MAX_AGE),
            watch_history_max_bytes: Some(watch_history::DEFAULT_MAX_BYTES),
            event_ttl: controllers::DEFAULT_EVENT_TTL,
            pod_ready_after: Duration::from_secs(2),
            faults: FaultConfig::default(),
            process: Default::default(),
            prometheus_sd_file: None,
            anonymous: auth::Anonymous::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the sandbox: {0}")]
    Bootstrap(String),
    #[error("cannot build a client for the sandbox: {0}")]
    Client(String),
}

/// A running sandbox; dropping it without `shutdown` leaves the server task running
/// until the runtime ends.
pub struct Sandbox {
    addr: SocketAddr,
    state: server::Shared,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<()>,
    controllers: controllers::ControllersHandle,
    dataplane: dataplane::DataPlaneHandle,
    prometheus_sd: Option<prometheus_sd::PrometheusSdHandle>,
    /// The operator pods' ServiceAccount kubeconfigs; removed with the sandbox.
    _credentials: tempfile::TempDir,
}

/// Namespaces every cluster has, and the Gateway API HTTPRoute CRD.
fn bootstrap(store: &Store, registry: &Registry) -> Result<(), SandboxError> {
    let ns_type = registry
        .find("", "v1", "namespaces")
        .ok_or_else(|| SandboxError::Bootstrap("namespaces are not registered".into()))?;
    for name in ["default", "kube-system", "kube-public"] {
        store
            .create(
                &ns_type,
                json!({"metadata": {"name": name}, "spec": {}, "status": {"phase": "Active"}}),
            )
            .map_err(|e| SandboxError::Bootstrap(e.to_string()))?;
    }
    let crd_type = registry
        .find(server::crd::CRD_GROUP, "v1", "customresourcedefinitions")
        .ok_or_else(|| SandboxError::Bootstrap("CRDs are not registered".into()))?;
    let mut route = server::crd::httproute_crd();
    server::crd::prepare(&crd_type, &mut route, None)
        .map_err(|e| SandboxError::Bootstrap(e.message))?;
    let stored = store
        .create(&crd_type, route)
        .map_err(|e| SandboxError::Bootstrap(e.to_string()))?;
    server::crd::register(registry, &stored);
    Ok(())
}

/// kube builds a rustls connector even for plain http; with both rustls
/// providers compiled in (other dependencies enable aws-lc-rs) rustls cannot
/// pick one by itself, so choose ring, kube's default. Idempotent.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SandboxError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.listen,
            source,
        })?;
        let store = Arc::new(Store::with_history(watch_history::HistoryLimits {
            max_events: config.watch_history,
            max_age: config.watch_history_max_age,
            max_bytes: config.watch_history_max_bytes,
        }));
        let registry = Arc::new(Registry::new());
        bootstrap(&store, &registry)?;
        let tokens = Arc::new(auth::Tokens::new());
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let logs = controllers::pod_logs::PodLogs::default();
        let credentials = tempfile::Builder::new()
            .prefix("redblack-sandbox-credentials-")
            .tempdir()
            .map_err(|e| {
                SandboxError::Bootstrap(format!("cannot make a credentials directory: {e}"))
            })?;
        let api = controllers::process_credentials::ApiAccess {
            server_url: format!("http://{addr}"),
            tokens: tokens.clone(),
            dir: credentials.path().to_path_buf(),
        };
        let mut app_state = AppState::new(
            store.clone(),
            registry.clone(),
            Faults::new(config.faults.clone()),
            tokens,
            addr,
            shutdown_rx.clone(),
        );
        app_state.anonymous = config.anonymous;
        app_state.logs = logs.clone();
        let state = Arc::new(app_state);

        // The few controllers a rollout depends on work on the store directly.
        let controllers = controllers::start(
            store.clone(),
            registry.clone(),
            controllers::ControllersConfig {
                pod_ready_after: config.pod_ready_after,
                process: config.process.clone(),
                logs,
                api: Some(api),
                event_ttl: config.event_ttl,
                ..Default::default()
            },
        );
        let dataplane = dataplane::start(
            store.clone(),
            registry.clone(),
            dataplane::DataPlaneConfig::default(),
        );
        let prometheus_sd = config
            .prometheus_sd_file
            .clone()
            .map(|path| prometheus_sd::start(store.clone(), path, Duration::from_secs(10)));

        let app = server::router(state.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox server failed");
            }
        });
        tracing::info!(%addr, "sandbox API listening");
        Ok(Sandbox {
            addr,
            state,
            shutdown_tx,
            server,
            controllers,
            dataplane,
            prometheus_sd,
            _credentials: credentials,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The administrator's bearer token (user `sandbox-admin`, group
    /// `system:masters`): what `client()` and `write_kubeconfig` carry.
    pub fn admin_token(&self) -> String {
        self.state.tokens.admin_token().to_string()
    }

    /// The bearer token of ServiceAccount `namespace/name`, which
    /// authenticates as `system:serviceaccount:NAMESPACE:NAME` while the
    /// ServiceAccount object exists (401 otherwise). An opaque string the
    /// sandbox remembers, not a JWT.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.state.tokens.service_account_token(namespace, name)
    }

    /// A kube client for this sandbox as its administrator, default namespace `default`.
    pub fn client(&self) -> Result<kube::Client, SandboxError> {
        self.client_with_token(self.admin_token(), "default")
    }

    /// A kube client acting as ServiceAccount `namespace/name` (default
    /// namespace: its own), subject to RBAC.
    pub fn client_for_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, SandboxError> {
        self.client_with_token(self.service_account_token(namespace, name), namespace)
    }

    fn client_with_token(
        &self,
        token: String,
        namespace: &str,
    ) -> Result<kube::Client, SandboxError> {
        install_crypto_provider();
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| SandboxError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = namespace.into();
        config.auth_info.token = Some(token.into());
        kube::Client::try_from(config).map_err(|e| SandboxError::Client(e.to_string()))
    }

    /// The administrator's kubeconfig.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::kubeconfig_yaml(
            &self.url(),
            kubeconfig::ADMIN_USER,
            &self.admin_token(),
            "default",
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        kubeconfig::write_kubeconfig(path, &self.kubeconfig_yaml())
    }

    /// A kubeconfig acting as ServiceAccount `namespace/name` (its context's
    /// namespace is the ServiceAccount's).
    pub fn kubeconfig_for_service_account(&self, namespace: &str, name: &str) -> String {
        let user = auth::tokens::service_account_user(namespace, name);
        let token = self.service_account_token(namespace, name);
        kubeconfig::kubeconfig_yaml(&self.url(), &user, &token, namespace)
    }

    pub fn write_kubeconfig_for_service_account(
        &self,
        path: &Path,
        namespace: &str,
        name: &str,
    ) -> std::io::Result<()> {
        kubeconfig::write_kubeconfig(path, &self.kubeconfig_for_service_account(namespace, name))
    }

    pub fn store(&self) -> Arc<Store> {
        self.state.store.clone()
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.state.registry.clone()
    }

    /// A live handle on the request counters (clones share the counts).
    pub fn request_counts(&self) -> RequestCounts {
        self.state.counts.clone()
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.state.faults.set(faults);
    }

    /// Ends watches, stops accepting requests and waits (briefly) for the server.
    /// The data plane: local URLs that forward to the ready pods behind a
    /// Service or split across an HTTPRoute's backends.
    pub fn dataplane(&self) -> &dataplane::DataPlaneHandle {
        &self.dataplane
    }

    pub async fn shutdown(self) {
        self.dataplane.shutdown().await;
        if let Some(sd) = self.prometheus_sd {
            sd.shutdown().await;
        }
        self.controllers.shutdown().await;
        let _ = self.shutdown_tx.send(true);
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            tracing::warn!("sandbox server did not stop in time; aborting it");
            server.abort();
        }
    }
}
