//! What the chart, image, install and operator-pod tests share: the
//! repository root, the helm and kubectl that `hack/deps.sh` caches, `helm
//! template` of the chart, and creating rendered objects with a kube client.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde::Deserialize;
use serde_json::Value;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cached tool (`.cache/tools/bin`, from hack/deps.sh) if present, else
/// one on PATH; a clear failure otherwise.
pub fn tool(name: &str) -> PathBuf {
    let cached = root().join(".cache/tools/bin").join(name);
    if cached.is_file() {
        return cached;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: run hack/deps.sh (make test does)"))
}

/// `helm template rb charts/redblack --namespace NS EXTRA...`, as JSON objects.
pub fn helm_template(namespace: &str, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(tool("helm"))
        .args([
            "template",
            "rb",
            "charts/redblack",
            "--namespace",
            namespace,
        ])
        .args(extra)
        .current_dir(root())
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("yaml"))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).expect("json"))
        .collect()
}

/// The resource name of the kinds these tests create from rendered objects.
pub fn plural(kind: &str) -> &'static str {
    match kind {
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "CustomResourceDefinition" => "customresourcedefinitions",
        "Namespace" => "namespaces",
        "HTTPRoute" => "httproutes",
        "ReplicaSet" => "replicasets",
        "Deployment" => "deployments",
        "Rollout" => "rollouts",
        "Pod" => "pods",
        "Service" => "services",
        "Notifier" => "notifiers",
        "CanaryAnalysis" => "canaryanalyses",
        other => panic!("no plural for {other}"),
    }
}

/// A dynamic API for `obj`'s kind, in its namespace if it names one.
pub fn api_for(client: &Client, obj: &Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let kind = obj["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural(kind),
    );
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates `obj` (any kind `plural` knows); panics naming it if refused.
pub async fn create(client: &Client, obj: &Value) {
    let dynamic: DynamicObject = serde_json::from_value(obj.clone()).expect("object");
    api_for(client, obj)
        .create(&PostParams::default(), &dynamic)
        .await
        .unwrap_or_else(|e| panic!("creating {} {}: {e}", obj["kind"], obj["metadata"]["name"]));
}

/// Polls `f` every 100 ms until it gives a value; panics naming `what` once
/// `limit` has passed.
pub async fn eventually_within<T, Fut: Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
