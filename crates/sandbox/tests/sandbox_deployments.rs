//! Deployments reconciled end to end: through the real kube client and the
//! real kubectl (1.32 on PATH, 1.34 from hack/deps.sh), `kubectl rollout
//! status` returns when a rollout is done, Recreate, scaling, pause and the
//! revision history limit.

mod sandbox_support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use redblack_sandbox::{Sandbox, SandboxConfig};
use sandbox_support::{Kubectl, cached_tool, eventually, start_with};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn sandbox() -> Sandbox {
    start_with(SandboxConfig {
        pod_ready_after: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await
}

fn manifest(name: &str, replicas: u32, strategy: &str, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {strategy}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: "{image}"}}]
"#
    )
}

const ROLLING: &str = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

async fn replica_sets(client: &kube::Client, app: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

/// Live pods (not terminating) of `app`, by their image.
async fn live_images(client: &kube::Client, app: &str) -> Vec<String> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect()
}

fn revision(rs: &ReplicaSet) -> String {
    rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
}

/// kubectl apply, `rollout status` until done, `set image`, `rollout status`
/// again; the objects then look like a cluster's; history and undo.
async fn rollout_with(k: &Kubectl, sb: &Sandbox) {
    let client = sb.client().unwrap();
    let file = k.write("web.yaml", &manifest("web", 3, ROLLING, "busybox:1"));
    k.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );

    k.ok(&["set", "image", "deployment/web", "main=busybox:2"])
        .await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    let d = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let status = d.status.clone().unwrap();
    assert_eq!(status.observed_generation, d.metadata.generation);
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    let conditions = status.conditions.unwrap();
    let progressing = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    let available = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(
        (
            available.status.as_deref().unwrap_or(""),
            available.reason.as_deref()
        ),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );

    let mut rss = replica_sets(&client, "web").await;
    rss.sort_by_key(revision);
    assert_eq!(rss.len(), 2);
    let (old, new) = (&rss[0], &rss[1]);
    assert_eq!((revision(old).as_str(), revision(new).as_str()), ("1", "2"));
    assert_eq!(old.spec.replicas, Some(0));
    assert_eq!(new.spec.replicas, Some(3));
    let hash = new.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        new.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let owner = &new.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Deployment", "web", Some(true))
    );
    assert!(
        eventually(WAIT, || async {
            live_images(&client, "web").await == vec!["busybox:2"; 3]
        })
        .await,
        "{:?}",
        live_images(&client, "web").await
    );

    let history = k.ok(&["rollout", "history", "deployment/web"]).await;
    assert!(history.contains('1') && history.contains('2'), "{history}");
    k.ok(&["rollout", "undo", "deployment/web"]).await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    assert!(
        eventually(WAIT, || async {
            live_images(&client, "web").await == vec!["busybox:1"; 3]
        })
        .await
    );
    let rss = replica_sets(&client, "web").await;
    assert_eq!(rss.len(), 2, "undo reuses the first ReplicaSet");
    assert!(
        rss.iter()
            .any(|r| revision(r) == "3" && r.spec.replicas == Some(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_returns_after_an_image_change_kubectl_1_32() {
    let sb = sandbox().await;
    rollout_with(&Kubectl::new(&sb), &sb).await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_returns_after_an_image_change_kubectl_1_34() {
    let sb = sandbox().await;
    rollout_with(&Kubectl::with_binary(&sb, cached_tool("kubectl")), &sb).await;
    sb.shutdown().await;
}

/// Recreate: the new pods start only once every old pod is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_replaces_every_pod_after_the_old_ones_are_gone() {
    let sb = sandbox().await;
    let k = Kubectl::new(&sb);
    let client = sb.client().unwrap();
    let file = k.write(
        "r.yaml",
        &manifest("rec", 2, "{type: Recreate}", "busybox:1"),
    );
    k.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    k.ok(&["rollout", "status", "deployment/rec", "--timeout=60s"])
        .await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), "default");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}}});
    deployments
        .patch("rec", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    // Sample every pod (terminating ones included) until done: never both images.
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let done = eventually(WAIT, || async {
        let all = pods
            .list(&ListParams::default().labels("app=rec"))
            .await
            .unwrap()
            .items;
        let images: std::collections::BTreeSet<String> = all
            .iter()
            .map(|p| {
                p.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap()
            })
            .collect();
        assert!(images.len() <= 1, "old and new pods together: {images:?}");
        images.len() == 1 && images.contains("busybox:2") && all.len() == 2
    })
    .await;
    assert!(done, "the new pods never came");
    k.ok(&["rollout", "status", "deployment/rec", "--timeout=60s"])
        .await;
    sb.shutdown().await;
}

/// `kubectl scale`, then a paused Deployment that does not roll until resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_pause_and_resume() {
    let sb = sandbox().await;
    let k = Kubectl::with_binary(&sb, cached_tool("kubectl"));
    let client = sb.client().unwrap();
    let file = k.write("p.yaml", &manifest("pz", 2, ROLLING, "busybox:1"));
    k.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    k.ok(&["rollout", "status", "deployment/pz", "--timeout=60s"])
        .await;

    k.ok(&["scale", "deployment/pz", "--replicas=4"]).await;
    k.ok(&["rollout", "status", "deployment/pz", "--timeout=60s"])
        .await;
    assert!(
        eventually(WAIT, || async {
            live_images(&client, "pz").await.len() == 4
        })
        .await
    );
    assert_eq!(
        replica_sets(&client, "pz").await.len(),
        1,
        "scaling is not a new revision"
    );

    k.ok(&["rollout", "pause", "deployment/pz"]).await;
    k.ok(&["set", "image", "deployment/pz", "main=busybox:2"])
        .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), "default");
    // Wait until the controller has seen the paused spec...
    assert!(
        eventually(WAIT, || async {
            let d = deployments.get("pz").await.unwrap();
            let s = d.status.unwrap_or_default();
            s.observed_generation == d.metadata.generation
                && s.conditions.unwrap_or_default().iter().any(|c| {
                    c.type_.as_deref() == Some("Progressing")
                        && c.reason.as_deref() == Some("DeploymentPaused")
                })
        })
        .await
    );
    // ...and it did not roll.
    assert_eq!(replica_sets(&client, "pz").await.len(), 1);
    assert_eq!(live_images(&client, "pz").await, vec!["busybox:1"; 4]);

    k.ok(&["rollout", "resume", "deployment/pz"]).await;
    k.ok(&["rollout", "status", "deployment/pz", "--timeout=60s"])
        .await;
    assert!(
        eventually(WAIT, || async {
            live_images(&client, "pz").await == vec!["busybox:2"; 4]
        })
        .await
    );
    sb.shutdown().await;
}

/// Old ReplicaSets beyond `revisionHistoryLimit` are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_replica_sets_beyond_the_history_limit_go() {
    let sb = sandbox().await;
    let client = sb.client().unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), "default");
    let mut d: serde_json::Value =
        serde_yaml::from_str(&manifest("hl", 1, ROLLING, "busybox:1")).unwrap();
    d["spec"]["revisionHistoryLimit"] = json!(1);
    deployments
        .create(&Default::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    for image in ["busybox:2", "busybox:3", "busybox:4"] {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}});
        deployments
            .patch("hl", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
        assert!(
            eventually(WAIT, || async {
                live_images(&client, "hl").await == vec![image.to_string()]
            })
            .await,
            "{image} never rolled out"
        );
    }
    assert!(
        eventually(WAIT, || async {
            let mut revisions: Vec<String> = replica_sets(&client, "hl")
                .await
                .iter()
                .map(revision)
                .collect();
            revisions.sort();
            revisions == ["3", "4"]
        })
        .await,
        "{:?}",
        replica_sets(&client, "hl")
            .await
            .iter()
            .map(revision)
            .collect::<Vec<_>>()
    );
    sb.shutdown().await;
}

/// The real API server's refusals, as kubectl prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_deployments_are_refused_like_a_real_server() {
    let sb = sandbox().await;
    let k = Kubectl::with_binary(&sb, cached_tool("kubectl"));
    let zero = k.write(
        "z.yaml",
        &manifest(
            "z",
            1,
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}",
            "busybox:1",
        ),
    );
    let err = k.fails(&["apply", "-f", zero.to_str().unwrap()]).await;
    assert!(
        err.contains("The Deployment \"z\" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
        "{err}"
    );
    let ok = k.write("s.yaml", &manifest("s", 1, ROLLING, "busybox:1"));
    k.ok(&["apply", "-f", ok.to_str().unwrap()]).await;
    let moved = manifest("s", 1, ROLLING, "busybox:1")
        .replace(
            "selector: {matchLabels: {app: s}}",
            "selector: {matchLabels: {app: s, tier: x}}",
        )
        .replace(
            "metadata: {labels: {app: s}}",
            "metadata: {labels: {app: s, tier: x}}",
        );
    let moved = k.write("s2.yaml", &moved);
    let err = k.fails(&["apply", "-f", moved.to_str().unwrap()]).await;
    assert!(
        err.contains(r#"spec.selector: Invalid value: {"matchLabels":{"app":"s","tier":"x"}}: field is immutable"#),
        "{err}"
    );
    sb.shutdown().await;
}
