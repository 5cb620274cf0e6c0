//! The soak's core, shared by `examples/bench_soak.rs` (10,000 cycles) and
//! `tests/soak.rs` (a bounded run under nextest): red/black rollout cycles
//! over a fleet of Rollouts against an in-process sandbox and operator, with
//! the process's RSS, open file descriptors and live tokio tasks sampled
//! after every wave, and a least-squares trend over the samples.
//!
//! Every `canary_every`-th Rollout of the fleet is canary-gated: each of its
//! cycles brings up a canary and a baseline, and the real CanaryAnalysis
//! controller judges them (one 2 s interval… two, `lifetime` 4 s) against a
//! metric source that answers the same steady value for both sides
//! (`steady_metrics`, for the fake Prometheus of tests/fake_prometheus), so
//! every canary passes and is promoted — a cycle is done only then.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use redblack::api::{Outcome, Phase, Rollout};
use serde_json::{Value, json};

pub type SoakError = Box<dyn std::error::Error + Send + Sync>;

pub const NS: &str = "default";
const CLIENT_CONCURRENCY: usize = 16;

/// One sample of the process, after `cycles` completed rollout cycles.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub cycles: usize,
    pub rss_kb: u64,
    pub fds: usize,
    pub tasks: usize,
}

/// VmRSS of this process, in kB.
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn sample(cycles: usize) -> Sample {
    Sample {
        cycles,
        rss_kb: rss_kb(),
        fds: open_fds(),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    }
}

/// Least-squares slope and intercept of `y` over `x`: the trend the soak
/// prints (and judges flat by its change over the run, relative to the mean).
pub fn trend(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, points.first().map_or(0.0, |p| p.1));
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx == 0.0 { 0.0 } else { sxy / sxx };
    (slope, my - slope * mx)
}

pub fn name(i: usize) -> String {
    format!("soak-{i:04}")
}

/// The fleet: `n` Rollouts, every `canary_every`-th one (index 0, k, 2k, …)
/// canary-gated; `canary_every` 0 means none.
#[derive(Clone, Copy, Debug)]
pub struct Fleet {
    pub n: usize,
    pub canary_every: usize,
}

impl Fleet {
    pub fn red_black(n: usize) -> Self {
        Fleet { n, canary_every: 0 }
    }

    pub fn is_canary(&self, i: usize) -> bool {
        self.canary_every > 0 && i.is_multiple_of(self.canary_every)
    }

    /// How many of the fleet are canary-gated.
    pub fn canaries(&self) -> usize {
        (0..self.n).filter(|i| self.is_canary(*i)).count()
    }
}

/// The canary's one metric: the same steady latency for every query, so
/// baseline and canary are alike and the judge passes every canary.
pub fn steady_metrics(_query: &str) -> &'static str {
    "0.1"
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

/// A red/black Rollout whose old fleet is retired at once after a switch, so
/// every cycle creates one ReplicaSet and (past the history limit) deletes one.
fn rollout(name: &str, tag: usize, canary: bool) -> Value {
    let mut red_black = json!({"activeService": name, "scaleDownDelay": "0s"});
    if canary {
        // As tests/api_faults.rs: two 2 s intervals, one latency metric.
        red_black["canary"] = json!({"replicas": 1, "analysis": {"inline": {
            "interval": "2s", "lifetime": "4s", "step": "1s",
            "metrics": [{"name": "latency", "direction": "increase",
                         "query": "avg(latency_seconds{namespace=\"${namespace}\", pod=~\"${podRegex}\"})"}]
        }}});
    }
    json!({
        "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": format!("registry.example/app:{tag}")}]}
            },
            "strategy": {"redBlack": red_black}
        }
    })
}

/// Creates the fleet's Services and Rollouts at tag 0.
pub async fn create_fleet(client: &Client, fleet: Fleet) -> Result<(), SoakError> {
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    stream::iter(0..fleet.n)
        .map(|i| {
            let (services, rollouts) = (services.clone(), rollouts.clone());
            async move {
                let name = name(i);
                services
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(service(&name))?,
                    )
                    .await?;
                rollouts
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(rollout(&name, 0, fleet.is_canary(i)))?,
                    )
                    .await?;
                Ok::<(), SoakError>(())
            }
        })
        .buffer_unordered(CLIENT_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// How many of the fleet are Healthy on a template of `tag`, fully rolled
/// out (observed generation current, current = stable revision); a
/// canary-gated one past tag 0 only once its canary was judged and promoted
/// (the revision's record is Promoted with the analysis score).
async fn done_at(api: &Api<Rollout>, tag: usize) -> Result<usize, SoakError> {
    let image = format!("registry.example/app:{tag}");
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|r| {
            let Some(s) = r.status.as_ref() else {
                return false;
            };
            let on_tag = r.spec.template.spec.as_ref().is_some_and(|p| {
                p.containers.first().and_then(|c| c.image.as_deref()) == Some(image.as_str())
            });
            let canary = r.spec.strategy.red_black.canary.is_some();
            let judged = || {
                s.history.iter().any(|h| {
                    Some(&h.hash) == s.stable_revision.as_ref()
                        && h.outcome == Outcome::Promoted
                        && h.score.is_some()
                })
            };
            on_tag
                && s.phase == Some(Phase::Healthy)
                && s.observed_generation == r.metadata.generation
                && s.stable_revision.is_some()
                && s.current_revision == s.stable_revision
                && (!canary || tag == 0 || judged())
        })
        .count())
}

/// Waits (polling with a deadline, not sleeping as synchronisation) until the
/// whole fleet of `n` is done at `tag`.
pub async fn wait_fleet(
    client: &Client,
    n: usize,
    tag: usize,
    timeout: Duration,
) -> Result<(), SoakError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let deadline = Instant::now() + timeout;
    loop {
        let done = done_at(&api, tag).await?;
        if done == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{done}/{n} Rollouts done at tag {tag} after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One wave: every Rollout of the fleet to `tag` (one red/black cycle each).
pub async fn wave(client: &Client, n: usize, tag: usize) -> Result<(), SoakError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), NS);
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let patch = json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": format!("registry.example/app:{tag}")}
                ]}}}});
                api.patch(&name(i), &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok::<(), SoakError>(())
            }
        })
        .buffer_unordered(CLIENT_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Names of the fleet's Rollouts (for a caller's sanity check).
pub async fn fleet_names(client: &Client) -> Result<Vec<String>, SoakError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), NS);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|r| r.name_any())
        .collect())
}
