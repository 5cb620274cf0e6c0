//! A tiny fake Prometheus HTTP API on 127.0.0.1:0: every range (or instant)
//! query is answered by a function of the query, so a test can craft what a
//! real Prometheus cannot easily produce on demand (NaN, +Inf, a counter
//! reset, one side without data, a 503, an answer that never comes).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One query as the operator sent it (Unix seconds).
#[derive(Debug, Clone)]
pub struct Query {
    pub query: String,
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

impl Query {
    /// The evaluation times of a range query: start, start + step, …, end.
    pub fn times(&self) -> Vec<f64> {
        // NaN steps fail `is_finite`; zero or negative ones `<= 0.0`.
        if !self.step.is_finite() || self.step <= 0.0 || self.end < self.start {
            return Vec::new();
        }
        let n = ((self.end - self.start) / self.step).floor() as usize;
        (0..=n).map(|i| self.start + i as f64 * self.step).collect()
    }
}

/// What to answer.
pub enum Reply {
    /// A matrix with these series, each a list of (time, value as Prometheus
    /// writes it: "0.1", "NaN", "+Inf").
    Series(Vec<Vec<(f64, String)>>),
    /// This HTTP status and body.
    Http(u16, String),
    /// Never answer (the client's timeout must end it).
    Hang,
}

impl Reply {
    /// One series with `value(t)` at every evaluation time of `q` (None: a gap).
    pub fn one(q: &Query, value: impl Fn(usize, f64) -> Option<String>) -> Reply {
        Reply::Series(vec![
            q.times()
                .into_iter()
                .enumerate()
                .filter_map(|(i, t)| value(i, t).map(|v| (t, v)))
                .collect(),
        ])
    }

    /// An empty matrix: the query matched nothing.
    pub fn empty() -> Reply {
        Reply::Series(Vec::new())
    }
}

pub type Answer = Arc<dyn Fn(&Query) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    answer: Answer,
    queries: Arc<AtomicUsize>,
    in_flight: Arc<InFlight>,
    /// Held before answering, as a real Prometheus spends time evaluating
    /// (so concurrent queries overlap and a concurrency bound shows).
    latency: Duration,
}

/// Queries being answered now, and the most ever at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

pub struct FakePrometheus {
    pub url: String,
    queries: Arc<AtomicUsize>,
    in_flight: Arc<InFlight>,
    task: JoinHandle<()>,
}

impl FakePrometheus {
    pub async fn start(answer: Answer) -> FakePrometheus {
        FakePrometheus::start_with_latency(answer, Duration::ZERO).await
    }

    /// Every answer is held `latency` first (benchmarks: a query's cost).
    pub async fn start_with_latency(answer: Answer, latency: Duration) -> FakePrometheus {
        let queries = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(InFlight::default());
        let shared = Shared {
            answer,
            queries: queries.clone(),
            in_flight: in_flight.clone(),
            latency,
        };
        let app = Router::new()
            .route("/api/v1/query_range", post(range).get(range))
            .route("/api/v1/query", post(instant).get(instant))
            .with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Prometheus");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePrometheus {
            url,
            queries,
            in_flight,
            task,
        }
    }

    /// Queries answered (or held) so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// The most queries that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(Ordering::SeqCst)
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn num(form: &HashMap<String, String>, key: &str) -> f64 {
    form.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

async fn range(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let q = Query {
        query: form.get("query").cloned().unwrap_or_default(),
        start: num(&form, "start"),
        end: num(&form, "end"),
        step: num(&form, "step"),
    };
    respond(&s, &q, false).await
}

async fn instant(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let t = num(&form, "time");
    let q = Query {
        query: form.get("query").cloned().unwrap_or_default(),
        start: t,
        end: t,
        step: 1.0,
    };
    respond(&s, &q, true).await
}

/// Counts a query in flight until dropped (also when the client gives up).
struct Flying<'a>(&'a InFlight);

impl<'a> Flying<'a> {
    fn new(f: &'a InFlight) -> Self {
        let now = f.now.fetch_add(1, Ordering::SeqCst) + 1;
        f.max.fetch_max(now, Ordering::SeqCst);
        Flying(f)
    }
}

impl Drop for Flying<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn respond(s: &Shared, q: &Query, instant: bool) -> Response {
    s.queries.fetch_add(1, Ordering::SeqCst);
    let _flying = Flying::new(&s.in_flight);
    if !s.latency.is_zero() {
        tokio::time::sleep(s.latency).await;
    }
    match (s.answer)(q) {
        Reply::Hang => std::future::pending().await,
        Reply::Http(code, body) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
        Reply::Series(series) => {
            let result: Vec<Value> = series
                .into_iter()
                // An instant vector has no series without a sample.
                .filter(|points| !(instant && points.is_empty()))
                .enumerate()
                .map(|(i, points)| {
                    let metric = json!({"series": i.to_string()});
                    if instant {
                        let last = points.last().map(|(t, v)| json!([t, v]));
                        json!({"metric": metric, "value": last.unwrap_or(Value::Null)})
                    } else {
                        let values: Vec<Value> =
                            points.iter().map(|(t, v)| json!([t, v])).collect();
                        json!({"metric": metric, "values": values})
                    }
                })
                .collect();
            let result_type = if instant { "vector" } else { "matrix" };
            axum::Json(json!({
                "status": "success",
                "data": {"resultType": result_type, "result": result},
            }))
            .into_response()
        }
    }
}
