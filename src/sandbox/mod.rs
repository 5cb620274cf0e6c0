//! An embedded control plane that speaks the Kubernetes HTTP API well enough for
//! the real `kube` client and `kubectl`: a SIMULATOR for demos and tests, never a
//! production cluster. See DESIGN.md §4.

pub mod controllers;
pub mod dataplane;
pub mod patch;
pub mod prometheus_sd;
pub mod registry;
pub mod schema;
pub mod store;
