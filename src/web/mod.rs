//! The operator's own HTTP endpoints: `/healthz` and `/readyz` for probes,
//! `/metrics` for Prometheus.

pub mod dashboard;
pub mod health;
pub mod metrics;
pub mod rollout_metrics;
