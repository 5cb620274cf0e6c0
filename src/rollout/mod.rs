//! The Rollout controller. `plan` is the pure decision core (DESIGN.md §2);
//! the shell that executes its actions lives in `apply.rs`.

pub mod apply;
pub mod controller;
pub mod observe;
pub mod plan;
pub mod undo;

pub use plan::{Action, EventType, Observed, Plan, PlannedEvent, State, SwitchKind, plan};
