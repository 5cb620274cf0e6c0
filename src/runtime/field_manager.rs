//! The server-side-apply field managers of the operator. Each controller
//! owns different fields under its own manager, so a conflict names the
//! writer; the values are part of the objects already stored in clusters
//! and must not change. (The CLI writes as `redblack-cli`, see
//! `cli::rollouts::ops::CLI_FIELD_MANAGER`.)

/// The Rollout controller: children (ReplicaSets, Services, routes,
/// CanaryAnalyses) and the Rollout's status.
pub const ROLLOUT_FIELD_MANAGER: &str = "redblack";

/// The CanaryAnalysis controller: a CanaryAnalysis's status.
pub const ANALYSIS_FIELD_MANAGER: &str = "redblack-canaryanalysis";

/// The notifier: the notification ledgers (ConfigMaps owned by Rollouts)
/// and a Notifier's status.
pub const NOTIFIER_FIELD_MANAGER: &str = "redblack-notifier";
