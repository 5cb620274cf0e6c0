//! `redblack controller`: runs the operator's controllers (Rollout and
//! CanaryAnalysis) with `/healthz`, `/readyz` (ready once the Rollout
//! controller's caches have synced) and `/metrics`, until SIGINT or SIGTERM
//! (in-flight reconciles then get [`SHUTDOWN_GRACE`] to finish).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::CliResult;
use crate::analysis::controller::{AnalysisController, AnalysisControllerConfig};
use crate::rollout::controller::{RolloutController, Settings, http_routes_served};
/// Re-exported: the grace is the runtime's, the same for every controller verb.
pub use crate::runtime::shutdown::SHUTDOWN_GRACE;
use crate::runtime::shutdown::{self, within_grace};
use crate::telemetry::{self, LogFormat};
use crate::web::health::{self, Readiness};
use crate::web::metrics::OperatorMetrics;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Rollouts reconciled at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Where to serve /metrics (`HOST:PORT` or `:PORT`).
    #[arg(long, default_value = ":8080", value_parser = parse_addr)]
    pub metrics_addr: SocketAddr,
    /// Where to serve /healthz and /readyz (may equal --metrics-addr).
    #[arg(long, default_value = ":8081", value_parser = parse_addr)]
    pub health_addr: SocketAddr,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Prometheus for CanaryAnalyses that do not name one in `spec.prometheus`.
    #[arg(long, env = "REDBLACK_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
}

/// `HOST:PORT`, or `:PORT` for every interface (as Go programs accept).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_owned(),
    };
    full.parse()
        .map_err(|e| format!("{s:?} is not HOST:PORT or :PORT ({e})"))
}

/// How `run_controller` runs; `Default` serves no HTTP (tests, demos).
#[derive(Clone)]
pub struct ControllerConfig {
    /// Watch only this namespace (None = all).
    pub namespace: Option<String>,
    pub concurrency: u16,
    /// Serve /metrics here (None = not served).
    pub metrics_addr: Option<SocketAddr>,
    /// Serve /healthz and /readyz here (None = not served). The same address as
    /// `metrics_addr` serves all three from one listener.
    pub health_addr: Option<SocketAddr>,
    /// Shared with the caller, e.g. to read counters in tests.
    pub metrics: OperatorMetrics,
    /// Set once the Rollout controller's caches have synced: its plans must
    /// not act on a partial world. The CanaryAnalysis controller's watch is
    /// not awaited: each of its reconciles reads only the analysis itself.
    pub readiness: Arc<Readiness>,
    /// Safety-net re-plan interval of an idle Rollout.
    pub resync: Duration,
    /// Prometheus for CanaryAnalyses without `spec.prometheus`.
    pub prometheus_url: Option<String>,
    /// Run the CanaryAnalysis controller too (tests that script verdicts turn it off).
    pub canary_analysis: bool,
    /// The operator's own object (default: its Pod, from `POD_NAME` and
    /// `POD_NAMESPACE`), where a refused Rollout watch is recorded as an Event.
    pub operator: Option<k8s_openapi::api::core::v1::ObjectReference>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespace: None,
            concurrency: 8,
            metrics_addr: None,
            health_addr: None,
            metrics: OperatorMetrics::new(),
            readiness: Arc::new(Readiness::default()),
            resync: Settings::default().resync,
            prometheus_url: None,
            canary_analysis: true,
            operator: crate::runtime::events::operator_reference(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server on {addr} failed")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs every controller of the operator until `shutdown` resolves (then at
/// most [`SHUTDOWN_GRACE`] more). Tests and the demo call this in-process
/// with a sandbox client.
pub async fn run_controller(
    client: kube::Client,
    cfg: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let shutdown = shutdown::shared(shutdown);
    cfg.readiness.set_ready(false);

    // Bind first, so a taken port fails at start, not later.
    let mut servers = Vec::new();
    let mut routes: Vec<(SocketAddr, axum::Router)> = Vec::new();
    let mut add = |addr: SocketAddr, router: axum::Router| match routes
        .iter_mut()
        .find(|(a, _)| *a == addr)
    {
        Some((_, r)) => *r = std::mem::take(r).merge(router),
        None => routes.push((addr, router)),
    };
    if let Some(addr) = cfg.health_addr {
        add(addr, health::router(cfg.readiness.clone()));
    }
    if let Some(addr) = cfg.metrics_addr {
        add(addr, cfg.metrics.router());
    }
    for (addr, router) in routes {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ControllerError::Bind { addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(addr = %bound, "serving operator endpoints");
        let stop = shutdown.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
                .map_err(|source| ControllerError::Serve { addr, source })
        }));
    }

    // Watch HTTPRoutes only if the API serves them now (the Gateway API is
    // optional); otherwise routes are read per reconcile until a restart.
    let watch_http_routes = http_routes_served(&client).await;
    let rollouts = RolloutController::new(
        client.clone(),
        Settings {
            namespace: cfg.namespace.clone(),
            concurrency: cfg.concurrency.max(1),
            resync: cfg.resync,
            instance: crate::runtime::events::reporting_instance(),
            watch_http_routes,
            operator: cfg.operator.clone(),
            ..Settings::default()
        },
    );
    // The CanaryAnalysis controller runs beside it with the same shutdown; its
    // failure (e.g. its CRD not installed) is logged and does not stop Rollouts.
    let analyses = AnalysisController::new(
        client.clone(),
        AnalysisControllerConfig {
            default_prometheus_url: cfg.prometheus_url.clone(),
            namespace: cfg.namespace.clone(),
            ..AnalysisControllerConfig::default()
        },
    )
    .with_metrics(cfg.metrics.clone());
    let analyses = {
        let stop = shutdown.clone();
        let enabled = cfg.canary_analysis;
        async move {
            if !enabled {
                return;
            }
            if let Err(e) = analyses.run(stop).await {
                tracing::error!(error = %e, "the CanaryAnalysis controller stopped");
            }
        }
    };
    let caches = rollouts.caches();
    let readiness = cfg.readiness.clone();
    let ready = async move {
        if caches.wait_until_ready().await {
            readiness.set_ready(true);
            tracing::info!("caches synced; ready");
        }
    };
    let ready = tokio::spawn(ready);
    let controllers = async {
        tokio::join!(
            rollouts.run(cfg.metrics.clone(), shutdown.clone()),
            analyses
        )
    };
    // In-flight reconciles finish after the signal, but never hold the
    // process beyond SHUTDOWN_GRACE (a cut reconcile is redone by the next
    // operator); when the grace runs out, within_grace logs it.
    let _finished = within_grace(controllers, shutdown.clone(), SHUTDOWN_GRACE).await;
    ready.abort();
    cfg.readiness.set_ready(false);

    for server in servers {
        match server.await {
            Ok(result) => result?,
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
        }
    }
    Ok(())
}

pub async fn run(args: ControllerArgs) -> CliResult {
    telemetry::init(args.log_format);
    let (client, _) = crate::runtime::client::connect(args.kubeconfig.as_deref(), None).await?;
    let cfg = ControllerConfig {
        namespace: args.namespace,
        concurrency: args.concurrency,
        metrics_addr: Some(args.metrics_addr),
        health_addr: Some(args.health_addr),
        prometheus_url: args.prometheus_url,
        ..ControllerConfig::default()
    };
    run_controller(client, cfg, shutdown::on_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_accept_port_only() {
        assert_eq!(
            parse_addr(":8080"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 8080)))
        );
        assert_eq!(
            parse_addr("127.0.0.1:9"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9)))
        );
        assert!(parse_addr("nope").is_err());
    }
}
