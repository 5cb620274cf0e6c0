//! The `MetricSource` trait: what the CanaryAnalysis controller asks of a
//! metrics backend, and the sample and error types it answers with.
//!
//! Result shape (as in Kayenta): **one series per scope.** A query whose
//! result has several series is an error ([`SourceError::MultipleSeries`])
//! rather than being summed silently, because the right way to combine
//! series depends on the metric (summing rates is right, summing latency
//! quantiles is not); the message tells the user to aggregate in PromQL
//! (`sum(...)`, `avg(...)`, `histogram_quantile(...)`).
//!
//! An empty result is `Ok` with no samples — the judge's NoData — never an
//! error (argo-rollouts #1466 crashed on it). NaN and ±Inf are kept as the
//! f64 values they are; the judge's NaN strategy decides about them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// One value at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub value: f64,
}

/// The samples of the (single) series a query returned, oldest first.
/// Empty when the query matched nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    pub points: Vec<Sample>,
}

impl Samples {
    pub fn new(points: Vec<Sample>) -> Self {
        Samples { points }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// The values alone, in time order: what the judge consumes.
    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|s| s.value).collect()
    }
}

/// Why a query failed. `Clone` so canned answers (`StaticSource`) and
/// status reports can carry it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Prometheus rejected the query (HTTP 400 `bad_data`); `message` is
    /// Prometheus's own, e.g. a parse error with its position.
    #[error("invalid query: {message}")]
    InvalidQuery { message: String },
    /// No connection could be made (after the bounded retries).
    #[error("metric source {url} is unreachable: {cause}")]
    Unreachable { url: String, cause: String },
    /// The TLS handshake failed: an unknown issuer, a name mismatch… Not
    /// retried: the next attempt meets the same certificate.
    #[error("metric source {url}: TLS failure: {cause}")]
    Tls { url: String, cause: String },
    /// The request or the query evaluation timed out (after the bounded retries).
    #[error("metric query timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered with an error status (after the bounded retries
    /// for 5xx/429; at once for other statuses).
    #[error("metric source answered HTTP {status}: {message}")]
    Server { status: u16, message: String },
    /// The answer was not a Prometheus API response we understand.
    #[error("unexpected response from metric source: {message}")]
    InvalidResponse { message: String },
    /// The query returned several series for one scope.
    #[error(
        "query must return one series per scope but returned {count} (e.g. {example}); aggregate it, e.g. with sum(...) or avg(...)"
    )]
    MultipleSeries { count: usize, example: String },
    /// The configured endpoint is not a usable URL.
    #[error("invalid metric source URL {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
}

impl SourceError {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Unreachable { .. } | SourceError::Timeout(_) => true,
            SourceError::Server { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// A metrics backend. Object-safe (boxed futures) so the controller can hold
/// an `Arc<dyn MetricSource>` and tests can swap in a `StaticSource`.
pub trait MetricSource: Send + Sync {
    /// Evaluate `query` at every `step` from `start` to `end` (inclusive).
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxFuture<'a, Result<Samples, SourceError>>;

    /// Evaluate `query` once, at `time`. At most one sample.
    fn query_instant<'a>(
        &'a self,
        query: &'a str,
        time: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Samples, SourceError>>;
}

/// Lets the controller share one source between tasks as `Arc<dyn MetricSource>`
/// (or `Arc<PrometheusSource>`) and still pass it where a source is expected.
impl<T: MetricSource + ?Sized> MetricSource for std::sync::Arc<T> {
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        (**self).query_range(query, start, end, step)
    }

    fn query_instant<'a>(
        &'a self,
        query: &'a str,
        time: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        (**self).query_instant(query, time)
    }
}
