//! Helpers for controller tests against the in-process sandbox: start a sandbox
//! with the CRDs installed, run (and kill) the operator in-process, build
//! Rollouts, and wait for conditions with generous timeouts (never timing
//! assertions).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use redblack::api::{POD_TEMPLATE_HASH_LABEL, Phase, Rollout, all_crds, pod_template_hash};
use redblack::cli::controller::{ControllerConfig, ControllerError, run_controller};
use redblack::web::health::Readiness;
use redblack::web::metrics::OperatorMetrics;
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous: the machine is shared; waiting is never what a test asserts.
pub const TIMEOUT: Duration = Duration::from_secs(90);
pub const NS: &str = "default";

pub struct Env {
    pub sandbox: Sandbox,
    pub client: Client,
}

impl Env {
    /// A sandbox whose pods become ready after `pod_ready_after` (unless their
    /// template says otherwise), with every CRD installed.
    pub async fn start(pod_ready_after: Duration) -> Env {
        Env::start_with(SandboxConfig {
            pod_ready_after,
            ..SandboxConfig::default()
        })
        .await
    }

    pub async fn start_with(config: SandboxConfig) -> Env {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let client = sandbox.client().expect("sandbox client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in all_crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD created");
        }
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
        eventually("the Rollout CRD is served", || async {
            rollouts.list(&ListParams::default()).await.ok().map(|_| ())
        })
        .await;
        Env { sandbox, client }
    }

    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), NS)
    }
    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), NS)
    }
    pub fn replica_sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), NS)
    }
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Starts the operator in-process.
    pub fn start_controller(&self) -> Running {
        Running::start(self.client.clone())
    }

    /// A Service selecting `app=<app>` (the user's object).
    pub async fn create_service(&self, name: &str, app: &str) -> Service {
        self.services()
            .create(&PostParams::default(), &service(name, app))
            .await
            .expect("service created")
    }

    pub async fn create_rollout(&self, manifest: Value) -> Rollout {
        let rollout: Rollout = serde_json::from_value(manifest).expect("valid Rollout JSON");
        self.rollouts()
            .create(&PostParams::default(), &rollout)
            .await
            .expect("rollout created")
    }

    pub async fn get(&self, name: &str) -> Rollout {
        self.rollouts().get(name).await.expect("rollout exists")
    }

    /// Merge-patches the Rollout (as `kubectl patch --type merge` would).
    pub async fn patch(&self, name: &str, patch: Value) -> Rollout {
        self.rollouts()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("rollout patched")
    }

    /// Sets the container image: a new revision.
    pub async fn set_image(&self, name: &str, image: &str) -> Rollout {
        self.patch(
            name,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
        )
        .await
    }

    /// The hash label the active Service selects, if any.
    pub async fn selected(&self, service: &str) -> Option<String> {
        self.services()
            .get(service)
            .await
            .ok()?
            .spec?
            .selector?
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
    }

    pub async fn selector(&self, service: &str) -> BTreeMap<String, String> {
        self.services()
            .get(service)
            .await
            .expect("service exists")
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default()
    }

    /// The ReplicaSets the Rollout owns (by controller owner reference).
    pub async fn owned(&self, rollout: &Rollout) -> Vec<ReplicaSet> {
        let uid = rollout.uid();
        self.replica_sets()
            .list(&ListParams::default())
            .await
            .expect("list replicasets")
            .items
            .into_iter()
            .filter(|rs| {
                rs.owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
            })
            .collect()
    }

    pub async fn rs_for(&self, name: &str, hash: &str) -> Option<ReplicaSet> {
        self.replica_sets()
            .get_opt(&format!("{name}-{hash}"))
            .await
            .ok()
            .flatten()
    }

    /// Pod uids of a revision's fleet (running, not terminating).
    pub async fn pod_uids(&self, hash: &str) -> Vec<String> {
        let mut uids: Vec<String> = self
            .pods()
            .list(&ListParams::default().labels(&format!("{POD_TEMPLATE_HASH_LABEL}={hash}")))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.uid())
            .collect();
        uids.sort();
        uids
    }

    /// Waits until the Rollout's status describes its current generation in `phase`.
    pub async fn wait_phase(&self, name: &str, phase: Phase) -> Rollout {
        eventually(
            &format!("Rollout {name} reaches phase {phase:?}"),
            || async {
                let r = self.rollouts().get(name).await.ok()?;
                let s = r.status.as_ref()?;
                (s.phase == Some(phase) && s.observed_generation == r.metadata.generation)
                    .then_some(r)
            },
        )
        .await
    }

    /// Waits until `service` selects `hash`.
    pub async fn wait_selected(&self, service: &str, hash: &str) {
        eventually(&format!("Service {service} selects {hash}"), || async {
            (self.selected(service).await.as_deref() == Some(hash)).then_some(())
        })
        .await
    }

    /// Waits until the ReplicaSet has `replicas` desired and no more pods.
    pub async fn wait_rs_size(&self, name: &str, hash: &str, replicas: i32) -> ReplicaSet {
        eventually(
            &format!("ReplicaSet {name}-{hash} at {replicas} replicas"),
            || async {
                let rs = self.rs_for(name, hash).await?;
                let st = rs.status.clone().unwrap_or_default();
                (rs.spec.replicas == Some(replicas)
                    && st.replicas == replicas
                    && st.ready_replicas.unwrap_or(0) == replicas)
                    .then_some(rs)
            },
        )
        .await
    }

    /// Reasons of the Events recorded on the Rollout, oldest first.
    pub async fn event_reasons(&self, rollout: &Rollout) -> Vec<String> {
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), NS);
        let mut list: Vec<K8sEvent> = events
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.clone()) == rollout.uid())
            .collect();
        list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        list.into_iter().filter_map(|e| e.reason).collect()
    }

    /// Writes (create/update/patch/delete) the operator made to the kinds it
    /// manages, from the sandbox's request counters (the in-process sandbox
    /// controllers write to the store directly and are not counted).
    pub fn writes(&self) -> u64 {
        let counts = self.sandbox.request_counts();
        let mut n = 0;
        for resource in [
            "replicasets",
            "services",
            "rollouts",
            "rollouts/status",
            "replicasets/scale",
            "events",
        ] {
            for verb in ["create", "update", "patch", "delete"] {
                n += counts.get(verb, resource);
            }
        }
        n
    }

    /// As [`Env::writes`], without Events.
    pub fn object_writes(&self) -> u64 {
        let counts = self.sandbox.request_counts();
        let events: u64 = ["create", "update", "patch", "delete"]
            .iter()
            .map(|v| counts.get(v, "events"))
            .sum();
        self.writes() - events
    }
}

/// The operator running in-process.
pub struct Running {
    task: JoinHandle<Result<(), ControllerError>>,
    stop: Option<oneshot::Sender<()>>,
    pub readiness: Arc<Readiness>,
    pub metrics: OperatorMetrics,
}

impl Running {
    pub fn start(client: Client) -> Running {
        // These tests play the CanaryAnalysis controller themselves: they write
        // the verdicts a canary's analysis reaches.
        Running::start_with(
            client,
            ControllerConfig {
                canary_analysis: false,
                ..ControllerConfig::default()
            },
        )
    }

    /// The operator with this configuration (e.g. both controllers and a
    /// Prometheus URL, for the end-to-end tests).
    pub fn start_with(client: Client, cfg: ControllerConfig) -> Running {
        let (tx, rx) = oneshot::channel::<()>();
        let readiness = cfg.readiness.clone();
        let metrics = cfg.metrics.clone();
        let task = tokio::spawn(run_controller(client, cfg, async move {
            let _ = rx.await;
        }));
        Running {
            task,
            stop: Some(tx),
            readiness,
            metrics,
        }
    }

    /// Kills it: the task is aborted wherever it is (mid-write included).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Graceful shutdown; returns what `run_controller` returned.
    pub async fn stop(mut self) -> Result<(), ControllerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(TIMEOUT, self.task).await {
            Ok(joined) => joined.expect("controller task not aborted"),
            Err(_) => panic!("the operator did not stop within {TIMEOUT:?} of its shutdown signal"),
        }
    }
}

/// Polls `f` every 50 ms until it yields `Some`, for at most [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(TIMEOUT, what, f).await
}

/// As [`eventually`], for at most `timeout` (e.g. a whole canary analysis).
pub async fn eventually_within<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the Rollout `name` until its current generation (status observed
/// it) satisfies `done`, for at most `timeout`. On a timeout the panic says
/// `what` and what `explain` makes of the last Rollout read (its status,
/// its analyses…), so a red run in CI says where the rollout stopped.
pub async fn wait_rollout_explained<Ex, ExFut>(
    rollouts: &Api<Rollout>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
    explain: Ex,
) -> Rollout
where
    Ex: FnOnce(Option<Rollout>) -> ExFut,
    ExFut: Future<Output = String>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(r) = rollouts.get(name).await {
            let current = r
                .status
                .as_ref()
                .is_some_and(|s| s.observed_generation == r.metadata.generation);
            if current && done(&r) {
                return r;
            }
            last = Some(r);
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting until {what}\n{}",
                explain(last).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Rollout of `image` with `replicas` pods, selecting `app=<name>`, switching
/// the Service `<name>`. Adjust with [`set`].
pub fn rollout_json(name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "strategy": {"redBlack": {"activeService": name, "scaleDownDelay": "30m"}}
        }
    })
}

/// Sets a JSON pointer in a manifest, creating objects on the way.
pub fn set(mut v: Value, pointer: &str, value: Value) -> Value {
    let mut cur = &mut v;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let key = part.replace("~1", "/").replace("~0", "~");
        if i + 1 == parts.len() {
            cur[key.as_str()] = value;
            break;
        }
        if cur.get(key.as_str()).is_none() {
            cur[key.as_str()] = json!({});
        }
        cur = &mut cur[key.as_str()];
    }
    v
}

/// The revision hash the Rollout's current template has.
pub fn hash_of(rollout: &Rollout) -> String {
    pod_template_hash(&rollout.spec.template)
}

impl Env {
    /// Reasons of the Events recorded on the Rollout, once every reason of
    /// `expected` is among them (the operator records Events after the writes
    /// they describe, so a status a test waited for may precede them).
    pub async fn wait_event_reasons(&self, rollout: &Rollout, expected: &[&str]) -> Vec<String> {
        let what = format!("the Events {expected:?} are recorded");
        eventually(&what, || async {
            let reasons = self.event_reasons(rollout).await;
            expected
                .iter()
                .all(|e| reasons.iter().any(|r| r == e))
                .then_some(reasons)
        })
        .await
    }

    /// How many Events with `reason` are recorded on the Rollout.
    pub async fn count_events(&self, rollout: &Rollout, reason: &str) -> usize {
        self.event_reasons(rollout)
            .await
            .iter()
            .filter(|r| *r == reason)
            .count()
    }
}

/// Every version of the objects of one kind a watch delivered, from its first
/// list on: what a test asserts about writes it must not miss (e.g. "no status
/// that is not Healthy"). The watch stops when the recorder is dropped.
pub struct Recorder<K: 'static> {
    seen: Arc<std::sync::Mutex<Vec<K>>>,
    listed: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl<K> Recorder<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    /// Starts watching `api` and waits until its first list is recorded.
    pub async fn start(api: Api<K>) -> Recorder<K> {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, l) = (seen.clone(), listed.clone());
        let task = tokio::spawn(async move {
            // Backoff: a watch against a stopped sandbox must not spin
            // without yielding (an aborted task would never stop).
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        s.lock().unwrap().push(o);
                    }
                    Ok(watcher::Event::InitDone) => {
                        l.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        });
        let recorder = Recorder { seen, listed, task };
        eventually("the recorder's watch has listed", || async {
            recorder
                .listed
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(())
        })
        .await;
        recorder
    }

    /// Every version seen so far, in the order the watch delivered them.
    pub fn seen(&self) -> Vec<K> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until the watch has delivered `object`'s resourceVersion (or a
    /// later write of it): every earlier write of it was recorded by then.
    pub async fn caught_up_with(&self, object: &K) {
        let name = object.name_any();
        let rv: u64 = object
            .resource_version()
            .and_then(|v| v.parse().ok())
            .expect("a numeric resourceVersion");
        eventually("the recorder caught up", || async {
            self.seen()
                .iter()
                .filter(|o| o.name_any() == name)
                .filter_map(|o| o.resource_version()?.parse::<u64>().ok())
                .any(|v| v >= rv)
                .then_some(())
        })
        .await
    }
}

impl<K> Drop for Recorder<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reconciles of `controller` that have finished, from the operator's metrics.
pub fn finished_reconciles(metrics: &OperatorMetrics, controller: &str) -> u64 {
    let text = metrics.encode().expect("metrics encode");
    let prefix =
        format!("redblack_reconcile_duration_seconds_count{{controller=\"{controller}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A Service named `name` selecting `app=<app>`, port 80 to 8080.
pub fn service(name: &str, app: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080),
                ),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The Rollout `web` (in [`NS`]) of `redblack/demo-app:<version>`, 3 pods, with the
/// demo app's behaviour from `env` and `strategy` merged into `redBlack`.
pub fn web(version: &str, env: &[(&str, &str)], strategy: Value) -> Value {
    let mut vars = vec![
        json!({"name": "DEMO_VERSION", "value": version}),
        // Some latency, so that the histogram quantiles are not all in the
        // first bucket.
        json!({"name": "DEMO_LATENCY_MS", "value": "5"}),
    ];
    vars.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    let mut red_black = json!({"activeService": "web", "scaleDownDelay": "10m"});
    if let (Some(base), Some(extra)) = (red_black.as_object_mut(), strategy.as_object()) {
        base.extend(extra.clone());
    }
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "progressDeadlineSeconds": 180,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": format!("redblack/demo-app:{version}"),
                    "ports": [{"containerPort": 8080}],
                    "env": vars,
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                       "periodSeconds": 1}
                }]}
            },
            "strategy": {"redBlack": red_black}
        }
    })
}
