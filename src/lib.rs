//! redblack: red/black rollouts gated by automated canary analysis.
//!
//! The operator and its CLI. Pure decision code lives in `rollout::plan`,
//! `analysis::controller::plan` and the `redblack-judge` crate; everything
//! else is a thin shell of I/O around it. docs/architecture.md is the map.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod cli;
pub mod convert;
pub mod leader;
pub mod notify;
pub mod rollout;
pub mod runtime;
pub mod telemetry;
pub mod web;
