//! Test harnesses shared by unit and integration tests (a library module, so
//! `tests/*.rs` of every part of the project can use them).
//!
//! Not for production use: these start local processes on 127.0.0.1.

pub mod openmetrics;
pub mod prometheus;
pub mod victoria_metrics;
