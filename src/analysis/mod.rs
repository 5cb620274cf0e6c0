//! CanaryAnalysis: the statistical judge (pure) and the metric sources around it.

pub mod controller;
pub mod judge;
pub mod prometheus;
pub mod query;
pub mod source;
pub mod static_source;
pub mod traffic_check;
