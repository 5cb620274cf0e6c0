//! `redblack dashboard`: a local web UI over the caller's kubeconfig (docs/dashboard.md).
//! One set of watches per process ([`cache`]) fanned out to browsers over
//! server-sent events; pages are pure functions of the watched objects
//! ([`fleet`], [`rollout_page`], [`report_page`], [`chart`]); the canary
//! report's series are range-queried from the analysis' own Prometheus
//! ([`series`]); actions ([`actions`]) reuse the CLI verbs.

pub mod actions;
pub mod cache;
pub mod chart;
pub mod fleet;
pub mod html;
pub mod model;
pub mod report_page;
pub mod rollout_page;
pub mod routes;
pub mod series;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use routes::App;

/// How the dashboard runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch this namespace only (None: all namespaces).
    pub namespace: Option<String>,
    pub allow_actions: bool,
    /// For analyses without `spec.prometheus` (the operator's `--prometheus-url`).
    pub prometheus_url: Option<String>,
}

/// A started dashboard: its address (the URL to print) and its server task.
pub struct Running {
    pub addr: SocketAddr,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A fresh random session token (hex), for the action forms.
pub fn session_token() -> String {
    let bytes: [u8; 24] = rand::random();
    hex::encode(bytes)
}

/// Starts the watches, waits (bounded) for their first lists, and serves.
pub async fn start(
    client: kube::Client,
    listener: tokio::net::TcpListener,
    settings: Settings,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let cache = cache::Cache::start(&client, settings.namespace.as_deref());
    if !cache.wait_ready(Duration::from_secs(10)).await {
        tracing::warn!("not every watch has listed yet; serving what there is");
    }
    let app = Arc::new(App {
        cache,
        client,
        charts: series::ChartCache::default(),
        allow_actions: settings.allow_actions,
        token: session_token(),
        origins: actions::own_origins(addr),
        scope: settings.namespace,
        prometheus_url: settings.prometheus_url,
    });
    let router = routes::router(app);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Running { addr, server })
}
