//! `PrometheusSource`: the real `MetricSource`, over Prometheus's HTTP API
//! (via `prometheus-http-query`).
//!
//! * Every request has a client-side timeout, and the same timeout is sent
//!   as the query's `timeout` parameter so Prometheus stops evaluating too.
//! * Connection errors, timeouts, HTTP 5xx and 429 are retried a bounded
//!   number of times with exponential backoff (honouring `Retry-After` up to
//!   the backoff cap); 4xx answers such as 400 `bad_data` are not, because
//!   the same query will fail the same way.
//! * We take the raw HTTP response from the library and decode the API
//!   envelope ourselves, because the library's parsed errors lose the HTTP
//!   status, which decides between "retry" and "give up".
//! * Queries are sent as POST forms: rendered templates can be long, and
//!   POST keeps them out of URL-length limits and access logs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use prometheus_http_query::Client;
use prometheus_http_query::response::{Data, PromqlResult};
use serde::Deserialize;

use super::source::{MetricSource, Sample, Samples, SourceError};

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Upper bound of any single wait.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based).
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A Prometheus server queried over HTTP.
#[derive(Clone)]
pub struct PrometheusSource {
    client: Client,
    url: String,
    timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The Prometheus API envelope: `{"status": "success", "data": …}` or
/// `{"status": "error", "errorType": …, "error": …}`.
#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum Envelope {
    Success {
        data: PromqlResult,
    },
    Error {
        #[serde(rename = "errorType")]
        error_type: String,
        error: String,
    },
}

/// A failed attempt, with the server's `Retry-After` if it sent one.
struct Failure {
    error: SourceError,
    retry_after: Option<Duration>,
}

impl From<SourceError> for Failure {
    fn from(error: SourceError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// How much of an unparseable body to quote in an error.
const BODY_EXCERPT: usize = 300;

impl PrometheusSource {
    /// `url` is the server's base URL (e.g. `http://prometheus:9090`);
    /// `timeout` bounds each attempt; `retries` is the number of retries of
    /// transient failures (backoff 200ms doubling up to 5s by default).
    pub fn new(url: &str, timeout: Duration, retries: u32) -> Result<Self, SourceError> {
        let invalid = |message: String| SourceError::InvalidUrl {
            url: url.to_owned(),
            message,
        };
        let http = prometheus_http_query::reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| invalid(format!("cannot build HTTP client: {e}")))?;
        let client = Client::from(http, url).map_err(|e| invalid(e.to_string()))?;
        Ok(PrometheusSource {
            client,
            url: url.to_owned(),
            timeout,
            retry: RetryPolicy {
                retries,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
            },
        })
    }

    /// Replace the backoff schedule (tests use short waits).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry.initial_backoff = initial;
        self.retry.max_backoff = max;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The per-query evaluation timeout sent to Prometheus, in milliseconds.
    fn timeout_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX)
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Samples, SourceError> {
        self.with_retries(query, || async {
            let response = self
                .client
                .query_range(
                    query,
                    start.timestamp(),
                    end.timestamp(),
                    step.as_secs_f64(),
                )
                .timeout(self.timeout_ms())
                .post_raw()
                .await;
            self.decode(response).await
        })
        .await
    }

    async fn instant(&self, query: &str, time: DateTime<Utc>) -> Result<Samples, SourceError> {
        self.with_retries(query, || async {
            let response = self
                .client
                .query(query)
                .at(time.timestamp())
                .timeout(self.timeout_ms())
                .post_raw()
                .await;
            self.decode(response).await
        })
        .await
    }

    /// Run `attempt` until it succeeds, fails for good, or the retries are spent.
    async fn with_retries<F, Fut>(
        &self,
        query: &str,
        mut attempt: F,
    ) -> Result<Samples, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Samples, Failure>>,
    {
        let mut retry = 0;
        loop {
            tracing::debug!(url = %self.url, query, attempt = retry + 1, "querying Prometheus");
            match attempt().await {
                Ok(samples) => return Ok(samples),
                Err(failure) if failure.error.is_transient() && retry < self.retry.retries => {
                    let wait = failure.retry_after.map_or_else(
                        || self.retry.backoff(retry),
                        |d| d.min(self.retry.max_backoff),
                    );
                    tracing::warn!(url = %self.url, error = %failure.error, retry = retry + 1,
                        of = self.retry.retries, ?wait, "transient Prometheus failure, retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(failure) => {
                    tracing::debug!(url = %self.url, error = %failure.error, "Prometheus query failed");
                    return Err(failure.error);
                }
            }
        }
    }

    /// Turn one HTTP exchange into samples or a classified failure.
    async fn decode(
        &self,
        response: Result<prometheus_http_query::reqwest::Response, prometheus_http_query::Error>,
    ) -> Result<Samples, Failure> {
        let response = response.map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                SourceError::Timeout(self.timeout)
            } else {
                self.unreachable(&e)
            }
        })?;
        let error = match serde_json::from_slice::<Envelope>(&body) {
            Ok(Envelope::Success { data }) if (200..300).contains(&status) => {
                return one_series(data).map_err(Failure::from);
            }
            Ok(Envelope::Success { .. }) => SourceError::Server {
                status,
                message: "success body with an error status".to_owned(),
            },
            Ok(Envelope::Error { error_type, error }) => match error_type.as_str() {
                "bad_data" => SourceError::InvalidQuery { message: error },
                "timeout" => SourceError::Timeout(self.timeout),
                _ => SourceError::Server {
                    status,
                    message: format!("{error_type}: {error}"),
                },
            },
            Err(parse) if (200..300).contains(&status) => SourceError::InvalidResponse {
                message: format!("{parse}; body starts with {:?}", excerpt(&body)),
            },
            // Proxies and load balancers answer errors in plain text or HTML.
            Err(_) => SourceError::Server {
                status,
                message: excerpt(&body),
            },
        };
        Err(Failure { error, retry_after })
    }

    fn transport_error(&self, error: &prometheus_http_query::Error) -> Failure {
        let error = match error {
            prometheus_http_query::Error::Client(client) => match client.inner() {
                Some(inner) if inner.is_timeout() => SourceError::Timeout(self.timeout),
                Some(inner) => self.unreachable(inner),
                None => self.unreachable(client),
            },
            other => self.unreachable(other),
        };
        Failure::from(error)
    }

    fn unreachable(&self, error: &dyn std::error::Error) -> SourceError {
        SourceError::Unreachable {
            url: self.url.clone(),
            cause: error_chain(error),
        }
    }
}

/// `error: cause: cause…`, because reqwest's top-level message alone
/// ("error sending request") hides the useful part ("Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(BODY_EXCERPT)
        .collect()
}

/// Apply the one-series-per-scope rule (see `source.rs`).
fn one_series(result: PromqlResult) -> Result<Samples, SourceError> {
    let (data, _stats) = result.into_inner();
    let (labels, points) = match data {
        Data::Scalar(sample) => return Ok(Samples::new(vec![convert(&sample)?])),
        Data::Vector(mut series) => match series.len() {
            0 => return Ok(Samples::default()),
            1 => {
                let (labels, sample) = series.remove(0).into_inner();
                (labels, vec![sample])
            }
            count => return Err(multiple(count, series[0].metric())),
        },
        Data::Matrix(mut series) => match series.len() {
            0 => return Ok(Samples::default()),
            1 => series.remove(0).into_inner(),
            count => return Err(multiple(count, series[0].metric())),
        },
    };
    tracing::trace!(?labels, points = points.len(), "Prometheus series");
    let points = points.iter().map(convert).collect::<Result<Vec<_>, _>>()?;
    Ok(Samples::new(points))
}

fn convert(sample: &prometheus_http_query::response::Sample) -> Result<Sample, SourceError> {
    let millis = (sample.timestamp() * 1000.0).round();
    let timestamp = DateTime::from_timestamp_millis(millis as i64).ok_or_else(|| {
        SourceError::InvalidResponse {
            message: format!("timestamp {} is out of range", sample.timestamp()),
        }
    })?;
    Ok(Sample {
        timestamp,
        value: sample.value(),
    })
}

fn multiple(count: usize, labels: &std::collections::HashMap<String, String>) -> SourceError {
    let mut pairs: Vec<_> = labels.iter().collect();
    pairs.sort();
    let example = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    SourceError::MultipleSeries {
        count,
        example: format!("{{{example}}}"),
    }
}

impl MetricSource for PrometheusSource {
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        Box::pin(self.range(query, start, end, step))
    }

    fn query_instant<'a>(
        &'a self,
        query: &'a str,
        time: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        Box::pin(self.instant(query, time))
    }
}
