//! The demo HTTP service: `/` does the "work" (with injected errors and
//! latency), plus `/healthz`, `/readyz` and `/metrics`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::RngExt;
use rand_distr::{Distribution, Gamma};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::config::DemoAppConfig;
use super::metrics::DemoMetrics;

/// Shape of the base latency's gamma distribution: a coefficient of variation
/// of 1/sqrt(4) = 0.5 gives the canary judge realistic noise without the
/// extreme spread of an exponential.
const LATENCY_SHAPE: f64 = 4.0;

/// The first line `redblack demo-app` prints on stdout, before the address.
/// Whoever starts it with `PORT=0` (the sandbox's pod runner, a test) reads
/// the port it picked from this line.
pub const LISTENING_PREFIX: &str = "listening on http://";

/// The line announcing the listen address.
pub fn listening_line(addr: std::net::SocketAddr) -> String {
    format!("{LISTENING_PREFIX}{addr}")
}

/// Parses [`listening_line`]'s output back into the address.
pub fn parse_listening_line(line: &str) -> Option<std::net::SocketAddr> {
    line.trim().strip_prefix(LISTENING_PREFIX)?.parse().ok()
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum DemoAppError {
    /// `DEMO_FAIL_AT_START` asked the app to die, like a pod in CrashLoopBackOff.
    #[error("DEMO_FAIL_AT_START is set: exiting at start as asked")]
    FailAtStart,
    #[error("invalid latency settings: {0}")]
    Latency(String),
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

struct AppState {
    cfg: DemoAppConfig,
    metrics: DemoMetrics,
    ready_at: Instant,
    latency: Option<Gamma<f64>>,
}

/// Serves until SIGTERM or Ctrl-C (what a pod's container gets on deletion).
pub async fn serve(cfg: DemoAppConfig, listener: TcpListener) -> Result<(), DemoAppError> {
    serve_until(cfg, listener, shutdown_signal()).await
}

/// Serves until `shutdown` completes; in-flight requests finish first.
pub async fn serve_until(
    cfg: DemoAppConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoAppError> {
    if cfg.fail_at_start {
        return Err(DemoAppError::FailAtStart);
    }
    let latency = if cfg.latency_ms > 0.0 {
        let dist = Gamma::new(LATENCY_SHAPE, cfg.latency_ms / LATENCY_SHAPE)
            .map_err(|e| DemoAppError::Latency(e.to_string()))?;
        Some(dist)
    } else {
        None
    };
    let state = Arc::new(AppState {
        ready_at: Instant::now() + cfg.ready_after,
        cfg,
        metrics: DemoMetrics::new(),
        latency,
    });
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        version = %state.cfg.version,
        error_rate = state.cfg.error_rate,
        latency_ms = state.cfg.latency_ms,
        tail_latency_ms = state.cfg.tail_latency_ms,
        tail_fraction = state.cfg.tail_fraction,
        "demo app serving"
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DemoAppError::Serve)
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(work))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What one work request will do; drawn before any await because the thread
/// RNG is not `Send`.
struct Plan {
    delay: Duration,
    fail: bool,
}

fn plan(state: &AppState) -> Plan {
    let cfg = &state.cfg;
    let mut rng = rand::rng();
    let delay_ms = if cfg.tail_fraction > 0.0 && rng.random_bool(cfg.tail_fraction) {
        cfg.tail_latency_ms
    } else {
        state.latency.map_or(0.0, |d| d.sample(&mut rng))
    };
    Plan {
        // Config caps latencies at an hour; a sample that is somehow not a
        // valid duration (negative, NaN) means no added latency, not a panic.
        delay: Duration::try_from_secs_f64(delay_ms / 1000.0).unwrap_or(Duration::ZERO),
        fail: cfg.error_rate > 0.0 && rng.random_bool(cfg.error_rate),
    }
}

async fn work(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let plan = plan(&state);
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let code = if plan.fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state.metrics.observe(
        &state.cfg.version,
        code.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    let body = if plan.fail {
        serde_json::json!({ "version": state.cfg.version, "error": "injected failure" })
    } else {
        serde_json::json!({ "version": state.cfg.version })
    };
    (code, Json(body)).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if Instant::now() >= state.ready_at {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(err) => {
            tracing::error!(%err, "encoding metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_round_trips() {
        let addr: std::net::SocketAddr = "127.0.0.1:41237".parse().unwrap();
        assert_eq!(listening_line(addr), "listening on http://127.0.0.1:41237");
        assert_eq!(parse_listening_line(&listening_line(addr)), Some(addr));
        assert_eq!(parse_listening_line("listening on http://nowhere"), None);
        assert_eq!(parse_listening_line("hello"), None);
    }
}
