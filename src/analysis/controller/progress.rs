//! The progress machine: [`Progress`] folds interval outcomes and source
//! failures into the next status (early end, verdict, bounded intervals,
//! conditions) and collects the Events that go with it. PURE.

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use redblack_judge::Band;

use super::bounds::{Limits, MAX_METRICS_BYTES, bound_metrics};
use super::early_pass::EarlyPassed;
use super::interval::Schedule;
use super::spec::ResolvedSpec;
use super::time::{fmt_time, to_time, truncate};
use super::verdict::{band_name, ends_early, verdict};
use crate::analysis::traffic_check::NO_TRAFFIC_MESSAGE;
use crate::api::canary_analysis::{
    AnalysisWindow, CanaryAnalysisPhase, CanaryAnalysisStatus, EarlyPassStatus, IntervalAggregate,
    IntervalResult, Judgement, SourceFailures,
};
use crate::runtime::events::{EventType, PlannedEvent};
use redblack_judge::JudgeResult;

/// At most this many points of a metric's e-value path are kept in the
/// status (thinned evenly; `pathEvery` says the stride).
pub const MAX_PATH_POINTS: usize = 120;

/// The result of one interval's I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalOutcome {
    Judged(JudgeResult),
    /// The traffic query said the experiment received no traffic.
    NoTraffic,
}

/// The warning condition of an analysis whose endpoint skips TLS verification.
pub const INSECURE_ENDPOINT: &str = "InsecureEndpoint";

/// The status being built, and the Events that go with it (published after
/// the status write).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub status: CanaryAnalysisStatus,
    pub events: Vec<PlannedEvent>,
    pub now: DateTime<Utc>,
    pub limits: Limits,
}

/// Whether the run goes on after an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    Finished(CanaryAnalysisPhase),
}

impl Progress {
    pub fn new(status: CanaryAnalysisStatus, now: DateTime<Utc>, limits: Limits) -> Self {
        Progress {
            status,
            events: Vec::new(),
            now: truncate(now),
            limits,
        }
    }

    pub(super) fn event(&mut self, warning: bool, reason: &str, message: String) {
        let type_ = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.events.push(PlannedEvent::new(type_, reason, message));
    }

    pub(super) fn set_phase(&mut self, phase: CanaryAnalysisPhase, message: String) {
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    pub(super) fn set_window(&mut self, spec: &ResolvedSpec) {
        let s = &spec.schedule;
        self.status.window = Some(AnalysisWindow {
            start: Some(to_time(s.start)),
            judged_from: Some(to_time(s.judged_from)),
            end: Some(to_time(s.end)),
            interval_seconds: Some(s.interval.num_seconds()),
            step_seconds: Some(i64::try_from(spec.step.as_secs()).unwrap_or(i64::MAX)),
        });
        self.status.total_intervals = s.total;
        self.set_progress_text();
    }

    fn set_progress_text(&mut self) {
        self.status.interval_progress = Some(format!(
            "{}/{}",
            self.status.completed_intervals, self.status.total_intervals
        ));
    }

    /// Ends the run (terminal phase): message, completion time, event.
    fn finish(&mut self, phase: CanaryAnalysisPhase, message: String) {
        let warning = !matches!(phase, CanaryAnalysisPhase::Passed);
        self.event(warning, phase.as_str(), message.clone());
        self.set_phase(phase, message);
        self.status.completed_at = Some(to_time(self.now));
        self.status.source_failures = None;
        self.finalize();
    }

    /// Phase Error with `message`.
    pub fn fail_with_error(&mut self, reason: &str, message: String) {
        self.event(true, reason, message.clone());
        self.set_phase(CanaryAnalysisPhase::Error, message);
        self.status.completed_at = Some(to_time(self.now));
        self.status.source_failures = None;
        self.finalize();
    }

    /// A query failed for good (invalid query, several series…): phase Error.
    pub fn query_error(&mut self, field: &str, scope: &str, error: &str) {
        self.fail_with_error("QueryFailed", format!("{field} ({scope} scope): {error}"));
    }

    /// The metric source could not be reached: retry later, or phase Error
    /// once `max_source_attempts` are spent. Returns when to come back.
    pub fn source_unreachable(&mut self, url: &str, cause: &str) -> Option<DateTime<Utc>> {
        let attempts = self
            .status
            .source_failures
            .as_ref()
            .map_or(0, |f| f.attempts)
            + 1;
        let max = self.limits.max_source_attempts.max(1);
        if attempts >= max {
            self.fail_with_error(
                "MetricSourceUnreachable",
                format!(
                    "prometheus at {url} unreachable: {cause} (gave up after {attempts} attempts)"
                ),
            );
            return None;
        }
        let wait = TimeDelta::from_std(self.limits.backoff(attempts)).unwrap_or(TimeDelta::MAX);
        let retry_at = self.now + wait;
        let message = format!(
            "prometheus at {url} unreachable (attempt {attempts} of {max}, retrying at {}): {cause}",
            fmt_time(retry_at)
        );
        self.event(true, "MetricSourceUnreachable", message.clone());
        self.status.message = Some(message);
        self.status.source_failures = Some(SourceFailures {
            attempts,
            last_error: Some(cause.to_owned()),
            retry_at: Some(to_time(retry_at)),
        });
        self.finalize();
        Some(retry_at)
    }

    /// Folds the outcome of interval `k` into the status.
    pub fn record(&mut self, schedule: &Schedule, k: u32, outcome: IntervalOutcome) -> Step {
        let (start, end) = schedule.interval_bounds(k);
        let total = schedule.total;
        let (score, band, inconclusive_reason) = match &outcome {
            IntervalOutcome::Judged(r) => (
                Some(r.score),
                r.band,
                (r.band == Band::Inconclusive).then(|| r.reason.clone()),
            ),
            IntervalOutcome::NoTraffic => (
                None,
                Band::Inconclusive,
                Some(NO_TRAFFIC_MESSAGE.to_owned()),
            ),
        };
        self.push_interval(IntervalResult {
            index: k,
            start: to_time(start),
            end: to_time(end),
            score,
            band,
            inconclusive_reason: inconclusive_reason.clone(),
        });
        self.status.completed_intervals = k;
        self.set_progress_text();
        self.status.source_failures = None;
        self.status.score = score;
        self.status.band = Some(band);
        let score_text = score.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
        if let IntervalOutcome::Judged(r) = &outcome {
            self.store_judgement(r, Some(k), None);
        }
        self.event(
            band == Band::Fail,
            "IntervalJudged",
            format!(
                "interval {k}/{total} scored {score_text} ({}){}",
                band_name(band),
                inconclusive_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        );

        let step = match &outcome {
            IntervalOutcome::Judged(r) if ends_early(r) && k < total => {
                let message = format!(
                    "interval {k}/{total} scored {score_text}, at or below the marginal threshold {}: the analysis ended early ({})",
                    r.marginal_threshold, r.reason
                );
                self.finish(CanaryAnalysisPhase::Failed, message);
                Step::Finished(CanaryAnalysisPhase::Failed)
            }
            IntervalOutcome::Judged(r) if k >= total => {
                let phase = verdict(r);
                let message = format!(
                    "final score {score_text} ({}): {}",
                    band_name(r.band),
                    r.reason
                );
                self.finish(phase, message);
                Step::Finished(phase)
            }
            IntervalOutcome::NoTraffic if k >= total => {
                self.finish(
                    CanaryAnalysisPhase::Inconclusive,
                    format!("{NO_TRAFFIC_MESSAGE} in the last interval ({k}/{total})"),
                );
                Step::Finished(CanaryAnalysisPhase::Inconclusive)
            }
            _ => {
                let detail = inconclusive_reason
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                self.status.message = Some(format!(
                    "interval {k}/{total} scored {score_text} ({}){detail}; interval {} ends at {}",
                    band_name(band),
                    k + 1,
                    fmt_time(schedule.boundary(k + 1))
                ));
                Step::Continue
            }
        };
        self.finalize();
        step
    }

    /// The summary of `r` (made at the end of interval `interval`, or by a
    /// sequential look `at` a step) and its per-metric results.
    fn store_judgement(
        &mut self,
        r: &JudgeResult,
        interval: Option<u32>,
        at: Option<DateTime<Utc>>,
    ) {
        self.status.judgement = Some(Judgement {
            interval,
            at: at.map(to_time),
            score: Some(r.score),
            band: Some(r.band),
            reason: Some(r.reason.clone()),
            confidence: Some(r.confidence),
            mode: Some(r.mode),
            marginal_threshold: Some(r.marginal_threshold),
            pass_threshold: Some(r.pass_threshold),
        });
        self.store_metrics(r);
    }

    /// The per-metric results of `r` into the status, bounded in size.
    fn store_metrics(&mut self, r: &JudgeResult) {
        let mut metrics = r.metrics.clone();
        for m in &mut metrics {
            if let Some(seq) = m.sequential.as_mut() {
                seq.thin_path(MAX_PATH_POINTS);
            }
        }
        let (metrics, omitted) = bound_metrics(metrics, MAX_METRICS_BYTES);
        self.status.metrics = metrics;
        self.status.metrics_omitted = (omitted > 0).then_some(omitted);
        self.status.groups = r.groups.clone();
    }

    /// `mode: sequential`: a look between interval boundaries (the window
    /// up to `at`) whose evidence crossed ends the run Failed at once.
    pub fn look_failed(&mut self, schedule: &Schedule, at: DateTime<Utc>, r: &JudgeResult) {
        let (k, total) = (self.status.completed_intervals + 1, schedule.total);
        let crossed = r
            .metrics
            .iter()
            .filter_map(|m| m.sequential.as_ref()?.crossed_at_step)
            .min();
        self.status.score = Some(r.score);
        self.status.band = Some(r.band);
        self.status.source_failures = None;
        self.store_judgement(r, None, Some(at));
        let after = (at - schedule.judged_from).num_seconds();
        let step = crossed.map_or_else(String::new, |s| format!(" at step {s}"));
        let message = format!(
            "the sequential test crossed{step} ({after}s after judging started, during interval {k}/{total}), score {:.1} at or below the marginal threshold {}: the analysis ended early ({})",
            r.score, r.marginal_threshold, r.reason
        );
        self.finish(CanaryAnalysisPhase::Failed, message);
    }

    /// `spec.earlyPass`: the judgement of the window up to `at` showed every
    /// metric within the margin after `minDuration`: the run ends Passed.
    /// `look` is the judgement of a sequential look between boundaries
    /// (None: the judgement of the interval just recorded).
    pub fn passed_early(
        &mut self,
        schedule: &Schedule,
        at: DateTime<Utc>,
        look: Option<&JudgeResult>,
        passed: &EarlyPassed,
    ) {
        if let Some(r) = look {
            self.status.score = Some(r.score);
            self.status.band = Some(r.band);
            self.store_judgement(r, None, Some(at));
        }
        let (k, total) = (self.status.completed_intervals, schedule.total);
        let during = if look.is_some() {
            format!("during interval {}/{total}", k + 1)
        } else {
            format!("at the end of interval {k}/{total}")
        };
        self.status.early_pass = Some(EarlyPassStatus {
            crossed_at: Some(to_time(passed.crossed_at)),
            crossed_at_step: Some(passed.crossed_at_step),
            passed_at: Some(to_time(at)),
            margin: Some(passed.margin),
            reason: Some(passed.reason.clone()),
        });
        let message = format!(
            "passed early at {} ({}s after the start, {during}, {}s before the end): {}; the last metric crossed at step {} ({})",
            fmt_time(at),
            (at - schedule.start).num_seconds(),
            (schedule.end - at).num_seconds(),
            passed.reason,
            passed.crossed_at_step,
            fmt_time(passed.crossed_at),
        );
        self.finish(CanaryAnalysisPhase::Passed, message);
    }

    fn push_interval(&mut self, interval: IntervalResult) {
        let agg = self
            .status
            .aggregate
            .get_or_insert_with(IntervalAggregate::default);
        agg.judged += 1;
        match interval.band {
            Band::Pass => agg.pass += 1,
            Band::Marginal => agg.marginal += 1,
            Band::Fail => agg.fail += 1,
            Band::Inconclusive => agg.inconclusive += 1,
        }
        if let (Some(score), false) = (interval.score, interval.band == Band::Inconclusive) {
            agg.scored += 1;
            agg.score_sum += score;
            agg.min_score = Some(agg.min_score.map_or(score, |m| m.min(score)));
        }
        self.status.intervals.push(interval);
        let keep = self.limits.keep_intervals.max(1);
        if self.status.intervals.len() > keep {
            let drop = self.status.intervals.len() - keep;
            self.status.intervals.drain(..drop);
        }
    }

    /// Recomputes the conditions from the phase, keeping transition times of
    /// conditions whose status did not change.
    pub fn finalize(&mut self) {
        let phase = self.status.phase.unwrap_or(CanaryAnalysisPhase::Pending);
        let message = self.status.message.clone().unwrap_or_default();
        let reason = phase.as_str();
        let done = phase.is_terminal();
        let verdict = done && phase != CanaryAnalysisPhase::Error;
        // kstatus reads Reconciling (in progress) and Stalled (failed);
        // Ready/Completed are for `kubectl wait` and humans.
        let wanted = [
            ("Ready", verdict, reason),
            ("Completed", done, reason),
            ("Reconciling", !done, reason),
            ("Stalled", phase == CanaryAnalysisPhase::Error, reason),
        ];
        let previous = std::mem::take(&mut self.status.conditions);
        let generation = self.status.observed_generation;
        let kept: Vec<Condition> = previous
            .iter()
            .filter(|c| c.type_ == INSECURE_ENDPOINT)
            .cloned()
            .collect();
        self.status.conditions = wanted
            .iter()
            .map(|(type_, ok, reason)| {
                let status = if *ok { "True" } else { "False" };
                let last_transition_time = previous
                    .iter()
                    .find(|c| c.type_ == *type_ && c.status == status)
                    .map(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| to_time(self.now));
                Condition {
                    type_: (*type_).to_owned(),
                    status: status.to_owned(),
                    reason: (*reason).to_owned(),
                    message: message.clone(),
                    observed_generation: generation,
                    last_transition_time,
                }
            })
            .collect();
        self.status.conditions.extend(kept);
    }

    /// The `InsecureEndpoint` warning condition: present (True) while the
    /// analysis' endpoint skips TLS verification, absent otherwise.
    pub fn set_insecure_endpoint(&mut self, insecure: bool) {
        let present = self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == INSECURE_ENDPOINT);
        if insecure == present {
            return;
        }
        if !insecure {
            self.status
                .conditions
                .retain(|c| c.type_ != INSECURE_ENDPOINT);
            return;
        }
        let message = "spec.prometheus.tls.insecureSkipVerify is set: the metric endpoint's certificate is not verified, so anyone on the path can forge its answers".to_owned();
        self.event(true, "InsecureEndpoint", message.clone());
        self.status.conditions.push(Condition {
            type_: INSECURE_ENDPOINT.to_owned(),
            status: "True".to_owned(),
            reason: "InsecureSkipVerify".to_owned(),
            message,
            observed_generation: self.status.observed_generation,
            last_transition_time: to_time(self.now),
        });
    }
}
