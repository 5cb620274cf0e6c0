//! The real helm v4 (`.cache/tools/bin/helm`, from hack/deps.sh) installs,
//! upgrades, rolls back and uninstalls a tiny chart with a Deployment in the
//! sandbox, waiting on the Deployment's status as it would on a cluster.

mod sandbox_support;

use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use redblack_sandbox::{Sandbox, SandboxConfig};
use sandbox_support::{cached_tool, eventually, start_with};

const WAIT: Duration = Duration::from_secs(60);

const CHART: &str = "apiVersion: v2\nname: tiny\nversion: 0.1.0\n";
const VALUES: &str = "image: busybox:1\nreplicas: 2\n";
const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  labels: {app: {{ .Release.Name }}-web}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}-web}
  # As charts/redblack does: one replica is replaced by Recreate.
  strategy:
  {{- if gt (int .Values.replicas) 1 }}
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  {{- else }}
    type: Recreate
  {{- end }}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-web}
    spec:
      containers:
        - name: web
          image: {{ .Values.image | quote }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  image: {{ .Values.image | quote }}
"#;

struct Helm {
    dir: tempfile::TempDir,
}

impl Helm {
    fn new(sb: &Sandbox) -> Self {
        let dir = tempfile::tempdir().unwrap();
        sb.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        let chart = dir.path().join("chart");
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::write(chart.join("Chart.yaml"), CHART).unwrap();
        std::fs::write(chart.join("values.yaml"), VALUES).unwrap();
        std::fs::write(chart.join("templates/web.yaml"), DEPLOYMENT).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> String {
        self.dir.path().join(p).to_string_lossy().into_owned()
    }

    /// Runs helm on a blocking thread (the sandbox serves on this runtime),
    /// with its caches and config in the temp dir.
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(cached_tool("helm"));
        let home = self.dir.path();
        cmd.args(args)
            .args([
                "--kubeconfig",
                &self.path("kubeconfig"),
                "--namespace",
                "default",
            ])
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("KUBECONFIG");
        tokio::task::spawn_blocking(move || cmd.output().expect("helm runs"))
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "helm {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn images(client: &kube::Client) -> Vec<String> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("app=tiny-web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect()
}

/// What `--wait` promises: the Deployment fully rolled out to `image`.
async fn rolled_out(client: &kube::Client, image: &str, replicas: i32) {
    let d = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("tiny-web")
        .await
        .unwrap();
    let status = d.status.unwrap();
    assert_eq!(status.observed_generation, d.metadata.generation);
    assert_eq!(
        (status.updated_replicas, status.available_replicas),
        (Some(replicas), Some(replicas))
    );
    let template_image = d.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(template_image.as_deref(), Some(image));
}

fn release_secrets(secrets: &[Secret]) -> Vec<String> {
    let mut names: Vec<String> = secrets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    names
}

async fn run(sb: &Sandbox) {
    let client = sb.client().unwrap();
    let helm = Helm::new(sb);
    let chart = helm.path("chart");
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let owned_by_helm = ListParams::default().labels("owner=helm,name=tiny");

    helm.ok(&["install", "tiny", &chart, "--wait", "--timeout", "60s"])
        .await;
    rolled_out(&client, "busybox:1", 2).await;
    let list = helm.ok(&["list"]).await;
    let row = list.lines().find(|l| l.starts_with("tiny")).unwrap_or("");
    assert!(
        row.contains("deployed") && row.contains("tiny-0.1.0"),
        "{list}"
    );
    let status = helm.ok(&["status", "tiny"]).await;
    assert!(
        status.contains("STATUS: deployed") && status.contains("REVISION: 1"),
        "{status}"
    );
    let stored = secrets.list(&owned_by_helm).await.unwrap().items;
    assert_eq!(release_secrets(&stored), ["sh.helm.release.v1.tiny.v1"]);
    assert_eq!(stored[0].type_.as_deref(), Some("helm.sh/release.v1"));

    helm.ok(&[
        "upgrade",
        "tiny",
        &chart,
        "--set",
        "image=busybox:2,replicas=1",
        "--wait=legacy",
        "--timeout",
        "60s",
    ])
    .await;
    // RollingUpdate → Recreate: server-side apply drops `rollingUpdate`.
    rolled_out(&client, "busybox:2", 1).await;
    let strategy = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("tiny-web")
        .await
        .unwrap()
        .spec
        .strategy
        .unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert!(strategy.rolling_update.is_none());
    assert!(eventually(WAIT, || async { images(&client).await == ["busybox:2"] }).await);

    helm.ok(&["rollback", "tiny", "1", "--wait", "--timeout", "60s"])
        .await;
    rolled_out(&client, "busybox:1", 2).await;
    let history = helm.ok(&["history", "tiny"]).await;
    assert!(history.contains("Rollback to 1"), "{history}");
    let stored = secrets.list(&owned_by_helm).await.unwrap().items;
    assert_eq!(
        release_secrets(&stored),
        [
            "sh.helm.release.v1.tiny.v1",
            "sh.helm.release.v1.tiny.v2",
            "sh.helm.release.v1.tiny.v3"
        ]
    );

    helm.ok(&["uninstall", "tiny", "--wait", "--timeout", "60s"])
        .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), "default");
    assert!(deployments.get_opt("tiny-web").await.unwrap().is_none());
    assert!(secrets.list(&owned_by_helm).await.unwrap().items.is_empty());
    assert!(
        eventually(WAIT, || async {
            Api::<Pod>::namespaced(client.clone(), "default")
                .list(&ListParams::default().labels("app=tiny-web"))
                .await
                .unwrap()
                .items
                .is_empty()
        })
        .await,
        "the release's pods are collected"
    );
    assert!(
        helm.ok(&["list"])
            .await
            .lines()
            .all(|l| !l.starts_with("tiny"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_rollback_uninstall() {
    // Pods take a second to turn ready, so a helm that did not wait on the
    // Deployment would return before `rolled_out` holds.
    let sb = start_with(SandboxConfig {
        pod_ready_after: Duration::from_secs(1),
        ..SandboxConfig::default()
    })
    .await;
    run(&sb).await;
    sb.shutdown().await;
}
