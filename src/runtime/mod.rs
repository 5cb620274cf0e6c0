//! What both controllers (Rollout, CanaryAnalysis) and every verb share: the
//! kube client builder, the run loop, shutdown with a grace period, the
//! Event type and publisher, the error backoff, reconcile metrics and the
//! field managers.

pub mod backoff;
pub mod client;
pub mod events;
pub mod field_manager;
pub mod metrics;
pub mod packed;
pub mod run;
pub mod shutdown;
pub mod watch_backoff;
pub mod watch_refusals;
