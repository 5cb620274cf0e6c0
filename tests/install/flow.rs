//! One install method from install to uninstall (tests/install.rs says
//! what it shows). One sandbox and one Prometheus per method: the phases
//! follow each other, and the two methods stay independent.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase};
use redblack::api::{CanaryPhase, POD_TEMPLATE_HASH_LABEL, Phase, Rollout, pod_template_hash};
use redblack_demo::load::{LoadConfig, run_load};
use redblack_sandbox::prometheus_sd;
use redblack_sandbox::testing::prometheus::{PrometheusOptions, PrometheusProcess};
use serde_json::Value;

use super::app::{self, APP, TEMPLATE};
use super::harness::{SHORT, Sandbox, eventually};
use super::method::{Method, RELEASE_NS};

const APPS: &str = "apps";
const LEASE: &str = "redblack-controller";
/// Bound on a whole canary (analysis included) on a busy machine.
const CANARY: Duration = Duration::from_secs(240);
const PID_ANNOTATION: &str = "sandbox.redblack.io/pid";

pub async fn install_roll_out_upgrade_uninstall(method: Method) {
    let sb = Sandbox::start().await;
    let prometheus = PrometheusProcess::start_with(PrometheusOptions {
        scrape_configs: Some(prometheus_sd::scrape_config("pods", &sb.sd_file)),
        // 4 scrapes per 1 s step: every step's rate() has data.
        scrape_interval: Duration::from_millis(250),
        ..PrometheusOptions::default()
    })
    .expect("prometheus starts");
    let client = sb.client.clone();

    // Install, and the operator Deployment rolls out.
    let ran = method.install(&sb, prometheus.url()).await;
    assert!(ran.ok, "{method:?} install failed:\n{}", ran.text());
    let created = method.created_objects(&sb).await;
    rollout_status(&sb, method).await;
    let first = operator_pods(&client, method).await;
    let leader = wait_leader(&client, &first).await;
    println!("{method:?}: operator pods {first:?}, leader {leader}");
    runs_as_the_service_account(&client, method, &leader).await;
    logs_show_the_lease(&sb, &leader).await;
    // As the chart's NOTES.txt suggests: kubectl picks one of the pods.
    let deployment = format!("deploy/{}", method.deployment());
    let logs = sb
        .must("kubectl", &["logs", "-n", RELEASE_NS, &deployment])
        .await;
    assert!(logs.contains("leader election started"), "{logs}");

    // The demo app, canary-gated by the installed operator: a bad v2 is
    // reverted.
    sb.must("kubectl", &["create", "namespace", APPS]).await;
    let prom_in_template = (!method.sets_prometheus_url()).then(|| prometheus.url());
    apply(
        &sb,
        &[
            app::service(APPS),
            app::analysis_template(APPS, prom_in_template),
            app::rollout(APPS, "v1", &[]),
        ],
    )
    .await;
    let h1 = wait_rollout(&client, "v1 Healthy", SHORT, |r| {
        status_phase(r) == Some(Phase::Healthy)
    })
    .await;
    let h1 = pod_template_hash(&h1.spec.template);
    let load = start_load(&client).await;

    let v2 = app::rollout(APPS, "v2", &[("DEMO_ERROR_RATE", "0.1")]);
    apply(&sb, std::slice::from_ref(&v2)).await;
    let h2 = hash(&v2);
    wait_rollout(&client, "v2's canary Failed and reverted", CANARY, |r| {
        let st = r.status.clone().unwrap_or_default();
        st.canary.as_ref().is_some_and(|c| {
            c.revision.as_deref() == Some(h2.as_str()) && c.phase == Some(CanaryPhase::Failed)
        }) && st.phase == Some(Phase::Degraded)
    })
    .await;
    assert_eq!(selected(&client).await.as_deref(), Some(h1.as_str()));
    assert_eq!(
        analysis_phase(&client, &h2).await,
        Some(CanaryAnalysisPhase::Failed)
    );

    // v3's canary in progress (held: its analysis template is not there
    // yet) while the operator is upgraded.
    sb.must(
        "kubectl",
        &["delete", "canaryanalysistemplate", TEMPLATE, "-n", APPS],
    )
    .await;
    let v3 = app::rollout(APPS, "v3", &[]);
    apply(&sb, std::slice::from_ref(&v3)).await;
    let h3 = hash(&v3);
    wait_rollout(&client, "v3's canary held for its template", CANARY, |r| {
        let st = r.status.clone().unwrap_or_default();
        st.canary
            .as_ref()
            .is_some_and(|c| c.revision.as_deref() == Some(h3.as_str()))
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "Progressing" && c.reason == "AnalysisTemplateNotFound")
    })
    .await;

    let ran = method.upgrade(&sb).await;
    assert!(ran.ok, "{method:?} upgrade failed:\n{}", ran.text());
    rollout_status(&sb, method).await;
    let second = operator_pods(&client, method).await;
    let old_names: BTreeSet<&String> = first.iter().map(|(n, _)| n).collect();
    assert!(
        second.iter().all(|(n, _)| !old_names.contains(n)),
        "after the upgrade only new operator pods: before {first:?}, after {second:?}"
    );
    old_processes_exit(&first).await;
    let new_leader = wait_leader(&client, &second).await;
    println!("{method:?}: after the upgrade, operator pods {second:?}, leader {new_leader}");
    let pod: Pod = Api::namespaced(client.clone(), RELEASE_NS)
        .get(&new_leader)
        .await
        .expect("the new leader's pod");
    let spec = serde_json::to_value(pod.spec).expect("pod spec");
    assert!(
        method.upgraded(&spec),
        "the new leader runs the upgraded template: {spec}"
    );
    logs_show_the_lease(&sb, &new_leader).await;

    // The rollout in progress continues under the new leader: the template
    // arrives, the canary is judged, passes, v3 is promoted.
    apply(&sb, &[app::analysis_template(APPS, prom_in_template)]).await;
    wait_rollout(&client, "v3 promoted by its canary", CANARY, |r| {
        let st = r.status.clone().unwrap_or_default();
        st.phase == Some(Phase::Healthy) && st.stable_revision.as_deref() == Some(h3.as_str())
    })
    .await;
    assert_eq!(selected(&client).await.as_deref(), Some(h3.as_str()));
    assert_eq!(
        analysis_phase(&client, &h3).await,
        Some(CanaryAnalysisPhase::Passed)
    );
    load.abort();

    // Uninstall: every object the install created goes, and the operator
    // processes with their pods.
    let ran = method.uninstall(&sb).await;
    assert!(ran.ok, "{method:?} uninstall failed:\n{}", ran.text());
    for (object, ns) in &created {
        let mut args = vec!["get", object.as_str(), "--ignore-not-found", "-o", "name"];
        if let Some(ns) = ns {
            args.extend(["-n", ns.as_str()]);
        }
        eventually(&format!("{object} is gone"), SHORT, || async {
            let out = sb.must("kubectl", &args).await;
            if out.trim().is_empty() {
                Ok(())
            } else {
                Err(out)
            }
        })
        .await;
    }
    old_processes_exit(&second).await;
    eventually("no operator pod is left", SHORT, || async {
        let left = operator_pods_now(&client, method).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    let crds = sb.must("kubectl", &["get", "crd", "-o", "name"]).await;
    match method {
        // Helm keeps the CRDs (and so the users' Rollouts); the release
        // record is gone.
        Method::Helm => {
            for crd in ["rollouts", "canaryanalyses", "canaryanalysistemplates"] {
                assert!(crds.contains(&format!("{crd}.redblack.io")), "{crds}");
            }
            let secrets: Api<Secret> = Api::namespaced(client.clone(), RELEASE_NS);
            let left = secrets
                .list(&ListParams::default().labels("owner=helm"))
                .await
                .expect("list secrets");
            assert!(left.items.is_empty(), "helm's release record is gone");
        }
        // The CRDs are in the kustomization: deleted, with every Rollout.
        Method::Kustomize => assert!(!crds.contains("redblack.io"), "{crds}"),
    }
}

fn hash(rollout: &Value) -> String {
    let r: Rollout = serde_json::from_value(rollout.clone()).expect("a Rollout");
    pod_template_hash(&r.spec.template)
}

fn status_phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

/// `kubectl apply -f` of the objects, from a file.
async fn apply(sb: &Sandbox, objects: &[Value]) {
    let file = sb.dir.path().join("apply.yaml");
    std::fs::write(&file, app::manifest(objects)).expect("manifest");
    sb.must("kubectl", &["apply", "-f", file.to_str().expect("utf-8")])
        .await;
}

async fn rollout_status(sb: &Sandbox, method: Method) {
    let deployment = format!("deployment/{}", method.deployment());
    let ran = sb
        .kubectl(&[
            "rollout",
            "status",
            &deployment,
            "-n",
            RELEASE_NS,
            "--timeout=180s",
        ])
        .await;
    assert!(
        ran.ok,
        "kubectl rollout status {deployment}:\n{}\n--- pods:\n{}",
        ran.text(),
        sb.kubectl(&["get", "pods", "-n", RELEASE_NS, "-o", "wide"])
            .await
            .text()
    );
    assert!(
        ran.stdout.contains("successfully rolled out"),
        "{}",
        ran.text()
    );
}

/// The operator's pods not being deleted: (name, pid of its process).
async fn operator_pods_now(client: &Client, method: Method) -> Vec<(String, Option<i32>)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NS);
    let selector = match method {
        Method::Helm => "app.kubernetes.io/instance=rb",
        Method::Kustomize => "app.kubernetes.io/name=redblack",
    };
    pods.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let pid = p
                .annotations()
                .get(PID_ANNOTATION)
                .and_then(|v| v.parse().ok());
            (p.name_any(), pid)
        })
        .collect()
}

/// The operator's pods once each of the replicas runs a process.
async fn operator_pods(client: &Client, method: Method) -> Vec<(String, i32)> {
    eventually("two operator pods with processes", SHORT, || async {
        let pods = operator_pods_now(client, method).await;
        let running: Vec<(String, i32)> = pods
            .iter()
            .filter_map(|(n, pid)| Some((n.clone(), (*pid)?)))
            .collect();
        if running.len() == 2 && pods.len() == 2 {
            Ok(running)
        } else {
            Err(format!("{pods:?}"))
        }
    })
    .await
}

/// The pod (of `pods`) whose operator holds the Lease.
async fn wait_leader(client: &Client, pods: &[(String, i32)]) -> String {
    let leases: Api<Lease> = Api::namespaced(client.clone(), RELEASE_NS);
    eventually(
        "one of the operator pods holds the Lease",
        SHORT,
        || async {
            let holder = leases
                .get(LEASE)
                .await
                .map_err(|e| e.to_string())?
                .spec
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            pods.iter()
                .find(|(name, _)| holder.starts_with(&format!("{name}-")))
                .map(|(name, _)| name.clone())
                .ok_or(format!("holder {holder:?}, pods {pods:?}"))
        },
    )
    .await
}

/// The process of `pod` authenticates as the method's ServiceAccount: its
/// credentials (the KUBECONFIG the sandbox gave it, as a kubelet mounts a
/// token) may list Rollouts everywhere but not Secrets.
async fn runs_as_the_service_account(client: &Client, method: Method, pod: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NS);
    let p = pods.get(pod).await.expect("the leader's pod");
    assert_eq!(
        p.spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref()),
        Some(method.service_account())
    );
    let pid: i32 = p.annotations()[PID_ANNOTATION].parse().expect("a pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the process's environment");
    let kubeconfig = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"KUBECONFIG="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("KUBECONFIG in the operator's environment");
    let config = redblack::runtime::client::config(Some(std::path::Path::new(&kubeconfig)))
        .await
        .expect("the pod's kubeconfig");
    let as_pod = Client::try_from(config).expect("client");
    Api::<Rollout>::all(as_pod.clone())
        .list(&ListParams::default())
        .await
        .expect("the chart grants listing Rollouts");
    let user = format!(
        "system:serviceaccount:{RELEASE_NS}:{}",
        method.service_account()
    );
    match Api::<Secret>::namespaced(as_pod, RELEASE_NS)
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(
            s.message,
            format!(
                "secrets is forbidden: User \"{user}\" cannot list resource \"secrets\" \
                 in API group \"\" in the namespace \"{RELEASE_NS}\""
            )
        ),
        other => panic!("listing Secrets with the operator pod's credentials: {other:?}"),
    }
}

/// `kubectl logs` of the pod shows the operator taking the Lease (both log
/// formats print the message as is).
async fn logs_show_the_lease(sb: &Sandbox, pod: &str) {
    eventually(
        &format!("kubectl logs {pod} shows the Lease taken"),
        SHORT,
        || async {
            let ran = sb.kubectl(&["logs", "-n", RELEASE_NS, pod]).await;
            if ran.ok && ran.stdout.contains("acquired the leader Lease; leading") {
                Ok(())
            } else {
                Err(ran.text())
            }
        },
    )
    .await;
}

/// The processes of the old pods have exited.
async fn old_processes_exit(pods: &[(String, i32)]) {
    eventually("the old operator processes exit", SHORT, || async {
        let alive: Vec<&(String, i32)> = pods.iter().filter(|(_, pid)| alive(*pid)).collect();
        if alive.is_empty() {
            Ok(())
        } else {
            Err(format!("{alive:?}"))
        }
    })
    .await;
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

async fn wait_rollout(
    client: &Client,
    what: &str,
    limit: Duration,
    done: impl Fn(&Rollout) -> bool,
) -> Rollout {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), APPS);
    eventually(what, limit, || async {
        let r = rollouts.get(APP).await.map_err(|e| e.to_string())?;
        let current = r
            .status
            .as_ref()
            .is_some_and(|s| s.observed_generation == r.metadata.generation);
        if current && done(&r) {
            Ok(r)
        } else {
            Err(serde_json::to_string_pretty(&r.status).unwrap_or_default())
        }
    })
    .await
}

async fn selected(client: &Client) -> Option<String> {
    let svc = Api::<Service>::namespaced(client.clone(), APPS)
        .get(APP)
        .await
        .ok()?;
    svc.spec?.selector?.get(POD_TEMPLATE_HASH_LABEL).cloned()
}

async fn analysis_phase(client: &Client, hash: &str) -> Option<CanaryAnalysisPhase> {
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), APPS);
    let list = api
        .list(&ListParams::default().labels(&format!("{POD_TEMPLATE_HASH_LABEL}={hash}")))
        .await
        .ok()?;
    list.items.last()?.status.as_ref()?.phase
}

/// Steady load on the Service's data-plane port until aborted.
async fn start_load(client: &Client) -> tokio::task::JoinHandle<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let port = eventually("the Service gets a data-plane port", SHORT, || async {
        let svc = services.get(APP).await.map_err(|e| e.to_string())?;
        svc.annotations()
            .get("sandbox.redblack.io/proxy-port")
            .cloned()
            .ok_or(format!("{:?}", svc.annotations()))
    })
    .await;
    let cfg = LoadConfig {
        target: format!("http://127.0.0.1:{port}/"),
        rps: 50.0,
        duration: Duration::from_secs(900),
        concurrency: 64,
        timeout: Duration::from_secs(5),
    };
    tokio::spawn(async move {
        let _ = run_load(cfg, |_| {}).await;
    })
}
