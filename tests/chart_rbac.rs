//! The operator under the RBAC the Helm chart grants, in a sandbox that
//! enforces RBAC: the chart is rendered with the real `helm template`, its
//! ServiceAccount and RBAC objects and the CRDs are applied, and the
//! operator's controllers (Rollout, CanaryAnalysis, the notifier: the
//! Rollout subscribes to a Notifier) run in-process with a client that
//! authenticates as the chart's ServiceAccount.
//!
//! - Cluster-wide install: a canary-gated rollout passes and a bad one is
//!   reverted.
//! - Namespaced install (`watchNamespace`): the same with a Role only.
//! - Both: the leader-election Role lets the ServiceAccount take, renew and
//!   hand back the Lease in the release namespace, and nowhere else.
//! - The binaries: `redblack sandbox --kubeconfig-for-sa` and `redblack
//!   controller` with the rendered Deployment's arguments (leader election
//!   on) and the ServiceAccount's kubeconfig roll a Rollout out.
//! - A second Rollout, `legacy`, takes its template from a Deployment
//!   (`workloadRef`, `scaleDown: onsuccess`): the Deployment is scaled to 0.
//! - Every rule of the rendered ClusterRole is needed: without it the
//!   operator fails visibly, a Warning Event or a Rollout condition quoting
//!   the API's 403. Each rule is removed in its own namespace (one sandbox,
//!   the operators run concurrently), bound there by a RoleBinding.
//!
//! The CanaryAnalysis controller judges a synthetic metric (a `MetricSource`
//! that answers every query, high for the bad revision's pods): this test is
//! about permissions, not statistics.

mod tools;

use tools::{create, helm_template, root};

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use redblack::analysis::controller::{AnalysisController, AnalysisControllerConfig, SourceFactory};
use redblack::analysis::endpoint::EndpointConfig;
use redblack::analysis::source::{MetricSource, Sample, Samples, SourceError};
use redblack::api::canary_analysis::CanaryAnalysis;
use redblack::api::{Phase, Rollout, pod_template_hash};
use redblack::rollout::controller::{RolloutController, Settings, http_routes_served};
use redblack::web::metrics::OperatorMetrics;
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

const RELEASE_NS: &str = "redblack-system";
const TIMEOUT: Duration = Duration::from_secs(120);

fn is_rbac(o: &Value) -> bool {
    matches!(
        o["kind"].as_str(),
        Some("ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding")
    )
}

async fn namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
}

/// A sandbox whose requests without credentials are anonymous (so only
/// tokens count), with the CRDs installed.
async fn sandbox() -> (Sandbox, Client) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sandbox = Sandbox::start(SandboxConfig {
        pod_ready_after: Duration::from_millis(200),
        anonymous: redblack_sandbox::auth::Anonymous::Unauthenticated,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let admin = sandbox.client().expect("admin client");
    for file in [
        "rollouts",
        "canaryanalyses",
        "canaryanalysistemplates",
        "notifiers",
    ] {
        let path = root().join(format!("charts/redblack/crds/{file}.redblack.io.yaml"));
        let yaml = std::fs::read_to_string(path).expect("CRD file");
        let crd: Value = serde_yaml::from_str(&yaml).expect("CRD yaml");
        create(&admin, &crd).await;
    }
    namespace(&admin, RELEASE_NS).await;
    (sandbox, admin)
}

/// Answers every range query with one point per step: 100 for the pods of
/// the `bad` revision, 10 (with a little noise) for every other.
struct Synthetic {
    bad: std::sync::Mutex<Vec<String>>,
}

impl MetricSource for Synthetic {
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        let bad = self
            .bad
            .lock()
            .unwrap()
            .iter()
            .any(|hash| query.contains(hash.as_str()));
        Box::pin(async move {
            let step = chrono::Duration::from_std(step).unwrap();
            let mut points = Vec::new();
            let mut t = start;
            let mut i = 0u32;
            while t <= end {
                let noise = f64::from(i % 5) * 0.1;
                let value = if bad { 100.0 + noise } else { 10.0 + noise };
                points.push(Sample {
                    timestamp: t,
                    value,
                });
                t += step;
                i += 1;
            }
            Ok(Samples::new(points))
        })
    }

    fn query_instant<'a>(
        &'a self,
        _query: &'a str,
        time: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        Box::pin(async move {
            Ok(Samples::new(vec![Sample {
                timestamp: time,
                value: 10.0,
            }]))
        })
    }
}

/// The operator's two controllers, as `client` (the chart's ServiceAccount).
struct Operator {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Operator {
    async fn start(client: Client, namespace: Option<&str>, source: Arc<Synthetic>) -> Operator {
        let watch_http_routes = http_routes_served(&client).await;
        // Refusals of a Rollout watch are recorded on this (fictitious) Pod.
        let operator = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some("redblack-operator".into()),
            namespace: Some(namespace.unwrap_or(RELEASE_NS).into()),
            ..ObjectReference::default()
        };
        let rollouts = RolloutController::new(
            client.clone(),
            Settings {
                namespace: namespace.map(str::to_owned),
                concurrency: 2,
                watch_http_routes,
                operator: Some(operator),
                ..Settings::default()
            },
        );
        let factory: SourceFactory = Arc::new(move |_endpoint: &EndpointConfig| {
            let source: Arc<dyn MetricSource> = source.clone();
            Ok(source)
        });
        let notifier_client = client.clone();
        let analyses = AnalysisController::new(
            client,
            AnalysisControllerConfig {
                default_prometheus_url: Some("http://synthetic.invalid".into()),
                namespace: namespace.map(str::to_owned),
                ..AnalysisControllerConfig::default()
            },
        )
        .with_sources(factory);
        let never = futures::future::pending::<()>();
        let notifier = {
            let (client, namespace) = (notifier_client, namespace.map(str::to_owned));
            tokio::spawn(async move {
                let settings = redblack::notify::controller::NotifySettings::default();
                let stop = std::future::pending::<()>();
                let run = redblack::notify::controller::run(
                    client,
                    namespace,
                    settings,
                    OperatorMetrics::new(),
                    stop,
                    None,
                );
                if let Err(e) = run.await {
                    tracing::warn!(error = %e, "the notifier stopped");
                }
            })
        };
        Operator {
            tasks: vec![
                notifier,
                tokio::spawn(rollouts.run(OperatorMetrics::new(), never)),
                tokio::spawn(async move {
                    if let Err(e) = analyses.run(futures::future::pending::<()>()).await {
                        tracing::warn!(error = %e, "the CanaryAnalysis controller stopped");
                    }
                }),
            ],
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A finished CanaryAnalysis of an old revision of `web`, beyond its history.
const OLD_ANALYSIS: &str = "web-old-1";

fn rollout(ns: &str, image: &str) -> Value {
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "strategy": {"redBlack": {
                "activeService": "web",
                "scaleDownDelay": "30m",
                // Moved at each switch: pods are patched (the pods rule's `patch`).
                "activeMetadata": {"labels": {"serving": "live"}},
                "canary": {"replicas": 1, "analysis": {"inline": {
                    "interval": "4s",
                    "lifetime": "8s",
                    "step": "1s",
                    "metrics": [{"name": "latency", "direction": "increase",
                                 "query": "avg(latency{pod=~\"${podRegex}\"})"}]
                }}},
                "trafficRouting": {"httpRoute": {"name": "web-route"}}
            }},
            "notifications": [{"notifier": "team"}],
            // Keep none beyond the analyses in play: each promotion then
            // prunes the previous revision's (the canaryanalyses delete rule).
            "analysis": {"successfulRunHistoryLimit": 0, "unsuccessfulRunHistoryLimit": 0}
        }
    })
}

/// The Service, the HTTPRoute and the Rollout at `image`, as the administrator.
async fn deploy(admin: &Client, ns: &str, image: &str) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    create(
        admin,
        &json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web-route", "namespace": ns},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}
        }),
    )
    .await;
    // Its notifications go nowhere (port 9 refuses): what is tested is that
    // the notifier may read the Notifier and keep the Rollout's ledger.
    create(
        admin,
        &json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "Notifier",
            "metadata": {"name": "team", "namespace": ns},
            "spec": {"webhook": {"url": "http://127.0.0.1:9/hook"}}
        }),
    )
    .await;
    let r: Rollout = serde_json::from_value(rollout(ns, image)).unwrap();
    let web = Api::<Rollout>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &r)
        .await
        .expect("rollout");
    // An old judgement of the Rollout (the canaryanalyses delete rule): the
    // analysis controller finishes it at once, in Error (a blank Prometheus
    // URL), and with limits 0 the Rollout controller deletes it.
    create(
        admin,
        &json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "CanaryAnalysis",
            "metadata": {"name": OLD_ANALYSIS, "namespace": ns,
                         "labels": {"rollouts.redblack.io/rollout": "web",
                                    "rollouts.redblack.io/pod-template-hash": "old"},
                         "ownerReferences": [{"apiVersion": "redblack.io/v1alpha1",
                                              "kind": "Rollout", "name": "web",
                                              "uid": web.metadata.uid, "controller": true}]},
            "spec": {"prometheus": {"url": " "},
                     "control": {"replicaSet": "web-old-baseline"},
                     "experiment": {"replicaSet": "web-old-canary"},
                     "interval": "4s", "lifetime": "8s",
                     "metrics": [{"name": "latency", "direction": "increase",
                                  "query": "avg(latency)"}]}
        }),
    )
    .await;
    // A second Rollout, `legacy`, takes its template from a Deployment
    // (the deployments rule's list/watch) and scales it to 0 once Healthy
    // (its `patch`).
    for obj in [
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "legacy", "namespace": ns},
               "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "legacy", "namespace": ns},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "legacy"}},
                        "template": {"metadata": {"labels": {"app": "legacy"}},
                                     "spec": {"containers": [{"name": "app", "image": image}]}}}}),
        json!({"apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
               "metadata": {"name": "legacy", "namespace": ns},
               "spec": {"replicas": 1,
                        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "legacy", "scaleDown": "onsuccess"},
                        "strategy": {"redBlack": {"activeService": "legacy"}}}}),
    ] {
        create(admin, &obj).await;
    }
}

/// Waits until the `legacy` Deployment (workloadRef, scaleDown: onsuccess)
/// was scaled to 0 by the operator.
async fn wait_legacy_scaled_down(admin: &Client, ns: &str) {
    let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(admin.clone(), ns);
    eventually(
        &format!("{ns}: the legacy Deployment is scaled to 0"),
        || async {
            let d = deployments.get("legacy").await.ok()?;
            (d.spec.replicas == Some(0)).then_some(())
        },
    )
    .await;
}

async fn set_image(admin: &Client, ns: &str, image: &str) -> String {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    let r = Api::<Rollout>::namespaced(admin.clone(), ns)
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("image set");
    pod_template_hash(&r.spec.template)
}

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    f: impl FnMut() -> Fut,
) -> T {
    tools::eventually_within(TIMEOUT, what, f).await
}

async fn selected(admin: &Client, ns: &str) -> Option<String> {
    let svc = Api::<Service>::namespaced(admin.clone(), ns)
        .get("web")
        .await
        .ok()?;
    svc.spec?
        .selector?
        .get(redblack::api::POD_TEMPLATE_HASH_LABEL)
        .cloned()
}

async fn wait_healthy_on(admin: &Client, ns: &str, hash: &str) {
    eventually(&format!("{ns}: Healthy on {hash}"), || async {
        let r = Api::<Rollout>::namespaced(admin.clone(), ns)
            .get("web")
            .await
            .ok()?;
        let healthy = r.status.as_ref()?.phase == Some(Phase::Healthy)
            && r.status.as_ref()?.observed_generation == r.metadata.generation;
        (healthy && selected(admin, ns).await.as_deref() == Some(hash)).then_some(())
    })
    .await;
}

/// v1 → v2 (healthy canary: promoted) → v3 (bad canary: reverted to v2).
async fn canary_flow(admin: &Client, ns: &str, source: &Synthetic) {
    deploy(admin, ns, "demo:1").await;
    let r = Api::<Rollout>::namespaced(admin.clone(), ns)
        .get("web")
        .await
        .unwrap();
    wait_healthy_on(admin, ns, &pod_template_hash(&r.spec.template)).await;
    wait_legacy_scaled_down(admin, ns).await;
    // The old analysis is deleted (analysis.unsuccessfulRunHistoryLimit 0).
    let analyses = Api::<CanaryAnalysis>::namespaced(admin.clone(), ns);
    eventually(&format!("{ns}: {OLD_ANALYSIS} is deleted"), || async {
        matches!(analyses.get_opt(OLD_ANALYSIS).await, Ok(None)).then_some(())
    })
    .await;
    let h2 = set_image(admin, ns, "demo:2").await;
    wait_healthy_on(admin, ns, &h2).await;
    let bad = pod_template_hash(
        &serde_json::from_value::<Rollout>(rollout(ns, "demo:3"))
            .unwrap()
            .spec
            .template,
    );
    source.bad.lock().unwrap().push(bad.clone());
    assert_eq!(set_image(admin, ns, "demo:3").await, bad);
    eventually(
        &format!("{ns}: v3's canary fails and v2 keeps the traffic"),
        || async {
            let r = Api::<Rollout>::namespaced(admin.clone(), ns)
                .get("web")
                .await
                .ok()?;
            let st = r.status.clone()?;
            let failed = st.phase == Some(Phase::Degraded)
                && st.conditions.iter().any(|c| c.reason == "CanaryFailed");
            (failed && selected(admin, ns).await.as_deref() == Some(h2.as_str())).then_some(())
        },
    )
    .await;
}

fn synthetic() -> Arc<Synthetic> {
    Arc::new(Synthetic {
        bad: std::sync::Mutex::new(Vec::new()),
    })
}

/// The chart's leader-election Role at work: as the operator's
/// ServiceAccount, an election in the release namespace takes the Lease
/// (get, create), renews it (update), and hands it back on release (update);
/// the same in a namespace the chart grants nothing in never leads.
async fn elects_under_the_charts_rbac(sa: &Client, admin: &Client) {
    use k8s_openapi::api::coordination::v1::Lease;
    use redblack::leader::{Election, Elector, Role, Timing, WriteGate};
    let timing = Timing {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(100),
    };
    let start = |ns: &str| {
        Elector::start(Election {
            api: Api::namespaced(sa.clone(), ns),
            name: "redblack-controller".into(),
            identity: format!("rbac-test-{ns}"),
            timing,
            gate: WriteGate::new(timing.renew_deadline),
        })
    };
    let elector = start(RELEASE_NS);
    assert!(elector.leading().await, "the chart's ServiceAccount leads");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), RELEASE_NS);
    let renew_time = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.renew_time.clone());
    let first = leases.get("redblack-controller").await.expect("the Lease");
    eventually("the Lease renewed by the ServiceAccount", || async {
        let now = leases.get("redblack-controller").await.ok()?;
        (renew_time(&now) != renew_time(&first)).then_some(())
    })
    .await;
    elector.release().await;
    let released = leases.get("redblack-controller").await.expect("the Lease");
    assert_eq!(
        released.spec.and_then(|s| s.holder_identity),
        None,
        "the Lease handed back"
    );

    // Elsewhere the chart grants nothing: the election never looks healthy.
    namespace(admin, "no-leases-here").await;
    let elsewhere = start("no-leases-here");
    let mut role = elsewhere.role();
    let waited = tokio::time::timeout(
        Duration::from_secs(2),
        role.wait_for(|r| !matches!(r, Role::Standby { healthy: false })),
    )
    .await
    .map(|r| r.map(|r| *r));
    assert!(
        waited.is_err(),
        "an election where the chart grants no Lease: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_install_rolls_out_under_the_charts_rbac() {
    let (sandbox, admin) = sandbox().await;
    for obj in helm_template(RELEASE_NS, &[]).iter().filter(|o| is_rbac(o)) {
        create(&admin, obj).await;
    }
    let sa = sandbox
        .client_for_service_account(RELEASE_NS, "rb-redblack")
        .expect("SA client");
    // The token is sent and RBAC holds: the chart grants no listing of
    // Secrets, only `get` by name (the Secrets an analysis' spec.prometheus
    // names, docs/canary-analysis.md).
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::all(sa.clone());
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(
            s.message,
            "secrets is forbidden: User \"system:serviceaccount:redblack-system:rb-redblack\" \
             cannot list resource \"secrets\" in API group \"\" at the cluster scope"
        ),
        other => panic!("listing Secrets as the operator: {other:?}"),
    }
    let named = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(sa.clone(), "default");
    match named.get_opt("no-such-secret").await {
        Ok(None) => {}
        other => panic!("getting a Secret by name as the operator: {other:?}"),
    }
    elects_under_the_charts_rbac(&sa, &admin).await;
    let source = synthetic();
    let _operator = Operator::start(sa, None, source.clone()).await;
    namespace(&admin, "apps").await;
    canary_flow(&admin, "apps", &source).await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_install_rolls_out_with_a_role_only() {
    let (sandbox, admin) = sandbox().await;
    namespace(&admin, "team").await;
    let objects = helm_template(RELEASE_NS, &["--set", "watchNamespace=team"]);
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(
        !kinds.contains(&"ClusterRole") && !kinds.contains(&"ClusterRoleBinding"),
        "a namespaced install renders no cluster-wide RBAC: {kinds:?}"
    );
    for obj in objects.iter().filter(|o| is_rbac(o)) {
        create(&admin, obj).await;
    }
    let sa = sandbox
        .client_for_service_account(RELEASE_NS, "rb-redblack")
        .expect("SA client");
    elects_under_the_charts_rbac(&sa, &admin).await;
    let source = synthetic();
    let _operator = Operator::start(sa, Some("team"), source.clone()).await;
    canary_flow(&admin, "team", &source).await;
    sandbox.shutdown().await;
}

/// The Events and Rollout conditions of `ns` that quote a 403 about `resource`.
async fn refusals(admin: &Client, ns: &str, resource: &str) -> Vec<String> {
    let mut out = Vec::new();
    let quotes = |text: &str| text.contains("is forbidden") && text.contains(resource);
    if let Ok(events) = Api::<K8sEvent>::namespaced(admin.clone(), ns)
        .list(&Default::default())
        .await
    {
        out.extend(
            events
                .items
                .into_iter()
                .filter_map(|e| e.note)
                .filter(|n| quotes(n))
                .map(|n| format!("Event: {n}")),
        );
    }
    if let Ok(r) = Api::<Rollout>::namespaced(admin.clone(), ns)
        .get("web")
        .await
    {
        out.extend(
            r.status
                .into_iter()
                .flat_map(|s| s.conditions)
                .filter(|c| quotes(&c.message))
                .map(|c| format!("condition {}: {}", c.type_, c.message)),
        );
    }
    out
}

/// Drives the flow in `ns` as far as it goes, until `done` says to stop.
async fn drive_until(admin: &Client, ns: &str, done: &tokio::sync::watch::Receiver<bool>) {
    deploy(admin, ns, "demo:1").await;
    // Each step waits at most a little, then moves on: with a rule missing
    // the operator may never get there, and the next step may need the rule.
    // Two new images, then a restart (`spec.restartAt`: the pods rule), then
    // a new image behind a Job gate (the jobs rule).
    for step in ["demo:2", "demo:3", "restart", "gate"] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline && !*done.borrow() {
            let r = Api::<Rollout>::namespaced(admin.clone(), ns)
                .get("web")
                .await
                .ok();
            if r.and_then(|r| r.status).and_then(|s| s.phase) == Some(Phase::Healthy) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if *done.borrow() {
            return;
        }
        if step == "gate" {
            let gate = json!({"name": "smoke", "at": "BeforeSwitch", "job": {"template": {"spec":
                {"containers": [{"name": "t", "image": "busybox"}]}}}});
            let patch = json!({"spec": {"strategy": {"redBlack": {"gates": [gate]}},
                "template": {"spec": {"containers": [{"name": "app", "image": "demo:4"}]}}}});
            Api::<Rollout>::namespaced(admin.clone(), ns)
                .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("add a Job gate");
        } else if step == "restart" {
            let patch = json!({"spec": {"restartAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}});
            Api::<Rollout>::namespaced(admin.clone(), ns)
                .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("set restartAt");
        } else {
            set_image(admin, ns, step).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_the_cluster_role_is_needed() {
    let (sandbox, admin) = sandbox().await;
    let objects = helm_template(RELEASE_NS, &[]);
    let role = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .expect("a ClusterRole");
    let rules = role["rules"].as_array().expect("rules").clone();
    let source = synthetic();
    let mut runs = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let resources: Vec<String> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        // Only an OwnerReferencesPermissionEnforcement admission plugin
        // needs the finalizers rule; the sandbox runs none (docs/sandbox.md).
        if resources.iter().any(|r| r.ends_with("/finalizers")) {
            continue;
        }
        // Secrets are read only for analyses whose spec.prometheus names
        // one (TLS, auth, headers); this test's analyses name none. Reading
        // them is tested in tests/prometheus_endpoints.rs (admin client).
        if resources == ["secrets"] {
            continue;
        }

        let ns = format!("without-rule-{i}");
        let sa = format!("op-{i}");
        namespace(&admin, &ns).await;
        let mut others = rules.clone();
        others.remove(i);
        let role_name = format!("without-rule-{i}");
        for obj in [
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": sa, "namespace": RELEASE_NS}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": role_name}, "rules": others}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "op", "namespace": ns},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                   "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": RELEASE_NS}]}),
        ] {
            create(&admin, &obj).await;
        }
        let client = sandbox
            .client_for_service_account(RELEASE_NS, &sa)
            .expect("SA client");
        let (admin, source) = (admin.clone(), source.clone());
        runs.push(tokio::spawn(async move {
            let _operator = Operator::start(client, Some(&ns), source).await;
            let (stop, done) = tokio::sync::watch::channel(false);
            let driver = {
                let (admin, ns) = (admin.clone(), ns.clone());
                tokio::spawn(async move { drive_until(&admin, &ns, &done).await })
            };
            // Any of the rule's resources (`rollouts` of `rollouts/status`).
            let names: Vec<String> = resources
                .iter()
                .map(|r| r.split('/').next().unwrap_or(r).to_owned())
                .collect();
            let seen = eventually(
                &format!("{ns} (no {resources:?}) reports a 403"),
                || async {
                    for name in &names {
                        let found = refusals(&admin, &ns, &format!("\"{name}")).await;
                        if !found.is_empty() {
                            return Some(found);
                        }
                    }
                    None
                },
            )
            .await;
            let _ = stop.send(true);
            let _ = driver.await;
            (resources, seen)
        }));
    }
    for run in runs {
        let (resources, seen) = run.await.expect("run");
        println!("without {resources:?}: {}", seen[0]);
    }
    sandbox.shutdown().await;
}

/// A child process killed on drop (the test's own processes only).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path, env: &[(&str, &str)]) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_redblack"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("KUBECONFIG")
        .env_remove("REDBLACK_PROMETHEUS_URL")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("redblack starts");
    Child(child)
}

/// A client from a kubeconfig file, as every redblack verb builds one.
async fn client_from(path: &Path) -> Client {
    let config = redblack::runtime::client::config(Some(path))
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// The binaries as a user runs them: `redblack sandbox --kubeconfig-for-sa`
/// writes the chart ServiceAccount's kubeconfig, and `redblack controller`
/// runs with the rendered Deployment's own arguments (leader election on)
/// and that kubeconfig: it takes the Lease in the release namespace and
/// rolls a Rollout out, while the same kubeconfig is refused what the chart
/// does not grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_runs_under_a_service_account_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_kc = dir.path().join("admin.kubeconfig");
    let sa_kc = dir.path().join("sa.kubeconfig");
    let sandbox_log = dir.path().join("sandbox.log");
    let _sandbox = spawn(
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--pod-ready-after",
            "200ms",
            "--kubeconfig",
            admin_kc.to_str().unwrap(),
            "--kubeconfig-for-sa",
            &format!("{RELEASE_NS}/rb-redblack={}", sa_kc.display()),
        ],
        &sandbox_log,
        &[],
    );
    eventually("the sandbox is ready", || async {
        let log = std::fs::read_to_string(&sandbox_log).ok()?;
        log.contains("ready at").then_some(())
    })
    .await;
    let admin = client_from(&admin_kc).await;
    for file in [
        "rollouts",
        "canaryanalyses",
        "canaryanalysistemplates",
        "notifiers",
    ] {
        let path = root().join(format!("charts/redblack/crds/{file}.redblack.io.yaml"));
        let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        create(&admin, &crd).await;
    }
    namespace(&admin, RELEASE_NS).await;
    let objects = helm_template(RELEASE_NS, &[]);
    for obj in objects.iter().filter(|o| is_rbac(o)) {
        create(&admin, obj).await;
    }

    // The kubeconfig's token is the ServiceAccount's, and RBAC holds.
    let sa = client_from(&sa_kc).await;
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(sa, RELEASE_NS);
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("listing Secrets with the ServiceAccount's kubeconfig: {other:?}"),
    }

    // The chart's arguments, but loopback ports of our choosing.
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    let chart_args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect();
    assert!(
        chart_args.iter().any(|a| a == "--leader-elect=true"),
        "{chart_args:?}"
    );
    let mut args: Vec<String> = Vec::new();
    let mut it = chart_args.iter();
    while let Some(arg) = it.next() {
        args.push(arg.clone());
        if arg == "--metrics-addr" || arg == "--health-addr" {
            it.next();
            args.push("127.0.0.1:0".into());
        }
    }
    args.extend(["--kubeconfig".into(), sa_kc.display().to_string()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let _operator = spawn(
        &argv,
        &dir.path().join("operator.log"),
        &[("POD_NAME", "rb-redblack-0"), ("POD_NAMESPACE", RELEASE_NS)],
    );

    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(admin.clone(), RELEASE_NS);
    eventually("the operator holds the Lease", || async {
        let lease = leases.get("redblack-controller").await.ok()?;
        let holder = lease.spec?.holder_identity?;
        holder.starts_with("rb-redblack-0").then_some(())
    })
    .await;

    namespace(&admin, "apps").await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(admin.clone(), "apps")
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let plain: Rollout = serde_json::from_value(json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "demo:1"}]}
            },
            "strategy": {"redBlack": {"activeService": "web"}}
        }
    }))
    .unwrap();
    let created = Api::<Rollout>::namespaced(admin.clone(), "apps")
        .create(&PostParams::default(), &plain)
        .await
        .expect("rollout");
    wait_healthy_on(&admin, "apps", &pod_template_hash(&created.spec.template)).await;
    let h2 = set_image(&admin, "apps", "demo:2").await;
    wait_healthy_on(&admin, "apps", &h2).await;
}
