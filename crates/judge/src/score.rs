//! Kayenta's scoring (summary rounded to two decimals), with our documented
//! choices for weights, empty groups, errors and missing data.

use super::config::JudgeConfig;
use super::result::{Band, Classification, ForcedZero, GroupScore, JudgeResult, MetricResult};

/// Scores classified metrics. Group score = 100·Pass/(Pass+High+Low+NodataFailMetric+Error);
/// summary = Σ score·weight / Σ weight over groups that scored (weights are
/// relative; a group whose metrics all had no data drops out and its weight is
/// shared by the others). Forced to 0 by a critical failure (band Fail), by
/// ≥ 50% of metrics without data (band Inconclusive), or by a critical metric
/// without data when the score is above the marginal threshold (band
/// Inconclusive; at or below it the band is Fail).
pub fn score(config: &JudgeConfig, metrics: Vec<MetricResult>) -> JudgeResult {
    let declared: Vec<(String, f64)> = if config.groups.is_empty() {
        let mut names: Vec<String> = Vec::new();
        for m in &metrics {
            if !names.contains(&m.group) {
                names.push(m.group.clone());
            }
        }
        names.into_iter().map(|n| (n, 1.0)).collect()
    } else {
        config
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.weight))
            .collect()
    };

    let mut groups: Vec<GroupScore> = declared
        .into_iter()
        .map(|(name, weight)| {
            let mut g = GroupScore {
                name,
                weight,
                effective_weight: 0.0,
                score: None,
                pass: 0,
                high: 0,
                low: 0,
                nodata: 0,
                nodata_fail: 0,
                error: 0,
            };
            for m in metrics.iter().filter(|m| m.group == g.name) {
                match m.classification {
                    Classification::Pass => g.pass += 1,
                    Classification::High => g.high += 1,
                    Classification::Low => g.low += 1,
                    Classification::Nodata => g.nodata += 1,
                    Classification::NodataFailMetric => g.nodata_fail += 1,
                    Classification::Error => g.error += 1,
                }
            }
            let scored = g.pass + g.high + g.low + g.nodata_fail + g.error;
            if scored > 0 {
                g.score = Some(100.0 * g.pass as f64 / scored as f64);
            }
            g
        })
        .collect();

    let total_weight: f64 = groups
        .iter()
        .filter(|g| g.score.is_some())
        .map(|g| g.weight)
        .sum();
    let mut summary = 0.0;
    if total_weight > 0.0 {
        for g in groups.iter_mut() {
            if let Some(s) = g.score {
                g.effective_weight = 100.0 * g.weight / total_weight;
                summary += s * g.weight / total_weight;
            }
        }
    }
    // Kayenta rounds the summary score to two decimals; the bands are decided
    // on the rounded score, so the score shown is the score judged.
    let summary = round2(summary.clamp(0.0, 100.0));

    let t = config.score_thresholds;
    let critical: Vec<String> = metrics
        .iter()
        .filter(|m| m.critical_failure)
        .map(|m| m.name.clone())
        .collect();
    // NodataFailMetric (mustHaveData) is already a critical failure above.
    let critical_nodata: Vec<String> = metrics
        .iter()
        .filter(|m| m.critical && m.classification == Classification::Nodata)
        .map(|m| m.name.clone())
        .collect();
    let nodata = metrics
        .iter()
        .filter(|m| {
            matches!(
                m.classification,
                Classification::Nodata | Classification::NodataFailMetric
            )
        })
        .count();
    let (score, band, forced_zero, reason) = if !critical.is_empty() {
        let reason = format!("critical metric(s) failed: {}", critical.join(", "));
        (
            0.0,
            Band::Fail,
            Some(ForcedZero::CriticalMetricFailed { metrics: critical }),
            reason,
        )
    } else if !metrics.is_empty() && 2 * nodata >= metrics.len() {
        let reason = format!(
            "{nodata} of {} metrics have no data (does the canary receive traffic?): inconclusive",
            metrics.len()
        );
        (
            0.0,
            Band::Inconclusive,
            Some(ForcedZero::TooMuchNodata {
                nodata,
                total: metrics.len(),
            }),
            reason,
        )
    } else if total_weight <= 0.0 {
        let reason = "no metric with a weighted group was scored: inconclusive".to_string();
        (
            0.0,
            Band::Inconclusive,
            Some(ForcedZero::NoScoredMetrics),
            reason,
        )
    } else if !critical_nodata.is_empty() && summary <= t.marginal {
        // A critical metric without data cannot make a failing canary any
        // better: Fail still rolls back, where Inconclusive would only hold.
        // At the threshold too: the controller fails a score <= marginal
        // (Kayenta's rule, docs/canary-analysis.md), so Inconclusive there
        // would soften a failure into a hold.
        let reason = format!(
            "score {summary} <= marginal threshold {}, and critical metric(s) without data: {}",
            t.marginal,
            critical_nodata.join(", ")
        );
        (summary, Band::Fail, None, reason)
    } else if !critical_nodata.is_empty() {
        // "No promotion on missing data": a Pass, or a Marginal that a human
        // could promote, is not earned without the metrics marked critical.
        let reason = format!(
            "critical metric(s) without data: {} (score {summary} without them): inconclusive",
            critical_nodata.join(", ")
        );
        (
            0.0,
            Band::Inconclusive,
            Some(ForcedZero::CriticalMetricNodata {
                metrics: critical_nodata,
            }),
            reason,
        )
    } else if summary >= t.pass {
        (
            summary,
            Band::Pass,
            None,
            format!("score {summary} >= pass threshold {}", t.pass),
        )
    } else if summary >= t.marginal {
        let reason = format!(
            "score {summary} >= marginal threshold {} but < pass threshold {}",
            t.marginal, t.pass
        );
        (summary, Band::Marginal, None, reason)
    } else {
        (
            summary,
            Band::Fail,
            None,
            format!("score {summary} < marginal threshold {}", t.marginal),
        )
    };

    JudgeResult {
        score,
        band,
        reason,
        forced_zero,
        confidence: config.confidence,
        mode: config.mode,
        tolerance: config.effective_tolerance(),
        marginal_threshold: t.marginal,
        pass_threshold: t.pass,
        metrics,
        groups,
    }
}

/// Two decimals, as Kayenta reports the summary score.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
