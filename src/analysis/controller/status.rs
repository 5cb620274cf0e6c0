//! PURE: every decision of the CanaryAnalysis controller. Given the object
//! and the clock, [`plan`] says what is due; [`Progress`] folds interval
//! outcomes and failures into the next status (early end, verdict, bounds,
//! conditions). The reconcile function only does the I/O in between.
//!
//! Determinism: the status is a function of the previous status, the spec
//! and the outcomes. Timestamps (`startedAt`, `completedAt`, condition
//! transition times, `retryAt`) are written once when the state they mark
//! begins and never rewritten, so a reconcile with nothing due produces an
//! identical status — and writes nothing.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::interval::Schedule;
use super::spec::{ResolvedSpec, resolve};
use super::time::{from_time, to_time, truncate};
use crate::analysis::traffic_check::NO_TRAFFIC_MESSAGE;
use crate::api::canary_analysis::{
    AnalysisWindow, CanaryAnalysis, CanaryAnalysisStatus, IntervalAggregate, IntervalResult,
    Judgement, Phase, SourceFailures,
};
use redblack_judge::{Band, Classification, JudgeResult, MetricResult};

/// Bounds and retry policy of the status machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Intervals kept in `status.intervals` (the aggregate counts all).
    pub keep_intervals: usize,
    /// Attempts at reaching the metric source before phase Error.
    pub max_source_attempts: u32,
    /// Wait after the first failed attempt; doubles per attempt.
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            keep_intervals: 20,
            max_source_attempts: 5,
            retry_backoff: Duration::from_secs(10),
            max_retry_backoff: Duration::from_secs(160),
        }
    }
}

impl Limits {
    /// Wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.max_retry_backoff)
    }
}

/// Something users must see, published as a Kubernetes Event after the status write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    /// PascalCase.
    pub reason: &'static str,
    pub note: String,
}

/// At most this many `IntervalJudged` events per reconcile: a retrospective
/// analysis judges all its intervals at once, and its events should not
/// flood the namespace.
pub const MAX_INTERVAL_EVENTS: usize = 3;

/// Keeps the first `MAX_INTERVAL_EVENTS - 1` and the last `IntervalJudged`
/// notices, replacing the rest by one summary; other notices are kept.
pub fn collapse_notices(notices: Vec<Notice>) -> Vec<Notice> {
    let judged = notices
        .iter()
        .filter(|n| n.reason == "IntervalJudged")
        .count();
    if judged <= MAX_INTERVAL_EVENTS {
        return notices;
    }
    let mut seen = 0;
    let mut out = Vec::with_capacity(notices.len());
    for notice in notices {
        if notice.reason != "IntervalJudged" {
            out.push(notice);
            continue;
        }
        seen += 1;
        if seen < MAX_INTERVAL_EVENTS || seen == judged {
            out.push(notice);
        } else if seen == MAX_INTERVAL_EVENTS {
            out.push(Notice {
                warning: false,
                reason: "IntervalJudged",
                note: format!(
                    "{} more intervals judged (see status.intervals)",
                    judged - MAX_INTERVAL_EVENTS
                ),
            });
        }
    }
    out
}

/// Budget of `status.metrics` in JSON bytes. An object must stay well under
/// etcd's 1.5 MiB request limit, and Netflix compared > 1500 metrics per
/// canary (~600 bytes each here).
pub const MAX_METRICS_BYTES: usize = 400 * 1024;

/// Keeps the metrics that matter within `budget` bytes: failures (High, Low,
/// Error, NodataFailMetric) first, then Nodata, then Pass; config order is
/// kept among those kept. Returns the metrics kept and how many were left out.
pub fn bound_metrics(metrics: Vec<MetricResult>, budget: usize) -> (Vec<MetricResult>, u32) {
    let sizes: Vec<usize> = metrics
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(budget, |v| v.len() + 1))
        .collect();
    if sizes.iter().sum::<usize>() <= budget {
        return (metrics, 0);
    }
    let rank = |m: &MetricResult| match m.classification {
        Classification::Pass => 2,
        Classification::Nodata => 1,
        _ => 0,
    };
    let mut order: Vec<usize> = (0..metrics.len()).collect();
    order.sort_by_key(|i| rank(&metrics[*i]));
    let mut keep = vec![false; metrics.len()];
    let mut used = 0;
    for i in order {
        if used + sizes[i] <= budget {
            used += sizes[i];
            keep[i] = true;
        }
    }
    let omitted = keep.iter().filter(|k| !**k).count();
    let kept = metrics
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect();
    (kept, u32::try_from(omitted).unwrap_or(u32::MAX))
}

/// The result of one interval's I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalOutcome {
    Judged(JudgeResult),
    /// The traffic query said the experiment received no traffic.
    NoTraffic,
}

/// What the reconcile has to do.
#[derive(Debug)]
pub enum Plan {
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
}

/// The status being built, and the notices that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub status: CanaryAnalysisStatus,
    pub notices: Vec<Notice>,
    pub now: DateTime<Utc>,
    pub limits: Limits,
}

fn fmt_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Decides what is due for `ca` at `now`.
pub fn plan(
    ca: &CanaryAnalysis,
    now: DateTime<Utc>,
    default_url: Option<&str>,
    limits: Limits,
) -> Plan {
    let now = truncate(now);
    let generation = ca.metadata.generation;
    let previous = ca.status.clone().unwrap_or_default();
    let current = previous.phase.is_some() && previous.observed_generation == generation;

    if current && previous.phase.is_some_and(Phase::is_terminal) {
        let progress = Progress::new(previous, now, limits);
        return Plan::Settle {
            progress,
            wake: None,
        };
    }

    let mut progress = if current {
        Progress::new(previous, now, limits)
    } else {
        // A new generation starts over; conditions are kept so that their
        // transition times only move when their status does.
        let restarted =
            previous.completed_intervals > 0 || previous.phase.is_some_and(Phase::is_terminal);
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
            p.notice(
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
            return Plan::Settle {
                progress,
                wake: None,
            };
        }
    };
    let schedule = spec.schedule;
    progress.set_window(&spec);

    if now < schedule.start {
        progress.set_phase(
            Phase::Pending,
            format!(
                "waiting for the window to start at {}",
                fmt_time(schedule.start)
            ),
        );
        progress.finalize();
        let wake = schedule.next_wake(0, now);
        return Plan::Settle { progress, wake };
    }
    if progress.status.phase != Some(Phase::Running) {
        progress.status.started_at.get_or_insert(to_time(now));
        let message = format!(
            "judging {} interval(s) of {}s from {} to {}",
            schedule.total,
            schedule.interval.num_seconds(),
            fmt_time(schedule.judged_from),
            fmt_time(schedule.end)
        );
        progress.notice(false, "Started", message.clone());
        progress.set_phase(
            Phase::Running,
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
        return Plan::Settle {
            progress,
            wake: Some(retry_at),
        };
    }

    let intervals = schedule.due(progress.status.completed_intervals, now);
    if intervals.is_empty() {
        progress.finalize();
        let wake = schedule.next_wake(progress.status.completed_intervals, now);
        return Plan::Settle { progress, wake };
    }
    Plan::Judge {
        spec: Box::new(spec),
        progress,
        intervals,
    }
}

/// The status as it compares after a round trip through the API: empty
/// objects (what server-side apply may leave of a removed nested object) are
/// dropped, so they equal an absent field.
pub fn canonical(status: Option<&CanaryAnalysisStatus>) -> serde_json::Value {
    fn prune(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, child| !prune(child));
                map.is_empty()
            }
            serde_json::Value::Array(items) => {
                for item in items.iter_mut() {
                    prune(item);
                }
                false
            }
            serde_json::Value::Null => true,
            _ => false,
        }
    }
    let mut value = serde_json::to_value(status).unwrap_or(serde_json::Value::Null);
    prune(&mut value);
    value
}

/// Whether the run goes on after an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    Finished(Phase),
}

/// Kayenta's early-end rule (orca's MonitorKayentaCanaryTask): an interval whose score is
/// at or below the marginal threshold ends the run as Failed. Inconclusive
/// judgements (no data, no traffic) are not evidence either way and never end
/// a run early.
pub fn ends_early(result: &JudgeResult) -> bool {
    result.band != Band::Inconclusive && result.score <= result.marginal_threshold
}

/// The verdict of the final judgement (the whole judged window).
pub fn verdict(result: &JudgeResult) -> Phase {
    match result.band {
        Band::Inconclusive => Phase::Inconclusive,
        _ if ends_early(result) => Phase::Failed,
        Band::Pass => Phase::Passed,
        Band::Marginal => Phase::Marginal,
        Band::Fail => Phase::Failed,
    }
}

fn band_name(band: Band) -> &'static str {
    match band {
        Band::Pass => "Pass",
        Band::Marginal => "Marginal",
        Band::Fail => "Fail",
        Band::Inconclusive => "Inconclusive",
    }
}

impl Progress {
    pub fn new(status: CanaryAnalysisStatus, now: DateTime<Utc>, limits: Limits) -> Self {
        Progress {
            status,
            notices: Vec::new(),
            now: truncate(now),
            limits,
        }
    }

    fn notice(&mut self, warning: bool, reason: &'static str, note: String) {
        self.notices.push(Notice {
            warning,
            reason,
            note,
        });
    }

    fn set_phase(&mut self, phase: Phase, message: String) {
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    fn set_window(&mut self, spec: &ResolvedSpec) {
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
    fn finish(&mut self, phase: Phase, message: String) {
        let warning = !matches!(phase, Phase::Passed);
        self.notice(warning, phase.as_str(), message.clone());
        self.set_phase(phase, message);
        self.status.completed_at = Some(to_time(self.now));
        self.status.source_failures = None;
        self.finalize();
    }

    /// Phase Error with `message`.
    pub fn fail_with_error(&mut self, reason: &'static str, message: String) {
        self.notice(true, reason, message.clone());
        self.set_phase(Phase::Error, message);
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
        self.notice(true, "MetricSourceUnreachable", message.clone());
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
            self.status.judgement = Some(Judgement {
                interval: Some(k),
                score: Some(r.score),
                band: Some(r.band),
                reason: Some(r.reason.clone()),
                confidence: Some(r.confidence),
                marginal_threshold: Some(r.marginal_threshold),
                pass_threshold: Some(r.pass_threshold),
            });
            let (metrics, omitted) = bound_metrics(r.metrics.clone(), MAX_METRICS_BYTES);
            self.status.metrics = metrics;
            self.status.metrics_omitted = (omitted > 0).then_some(omitted);
            self.status.groups = r.groups.clone();
        }
        self.notice(
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
                self.finish(Phase::Failed, message);
                Step::Finished(Phase::Failed)
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
                    Phase::Inconclusive,
                    format!("{NO_TRAFFIC_MESSAGE} in the last interval ({k}/{total})"),
                );
                Step::Finished(Phase::Inconclusive)
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
        let phase = self.status.phase.unwrap_or(Phase::Pending);
        let message = self.status.message.clone().unwrap_or_default();
        let reason = phase.as_str();
        let done = phase.is_terminal();
        let verdict = done && phase != Phase::Error;
        // kstatus reads Reconciling (in progress) and Stalled (failed);
        // Ready/Completed are for `kubectl wait` and humans.
        let wanted = [
            ("Ready", verdict, reason),
            ("Completed", done, reason),
            ("Reconciling", !done, reason),
            ("Stalled", phase == Phase::Error, reason),
        ];
        let previous = std::mem::take(&mut self.status.conditions);
        let generation = self.status.observed_generation;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::controller::testutil::{analysis, at};
    use proptest::prelude::{prop_assert, prop_assert_eq};
    use redblack_judge::{JudgeConfig, MetricConfig, MetricSamples, judge};
    use serde_json::json;

    fn result(score_pass: usize, fail: usize, marginal: f64) -> JudgeResult {
        // `score_pass` passing metrics and `fail` failing ones (canary 10x).
        let mut metrics = Vec::new();
        let mut samples = Vec::new();
        for i in 0..score_pass + fail {
            let name = format!("m{i}");
            metrics.push(MetricConfig::new(&name));
            let base: Vec<f64> = (0..60).map(|v| 100.0 + f64::from(v % 7)).collect();
            let canary: Vec<f64> = if i < score_pass {
                base.clone()
            } else {
                base.iter().map(|v| v * 10.0).collect()
            };
            samples.push(MetricSamples::continuous(&name, &canary, &base));
        }
        let mut config = JudgeConfig::new(metrics);
        config.score_thresholds.marginal = marginal;
        judge(&config, &samples).unwrap()
    }

    fn nodata_result() -> JudgeResult {
        judge(&JudgeConfig::new(vec![MetricConfig::new("m")]), &[]).unwrap()
    }

    fn run(ca: &CanaryAnalysis, now: i64) -> Plan {
        plan(ca, at(now), None, Limits::default())
    }

    fn settle(p: Plan) -> (CanaryAnalysisStatus, Option<DateTime<Utc>>) {
        match p {
            Plan::Settle { progress, wake } => (progress.status, wake),
            Plan::Judge { intervals, .. } => panic!("expected Settle, got Judge {intervals:?}"),
        }
    }

    fn judge_plan(p: Plan) -> (Box<ResolvedSpec>, Progress, Vec<u32>) {
        match p {
            Plan::Judge {
                spec,
                progress,
                intervals,
            } => (spec, progress, intervals),
            Plan::Settle { progress, .. } => {
                panic!("expected Judge, got Settle {:?}", progress.status)
            }
        }
    }

    fn with_status(mut ca: CanaryAnalysis, status: CanaryAnalysisStatus) -> CanaryAnalysis {
        ca.status = Some(status);
        ca
    }

    /// Runs the controller's decision loop with canned outcomes.
    fn drive(
        ca: &CanaryAnalysis,
        now: i64,
        outcome: impl Fn(u32) -> IntervalOutcome,
    ) -> (CanaryAnalysisStatus, Vec<Notice>) {
        match run(ca, now) {
            Plan::Settle { progress, .. } => (progress.status, progress.notices),
            Plan::Judge {
                spec,
                mut progress,
                intervals,
            } => {
                for k in intervals {
                    if let Step::Finished(_) = progress.record(&spec.schedule, k, outcome(k)) {
                        break;
                    }
                }
                (progress.status, progress.notices)
            }
        }
    }

    #[test]
    fn pending_then_running_then_due() {
        let ca = analysis(json!({"startTime": "2023-11-14T22:23:20Z"})); // at(600)
        let (status, wake) = settle(run(&ca, 0));
        assert_eq!(status.phase, Some(Phase::Pending));
        assert_eq!(wake, Some(at(600)));
        let ca = with_status(ca, status);
        let (status, wake) = settle(run(&ca, 610));
        assert_eq!(status.phase, Some(Phase::Running));
        assert_eq!(wake, Some(at(660)));
        assert_eq!(status.started_at, Some(to_time(at(610))));
        assert_eq!(status.interval_progress.as_deref(), Some("0/10"));
        let ca = with_status(ca, status);
        let (_, _, due) = judge_plan(run(&ca, 725));
        assert_eq!(due, vec![1, 2]);
    }

    #[test]
    fn nothing_due_writes_the_same_status() {
        let ca = analysis(json!({}));
        let (status, _) = settle(run(&ca, 10));
        let ca = with_status(ca, status.clone());
        for now in [11, 30, 59] {
            let (again, wake) = settle(run(&ca, now));
            assert_eq!(again, status, "status changed at {now}");
            assert_eq!(wake, Some(at(60)));
        }
    }

    #[test]
    fn determinism_same_input_same_status() {
        let ca = analysis(json!({}));
        let a = drive(&ca, 1_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
        let b = drive(&ca, 1_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
        assert_eq!(a, b);
        assert_eq!(a.0.phase, Some(Phase::Passed));
        // A terminal status is left alone, whatever the clock says.
        let done = with_status(ca, a.0.clone());
        let (again, wake) = settle(run(&done, 5_000));
        assert_eq!(again, a.0);
        assert_eq!(wake, None);
    }

    #[test]
    fn retrospective_judges_everything_at_once() {
        let ca = analysis(json!({"warmup": "2m"}));
        let (spec, _, due) = judge_plan(run(&ca, 100_000));
        assert_eq!(due, (1..=8).collect::<Vec<_>>());
        assert_eq!(spec.schedule.judged_window(8), (at(120), at(600)));
        let (status, notices) = drive(&ca, 100_000, |_| {
            IntervalOutcome::Judged(result(4, 0, 75.0))
        });
        assert_eq!(status.phase, Some(Phase::Passed));
        assert_eq!(status.completed_intervals, 8);
        assert_eq!(status.interval_progress.as_deref(), Some("8/8"));
        assert_eq!(status.completed_at, Some(to_time(at(100_000))));
        assert_eq!(notices.last().map(|n| n.reason), Some("Passed"));
    }

    /// (scores per interval as (pass, fail) metric counts) -> phase, intervals judged
    #[test]
    fn early_end_and_verdict_rules() {
        type Row = (&'static str, fn(u32) -> IntervalOutcome, Phase, u32);
        let rows: [Row; 7] = [
            (
                "all pass",
                |_| IntervalOutcome::Judged(result(4, 0, 75.0)),
                Phase::Passed,
                10,
            ),
            // 2/3 = 66.7 <= 75: fails in the first interval.
            (
                "fail ends early",
                |_| IntervalOutcome::Judged(result(2, 1, 75.0)),
                Phase::Failed,
                1,
            ),
            (
                "fail at 4",
                |k| {
                    IntervalOutcome::Judged(if k < 4 {
                        result(4, 0, 75.0)
                    } else {
                        result(1, 3, 75.0)
                    })
                },
                Phase::Failed,
                4,
            ),
            // 4/5 = 80: Marginal band, above the marginal threshold: runs to the end.
            (
                "marginal",
                |_| IntervalOutcome::Judged(result(4, 1, 75.0)),
                Phase::Marginal,
                10,
            ),
            // Exactly at the marginal threshold: Kayenta's <= ends the run.
            (
                "at threshold",
                |_| IntervalOutcome::Judged(result(4, 1, 80.0)),
                Phase::Failed,
                1,
            ),
            (
                "no traffic",
                |_| IntervalOutcome::NoTraffic,
                Phase::Inconclusive,
                10,
            ),
            (
                "nodata",
                |_| IntervalOutcome::Judged(nodata_result()),
                Phase::Inconclusive,
                10,
            ),
        ];
        for (name, outcome, phase, judged) in rows {
            let (status, _) = drive(&analysis(json!({})), 10_000, outcome);
            assert_eq!(status.phase, Some(phase), "{name}: {:?}", status.message);
            assert_eq!(status.completed_intervals, judged, "{name}");
        }
    }

    #[test]
    fn no_traffic_message_and_recovery() {
        let (status, _) = drive(&analysis(json!({})), 10_000, |_| IntervalOutcome::NoTraffic);
        assert!(
            status
                .message
                .as_deref()
                .unwrap()
                .contains("canary received no traffic")
        );
        assert_eq!(
            status.intervals[0].inconclusive_reason.as_deref(),
            Some(NO_TRAFFIC_MESSAGE)
        );
        assert_eq!(status.intervals[0].score, None);
        // Traffic arrives later: the final judgement decides.
        let (status, _) = drive(&analysis(json!({})), 10_000, |k| {
            if k < 3 {
                IntervalOutcome::NoTraffic
            } else {
                IntervalOutcome::Judged(result(3, 0, 75.0))
            }
        });
        assert_eq!(status.phase, Some(Phase::Passed));
        assert_eq!(status.aggregate.as_ref().unwrap().inconclusive, 2);
    }

    #[test]
    fn intervals_are_bounded_with_an_aggregate() {
        let ca = analysis(json!({"lifetime": "1h", "interval": "1m"}));
        let (status, _) = drive(&ca, 10_000, |k| {
            IntervalOutcome::Judged(if k % 2 == 0 {
                result(4, 1, 75.0)
            } else {
                result(4, 0, 75.0)
            })
        });
        assert_eq!(status.completed_intervals, 60);
        assert_eq!(status.intervals.len(), 20);
        assert_eq!(status.intervals.first().unwrap().index, 41);
        assert_eq!(status.intervals.last().unwrap().index, 60);
        let agg = status.aggregate.unwrap();
        assert_eq!(
            (agg.judged, agg.pass, agg.marginal, agg.scored),
            (60, 30, 30, 60)
        );
        assert_eq!(agg.min_score, Some(80.0));
        assert_eq!(status.phase, Some(Phase::Marginal));
    }

    #[test]
    fn restart_continues_from_status() {
        let ca = analysis(json!({}));
        // Operator judged 3 intervals, then died; at 400s intervals 4..6 are due.
        let (status, _) = drive(&ca, 200, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
        assert_eq!(status.completed_intervals, 3);
        let ca = with_status(ca, status);
        let (_, _, due) = judge_plan(run(&ca, 400));
        assert_eq!(due, vec![4, 5, 6]);
    }

    #[test]
    fn spec_change_starts_over() {
        let ca = analysis(json!({}));
        let (status, _) = drive(&ca, 10_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
        let mut ca = with_status(ca, status);
        ca.metadata.generation = Some(2);
        let (_, progress, due) = judge_plan(run(&ca, 10_000));
        assert_eq!(due.len(), 10);
        assert_eq!(progress.status.completed_intervals, 0);
        assert_eq!(progress.status.observed_generation, Some(2));
        assert!(progress.notices.iter().any(|n| n.reason == "SpecChanged"));
    }

    #[test]
    fn invalid_spec_is_an_error_naming_the_field() {
        let ca = analysis(json!({"interval": "soon"}));
        let (status, wake) = settle(run(&ca, 100));
        assert_eq!(status.phase, Some(Phase::Error));
        assert!(
            status.message.as_deref().unwrap().contains("spec.interval"),
            "{:?}",
            status.message
        );
        assert_eq!(wake, None);
        let stalled = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(stalled.status, "True");
    }

    #[test]
    fn unreachable_source_retries_with_backoff_then_errors() {
        let limits = Limits {
            max_source_attempts: 3,
            ..Limits::default()
        };
        let mut ca = analysis(json!({}));
        let mut now = 100;
        for attempt in 1..=3u32 {
            let Plan::Judge { mut progress, .. } = plan(&ca, at(now), None, limits) else {
                panic!("attempt {attempt}: expected a judgement");
            };
            let wake = progress.source_unreachable("http://p:9090", "connection refused");
            let status = progress.status;
            if attempt < 3 {
                let wait = 10 * 2i64.pow(attempt - 1);
                assert_eq!(wake, Some(at(now + wait)));
                assert_eq!(status.phase, Some(Phase::Running));
                assert!(
                    status
                        .message
                        .as_deref()
                        .unwrap()
                        .contains(&format!("attempt {attempt} of 3"))
                );
                ca = with_status(ca, status);
                // Woken early (e.g. by our own status write): wait, write nothing new.
                let (same, w) = settle(plan(&ca, at(now + 1), None, limits));
                assert_eq!(Some(&same), ca.status.as_ref());
                assert_eq!(w, Some(at(now + wait)));
                now += wait;
            } else {
                assert_eq!(wake, None);
                assert_eq!(status.phase, Some(Phase::Error));
                assert!(
                    status
                        .message
                        .as_deref()
                        .unwrap()
                        .starts_with("prometheus at http://p:9090 unreachable: connection refused"),
                    "{:?}",
                    status.message
                );
            }
        }
    }

    #[test]
    fn conditions_keep_transition_times() {
        let ca = analysis(json!({}));
        let (status, _) = settle(run(&ca, 10));
        let ready = |s: &CanaryAnalysisStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&status).status, "False");
        assert_eq!(ready(&status).last_transition_time, to_time(at(10)));
        let ca = with_status(ca, status);
        let (status, _) = drive(&ca, 70, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
        assert_eq!(status.completed_intervals, 1);
        assert_eq!(
            ready(&status).last_transition_time,
            to_time(at(10)),
            "unchanged status keeps its time"
        );
        let ca = with_status(ca, status);
        let (status, _) = drive(&ca, 10_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
        assert_eq!(ready(&status).status, "True");
        assert_eq!(ready(&status).reason, "Passed");
        assert_eq!(ready(&status).last_transition_time, to_time(at(10_000)));
    }

    #[test]
    fn interval_events_are_collapsed() {
        let ca = analysis(json!({"lifetime": "1h", "interval": "1m"}));
        let (_, notices) = drive(&ca, 100_000, |_| {
            IntervalOutcome::Judged(result(3, 0, 75.0))
        });
        assert_eq!(
            notices
                .iter()
                .filter(|n| n.reason == "IntervalJudged")
                .count(),
            60
        );
        let collapsed = collapse_notices(notices);
        let judged: Vec<&str> = collapsed
            .iter()
            .filter(|n| n.reason == "IntervalJudged")
            .map(|n| n.note.as_str())
            .collect();
        assert_eq!(judged.len(), 4, "{judged:?}");
        assert!(judged[0].starts_with("interval 1/60"));
        assert!(judged[2].contains("57 more intervals"));
        assert!(judged[3].starts_with("interval 60/60"));
        assert_eq!(collapsed.first().map(|n| n.reason), Some("Started"));
        assert_eq!(collapsed.last().map(|n| n.reason), Some("Passed"));
    }

    #[test]
    fn metrics_are_bounded_keeping_failures() {
        // 2000 metrics, every 10th one failing.
        let base: Vec<f64> = (0..60).map(|v| 100.0 + f64::from(v % 7)).collect();
        let slow: Vec<f64> = base.iter().map(|v| v * 10.0).collect();
        let mut metrics = Vec::new();
        let mut samples = Vec::new();
        for i in 0..2000 {
            let name = format!("m{i}");
            metrics.push(MetricConfig::new(&name));
            let canary = if i % 10 == 0 { &slow } else { &base };
            samples.push(MetricSamples::continuous(&name, canary, &base));
        }
        let r = judge(&JudgeConfig::new(metrics), &samples).unwrap();
        let (kept, omitted) = bound_metrics(r.metrics.clone(), MAX_METRICS_BYTES);
        let bytes = serde_json::to_vec(&kept).unwrap().len();
        assert!(bytes <= MAX_METRICS_BYTES + 2, "{bytes}");
        assert!(omitted > 0);
        assert_eq!(kept.len() + omitted as usize, 2000);
        let failing = kept
            .iter()
            .filter(|m| m.classification == Classification::High)
            .count();
        assert_eq!(failing, 200, "every failure is kept");
        // Config order among the kept ones.
        let names: Vec<usize> = kept.iter().map(|m| m.name[1..].parse().unwrap()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        // Small sets are untouched.
        let (small, none) = bound_metrics(r.metrics[..10].to_vec(), MAX_METRICS_BYTES);
        assert_eq!((small.len(), none), (10, 0));
    }

    /// Timestamps that record when a reconcile happened differ between runs.
    fn strip_times(mut s: CanaryAnalysisStatus) -> CanaryAnalysisStatus {
        s.started_at = None;
        s.completed_at = None;
        for c in &mut s.conditions {
            c.last_transition_time = to_time(at(0));
        }
        s
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// However the reconciles fall in time (operator restarts, late or
        /// early wake-ups), the run ends in the status a single retrospective
        /// pass produces; and the status stays within its bounds throughout.
        #[test]
        fn split_runs_match_a_retrospective_run(
            lifetime in 1u32..=40,
            interval in 1u32..=5,
            kinds in proptest::collection::vec(0u8..4, 40),
            mut wakes in proptest::collection::vec(0i64..3_000, 0..10),
        ) {
            let results = [result(4, 0, 75.0), result(4, 1, 75.0), result(1, 1, 75.0)];
            let outcome = |k: u32| match kinds[(k as usize - 1) % kinds.len()] {
                3 => IntervalOutcome::NoTraffic,
                kind => IntervalOutcome::Judged(results[kind as usize].clone()),
            };
            let ca = analysis(json!({"lifetime": format!("{lifetime}m"), "interval": format!("{interval}m")}));
            let (once, _) = drive(&ca, 100_000, outcome);
            prop_assert!(once.phase.is_some_and(Phase::is_terminal));

            wakes.sort();
            wakes.push(100_000);
            let mut split = ca.clone();
            for t in wakes {
                let (status, _) = drive(&split, t, outcome);
                let total = status.total_intervals;
                prop_assert!(status.completed_intervals <= total);
                prop_assert!(status.intervals.len() <= 20);
                prop_assert_eq!(status.aggregate.as_ref().map_or(0, |a| a.judged), status.completed_intervals);
                let indexes: Vec<u32> = status.intervals.iter().map(|i| i.index).collect();
                let first = status.completed_intervals.saturating_sub(indexes.len() as u32) + 1;
                prop_assert_eq!(indexes, (first..=status.completed_intervals).collect::<Vec<_>>());
                split.status = Some(status);
            }
            let split = split.status.unwrap();
            prop_assert_eq!(strip_times(split), strip_times(once));
        }
    }
}
