//! The operator's image runs in the sandbox as a user's cluster runs it: a
//! ReplicaSet with the Helm chart's own pod template (image
//! `redblack/redblack:dev`, the chart's args, env from the downward API,
//! ports, probes, ServiceAccount), rendered with the real `helm template`,
//! under the chart's RBAC, in a sandbox that refuses requests without a
//! token. The sandbox runs each pod as a `redblack controller` process
//! (this build's binary) with its ServiceAccount's kubeconfig.
//!
//! - Both replicas become Ready through the readiness probe on their own
//!   loopback ports (mapped from the chart's :8080/:8081); one holds the
//!   leader Lease (as `system:serviceaccount:redblack-system:rb-redblack`,
//!   the only credentials it has), the other stands by.
//! - The chart's metrics Service's Endpoints list each pod's mapped port.
//! - Its logs (`pods/log`) show the startup lines; `kubectl logs` (the real
//!   one) too.
//! - A plain Rollout the leader reconciles goes Healthy.
//! - Deleting the leader's pod SIGTERMs its process: it exits 0 (a SIGKILL
//!   would be 137); its followed log (`follow=true`) shows it handing the
//!   Lease back, then ends; another pod takes the Lease.
//! - A pod whose ServiceAccount is missing does not start
//!   (CreateContainerConfigError with the admission plugin's words), and
//!   starts once the ServiceAccount exists.

mod tools;

use tools::{create, helm_template, root, tool};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::AsyncBufReadExt;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use redblack::api::{Phase, Rollout};
use redblack_sandbox::auth::Anonymous;
use redblack_sandbox::controllers::operator_spec::{PORTS_ANNOTATION, parse_ports_annotation};
use redblack_sandbox::controllers::process_runtime::{PID_ANNOTATION, ProcessConfig};
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

const NS: &str = "redblack-system";
const SA: &str = "rb-redblack";
const LEASE: &str = "redblack-controller";
const TIMEOUT: Duration = Duration::from_secs(90);

async fn namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    f: impl FnMut() -> Fut,
) -> T {
    tools::eventually_within(TIMEOUT, what, f).await
}

/// A sandbox that runs redblack images with this build's binary, with the
/// CRDs and the release namespace. `anonymous`: who a request without a token
/// is (kubectl sends none over plain http).
async fn sandbox(anonymous: Anonymous) -> (Sandbox, Client) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sandbox = Sandbox::start(SandboxConfig {
        pod_ready_after: Duration::from_millis(200),
        anonymous,
        process: ProcessConfig {
            command: Some(PathBuf::from(env!("CARGO_BIN_EXE_redblack"))),
            restart_backoff: Duration::from_millis(200),
            ..ProcessConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let admin = sandbox.client().expect("admin client");
    for file in ["rollouts", "canaryanalyses", "canaryanalysistemplates"] {
        let path = root().join(format!("charts/redblack/crds/{file}.redblack.io.yaml"));
        let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        create(&admin, &crd).await;
    }
    namespace(&admin, NS).await;
    (sandbox, admin)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn annotation(pod: &Pod, key: &str) -> Option<String> {
    pod.annotations().get(key).cloned()
}

/// The Lease's holder, if any.
async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get(LEASE)
        .await
        .ok()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Is `identity` (`POD-xxxxxxxx`, see `redblack::leader::config::identity`) pod's?
fn held_by(identity: &str, pod: &str) -> bool {
    identity
        .strip_prefix(pod)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| suffix.len() == 8)
}

/// `kubectl` (the real one) as the sandbox's administrator.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `KUBECONFIG` of a running process, from /proc.
fn process_kubeconfig(pid: &str) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let path = environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("KUBECONFIG="))
        .expect("KUBECONFIG is set")
        .to_string();
    std::fs::read_to_string(path).expect("the kubeconfig file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_pod_template_runs_the_operator() {
    // Requests without a token are refused: the operator has only its own.
    let (sandbox, admin) = sandbox(Anonymous::Unauthenticated).await;
    let objects = helm_template(NS, &["--set", "image.tag=dev"]);
    for obj in objects.iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding")
        )
    }) {
        create(&admin, obj).await;
    }
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    let template = deployment["spec"]["template"].clone();
    assert_eq!(
        template["spec"]["containers"][0]["image"], "redblack/redblack:dev",
        "the chart's image"
    );
    assert_eq!(template["spec"]["serviceAccountName"], SA);
    // Two replicas of the chart's pod, as its Deployment's ReplicaSet would be.
    create(
        &admin,
        &json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "rb-redblack-1", "namespace": NS},
            "spec": {"replicas": 2, "selector": deployment["spec"]["selector"], "template": template}
        }),
    )
    .await;

    let pods = Api::<Pod>::namespaced(admin.clone(), NS);
    let leases = Api::<Lease>::namespaced(admin.clone(), NS);
    let ready = eventually("both operator pods are Ready", || async {
        let list = pods.list(&Default::default()).await.ok()?;
        let ready: Vec<Pod> = list.items.into_iter().filter(is_ready).collect();
        (ready.len() == 2).then_some(ready)
    })
    .await;

    // Each has its own loopback ports for the chart's 8080 and 8081.
    let maps: Vec<BTreeMap<u16, u16>> = ready
        .iter()
        .map(|p| parse_ports_annotation(&annotation(p, PORTS_ANNOTATION).expect("ports")))
        .collect();
    for map in &maps {
        assert_eq!(
            map.keys().copied().collect::<Vec<_>>(),
            [8080, 8081],
            "{map:?}"
        );
    }
    assert_ne!(maps[0][&8081], maps[1][&8081], "{maps:?}");

    // The chart's metrics Service reaches both, on their mapped ports.
    let service = objects
        .iter()
        .find(|o| o["kind"] == "Service")
        .expect("the metrics Service");
    create(&admin, service).await;
    let endpoints = Api::<Endpoints>::namespaced(admin.clone(), NS);
    let service_name = service["metadata"]["name"].as_str().expect("name");
    let mut want: Vec<i32> = maps.iter().map(|m| i32::from(m[&8080])).collect();
    want.sort();
    eventually(
        "the metrics Endpoints list both pods' metrics ports",
        || async {
            let ep = endpoints.get(service_name).await.ok()?;
            let mut got: Vec<i32> = ep
                .subsets?
                .iter()
                .filter(|s| s.addresses.as_ref().is_some_and(|a| a.len() == 1))
                .flat_map(|s| s.ports.clone().unwrap_or_default())
                .map(|p| p.port)
                .collect();
            got.sort();
            (got == want).then_some(())
        },
    )
    .await;

    // One leads, as its ServiceAccount (its only credentials: the sandbox
    // refuses requests without a token); the other stands by, Ready.
    let leader = eventually("one pod holds the Lease", || async {
        let h = holder(&leases).await?;
        ready.iter().position(|p| held_by(&h, &p.name_any()))
    })
    .await;
    let standby = 1 - leader;
    let leader_name = ready[leader].name_any();
    let standby_name = ready[standby].name_any();
    for pod in &ready {
        let pid = annotation(pod, PID_ANNOTATION).expect("pid");
        let kubeconfig = process_kubeconfig(&pid);
        let token = sandbox.service_account_token(NS, SA);
        assert!(
            kubeconfig.contains(&format!("'system:serviceaccount:{NS}:{SA}'")),
            "{kubeconfig}"
        );
        assert!(
            kubeconfig.contains(&format!("token: {token}")),
            "the ServiceAccount's token"
        );
    }
    let counts = sandbox.request_counts();
    let lease_writes = |pod: &str| {
        counts
            .by_client(pod)
            .iter()
            .filter(|((verb, resource), _)| {
                resource == "leases" && matches!(verb.as_str(), "create" | "update")
            })
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert!(
        lease_writes(&leader_name) > 0,
        "{:?}",
        counts.by_client(&leader_name)
    );

    // The logs (`pods/log`): the startup lines, on the mapped health port.
    let health = maps[leader][&8081];
    let logs = pods
        .logs(&leader_name, &Default::default())
        .await
        .expect("logs");
    assert!(logs.contains("serving operator endpoints"), "{logs}");
    assert!(logs.contains(&format!("127.0.0.1:{health}")), "{logs}");
    assert!(logs.contains("acquired the leader Lease"), "{logs}");
    // The standby's log says so.
    let standby_logs = pods
        .logs(&standby_name, &Default::default())
        .await
        .expect("logs");
    assert!(standby_logs.contains("standing by"), "{standby_logs}");
    assert!(
        !standby_logs.contains("acquired the leader Lease"),
        "{standby_logs}"
    );
    // Followed from the leader until its process ends, below.
    let follow = LogParams {
        follow: true,
        container: Some("operator".into()),
        tail_lines: Some(1),
        ..LogParams::default()
    };
    let mut leader_log = pods
        .log_stream(&leader_name, &follow)
        .await
        .expect("log stream")
        .lines();

    // A plain Rollout it reconciles goes Healthy.
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
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "demo:1"}]}},
            "strategy": {"redBlack": {"activeService": "web"}}
        }
    }))
    .unwrap();
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), "apps");
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("rollout");
    eventually("the Rollout is Healthy", || async {
        let r = rollouts.get("web").await.ok()?;
        (r.status?.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;

    // Deleting the leader's pod SIGTERMs its process: a clean exit (0, where
    // a SIGKILL shows 137) in the pod's final status.
    let mut events = pods
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={leader_name}")),
            "0",
        )
        .await
        .expect("watch")
        .boxed();
    pods.delete(&leader_name, &DeleteParams::default())
        .await
        .expect("delete");
    let exit_code = tokio::time::timeout(TIMEOUT, async {
        let mut last = None;
        while let Some(event) = events.next().await {
            match event.expect("watch event") {
                WatchEvent::Modified(p) | WatchEvent::Added(p) => {
                    let code = p
                        .status
                        .and_then(|s| s.container_statuses)
                        .and_then(|cs| cs.into_iter().next())
                        .and_then(|c| c.state?.terminated)
                        .map(|t| t.exit_code);
                    last = code.or(last);
                }
                WatchEvent::Deleted(_) => return last,
                _ => {}
            }
        }
        last
    })
    .await
    .expect("the pod is gone in time");
    assert_eq!(
        exit_code,
        Some(0),
        "the process exited by itself on SIGTERM"
    );
    let followed = tokio::time::timeout(TIMEOUT, async {
        let mut lines = Vec::new();
        while let Some(line) = leader_log.next().await {
            lines.push(line.expect("log line"));
        }
        lines
    })
    .await
    .expect("the followed log ends with the process");
    assert!(
        followed
            .iter()
            .any(|l| l.contains("released the leader Lease")),
        "{followed:#?}"
    );
    // The standby or the ReplicaSet's replacement, whichever is first.
    eventually("another pod leads", || async {
        let h = holder(&leases).await?;
        let live = pods.list(&Default::default()).await.ok()?;
        live.items
            .iter()
            .any(|p| p.name_any() != leader_name && held_by(&h, &p.name_any()))
            .then_some(())
    })
    .await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_account_keeps_the_pod_from_starting() {
    let (sandbox, admin) = sandbox(Anonymous::Admin).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_kc = dir.path().join("admin.kubeconfig");
    sandbox.write_kubeconfig(&admin_kc).expect("kubeconfig");
    create(
        &admin,
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "op", "namespace": NS},
            "spec": {"serviceAccountName": "later", "containers": [{
                "name": "operator", "image": "ghcr.io/redblack/redblack:dev",
                "args": ["controller", "--leader-elect=false"],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8081}, "periodSeconds": 1}
            }]}
        }),
    )
    .await;
    let pods = Api::<Pod>::namespaced(admin.clone(), NS);
    let waiting = eventually("the container waits for its ServiceAccount", || async {
        let pod = pods.get("op").await.ok()?;
        let state = pod.status?.container_statuses?.into_iter().next()?.state?;
        state
            .waiting
            .filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some(
            r#"error looking up service account redblack-system/later: serviceaccount "later" not found"#
        )
    );
    // Nothing ran, so there is no log: kubectl says why.
    let out = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(&admin_kc)
        .args(["logs", "-n", NS, "op"])
        .output()
        .expect("kubectl runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            r#"container "operator" in pod "op" is waiting to start: CreateContainerConfigError"#
        ),
        "{err}"
    );
    create(
        &admin,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "later", "namespace": NS}}),
    )
    .await;
    // It starts (and, without RBAC, is Ready: /healthz answers regardless).
    eventually("the pod starts once the ServiceAccount exists", || async {
        let pod = pods.get("op").await.ok()?;
        is_ready(&pod).then_some(())
    })
    .await;

    // `kubectl logs` (the real one): its startup lines, `-c`, `--tail`.
    let logs = kubectl(&admin_kc, &["logs", "-n", NS, "op"]);
    assert!(logs.contains("serving operator endpoints"), "{logs}");
    let by_name = kubectl(&admin_kc, &["logs", "-n", NS, "op", "-c", "operator"]);
    assert!(
        by_name.starts_with(logs.lines().next().expect("a line")),
        "{by_name}"
    );
    let tail = kubectl(&admin_kc, &["logs", "-n", NS, "op", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    // It acts as its ServiceAccount, which has no RBAC: the API says so.
    assert!(
        logs.contains(r#"User \"system:serviceaccount:redblack-system:later\" cannot"#)
            || logs.contains(r#"User "system:serviceaccount:redblack-system:later" cannot"#),
        "{logs}"
    );
    let out = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(&admin_kc)
        .args(["logs", "-n", NS, "op", "-c", "nope"])
        .output()
        .expect("kubectl runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("container nope is not valid for pod op"),
        "{err}"
    );
    sandbox.shutdown().await;
}
