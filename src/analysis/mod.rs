//! CanaryAnalysis: its controller and the metric sources the judge (crate
//! `redblack-judge`) is fed from.

pub mod allow;
pub mod controller;
pub mod endpoint;
pub mod http_client;
pub mod prometheus;
pub mod query;
pub mod source;
pub mod static_source;
pub mod traffic_check;
