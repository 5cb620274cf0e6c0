//! The demo service and its load generator.
//!
//! `redblack demo-app` is the real HTTP process exporting real metrics that
//! stands in for a user's service (docs/demo-app.md): the sandbox runs it as
//! the container of demo pods, Prometheus scrapes it, and the canary judge compares its versions. Its behaviour (error
//! rate, latency, slow tail, readiness delay, crash at start) comes from its
//! environment so that a pod template can make a "bad" version.
//!
//! `redblack demo-load` sends steady, paced and bounded traffic to it.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod latency;
pub mod load;
pub mod metrics;
pub mod process;

pub use app::{
    DemoAppError, LISTENING_PREFIX, listening_line, parse_listening_line, serve, serve_until,
    shutdown_signal,
};
pub use config::{ConfigError, DemoAppConfig};
pub use latency::LatencyHistogram;
pub use load::{LoadConfig, LoadError, LoadStats, run_load};
pub use metrics::DemoMetrics;
