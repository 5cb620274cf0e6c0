//! One kill point: a flow in its own namespace, run by an operator that is
//! killed as the schedule says and replaced each time by a fresh one, then
//! checked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use redblack::api::Rollout;
use redblack::cli::controller::ControllerConfig;
use serde_json::{Value, json};

use super::checks;
use super::flows::{Flow, ROLLOUT, World};
use super::gate::{Gate, gated_client};
use super::journal::{Journal, Kind};
use crate::support::Running;

/// When one operator incarnation dies: after k writes, after some
/// milliseconds, or right after its n-th Service write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kill {
    /// As it attempts its write k+1: exactly k of its writes went out.
    Writes(u64),
    /// At a time after its start; whatever it was doing.
    Millis(u64),
    /// Right after its n-th write to a Service (its n-th switch) went out.
    ServiceWrite(u64),
}

/// What the harness shares between points.
pub struct Harness {
    pub client: Client,
    pub url: String,
    /// The sandbox administrator's bearer token.
    pub token: String,
    pub journal: Journal,
}

/// What a point left behind, for the summary and the comparison with the
/// run without kills.
pub struct Outcome {
    pub violations: Vec<String>,
    /// Kills that happened (a schedule may outlast a short run).
    pub kills: usize,
    /// Writes sent by every incarnation together.
    pub writes: u64,
    pub snapshot: Value,
    pub seen: checks::Seen,
    pub events: BTreeMap<(String, String), usize>,
    pub elapsed: Duration,
    /// Until the flow reached its end (before the last operator's stop).
    pub driven: Duration,
}

/// How long one point may take before it counts as stuck (generous: the
/// machine is shared; a healthy point takes a few seconds).
const POINT_DEADLINE: Duration = Duration::from_secs(120);

fn start_operator(
    url: &str,
    token: &str,
    namespace: &str,
    kill: Option<Kill>,
) -> (Running, Arc<Gate>) {
    let gate = match kill {
        Some(Kill::Writes(k)) => Gate::new(Some(k)),
        Some(Kill::ServiceWrite(n)) => Gate::after_service_writes(n),
        _ => Gate::new(None),
    };
    let client = gated_client(url, token, namespace, gate.clone());
    let running = Running::start_with(
        client,
        ControllerConfig {
            namespace: Some(namespace.to_owned()),
            // The harness plays the CanaryAnalysis controller (verdicts).
            canary_analysis: false,
            ..ControllerConfig::default()
        },
    );
    (running, gate)
}

pub async fn run(h: &Harness, flow: Flow, namespace: &str, schedule: &[Kill]) -> Outcome {
    let started = tokio::time::Instant::now();
    let deadline = started + POINT_DEADLINE;
    let world = World {
        client: h.client.clone(),
        namespace: namespace.to_owned(),
    };
    setup(h, flow, namespace).await;

    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let chaos = {
        let schedule = schedule.to_vec();
        let url = h.url.clone();
        let token = h.token.clone();
        let ns = namespace.to_owned();
        tokio::spawn(async move {
            let budget = |i: usize| schedule.get(i).copied();
            let (mut op, mut gate) = start_operator(&url, &token, &ns, budget(0));
            let mut kills = 0;
            let mut writes = 0;
            let mut finished = false;
            for (i, kill) in schedule.iter().enumerate() {
                let trigger = async {
                    match kill {
                        Kill::Writes(_) | Kill::ServiceWrite(_) => gate.tripped().await,
                        Kill::Millis(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                    }
                };
                tokio::select! {
                    _ = trigger => {}
                    _ = &mut done_rx => {
                        finished = true;
                        break;
                    }
                }
                gate.close();
                op.kill().await;
                kills += 1;
                writes += gate.sent();
                (op, gate) = start_operator(&url, &token, &ns, budget(i + 1));
            }
            if !finished {
                let _ = done_rx.await;
            }
            (op, gate, kills, writes)
        })
    };

    let mut violations = Vec::new();
    if let Err(e) = flow.drive(&world, deadline).await {
        violations.push(format!("did not converge: {e}; {}", describe(&world).await));
    }
    let driven = started.elapsed();
    let _ = done_tx.send(());
    let (op, gate, kills, mut writes) = chaos.await.expect("the chaos task does not panic");
    if let Err(e) = op.stop().await {
        violations.push(format!("the last operator did not stop cleanly: {e}"));
    }
    if std::env::var("CHAOS_VERBOSE").is_ok() {
        eprintln!(
            "{namespace}: flow done after {:.1}s, operator stopped after {:.1}s",
            driven.as_secs_f64(),
            (started.elapsed() - driven).as_secs_f64()
        );
    }
    writes += gate.sent();

    catch_up(h, &world).await;
    let (history, seen) = checks::history(flow, &h.journal.of(namespace));
    violations.extend(history);
    let snapshot = snapshot(&world).await;
    let events = events(&world).await;
    Outcome {
        violations,
        kills,
        writes,
        snapshot,
        seen,
        events,
        elapsed: started.elapsed(),
        driven,
    }
}

async fn setup(h: &Harness, flow: Flow, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(h.client.clone(), namespace);
    let svc = serde_json::from_value(json!({
        "metadata": {"name": ROLLOUT},
        "spec": {"selector": {"app": ROLLOUT}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("service created");
    let rollouts: Api<Rollout> = Api::namespaced(h.client.clone(), namespace);
    let rollout: Rollout = serde_json::from_value(flow.manifest(namespace)).expect("rollout");
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("rollout created");
}

/// Waits until the journal holds every write made so far in the namespace:
/// a marker annotation written last on each object kind it watches arrives
/// after every earlier version of that kind (one watch delivers in order).
async fn catch_up(h: &Harness, w: &World) {
    let marker = json!({"metadata": {"annotations": {"chaos.redblack.io/marker": "end"}}});
    let pp = PatchParams::default();
    let ns = &w.namespace;
    let mut marks: Vec<(Kind, String, u64)> = Vec::new();
    let rv = |o: &dyn Fn() -> Option<String>| o().and_then(|v| v.parse().ok()).unwrap_or(0);
    let r = Api::<Rollout>::namespaced(h.client.clone(), ns)
        .patch(ROLLOUT, &pp, &Patch::Merge(&marker))
        .await
        .expect("marker on the Rollout");
    marks.push((
        Kind::Rollout,
        ROLLOUT.to_owned(),
        rv(&|| r.resource_version()),
    ));
    let s = Api::<k8s_openapi::api::core::v1::Service>::namespaced(h.client.clone(), ns)
        .patch(ROLLOUT, &pp, &Patch::Merge(&marker))
        .await
        .expect("marker on the Service");
    marks.push((
        Kind::Service,
        ROLLOUT.to_owned(),
        rv(&|| s.resource_version()),
    ));
    if let Some(rs) = w.replica_sets().await.first() {
        let rs = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(h.client.clone(), ns)
            .patch(&rs.name_any(), &pp, &Patch::Merge(&marker))
            .await
            .expect("marker on a ReplicaSet");
        marks.push((
            Kind::ReplicaSet,
            rs.name_any(),
            rv(&|| rs.resource_version()),
        ));
    }
    if let Some(a) = w.analyses().await.first() {
        let a =
            Api::<redblack::api::canary_analysis::CanaryAnalysis>::namespaced(h.client.clone(), ns)
                .patch(&a.name_any(), &pp, &Patch::Merge(&marker))
                .await
                .expect("marker on an analysis");
        marks.push((Kind::Analysis, a.name_any(), rv(&|| a.resource_version())));
    }
    for (kind, name, rv) in marks {
        crate::support::eventually("the journal caught up", || async {
            h.journal.has_seen(kind, ns, &name, rv).then_some(())
        })
        .await;
    }
}

async fn snapshot(w: &World) -> Value {
    let rollout = w
        .rollout()
        .await
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or(Value::Null);
    let selector = w.selector().await.unwrap_or_default();
    let rs: Vec<Value> = w
        .replica_sets()
        .await
        .into_iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let services: Vec<String> = w.services().await.iter().map(|s| s.name_any()).collect();
    let analyses: Vec<Value> = w
        .analyses()
        .await
        .into_iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .collect();
    checks::snapshot(&rollout, &selector, &rs, &services, &analyses)
}

/// Every Event in the namespace (none is ever deleted here) by (reason, note).
async fn events(w: &World) -> BTreeMap<(String, String), usize> {
    let api: Api<Event> = Api::namespaced(w.client.clone(), &w.namespace);
    let mut out = BTreeMap::new();
    for e in api
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let key = (
            e.reason.clone().unwrap_or_default(),
            e.note.clone().unwrap_or_default(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A short picture of where a stuck point stopped.
async fn describe(w: &World) -> String {
    let r = w.rollout().await;
    let status = r
        .as_ref()
        .and_then(|r| r.status.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let fleets: Vec<String> = w
        .replica_sets()
        .await
        .iter()
        .map(|rs| {
            format!(
                "{}={:?}/{:?}",
                rs.name_any(),
                rs.spec.replicas,
                rs.status.as_ref().and_then(|s| s.ready_replicas)
            )
        })
        .collect();
    format!(
        "phase {} selector {:?} fleets {fleets:?} conditions {}",
        status["phase"],
        w.selector().await,
        status["conditions"]
    )
}
