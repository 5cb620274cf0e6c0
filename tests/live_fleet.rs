//! A live fleet in the sandbox: demo-app pods run as real processes, the data
//! plane sends real HTTP requests to them, and a real Prometheus scrapes them.
//! Everything runs in-process on a Store (no HTTP API) and talks only to
//! 127.0.0.1; every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redblack_sandbox::controllers::pod_logs::PodLogs;
use redblack_sandbox::controllers::process_runtime::ProcessConfig;
use redblack_sandbox::controllers::process_runtime::{PID_ANNOTATION, PORT_ANNOTATION};
use redblack_sandbox::controllers::{self, ControllersConfig, ControllersHandle};
use redblack_sandbox::dataplane::{
    self, DataPlaneConfig, DataPlaneHandle, POD_HEADER, PROXY_PORT_ANNOTATION,
};
use redblack_sandbox::prometheus_sd;
use redblack_sandbox::registry::{Registry, ResourceType};
use redblack_sandbox::store::{
    DeleteOptions, DeleteOutcome, EventReceiver, EventType, Store, StoreError, UpdateTarget,
};
use redblack_sandbox::testing::prometheus::{PrometheusOptions, PrometheusProcess};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

const NS: &str = "demo";
const HASH_LABEL: &str = "rollouts.redblack.io/pod-template-hash";
/// Generous: the machine is shared with parallel compiles.
const WAIT: Duration = Duration::from_secs(60);

struct Fleet {
    store: Arc<Store>,
    registry: Arc<Registry>,
    controllers: Option<ControllersHandle>,
    dataplane: DataPlaneHandle,
    /// What the process pods wrote (`kubectl logs`).
    logs: PodLogs,
}

fn demo_app_command() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_BIN_EXE_redblack")))
}

impl Fleet {
    fn start() -> Self {
        Self::start_with(demo_app_command())
    }

    fn start_with(command: Option<PathBuf>) -> Self {
        let store = Arc::new(Store::default());
        let registry = Arc::new(Registry::new());
        // What the server's bootstrap registers from the Gateway API CRD.
        registry.register(ResourceType {
            group: "gateway.networking.k8s.io".into(),
            version: "v1".into(),
            kind: "HTTPRoute".into(),
            plural: "httproutes".into(),
            singular: "httproute".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec!["gateway-api".into()],
            status_subresource: true,
            scale: None,
            schema: None,
            printer_columns: vec![],
        });
        let cfg = ControllersConfig {
            pod_ready_after: Duration::from_millis(50),
            resync: Duration::from_secs(10),
            process: ProcessConfig {
                command,
                restart_backoff: Duration::from_millis(200),
                max_restart_backoff: Duration::from_secs(2),
            },
            ..ControllersConfig::default()
        };
        let logs = cfg.logs.clone();
        let fleet = Self {
            controllers: Some(controllers::start(store.clone(), registry.clone(), cfg)),
            logs,
            dataplane: dataplane::start(
                store.clone(),
                registry.clone(),
                DataPlaneConfig::default(),
            ),
            store,
            registry,
        };
        fleet.create("v1", "Namespace", json!({"metadata": {"name": NS}}));
        fleet
    }

    fn rt(&self, api_version: &str, kind: &str) -> ResourceType {
        self.registry.by_kind(api_version, kind).unwrap()
    }

    fn create(&self, api_version: &str, kind: &str, obj: Value) -> Arc<Value> {
        self.store.create(&self.rt(api_version, kind), obj).unwrap()
    }

    fn get(&self, api_version: &str, kind: &str, name: &str) -> Option<Arc<Value>> {
        let gr = self.rt(api_version, kind).group_resource();
        self.store.get(&gr, NS, name)
    }

    fn pods(&self) -> Vec<Arc<Value>> {
        let gr = self.rt("v1", "Pod").group_resource();
        self.store.list(&gr, Some(NS)).0
    }

    fn pods_of(&self, rs: &str) -> Vec<Arc<Value>> {
        self.pods()
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|r| r["name"] == rs))
            })
            .collect()
    }

    fn edit(&self, api_version: &str, kind: &str, name: &str, edit: impl Fn(&mut Value)) {
        loop {
            let mut obj = (*self.get(api_version, kind, name).unwrap()).clone();
            edit(&mut obj);
            match self
                .store
                .update(&self.rt(api_version, kind), obj, UpdateTarget::Main)
            {
                Ok(_) => return,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn service(&self, name: &str, selector: Value) {
        self.create(
            "v1",
            "Service",
            json!({"metadata": {"name": name, "namespace": NS},
                   "spec": {"selector": selector,
                            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        );
    }

    /// A ReplicaSet of the demo app; `env` adds to the container's env.
    fn replicaset(&self, name: &str, version: &str, replicas: u32, env: Value, probe: bool) {
        self.replicaset_with_grace(name, version, replicas, env, probe, None);
    }

    /// As `replicaset`, with the pods' `terminationGracePeriodSeconds`.
    fn replicaset_with_grace(
        &self,
        name: &str,
        version: &str,
        replicas: u32,
        env: Value,
        probe: bool,
        grace: Option<u32>,
    ) {
        let mut container = json!({
            "name": "app",
            "image": format!("redblack/demo-app:{version}"),
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": env,
        });
        if probe {
            container["readinessProbe"] = json!({
                "httpGet": {"path": "/readyz", "port": "http"},
                "periodSeconds": 1, "failureThreshold": 1});
        }
        let labels = json!({"app": "web", "version": version, HASH_LABEL: name});
        let mut pod_spec = json!({"containers": [container]});
        if let Some(grace) = grace {
            pod_spec["terminationGracePeriodSeconds"] = json!(grace);
        }
        self.create(
            "apps/v1",
            "ReplicaSet",
            json!({"metadata": {"name": name, "namespace": NS},
                   "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels},
                                         "spec": pod_spec}}}),
        );
    }

    async fn service_url(&self, name: &str) -> String {
        wait_for(&format!("a listener for service {name}"), || {
            self.dataplane.service_url(NS, name)
        })
        .await
    }

    async fn wait_ready(&self, rs: &str, n: usize) -> Vec<Arc<Value>> {
        wait_for(&format!("{n} ready pods of {rs}"), || {
            let pods = self.pods_of(rs);
            (pods.len() == n && pods.iter().all(|p| ready(p))).then_some(pods)
        })
        .await
    }
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn annotation(pod: &Value, key: &str) -> Option<String> {
    pod["metadata"]["annotations"][key]
        .as_str()
        .map(String::from)
}

fn pid_alive(pid: u32) -> bool {
    // A zombie (state Z) is dead, only not yet reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `WAIT`.
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One answer through the data plane: status, the version in the body (if
/// any), the pod named in the header.
#[derive(Debug)]
struct Answer {
    status: u16,
    version: Option<String>,
    pod: Option<String>,
    body: String,
}

async fn get(client: &reqwest::Client, url: &str) -> Answer {
    let response = client
        .get(format!("{url}/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let pod = response
        .headers()
        .get(POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = response.text().await.unwrap();
    let version = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["version"].as_str().map(String::from));
    Answer {
        status,
        version,
        pod,
        body,
    }
}

async fn get_many(url: &str, n: usize) -> Vec<Answer> {
    let client = reqwest::Client::new();
    futures::stream::iter(0..n)
        .map(|_| get(&client, url))
        .buffer_unordered(8)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_reaches_only_selected_ready_pods_and_follows_its_selector() {
    let fleet = Fleet::start();
    fleet.service("web", json!({"app": "web", "version": "v1"}));
    let url = fleet.service_url("web").await;
    let client = reqwest::Client::new();

    // Nothing behind it yet: a clear 503, not a hang.
    let empty = get(&client, &url).await;
    assert_eq!(empty.status, 503, "{empty:?}");
    assert!(empty.body.contains("no ready pods"), "{}", empty.body);

    fleet.replicaset("web-v1", "v1", 2, json!([]), true);
    fleet.replicaset("web-v2", "v2", 2, json!([]), true);
    // Selected, running, but its readiness probe fails for an hour.
    fleet.create(
        "v1",
        "Pod",
        json!({"metadata": {"name": "warming", "namespace": NS,
                            "labels": {"app": "web", "version": "v1"}},
               "spec": {"containers": [{"name": "app", "image": "redblack/demo-app:v1",
                   "env": [{"name": "DEMO_READY_AFTER", "value": "1h"}],
                   "readinessProbe": {"httpGet": {"path": "/readyz"}, "periodSeconds": 1}}]}}),
    );
    let v1 = fleet.wait_ready("web-v1", 2).await;
    fleet.wait_ready("web-v2", 2).await;
    for pod in &v1 {
        assert_eq!(pod["status"]["podIP"], "127.0.0.1");
        assert!(annotation(pod, PORT_ANNOTATION).is_some(), "{pod}");
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
    }
    let warming = fleet.get("v1", "Pod", "warming").unwrap();
    assert!(
        annotation(&warming, PORT_ANNOTATION).is_some(),
        "runs: {warming}"
    );
    assert!(!ready(&warming), "the probe decides: {warming}");

    // Endpoints carry each process's real port.
    let endpoints = wait_for("endpoints with both v1 pods", || {
        let ep = fleet.get("v1", "Endpoints", "web")?;
        let ready: usize = ep["subsets"]
            .as_array()?
            .iter()
            .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
            .sum();
        (ready == 2).then_some(ep)
    })
    .await;
    let mut ports: BTreeSet<String> = BTreeSet::new();
    for subset in endpoints["subsets"].as_array().unwrap() {
        for a in subset["addresses"].as_array().into_iter().flatten() {
            assert_eq!(a["ip"], "127.0.0.1");
            ports.insert(subset["ports"][0]["port"].to_string());
        }
    }
    let pod_ports: BTreeSet<String> = v1
        .iter()
        .map(|p| annotation(p, PORT_ANNOTATION).unwrap())
        .collect();
    assert_eq!(ports, pod_ports);

    let v1_names: BTreeSet<String> = v1
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let answers = get_many(&url, 100).await;
    let mut served_by = BTreeSet::new();
    for a in &answers {
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.version.as_deref(), Some("v1"), "{a:?}");
        let pod = a.pod.clone().unwrap();
        assert!(v1_names.contains(&pod), "{pod} is not a ready v1 pod");
        served_by.insert(pod);
    }
    assert_eq!(served_by, v1_names, "both ready v1 pods take traffic");

    // The service reports its proxy port.
    let svc = fleet.get("v1", "Service", "web").unwrap();
    assert_eq!(
        annotation(&svc, PROXY_PORT_ANNOTATION).map(|p| format!("http://127.0.0.1:{p}")),
        Some(url.clone())
    );

    // The switch: every request after the write goes to v2.
    fleet.edit("v1", "Service", "web", |s| {
        s["spec"]["selector"]["version"] = json!("v2");
    });
    let answers = get_many(&url, 100).await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == 200 && a.version.as_deref() == Some("v2")),
        "{:?}",
        answers.iter().find(|a| a.version.as_deref() != Some("v2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_weights_split_traffic() {
    let fleet = Fleet::start();
    fleet.service("stable", json!({"app": "web", "version": "v1"}));
    fleet.service("canary", json!({"app": "web", "version": "v2"}));
    fleet.replicaset("web-v1", "v1", 1, json!([]), false);
    fleet.replicaset("web-v2", "v2", 1, json!([]), false);
    fleet.create(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        json!({"metadata": {"name": "web", "namespace": NS},
               "spec": {"rules": [{"backendRefs": [
                   {"name": "stable", "port": 80, "weight": 90},
                   {"name": "canary", "port": 80, "weight": 10}]}]}}),
    );
    fleet.wait_ready("web-v1", 1).await;
    fleet.wait_ready("web-v2", 1).await;
    let url = wait_for("the route's listener", || {
        fleet.dataplane.route_url(NS, "web")
    })
    .await;

    let n = 1000;
    let answers = get_many(&url, n).await;
    let mut by_version: BTreeMap<String, usize> = BTreeMap::new();
    for a in &answers {
        assert_eq!(a.status, 200, "{a:?}");
        *by_version.entry(a.version.clone().unwrap()).or_default() += 1;
    }
    let canary = by_version.get("v2").copied().unwrap_or(0) as f64;
    let (expected, sigma) = (n as f64 * 0.1, (n as f64 * 0.1 * 0.9).sqrt());
    assert!(
        (canary - expected).abs() <= 4.0 * sigma,
        "canary got {canary} of {n}, expected {expected} ± {:.1} (4σ)",
        4.0 * sigma
    );

    // New weights apply to the next request.
    fleet.edit("gateway.networking.k8s.io/v1", "HTTPRoute", "web", |r| {
        r["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(0);
        r["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(100);
    });
    let answers = get_many(&url, 50).await;
    assert!(answers.iter().all(|a| a.version.as_deref() == Some("v2")));

    // A backend with no ready pod: the weighted pick lands on it and says so.
    fleet.edit("v1", "Service", "canary", |s| {
        s["spec"]["selector"]["version"] = json!("v3");
    });
    let a = get(&reqwest::Client::new(), &url).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.body.contains("demo/canary"), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_fleet_through_file_sd() {
    let fleet = Fleet::start();
    let dir = tempfile::tempdir().unwrap();
    let sd_file = dir.path().join("pods.json");
    let sd = prometheus_sd::start(
        fleet.store.clone(),
        sd_file.clone(),
        Duration::from_secs(10),
    );
    fleet.service("web", json!({"app": "web"}));
    fleet.replicaset(
        "bad",
        "v2",
        2,
        json!([{"name": "DEMO_ERROR_RATE", "value": "0.2"}]),
        true,
    );
    fleet.replicaset("good", "v1", 1, json!([]), true);
    let bad: BTreeSet<String> = fleet
        .wait_ready("bad", 2)
        .await
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    fleet.wait_ready("good", 1).await;
    wait_for("3 targets in the file_sd file", || {
        let text = std::fs::read_to_string(&sd_file).ok()?;
        let groups: Vec<Value> = serde_json::from_str(&text).ok()?;
        (groups.len() == 3).then_some(())
    })
    .await;

    let prometheus = PrometheusProcess::start_with(PrometheusOptions {
        scrape_configs: Some(prometheus_sd::scrape_config("demo-pods", &sd_file)),
        scrape_interval: Duration::from_millis(500),
        ..PrometheusOptions::default()
    })
    .unwrap();

    let url = fleet.service_url("web").await;
    let answers = get_many(&url, 1500).await;
    let to_bad: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.pod.as_ref().is_some_and(|p| bad.contains(p)))
        .collect();
    let bad_errors = to_bad.iter().filter(|a| a.status == 500).count();
    assert!(to_bad.len() > 500, "{} requests reached bad", to_bad.len());

    // Counters, not rates: once the last scrape is in, Prometheus holds exactly
    // what the client saw.
    let client = reqwest::Client::new();
    let query = |q: String| {
        let client = client.clone();
        let base = prometheus.url().to_string();
        async move {
            let v: Value = client
                .get(format!("{base}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
        }
    };
    let sel = format!(
        "rollouts_redblack_io_pod_template_hash=\"bad\",namespace=\"{NS}\",container=\"app\""
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let total = query(format!("sum(http_requests_total{{{sel}}})")).await;
        if total == Some(to_bad.len() as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus saw {total:?} requests to bad, the client {}; log:\n{}",
            to_bad.len(),
            prometheus.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rate = query(format!(
        "sum(http_requests_total{{code=~\"5..\",{sel}}}) / sum(http_requests_total{{{sel}}})"
    ))
    .await
    .unwrap();
    assert_eq!(rate, bad_errors as f64 / to_bad.len() as f64);
    let n = to_bad.len() as f64;
    let sigma = (0.2 * 0.8 / n).sqrt();
    assert!(
        (rate - 0.2).abs() <= 4.0 * sigma,
        "error rate of bad {rate}, configured 0.2 ± {:.3} (4σ)",
        4.0 * sigma
    );
    let good_errors = query(
        "sum(http_requests_total{code=~\"5..\",rollouts_redblack_io_pod_template_hash=\"good\"}) or vector(0)".into(),
    )
    .await;
    assert_eq!(good_errors, Some(0.0));
    let per_pod = query(format!(
        "count(count by (pod) (http_requests_total{{{sel}}}))"
    ))
    .await;
    assert_eq!(per_pod, Some(2.0), "one series set per bad pod");
    sd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_processes_restart_and_deleted_pods_stop_theirs() {
    let fleet = Fleet::start();
    fleet.service("web", json!({"app": "web"}));
    fleet.replicaset("web-v1", "v1", 1, json!([]), false);
    let pod = fleet.wait_ready("web-v1", 1).await.remove(0);
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let pid: u32 = annotation(&pod, PID_ANNOTATION).unwrap().parse().unwrap();
    assert!(pid_alive(pid));

    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let down = wait_for("the killed pod to turn unready", || {
        let p = fleet.get("v1", "Pod", &name)?;
        (!ready(&p)).then_some(p)
    })
    .await;
    let c = &down["status"]["containerStatuses"][0];
    assert_eq!(c["ready"], false, "{c}");
    let restarted = wait_for("the process to be restarted and ready", || {
        let p = fleet.get("v1", "Pod", &name)?;
        (ready(&p) && p["status"]["containerStatuses"][0]["restartCount"] == 1).then_some(p)
    })
    .await;
    let c = &restarted["status"]["containerStatuses"][0];
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 137, "{c}");
    let new_pid: u32 = annotation(&restarted, PID_ANNOTATION)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(new_pid, pid);
    let url = fleet.service_url("web").await;
    let a = get(&reqwest::Client::new(), &url).await;
    assert_eq!((a.status, a.pod.as_deref()), (200, Some(name.as_str())));

    // Deleting the pod kills its process; the ReplicaSet replaces the pod.
    fleet
        .store
        .delete(&fleet.rt("v1", "Pod"), NS, &name, &DeleteOptions::default())
        .unwrap();
    wait_for("the deleted pod's process to die", || {
        (!pid_alive(new_pid)).then_some(())
    })
    .await;
    let replacement = fleet.wait_ready("web-v1", 1).await.remove(0);
    assert_ne!(replacement["metadata"]["name"], name.as_str());
}

/// A failing liveness probe restarts the process as a kubelet does (after
/// `failureThreshold` failures, SIGTERM, a clean exit), and the log keeps the
/// previous run (`kubectl logs --previous`) beside the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_the_process_and_logs_keep_both_runs() {
    let fleet = Fleet::start();
    fleet.create(
        "v1",
        "Pod",
        json!({"metadata": {"name": "sick", "namespace": NS},
               "spec": {"containers": [{"name": "app", "image": "redblack/demo-app:v1",
                   "livenessProbe": {"httpGet": {"path": "/no-such-page", "port": 8080},
                                     "periodSeconds": 1, "failureThreshold": 2}}]}}),
    );
    let pod = wait_for("a restart after the liveness probe failed", || {
        let p = fleet.get("v1", "Pod", "sick")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_u64()? >= 1).then_some(p)
    })
    .await;
    let c = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        c["lastState"]["terminated"]["exitCode"], 0,
        "SIGTERM, a clean exit: {c}"
    );
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let log = fleet.logs.get(uid, "app").expect("a log");
    let previous = log.view(true, None).expect("the previous run");
    assert!(!previous.open);
    assert!(
        previous
            .lines
            .iter()
            .any(|l| l.text.starts_with("listening on http://127.0.0.1:")),
        "{previous:?}"
    );
    let current = wait_for("the restarted process's first line", || {
        let v = log.view(false, None)?;
        (v.open && !v.lines.is_empty()).then_some(v)
    })
    .await;
    assert!(current.generation > previous.generation);
    // The waiting message says why, while the next start backs off.
    let msg = wait_for("a back-off that names the liveness probe", || {
        let p = fleet.get("v1", "Pod", "sick")?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        w["message"]
            .as_str()
            .filter(|m| m.contains("liveness probe failed"))
            .map(str::to_string)
    })
    .await;
    assert!(msg.contains("404"), "{msg}");
}

/// Waits for the DELETED event of pod `name` and returns the pod as it was
/// removed: the final status the kubelet wrote.
async fn removed_pod(events: &mut EventReceiver, name: &str) -> Value {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(e)
                    if e.event_type == EventType::Deleted
                        && e.object["kind"] == "Pod"
                        && e.object["metadata"]["name"] == name =>
                {
                    return (*e.object).clone();
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => panic!("missed {n} store events"),
                Err(RecvError::Closed) => panic!("the store went away"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("pod {name} was never removed"))
}

/// The first container's final `terminated` state.
fn terminated(pod: &Value) -> (Option<i64>, Option<&str>) {
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    (t["exitCode"].as_i64(), t["reason"].as_str())
}

/// A kubelet's SIGTERM and grace period: a process that ignores SIGTERM
/// stays until its grace period (2 s) ends, then is SIGKILLed (exit code 137
/// in the final status) and the pod is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ignoring_sigterm_is_killed_when_its_grace_period_ends() {
    let fleet = Fleet::start();
    fleet.replicaset_with_grace(
        "web-v1",
        "v1",
        1,
        json!([{"name": "DEMO_IGNORE_SIGTERM", "value": "1"}]),
        false,
        Some(2),
    );
    let pod = fleet.wait_ready("web-v1", 1).await.remove(0);
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let pid: u32 = annotation(&pod, PID_ANNOTATION).unwrap().parse().unwrap();
    let mut events = fleet.store.subscribe();
    let outcome = fleet
        .store
        .delete(&fleet.rt("v1", "Pod"), NS, &name, &DeleteOptions::default())
        .unwrap();
    let DeleteOutcome::Pending(marked) = outcome else {
        panic!("a running pod is not removed at once: {outcome:?}");
    };
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 2);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let removed = removed_pod(&mut events, &name).await;
    assert_eq!(
        terminated(&removed),
        (Some(137), Some("Error")),
        "{removed}"
    );
    wait_for("the killed process to be gone", || {
        (!pid_alive(pid)).then_some(())
    })
    .await;
}

/// Graceful termination end to end: a request in flight on a pod when it
/// starts terminating is answered 200 (the demo app drains on SIGTERM and
/// exits 0), while every new request through the Service goes to other pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_on_a_terminating_pod_completes_and_new_ones_go_elsewhere() {
    let fleet = Fleet::start();
    fleet.service("web", json!({"app": "web"}));
    // Every request takes 1.5 s: long enough to be in flight on purpose.
    fleet.replicaset_with_grace(
        "web-v1",
        "v1",
        2,
        json!([{"name": "DEMO_TAIL_FRACTION", "value": "1"},
               {"name": "DEMO_TAIL_LATENCY_MS", "value": "1500"}]),
        false,
        Some(30),
    );
    let pods = fleet.wait_ready("web-v1", 2).await;
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let port = annotation(&pods[0], PORT_ANNOTATION).unwrap();
    let direct = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let (client, direct) = (client.clone(), direct.clone());
        async move { get(&client, &direct).await }
    });
    // Only once the app counts it: a request not yet read is not in flight.
    let metrics = format!("{direct}/metrics");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = match client.get(&metrics).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.lines().any(|l| l == "http_requests_in_flight 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow request never got in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut events = fleet.store.subscribe();
    fleet
        .store
        .delete(
            &fleet.rt("v1", "Pod"),
            NS,
            &victim,
            &DeleteOptions::default(),
        )
        .unwrap();
    let url = fleet.service_url("web").await;
    let answers = get_many(&url, 4).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{a:?}");
        assert_ne!(
            a.pod.as_deref(),
            Some(victim.as_str()),
            "routed to a terminating pod: {a:?}"
        );
    }
    let a = in_flight.await.unwrap();
    assert_eq!((a.status, a.version.as_deref()), (200, Some("v1")), "{a:?}");
    let removed = removed_pod(&mut events, &victim).await;
    assert_eq!(
        terminated(&removed),
        (Some(0), Some("Completed")),
        "{removed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_survives_the_controllers() {
    let mut fleet = Fleet::start();
    fleet.replicaset("web-v1", "v1", 3, json!([]), false);
    let pids: Vec<u32> = fleet
        .wait_ready("web-v1", 3)
        .await
        .iter()
        .map(|p| annotation(p, PID_ANNOTATION).unwrap().parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| pid_alive(*p)));
    // Dropped, not shut down: the path a panicking test takes.
    drop(fleet.controllers.take());
    wait_for("every demo-app process to die", || {
        pids.iter().all(|p| !pid_alive(*p)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_shows_in_pod_status() {
    let fleet = Fleet::start();
    let pod = |name: &str, image: &str, env: Value| {
        fleet.create(
            "v1",
            "Pod",
            json!({"metadata": {"name": name, "namespace": NS},
                   "spec": {"containers": [{"name": "app", "image": image, "env": env}]}}),
        );
    };
    pod("no-tag", "redblack/demo-app", json!([]));
    pod(
        "bad-env",
        "redblack/demo-app:v1",
        json!([{"name": "DEMO_ERROR_RATE", "value": "lots"}]),
    );
    pod(
        "crash",
        "redblack/demo-app:v1",
        json!([{"name": "DEMO_FAIL_AT_START", "value": "1"}]),
    );
    pod("simulated", "nginx:1.27", json!([]));

    let waiting = |name: &str, reason: &str| {
        let p = fleet.get("v1", "Pod", name)?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (w["reason"] == reason)
            .then(|| (p.clone(), w["message"].as_str().unwrap_or("").to_string()))
    };
    let (p, msg) = wait_for("InvalidImageName", || waiting("no-tag", "InvalidImageName")).await;
    assert!(msg.contains("no tag"), "{msg}");
    assert_eq!(p["status"]["phase"], "Pending", "never started");
    let (_, msg) = wait_for("CreateContainerConfigError", || {
        waiting("bad-env", "CreateContainerConfigError")
    })
    .await;
    assert!(
        msg.contains("DEMO_ERROR_RATE") && msg.contains("lots"),
        "{msg}"
    );
    let bad_env = fleet.get("v1", "Pod", "bad-env").unwrap();
    assert_eq!(bad_env["status"]["phase"], "Pending");
    assert!(
        annotation(&bad_env, PORT_ANNOTATION).is_none(),
        "nothing runs"
    );
    let (crashed, msg) = wait_for("CrashLoopBackOff", || {
        let (p, m) = waiting("crash", "CrashLoopBackOff")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_u64()? >= 1).then_some((p, m))
    })
    .await;
    assert!(msg.contains("exit code 1"), "{msg}");
    assert!(
        msg.contains("DEMO_FAIL_AT_START"),
        "stderr in the message: {msg}"
    );
    let c = &crashed["status"]["containerStatuses"][0];
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1, "{c}");
    assert!(!ready(&crashed));
    assert_eq!(crashed["status"]["phase"], "Running", "it did start");
    let sim = wait_for("the simulated pod", || {
        let p = fleet.get("v1", "Pod", "simulated")?;
        ready(&p).then_some(p)
    })
    .await;
    assert_ne!(
        sim["status"]["podIP"], "127.0.0.1",
        "other images stay simulated"
    );

    // A sandbox without the binary says so instead of hanging.
    let bare = Fleet::start_with(None);
    bare.create(
        "v1",
        "Pod",
        json!({"metadata": {"name": "app", "namespace": NS},
               "spec": {"containers": [{"name": "app", "image": "redblack/demo-app:v1"}]}}),
    );
    let msg = wait_for("CreateContainerError", || {
        let p = bare.get("v1", "Pod", "app")?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (w["reason"] == "CreateContainerError").then(|| w["message"].to_string())
    })
    .await;
    assert!(msg.contains("demo-app command"), "{msg}");
}

/// The sandbox side of `a_sandbox_killed_by_a_signal_leaves_no_process`, run in
/// a child process (this test binary, re-invoked); does nothing on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper: run by a_sandbox_killed_by_a_signal_leaves_no_process"]
async fn helper_fleet_until_killed() {
    if std::env::var_os("LIVE_FLEET_HELPER").is_none() {
        return;
    }
    let fleet = Fleet::start();
    fleet.replicaset("web-v1", "v1", 2, json!([]), false);
    for p in fleet.wait_ready("web-v1", 2).await {
        println!("PID {}", annotation(&p, PID_ANNOTATION).unwrap());
    }
    println!("READY");
    // Bounded: the parent kills us long before.
    tokio::time::sleep(WAIT).await;
}

/// Kills the child (and waits for it) even when the test fails.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_sandbox_killed_by_a_signal_leaves_no_process() {
    use std::io::BufRead;
    let mut child = ChildGuard(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "helper_fleet_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LIVE_FLEET_HELPER", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut pids = Vec::new();
    // Ends at READY, or at EOF if the helper fails (its own wait is bounded).
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints "test NAME ... " without a newline before our output.
        if let Some((_, pid)) = line.split_once("PID ") {
            pids.push(pid.trim().parse::<u32>().unwrap());
        }
        if line.ends_with("READY") {
            break;
        }
    }
    assert_eq!(pids.len(), 2, "the helper did not start its fleet");
    assert!(pids.iter().all(|p| pid_alive(*p)));
    // SIGINT, as Ctrl-C sends: the default action ends the process without
    // running any destructor; the children must die with it anyway.
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let _ = child.0.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "demo-app processes outlived their sandbox: {:?}",
            pids.iter().filter(|p| pid_alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_fleet_writes_nothing() {
    let fleet = Fleet::start();
    fleet.service("web", json!({"app": "web"}));
    fleet.replicaset("web-v1", "v1", 2, json!([]), true);
    fleet.wait_ready("web-v1", 2).await;
    fleet.service_url("web").await;
    // Let the last Endpoints and annotation writes land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = fleet.store.resource_version();
    // Longer than a probe period and many pod-controller polls.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        fleet.store.resource_version(),
        before,
        "probes and polls must not rewrite unchanged objects"
    );
}

#[test]
fn a_panicking_test_leaves_no_process() {
    let pids = std::sync::Mutex::new(Vec::new());
    let outcome = std::panic::catch_unwind(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let fleet = Fleet::start();
            fleet.replicaset("web-v1", "v1", 2, json!([]), false);
            for p in fleet.wait_ready("web-v1", 2).await {
                let pid: u32 = annotation(&p, PID_ANNOTATION).unwrap().parse().unwrap();
                pids.lock().unwrap().push(pid);
            }
            panic!("a test fails while its fleet runs");
        });
    });
    assert!(outcome.is_err());
    let pids = pids.into_inner().unwrap();
    assert_eq!(pids.len(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "processes outlived a panicking test"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
