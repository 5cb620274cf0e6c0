//! The CanaryAnalysis planner: given the object and the clock, [`plan`] says
//! what is due: settle (write the status, wake later) or judge some
//! intervals. PURE; the I/O it asks for is done by `reconcile`.
//!
//! Determinism: the status is a function of the previous status, the spec
//! and the outcomes. Timestamps (`startedAt`, `completedAt`, condition
//! transition times, `retryAt`) are written once when the state they mark
//! begins and never rewritten, so a reconcile with nothing due produces an
//! identical status — and writes nothing.

use chrono::{DateTime, TimeDelta, Utc};
use redblack_judge::JudgeMode;

use super::bounds::Limits;
use super::progress::Progress;
use super::spec::{ResolvedSpec, resolve};
use super::time::{fmt_time, from_time, to_time, truncate};
use crate::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase, CanaryAnalysisStatus};

/// What the reconcile has to do.
#[derive(Debug)]
pub enum AnalysisPlan {
    /// No queries: write the status if it changed, come back at `wake` (None: only on change).
    Settle {
        progress: Progress,
        wake: Option<DateTime<Utc>>,
    },
    /// Judge `intervals` in order, feeding each outcome to `progress`, then settle.
    Judge {
        spec: Box<ResolvedSpec>,
        progress: Progress,
        intervals: Vec<u32>,
    },
    /// `mode: sequential`, between interval boundaries: judge the window up
    /// to the step point `at`; a crossing ends the analysis Failed at once,
    /// an eligible early pass (`spec.earlyPass`, after its minDuration) ends
    /// it Passed, anything else changes nothing (no status write) and the
    /// next look is at `at + step`.
    Look {
        spec: Box<ResolvedSpec>,
        progress: Progress,
        at: DateTime<Utc>,
    },
}

/// The last step point at or before `now` (`judgedFrom + k·step`, k ≥ 1), if
/// a whole step has been judged-from yet.
pub fn look_at(spec: &ResolvedSpec, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from = spec.schedule.judged_from;
    let step = TimeDelta::from_std(spec.step).ok()?.num_milliseconds();
    let elapsed = (now.min(spec.schedule.end) - from).num_milliseconds();
    if step <= 0 || elapsed < step {
        return None;
    }
    Some(from + TimeDelta::milliseconds(elapsed / step * step))
}

/// When the next look is due after one at `at`: the next step point, or the
/// next interval boundary if that comes first.
pub fn next_look(
    spec: &ResolvedSpec,
    at: DateTime<Utc>,
    boundary: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let next = at + TimeDelta::from_std(spec.step).ok()?;
    Some(boundary.map_or(next, |b| b.min(next)))
}

/// Decides what is due for `ca` at `now`.
pub fn plan(
    ca: &CanaryAnalysis,
    now: DateTime<Utc>,
    default_url: Option<&str>,
    limits: Limits,
) -> AnalysisPlan {
    let now = truncate(now);
    let generation = ca.metadata.generation;
    let previous = ca.status.clone().unwrap_or_default();
    let current = previous.phase.is_some() && previous.observed_generation == generation;

    if current && previous.phase.is_some_and(CanaryAnalysisPhase::is_terminal) {
        let progress = Progress::new(previous, now, limits);
        return AnalysisPlan::Settle {
            progress,
            wake: None,
        };
    }

    let mut progress = if current {
        Progress::new(previous, now, limits)
    } else {
        // A new generation starts over; conditions are kept so that their
        // transition times only move when their status does.
        let restarted = previous.completed_intervals > 0
            || previous.phase.is_some_and(CanaryAnalysisPhase::is_terminal);
        let mut p = Progress::new(
            CanaryAnalysisStatus {
                conditions: previous.conditions,
                ..CanaryAnalysisStatus::default()
            },
            now,
            limits,
        );
        p.status.observed_generation = generation;
        if restarted {
            p.event(
                false,
                "SpecChanged",
                "the spec changed: the analysis starts over".into(),
            );
        }
        p
    };

    let spec = match resolve(ca, default_url) {
        Ok(spec) => spec,
        Err(errors) => {
            progress.fail_with_error("InvalidSpec", errors.to_string());
            return AnalysisPlan::Settle {
                progress,
                wake: None,
            };
        }
    };
    let schedule = spec.schedule;
    progress.set_window(&spec);

    if now < schedule.start {
        progress.set_phase(
            CanaryAnalysisPhase::Pending,
            format!(
                "waiting for the window to start at {}",
                fmt_time(schedule.start)
            ),
        );
        progress.finalize();
        let wake = schedule.next_wake(0, now);
        return AnalysisPlan::Settle { progress, wake };
    }
    if progress.status.phase != Some(CanaryAnalysisPhase::Running) {
        progress.status.started_at.get_or_insert(to_time(now));
        let message = format!(
            "judging {} interval(s) of {}s from {} to {}",
            schedule.total,
            schedule.interval.num_seconds(),
            fmt_time(schedule.judged_from),
            fmt_time(schedule.end)
        );
        progress.event(false, "Started", message.clone());
        progress.set_phase(
            CanaryAnalysisPhase::Running,
            format!(
                "{message}; interval 1 ends at {}",
                fmt_time(schedule.boundary(1))
            ),
        );
    }

    if let Some(retry_at) = progress
        .status
        .source_failures
        .as_ref()
        .and_then(|f| f.retry_at.as_ref())
        .and_then(from_time)
        && retry_at > now
    {
        progress.finalize();
        return AnalysisPlan::Settle {
            progress,
            wake: Some(retry_at),
        };
    }

    let intervals = schedule.due(progress.status.completed_intervals, now);
    if intervals.is_empty() {
        progress.finalize();
        let wake = schedule.next_wake(progress.status.completed_intervals, now);
        if spec.judge.mode == JudgeMode::Sequential {
            match look_at(&spec, now) {
                Some(at) => {
                    return AnalysisPlan::Look {
                        spec: Box::new(spec),
                        progress,
                        at,
                    };
                }
                // Not a whole step judged yet: the first look is one step
                // after judging starts.
                None => {
                    let wake = next_look(&spec, schedule.judged_from, wake);
                    return AnalysisPlan::Settle { progress, wake };
                }
            }
        }
        return AnalysisPlan::Settle { progress, wake };
    }
    AnalysisPlan::Judge {
        spec: Box::new(spec),
        progress,
        intervals,
    }
}
