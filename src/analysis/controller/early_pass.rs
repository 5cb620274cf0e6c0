//! Early pass (`spec.earlyPass`, `mode: sequential`): whether a judgement of
//! the window up to `at` ends the run Passed before its end. PURE.
//!
//! The judge says whether the evidence allows it (every metric shown no
//! worse than the baseline by the margin, none failed, none without data:
//! [`early_pass_verdict`]); the controller adds the user's rule that the
//! analysis runs at least `minDuration` from its start.

use chrono::{DateTime, TimeDelta, Utc};
use redblack_judge::{JudgeResult, early_pass_verdict};

use super::interval::Schedule;
use super::verdict::ends_early;

/// A judgement that passes the analysis early.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyPassed {
    /// The 1-based step (from `judgedFrom`) by which the last metric crossed.
    pub crossed_at_step: u32,
    /// That step's point in time.
    pub crossed_at: DateTime<Utc>,
    pub margin: f64,
    /// The judge's reason.
    pub reason: String,
}

/// Whether the judgement `result` of the window up to `at` passes the
/// analysis early. `min_duration`: `spec.earlyPass.minDuration` (None: early
/// pass not allowed).
pub fn passes_early(
    min_duration: Option<TimeDelta>,
    schedule: &Schedule,
    step: TimeDelta,
    at: DateTime<Utc>,
    result: &JudgeResult,
) -> Option<EarlyPassed> {
    let min = min_duration?;
    if at - schedule.start < min || ends_early(result) {
        return None;
    }
    let verdict = early_pass_verdict(result)?;
    if !verdict.eligible {
        return None;
    }
    let margin = result
        .metrics
        .iter()
        .find_map(|m| Some(m.sequential.as_ref()?.early_pass.as_ref()?.margin))?;
    let crossed_at_step = u32::try_from(verdict.crossed_at_step?).unwrap_or(u32::MAX);
    let crossed_at =
        schedule.judged_from + step * i32::try_from(crossed_at_step).unwrap_or(i32::MAX);
    Some(EarlyPassed {
        crossed_at_step,
        crossed_at: crossed_at.min(at),
        margin,
        reason: verdict.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redblack_judge::{
        EarlyPassConfig, JudgeConfig, JudgeMode, MetricConfig, MetricSamples, judge,
    };

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    /// A judgement of `n` one-second steps of a canary `factor` × a wobbly
    /// baseline, with early pass at margin 1.2 (or without).
    fn judged(n: usize, factor: f64, early: bool) -> JudgeResult {
        let b: Vec<f64> = (0..n).map(|i| 100.0 + ((i * 53) % 21) as f64).collect();
        let c: Vec<f64> = (0..n)
            .map(|i| factor * (100.0 + ((i * 37) % 21) as f64))
            .collect();
        let cfg = JudgeConfig {
            mode: JudgeMode::Sequential,
            early_pass: early.then(EarlyPassConfig::default),
            ..JudgeConfig::new(vec![MetricConfig {
                direction: redblack_judge::Direction::Increase,
                ..MetricConfig::new("latency")
            }])
        };
        judge(&cfg, &[MetricSamples::continuous("latency", &c, &b)]).unwrap()
    }

    #[test]
    fn decisions_table() {
        // Start at 0, 10 s warmup, window to 600 s in 60 s intervals, 1 s steps.
        let schedule =
            Schedule::new(t(0), TimeDelta::seconds(10), t(600), TimeDelta::seconds(60)).unwrap();
        let step = TimeDelta::seconds(1);
        let min = Some(TimeDelta::seconds(120));
        let healthy = judged(150, 1.0, true);
        let crossed = early_pass_verdict(&healthy)
            .and_then(|v| v.crossed_at_step)
            .unwrap();
        assert!(crossed < 110, "crossed at {crossed}");
        // (minDuration, look at, judgement, passes)
        let table = [
            (min, t(160), healthy.clone(), true),
            // Eligible, but before minDuration (from the start, warmup included).
            (min, t(119), healthy.clone(), false),
            (min, t(120), healthy.clone(), true),
            // Not allowed.
            (None, t(160), healthy.clone(), false),
            // Not enough evidence yet.
            (min, t(160), judged(8, 1.0, true), false),
            // Worse than the margin.
            (min, t(160), judged(150, 1.5, true), false),
            // No early-pass numbers (config without it).
            (min, t(160), judged(150, 1.0, false), false),
        ];
        for (i, (min, at, result, want)) in table.into_iter().enumerate() {
            let got = passes_early(min, &schedule, step, at, &result);
            assert_eq!(got.is_some(), want, "row {i}: {got:?}");
            if let Some(p) = got {
                assert_eq!(p.crossed_at_step as usize, crossed, "row {i}");
                assert_eq!(p.crossed_at, t(10 + crossed as i64), "row {i}");
                assert_eq!(p.margin, 1.2);
                assert!(p.reason.contains("by step"), "{}", p.reason);
            }
        }
    }
}
