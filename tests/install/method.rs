//! The two ways users install redblack, as the commands they type: the Helm
//! chart (`helm install/upgrade/uninstall`) and the kustomize base
//! (`kubectl apply --server-side -k deploy/`, an overlay for the upgrade,
//! `kubectl delete -k deploy/ --ignore-not-found`).

use std::path::Path;

use super::harness::{Ran, Sandbox, root};

pub const RELEASE_NS: &str = "redblack-system";
/// The image tag installed (any tag of `redblack/redblack` runs this build).
pub const TAG: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Helm,
    Kustomize,
}

impl Method {
    /// The operator Deployment (and its ServiceAccount) the method creates.
    pub fn deployment(self) -> &'static str {
        match self {
            Method::Helm => "rb-redblack",
            Method::Kustomize => "redblack",
        }
    }

    pub fn service_account(self) -> &'static str {
        self.deployment()
    }

    /// Does the operator know the Prometheus URL (the chart's
    /// `prometheus.url`)? The kustomize base sets none: the analysis
    /// template names it instead.
    pub fn sets_prometheus_url(self) -> bool {
        self == Method::Helm
    }

    pub async fn install(self, sb: &Sandbox, prometheus_url: &str) -> Ran {
        match self {
            Method::Helm => {
                let url = format!("prometheus.url={prometheus_url}");
                let tag = format!("image.tag={TAG}");
                sb.helm(&[
                    "install",
                    "rb",
                    "charts/redblack",
                    "-n",
                    RELEASE_NS,
                    "--create-namespace",
                    "--set",
                    &tag,
                    "--set",
                    &url,
                ])
                .await
            }
            // The base allows no metric endpoint (it sets no
            // --prometheus-url): an overlay allows the test's Prometheus,
            // as a user's overlay names theirs.
            Method::Kustomize => {
                let overlay = install_overlay(sb, prometheus_url);
                sb.kubectl(&["apply", "--server-side", "-k", path(&overlay)])
                    .await
            }
        }
    }

    /// A change of the operator's pod template: the Deployment rolls.
    /// Helm: the log format (values kept). Kustomize: an overlay of the
    /// base with a new image tag, as a user's overlay pins a release.
    pub async fn upgrade(self, sb: &Sandbox) -> Ran {
        match self {
            Method::Helm => {
                sb.helm(&[
                    "upgrade",
                    "rb",
                    "charts/redblack",
                    "-n",
                    RELEASE_NS,
                    "--reuse-values",
                    "--set",
                    "logging.format=pretty",
                ])
                .await
            }
            Method::Kustomize => {
                let overlay = sb.dir.path().join("overlay");
                std::fs::create_dir_all(&overlay).expect("overlay dir");
                std::fs::write(
                    overlay.join("kustomization.yaml"),
                    format!(
                        "apiVersion: kustomize.config.k8s.io/v1beta1\n\
                         kind: Kustomization\n\
                         resources:\n  - {}\n\
                         images:\n  - name: redblack/redblack\n    newTag: \"{TAG}-upgraded\"\n",
                        relative_to(&overlay, &sb.dir.path().join("install"))
                    ),
                )
                .expect("overlay");
                sb.kubectl(&["apply", "--server-side", "-k", path(&overlay)])
                    .await
            }
        }
    }

    /// Is the upgrade visible in a pod template (`spec.template.spec` JSON)?
    pub fn upgraded(self, pod_spec: &serde_json::Value) -> bool {
        let container = &pod_spec["containers"][0];
        match self {
            Method::Helm => container["args"]
                .as_array()
                .and_then(|args| args.windows(2).find(|w| w[0] == "--log-format"))
                .is_some_and(|w| w[1] == "pretty"),
            Method::Kustomize => container["image"]
                .as_str()
                .is_some_and(|i| i.ends_with("-upgraded")),
        }
    }

    pub async fn uninstall(self, sb: &Sandbox) -> Ran {
        match self {
            Method::Helm => sb.helm(&["uninstall", "rb", "-n", RELEASE_NS]).await,
            // The namespace is deleted first (it is the first object), and
            // its contents with it: without --ignore-not-found kubectl then
            // fails on them, as against a real cluster (istio/istio#7422).
            Method::Kustomize => {
                sb.kubectl(&["delete", "-k", "deploy/", "--ignore-not-found"])
                    .await
            }
        }
    }

    /// Every object the install created, as `kubectl get` arguments
    /// (`kind/name`, namespace or none): helm's record of the release, or
    /// the rendered kustomization.
    pub async fn created_objects(self, sb: &Sandbox) -> Vec<(String, Option<String>)> {
        let yaml = match self {
            Method::Helm => {
                sb.must("helm", &["get", "manifest", "rb", "-n", RELEASE_NS])
                    .await
            }
            Method::Kustomize => sb.must("kubectl", &["kustomize", "deploy/"]).await,
        };
        objects(&yaml)
    }
}

/// The kustomize base plus `--allowed-metric-endpoint=<prometheus_url>`.
fn install_overlay(sb: &Sandbox, prometheus_url: &str) -> std::path::PathBuf {
    let overlay = sb.dir.path().join("install");
    std::fs::create_dir_all(&overlay).expect("install overlay dir");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\n\
             kind: Kustomization\n\
             resources:\n  - {}\n\
             patches:\n  - target: {{kind: Deployment, name: redblack}}\n    patch: |-\n      \
             - op: add\n        path: /spec/template/spec/containers/0/args/-\n        \
             value: --allowed-metric-endpoint={prometheus_url}\n",
            relative_to(&overlay, &root().join("deploy"))
        ),
    )
    .expect("install overlay");
    overlay
}

/// `to` as a path relative to `from` (kustomize takes no absolute bases):
/// up to the root, then down.
fn relative_to(from: &Path, to: &Path) -> String {
    let ups = from.components().skip(1).count();
    let down = to.strip_prefix("/").expect("an absolute path");
    format!("{}{}", "../".repeat(ups), down.display())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `(kind.group/name, namespace)` of every object of a YAML stream.
pub fn objects(yaml: &str) -> Vec<(String, Option<String>)> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_yaml::Value::deserialize(d).expect("yaml"))
        .filter(|v| !v.is_null())
        .map(|o| {
            let api_version = o["apiVersion"].as_str().expect("apiVersion");
            let group = api_version
                .split_once('/')
                .map(|(g, _)| format!(".{g}"))
                .unwrap_or_default();
            let kind = o["kind"].as_str().expect("kind").to_lowercase();
            let name = o["metadata"]["name"].as_str().expect("name");
            let ns = o["metadata"]["namespace"].as_str().map(str::to_owned);
            (format!("{kind}{group}/{name}"), ns)
        })
        .collect()
}
