//! `redblack convert`: the pure core's table (Argo objects in → redblack
//! objects and notes out), and end to end: our equivalents of Argo's
//! blue-green examples (tests/data/argo/) converted by the real binary,
//! applied with the real kubectl to the sandbox, rolled out to Healthy, then
//! a new image set and promoted.

mod support;
mod tools;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use redblack::api::{Phase, Rollout, validate};
use redblack::convert::{Converted, convert};
use serde_json::{Value, json};
use support::*;
use tools::tool;

const REDBLACK: &str = env!("CARGO_BIN_EXE_redblack");

fn argo_rollout(blue_green: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}},
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 4,
            "progressDeadlineSeconds": 120,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            "strategy": {"blueGreen": blue_green}
        }
    })
}

fn one(doc: Value) -> Converted {
    let mut out = convert(&[doc]);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn red_black(c: &Converted) -> Value {
    c.object.as_ref().expect("an object")["spec"]["strategy"]["redBlack"].clone()
}

/// Every note of `c` that starts with `path` (the field it is about).
fn noted(c: &Converted, path: &str) -> Vec<String> {
    c.notes
        .iter()
        .filter(|n| n.starts_with(path))
        .cloned()
        .collect()
}

#[test]
fn a_blue_green_rollout_becomes_a_red_black_one_with_argos_delays() {
    let c = one(argo_rollout(json!({
        "activeService": "web", "previewService": "web-preview", "autoPromotionEnabled": false
    })));
    assert_eq!(c.source, "Rollout/web");
    assert_eq!(c.notes, Vec::<String>::new());
    let object = c.object.clone().unwrap();
    assert_eq!(
        object,
        json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "annotations": {"team": "a"}},
            "spec": {
                "replicas": 3,
                "revisionHistoryLimit": 4,
                "progressDeadlineSeconds": 120,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
                "strategy": {"redBlack": {
                    "activeService": "web", "previewService": "web-preview",
                    "promotion": "Manual",
                    "scaleDownDelay": "30s", "abortScaleDownDelay": "30s"
                }}
            }
        })
    );
    let rollout: Rollout = serde_json::from_value(object).unwrap();
    assert_eq!(validate(&rollout), vec![]);
}

#[test]
fn blue_green_fields_table() {
    // (blueGreen, expected redBlack fields, expected note prefixes)
    let rows: Vec<(Value, Value, Vec<&str>)> = vec![
        (
            json!({"activeService": "web"}),
            json!({"activeService": "web", "promotion": "Automatic"}),
            vec![],
        ),
        (
            json!({"activeService": "web", "autoPromotionEnabled": false,
                   "autoPromotionSeconds": 60, "previewReplicaCount": 1}),
            json!({"promotion": "Manual", "autoPromotionSeconds": 60, "previewReplicaCount": 1}),
            vec![],
        ),
        (
            json!({"activeService": "web", "autoPromotionSeconds": 60, "previewReplicaCount": 1}),
            json!({"promotion": "Automatic"}),
            vec![
                "spec.strategy.blueGreen.autoPromotionSeconds",
                "spec.strategy.blueGreen.previewReplicaCount",
            ],
        ),
        (
            json!({"activeService": "web", "scaleDownDelaySeconds": 0,
                   "abortScaleDownDelaySeconds": 90, "scaleDownDelayRevisionLimit": 3}),
            json!({"scaleDownDelay": "0s", "abortScaleDownDelay": "90s", "warmRevisions": 3}),
            vec![],
        ),
        (
            json!({"activeService": "web", "abortScaleDownDelaySeconds": 0,
                   "scaleDownDelayRevisionLimit": 20}),
            json!({"abortScaleDownDelay": "30s", "warmRevisions": 10}),
            vec![
                "spec.strategy.blueGreen.abortScaleDownDelaySeconds",
                "spec.strategy.blueGreen.scaleDownDelayRevisionLimit",
            ],
        ),
        (
            json!({"activeService": "web", "postPromotionAnalysis": {
                "templates": [{"templateName": "a"}, {"templateName": "b"}],
                "args": [{"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}}),
            json!({"postPromotionAnalysis": {"templateName": "a"}}),
            vec![
                "spec.strategy.blueGreen.postPromotionAnalysis.templates",
                "spec.strategy.blueGreen.postPromotionAnalysis.args[x]",
            ],
        ),
        (
            json!({"activeService": "web", "prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}}),
            json!({"prePromotionAnalysis": {"templateName": "smoke"}}),
            vec![],
        ),
        (
            json!({"activeService": "web", "maxUnavailable": 1, "activeMetadata": {"labels": {"a": "b"}},
                   "previewMetadata": {}, "antiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}},
                   "somethingNew": true}),
            json!({"antiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}},
                   "activeMetadata": {"labels": {"a": "b"}}, "previewMetadata": {}}),
            vec![
                "spec.strategy.blueGreen.maxUnavailable",
                "spec.strategy.blueGreen.somethingNew: unknown",
            ],
        ),
    ];
    for (blue_green, want, notes) in rows {
        let c = one(argo_rollout(blue_green.clone()));
        let got = red_black(&c);
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(&got[key], value, "{key} of {blue_green}");
        }
        for prefix in &notes {
            assert_eq!(noted(&c, prefix).len(), 1, "{prefix} in {:?}", c.notes);
        }
        assert_eq!(c.notes.len(), notes.len(), "{blue_green}: {:?}", c.notes);
        let rollout: Rollout = serde_json::from_value(c.object.unwrap()).unwrap();
        assert_eq!(validate(&rollout), vec![], "{blue_green}");
    }
}

#[test]
fn spec_fields_without_an_equivalent_are_named_and_canary_is_not_converted() {
    let mut doc = argo_rollout(json!({"activeService": "web"}));
    doc["spec"]["rollbackWindow"] = json!({"revisions": 2});
    doc["spec"]["paused"] = json!(true);
    let history = json!({"successfulRunHistoryLimit": 2, "unsuccessfulRunHistoryLimit": 10});
    doc["spec"]["analysis"] = history.clone();
    let c = one(doc);
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    assert_eq!(noted(&c, "spec.rollbackWindow").len(), 1, "{:?}", c.notes);
    let object = c.object.unwrap();
    assert_eq!(object["spec"]["paused"], json!(true));
    // The run history limits mean the same in redblack.
    assert_eq!(object["spec"]["analysis"], history);
    let rollout: Rollout = serde_json::from_value(object).unwrap();
    assert_eq!(
        rollout
            .spec
            .analysis
            .unwrap()
            .unsuccessful_run_history_limit,
        10
    );

    let mut canary = argo_rollout(json!({}));
    canary["spec"]["strategy"] = json!({"canary": {"steps": [{"setWeight": 20}]}});
    let c = one(canary);
    assert_eq!(c.object, None);
    assert_eq!(noted(&c, "spec.strategy.canary").len(), 1, "{:?}", c.notes);
    assert_eq!(noted(&c, "(whole object)").len(), 1, "{:?}", c.notes);
}

#[test]
fn other_kinds_pass_through_and_other_argo_kinds_are_dropped() {
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                         "spec": {"selector": {"app": "web"}}});
    let run = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "metadata": {"name": "r"}});
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [service.clone(), run]});
    let out = convert(&[list]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].object.as_ref(), Some(&service));
    assert!(out[0].notes.is_empty());
    assert_eq!(out[1].source, "AnalysisRun/r");
    assert_eq!(out[1].object, None);
    assert_eq!(out[1].notes.len(), 1);
}

fn argo_template(kind: &str, metrics: Value, args: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": "success-rate"},
           "spec": {"args": args, "metrics": metrics}})
}

#[test]
fn a_prometheus_analysis_template_becomes_a_canary_analysis_template() {
    let template = argo_template(
        "AnalysisTemplate",
        json!([{
            "name": "success-rate", "interval": "1m", "count": 5, "initialDelay": "30s",
            "successCondition": "result[0] >= 0.95", "failureLimit": 3,
            "provider": {"prometheus": {"address": "http://prom:9090",
                "query": "sum(rate(ok{svc=\"{{args.svc}}\", pod=~\"${podRegex}\"}[1m])) / sum(rate(all{svc=\"{{ args.svc }}\"}[1m]))\n"}}
        }, {
            "name": "errors", "interval": "1m", "count": 2,
            "failureCondition": "result[0] > 0.01",
            "provider": {"prometheus": {"address": "http://prom:9090", "query": "sum(rate(errors[1m]))"}}
        }, {
            "name": "web", "provider": {"web": {"url": "http://x"}}
        }]),
        json!([{"name": "svc", "value": "default-svc"}]),
    );
    let rollout = argo_rollout(json!({"activeService": "web", "postPromotionAnalysis": {
        "templates": [{"templateName": "success-rate"}],
        "args": [{"name": "svc", "value": "web-preview"}]}}));
    let out = convert(&[template, rollout]);
    let c = &out[0];
    assert_eq!(c.source, "AnalysisTemplate/success-rate");
    assert_eq!(
        c.object.as_ref().unwrap(),
        &json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "CanaryAnalysisTemplate",
            "metadata": {"name": "success-rate"},
            "spec": {
                "prometheus": {"url": "http://prom:9090"},
                "interval": "1m",
                "lifetime": "300s",
                "warmup": "30s",
                "metrics": [
                    {"name": "success-rate", "direction": "decrease",
                     "query": "sum(rate(ok{svc=\"web-preview\", pod=~\"${podRegex}\"}[1m])) / sum(rate(all{svc=\"web-preview\"}[1m]))"},
                    {"name": "errors", "direction": "increase", "query": "sum(rate(errors[1m]))"}
                ]
            }
        })
    );
    for prefix in [
        "spec.metrics[0].successCondition",
        "spec.metrics[0].failureLimit",
        "spec.metrics[1].failureCondition",
        "spec.metrics[1].provider.prometheus.query: reads no fleet",
        "spec.metrics[2]: left out",
    ] {
        assert_eq!(noted(c, prefix).len(), 1, "{prefix} in {:?}", c.notes);
    }
    assert_eq!(c.notes.len(), 5, "{:?}", c.notes);
    assert_eq!(
        noted(c, "spec.metrics[0].provider.prometheus.query").len(),
        0
    );
}

#[test]
fn template_edge_cases_are_named() {
    // Cluster scope, an argument without a value, no count, a second address.
    let template = argo_template(
        "ClusterAnalysisTemplate",
        json!([{
            "name": "a", "interval": "30s", "successCondition": "result[0] == 1",
            "provider": {"prometheus": {"address": "http://p1", "query": "up{pod=~\"{{args.missing}}\"}", "timeout": 10}}
        }, {
            "name": "b", "interval": "1m", "count": 3,
            "provider": {"prometheus": {"address": "http://p2", "query": "x{pod=~\"${podRegex}\"}"}}
        }]),
        json!([{"name": "missing"}]),
    );
    let c = one(template);
    let spec = &c.object.as_ref().unwrap()["spec"];
    assert_eq!(spec["interval"], json!("30s"));
    assert_eq!(spec["lifetime"], json!("180s"));
    assert_eq!(spec["metrics"][0]["direction"], json!("either"));
    assert_eq!(
        spec["metrics"][0]["query"],
        json!("up{pod=~\"{{args.missing}}\"}")
    );
    for prefix in [
        "(kind)",
        "spec.metrics[0].provider.prometheus.query: {{args.missing}} has no value",
        "spec.metrics[0].provider.prometheus.query: reads no fleet",
        "spec.metrics[0].provider.prometheus.timeout",
        "spec.metrics[0].count",
        "spec.metrics[0].successCondition",
        "spec.metrics[1].provider.prometheus.address",
        "spec.metrics[1].interval",
    ] {
        assert_eq!(noted(&c, prefix).len(), 1, "{prefix} in {:?}", c.notes);
    }
    assert_eq!(c.notes.len(), 8, "{:?}", c.notes);
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn redblack(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(REDBLACK)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redblack runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("redblack finishes")
}

fn data(name: &str) -> String {
    format!("{}/tests/data/argo/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The analysis example: stdin and a file in one call; every note is on
/// stderr and as a comment, and the output is accepted by the API server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_names_what_it_drops_and_its_output_applies() {
    let env = Env::start(Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kc).unwrap();
    let input = std::fs::read_to_string(data("bluegreen-analysis.yaml")).unwrap();
    let out = redblack(&["convert", "-f", "-"], Some(&input));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for field in [
        "failureLimit",
        "successCondition",
        "failureCondition",
        "abortScaleDownDelaySeconds",
        "postPromotionAnalysis.templates",
    ] {
        assert!(stderr.contains(field), "{field} on stderr: {stderr}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("# ") && l.contains(field)),
            "{field} as a comment: {stdout}"
        );
    }
    let converted = dir.path().join("converted.yaml");
    std::fs::write(&converted, &stdout).unwrap();
    let applied = kubectl(&kc, &["apply", "-f", converted.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let got = kubectl(
        &kc,
        &[
            "get",
            "canaryanalysistemplates.redblack.io",
            "success-rate",
            "-o",
            "jsonpath={.spec.metrics[0].query}",
        ],
    );
    assert!(
        text(&got).contains("rollout-bluegreen-analysis-preview.default.svc.cluster.local"),
        "the Rollout's argument is substituted: {}",
        text(&got)
    );
    let rollout = env.get("rollout-bluegreen-analysis").await;
    let rb = &rollout.spec.strategy.red_black;
    assert_eq!(rb.scale_down_delay, "600s");
    assert_eq!(rb.warm_revisions, 2);
    assert_eq!(
        rb.anti_affinity
            .as_ref()
            .and_then(|a| a
                .preferred_during_scheduling_ignored_during_execution
                .as_ref())
            .map(|p| p.weight),
        Some(50),
        "antiAffinity is carried over and accepted by the CRD"
    );
    assert!(!stderr.contains("antiAffinity"), "{stderr}");
    assert!(!stderr.contains("Metadata"), "{stderr}");
    assert_eq!(
        rb.preview_metadata.as_ref().map(|m| m.annotations.clone()),
        Some([("dashboard".to_owned(), "preview".to_owned())].into()),
        "previewMetadata is carried over and accepted by the CRD"
    );
    assert_eq!(
        rb.post_promotion_analysis
            .as_ref()
            .and_then(|a| a.template_name.as_deref()),
        Some("pod-latency")
    );
}

/// Argo's blue-green example, converted and applied with kubectl: the first
/// deploy goes Healthy; a new image waits behind the preview Service for its
/// promote (Argo's `autoPromotionEnabled: false`), then goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_blue_green_example_rolls_out_and_promotes() {
    let env = Env::start(Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kc).unwrap();
    let kcs = kc.to_str().unwrap();
    let out = redblack(&["convert", "-f", &data("bluegreen.yaml")], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing dropped");
    let converted = dir.path().join("converted.yaml");
    std::fs::write(&converted, &out.stdout).unwrap();
    let applied = kubectl(&kc, &["apply", "-f", converted.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(
        text(&applied).contains("service/rollout-bluegreen-preview created"),
        "{}",
        text(&applied)
    );

    let running = env.start_controller();
    let name = "rollout-bluegreen";
    let v1 = env.wait_phase(name, Phase::Healthy).await;
    let h1 = hash_of(&v1);
    env.wait_selected("rollout-bluegreen-active", &h1).await;

    let out = redblack(
        &[
            "set",
            "image",
            name,
            "*=argoproj/rollouts-demo:green",
            "--kubeconfig",
            kcs,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let waiting = env.wait_phase(name, Phase::Paused).await;
    let h2 = hash_of(&waiting);
    assert_ne!(h1, h2);
    env.wait_selected("rollout-bluegreen-preview", &h2).await;
    assert_eq!(
        env.selected("rollout-bluegreen-active").await.as_deref(),
        Some(h1.as_str()),
        "no switch before the promote"
    );
    let out = redblack(&["promote", name, "--kubeconfig", kcs], None);
    assert!(out.status.success(), "{}", text(&out));
    env.wait_selected("rollout-bluegreen-active", &h2).await;
    let live = env.wait_phase(name, Phase::Healthy).await;
    assert_eq!(hash_of(&live), h2);
    running.stop().await.unwrap();
}

#[test]
fn workload_ref_is_carried_over_and_progressively_becomes_onsuccess() {
    let with_ref = |reference: Value| {
        let mut doc = argo_rollout(json!({"activeService": "web"}));
        let spec = doc["spec"].as_object_mut().unwrap();
        spec.remove("template");
        spec.remove("selector");
        spec.insert("workloadRef".into(), reference);
        one(doc)
    };
    let reference = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                           "scaleDown": "onsuccess"});
    let c = with_ref(reference.clone());
    assert_eq!(c.notes, Vec::<String>::new());
    let object = c.object.unwrap();
    assert_eq!(object["spec"]["workloadRef"], reference);
    let rollout: Rollout = serde_json::from_value(object).unwrap();
    assert!(rollout.spec.workload_ref.is_some());

    let c = with_ref(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                            "scaleDown": "progressively"}),
    );
    assert_eq!(
        c.object.as_ref().unwrap()["spec"]["workloadRef"]["scaleDown"],
        "onsuccess"
    );
    assert_eq!(
        noted(&c, "spec.workloadRef.scaleDown").len(),
        1,
        "{:?}",
        c.notes
    );

    let c = with_ref(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web"}));
    assert!(
        c.object.as_ref().unwrap()["spec"]
            .get("workloadRef")
            .is_none()
    );
    assert_eq!(noted(&c, "spec.workloadRef").len(), 1, "{:?}", c.notes);
}
