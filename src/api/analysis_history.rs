//! `spec.analysis` (Argo Rollouts' field of the same name and meaning): how
//! many finished CanaryAnalyses of a Rollout are kept. Without a bound every
//! canary, pre- and post-promotion judgement would stay in the API (and in
//! every watch cache) forever; Argo keeps 5 of each kind by default, and so
//! do we, so a converted Rollout keeps what it kept before.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Argo Rollouts' default for both limits.
pub const DEFAULT_RUN_HISTORY_LIMIT: i32 = 5;

/// How many finished CanaryAnalyses are kept, by outcome (docs/rollout.md,
/// "Analysis history"). The analyses the status names and those of the
/// current and stable revisions are always kept, beyond these limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisHistory {
    /// Passed analyses kept (the newest win).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 0))]
    pub successful_run_history_limit: i32,
    /// Failed, Marginal, Inconclusive and Error analyses kept (the newest win).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 0))]
    pub unsuccessful_run_history_limit: i32,
}

fn default_limit() -> i32 {
    DEFAULT_RUN_HISTORY_LIMIT
}

impl Default for AnalysisHistory {
    fn default() -> Self {
        AnalysisHistory {
            successful_run_history_limit: DEFAULT_RUN_HISTORY_LIMIT,
            unsuccessful_run_history_limit: DEFAULT_RUN_HISTORY_LIMIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_and_a_partial_one_take_argos_defaults() {
        let empty: AnalysisHistory = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, AnalysisHistory::default());
        let partial: AnalysisHistory =
            serde_json::from_str(r#"{"unsuccessfulRunHistoryLimit": 20}"#).unwrap();
        assert_eq!(partial.successful_run_history_limit, 5);
        assert_eq!(partial.unsuccessful_run_history_limit, 20);
    }
}
