//! The load generator: paced, bounded HTTP GET traffic to one URL.
//!
//! Requests are scheduled at fixed times (request i at i/rps) rather than
//! sent in a closed loop, so a slow server does not silently lower the offered
//! load (coordinated omission); at most `concurrency` are in flight. Only
//! requests due before `duration` are sent, at most [`LATE_GRACE`] late, and
//! every request is bounded by `timeout`, so a run always ends by
//! `duration + LATE_GRACE + timeout`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

use super::latency::LatencyHistogram;

/// How late a due request may still be sent. A busy machine (or a briefly
/// saturated server) delays sends by milliseconds; without this slack the
/// last requests of a run would be dropped at random.
pub const LATE_GRACE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// `http://` URL to GET, e.g. the sandbox's Service proxy URL.
    pub target: String,
    /// Requests per second offered.
    pub rps: f64,
    /// How long to send; `rps × duration` requests are scheduled.
    pub duration: Duration,
    /// Most requests in flight at once.
    pub concurrency: usize,
    /// Per-request timeout (counted as a transport error).
    pub timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080/".to_owned(),
            rps: 50.0,
            duration: Duration::from_secs(30),
            concurrency: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid target URL {url:?}: {reason}")]
    Target { url: String, reason: String },
    #[error("invalid load settings: {0}")]
    Settings(&'static str),
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What a run has seen so far (or in total, when returned by [`run_load`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Requests scheduled by the pacing (`rps × duration`).
    pub planned: u64,
    /// Requests sent.
    pub sent: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Other responses, by status code.
    pub errors_by_code: BTreeMap<u16, u64>,
    /// Requests without a response: refused, reset, timed out.
    pub transport_errors: u64,
    /// Latency of every response (any status), to the end of its body.
    pub latency: LatencyHistogram,
}

impl LoadStats {
    /// Requests that got an answer or failed for good.
    pub fn completed(&self) -> u64 {
        self.ok + self.http_errors() + self.transport_errors
    }

    /// Responses with a non-2xx status.
    pub fn http_errors(&self) -> u64 {
        self.errors_by_code.values().sum()
    }

    pub fn p50(&self) -> Option<Duration> {
        self.latency.quantile(0.5)
    }

    pub fn p99(&self) -> Option<Duration> {
        self.latency.quantile(0.99)
    }
}

impl fmt::Display for LoadStats {
    /// The one-line progress report the CLI prints every second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.1}ms", d.as_secs_f64() * 1e3),
            )
        };
        write!(
            f,
            "t={:.1}s sent={}/{} ok={} errors={{",
            self.elapsed.as_secs_f64(),
            self.sent,
            self.planned,
            self.ok
        )?;
        for (i, (code, n)) in self.errors_by_code.iter().enumerate() {
            write!(f, "{}{code}:{n}", if i > 0 { "," } else { "" })?;
        }
        write!(
            f,
            "}} transport_errors={} p50={} p99={}",
            self.transport_errors,
            ms(self.p50()),
            ms(self.p99())
        )
    }
}

type Shared = Arc<Mutex<LoadStats>>;

/// Sends the configured traffic, calling `progress` about once a second, and
/// returns the totals. Ends by itself by `duration + LATE_GRACE + timeout`.
pub async fn run_load(
    cfg: LoadConfig,
    mut progress: impl FnMut(&LoadStats),
) -> Result<LoadStats, LoadError> {
    let url = validate(&cfg)?;
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .pool_max_idle_per_host(cfg.concurrency)
        .build()
        .map_err(LoadError::Client)?;
    // Bounded by validate(): rps ≤ 100k and duration ≤ 1 day.
    let planned = (cfg.rps * cfg.duration.as_secs_f64()).floor() as u64;
    let shared: Shared = Arc::new(Mutex::new(LoadStats {
        planned,
        ..LoadStats::default()
    }));
    let permits = Arc::new(Semaphore::new(cfg.concurrency));
    let start = Instant::now();
    let send_cutoff = start + cfg.duration + LATE_GRACE;
    let give_up_at = send_cutoff + cfg.timeout;
    let mut ticker = interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tasks = JoinSet::new();
    let snapshot = |shared: &Shared| {
        let mut s = lock(shared).clone();
        s.elapsed = start.elapsed();
        s
    };

    let mut next = 0u64;
    // Every planned request is due before `duration`: next / rps < duration.
    while next < planned {
        let due = start + Duration::from_secs_f64(next as f64 / cfg.rps);
        if Instant::now() >= send_cutoff {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => progress(&snapshot(&shared)),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            // A saturated server makes this wait for a permit; the deadline
            // still ends the sending phase.
            permit = async {
                sleep_until(due).await;
                permits.clone().acquire_owned().await
            } => {
                let Ok(permit) = permit else { break };
                next += 1;
                lock(&shared).sent += 1;
                tasks.spawn(one_request(client.clone(), url.clone(), shared.clone(), permit));
            }
            _ = sleep_until(send_cutoff) => break,
        }
    }
    tracing::debug!(sent = next, planned, "sending phase over; draining");
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            _ = ticker.tick() => progress(&snapshot(&shared)),
            _ = sleep_until(give_up_at) => {
                // Only reachable if a request outlives its own timeout.
                tracing::warn!(left = tasks.len(), "abandoning in-flight requests");
                let left = tasks.len() as u64;
                tasks.abort_all();
                lock(&shared).transport_errors += left;
                break;
            }
        }
    }
    let stats = snapshot(&shared);
    progress(&stats);
    Ok(stats)
}

fn validate(cfg: &LoadConfig) -> Result<reqwest::Url, LoadError> {
    let bad = |reason: &str| LoadError::Target {
        url: cfg.target.clone(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(&cfg.target).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https"));
    }
    if !(cfg.rps.is_finite() && cfg.rps > 0.0 && cfg.rps <= 100_000.0) {
        return Err(LoadError::Settings("rps must be in (0, 100000]"));
    }
    if cfg.duration.is_zero() || cfg.duration > Duration::from_secs(86_400) {
        return Err(LoadError::Settings("duration must be in (0, 24h]"));
    }
    if cfg.concurrency == 0 || cfg.concurrency > 10_000 {
        return Err(LoadError::Settings("concurrency must be in 1..=10000"));
    }
    // Capped so that deadline arithmetic on `Instant` cannot overflow.
    if cfg.timeout.is_zero() || cfg.timeout > Duration::from_secs(3600) {
        return Err(LoadError::Settings("timeout must be in (0, 1h]"));
    }
    if cfg.rps * cfg.duration.as_secs_f64() < 1.0 {
        return Err(LoadError::Settings(
            "rps × duration must be at least 1 request",
        ));
    }
    Ok(url)
}

async fn one_request(
    client: reqwest::Client,
    url: reqwest::Url,
    shared: Shared,
    _permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    // Reading the body lets the connection go back to the pool and makes the
    // latency cover the whole response.
    let result = match client.get(url).send().await {
        Ok(resp) => {
            let status = resp.status();
            resp.bytes().await.map(|_| status)
        }
        Err(err) => Err(err),
    };
    let elapsed = started.elapsed();
    let mut s = lock(&shared);
    match result {
        Ok(status) => {
            s.latency.record(elapsed);
            if status.is_success() {
                s.ok += 1;
            } else {
                *s.errors_by_code.entry(status.as_u16()).or_default() += 1;
            }
        }
        Err(err) => {
            tracing::debug!(%err, "request failed");
            s.transport_errors += 1;
        }
    }
}

/// Stats stay meaningful even if a task panicked while holding the lock.
fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, LoadStats> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}
