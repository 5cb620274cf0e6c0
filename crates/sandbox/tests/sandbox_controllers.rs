//! The sandbox controllers against an in-process store (no HTTP).

use std::sync::Arc;
use std::time::Duration;

use redblack_sandbox::controllers::{self, ControllersConfig, ControllersHandle};
use redblack_sandbox::registry::{Registry, ResourceType};
use redblack_sandbox::store::{DeleteOptions, Propagation, Store, UpdateTarget, meta_str};
use serde_json::{Value, json};
use tokio::time::Instant;

struct Sandbox {
    store: Arc<Store>,
    registry: Arc<Registry>,
    _controllers: ControllersHandle,
}

impl Sandbox {
    fn start(ready_after_ms: u64) -> Self {
        Self::start_with(ControllersConfig {
            pod_ready_after: Duration::from_millis(ready_after_ms),
            resync: Duration::from_secs(10),
            ..ControllersConfig::default()
        })
    }

    fn start_with(cfg: ControllersConfig) -> Self {
        let store = Arc::new(Store::default());
        let registry = Arc::new(Registry::new());
        let sb = Self {
            _controllers: controllers::start(store.clone(), registry.clone(), cfg),
            store,
            registry,
        };
        sb.create("Namespace", json!({"metadata": {"name": "demo"}}));
        sb
    }

    fn rt(&self, kind: &str) -> ResourceType {
        let api_version = match kind {
            "ReplicaSet" => "apps/v1",
            _ => "v1",
        };
        self.registry.by_kind(api_version, kind).unwrap()
    }

    fn create(&self, kind: &str, obj: Value) -> Arc<Value> {
        self.store.create(&self.rt(kind), obj).unwrap()
    }

    fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.store.get(&self.rt(kind).group_resource(), ns, name)
    }

    fn list(&self, kind: &str, ns: &str) -> Vec<Arc<Value>> {
        self.store.list(&self.rt(kind).group_resource(), Some(ns)).0
    }

    fn delete(&self, kind: &str, ns: &str, name: &str, propagation: Propagation) {
        let opts = DeleteOptions {
            propagation,
            ..Default::default()
        };
        self.store.delete(&self.rt(kind), ns, name, &opts).unwrap();
    }

    /// Applies `edit` to the current object and writes it back (retrying conflicts).
    fn edit(&self, kind: &str, ns: &str, name: &str, edit: impl Fn(&mut Value)) -> Arc<Value> {
        loop {
            let mut obj = (*self.get(kind, ns, name).unwrap()).clone();
            edit(&mut obj);
            match self.store.update(&self.rt(kind), obj, UpdateTarget::Main) {
                Ok(o) => return o,
                Err(redblack_sandbox::store::StoreError::Conflict { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn rs_pods(&self, rs: &Value) -> Vec<Arc<Value>> {
        self.store
            .dependents(meta_str(rs, "uid").unwrap())
            .into_iter()
            .filter(|p| p["kind"] == "Pod")
            .collect()
    }

    fn rs_status(&self, name: &str, field: &str) -> i64 {
        self.get("ReplicaSet", "demo", name)
            .and_then(|rs| rs["status"][field].as_i64())
            .unwrap_or(0)
    }
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const SECS: Duration = Duration::from_secs(10);

fn replicaset(name: &str, replicas: i64, annotations: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "demo:1",
                                         "ports": [{"name": "http", "containerPort": 8080}]}]}
            }
        }
    })
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_creates_owned_pods_that_become_ready_after_the_delay() {
    let sb = Sandbox::start(300);
    let created_at = Instant::now();
    let rs = sb.create("ReplicaSet", replicaset("web", 3, json!({})));
    wait_for("3 pods", SECS, || sb.rs_pods(&rs).len() == 3).await;
    wait_for("3 ready", SECS, || {
        sb.rs_status("web", "readyReplicas") == 3
    })
    .await;
    assert!(
        created_at.elapsed() >= Duration::from_millis(300),
        "ready too early"
    );
    wait_for("3 available", SECS, || {
        sb.rs_status("web", "availableReplicas") == 3
    })
    .await;

    let pods = sb.rs_pods(&rs);
    let mut ips = std::collections::HashSet::new();
    for pod in &pods {
        let name = meta_str(pod, "name").unwrap();
        let suffix = name.strip_prefix("web-").unwrap();
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": rs["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(pod["spec"]["nodeName"], "sandbox");
        let status = &pod["status"];
        assert_eq!(status["phase"], "Running");
        assert!(ips.insert(status["podIP"].as_str().unwrap().to_string()));
        assert!(status["podIP"].as_str().unwrap().starts_with("10.244."));
        assert!(status["hostIP"].is_string() && status["startTime"].is_string());
        let kinds: Vec<&str> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
        );
        let cs = &status["containerStatuses"][0];
        assert_eq!(cs["name"], "app");
        assert_eq!(cs["image"], "demo:1");
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["restartCount"], 0);
        assert!(cs["state"]["running"]["startedAt"].is_string());
        assert!(cs["imageID"].is_string());
    }
    let rs = sb.get("ReplicaSet", "demo", "web").unwrap();
    assert_eq!(rs["status"]["replicas"], 3);
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 3);
    assert_eq!(rs["status"]["observedGeneration"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_go_pending_then_running() {
    let sb = Sandbox::start(50);
    let mut rx = sb.store.subscribe();
    sb.create(
        "Pod",
        json!({"metadata": {"name": "solo", "namespace": "demo"},
                           "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    );
    let mut phases = Vec::new();
    let deadline = Instant::now() + SECS;
    while !phases.contains(&"Running".to_string()) {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap()
            .unwrap();
        if ev.gr.resource == "pods" {
            let phase = ev.object["status"]["phase"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if phases.last() != Some(&phase) {
                phases.push(phase);
            }
        }
    }
    assert_eq!(phases, ["", "Pending", "Running"]);
    wait_for("ready", SECS, || {
        is_ready(&sb.get("Pod", "demo", "solo").unwrap())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_seconds_delays_availability() {
    let sb = Sandbox::start(20);
    let mut rs = replicaset("slow", 2, json!({}));
    rs["spec"]["minReadySeconds"] = json!(2);
    sb.create("ReplicaSet", rs);
    wait_for("2 ready", SECS, || {
        sb.rs_status("slow", "readyReplicas") == 2
    })
    .await;
    // Transition times have one-second resolution, so availability may come up to
    // a second early, but not a whole minReadySeconds early.
    assert_eq!(sb.rs_status("slow", "availableReplicas"), 0);
    let rs = sb.get("ReplicaSet", "demo", "slow").unwrap();
    let ready_since = sb
        .rs_pods(&rs)
        .iter()
        .flat_map(|p| {
            p["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["type"] == "Ready")
        .map(|c| {
            chrono::DateTime::parse_from_rfc3339(c["lastTransitionTime"].as_str().unwrap()).unwrap()
        })
        .max()
        .unwrap();
    wait_for("2 available", SECS, || {
        sb.rs_status("slow", "availableReplicas") == 2
    })
    .await;
    let waited = chrono::Utc::now().signed_duration_since(ready_since);
    assert!(
        waited >= chrono::Duration::seconds(2),
        "available after {waited}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_removes_not_ready_pods_first_and_deleted_pods_come_back() {
    let sb = Sandbox::start(20);
    let rs = sb.create("ReplicaSet", replicaset("web", 3, json!({})));
    wait_for("3 ready", SECS, || {
        sb.rs_status("web", "readyReplicas") == 3
    })
    .await;
    let originals: Vec<String> = sb
        .rs_pods(&rs)
        .iter()
        .map(|p| meta_str(p, "name").unwrap().to_string())
        .collect();

    // Two more pods that never get ready, then back to three.
    sb.edit("ReplicaSet", "demo", "web", |o| {
        o["spec"]["replicas"] = json!(5);
        o["spec"]["template"]["metadata"]["annotations"] =
            json!({"sandbox.redblack.io/never-ready": "true"});
    });
    wait_for("5 running", SECS, || {
        sb.rs_pods(&rs)
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 5
    })
    .await;
    sb.edit("ReplicaSet", "demo", "web", |o| {
        o["spec"]["replicas"] = json!(3);
        // Replacements made from here on get ready again.
        o["spec"]["template"]["metadata"]["annotations"] = json!({});
    });
    wait_for("3 pods", SECS, || sb.rs_pods(&rs).len() == 3).await;
    let mut left: Vec<String> = sb
        .rs_pods(&rs)
        .iter()
        .map(|p| meta_str(p, "name").unwrap().to_string())
        .collect();
    left.sort();
    let mut expected = originals.clone();
    expected.sort();
    assert_eq!(left, expected, "the ready pods must survive the scale-down");
    wait_for("status 3", SECS, || sb.rs_status("web", "replicas") == 3).await;

    // A deleted pod is replaced by a new one.
    sb.delete("Pod", "demo", &originals[0], Propagation::Background);
    wait_for("replacement", SECS, || {
        let pods = sb.rs_pods(&rs);
        pods.len() == 3
            && pods
                .iter()
                .all(|p| meta_str(p, "name") != Some(&originals[0]))
    })
    .await;
    wait_for("3 ready again", SECS, || {
        sb.rs_status("web", "readyReplicas") == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_crash_and_fail_after_annotations() {
    let sb = Sandbox::start(40);
    let never = sb.create(
        "ReplicaSet",
        replicaset(
            "never",
            1,
            json!({"sandbox.redblack.io/never-ready": "true"}),
        ),
    );
    let crash = sb.create(
        "ReplicaSet",
        replicaset("crash", 1, json!({"sandbox.redblack.io/crash": "true"})),
    );
    let flaky = sb.create(
        "ReplicaSet",
        replicaset(
            "flaky",
            1,
            json!({"sandbox.redblack.io/fail-after": "400ms"}),
        ),
    );

    wait_for("flaky ready", SECS, || {
        sb.rs_status("flaky", "readyReplicas") == 1
    })
    .await;
    wait_for("flaky broken", SECS, || {
        let pods = sb.rs_pods(&flaky);
        pods.len() == 1 && pods[0]["status"]["phase"] == "Running" && !is_ready(&pods[0])
    })
    .await;
    wait_for("flaky status", SECS, || {
        sb.rs_status("flaky", "readyReplicas") == 0
    })
    .await;

    wait_for("crash restarts", SECS, || {
        sb.rs_pods(&crash)
            .first()
            .and_then(|p| p["status"]["containerStatuses"][0]["restartCount"].as_i64())
            .is_some_and(|n| n >= 3)
    })
    .await;
    let pod = &sb.rs_pods(&crash)[0];
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert!(!is_ready(pod));

    let pod = &sb.rs_pods(&never)[0];
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["containerStatuses"][0]["started"], true);
    assert!(!is_ready(pod));
    assert_eq!(sb.rs_status("never", "readyReplicas"), 0);
    assert_eq!(sb.rs_status("never", "replicas"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_annotation_warns_and_uses_the_default() {
    let sb = Sandbox::start(30);
    sb.create(
        "ReplicaSet",
        replicaset(
            "odd",
            1,
            json!({"sandbox.redblack.io/ready-after": "whenever"}),
        ),
    );
    wait_for("ready with the default", SECS, || {
        sb.rs_status("odd", "readyReplicas") == 1
    })
    .await;
    let events = sb.list("Event", "demo");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["reason"], "InvalidAnnotation");
    assert_eq!(events[0]["involvedObject"]["kind"], "Pod");
    assert!(events[0]["message"].as_str().unwrap().contains("whenever"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_objects_are_skipped() {
    let sb = Sandbox::start(20);
    sb.create(
        "ReplicaSet",
        json!({"metadata": {"name": "bad", "namespace": "demo"},
                                  "spec": {"replicas": "three", "template": 7}}),
    );
    sb.create(
        "Service",
        json!({"metadata": {"name": "bad", "namespace": "demo"},
                               "spec": {"selector": {"app": "web"}, "ports": "eighty"}}),
    );
    sb.create(
        "Pod",
        json!({"metadata": {"name": "bare", "namespace": "demo"}, "spec": {"containers": "none"}}),
    );
    // The controllers are still alive and working.
    sb.create("ReplicaSet", replicaset("web", 1, json!({})));
    wait_for("ready", SECS, || sb.rs_status("web", "readyReplicas") == 1).await;
    assert!(sb.get("Pod", "demo", "bare").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_background_cascade() {
    let sb = Sandbox::start(20);
    let rs = sb.create("ReplicaSet", replicaset("web", 3, json!({})));
    wait_for("3 pods", SECS, || sb.rs_pods(&rs).len() == 3).await;
    sb.delete("ReplicaSet", "demo", "web", Propagation::Background);
    wait_for("pods gone", SECS, || sb.list("Pod", "demo").is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_foreground_keeps_the_owner_until_dependents_are_gone() {
    let sb = Sandbox::start(20);
    let rs = sb.create("ReplicaSet", replicaset("web", 2, json!({})));
    wait_for("2 pods", SECS, || sb.rs_pods(&rs).len() == 2).await;
    // A finalizer holds one pod, and so (blockOwnerDeletion) the ReplicaSet.
    let held = meta_str(&sb.rs_pods(&rs)[0], "name").unwrap().to_string();
    sb.edit("Pod", "demo", &held, |p| {
        p["metadata"]["finalizers"] = json!(["test/hold"])
    });
    sb.delete("ReplicaSet", "demo", "web", Propagation::Foreground);
    wait_for("held pod marked for deletion", SECS, || {
        sb.get("Pod", "demo", &held)
            .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    wait_for("other pod gone", SECS, || sb.list("Pod", "demo").len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let owner = sb
        .get("ReplicaSet", "demo", "web")
        .expect("owner waits for its dependents");
    assert!(owner["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        owner["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert_eq!(
        sb.list("Pod", "demo").len(),
        1,
        "no replacement pods while deleting"
    );

    sb.edit("Pod", "demo", &held, |p| {
        p["metadata"]["finalizers"] = json!([])
    });
    wait_for("owner gone", SECS, || {
        sb.get("ReplicaSet", "demo", "web").is_none()
    })
    .await;
    assert!(sb.list("Pod", "demo").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_orphan_keeps_pods_without_owner_references() {
    let sb = Sandbox::start(20);
    let rs = sb.create("ReplicaSet", replicaset("web", 2, json!({})));
    wait_for("2 pods", SECS, || sb.rs_pods(&rs).len() == 2).await;
    sb.delete("ReplicaSet", "demo", "web", Propagation::Orphan);
    wait_for("owner gone", SECS, || {
        sb.get("ReplicaSet", "demo", "web").is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pods = sb.list("Pod", "demo");
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert!(pod["metadata"].get("ownerReferences").is_none(), "{pod}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_dependents_of_a_dangling_owner() {
    let sb = Sandbox::start(20);
    let cm = sb.create(
        "ConfigMap",
        json!({"metadata": {"name": "owner", "namespace": "demo"}}),
    );
    let owned = |name: &str, uid: &Value| {
        json!({"metadata": {"name": name, "namespace": "demo", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})
    };
    sb.create("Secret", owned("real", &cm["metadata"]["uid"]));
    sb.create("Secret", owned("dangling", &json!("no-such-uid")));
    wait_for("dangling collected", SECS, || {
        sb.get("Secret", "demo", "dangling").is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sb.get("Secret", "demo", "real").is_some());
}

fn endpoint_ips(sb: &Sandbox, list: &str) -> Vec<String> {
    sb.get("Endpoints", "demo", "web")
        .map(|ep| {
            ep["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s[list].as_array().cloned().unwrap_or_default())
                .map(|a| a["ip"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_readiness_and_selector() {
    let sb = Sandbox::start(300);
    sb.create("Service", json!({"metadata": {"name": "web", "namespace": "demo", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}));
    sb.create(
        "Service",
        json!({"metadata": {"name": "external", "namespace": "demo"},
        "spec": {"ports": [{"port": 80}]}}),
    );
    let rs = sb.create("ReplicaSet", replicaset("web", 2, json!({})));
    wait_for("2 not ready addresses", SECS, || {
        endpoint_ips(&sb, "notReadyAddresses").len() == 2
    })
    .await;
    assert!(endpoint_ips(&sb, "addresses").is_empty());
    wait_for("2 ready addresses", SECS, || {
        endpoint_ips(&sb, "addresses").len() == 2
    })
    .await;
    assert!(endpoint_ips(&sb, "notReadyAddresses").is_empty());

    let ep = sb.get("Endpoints", "demo", "web").unwrap();
    let subset = &ep["subsets"][0];
    assert_eq!(
        subset["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let addr = &subset["addresses"][0];
    assert_eq!(addr["nodeName"], "sandbox");
    assert_eq!(addr["targetRef"]["kind"], "Pod");
    let pod_ips: Vec<String> = sb
        .rs_pods(&rs)
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    let mut ready = endpoint_ips(&sb, "addresses");
    ready.sort();
    let mut expected = pod_ips.clone();
    expected.sort();
    assert_eq!(ready, expected);
    assert_eq!(ep["metadata"]["labels"]["team"], "a");
    assert!(
        sb.get("Endpoints", "demo", "external").is_none(),
        "selector-less services are left alone"
    );

    // Selector no longer matches: no addresses.
    sb.edit("Service", "demo", "web", |s| {
        s["spec"]["selector"] = json!({"app": "other"})
    });
    wait_for("emptied", SECS, || {
        sb.get("Endpoints", "demo", "web")
            .is_some_and(|ep| ep.get("subsets").is_none())
    })
    .await;
    sb.edit("Service", "demo", "web", |s| {
        s["spec"]["selector"] = json!({"app": "web"})
    });
    wait_for("back", SECS, || endpoint_ips(&sb, "addresses").len() == 2).await;

    sb.delete("Service", "demo", "web", Propagation::Background);
    wait_for("endpoints deleted", SECS, || {
        sb.get("Endpoints", "demo", "web").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_empties_it() {
    let sb = Sandbox::start(20);
    sb.create("Namespace", json!({"metadata": {"name": "doomed"}}));
    wait_for("namespace active", SECS, || {
        sb.get("Namespace", "", "doomed")
            .is_some_and(|n| n["status"]["phase"] == "Active")
    })
    .await;
    let mut rs = replicaset("web", 2, json!({}));
    rs["metadata"]["namespace"] = json!("doomed");
    let rs = sb.create("ReplicaSet", rs);
    sb.create(
        "ConfigMap",
        json!({"metadata": {"name": "cfg", "namespace": "doomed"}}),
    );
    sb.create(
        "Service",
        json!({"metadata": {"name": "web", "namespace": "doomed"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    );
    wait_for("2 pods", SECS, || sb.rs_pods(&rs).len() == 2).await;

    let mut rx = sb.store.subscribe();
    sb.delete("Namespace", "", "doomed", Propagation::Background);
    wait_for("namespace gone", SECS, || {
        sb.get("Namespace", "", "doomed").is_none()
    })
    .await;
    let mut saw_terminating = false;
    while let Ok(ev) = rx.try_recv() {
        if ev.gr.resource == "namespaces" && ev.object["status"]["phase"] == "Terminating" {
            saw_terminating = true;
        }
    }
    assert!(saw_terminating);
    for kind in [
        "Pod",
        "ReplicaSet",
        "ConfigMap",
        "Service",
        "Endpoints",
        "Event",
    ] {
        assert!(sb.list(kind, "doomed").is_empty(), "{kind} left behind");
    }
    assert!(sb.get("Namespace", "", "demo").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_when_nothing_changes() {
    let sb = Sandbox::start_with(ControllersConfig {
        pod_ready_after: Duration::from_millis(20),
        // A fast safety sweep, to show that it writes nothing either.
        resync: Duration::from_millis(100),
        ..ControllersConfig::default()
    });
    sb.create(
        "Service",
        json!({"metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    );
    sb.create("ReplicaSet", replicaset("web", 3, json!({})));
    wait_for("3 available", SECS, || {
        sb.rs_status("web", "availableReplicas") == 3
    })
    .await;
    wait_for("3 endpoints", SECS, || {
        endpoint_ips(&sb, "addresses").len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut rx = sb.store.subscribe();
    let rv = sb.store.resource_version();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut writes = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        writes.push(format!(
            "{} {}/{}",
            ev.event_type.as_str(),
            ev.gr.resource,
            meta_str(&ev.object, "name").unwrap_or("")
        ));
    }
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(sb.store.resource_version(), rv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_replicasets_converge() {
    let sb = Sandbox::start(10);
    for i in 0..1000 {
        sb.create("ReplicaSet", replicaset(&format!("rs-{i}"), 2, json!({})));
    }
    let all_ready = || {
        sb.list("ReplicaSet", "demo")
            .iter()
            .all(|rs| rs["status"]["readyReplicas"] == 2 && rs["status"]["availableReplicas"] == 2)
    };
    wait_for(
        "1000 ReplicaSets ready",
        Duration::from_secs(120),
        all_ready,
    )
    .await;
    let pods = sb.list("Pod", "demo");
    assert_eq!(pods.len(), 2000);
    assert!(pods.iter().all(|p| is_ready(p)));
    for rs in sb.list("ReplicaSet", "demo") {
        let owned = sb.rs_pods(&rs);
        assert_eq!(owned.len(), 2);
        let name = meta_str(&rs, "name").unwrap();
        assert!(owned.iter().all(|p| {
            meta_str(p, "name")
                .unwrap()
                .starts_with(&format!("{name}-"))
        }));
    }
    let ips: std::collections::HashSet<&str> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 2000);
}

/// Store fix made alongside the controllers: a repeated delete of an object that
/// finalizers hold must not bump its resourceVersion or emit an event.
#[test]
fn store_repeated_delete_of_a_held_object_is_a_no_op() {
    let store = Store::default();
    let registry = Registry::new();
    let ns = registry.by_kind("v1", "Namespace").unwrap();
    let cm = registry.by_kind("v1", "ConfigMap").unwrap();
    store
        .create(&ns, json!({"metadata": {"name": "demo"}}))
        .unwrap();
    store
        .create(
            &cm,
            json!({"metadata": {"name": "c", "namespace": "demo", "finalizers": ["x/hold"]}}),
        )
        .unwrap();
    let opts = DeleteOptions::default();
    store.delete(&cm, "demo", "c", &opts).unwrap();
    let rv = store.resource_version();
    let mut rx = store.subscribe();
    store.delete(&cm, "demo", "c", &opts).unwrap();
    assert_eq!(store.resource_version(), rv);
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_foreground_recurses_through_generations() {
    let sb = Sandbox::start(20);
    let owned_by = |name: &str, owner: &Value, extra: Value| {
        let mut obj = json!({"metadata": {"name": name, "namespace": "demo", "ownerReferences": [
            {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
             "uid": owner["metadata"]["uid"], "blockOwnerDeletion": true}]}});
        if let (Some(meta), Some(extra)) = (obj["metadata"].as_object_mut(), extra.as_object()) {
            meta.extend(extra.clone());
        }
        obj
    };
    let root = sb.create(
        "ConfigMap",
        json!({"metadata": {"name": "root", "namespace": "demo"}}),
    );
    let child = sb.create("Secret", owned_by("child", &root, json!({})));
    sb.create(
        "Secret",
        owned_by("grandchild", &child, json!({"finalizers": ["test/hold"]})),
    );

    sb.delete("ConfigMap", "demo", "root", Propagation::Foreground);
    wait_for("child deleting in the foreground", SECS, || {
        sb.get("Secret", "demo", "child").is_some_and(|c| {
            c["metadata"]["deletionTimestamp"].is_string()
                && c["metadata"]["finalizers"] == json!(["foregroundDeletion"])
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sb.get("ConfigMap", "demo", "root").is_some(),
        "root waits for its child"
    );

    sb.edit("Secret", "demo", "grandchild", |g| {
        g["metadata"]["finalizers"] = json!([])
    });
    wait_for("all gone", SECS, || {
        sb.get("ConfigMap", "demo", "root").is_none()
            && sb.get("Secret", "demo", "child").is_none()
            && sb.get("Secret", "demo", "grandchild").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_follows_owner_references_to_custom_kinds() {
    let sb = Sandbox::start(20);
    let mut widget = sb.rt("ConfigMap");
    widget.group = "example.com".into();
    widget.kind = "Widget".into();
    widget.plural = "widgets".into();
    widget.singular = "widget".into();
    sb.registry.register(widget.clone());
    let owner = sb
        .store
        .create(
            &widget,
            json!({"metadata": {"name": "w", "namespace": "demo"}}),
        )
        .unwrap();
    sb.create("ConfigMap", json!({"metadata": {"name": "part", "namespace": "demo", "ownerReferences": [
        {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": owner["metadata"]["uid"]}]}}));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sb.get("ConfigMap", "demo", "part").is_some(),
        "owner exists: kept"
    );
    sb.store
        .delete(&widget, "demo", "w", &DeleteOptions::default())
        .unwrap();
    wait_for("dependent collected", SECS, || {
        sb.get("ConfigMap", "demo", "part").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_controllers_resume_without_rewriting_anything() {
    let store = Arc::new(Store::default());
    let registry = Arc::new(Registry::new());
    let cfg = ControllersConfig {
        pod_ready_after: Duration::from_millis(20),
        resync: Duration::from_secs(10),
        ..ControllersConfig::default()
    };
    let first = Sandbox {
        _controllers: controllers::start(store.clone(), registry.clone(), cfg.clone()),
        store: store.clone(),
        registry: registry.clone(),
    };
    first.create("Namespace", json!({"metadata": {"name": "demo"}}));
    first.create(
        "Service",
        json!({"metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    );
    first.create("ReplicaSet", replicaset("web", 2, json!({})));
    wait_for("2 available", SECS, || {
        first.rs_status("web", "availableReplicas") == 2
    })
    .await;
    wait_for("2 endpoints", SECS, || {
        endpoint_ips(&first, "addresses").len() == 2
    })
    .await;
    let Sandbox {
        _controllers: handle,
        ..
    } = first;
    handle.shutdown().await;

    let rv = store.resource_version();
    let _second = controllers::start(store.clone(), registry, cfg);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.resource_version(),
        rv,
        "a restart must not churn objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_held_by_a_finalizer_stops_and_leaves_the_endpoints() {
    let sb = Sandbox::start(20);
    sb.create(
        "Service",
        json!({"metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    );
    sb.create(
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "demo", "labels": {"app": "web"},
                                         "finalizers": ["test/hold"]},
                           "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    );
    wait_for("listed ready", SECS, || {
        endpoint_ips(&sb, "addresses").len() == 1
    })
    .await;
    sb.delete("Pod", "demo", "p", Propagation::Background);
    wait_for("stopped", SECS, || {
        let pod = sb.get("Pod", "demo", "p").unwrap();
        !is_ready(&pod) && pod["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    })
    .await;
    wait_for("unlisted", SECS, || {
        endpoint_ips(&sb, "addresses").is_empty()
            && endpoint_ips(&sb, "notReadyAddresses").is_empty()
    })
    .await;
    let rv = sb.store.resource_version();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sb.store.resource_version(),
        rv,
        "a terminated pod is written once"
    );
    sb.edit("Pod", "demo", "p", |p| {
        p["metadata"]["finalizers"] = json!([])
    });
    wait_for("gone", SECS, || sb.get("Pod", "demo", "p").is_none()).await;
}
