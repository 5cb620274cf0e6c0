//! `redblack controller`: runs the operator's controllers (Rollout and
//! CanaryAnalysis) with `/healthz`, `/readyz` (ready once the Rollout
//! controller's caches have synced, or as a standby) and `/metrics`, until
//! SIGINT or SIGTERM (in-flight reconciles then get [`SHUTDOWN_GRACE`] to
//! finish). Under leader election (the default) the controllers run only
//! while this replica holds the Lease; losing it cancels them and the verb
//! exits with an error (see `crate::leader`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpListener;

use super::CliResult;
use super::endpoint_args::EndpointArgs;
use crate::analysis::controller::{AnalysisController, AnalysisControllerConfig};
use crate::leader::{self, ElectionArgs, Leadership};
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
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub election: ElectionArgs,
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
    /// The metric endpoint settings: allow-list, the default endpoint's
    /// TLS/auth, per-endpoint concurrency and timeout (flags in
    /// [`EndpointArgs`]). Its `default_prometheus_url` and `namespace` are
    /// overridden by the fields above.
    pub analysis: AnalysisControllerConfig,
    /// Run the CanaryAnalysis controller too (tests that script verdicts turn it off).
    pub canary_analysis: bool,
    /// Run the controllers at once, or only while an election is won.
    pub leadership: Leadership,
    /// The notifier (docs/notifications.md): delivery timeout, retry backoff.
    pub notify: crate::notify::controller::NotifySettings,
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
            analysis: AnalysisControllerConfig::default(),
            canary_analysis: true,
            leadership: Leadership::Unconditional,
            notify: crate::notify::controller::NotifySettings::default(),
            operator: crate::runtime::events::operator_reference(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The Lease could not be renewed in time (or was taken): the
    /// controllers were stopped; a fresh process stands by again.
    #[error("lost the leader Lease; stopped the controllers")]
    LostLeadership,
    #[error("invalid leader election settings")]
    Election(#[source] leader::config::TimingError),
    #[error("cannot build the controllers' client")]
    Client(#[source] kube::Error),
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
    // Losing the Lease stops the HTTP servers too (the process then exits).
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = shutdown::shared(async move {
        tokio::select! {
            () = shutdown => {}
            _ = lost_rx => {}
        }
    });
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

    let outcome = match &cfg.leadership {
        Leadership::Unconditional => {
            cfg.metrics.leader.set(1);
            run_controllers(client, &cfg, shutdown.clone()).await;
            Ok(())
        }
        Leadership::Elected(elector) => {
            let follow = tokio::spawn(follow_role(
                elector.role(),
                cfg.readiness.clone(),
                cfg.metrics.clone(),
            ));
            let outcome = tokio::select! {
                // Shut down while standing by: nothing was written.
                () = shutdown.clone() => Ok(()),
                leading = elector.leading() => if leading {
                    // Losing the Lease drops the controllers' future: every
                    // in-flight reconcile is cancelled where it stands (and
                    // its writes were already refused by the gate).
                    tokio::select! {
                        () = run_controllers(client, &cfg, shutdown.clone()) => Ok(()),
                        () = elector.lost() => Err(ControllerError::LostLeadership),
                    }
                } else {
                    Err(ControllerError::LostLeadership)
                },
            };
            // Nothing of this process writes any more: hand the Lease back
            // (a no-op after a loss) so a standby takes over at once.
            elector.release().await;
            follow.abort();
            outcome
        }
    };
    cfg.metrics.leader.set(0);
    cfg.readiness.set_ready(false);
    if outcome.is_err() {
        cfg.readiness.set_role(leader::Role::Lost);
        let _ = lost_tx.send(());
    }

    for server in servers {
        match server.await {
            Ok(result) => result?,
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
        }
    }
    outcome
}

/// Readiness and the `redblack_leader` gauge follow the election's role.
async fn follow_role(
    mut role: tokio::sync::watch::Receiver<leader::Role>,
    readiness: Arc<Readiness>,
    metrics: OperatorMetrics,
) {
    loop {
        let now = *role.borrow_and_update();
        readiness.set_role(now);
        metrics.leader.set(i64::from(now == leader::Role::Leader));
        if role.changed().await.is_err() {
            return;
        }
    }
}

/// The Rollout and CanaryAnalysis controllers, until `shutdown` (then at
/// most [`SHUTDOWN_GRACE`] more).
async fn run_controllers(
    client: kube::Client,
    cfg: &ControllerConfig,
    shutdown: shutdown::Shutdown,
) {
    // Watch HTTPRoutes only if the API serves them now (the Gateway API is
    // optional); otherwise routes are read per reconcile until a restart.
    let watch_http_routes = http_routes_served(&client).await;
    let mut rollouts = RolloutController::new(
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
            ..cfg.analysis.clone()
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
    // The notifier runs beside them: a slow or dead endpoint delays only
    // notifications, never a Rollout's reconcile.
    let notifier = {
        let stop = shutdown.clone();
        let (client, namespace) = (client.clone(), cfg.namespace.clone());
        let (settings, metrics) = (cfg.notify.clone(), cfg.metrics.clone());
        // Over the Rollout controller's cache: every Rollout cached once.
        let shared = settings
            .enabled
            .then(|| rollouts.share_rollouts())
            .flatten();
        async move {
            if !settings.enabled {
                return;
            }
            let run =
                crate::notify::controller::run(client, namespace, settings, metrics, stop, shared);
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the notifier stopped");
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
    // Aborted when this future ends or is dropped (leadership lost).
    let ready = AbortOnDrop(tokio::spawn(ready));
    let controllers = {
        let stop = shutdown.clone();
        async move { tokio::join!(rollouts.run(cfg.metrics.clone(), stop), analyses, notifier) }
    };
    // In-flight reconciles finish after the signal, but never hold the
    // process beyond SHUTDOWN_GRACE (a cut reconcile is redone by the next
    // operator); when the grace runs out, within_grace logs it.
    let _finished = within_grace(controllers.boxed(), shutdown, SHUTDOWN_GRACE).await;
    drop(ready);
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn run(args: ControllerArgs) -> CliResult {
    telemetry::init(args.log_format);
    let mut analysis = AnalysisControllerConfig {
        default_prometheus_url: args.prometheus_url.clone(),
        ..AnalysisControllerConfig::default()
    };
    args.endpoints.apply(&mut analysis)?;
    let timing = args.election.timing().map_err(ControllerError::Election)?;
    let mut config = crate::runtime::client::config(args.kubeconfig.as_deref()).await?;
    // Every request names this process: the API server's audit log (and
    // the sandbox's request counters) tell the replicas apart.
    let identity = leader::config::identity_from_env();
    if let Ok(agent) = http::HeaderValue::from_str(&leader::config::user_agent(&identity)) {
        config.headers.push((http::header::USER_AGENT, agent));
    }
    let mut cfg = ControllerConfig {
        namespace: args.namespace,
        concurrency: args.concurrency,
        metrics_addr: Some(args.metrics_addr),
        health_addr: Some(args.health_addr),
        prometheus_url: args.prometheus_url,
        analysis,
        ..ControllerConfig::default()
    };
    let client = if args.election.leader_elect {
        let namespace = leader::config::namespace_from_env(
            args.election.leader_election_namespace.as_deref(),
            &config.default_namespace,
        );
        let gate = leader::WriteGate::new(timing.renew_deadline);
        let lease_client =
            leader::client::plain(config.clone()).map_err(ControllerError::Client)?;
        let elector = leader::Elector::start(leader::Election {
            api: kube::Api::namespaced(lease_client, &namespace),
            name: args.election.leader_election_id.clone(),
            identity,
            timing,
            gate: gate.clone(),
        });
        cfg.leadership = Leadership::Elected(Arc::new(elector));
        leader::client::gated(config, gate).map_err(ControllerError::Client)?
    } else {
        tracing::warn!("leader election disabled: run exactly one replica");
        leader::client::plain(config).map_err(ControllerError::Client)?
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
