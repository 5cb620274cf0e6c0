//! The demo app as a user deploys it beside an installed operator: a
//! Service, a CanaryAnalysisTemplate and a Rollout of
//! `redblack/demo-app:<version>` (live processes in the sandbox), written as
//! manifests and applied with `kubectl apply -f`.

use serde_json::{Value, json};

pub const APP: &str = "web";
/// The template the canaries name.
pub const TEMPLATE: &str = "web-canary";

pub fn service(ns: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": APP, "namespace": ns},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

/// The analysis of tests/canary_e2e.rs (error rate, critical; p99 latency),
/// judged every 8 s over 24 s. `prometheus`: the URL the template names;
/// `None` leaves it to the operator's `--prometheus-url` (the chart's
/// `prometheus.url`).
pub fn analysis_template(ns: &str, prometheus: Option<&str>) -> Value {
    let pods = r#"namespace="${namespace}", pod=~"${podRegex}""#;
    let mut spec = json!({
        "interval": "8s",
        "lifetime": "24s",
        "step": "1s",
        "traffic": format!("sum(increase(http_requests_total{{{pods}}}[${{interval}}]))"),
        "metrics": [
            {"name": "error-rate", "kind": "rate", "direction": "increase", "critical": true,
             "numerator": format!(r#"sum(increase(http_requests_total{{{pods}, code=~"5.."}}[${{interval}}]))"#),
             "denominator": format!("sum(increase(http_requests_total{{{pods}}}[${{interval}}]))")},
            {"name": "latency-p99", "direction": "increase",
             "effectSize": {"allowedIncrease": 1.5},
             "query": format!("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{pods}}}[${{interval}}])))")}
        ]
    });
    if let Some(url) = prometheus {
        spec["prometheus"] = json!({"url": url});
    }
    json!({
        "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysisTemplate",
        "metadata": {"name": TEMPLATE, "namespace": ns},
        "spec": spec
    })
}

/// The Rollout at `version`; `env` makes the version good or bad
/// (`DEMO_ERROR_RATE`); every revision after the first is canary-gated by
/// [`TEMPLATE`].
pub fn rollout(ns: &str, version: &str, env: &[(&str, &str)]) -> Value {
    let mut vars = vec![
        json!({"name": "DEMO_VERSION", "value": version}),
        json!({"name": "DEMO_LATENCY_MS", "value": "5"}),
    ];
    vars.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    json!({
        "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": APP, "namespace": ns},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": APP}},
            // Generous: the canary of the upgrade phase is held on purpose.
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": format!("redblack/demo-app:{version}"),
                    "ports": [{"containerPort": 8080}],
                    "env": vars,
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                       "periodSeconds": 1}
                }]}
            },
            "strategy": {"redBlack": {
                "activeService": APP,
                "scaleDownDelay": "10m",
                "canary": {"replicas": 1, "analysis": {"templateName": TEMPLATE}}
            }}
        }
    })
}

/// Objects as one YAML stream for `kubectl apply -f`.
pub fn manifest(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n")
}
