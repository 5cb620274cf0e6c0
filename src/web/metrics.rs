//! The operator's Prometheus metrics (OpenMetrics text at `/metrics`).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::rollout_metrics::RolloutMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub error: String,
}

/// `redblack_notifications_total`'s labels (docs/notifications.md).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `webhook`, `slack`, or `unknown` (the Notifier is missing).
    pub channel: String,
    /// The trigger's name, e.g. `CanaryVerdict`.
    pub trigger: String,
    /// `delivered`, `failed` (an attempt; retried) or `dropped` (too many pending).
    pub result: String,
}

/// Counters and histograms every controller updates.
#[derive(Clone)]
pub struct OperatorMetrics {
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub api_writes: Family<ControllerLabels, Counter>,
    /// Rollout-level metrics: transitions, and per-Rollout state at scrape time.
    pub rollouts: RolloutMetrics,
    /// 1 while this process runs the controllers (the leader, or without
    /// election), 0 while it stands by.
    pub leader: Gauge,
    /// Notification delivery attempts and their results.
    pub notifications: Family<NotificationLabels, Counter>,
    registry: Arc<Mutex<Registry>>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("redblack");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            });
        let api_writes = Family::<ControllerLabels, Counter>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the Kubernetes API",
            api_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 if this replica leads (runs the controllers), 0 if it stands by",
            leader.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notification delivery attempts by channel, trigger and result",
            notifications.clone(),
        );
        let rollouts = RolloutMetrics::new();
        rollouts.register(&mut registry);
        Self {
            rollouts,
            leader,
            notifications,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            api_writes,
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state(self.clone())
    }
}

async fn serve_metrics(State(metrics): State<OperatorMetrics>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let m = OperatorMetrics::new();
        m.reconciles
            .get_or_create(&ControllerLabels {
                controller: "rollout".into(),
            })
            .inc();
        let text = m.encode().unwrap();
        assert!(
            text.contains("redblack_reconciles_total{controller=\"rollout\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
