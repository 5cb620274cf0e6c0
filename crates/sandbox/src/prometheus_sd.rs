//! Prometheus service discovery for the sandbox's process pods: a `file_sd_configs`
//! JSON file listing every running demo-app process (`127.0.0.1:<port>`) with the
//! labels a Kubernetes scrape config would give it — `namespace`, `pod`,
//! `container`, and each pod label as `labelmap` of
//! `__meta_kubernetes_pod_label_(.+)` names it (non-alphanumerics become `_`:
//! `rollouts.redblack.io/pod-template-hash` → `rollouts_redblack_io_pod_template_hash`).
//!
//! The file is rewritten atomically (temporary file + rename) whenever the set
//! changes, so Prometheus never reads half a file; it watches the file and
//! follows pods as they come and go. `scrape_config` gives the job to add.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::controllers::process_runtime::PORT_ANNOTATION;
use crate::controllers::process_spec::demo_app_tag;
use crate::controllers::runner::{self, Reconciler};
use crate::controllers::{ControllerError, is_deleting, pod_phase};
use crate::registry::GroupResource;
use crate::store::{Store, StoredEvent, meta_str};
use crate::testing::prometheus::{FileSdGroup, file_sd_scrape_config, write_file_sd_targets};

/// A failed write is retried after this long (the directory may be back).
const RETRY_WRITE: Duration = Duration::from_secs(1);

/// A pod label's name as Prometheus's Kubernetes discovery + `labelmap` gives it.
pub fn label_name(k8s_label: &str) -> String {
    let mut name: String = k8s_label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The target group for one pod, if it is a running process pod.
fn target(pod: &Value) -> Option<FileSdGroup> {
    if is_deleting(pod) || pod_phase(pod) != "Running" {
        return None;
    }
    let ip: IpAddr = pod.get("status")?.get("podIP")?.as_str()?.parse().ok()?;
    if ip != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return None;
    }
    // The runtime keeps the annotation only while the process runs.
    let port: u16 = pod
        .get("metadata")?
        .get("annotations")?
        .get(PORT_ANNOTATION)?
        .as_str()?
        .parse()
        .ok()?;
    let container = pod
        .get("spec")?
        .get("containers")?
        .as_array()?
        .iter()
        .find(|c| {
            c.get("image")
                .and_then(Value::as_str)
                .is_some_and(|i| matches!(demo_app_tag(i), Ok(Some(_))))
        })?
        .get("name")?
        .as_str()?;
    let mut labels = BTreeMap::new();
    if let Some(pod_labels) = pod
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in pod_labels {
            labels.insert(label_name(k), v.as_str().unwrap_or("").to_string());
        }
    }
    // Set last: they win over a pod label that maps to the same name.
    labels.insert("namespace".into(), meta_str(pod, "namespace")?.to_string());
    labels.insert("pod".into(), meta_str(pod, "name")?.to_string());
    labels.insert("container".into(), container.to_string());
    Some(FileSdGroup {
        targets: vec![format!("127.0.0.1:{port}")],
        labels,
    })
}

/// Every running process pod, in a stable order (namespace, pod).
pub fn targets(pods: &[Arc<Value>]) -> Vec<FileSdGroup> {
    let mut groups: Vec<FileSdGroup> = pods.iter().filter_map(|p| target(p)).collect();
    groups.sort_by(|a, b| {
        (a.labels.get("namespace"), a.labels.get("pod"))
            .cmp(&(b.labels.get("namespace"), b.labels.get("pod")))
    });
    groups
}

/// The scrape job (YAML, one entry of `scrape_configs`) that reads the file.
pub fn scrape_config(job_name: &str, targets_file: &Path) -> String {
    file_sd_scrape_config(job_name, targets_file)
}

struct SdWriter {
    store: Arc<Store>,
    path: PathBuf,
    written: Option<Vec<FileSdGroup>>,
}

impl Reconciler for SdWriter {
    // One file: every pod change leads to the same single key.
    type Key = ();
    const NAME: &'static str = "prometheus-sd";

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<()>) {
        if event.gr == GroupResource::new("", "pods") {
            out.push(());
        }
    }

    fn all_keys(&mut self) -> Vec<()> {
        vec![()]
    }

    fn reconcile(&mut self, _: &()) -> Result<Option<Instant>, ControllerError> {
        let (pods, _) = self.store.list(&GroupResource::new("", "pods"), None);
        let groups = targets(&pods);
        if self.written.as_ref() == Some(&groups) {
            return Ok(None);
        }
        match write_file_sd_targets(&self.path, &groups) {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), targets = groups.len(), "file_sd updated");
                self.written = Some(groups);
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), %e, "cannot write the file_sd file; retrying");
                Ok(Some(Instant::now() + RETRY_WRITE))
            }
        }
    }
}

/// Keeps the file up to date until dropped.
#[must_use = "dropping the handle stops updating the file"]
pub struct PrometheusSdHandle {
    task: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl PrometheusSdHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for PrometheusSdHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Starts writing `path` (call from within a Tokio runtime). The file exists,
/// possibly with an empty list, as soon as the first pass has run.
pub fn start(store: Arc<Store>, path: PathBuf, resync: Duration) -> PrometheusSdHandle {
    let writer = SdWriter {
        store: store.clone(),
        path: path.clone(),
        written: None,
    };
    let task = tokio::spawn(runner::run(writer, store.subscribe(), resync));
    PrometheusSdHandle {
        task: Some(task),
        path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, port: Option<&str>, image: &str) -> Arc<Value> {
        let mut annotations = json!({});
        if let Some(p) = port {
            annotations[PORT_ANNOTATION] = json!(p);
        }
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "demo", "annotations": annotations,
                         "labels": {"app": "web", "rollouts.redblack.io/pod-template-hash": "abc12",
                                    "pod": "impostor"}},
            "spec": {"containers": [{"name": "sidecar", "image": "envoy:1"}, {"name": "app", "image": image}]},
            "status": {"phase": "Running", "podIP": ip}
        }))
    }

    #[test]
    fn only_running_process_pods_with_kubernetes_style_labels() {
        let pods = [
            pod("b", "127.0.0.1", Some("41001"), "redblack/demo-app:v2"),
            pod("a", "127.0.0.1", Some("41000"), "redblack/demo-app:v1"),
            pod("crashed", "127.0.0.1", None, "redblack/demo-app:v1"),
            pod("simulated", "10.244.0.1", Some("80"), "nginx:1"),
        ];
        let groups = targets(&pods);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, ["127.0.0.1:41000"]);
        let l = &groups[0].labels;
        assert_eq!(l["pod"], "a");
        assert_eq!(l["namespace"], "demo");
        assert_eq!(l["container"], "app");
        assert_eq!(l["app"], "web");
        assert_eq!(l["rollouts_redblack_io_pod_template_hash"], "abc12");
        assert_eq!(label_name("9lives.io/x"), "_9lives_io_x");
    }
}
