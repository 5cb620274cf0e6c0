//! Counting verdicts (`redblack_analysis_verdicts_total`, docs/metrics.md):
//! PURE [`verdict_written`] says whether a status write records a new
//! verdict; the reconcile shell counts it once the write succeeded. A
//! restarted operator observes the verdict already written and counts
//! nothing: each verdict is counted once per operator process that wrote it.

use crate::api::canary_analysis::{CanaryAnalysisPhase, CanaryAnalysisStatus};
use crate::web::metrics::OperatorMetrics;
use crate::web::rollout_metrics::verdict_labels;

/// The verdict `after` records that `before` (the observed status) did not:
/// a terminal phase entered, or reached again for a new spec generation.
pub fn verdict_written(
    before: Option<&CanaryAnalysisStatus>,
    after: &CanaryAnalysisStatus,
) -> Option<CanaryAnalysisPhase> {
    let phase = after.phase.filter(|p| p.is_terminal())?;
    let new = before.is_none_or(|b| {
        b.phase != after.phase || b.observed_generation != after.observed_generation
    });
    new.then_some(phase)
}

/// Counts the verdict `after` writes, if any (and creates the namespace's
/// zero series, so that the first verdict shows as an increase).
pub fn record(
    metrics: Option<&OperatorMetrics>,
    namespace: &str,
    before: Option<&CanaryAnalysisStatus>,
    after: &CanaryAnalysisStatus,
) {
    let Some(metrics) = metrics else { return };
    metrics.rollouts.touch_analysis_namespace(namespace);
    if let Some(verdict) = verdict_written(before, after) {
        metrics
            .rollouts
            .verdicts
            .get_or_create(&verdict_labels(namespace, verdict.as_str()))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CanaryAnalysisPhase::*;

    fn status(phase: Option<CanaryAnalysisPhase>, generation: i64) -> CanaryAnalysisStatus {
        CanaryAnalysisStatus {
            phase,
            observed_generation: Some(generation),
            ..CanaryAnalysisStatus::default()
        }
    }

    #[test]
    fn a_verdict_counts_when_written_not_when_observed_again() {
        let rows: [(
            Option<CanaryAnalysisStatus>,
            CanaryAnalysisStatus,
            Option<CanaryAnalysisPhase>,
        ); 8] = [
            (None, status(Some(Passed), 1), Some(Passed)),
            (
                Some(status(Some(Running), 1)),
                status(Some(Passed), 1),
                Some(Passed),
            ),
            (
                Some(status(Some(Running), 1)),
                status(Some(Failed), 1),
                Some(Failed),
            ),
            (
                Some(status(Some(Running), 1)),
                status(Some(Running), 1),
                None,
            ),
            (
                Some(status(Some(Pending), 1)),
                status(Some(Running), 1),
                None,
            ),
            // Re-written (a message changed) or re-observed after a restart: not again.
            (Some(status(Some(Failed), 1)), status(Some(Failed), 1), None),
            // A new spec generation judged to the same verdict is a new verdict.
            (
                Some(status(Some(Passed), 1)),
                status(Some(Passed), 2),
                Some(Passed),
            ),
            (
                Some(status(Some(Error), 1)),
                status(Some(Inconclusive), 1),
                Some(Inconclusive),
            ),
        ];
        for (before, after, want) in rows {
            assert_eq!(
                verdict_written(before.as_ref(), &after),
                want,
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn recording_creates_zero_series_and_counts_once() {
        let m = OperatorMetrics::new();
        record(
            Some(&m),
            "shop",
            Some(&status(Some(Running), 1)),
            &status(Some(Running), 1),
        );
        let text = m.encode().unwrap_or_default();
        assert!(
            text.contains(
                r#"redblack_analysis_verdicts_total{namespace="shop",verdict="Failed"} 0"#
            ),
            "{text}"
        );
        record(
            Some(&m),
            "shop",
            Some(&status(Some(Running), 1)),
            &status(Some(Failed), 1),
        );
        record(
            Some(&m),
            "shop",
            Some(&status(Some(Failed), 1)),
            &status(Some(Failed), 1),
        );
        let text = m.encode().unwrap_or_default();
        assert!(
            text.contains(
                r#"redblack_analysis_verdicts_total{namespace="shop",verdict="Failed"} 1"#
            ),
            "{text}"
        );
    }
}
