//! The whole operator (Rollout and CanaryAnalysis controllers, in-process)
//! against an API server that fails about a fifth of every verb (500, 503,
//! 429 with Retry-After, 409 on writes), cuts every watch after a few hundred
//! milliseconds and answers a quarter of the watches with 410 Expired. Several
//! Rollouts go through create → update → a canary that passes and is promoted
//! → a canary that fails and is reverted; each must converge to the right
//! final state, and the store's own event history (global, ordered
//! resourceVersions, untouched by the faults) must show that no Service ever
//! sent traffic to a fleet without ready pods.
//!
//! `make faults` runs it with 10 Rollouts (`FAULTS_ROLLOUTS=50 make faults`:
//! 50); without the variable (`make test`) it drives 1.
//! The numbers (requests, faults injected by kind) are printed for
//! docs/reliability.md.

mod fake_prometheus;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_prometheus::{FakePrometheus, Query, Reply};
use futures::future::join_all;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase};
use redblack::api::{
    AbortReason, CanaryPhase, Outcome, POD_TEMPLATE_HASH_LABEL, Phase, ROLE_LABEL, ROLLOUT_LABEL,
    Rollout,
};
use redblack::cli::controller::ControllerConfig;
use redblack_sandbox::store::{EventType, Store};
use redblack_sandbox::{FaultAction, FaultConfig, FaultRule, SandboxConfig};
use serde_json::{Value, json};
use support::{
    Env, NS, Running, eventually_within, hash_of, rollout_json, service, set,
    wait_rollout_explained,
};

/// Bound on one step of one Rollout under faults (generous: shared machine).
const STEP_WAIT: Duration = Duration::from_secs(240);
const REPLICAS: i32 = 2;

fn rollouts_to_run() -> usize {
    std::env::var("FAULTS_ROLLOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn error(verb: Option<&str>, probability: f64, code: u16) -> FaultRule {
    FaultRule {
        verb: verb.map(str::to_owned),
        resource: None,
        probability,
        action: FaultAction::Error { code },
    }
}

/// About 20 % of every verb fails (first matching rule that fires wins):
/// 500, 503 and 429 at 7 % each on everything (1 − 0.93³ ≈ 19.6 %), 409 at
/// 5 % more on writes (≈ 23.6 %), and a quarter of the watches more expire
/// at once (410). Every watch is cut after 300 ms.
fn fault_mix() -> FaultConfig {
    let mut rules = vec![
        error(None, 0.07, 500),
        error(None, 0.07, 503),
        error(None, 0.07, 429),
    ];
    for verb in ["create", "update", "patch", "delete"] {
        rules.push(error(Some(verb), 0.05, 409));
    }
    rules.push(error(Some("watch"), 0.25, 410));
    FaultConfig {
        rules,
        watch_cut_after: Some(Duration::from_millis(300)),
    }
}

/// Retries a request of the test itself (its client meets the faults too)
/// until it succeeds. Only for idempotent calls; injected faults happen
/// before the request is served, so a failed call changed nothing.
async fn retry<T, E: std::fmt::Debug, Fut>(what: &str, mut f: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    eventually_within(STEP_WAIT, what, || {
        let fut = f();
        async move { fut.await.ok() }
    })
    .await
}

/// Latency 0.1 for everything but the canaries of `bad` hashes (0.5): a
/// continuous metric the judge passes when identical and fails at 5×.
fn fake_answer(bad: Arc<Mutex<Vec<String>>>) -> fake_prometheus::Answer {
    Arc::new(move |q: &Query| {
        let bad = bad
            .lock()
            .unwrap()
            .iter()
            .any(|h| q.query.contains(&format!("{h}-canary")));
        let value = if bad { "0.5" } else { "0.1" };
        Reply::one(q, |_, _| Some(value.to_owned()))
    })
}

fn canary_strategy() -> Value {
    json!({"replicas": 1, "analysis": {"inline": {
        "interval": "2s", "lifetime": "4s", "step": "1s",
        "metrics": [{"name": "latency", "direction": "increase",
                     "query": "avg(latency_seconds{namespace=\"${namespace}\", pod=~\"${podRegex}\"})"}]
    }}})
}

/// The hash the Rollout's template will have after `patch`, known before
/// the patch is sent (so the fake Prometheus knows the bad canary in time).
fn hash_after(current: &Rollout, patch: &Value) -> String {
    let mut v = serde_json::to_value(current).unwrap();
    json_patch::merge(&mut v, patch);
    let r: Rollout = serde_json::from_value(v).unwrap();
    hash_of(&r)
}

struct World<'a> {
    env: &'a Env,
    bad: Arc<Mutex<Vec<String>>>,
    started: std::time::Instant,
}

impl World<'_> {
    /// Progress on stderr, for a run that times out.
    fn step(&self, name: &str, what: &str) {
        eprintln!(
            "[{:>6.1}s] {name}: {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    async fn rollout(&self, name: &str) -> Rollout {
        retry(&format!("get {name}"), || async {
            self.env.rollouts().get(name).await
        })
        .await
    }

    async fn patch(&self, name: &str, patch: &Value) -> Rollout {
        retry(&format!("patch {name}"), || async {
            self.env
                .rollouts()
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
        })
        .await
    }

    /// Waits until the Rollout's current generation satisfies `done`; on a
    /// timeout the panic shows what the operator last wrote (the Rollout's
    /// generation and status, its analyses), so a red run says where it stopped.
    async fn wait(&self, name: &str, what: &str, done: impl Fn(&Rollout) -> bool) -> Rollout {
        wait_rollout_explained(
            &self.env.rollouts(),
            name,
            STEP_WAIT,
            &format!("{name}: {what}"),
            done,
            |last| self.explain(name, last),
        )
        .await
    }

    /// The Rollout's last generation and status and its analyses' phases,
    /// read as well as the faults allow.
    async fn explain(&self, name: &str, last: Option<Rollout>) -> String {
        let rollout = match last {
            Some(r) => format!(
                "generation {:?}, status {}",
                r.metadata.generation,
                serde_json::to_string_pretty(&r.status).unwrap_or_default()
            ),
            None => "the Rollout was never read".into(),
        };
        let api: Api<CanaryAnalysis> = Api::namespaced(self.env.client.clone(), NS);
        let lp = ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}"));
        let mut analyses = None;
        for _ in 0..20 {
            if let Ok(list) = api.list(&lp).await {
                analyses = Some(list.items);
                break;
            }
        }
        let analyses = match analyses {
            Some(items) => items
                .iter()
                .map(|a| {
                    let st = a.status.as_ref();
                    format!(
                        "  {}: {:?} {:?}",
                        a.name_any(),
                        st.and_then(|s| s.phase),
                        st.and_then(|s| s.message.clone())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            None => "  (could not list them through the faults)".into(),
        };
        format!("the Rollout's last {rollout}\nits analyses:\n{analyses}")
    }

    async fn wait_selected(&self, name: &str, hash: &str) {
        eventually_within(STEP_WAIT, &format!("{name} selects {hash}"), || async {
            (self.env.selected(name).await.as_deref() == Some(hash)).then_some(())
        })
        .await
    }

    async fn wait_gone(&self, rs: &str) {
        eventually_within(STEP_WAIT, &format!("{rs} deleted"), || async {
            self.env
                .replica_sets()
                .get_opt(rs)
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await
    }

    async fn analysis(&self, name: &str) -> CanaryAnalysis {
        let api: Api<CanaryAnalysis> = Api::namespaced(self.env.client.clone(), NS);
        retry(&format!("get analysis {name}"), || api.get(name)).await
    }

    /// create → update → a passing canary (promoted) → a failing canary (reverted).
    async fn drive(&self, name: &str) {
        let svc = service(name, name);
        retry(&format!("create Service {name}"), || async {
            match self
                .env
                .services()
                .create(&PostParams::default(), &svc)
                .await
            {
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await;
        let manifest = set(
            rollout_json(name, "demo:1", REPLICAS),
            "/spec/strategy/redBlack/scaleDownDelay",
            json!("3s"),
        );
        let rollout: Rollout = serde_json::from_value(manifest).unwrap();
        retry(&format!("create Rollout {name}"), || async {
            match self
                .env
                .rollouts()
                .create(&PostParams::default(), &rollout)
                .await
            {
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await;
        let healthy = |r: &Rollout| r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Healthy);

        // 1. First deploy.
        let h1 = hash_of(&self.wait(name, "v1 Healthy", healthy).await);
        self.wait_selected(name, &h1).await;

        self.step(name, "v1 Healthy");
        // 2. A plain red/black update.
        let image = |tag: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": tag}]}}}});
        let h2 = hash_of(&self.patch(name, &image("demo:2")).await);
        let r = self
            .wait(name, "v2 Healthy", |r| {
                healthy(r) && r.status.as_ref().unwrap().stable_revision.as_deref() == Some(&h2)
            })
            .await;
        assert_eq!(hash_of(&r), h2);
        self.wait_selected(name, &h2).await;

        self.step(name, "v2 Healthy");
        // 3. A canary as good as the stable fleet: judged, promoted.
        let mut v3 = image("demo:3");
        v3["spec"]["strategy"] = json!({"redBlack": {"canary": canary_strategy()}});
        let h3 = hash_of(&self.patch(name, &v3).await);
        let r = self
            .wait(name, "v3 promoted and Healthy", |r| {
                healthy(r) && r.status.as_ref().unwrap().stable_revision.as_deref() == Some(&h3)
            })
            .await;
        self.wait_selected(name, &h3).await;
        let status = r.status.clone().unwrap();
        let promoted = status.history.iter().rfind(|h| h.hash == h3).unwrap();
        assert_eq!(promoted.outcome, Outcome::Promoted, "{name}: {promoted:?}");
        let passed = self.analysis(&format!("{name}-{h3}-1")).await;
        assert_eq!(
            passed.status.as_ref().and_then(|s| s.phase),
            Some(CanaryAnalysisPhase::Passed),
            "{name}: {:?}",
            passed.status
        );

        self.step(name, "v3 promoted");
        // 4. A canary 5× slower: judged, reverted; traffic back on v3 alone.
        let v4 = image("demo:4");
        let h4 = hash_after(&self.rollout(name).await, &v4);
        self.bad.lock().unwrap().push(h4.clone());
        assert_eq!(hash_of(&self.patch(name, &v4).await), h4);
        let r = self
            .wait(name, "v4 reverted", |r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.canary.as_ref())
                    .is_some_and(|c| {
                        c.revision.as_deref() == Some(&h4) && c.phase == Some(CanaryPhase::Failed)
                    })
            })
            .await;
        let status = r.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Degraded), "{name}");
        assert_eq!(
            status.abort.as_ref().map(|a| a.reason),
            Some(AbortReason::AnalysisFailed),
            "{name}"
        );
        assert_eq!(status.stable_revision.as_deref(), Some(h3.as_str()));
        self.wait_selected(name, &h3).await;
        self.wait_gone(&format!("{name}-{h4}-canary")).await;
        self.wait_gone(&format!("{name}-{h3}-baseline")).await;
        let failed = self.analysis(&format!("{name}-{h4}-1")).await;
        assert_eq!(
            failed.status.as_ref().and_then(|s| s.phase),
            Some(CanaryAnalysisPhase::Failed),
            "{name}: {:?}",
            failed.status
        );
        assert!(
            retry("get rs", || async {
                self.env
                    .replica_sets()
                    .get_opt(&format!("{name}-{h4}"))
                    .await
            })
            .await
            .is_none(),
            "{name}: the full v4 fleet is never created"
        );
        self.step(name, "v4 reverted");
        // Old fleets retire after scaleDownDelay: v3 alone keeps pods.
        eventually_within(STEP_WAIT, &format!("{name}: only v3 runs"), || async {
            let sets = self
                .env
                .replica_sets()
                .list(&Default::default())
                .await
                .ok()?;
            let live: Vec<String> = sets
                .items
                .iter()
                .filter(|rs| rs.name_any().starts_with(&format!("{name}-")))
                .filter(|rs| rs.spec.replicas.unwrap_or(0) > 0)
                .map(|rs| rs.name_any())
                .collect();
            (live == vec![format!("{name}-{h3}")]).then_some(())
        })
        .await;
    }
}

/// Replays the store's event history and records every moment a Service of
/// a Rollout sends traffic to a fleet without ready pods: a switch to a hash
/// whose fleet is not fully ready, a widening (replica-ratio canary) before
/// the canary and baseline fleets are ready, or a selected fleet scaled to
/// zero or deleted while still selected.
#[derive(Default)]
struct TrafficCheck {
    names: Vec<String>,
    /// The last resourceVersion replayed.
    from: u64,
    replica_sets: HashMap<String, Value>,
    services: HashMap<String, Value>,
    violations: Vec<String>,
    events: u64,
    /// What happened to each Rollout's Service and fleets, to explain a violation.
    trace: Vec<String>,
    switches: u64,
    widenings: u64,
}

fn selector(svc: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(svc["spec"]["selector"].clone()).unwrap_or_default()
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

impl TrafficCheck {
    /// The fleets a Service's selector sends traffic to (names), and the
    /// replicas each must have ready.
    fn selected(&self, rollout: &str, sel: &BTreeMap<String, String>) -> Vec<(String, i64)> {
        match sel.get(POD_TEMPLATE_HASH_LABEL) {
            Some(hash) => vec![(format!("{rollout}-{hash}"), i64::from(REPLICAS))],
            None if sel.get("app").map(String::as_str) == Some(rollout) => {
                // Widened: the canary and baseline fleets of the Rollout.
                let mut out: Vec<(String, i64)> = self
                    .replica_sets
                    .iter()
                    .filter(|(n, rs)| {
                        n.starts_with(&format!("{rollout}-"))
                            && rs["metadata"]["labels"][ROLE_LABEL].is_string()
                            && int(rs, "/spec/replicas") > 0
                    })
                    .map(|(n, rs)| (n.clone(), int(rs, "/spec/replicas")))
                    .collect();
                out.sort();
                out
            }
            None => Vec::new(),
        }
    }

    fn check_ready(&mut self, rv: u64, rollout: &str, fleets: &[(String, i64)], what: &str) {
        if fleets.is_empty() {
            self.violations
                .push(format!("rv {rv}: {rollout} {what} with no fleet behind it"));
        }
        for (name, want) in fleets {
            let ready = self
                .replica_sets
                .get(name)
                .map_or(0, |rs| int(rs, "/status/readyReplicas"));
            if ready < *want.max(&1) {
                self.violations.push(format!(
                    "rv {rv}: {rollout} {what}: {name} has {ready} ready of {want}"
                ));
            }
        }
    }

    fn apply(&mut self, ev: &redblack_sandbox::store::StoredEvent) {
        self.events += 1;
        if ev.namespace() != NS {
            return;
        }
        let name = ev.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let deleted = ev.event_type == EventType::Deleted;
        match (ev.gr.group.as_str(), ev.gr.resource.as_str()) {
            ("", "services") if self.names.contains(&name) => {
                let new = selector(&ev.object);
                let old = self.services.get(&name).map(selector);
                self.services.insert(name.clone(), (*ev.object).clone());
                if old.as_ref() != Some(&new) {
                    self.trace
                        .push(format!("rv {}: Service {name} selects {new:?}", ev.rv));
                }
                if old.as_ref().is_some_and(|o| *o != new) {
                    let widened = !new.contains_key(POD_TEMPLATE_HASH_LABEL);
                    if widened {
                        self.widenings += 1;
                    } else {
                        self.switches += 1;
                    }
                    let fleets = self.selected(&name, &new);
                    self.check_ready(ev.rv, &name, &fleets, "switched");
                }
            }
            ("apps", "replicasets") => {
                let old = self.replica_sets.get(&name).cloned();
                if deleted {
                    self.replica_sets.remove(&name);
                } else {
                    self.replica_sets.insert(name.clone(), (*ev.object).clone());
                }
                let (from, to) = (
                    old.as_ref().map(|o| int(o, "/spec/replicas")),
                    (!deleted).then(|| int(&ev.object, "/spec/replicas")),
                );
                if from != to {
                    self.trace.push(format!(
                        "rv {}: ReplicaSet {name} replicas {from:?} -> {to:?}",
                        ev.rv
                    ));
                }
                let shrunk = old.is_some_and(|o| int(&o, "/spec/replicas") > 0)
                    && (deleted || int(&ev.object, "/spec/replicas") == 0);
                if !shrunk {
                    return;
                }
                // A fleet taken away while a Service still sends it traffic.
                let services: Vec<(String, BTreeMap<String, String>)> = self
                    .services
                    .iter()
                    .map(|(n, s)| (n.clone(), selector(s)))
                    .collect();
                for (rollout, sel) in services {
                    let before: Vec<String> = match sel.get(POD_TEMPLATE_HASH_LABEL) {
                        Some(h) => vec![format!("{rollout}-{h}")],
                        None => {
                            let role = ev.object["metadata"]["labels"][ROLE_LABEL].is_string();
                            if role && name.starts_with(&format!("{rollout}-")) {
                                vec![name.clone()]
                            } else {
                                Vec::new()
                            }
                        }
                    };
                    if before.contains(&name) {
                        self.violations.push(format!(
                            "rv {}: {name} scaled to 0 or deleted while {rollout} selects it",
                            ev.rv
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    /// Replays the store's history after the last event seen (exact: no
    /// watch, no faults).
    fn drain(&mut self, store: &Store) {
        let (backlog, _) = store
            .watch_from(self.from)
            .expect("the history still holds every event since the last drain");
        for ev in backlog {
            self.from = ev.rv;
            self.apply(&ev);
        }
    }
}

/// `make test` drives one Rollout (under a minute, 43 s on a loaded machine: the canary steps wait
/// out their analyses); `make faults` drives ten (`FAULTS_ROLLOUTS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rollout_converges_through_api_faults_and_traffic_only_reaches_ready_fleets() {
    let env = Env::start_with(SandboxConfig {
        pod_ready_after: Duration::from_millis(200),
        ..SandboxConfig::default()
    })
    .await;
    let n = rollouts_to_run();
    let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
    let bad = Arc::new(Mutex::new(Vec::new()));
    let prometheus = FakePrometheus::start(fake_answer(bad.clone())).await;

    // The checker follows the store from here on, polling its history
    // (so a long run never outgrows it).
    let store = env.sandbox.store();
    let check = Arc::new(Mutex::new(TrafficCheck {
        names: names.clone(),
        from: store.resource_version(),
        ..TrafficCheck::default()
    }));
    let follower = {
        let (check, store) = (check.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                check.lock().unwrap().drain(&store);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let counts = env.sandbox.request_counts();
    counts.reset();
    env.sandbox.set_faults(fault_mix());
    let operator = Running::start_with(
        env.client.clone(),
        ControllerConfig {
            prometheus_url: Some(prometheus.url.clone()),
            ..ControllerConfig::default()
        },
    );
    let world = World {
        env: &env,
        bad: bad.clone(),
        started: std::time::Instant::now(),
    };
    join_all(names.iter().map(|name| world.drive(name))).await;
    env.sandbox.set_faults(FaultConfig::default());
    let requests = counts.total();
    let faults = counts.faults_total();
    let by_kind = counts.faults_by_kind();
    let by_verb = counts.faults_by_verb();
    let requests_by_verb = counts.by_verb();
    follower.abort();
    let _ = follower.await;
    let mut check = std::mem::take(&mut *check.lock().unwrap());
    check.drain(&store);

    eprintln!(
        "api faults: {n} rollouts converged; {requests} requests, {faults} faults injected ({:.1} %): {by_kind:?}",
        100.0 * faults as f64 / requests.max(1) as f64
    );
    for (verb, total) in &requests_by_verb {
        let f = by_verb.get(verb).copied().unwrap_or(0);
        eprintln!(
            "  {verb:>16}: {total:>6} requests, {f:>5} faults ({:.1} %)",
            100.0 * f as f64 / (*total).max(1) as f64
        );
    }
    eprintln!(
        "  store events replayed: {}; Service switches {}, widenings {}; fake Prometheus queries {}",
        check.events,
        check.switches,
        check.widenings,
        prometheus.queries()
    );
    // The history of every Rollout a violation names, to explain it.
    for name in &names {
        let prefix = format!(" {name}");
        if check
            .violations
            .iter()
            .any(|v| v.contains(&format!(" {name}-")) || v.contains(&format!(" {name} ")))
        {
            eprintln!("history of {name}:");
            for line in check
                .trace
                .iter()
                .filter(|l| l.contains(&format!("{prefix}-")) || l.contains(&format!("{prefix} ")))
            {
                eprintln!("  {line}");
            }
        }
    }
    assert!(
        check.violations.is_empty(),
        "traffic reached fleets without ready pods:\n{}",
        check.violations.join("\n")
    );
    // Each Rollout switched at least v1, v2, v3 and widened once per canary.
    assert!(
        check.switches >= 3 * n as u64,
        "{} switches",
        check.switches
    );
    assert!(check.widenings >= n as u64, "{} widenings", check.widenings);
    // The run meant something: faults of every kind were injected, at ≈ 20 %.
    for kind in ["500", "503", "429", "409", "410"] {
        assert!(
            by_kind.get(kind).copied().unwrap_or(0) > 0,
            "no {kind}: {by_kind:?}"
        );
    }
    assert!(
        faults * 10 >= requests,
        "{faults} faults of {requests} requests"
    );
    operator.stop().await.expect("the operator stops cleanly");
    env.sandbox.shutdown().await;
}
