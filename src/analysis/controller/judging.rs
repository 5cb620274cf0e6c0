//! The I/O of judging: for the intervals the plan says are due, checks the
//! experiment's traffic, fetches every metric once (one range query per
//! metric and scope), runs the judge per interval and folds each outcome
//! (or failure) into the [`Progress`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};

use super::AnalysisContext;
use super::progress::{IntervalOutcome, Progress, Step};
use super::spec::{MetricQueries, ResolvedSpec};
use super::verdict::ends_early;
use crate::analysis::query::{QueryTemplate, Scope, TemplateError};
use crate::analysis::source::{MetricSource, Samples, SourceError};
use crate::analysis::traffic_check::{Traffic, TrafficCheck, TrafficCheckError};
use redblack_judge::{self as judge, Counts, JudgeError, MetricSamples, Side};

/// [`super::early_pass::passes_early`] for this spec.
fn passes_early(
    spec: &ResolvedSpec,
    at: DateTime<Utc>,
    result: &judge::JudgeResult,
) -> Option<super::early_pass::EarlyPassed> {
    let step = TimeDelta::from_std(spec.step).ok()?;
    super::early_pass::passes_early(spec.early_pass_after, &spec.schedule, step, at, result)
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

/// Judges `intervals` in order; returns when to come back.
///
/// Every metric is fetched once, over the cumulative window of the last due
/// interval; each interval's judgement takes the prefix of those points up to
/// its own boundary. A range query evaluates at `start + i·step`, so the
/// prefix is exactly what a query ending at that boundary returns — and a
/// retrospective analysis of N intervals costs one query per metric and scope
/// instead of N.
pub(super) async fn judge_intervals(
    ctx: &AnalysisContext,
    namespace: &str,
    spec: &ResolvedSpec,
    progress: &mut Progress,
    intervals: &[u32],
) -> Option<DateTime<Utc>> {
    let source = match open_source(ctx, namespace, spec).await {
        Ok((source, insecure)) => {
            progress.set_insecure_endpoint(insecure);
            source
        }
        Err((reason, message)) => {
            progress.fail_with_error(reason, message);
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
                // The boundary's judgement may pass the analysis early too.
                let (_, until) = spec.schedule.judged_window(k);
                let early = match &outcome {
                    IntervalOutcome::Judged(r) => passes_early(spec, until, r),
                    IntervalOutcome::NoTraffic => None,
                };
                if let Step::Finished(phase) = progress.record(&spec.schedule, k, outcome) {
                    tracing::info!(interval = k, %phase, "analysis finished");
                    return None;
                }
                if let Some(passed) = early {
                    tracing::info!(interval = k, step = passed.crossed_at_step, "passed early");
                    progress.passed_early(&spec.schedule, until, None, &passed);
                    return None;
                }
            }
            Err(error) => return fail(spec, progress, k, error),
        }
    }
    let boundary = spec
        .schedule
        .next_wake(progress.status.completed_intervals, progress.now);
    // Sequential mode looks at every step between the boundaries.
    match super::plan::look_at(spec, progress.now) {
        Some(at) if spec.judge.mode == judge::JudgeMode::Sequential => {
            super::plan::next_look(spec, at, boundary)
        }
        _ => boundary,
    }
}

/// `mode: sequential`, between interval boundaries: judges the window up to
/// the step point `at` and ends the run Failed if the evidence crossed, or
/// Passed if it allows an early pass (`spec.earlyPass`).
/// Returns when to look next. A look that cannot query or judge changes
/// nothing: the next interval boundary queries again and reports (retries,
/// Error) as in the fixed mode.
pub(super) async fn look(
    ctx: &AnalysisContext,
    namespace: &str,
    spec: &ResolvedSpec,
    progress: &mut Progress,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let boundary = spec
        .schedule
        .next_wake(progress.status.completed_intervals, progress.now);
    let next = super::plan::next_look(spec, at, boundary);
    let source = match open_source(ctx, namespace, spec).await {
        Ok((source, _)) => source,
        Err(_) => return boundary,
    };
    let window = Window {
        source: source.as_ref(),
        from: spec.schedule.judged_from,
        to: at,
        step: spec.step,
    };
    let fetched = match fetch_all(ctx, spec, &window).await {
        Ok(fetched) => fetched,
        Err(error) => {
            tracing::debug!(?error, %at, "sequential look: query failed; the boundary will retry");
            return next;
        }
    };
    let samples: Vec<MetricSamples> = fetched.iter().map(|f| f.until(at)).collect();
    match judge::judge(&spec.judge, &samples) {
        Ok(result) if ends_early(&result) => {
            tracing::info!(%at, score = result.score, "sequential test crossed");
            progress.look_failed(&spec.schedule, at, &result);
            None
        }
        Ok(result) => match passes_early(spec, at, &result) {
            Some(passed) => {
                tracing::info!(%at, step = passed.crossed_at_step, "passed early");
                progress.passed_early(&spec.schedule, at, Some(&result), &passed);
                None
            }
            None => next,
        },
        Err(error) => {
            tracing::debug!(%error, %at, "sequential look: judge failed; the boundary will report it");
            next
        }
    }
}

/// The source of `spec`'s endpoint, and whether it skips TLS verification —
/// or why it may not or cannot be queried (reason, message): the allow-list
/// is checked first, so a refused endpoint gets no request at all (nor are
/// its Secrets read).
async fn open_source(
    ctx: &AnalysisContext,
    namespace: &str,
    spec: &ResolvedSpec,
) -> Result<(std::sync::Arc<dyn MetricSource>, bool), (&'static str, String)> {
    if let Err(refusal) = ctx.allow.check(&spec.prometheus_url) {
        tracing::warn!(url = %spec.prometheus_url, %refusal, "metric endpoint refused");
        return Err((refusal.reason(), format!("spec.prometheus.url: {refusal}")));
    }
    let endpoint = match &spec.endpoint {
        Some(settings) => {
            crate::analysis::endpoint::resolve(&ctx.client, namespace, settings).await
        }
        None => {
            let mut default = ctx.config.default_endpoint.clone();
            default.url = spec.prometheus_url.clone();
            default.load()
        }
    }
    .map_err(|e| ("EndpointSettings", e.to_string()))?;
    let source =
        (ctx.sources)(&endpoint).map_err(|e| ("InvalidSpec", format!("spec.prometheus: {e}")))?;
    Ok((source, endpoint.tls.insecure_skip_verify))
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
    // The last interval's judgement is the analysis' final look: sequential
    // mode spends the rest of its α on the fixed-horizon tests there, once.
    let look = if k == spec.schedule.total {
        judge::Look::Final
    } else {
        judge::Look::Interim
    };
    let result = judge::judge_at(&spec.judge, &samples, look).map_err(IntervalError::Judge)?;
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
}
