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
//! * A hostile or broken endpoint cannot flood the operator or its status:
//!   answers are read up to [`MAX_BODY`] (error answers up to
//!   [`MAX_ERROR_BODY`]), and what reaches an error message is at most
//!   [`MAX_MESSAGE`] characters of Prometheus' JSON `errorType`/`error` or
//!   the HTTP status line — never the raw body.
//! * At most `concurrency` requests are in flight per endpoint (a semaphore
//!   per source; sources are cached per endpoint configuration).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use prometheus_http_query::Client;
use prometheus_http_query::response::{Data, PromqlResult};
use serde::Deserialize;

use super::endpoint::EndpointConfig;
use super::source::{MetricSource, Sample, Samples, SourceError};

/// The largest successful answer read (a range query of 10 000 points is ~0.5 MB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// The largest error answer read (only its JSON error fields are used).
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// The longest backend-provided text copied into an error (and so into status).
pub const MAX_MESSAGE: usize = 256;

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
    /// Requests in flight to this endpoint.
    slots: Arc<tokio::sync::Semaphore>,
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

impl PrometheusSource {
    /// `url` is the server's base URL (e.g. `http://prometheus:9090`);
    /// `timeout` bounds each attempt; `retries` is the number of retries of
    /// transient failures (backoff 200ms doubling up to 5s by default).
    pub fn new(url: &str, timeout: Duration, retries: u32) -> Result<Self, SourceError> {
        Self::for_endpoint(
            &EndpointConfig::plain(url),
            timeout,
            retries,
            DEFAULT_CONCURRENCY,
        )
    }

    /// A source for `endpoint` (TLS, credentials, headers) with at most
    /// `concurrency` requests in flight.
    pub fn for_endpoint(
        endpoint: &EndpointConfig,
        timeout: Duration,
        retries: u32,
        concurrency: usize,
    ) -> Result<Self, SourceError> {
        let url = endpoint.url.as_str();
        let invalid = |message: String| SourceError::InvalidUrl {
            url: url.to_owned(),
            message,
        };
        let http = super::http_client::build(endpoint, timeout).map_err(|e| invalid(e.0))?;
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
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
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
            // The semaphore is never closed; a permit is held for one attempt.
            let permit = self.slots.acquire().await.ok();
            let outcome = attempt().await;
            drop(permit);
            match outcome {
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
        let success = (200..300).contains(&status);
        let cap = if success { MAX_BODY } else { MAX_ERROR_BODY };
        let reason = response
            .status()
            .canonical_reason()
            .unwrap_or("unknown status")
            .to_owned();
        let body = match read_bounded(response, cap).await {
            Ok(Some(body)) => body,
            Ok(None) if success => {
                return Err(Failure::from(SourceError::InvalidResponse {
                    message: format!("the answer is larger than {} MiB", MAX_BODY >> 20),
                }));
            }
            // An error answer this large is not Prometheus': the status line says enough.
            Ok(None) => Vec::new(),
            Err(e) if e.is_timeout() => {
                return Err(Failure::from(SourceError::Timeout(self.timeout)));
            }
            Err(e) => return Err(Failure::from(self.unreachable(&e))),
        };
        let error = match serde_json::from_slice::<Envelope>(&body) {
            Ok(Envelope::Success { data }) if (200..300).contains(&status) => {
                return one_series(data).map_err(Failure::from);
            }
            Ok(Envelope::Success { .. }) => SourceError::Server {
                status,
                message: "success body with an error status".to_owned(),
            },
            Ok(Envelope::Error { error_type, error }) => match error_type.as_str() {
                // VictoriaMetrics says "422" (with HTTP 422) where Prometheus
                // says bad_data (HTTP 400): a query that cannot be parsed.
                "bad_data" | "422" => SourceError::InvalidQuery {
                    message: bounded(&error),
                },
                "timeout" => SourceError::Timeout(self.timeout),
                _ => SourceError::Server {
                    status,
                    message: bounded(&format!("{error_type}: {error}")),
                },
            },
            // serde's message may quote the body: only its category and position.
            Err(parse) if success => SourceError::InvalidResponse {
                message: format!(
                    "not a Prometheus API answer ({:?} error at line {}, column {})",
                    parse.classify(),
                    parse.line(),
                    parse.column()
                ),
            },
            // Proxies, load balancers and auth layers answer errors in plain
            // text or HTML: the status line only.
            Err(_) => SourceError::Server {
                status,
                message: reason,
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

    fn unreachable(&self, error: &(dyn std::error::Error + 'static)) -> SourceError {
        if let Some(cause) = tls_failure(error) {
            return SourceError::Tls {
                url: self.url.clone(),
                cause: bounded(&cause),
            };
        }
        SourceError::Unreachable {
            url: self.url.clone(),
            cause: bounded(&error_chain(error)),
        }
    }
}

/// Requests in flight per endpoint unless configured.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// The body, or `None` if it is longer than `cap` (reading stops there).
async fn read_bounded(
    mut response: prometheus_http_query::reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, prometheus_http_query::reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The certificate or handshake problem in `error`'s chain, if that is what
/// failed: permanent (a retry meets the same certificate), unlike a refused
/// connection.
fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error's source() skips the error it wraps (rustls' errors
        // arrive wrapped in io::Errors, sometimes twice): look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = tls_failure(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// At most [`MAX_MESSAGE`] characters, marked when cut.
pub fn bounded(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE).collect();
    cut.push('…');
    cut
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
        example: bounded(&format!("{{{example}}}")),
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
