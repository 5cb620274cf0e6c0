//! Benchmark (not a test): API requests per red/black rollout, and the
//! operator's latency from "new fleet ready" to "Service switched".
//!
//!     cargo run --release --example bench_rollout [-- ROLLOUTS [REPLICAS]]
//!
//! Starts an in-process sandbox and the operator (`run_controller`), then
//! updates one Rollout ROLLOUTS times (default 20, 3 replicas, pods ready after
//! 200 ms, `scaleDownDelay: 1s`, `revisionHistoryLimit: 1`). Each rollout is
//! done when the new fleet is live, Healthy, and the old fleet is scaled to
//! zero. The benchmark observes through the sandbox's in-process store events,
//! so the request counters hold only the operator's requests (plus the one
//! update per rollout the benchmark sends, which is subtracted).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use redblack::api::{POD_TEMPLATE_HASH_LABEL, Rollout, pod_template_hash};
use redblack::cli::controller::ControllerConfig;
use redblack_sandbox::SandboxConfig;
use redblack_sandbox::store::StoredEvent;
use serde_json::{Value, json};
use support::{BoxError, Counts, Operator, diff, next_event, percentile, settle, writes};

const NS: &str = "default";
const NAME: &str = "web";

fn manifest(image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "strategy": {"redBlack": {"activeService": NAME, "scaleDownDelay": "1s"}}
        }
    })
}

/// What the benchmark knows about the world, from store events only.
#[derive(Default)]
struct Seen {
    /// (ready replicas, spec replicas, pods) per ReplicaSet name.
    replica_sets: BTreeMap<String, (i64, i64, i64)>,
    selected: Option<String>,
    healthy_hash: Option<String>,
}

fn apply_event(seen: &mut Seen, ev: &StoredEvent) {
    let obj = &ev.object;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let deleted = ev.event_type == redblack_sandbox::store::EventType::Deleted;
    match (ev.gr.group.as_str(), ev.gr.resource.as_str()) {
        ("apps", "replicasets") => {
            if deleted {
                seen.replica_sets.remove(&name);
            } else {
                let n = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                seen.replica_sets.insert(
                    name,
                    (
                        n("/status/readyReplicas"),
                        n("/spec/replicas"),
                        n("/status/replicas"),
                    ),
                );
            }
        }
        ("", "services") if name == NAME => {
            seen.selected = obj
                .pointer("/spec/selector")
                .and_then(|s| s.get(POD_TEMPLATE_HASH_LABEL))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        ("redblack.io", "rollouts") if name == NAME => {
            let status = obj.get("status");
            let gen_ok = obj.pointer("/metadata/generation")
                == status.and_then(|s| s.get("observedGeneration"));
            let healthy = status.and_then(|s| s.get("phase")) == Some(&json!("Healthy"));
            seen.healthy_hash = (gen_ok && healthy)
                .then(|| {
                    status
                        .and_then(|s| s.get("currentRevision"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .flatten();
        }
        _ => {}
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let replicas: i32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let pod_ready_after = Duration::from_millis(200);

    let (sandbox, client): (_, Client) = support::start_sandbox(SandboxConfig {
        pod_ready_after,
        ..SandboxConfig::default()
    })
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": NAME},
                "spec": {"selector": {"app": NAME}, "ports": [{"port": 80, "targetPort": 8080}]}
            }))?,
        )
        .await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let created = rollouts
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest("demo:0", replicas))?,
        )
        .await?;

    let mut events = sandbox.store().subscribe();
    let operator = Operator::start(client.clone(), ControllerConfig::default());

    let mut seen = Seen::default();
    let first = pod_template_hash(&created.spec.template);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.healthy_hash.as_deref() != Some(first.as_str()) {
        if let Some(ev) = next_event(&mut events, deadline).await? {
            apply_event(&mut seen, &ev);
        }
    }

    let counts = sandbox.request_counts();
    let mut total = Counts::new();
    let mut latencies_ms = Vec::with_capacity(runs);
    let mut previous = first;
    for i in 1..=runs {
        let before = counts.snapshot();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("demo:{i}")}]}}}});
        let updated = rollouts
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let hash = pod_template_hash(&updated.spec.template);
        let new_rs = format!("{NAME}-{hash}");
        let old_rs = format!("{NAME}-{previous}");
        let (mut ready_at, mut switched_at) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(ev) = next_event(&mut events, deadline).await? {
                apply_event(&mut seen, &ev);
            }
            let now = Instant::now();
            if ready_at.is_none()
                && seen
                    .replica_sets
                    .get(&new_rs)
                    .is_some_and(|(ready, _, _)| *ready >= i64::from(replicas))
            {
                ready_at = Some(now);
            }
            if switched_at.is_none() && seen.selected.as_deref() == Some(hash.as_str()) {
                switched_at = Some(now);
            }
            let old_gone = seen
                .replica_sets
                .get(&old_rs)
                .is_none_or(|(_, size, pods)| *size == 0 && *pods == 0);
            if switched_at.is_some()
                && old_gone
                && seen.healthy_hash.as_deref() == Some(hash.as_str())
            {
                break;
            }
        }
        // Let trailing writes (status, events) land before counting.
        let step = Duration::from_millis(400);
        settle(&counts, step, step, Duration::from_secs(30), writes).await;
        let mut run = diff(&counts.snapshot(), &before);
        // The benchmark's own update.
        if let Some(n) = run.get_mut(&("patch".to_owned(), "rollouts".to_owned())) {
            *n -= 1;
        }
        for (k, v) in run {
            *total.entry(k).or_insert(0) += v;
        }
        if let (Some(r), Some(s)) = (ready_at, switched_at) {
            latencies_ms.push(s.saturating_duration_since(r).as_secs_f64() * 1000.0);
        }
        previous = hash;
    }
    operator.stop().await?;

    let n = runs as f64;
    println!(
        "bench_rollout: {runs} red/black rollouts of a {replicas}-replica Rollout \
         (in-process sandbox, pods ready after {pod_ready_after:?}, scaleDownDelay 1s, revisionHistoryLimit 1)"
    );
    println!();
    println!("API requests per rollout, operator only (verb  resource  per-rollout):");
    let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
    for ((verb, resource), count) in &total {
        if *count == 0 {
            continue;
        }
        *by_verb.entry(verb.clone()).or_insert(0) += count;
        println!("  {verb:<8} {resource:<20} {:>6.2}", *count as f64 / n);
    }
    println!("by verb:");
    for verb in [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ] {
        let c = by_verb.get(verb).copied().unwrap_or(0);
        println!("  {verb:<8} {:>6.2}", c as f64 / n);
    }
    let all: u64 = by_verb.values().sum();
    let events: u64 = total
        .iter()
        .filter(|((_, r), _)| r == "events")
        .map(|(_, c)| c)
        .sum();
    println!(
        "  total    {:>6.2}   (of which Events {:.2}; object writes {:.2})",
        all as f64 / n,
        events as f64 / n,
        (all - events) as f64 / n
    );
    latencies_ms.sort_by(f64::total_cmp);
    println!();
    println!(
        "latency new fleet ready -> Service switched (ms, as seen in the store): median {:.1}, p95 {:.1}, min {:.1}, max {:.1} over {} rollouts",
        percentile(&latencies_ms, 0.5),
        percentile(&latencies_ms, 0.95),
        latencies_ms.first().copied().unwrap_or(f64::NAN),
        latencies_ms.last().copied().unwrap_or(f64::NAN),
        latencies_ms.len()
    );
    sandbox.shutdown().await;
    Ok(())
}
