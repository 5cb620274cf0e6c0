//! How a judgement ends a run: Kayenta's early-end rule and the verdict of
//! the final judgement. PURE.

use redblack_judge::{Band, JudgeResult};

use crate::api::canary_analysis::CanaryAnalysisPhase;

/// Kayenta's early-end rule (orca's MonitorKayentaCanaryTask): an interval whose score is
/// at or below the marginal threshold ends the run as Failed. Inconclusive
/// judgements (no data, no traffic) are not evidence either way and never end
/// a run early.
pub fn ends_early(result: &JudgeResult) -> bool {
    result.band != Band::Inconclusive && result.score <= result.marginal_threshold
}

/// The verdict of the final judgement (the whole judged window).
pub fn verdict(result: &JudgeResult) -> CanaryAnalysisPhase {
    match result.band {
        Band::Inconclusive => CanaryAnalysisPhase::Inconclusive,
        _ if ends_early(result) => CanaryAnalysisPhase::Failed,
        Band::Pass => CanaryAnalysisPhase::Passed,
        Band::Marginal => CanaryAnalysisPhase::Marginal,
        Band::Fail => CanaryAnalysisPhase::Failed,
    }
}

pub(super) fn band_name(band: Band) -> &'static str {
    match band {
        Band::Pass => "Pass",
        Band::Marginal => "Marginal",
        Band::Fail => "Fail",
        Band::Inconclusive => "Inconclusive",
    }
}
