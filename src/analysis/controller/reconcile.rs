//! The imperative shell: runs the queries the pure plan asks for, judges,
//! writes the status (server-side apply, one field manager, only when it
//! changed) and publishes the events that go with it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::AnalysisContext;
use super::bounds::collapse_events;
use super::canonical::canonical;
use super::plan::{AnalysisPlan, plan};
use super::progress::{IntervalOutcome, Progress, Step};
use super::spec::{MetricQueries, ResolvedSpec};
use crate::analysis::query::{QueryTemplate, Scope, TemplateError};
use crate::analysis::source::{MetricSource, Samples, SourceError};
use crate::analysis::traffic_check::{Traffic, TrafficCheck, TrafficCheckError};
use crate::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisStatus, GROUP, VERSION};
use crate::runtime::field_manager::ANALYSIS_FIELD_MANAGER;
use crate::runtime::metrics::{ErrorKind, ReconcileGuard, count_writes};
use redblack_judge::{self as judge, Counts, JudgeError, MetricSamples, Side};

/// Why a reconcile failed (it is retried after `error_requeue`).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisReconcileError {
    #[error("CanaryAnalysis {0} has no namespace")]
    NoNamespace(String),
    #[error("cannot write the status of {name}: {source}")]
    WriteStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ErrorKind for AnalysisReconcileError {
    fn kind(&self) -> &'static str {
        match self {
            AnalysisReconcileError::NoNamespace(_) => "no_namespace",
            AnalysisReconcileError::WriteStatus { .. } => "write_status",
        }
    }
}

/// Why one interval could not be judged.
#[derive(Debug)]
enum IntervalError {
    Source {
        field: String,
        scope: &'static str,
        error: SourceError,
    },
    Template {
        field: String,
        error: TemplateError,
    },
    Judge(JudgeError),
}

/// Slack added to boundary wake-ups, so the boundary has surely passed.
const WAKE_SLACK: Duration = Duration::from_millis(200);

/// Reconciles one CanaryAnalysis.
pub async fn reconcile(
    ca: Arc<CanaryAnalysis>,
    ctx: Arc<AnalysisContext>,
) -> Result<Action, AnalysisReconcileError> {
    let span = tracing::info_span!(
        "reconcile",
        controller = super::CONTROLLER_NAME,
        namespace = ca.namespace().as_deref().unwrap_or(""),
        name = %ca.name_any(),
        generation = ca.metadata.generation,
    );
    let guard = ReconcileGuard::start(ctx.metrics.as_ref(), super::CONTROLLER_NAME);
    let result = reconcile_inner(&ca, &ctx).instrument(span).await;
    guard.outcome(&result);
    if result.is_ok() {
        ctx.backoff.succeeded(&backoff_key(&ca));
    }
    result
}

/// Requeue after an error (the shared [`ErrorBackoff`](crate::runtime::backoff::ErrorBackoff));
/// the status is untouched so the next attempt redoes the same work.
pub fn error_policy(
    ca: Arc<CanaryAnalysis>,
    error: &AnalysisReconcileError,
    ctx: Arc<AnalysisContext>,
) -> Action {
    let (failures, delay) = ctx.backoff.failed(backoff_key(&ca));
    tracing::warn!(name = %ca.name_any(), %error, failures, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// The key of an analysis's failure count: its uid, else its name.
fn backoff_key(ca: &CanaryAnalysis) -> String {
    ca.uid().unwrap_or_else(|| ca.name_any())
}

async fn reconcile_inner(
    ca: &CanaryAnalysis,
    ctx: &AnalysisContext,
) -> Result<Action, AnalysisReconcileError> {
    let name = ca.name_any();
    let namespace = ca
        .namespace()
        .ok_or_else(|| AnalysisReconcileError::NoNamespace(name.clone()))?;
    let now = (ctx.clock)();
    let planned = plan(
        ca,
        now,
        ctx.config.default_prometheus_url.as_deref(),
        ctx.config.limits,
    );
    let (progress, wake) = match planned {
        AnalysisPlan::Settle { progress, wake } => (progress, wake),
        AnalysisPlan::Judge {
            spec,
            mut progress,
            intervals,
        } => {
            tracing::info!(?intervals, "judging");
            let wake = judge_intervals(ctx, &spec, &mut progress, &intervals).await;
            (progress, wake)
        }
    };

    let mut progress = progress;
    ensure_decodable(&mut progress);
    if canonical(ca.status.as_ref()) != canonical(Some(&progress.status)) {
        write_status(ctx, &namespace, &name, &progress.status).await?;
        tracing::info!(
            phase = ?progress.status.phase,
            intervals = ?progress.status.interval_progress,
            score = ?progress.status.score,
            message = progress.status.message.as_deref().unwrap_or(""),
            "status written"
        );
        let events = collapse_events(progress.events.clone());
        ctx.events.publish(&ca.object_ref(&()), &events).await;
    } else {
        tracing::debug!("nothing changed; no write");
    }

    Ok(match wake {
        Some(at) => {
            let wait = (at - (ctx.clock)()).to_std().unwrap_or(Duration::ZERO) + WAKE_SLACK;
            tracing::debug!(wake = %at, ?wait, "requeue at the next boundary");
            Action::requeue(wait)
        }
        None => Action::await_change(),
    })
}

/// A status that would not decode after the round trip through the API (a
/// non-finite number where a number is required) would make the object
/// unreadable for every watcher: refuse it, keep the verdict-free parts and
/// say why. The judge promises finite numbers; this is the guard if it fails.
fn ensure_decodable(progress: &mut Progress) {
    let encoded = serde_json::to_value(&progress.status).map_err(|e| e.to_string());
    let decoded = encoded
        .and_then(|v| serde_json::from_value::<CanaryAnalysisStatus>(v).map_err(|e| e.to_string()));
    if let Err(error) = decoded {
        tracing::error!(%error, "the status does not survive JSON encoding");
        progress.status.metrics.clear();
        progress.status.groups.clear();
        progress.status.judgement = None;
        progress.status.score = None;
        progress
            .status
            .intervals
            .retain(|i| i.score.is_none_or(f64::is_finite));
        progress.status.aggregate = None;
        progress.fail_with_error(
            "JudgeFailed",
            format!("internal error: the judgement could not be encoded ({error})"),
        );
    }
}

async fn write_status(
    ctx: &AnalysisContext,
    namespace: &str,
    name: &str,
    status: &CanaryAnalysisStatus,
) -> Result<(), AnalysisReconcileError> {
    let api: Api<CanaryAnalysis> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "CanaryAnalysis",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(ANALYSIS_FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| AnalysisReconcileError::WriteStatus {
        name: name.to_owned(),
        source,
    })?;
    count_writes(ctx.metrics.as_ref(), super::CONTROLLER_NAME, 1);
    Ok(())
}

/// Judges `intervals` in order; returns when to come back.
///
/// Every metric is fetched once, over the cumulative window of the last due
/// interval; each interval's judgement takes the prefix of those points up to
/// its own boundary. A range query evaluates at `start + i·step`, so the
/// prefix is exactly what a query ending at that boundary returns — and a
/// retrospective analysis of N intervals costs one query per metric and scope
/// instead of N.
async fn judge_intervals(
    ctx: &AnalysisContext,
    spec: &ResolvedSpec,
    progress: &mut Progress,
    intervals: &[u32],
) -> Option<DateTime<Utc>> {
    let source = match (ctx.sources)(&spec.prometheus_url) {
        Ok(source) => source,
        Err(error) => {
            progress.fail_with_error("InvalidSpec", format!("spec.prometheus.url: {error}"));
            return None;
        }
    };
    let last = *intervals.last()?;
    let (from, to) = spec.schedule.judged_window(last);
    let window = Window {
        source: source.as_ref(),
        from,
        to,
        step: spec.step,
    };
    // Fetched lazily: an analysis whose canary gets no traffic queries nothing else.
    let mut fetched: Option<Vec<Fetched>> = None;
    for &k in intervals {
        let outcome = match traffic(spec, source.as_ref(), k).await {
            Ok(Traffic::NoTraffic) => Ok(IntervalOutcome::NoTraffic),
            Ok(Traffic::Received { .. }) => {
                if fetched.is_none() {
                    match fetch_all(ctx, spec, &window).await {
                        Ok(points) => fetched = Some(points),
                        Err(error) => return fail(spec, progress, k, error),
                    }
                }
                judge_interval(spec, fetched.as_deref().unwrap_or_default(), k)
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(outcome) => {
                if let Step::Finished(phase) = progress.record(&spec.schedule, k, outcome) {
                    tracing::info!(interval = k, %phase, "analysis finished");
                    return None;
                }
            }
            Err(error) => return fail(spec, progress, k, error),
        }
    }
    spec.schedule
        .next_wake(progress.status.completed_intervals, progress.now)
}

async fn fetch_all(
    ctx: &AnalysisContext,
    spec: &ResolvedSpec,
    window: &Window<'_>,
) -> Result<Vec<Fetched>, IntervalError> {
    let count = spec.judge.metrics.len().min(spec.queries.len());
    futures::stream::iter(0..count)
        .map(|i| fetch_metric(window, spec, i))
        .buffered(ctx.config.query_concurrency.max(1))
        .try_collect()
        .await
}

/// Folds a failure into the status; returns when to come back (retries only).
fn fail(
    spec: &ResolvedSpec,
    progress: &mut Progress,
    k: u32,
    error: IntervalError,
) -> Option<DateTime<Utc>> {
    match error {
        IntervalError::Source { error, .. } if error.is_transient() => {
            let cause = match &error {
                SourceError::Unreachable { cause, .. } => cause.clone(),
                other => other.to_string(),
            };
            tracing::warn!(interval = k, %error, "metric source unavailable");
            progress.source_unreachable(&spec.prometheus_url, &cause)
        }
        IntervalError::Source {
            field,
            scope,
            error,
        } => {
            progress.query_error(&field, scope, &error.to_string());
            None
        }
        IntervalError::Template { field, error } => {
            progress.fail_with_error("InvalidSpec", format!("{field}: {error}"));
            None
        }
        IntervalError::Judge(error) => {
            progress.fail_with_error("JudgeFailed", error.to_string());
            None
        }
    }
}

/// The traffic check of interval `k`; `Received` when no traffic query is configured.
async fn traffic(
    spec: &ResolvedSpec,
    source: &dyn MetricSource,
    k: u32,
) -> Result<Traffic, IntervalError> {
    let Some(template) = &spec.traffic else {
        return Ok(Traffic::Received { total: f64::NAN });
    };
    let (interval_start, interval_end) = spec.schedule.interval_bounds(k);
    let (interval_start, interval_end) = (
        interval_start - spec.experiment_shift,
        interval_end - spec.experiment_shift,
    );
    let check = TrafficCheck::new(template.clone());
    match check
        .check(source, &spec.experiment, interval_start, interval_end)
        .await
    {
        Ok(traffic) => {
            tracing::debug!(interval = k, ?traffic, "traffic check");
            Ok(traffic)
        }
        Err(TrafficCheckError::Source(error)) => Err(IntervalError::Source {
            field: "spec.traffic".into(),
            scope: "experiment",
            error,
        }),
        Err(TrafficCheckError::Template(error)) => Err(IntervalError::Template {
            field: "spec.traffic".into(),
            error,
        }),
        // Cannot happen (intervals are at least 1s long); judge the interval.
        Err(TrafficCheckError::EmptyInterval { .. }) => Ok(Traffic::Received { total: f64::NAN }),
    }
}

/// The judge over the fetched points up to the end of interval `k`.
fn judge_interval(
    spec: &ResolvedSpec,
    fetched: &[Fetched],
    k: u32,
) -> Result<IntervalOutcome, IntervalError> {
    let (_, until) = spec.schedule.judged_window(k);
    let samples: Vec<MetricSamples> = fetched.iter().map(|f| f.until(until)).collect();
    let result = judge::judge(&spec.judge, &samples).map_err(IntervalError::Judge)?;
    tracing::info!(interval = k, score = result.score, band = ?result.band, "interval judged");
    Ok(IntervalOutcome::Judged(result))
}

struct Window<'a> {
    source: &'a dyn MetricSource,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
}

impl Window<'_> {
    async fn query(
        &self,
        template: &QueryTemplate,
        side: &Sided<'_>,
        field: &str,
    ) -> Result<Samples, IntervalError> {
        let query =
            template
                .render(side.scope, self.step)
                .map_err(|error| IntervalError::Template {
                    field: field.to_owned(),
                    error,
                })?;
        let scope_name = side.name;
        self.source
            .query_range(
                &query,
                self.from - side.shift,
                self.to - side.shift,
                self.step,
            )
            .await
            .map_err(|error| IntervalError::Source {
                field: field.to_owned(),
                scope: scope_name,
                error,
            })
    }
}

/// One scope and how far back its window is shifted.
struct Sided<'a> {
    scope: &'a Scope,
    shift: TimeDelta,
    name: &'static str,
}

/// The raw points of one metric, both scopes.
enum Points {
    Continuous {
        canary: Samples,
        baseline: Samples,
    },
    Rate {
        canary: (Samples, Samples),
        baseline: (Samples, Samples),
    },
}

struct Fetched {
    name: String,
    points: Points,
    canary_shift: TimeDelta,
    baseline_shift: TimeDelta,
}

fn until(samples: &Samples, end: DateTime<Utc>) -> Samples {
    Samples::new(
        samples
            .points
            .iter()
            .take_while(|p| p.timestamp <= end)
            .copied()
            .collect(),
    )
}

impl Fetched {
    /// The judge's input for a window ending at `end`.
    /// (Each side's points are cut at `end` moved back by its shift.)
    fn until(&self, end: DateTime<Utc>) -> MetricSamples {
        let (c, b) = (end - self.canary_shift, end - self.baseline_shift);
        let (canary, baseline) = match &self.points {
            Points::Continuous { canary, baseline } => {
                (values(&until(canary, c)), values(&until(baseline, b)))
            }
            Points::Rate { canary, baseline } => (
                Side::Counts(align(&until(&canary.0, c), &until(&canary.1, c))),
                Side::Counts(align(&until(&baseline.0, b), &until(&baseline.1, b))),
            ),
        };
        MetricSamples {
            name: self.name.clone(),
            canary,
            baseline,
        }
    }
}

async fn fetch_metric(
    window: &Window<'_>,
    spec: &ResolvedSpec,
    i: usize,
) -> Result<Fetched, IntervalError> {
    let (metric, queries) = (&spec.judge.metrics[i], &spec.queries[i]);
    let field = |f: &str| format!("spec.metrics[{i}].{f}");
    let experiment = Sided {
        scope: &spec.experiment,
        shift: spec.experiment_shift,
        name: "experiment",
    };
    let control = Sided {
        scope: &spec.control,
        shift: spec.control_shift,
        name: "control",
    };
    let points = match queries {
        MetricQueries::Continuous(q) => {
            let f = field("query");
            let (canary, baseline) = futures::try_join!(
                window.query(q, &experiment, &f),
                window.query(q, &control, &f),
            )?;
            Points::Continuous { canary, baseline }
        }
        MetricQueries::Rate {
            numerator,
            denominator,
        } => {
            let (fnum, fden) = (field("numerator"), field("denominator"));
            let (cn, cd, bn, bd) = futures::try_join!(
                window.query(numerator, &experiment, &fnum),
                window.query(denominator, &experiment, &fden),
                window.query(numerator, &control, &fnum),
                window.query(denominator, &control, &fden),
            )?;
            Points::Rate {
                canary: (cn, cd),
                baseline: (bn, bd),
            }
        }
    };
    Ok(Fetched {
        name: metric.name.clone(),
        points,
        canary_shift: spec.experiment_shift,
        baseline_shift: spec.control_shift,
    })
}

fn values(samples: &Samples) -> Side {
    Side::Values(samples.points.iter().map(|p| Some(p.value)).collect())
}

/// Pairs numerator and denominator points by timestamp. A numerator missing
/// where the denominator has a point counts 0: Prometheus has no series for
/// an error counter until the first error, so "no errors yet" looks like no
/// data (a baseline without errors would otherwise lose every point). A
/// denominator missing is a gap (null), which the metric's NaN strategy handles.
pub fn align(numerator: &Samples, denominator: &Samples) -> Counts {
    let mut times: Vec<DateTime<Utc>> = numerator
        .points
        .iter()
        .chain(&denominator.points)
        .map(|p| p.timestamp)
        .collect();
    times.sort();
    times.dedup();
    let at =
        |s: &Samples, t: DateTime<Utc>| s.points.iter().find(|p| p.timestamp == t).map(|p| p.value);
    let denominator: Vec<Option<f64>> = times.iter().map(|t| at(denominator, *t)).collect();
    let numerator = times
        .iter()
        .zip(&denominator)
        .map(|(t, d)| at(numerator, *t).or(d.map(|_| 0.0)))
        .collect();
    Counts {
        numerator,
        denominator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::source::Sample;

    fn s(points: &[(i64, f64)]) -> Samples {
        Samples::new(
            points
                .iter()
                .map(|(t, v)| Sample {
                    timestamp: DateTime::from_timestamp(*t, 0).unwrap(),
                    value: *v,
                })
                .collect(),
        )
    }

    #[test]
    fn align_pairs_by_timestamp() {
        let c = align(
            &s(&[(10, 1.0), (20, 2.0), (30, 3.0)]),
            &s(&[(0, 5.0), (10, 10.0), (20, 20.0)]),
        );
        // No error series yet at 0 (counts 0); no denominator at 30 (a gap).
        assert_eq!(
            c.numerator,
            vec![Some(0.0), Some(1.0), Some(2.0), Some(3.0)]
        );
        assert_eq!(c.denominator, vec![Some(5.0), Some(10.0), Some(20.0), None]);
        let empty = align(&s(&[]), &s(&[]));
        assert!(empty.numerator.is_empty() && empty.denominator.is_empty());
    }

    #[test]
    fn a_status_with_a_non_finite_number_becomes_an_error() {
        use redblack_judge::{JudgeConfig, MetricConfig, MetricSamples, judge};
        let r = judge(
            &JudgeConfig::new(vec![MetricConfig::new("m")]),
            &[MetricSamples::continuous(
                "m",
                &[1.0, 2.0, 3.0],
                &[1.0, 2.0, 4.0],
            )],
        )
        .unwrap();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut ok = Progress::new(CanaryAnalysisStatus::default(), now, Default::default());
        ok.status.metrics = r.metrics.clone();
        let before = ok.status.clone();
        ensure_decodable(&mut ok);
        assert_eq!(ok.status, before, "a finite status is left alone");

        let mut bad = ok.clone();
        bad.status.metrics[0].canary_count = 3;
        bad.status.groups = r.groups.clone();
        bad.status.groups[0].weight = f64::NAN;
        ensure_decodable(&mut bad);
        assert_eq!(
            bad.status.phase,
            Some(crate::api::canary_analysis::CanaryAnalysisPhase::Error)
        );
        assert!(bad.status.groups.is_empty() && bad.status.metrics.is_empty());
        assert!(
            bad.status
                .message
                .as_deref()
                .unwrap()
                .contains("could not be encoded")
        );
    }
}
