//! The demo HTTP service: `/` does the "work" (with injected errors and
//! latency), plus `/healthz`, `/readyz` and `/metrics`.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// In-flight requests were still running `DEMO_SHUTDOWN_TIMEOUT` after the
    /// app stopped accepting connections.
    #[error(
        "in-flight requests did not finish within {0:?} of closing the listener (DEMO_SHUTDOWN_TIMEOUT)"
    )]
    ShutdownTimeout(Duration),
}

struct AppState {
    cfg: DemoAppConfig,
    metrics: DemoMetrics,
    ready_at: Instant,
    latency: Option<Gamma<f64>>,
    /// Set once the stop signal came: `/readyz` answers 503 from then on.
    draining: AtomicBool,
}

/// Serves until SIGTERM (what a pod's container gets on deletion; ignored with
/// `DEMO_IGNORE_SIGTERM`) or Ctrl-C.
pub async fn serve(cfg: DemoAppConfig, listener: TcpListener) -> Result<(), DemoAppError> {
    let ignore_sigterm = cfg.ignore_sigterm;
    serve_until(cfg, listener, shutdown_signal(ignore_sigterm)).await
}

/// Serves until `shutdown` completes, then drains like a pod being deleted:
/// `/readyz` 503 at once, still serving for `shutdown_delay` (requests routed
/// just before the deletion still find a listener), then no new connections,
/// in-flight requests finish (for at most `shutdown_timeout`, else
/// `ShutdownTimeout`), and it returns.
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
    let shutdown_timeout = cfg.shutdown_timeout;
    let shutdown_delay = cfg.shutdown_delay;
    let state = Arc::new(AppState {
        ready_at: Instant::now() + cfg.ready_after,
        cfg,
        metrics: DemoMetrics::new(),
        latency,
        draining: AtomicBool::new(false),
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
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signalled = {
        let state = state.clone();
        async move {
            shutdown.await;
            state.draining.store(true, Ordering::SeqCst);
            tracing::info!(
                ?shutdown_delay,
                "stop signal: /readyz answers 503; still serving until the delay is over"
            );
            tokio::time::sleep(shutdown_delay).await;
            tracing::info!(
                in_flight = state.metrics.in_flight(),
                ?shutdown_timeout,
                "no new connections, finishing in-flight requests"
            );
            let _ = stopping_tx.send(());
        }
    };
    let server = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(signalled)
        .into_future();
    let drain_bound = async {
        // The server ended before any signal: nothing to bound.
        if stopping_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(shutdown_timeout).await;
    };
    tokio::select! {
        served = server => {
            served.map_err(DemoAppError::Serve)?;
            tracing::info!("drained: exiting");
            Ok(())
        }
        () = drain_bound => {
            tracing::warn!(in_flight = state.metrics.in_flight(), "in-flight requests outlived the shutdown timeout");
            Err(DemoAppError::ShutdownTimeout(shutdown_timeout))
        }
    }
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
    let _in_flight = state.metrics.start_request();
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
    if state.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if Instant::now() >= state.ready_at {
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

/// The stop signal of a demo-app process: Ctrl-C, or SIGTERM unless
/// `ignore_sigterm` (then SIGTERM is logged and otherwise ignored, so only
/// SIGKILL or Ctrl-C end the app). The handlers are installed by this call, not
/// when the future is first polled: a SIGTERM that comes right after start-up
/// (a pod deleted as it starts) is already handled, never the default "die at
/// once". Must be called within a Tokio runtime.
pub fn shutdown_signal(ignore_sigterm: bool) -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (interrupt, terminate) = handlers;
            let ctrl_c = async move {
                match interrupt {
                    Ok(mut s) => {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%err, "cannot listen for Ctrl-C");
                        std::future::pending::<()>().await;
                    }
                }
            };
            let term = async move {
                match terminate {
                    Ok(mut s) => loop {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                        if !ignore_sigterm {
                            break;
                        }
                        tracing::warn!(
                            "SIGTERM ignored (DEMO_IGNORE_SIGTERM): only SIGKILL or Ctrl-C stop this app"
                        );
                    },
                    Err(err) => {
                        tracing::warn!(%err, "cannot listen for SIGTERM");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = ctrl_c => {},
                () = term => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ignore_sigterm;
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::warn!(%err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutting down");
    }
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
