//! redblack: red/black rollouts gated by automated canary analysis.
//!
//! The crate is laid out as DESIGN.md §2 describes: pure decision code in
//! `rollout::plan` and `analysis::judge`, thin I/O around it, and an embedded
//! Kubernetes-compatible `sandbox` for demos and tests.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod demo;
pub mod rollout;
pub mod sandbox;
pub mod telemetry;
pub mod testing;
pub mod traffic;
pub mod web;
