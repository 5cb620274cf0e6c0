//! The Helm chart and the kustomize base, checked with the real tools:
//! `helm lint`, `helm template` (default and overridden values) and
//! `kubectl kustomize deploy`. helm v4 and kubectl 1.34 come from
//! `hack/deps.sh` (`.cache/tools/bin`); `make test` runs it first.

mod tools;

use tools::{root, tool};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn helm_template(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "rb", "charts/redblack", "--namespace", "ops"];
    args.extend_from_slice(extra);
    docs(&run(&tool("helm"), &args))
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn container(objs: &[Value]) -> &Value {
    &find(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// (apiGroup, resource, verb) triples granted by a ClusterRole or Role.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

fn triples(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for g in groups {
        for r in resources {
            for v in verbs {
                out.push((g.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// Exactly what the operator needs (README "Install" lists the same).
fn expected_cluster_grants() -> BTreeSet<(String, String, String)> {
    // Every one is needed: tests/chart_rbac.rs removes each rule in turn.
    let watch = ["list", "watch"];
    [
        triples(&["redblack.io"], &["rollouts"], &watch),
        // get: the notifier reads a verdict's report; delete: finished
        // ones beyond a Rollout's analysis history limits (spec.analysis).
        triples(
            &["redblack.io"],
            &["canaryanalyses"],
            &["get", "list", "watch", "create", "delete"],
        ),
        // The notifier: Notifiers read, their status and the ledger
        // ConfigMaps written (docs/notifications.md).
        triples(&["redblack.io"], &["notifiers"], &["get", "list", "watch"]),
        // A restart (spec.restartAt) lists and deletes the live fleet's pods;
        // activeMetadata/previewMetadata patch their labels and annotations.
        triples(&[""], &["pods"], &["list", "patch", "delete"]),
        // Job gates: their Jobs applied and listed (docs/rollout.md, "Gates").
        triples(&["batch"], &["jobs"], &["list", "patch"]),
        triples(&[""], &["configmaps"], &["get", "patch"]),
        triples(&["redblack.io"], &["canaryanalysistemplates"], &watch),
        triples(
            &["redblack.io"],
            &[
                "rollouts/status",
                "canaryanalyses/status",
                "notifiers/status",
            ],
            &["patch"],
        ),
        triples(
            &["redblack.io"],
            &["rollouts/finalizers", "canaryanalyses/finalizers"],
            &["update"],
        ),
        triples(
            &["apps"],
            &["replicasets"],
            &["list", "watch", "patch", "delete"],
        ),
        // workloadRef: watched; scaleDown: onsuccess scales one to 0.
        triples(&["apps"], &["deployments"], &["list", "watch", "patch"]),
        // Secrets an analysis' spec.prometheus names (TLS, auth, headers).
        triples(&[""], &["secrets"], &["get"]),
        triples(&[""], &["services"], &["get", "list", "watch", "patch"]),
        triples(&["events.k8s.io"], &["events"], &["create"]),
        triples(
            &["gateway.networking.k8s.io"],
            &["httproutes"],
            &["get", "list", "watch", "patch"],
        ),
    ]
    .concat()
    .into_iter()
    .collect()
}

#[test]
fn helm_lint_is_clean_with_default_and_overridden_values() {
    let helm = tool("helm");
    run(&helm, &["lint", "--strict", "charts/redblack"]);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, OVERRIDE).unwrap();
    run(
        &helm,
        &[
            "lint",
            "--strict",
            "charts/redblack",
            "-f",
            values.to_str().unwrap(),
        ],
    );
}

#[test]
fn default_render_runs_the_controller_with_probes_and_least_privilege() {
    let objs = helm_template(&[]);
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
        .map(String::from)
        .into(),
    );
    let deploy = find(&objs, "Deployment");
    // HA by default: one leader, one standby, rolling updates, a PDB.
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(deploy["metadata"]["namespace"], "ops");
    let pdb = find(&objs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let c = container(&objs);
    assert_eq!(
        strs(&c["args"]),
        [
            "controller",
            "--metrics-addr",
            ":8080",
            "--health-addr",
            ":8081",
            "--log-format",
            "json",
            "--leader-elect=true",
            "--leader-election-id",
            "redblack-controller",
            "--lease-duration",
            "15s",
            "--renew-deadline",
            "10s",
            "--retry-period",
            "2s"
        ]
    );
    // The election's identity and the Lease's namespace (downward API).
    let env = c["env"].as_sequence().unwrap();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }
    assert_eq!(c["image"], "redblack/redblack:0.1.0");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);

    let sa = find(&objs, "ServiceAccount")["metadata"]["name"].clone();
    assert_eq!(deploy["spec"]["template"]["spec"]["serviceAccountName"], sa);
    let binding = find(&objs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], sa);
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
    assert_eq!(
        binding["roleRef"]["name"],
        find(&objs, "ClusterRole")["metadata"]["name"]
    );
    assert_eq!(
        grants(find(&objs, "ClusterRole")),
        expected_cluster_grants()
    );
    let leases: BTreeSet<_> = triples(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update"],
    )
    .into_iter()
    .collect();
    assert_eq!(grants(find(&objs, "Role")), leases);
    assert_eq!(find(&objs, "Role")["metadata"]["namespace"], "ops");

    let svc = find(&objs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
}

const OVERRIDE: &str = r#"
image:
  repository: registry.example/redblack
  tag: "1.2.3"
replicaCount: 2
watchNamespace: team-a
prometheus:
  url: http://prometheus.monitoring:9090
logging:
  format: pretty
  level: debug
metrics:
  port: 9090
  service:
    enabled: false
health:
  port: 9091
serviceAccount:
  create: false
  name: ops-operator
leaderElection:
  leaseName: ops-lease
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 4s
"#;

#[test]
fn overridden_values_change_the_render() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, OVERRIDE).unwrap();
    let objs = helm_template(&["-f", values.to_str().unwrap()]);
    assert_eq!(
        kinds(&objs),
        ["Deployment", "PodDisruptionBudget", "Role", "RoleBinding"]
            .map(String::from)
            .into(),
        "no ServiceAccount, no cluster-wide RBAC, no metrics Service"
    );
    let deploy = find(&objs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["serviceAccountName"],
        "ops-operator"
    );
    let c = container(&objs);
    assert_eq!(c["image"], "registry.example/redblack:1.2.3");
    assert_eq!(
        strs(&c["args"]),
        [
            "controller",
            "--metrics-addr",
            ":9090",
            "--health-addr",
            ":9091",
            "--log-format",
            "pretty",
            "--namespace",
            "team-a",
            "--leader-elect=true",
            "--leader-election-id",
            "ops-lease",
            "--lease-duration",
            "30s",
            "--renew-deadline",
            "20s",
            "--retry-period",
            "4s"
        ]
    );
    let env = c["env"].as_sequence().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(var("RUST_LOG"), Some("debug".into()));
    assert_eq!(
        var("REDBLACK_PROMETHEUS_URL"),
        Some("http://prometheus.monitoring:9090".into())
    );
    // Watching one namespace: the same rules, as a Role there.
    let in_ns = |kind: &str, ns: &str| {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no {kind} in {ns}"))
    };
    assert_eq!(grants(in_ns("Role", "team-a")), expected_cluster_grants());
    let watched = in_ns("RoleBinding", "team-a");
    assert_eq!(watched["roleRef"]["kind"], "Role");
    assert_eq!(
        watched["roleRef"]["name"],
        in_ns("Role", "team-a")["metadata"]["name"]
    );
    assert_eq!(watched["subjects"][0]["name"], "ops-operator");
    assert_eq!(watched["subjects"][0]["namespace"], "ops");

    // One replica without election: the old pod stops before a new one
    // starts, and no PDB (it would block every drain).
    let objs = helm_template(&[
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(!kinds(&objs).contains("PodDisruptionBudget"));
    let deploy = find(&objs, "Deployment");
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    let args = strs(&container(&objs)["args"]);
    assert!(
        args.contains(&"--leader-elect=false".to_owned()),
        "{args:?}"
    );
    assert!(!args.contains(&"--lease-duration".to_owned()), "{args:?}");

    let objs = helm_template(&["--set", "rbac.create=false"]);
    assert!(
        kinds(&objs).iter().all(|k| !k.contains("Role")),
        "{:?}",
        kinds(&objs)
    );
}

#[test]
fn kustomize_base_renders_the_same_operator_as_the_chart() {
    let objs = docs(&run(&tool("kubectl"), &["kustomize", "deploy"]));
    let k = kinds(&objs);
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ] {
        assert!(k.contains(kind), "missing {kind} in {k:?}");
    }
    for o in &objs {
        let kind = o["kind"].as_str().unwrap();
        if !matches!(
            kind,
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        ) {
            assert_eq!(o["metadata"]["namespace"], "redblack-system", "{kind}");
        }
    }
    let chart = helm_template(&[]);
    assert_eq!(
        grants(find(&objs, "ClusterRole")),
        grants(find(&chart, "ClusterRole")),
        "deploy/rbac.yaml and the chart's rbac.yaml disagree"
    );
    assert_eq!(grants(find(&objs, "Role")), grants(find(&chart, "Role")));
    let (c, chart_c) = (container(&objs), container(&chart));
    assert_eq!(c["args"], chart_c["args"]);
    assert_eq!(c["image"], "redblack/redblack:0.1.0");
    assert_eq!(c["livenessProbe"], chart_c["livenessProbe"]);
    assert_eq!(c["readinessProbe"], chart_c["readinessProbe"]);
    assert_eq!(c["env"], chart_c["env"]);
    let (d, chart_d) = (find(&objs, "Deployment"), find(&chart, "Deployment"));
    assert_eq!(d["spec"]["replicas"], chart_d["spec"]["replicas"]);
    assert_eq!(d["spec"]["strategy"], chart_d["spec"]["strategy"]);
    assert_eq!(
        find(&objs, "PodDisruptionBudget")["spec"]["minAvailable"],
        find(&chart, "PodDisruptionBudget")["spec"]["minAvailable"]
    );
    let crds = objs
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .count();
    assert_eq!(
        crds,
        generated_crds("crds").len(),
        "kustomize lists every crds/*.yaml"
    );
}

fn generated_crds(dir: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root().join(dir))
        .map(|rd| rd.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .map(|n| {
            let text = std::fs::read_to_string(root().join(dir).join(&n)).unwrap();
            (n, text)
        })
        .collect();
    out.sort();
    out
}

/// `make crds` keeps the chart's copies identical to crds/; every file there is
/// a redblack.io CRD that helm would install.
#[test]
fn chart_crds_match_the_generated_ones() {
    let generated = generated_crds("crds");
    assert_eq!(
        generated_crds("charts/redblack/crds"),
        generated,
        "run `make crds`"
    );
    for (name, text) in &generated {
        for doc in docs(text) {
            assert_eq!(doc["kind"], "CustomResourceDefinition", "{name}");
            assert_eq!(doc["spec"]["group"], "redblack.io", "{name}");
        }
    }
    if !generated.is_empty() {
        let objs = helm_template(&["--include-crds"]);
        assert!(kinds(&objs).contains("CustomResourceDefinition"));
    }
}

/// NOTES.txt renders (only `helm install` renders it; client dry-run needs no
/// cluster) and tells the user where the operator runs.
#[test]
fn install_notes_render() {
    let out = run(
        &tool("helm"),
        &[
            "install",
            "rb",
            "charts/redblack",
            "--namespace",
            "ops",
            "--dry-run=client",
            "--set",
            "watchNamespace=team-a",
        ],
    );
    let notes = out
        .split("NOTES:")
        .nth(1)
        .expect("no NOTES in dry-run output");
    assert!(
        notes.contains("\"rb-redblack\" in namespace ops"),
        "{notes}"
    );
    assert!(notes.contains("in namespace team-a only"), "{notes}");
    assert!(notes.contains("rb-redblack-metrics"), "{notes}");
}

/// The ServiceMonitor and the dashboard ConfigMap are rendered only when
/// asked for; the ServiceMonitor scrapes the metrics Service's port, and the
/// ConfigMap carries dashboards/redblack.json unchanged, labelled for
/// Grafana's dashboard sidecar.
#[test]
fn service_monitor_and_dashboard_render_only_when_enabled() {
    let default = kinds(&helm_template(&[]));
    assert!(!default.contains("ServiceMonitor"), "{default:?}");
    assert!(!default.contains("ConfigMap"), "{default:?}");

    let objs = helm_template(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=kps",
        "--set",
        "grafana.dashboard.enabled=true",
        "--set",
        "grafana.dashboard.namespace=monitoring",
    ]);
    let monitor = find(&objs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], "ops");
    assert_eq!(monitor["metadata"]["labels"]["release"], "kps");
    let service = find(&objs, "Service");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"], service["spec"]["selector"],
        "the ServiceMonitor selects the metrics Service's pods' labels"
    );
    let port = &monitor["spec"]["endpoints"][0];
    assert_eq!(port["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(port["path"], "/metrics");
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"][0], "ops");

    let dashboard = find(&objs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: serde_json::Value =
        serde_json::from_str(dashboard["data"]["redblack.json"].as_str().unwrap()).unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/redblack/dashboards/redblack.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(shipped, file);

    // Without the Service there is nothing to scrape: a clear failure.
    let out = Command::new(tool("helm"))
        .args([
            "template",
            "rb",
            "charts/redblack",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.service.enabled=false",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs metrics.service.enabled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
