//! The Rollout controller. `plan` is the pure decision core; the shell reads
//! in `observe.rs`, writes in `apply.rs` and runs in `controller.rs`
//! (docs/architecture.md: the path of a Rollout change).

pub mod apply;
pub mod controller;
pub mod gates_io;
pub mod index;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod undo;

pub use plan::{Action, EventType, Observed, Plan, PlannedEvent, State, SwitchKind, plan};
