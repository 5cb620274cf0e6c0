//! Helpers shared by the `bench_*` examples (`mod support;` in each): request
//! accounting from the sandbox's counters, waiting for them to settle, store
//! events with a deadline, percentiles, and starting the sandbox and the
//! operator in-process. Not a benchmark itself (no `main.rs`, and the Makefile
//! only runs `examples/bench_*`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use redblack::api::{Rollout, all_crds};
use redblack::cli::controller::{ControllerConfig, ControllerError, run_controller};
use redblack_sandbox::store::{EventReceiver, StoredEvent};
use redblack_sandbox::{RequestCounts, Sandbox, SandboxConfig};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Requests by (verb, resource), e.g. `("patch", "rollouts/status")`.
pub type Counts = BTreeMap<(String, String), u64>;

pub fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// Requests that are not get/list/watch.
pub fn writes(counts: &Counts) -> u64 {
    counts
        .iter()
        .filter(|((verb, _), _)| !is_read(verb))
        .map(|(_, n)| n)
        .sum()
}

pub fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

/// `after - before`, without the zero entries.
pub fn diff(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Removes requests the benchmark itself sent (known exactly), so what is left
/// is the operator's.
pub fn subtract(counts: &mut Counts, ours: &[(&str, &str, u64)]) {
    for (verb, resource, n) in ours {
        if let Some(c) = counts.get_mut(&(verb.to_string(), resource.to_string())) {
            *c = c.saturating_sub(*n);
        }
    }
    counts.retain(|_, n| *n > 0);
}

pub fn by_verb(counts: &Counts) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((verb, _), n) in counts {
        *out.entry(verb.clone()).or_insert(0) += n;
    }
    out
}

/// Requests on `resource` (any verb).
pub fn on_resource(counts: &Counts, resource: &str) -> u64 {
    counts
        .iter()
        .filter(|((_, r), _)| r == resource)
        .map(|(_, n)| n)
        .sum()
}

/// Waits until `measure(counters)` has not moved for `quiet` (checked every
/// `poll`, at most `max`), so the tail of a phase (last status writes, Events)
/// is counted in that phase.
pub async fn settle(
    counts: &RequestCounts,
    poll: Duration,
    quiet: Duration,
    max: Duration,
    measure: impl Fn(&Counts) -> u64,
) {
    let started = Instant::now();
    let mut last = measure(&counts.snapshot());
    let mut still_since = Instant::now();
    while started.elapsed() < max {
        tokio::time::sleep(poll).await;
        let now = measure(&counts.snapshot());
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= quiet {
            return;
        }
    }
}

/// The next store event, or None after at most 100 ms (or if the receiver
/// lagged); an error once `deadline` has passed.
pub async fn next_event(
    rx: &mut EventReceiver,
    deadline: Instant,
) -> Result<Option<Arc<StoredEvent>>, BoxError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("timed out waiting for the rollout".into());
    }
    match tokio::time::timeout(left.min(Duration::from_millis(100)), rx.recv()).await {
        Ok(Ok(ev)) => Ok(Some(ev)),
        Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => Ok(None),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// Nearest-rank percentile of an ascending slice (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A sandbox with every CRD installed and the Rollout CRD served, and a client.
pub async fn start_sandbox(config: SandboxConfig) -> Result<(Sandbox, Client), BoxError> {
    redblack_sandbox::install_crypto_provider();
    let sandbox = Sandbox::start(config).await?;
    let client = sandbox.client()?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in all_crds() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let rollouts: Api<Rollout> = Api::all(client.clone());
    let served = Instant::now();
    while rollouts
        .list(&ListParams::default().limit(1))
        .await
        .is_err()
    {
        if served.elapsed() > Duration::from_secs(30) {
            return Err("the Rollout CRD was not served in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((sandbox, client))
}

/// The operator (`run_controller`) running in-process until [`Operator::stop`].
pub struct Operator {
    task: tokio::task::JoinHandle<Result<(), ControllerError>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Operator {
    pub fn start(client: Client, config: ControllerConfig) -> Operator {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_controller(client, config, async move {
            let _ = stopped.await;
        }));
        Operator { task, stop }
    }

    /// Graceful shutdown; the operator's own result.
    pub async fn stop(self) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

pub mod soak;
