//! The CanaryAnalysis controller: a functional core (every decision, pure and
//! unit-tested) inside a thin imperative shell (the I/O).
//!
//! * PURE, every decision: [`spec`] (spec checks), [`interval`] (the
//!   schedule), [`plan`] (what is due now), [`progress`] (the status machine
//!   folding outcomes into the next status), [`verdict`] (early end and final
//!   verdict), [`bounds`] (size limits and retry policy), [`canonical`] (the
//!   status as the API stores it, to write only on change).
//! * [`reconcile`]: the shell — one server-side-apply status write with
//!   [`ANALYSIS_FIELD_MANAGER`], Events; [`judging`]: its queries through a
//!   [`MetricSource`] and the judge.
//! * The run loop, Events, metrics, error backoff and shutdown are the shared
//!   [`crate::runtime`]'s.
//!
//! No memory between reconciles: progress (intervals judged, retries) lives
//! in the status, so a restarted operator continues where it stopped. The
//! controller wakes at the next interval boundary (`Action::requeue`), never
//! on a polling tick. Semantics: docs/canary-analysis.md.

pub mod bounds;
pub mod canonical;
pub mod early_pass;
pub mod interval;
pub mod judging;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod spec;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
pub mod time;
pub mod verdict;
pub mod verdict_metric;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::Client;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use crate::analysis::allow::AllowList;
use crate::analysis::endpoint::{DefaultEndpoint, EndpointConfig};
use crate::analysis::prometheus::PrometheusSource;
use crate::analysis::source::{MetricSource, SourceError};
use crate::api::canary_analysis::CanaryAnalysis;
use crate::runtime::backoff::ErrorBackoff;
use crate::runtime::events::EventPublisher;
use crate::runtime::field_manager::ANALYSIS_FIELD_MANAGER;
use crate::runtime::run;
use crate::runtime::watch_backoff::watch_backoff;
use crate::web::metrics::OperatorMetrics;
pub use bounds::Limits;

/// Name of this controller in events, logs and metrics.
pub const ANALYSIS_CONTROLLER_NAME: &str = "canaryanalysis";

/// Builds the metric source for an endpoint (URL, TLS, credentials,
/// headers). Called only for endpoints the allow-list permits. Tests inject
/// a `StaticSource` through it.
pub type SourceFactory =
    Arc<dyn Fn(&EndpointConfig) -> Result<Arc<dyn MetricSource>, SourceError> + Send + Sync>;

/// The clock; tests may fix it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Settings of the CanaryAnalysis controller.
#[derive(Debug, Clone)]
pub struct AnalysisControllerConfig {
    /// Prometheus for analyses without `spec.prometheus` (`--prometheus-url`).
    pub default_prometheus_url: Option<String>,
    /// TLS, credentials and headers of the default endpoint (its `url`
    /// field is ignored: `default_prometheus_url` is the URL).
    pub default_endpoint: DefaultEndpoint,
    /// URL prefixes analyses may query (`--allowed-metric-endpoint`); the
    /// default endpoint is always allowed. See `analysis::allow`.
    pub allowed_endpoints: Vec<String>,
    /// A regex the whole normalised URL may match instead (`--allowed-metric-endpoint-regex`).
    pub allowed_endpoint_regex: Option<String>,
    /// Requests in flight per endpoint (`--metric-endpoint-concurrency`).
    pub endpoint_concurrency: usize,
    /// Watch one namespace only; all namespaces if `None`.
    pub namespace: Option<String>,
    /// Timeout of one Prometheus request.
    pub query_timeout: Duration,
    /// Retries of a transient failure inside one request (PrometheusSource).
    pub query_retries: u32,
    /// Queries of one interval in flight at once.
    pub query_concurrency: usize,
    /// Status bounds and the reconcile-level retry policy for an unreachable source.
    pub limits: Limits,
    /// Requeue after a failed reconcile (API errors). The shared
    /// [`ErrorBackoff`] with this as first delay and cap: a constant delay.
    pub error_requeue: Duration,
    /// Analyses reconciled at once.
    pub concurrency: u16,
}

impl AnalysisControllerConfig {
    /// The allow-list these settings describe (an invalid one is a startup error).
    pub fn allow_list(&self) -> Result<AllowList, crate::analysis::allow::AllowListError> {
        AllowList::new(
            &self.allowed_endpoints,
            self.allowed_endpoint_regex.as_deref(),
            self.default_prometheus_url.as_deref(),
        )
    }
}

impl Default for AnalysisControllerConfig {
    fn default() -> Self {
        AnalysisControllerConfig {
            default_prometheus_url: None,
            default_endpoint: DefaultEndpoint::default(),
            allowed_endpoints: Vec::new(),
            allowed_endpoint_regex: None,
            endpoint_concurrency: crate::analysis::prometheus::DEFAULT_CONCURRENCY,
            namespace: None,
            query_timeout: Duration::from_secs(30),
            query_retries: 2,
            query_concurrency: 8,
            limits: Limits::default(),
            error_requeue: Duration::from_secs(10),
            concurrency: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisControllerError {
    #[error(
        "the CanaryAnalysis API is not available (is the CRD installed? `redblack crd | kubectl apply -f -`): {0}"
    )]
    CrdMissing(#[source] kube::Error),
}

/// What every reconcile shares.
pub struct AnalysisContext {
    pub client: Client,
    pub config: AnalysisControllerConfig,
    pub sources: SourceFactory,
    /// Which endpoints analyses may query; checked before any request.
    pub allow: AllowList,
    pub events: EventPublisher,
    pub metrics: Option<OperatorMetrics>,
    pub clock: Clock,
    /// Paces retries per analysis (progress never lives here).
    pub backoff: ErrorBackoff,
    /// The last refused status write announced per analysis (uid → the
    /// API's message), so a refusal is one Event, not one per retry.
    pub refusals: Mutex<HashMap<String, String>>,
}

/// Sources kept at most; beyond, the cache starts over (rotated
/// credentials make new keys, so it must not grow without bound).
const MAX_CACHED_SOURCES: usize = 256;

/// A `SourceFactory` of `PrometheusSource`s, one per endpoint configuration
/// (URL *and* TLS, credentials, headers: two analyses with different
/// Secrets for one URL get different clients), reused across reconciles.
/// `concurrency` bounds the requests in flight per endpoint.
pub fn prometheus_sources(timeout: Duration, retries: u32, concurrency: usize) -> SourceFactory {
    let cache: Mutex<HashMap<EndpointConfig, Arc<dyn MetricSource>>> = Mutex::new(HashMap::new());
    Arc::new(move |endpoint: &EndpointConfig| {
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(source) = cache.get(endpoint) {
            return Ok(source.clone());
        }
        let source: Arc<dyn MetricSource> = Arc::new(PrometheusSource::for_endpoint(
            endpoint,
            timeout,
            retries,
            concurrency,
        )?);
        if cache.len() >= MAX_CACHED_SOURCES {
            cache.clear();
        }
        cache.insert(endpoint.clone(), source.clone());
        Ok(source)
    })
}

/// The controller, with its injectable parts.
pub struct AnalysisController {
    client: Client,
    config: AnalysisControllerConfig,
    sources: Option<SourceFactory>,
    metrics: Option<OperatorMetrics>,
    clock: Clock,
}

impl AnalysisController {
    pub fn new(client: Client, config: AnalysisControllerConfig) -> Self {
        AnalysisController {
            client,
            config,
            sources: None,
            metrics: None,
            clock: Arc::new(Utc::now),
        }
    }

    /// Replace the Prometheus sources (tests: a `StaticSource`).
    pub fn with_sources(mut self, sources: SourceFactory) -> Self {
        self.sources = Some(sources);
        self
    }

    pub fn with_metrics(mut self, metrics: OperatorMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The shared context (also used to call [`reconcile::reconcile`] directly).
    pub fn context(&self) -> Arc<AnalysisContext> {
        let sources = self.sources.clone().unwrap_or_else(|| {
            prometheus_sources(
                self.config.query_timeout,
                self.config.query_retries,
                self.config.endpoint_concurrency,
            )
        });
        // The CLI checked the list at startup; a bad one here (a library
        // caller) allows the default endpoint only.
        let allow = self.config.allow_list().unwrap_or_else(|e| {
            tracing::error!(error = %e, "invalid metric endpoint allow-list; allowing the default endpoint only");
            AllowList::new(&[], None, self.config.default_prometheus_url.as_deref())
                .unwrap_or_default()
        });
        let reporter = Reporter {
            controller: format!("redblack-{ANALYSIS_CONTROLLER_NAME}"),
            instance: crate::runtime::events::reporting_instance(),
        };
        Arc::new(AnalysisContext {
            client: self.client.clone(),
            config: self.config.clone(),
            sources,
            allow,
            events: EventPublisher::new(self.client.clone(), reporter, "Analyze"),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            backoff: ErrorBackoff::new(self.config.error_requeue, self.config.error_requeue),
            refusals: Mutex::default(),
        })
    }

    /// Runs until `shutdown` resolves (then finishes the reconciles in flight).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> Result<(), AnalysisControllerError> {
        let api: Api<CanaryAnalysis> =
            run::scoped_api(&self.client, self.config.namespace.as_deref());
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        if !preflight(&api, shutdown.clone()).await? {
            return Ok(());
        }
        let context = self.context();
        // managedFields stay in the cache (the Rollout controller strips
        // them): this cache holds only CanaryAnalyses, whose status (up to
        // ~400 kB of metrics) dwarfs them. The watch backs off on its own
        // (`run::run` never pauses the merged triggers).
        let (analyses, writer) = reflector::store::<CanaryAnalysis>();
        let events = watcher(api, watcher::Config::default())
            .backoff(watch_backoff())
            .reflect(writer)
            .applied_objects();
        let controller = Controller::for_stream(events, analyses);
        tracing::info!(
            namespace = self.config.namespace.as_deref().unwrap_or("<all>"),
            field_manager = ANALYSIS_FIELD_MANAGER,
            "starting the CanaryAnalysis controller"
        );
        run::run(
            controller,
            ANALYSIS_CONTROLLER_NAME,
            self.config.concurrency,
            shutdown,
            reconcile::reconcile,
            reconcile::error_policy,
            context,
        )
        .await;
        Ok(())
    }
}

/// First wait of [`preflight`] after a transient failure; it doubles…
const PREFLIGHT_RETRY_FIRST: Duration = Duration::from_millis(500);
/// …up to this.
const PREFLIGHT_RETRY_CAP: Duration = Duration::from_secs(30);

/// Lists CanaryAnalyses once before watching them. A 404 or 403 (the CRD not
/// installed, or no RBAC for it) fails fast with a message saying what to
/// do, instead of a watcher retrying forever in silence; any other failure
/// (5xx, 429, transport) is transient and retried with backoff until it
/// succeeds or `shutdown` comes (false). One transient 500 used to stop the
/// controller for good, leaving every canary unjudged.
async fn preflight(
    api: &Api<CanaryAnalysis>,
    mut shutdown: impl Future<Output = ()> + Unpin,
) -> Result<bool, AnalysisControllerError> {
    let mut delay = PREFLIGHT_RETRY_FIRST;
    loop {
        match api.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {
                return Err(AnalysisControllerError::CrdMissing(kube::Error::Api(
                    status,
                )));
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot list CanaryAnalyses yet; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return Ok(false),
        }
        delay = (delay * 2).min(PREFLIGHT_RETRY_CAP);
    }
}

/// Runs the CanaryAnalysis controller with Prometheus sources until `shutdown`.
pub async fn run_analysis_controller(
    client: Client,
    cfg: AnalysisControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), AnalysisControllerError> {
    AnalysisController::new(client, cfg).run(shutdown).await
}
