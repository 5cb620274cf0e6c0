//! Gates that are not Prometheus (`spec.strategy.redBlack.gates`) and the
//! pre-promotion analysis: what holds the new revision before its canary
//! gets traffic or before the switch, and what judges it after the switch
//! (`after_switch`: a failure switches traffic back to the warm fleet).
//!
//! `verdict` decides (the records in `status.gates` and whether the point is
//! open, held or failed), `pre_promotion` decides the pre-promotion
//! analysis, `render` fills `${...}`, `job` and `http` build what the shell
//! runs (a Job to create, HTTP attempts that are due).

pub(super) mod after_switch;
pub mod http;
pub mod job;
pub(super) mod pre_promotion;
pub(super) mod render;
pub(super) mod verdict;
