//! Shell: the canary report's time series. Each metric's rendered queries —
//! rendered exactly as the analysis controller renders them (spec::resolve,
//! QueryTemplate::render with the scope and step) — range-queried from the
//! analysis' own Prometheus over the judged window, canary and baseline.
//! Cached per analysis resourceVersion, so live page updates do not query
//! Prometheus again until the analysis changed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use kube::ResourceExt;

use crate::analysis::controller::spec::{MetricQueries, ResolvedSpec, resolve};
use crate::analysis::endpoint::{self, EndpointConfig};
use crate::analysis::prometheus::PrometheusSource;
use crate::analysis::query::{QueryTemplate, Scope};
use crate::analysis::source::{MetricSource, Samples};
use crate::api::canary_analysis::CanaryAnalysis;

/// One metric's two series, as (seconds since the window start, value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricSeries {
    pub canary: Vec<(f64, f64)>,
    pub baseline: Vec<(f64, f64)>,
    /// The rendered queries (canary's, baseline's), for the Prometheus links.
    pub canary_query: String,
    pub baseline_query: String,
}

/// What the report page draws its charts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Charts {
    /// No chart at all (why: no window yet, an unusable spec…).
    Unavailable(String),
    Fetched {
        prometheus_url: String,
        /// The window's length in seconds (the x axis).
        seconds: f64,
        /// By metric name: the series, or why they could not be fetched.
        metrics: HashMap<String, Result<MetricSeries, String>>,
    },
}

/// How long an answer with a failure is reused (a success: until the
/// analysis changes).
const FAILURE_TTL: Duration = Duration::from_secs(10);
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const CACHE_ENTRIES: usize = 64;

/// By (namespace, name): the resourceVersion charted, when, and the charts.
type Entries = HashMap<(String, String), (String, Instant, Charts)>;

#[derive(Default)]
pub struct ChartCache {
    entries: Mutex<Entries>,
}

fn has_failure(charts: &Charts) -> bool {
    match charts {
        Charts::Unavailable(_) => true,
        Charts::Fetched { metrics, .. } => metrics.values().any(Result::is_err),
    }
}

impl ChartCache {
    pub async fn charts(
        &self,
        client: &kube::Client,
        ca: &CanaryAnalysis,
        default_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Charts {
        let key = (ca.namespace().unwrap_or_default(), ca.name_any());
        let rv = ca.resource_version().unwrap_or_default();
        if let Ok(entries) = self.entries.lock()
            && let Some((version, at, charts)) = entries.get(&key)
            && *version == rv
            && (!has_failure(charts) || at.elapsed() < FAILURE_TTL)
        {
            return charts.clone();
        }
        let charts = fetch(client, ca, default_url, now).await;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (rv, Instant::now(), charts.clone()));
        }
        charts
    }
}

fn points(samples: &Samples, from: DateTime<Utc>, shift: TimeDelta) -> Vec<(f64, f64)> {
    samples
        .points
        .iter()
        .map(|p| {
            let t = p.timestamp + shift - from;
            (t.num_milliseconds() as f64 / 1000.0, p.value)
        })
        .collect()
}

/// numerator / denominator at each denominator point; a missing numerator
/// point counts 0 (no error series yet), as the judge's `align` does.
fn ratio(num: &Samples, den: &Samples) -> Samples {
    let by_time: HashMap<i64, f64> = num
        .points
        .iter()
        .map(|p| (p.timestamp.timestamp_millis(), p.value))
        .collect();
    Samples::new(
        den.points
            .iter()
            .map(|d| {
                let n = by_time
                    .get(&d.timestamp.timestamp_millis())
                    .copied()
                    .unwrap_or(0.0);
                crate::analysis::source::Sample {
                    timestamp: d.timestamp,
                    value: if d.value == 0.0 {
                        f64::NAN
                    } else {
                        n / d.value
                    },
                }
            })
            .collect(),
    )
}

struct Window<'a> {
    source: &'a PrometheusSource,
    spec: &'a ResolvedSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Window<'_> {
    async fn side(
        &self,
        template: &QueryTemplate,
        scope: &Scope,
        shift: TimeDelta,
    ) -> Result<(String, Samples), String> {
        let query = template
            .render(scope, self.spec.step)
            .map_err(|e| e.to_string())?;
        let samples = self
            .source
            .query_range(&query, self.from - shift, self.to - shift, self.spec.step)
            .await
            .map_err(|e| e.to_string())?;
        Ok((query, samples))
    }

    async fn metric(&self, queries: &MetricQueries) -> Result<MetricSeries, String> {
        let spec = self.spec;
        let (es, cs) = (spec.experiment_shift, spec.control_shift);
        let ((cq, canary), (bq, baseline)) = match queries {
            MetricQueries::Continuous(t) => {
                let (c, b) = futures::join!(
                    self.side(t, &spec.experiment, es),
                    self.side(t, &spec.control, cs)
                );
                (c?, b?)
            }
            MetricQueries::Rate {
                numerator,
                denominator,
            } => {
                let (cn, cd, bn, bd) = futures::join!(
                    self.side(numerator, &spec.experiment, es),
                    self.side(denominator, &spec.experiment, es),
                    self.side(numerator, &spec.control, cs),
                    self.side(denominator, &spec.control, cs)
                );
                let (cn, cd, bn, bd) = (cn?, cd?, bn?, bd?);
                (
                    (format!("({}) / ({})", cn.0, cd.0), ratio(&cn.1, &cd.1)),
                    (format!("({}) / ({})", bn.0, bd.0), ratio(&bn.1, &bd.1)),
                )
            }
        };
        Ok(MetricSeries {
            canary: points(&canary, self.from, es),
            baseline: points(&baseline, self.from, cs),
            canary_query: cq,
            baseline_query: bq,
        })
    }
}

async fn endpoint_of(
    client: &kube::Client,
    ca: &CanaryAnalysis,
    spec: &ResolvedSpec,
) -> Result<EndpointConfig, String> {
    match &ca.spec.prometheus {
        Some(p) => endpoint::resolve(client, &ca.namespace().unwrap_or_default(), p)
            .await
            .map_err(|e| e.to_string()),
        None => Ok(EndpointConfig::plain(&spec.prometheus_url)),
    }
}

/// Queries every metric's two series over the judged window (up to now).
pub async fn fetch(
    client: &kube::Client,
    ca: &CanaryAnalysis,
    default_url: Option<&str>,
    now: DateTime<Utc>,
) -> Charts {
    let spec = match resolve(ca, default_url) {
        Ok(spec) => spec,
        Err(e) => return Charts::Unavailable(format!("the analysis' spec cannot be used: {e}")),
    };
    let from = spec.schedule.judged_from;
    let to = spec.schedule.end.min(now);
    if to <= from {
        return Charts::Unavailable("the judged window has not started yet".into());
    }
    let endpoint = match endpoint_of(client, ca, &spec).await {
        Ok(e) => e,
        Err(e) => {
            return Charts::Unavailable(format!("the Prometheus endpoint cannot be used: {e}"));
        }
    };
    let source = match PrometheusSource::for_endpoint(&endpoint, QUERY_TIMEOUT, 0, 4) {
        Ok(s) => s,
        Err(e) => return Charts::Unavailable(e.to_string()),
    };
    let window = Window {
        source: &source,
        spec: &spec,
        from,
        to,
    };
    let results = futures::future::join_all(spec.queries.iter().map(|q| window.metric(q))).await;
    let metrics = spec
        .judge
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .zip(results)
        .collect();
    Charts::Fetched {
        prometheus_url: spec.prometheus_url.clone(),
        seconds: (to - from).num_milliseconds() as f64 / 1000.0,
        metrics,
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
                .map(|&(t, value)| Sample {
                    timestamp: DateTime::from_timestamp(t, 0).unwrap(),
                    value,
                })
                .collect(),
        )
    }

    #[test]
    fn ratio_counts_a_missing_numerator_as_zero() {
        let r = ratio(&s(&[(10, 1.0)]), &s(&[(0, 5.0), (10, 10.0), (20, 0.0)]));
        let values: Vec<f64> = r.points.iter().map(|p| p.value).collect();
        assert_eq!(values[..2], [0.0, 0.1]);
        assert!(values[2].is_nan());
    }

    #[test]
    fn points_are_seconds_from_the_window_start_shifted_back() {
        let from = DateTime::from_timestamp(100, 0).unwrap();
        let p = points(&s(&[(40, 1.0)]), from, TimeDelta::seconds(70));
        assert_eq!(p, vec![(10.0, 1.0)]);
    }
}
