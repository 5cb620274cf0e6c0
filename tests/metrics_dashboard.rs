//! The Grafana dashboard against a real Prometheus scraping the operator.
//!
//! The sandbox runs every pod as a real `redblack demo-app` process under
//! load; a real Prometheus scrapes both the pods (file SD, for the canary
//! analyses) and the operator's own `/metrics` (run in-process by
//! `run_controller` with `metrics_addr` on a free loopback port). A
//! canary-gated rollout passes (v2) and one fails and is reverted (v3), as in
//! tests/canary_e2e.rs. Then every panel query of
//! `charts/redblack/dashboards/redblack.json`, with Grafana's template
//! variables substituted, must return a sample from Prometheus, and the
//! counters must show the events the rollouts went through. Every wait has a
//! deadline; nothing asserts on time.

mod support;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use redblack::api::{CanaryPhase, Phase, Rollout};
use redblack::cli::controller::ControllerConfig;
use redblack_demo::load::{LoadConfig, run_load};
use redblack_sandbox::SandboxConfig;
use redblack_sandbox::controllers::process_runtime::ProcessConfig;
use redblack_sandbox::prometheus_sd;
use redblack_sandbox::testing::prometheus::{PrometheusOptions, PrometheusProcess};
use serde_json::{Value, json};
use support::{Env, NS, Running, eventually, eventually_within, hash_of, web};

const APP: &str = "web";
/// Bound on one phase of a rollout (an analysis included); generous, the
/// machine is shared with compiles.
const ROLLOUT_WAIT: Duration = Duration::from_secs(300);
/// Bound on a dashboard query returning a sample once the rollouts are done.
const QUERY_WAIT: Duration = Duration::from_secs(60);

/// Grafana's template variables as Grafana substitutes them: `$namespace`
/// is "All" (the variable's `allValue`, `.*`), `$__rate_interval` is what
/// Grafana computes for a Prometheus data source with its default 15 s
/// scrape interval (4 × 15 s), `$__range` the dashboard's range (1 h here).
fn substitute(expr: &str, all_value: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$namespace", all_value)
}

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// Every target expression of the dashboard, with its panel's title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    let nested = panels
        .iter()
        .flat_map(|p| p["panels"].as_array().cloned().unwrap_or_default());
    for panel in panels.iter().cloned().chain(nested) {
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"]
                .as_str()
                .expect("a Prometheus target")
                .to_owned();
            out.push((panel["title"].as_str().unwrap_or("").to_owned(), expr));
        }
    }
    out
}

/// The `allValue` of the dashboard's `namespace` variable.
fn namespace_all_value(dashboard: &Value) -> String {
    dashboard["templating"]["list"]
        .as_array()
        .and_then(|vars| vars.iter().find(|v| v["name"] == "namespace"))
        .and_then(|v| v["allValue"].as_str())
        .expect("a namespace variable with an allValue")
        .to_owned()
}

/// The finite values of an instant query (NaN, e.g. a quantile of no
/// observations, is no data on a panel).
async fn query(prometheus: &prometheus_http_query::Client, expr: &str) -> Option<Vec<f64>> {
    let result = prometheus.query(expr).get().await.ok()?;
    let values: Vec<f64> = match result.data() {
        prometheus_http_query::response::Data::Vector(v) => {
            v.iter().map(|s| s.sample().value()).collect()
        }
        prometheus_http_query::response::Data::Scalar(s) => vec![s.value()],
        prometheus_http_query::response::Data::Matrix(_) => return None,
    };
    let finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    (!finite.is_empty()).then_some(finite)
}

/// Waits until `expr` has a sample whose value satisfies `ok`.
async fn wait_value(
    prometheus: &prometheus_http_query::Client,
    what: &str,
    expr: &str,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    eventually_within(QUERY_WAIT, &format!("{what}: `{expr}`"), || async {
        query(prometheus, expr).await?.into_iter().find(|v| ok(*v))
    })
    .await
}

/// A sequential analysis of the demo app's error rate: a healthy canary runs
/// its `lifetime` and passes; a clearly erroring one fails within seconds.
fn canary(interval: &str, lifetime: &str) -> Value {
    let pods = r#"namespace="${namespace}", pod=~"${podRegex}""#;
    json!({"canary": {"replicas": 1, "analysis": {"inline": {
        "interval": interval,
        "lifetime": lifetime,
        "step": "1s",
        "mode": "sequential",
        "confidence": 0.995,
        "traffic": format!("sum(increase(http_requests_total{{{pods}}}[${{interval}}]))"),
        "metrics": [
            {"name": "error-rate", "kind": "rate", "direction": "increase", "critical": true,
             "numerator": format!(r#"sum(increase(http_requests_total{{{pods}, code=~"5.."}}[${{interval}}]))"#),
             "denominator": format!("sum(increase(http_requests_total{{{pods}}}[${{interval}}]))")}
        ]
    }}}})
}

fn status(r: &Rollout) -> redblack::api::RolloutStatus {
    r.status.clone().unwrap_or_default()
}

/// Polls the Rollout until `done` holds for a status of its generation.
async fn wait_rollout(env: &Env, what: &str, done: impl Fn(&Rollout) -> bool) -> Rollout {
    eventually_within(ROLLOUT_WAIT, what, || async {
        let r = env.rollouts().get(APP).await.ok()?;
        let current = r
            .status
            .as_ref()
            .is_some_and(|s| s.observed_generation == r.metadata.generation);
        (current && done(&r)).then_some(r)
    })
    .await
}

async fn apply(env: &Env, manifest: Value) -> String {
    let patch = json!({"spec": {"template": manifest["spec"]["template"],
                                "strategy": manifest["spec"]["strategy"]}});
    let r = env
        .rollouts()
        .patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("rollout patched");
    hash_of(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_has_data_after_a_passed_and_a_reverted_canary() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("charts/redblack/dashboards/redblack.json"),
        )
        .expect("the dashboard file"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let sd_file = dir.path().join("pods.json");
    let env = Env::start_with(SandboxConfig {
        pod_ready_after: Duration::from_millis(200),
        process: ProcessConfig {
            command: Some(env!("CARGO_BIN_EXE_redblack").into()),
            restart_backoff: Duration::from_millis(200),
            max_restart_backoff: Duration::from_secs(2),
        },
        prometheus_sd_file: Some(sd_file.clone()),
        ..SandboxConfig::default()
    })
    .await;
    let metrics_addr = free_addr();
    let operator_job =
        format!("- job_name: redblack\n  static_configs:\n  - targets: [\"{metrics_addr}\"]\n");
    let prometheus = PrometheusProcess::start_with(PrometheusOptions {
        scrape_configs: Some(format!(
            "{}{operator_job}",
            prometheus_sd::scrape_config("pods", &sd_file)
        )),
        // The analyses judge 1 s steps: 4 scrapes per step.
        scrape_interval: Duration::from_millis(250),
        ..PrometheusOptions::default()
    })
    .expect("prometheus starts");
    let client = prometheus_http_query::Client::try_from(prometheus.url()).expect("client");
    env.create_service(APP, APP).await;

    // v1 (first deploy), under load.
    env.create_rollout(web("v1", &[], json!({}))).await;
    let operator = Running::start_with(
        env.client.clone(),
        ControllerConfig {
            metrics_addr: Some(metrics_addr),
            prometheus_url: Some(prometheus.url().to_owned()),
            ..ControllerConfig::default()
        },
    );
    wait_rollout(&env, "v1 Healthy", |r| {
        status(r).phase == Some(Phase::Healthy)
    })
    .await;
    let url = eventually("the Service gets a data-plane port", || async {
        env.sandbox.dataplane().service_url(NS, APP)
    })
    .await;
    let load = tokio::spawn(run_load(
        LoadConfig {
            target: url,
            rps: 50.0,
            duration: Duration::from_secs(900),
            concurrency: 64,
            timeout: Duration::from_secs(5),
        },
        |_| {},
    ));

    // v2, healthy: judged, passed, switched.
    let h2 = apply(&env, web("v2", &[], canary("12s", "24s"))).await;
    wait_rollout(&env, "v2 promoted", |r| {
        status(r).phase == Some(Phase::Healthy) && status(r).stable_revision.as_deref() == Some(&h2)
    })
    .await;
    // v3 answers 30% of requests with 500: failed within seconds, reverted.
    apply(
        &env,
        web("v3", &[("DEMO_ERROR_RATE", "0.3")], canary("60s", "120s")),
    )
    .await;
    wait_rollout(&env, "v3 reverted", |r| {
        status(r)
            .canary
            .is_some_and(|c| c.phase == Some(CanaryPhase::Failed) && c.traffic_percent == 0)
    })
    .await;

    // The events, as Prometheus has them: (what, metric, more labels).
    let counted = [
        (
            "a Passed verdict",
            "redblack_analysis_verdicts_total",
            r#",verdict="Passed""#,
        ),
        (
            "a Failed verdict",
            "redblack_analysis_verdicts_total",
            r#",verdict="Failed""#,
        ),
        (
            "the abort",
            "redblack_rollout_aborts_total",
            r#",reason="AnalysisFailed""#,
        ),
        (
            "the revert",
            "redblack_rollout_reverts_total",
            r#",reason="CanaryFailed""#,
        ),
        (
            "v1 and v2 live",
            "redblack_rollout_time_to_live_seconds_count",
            "",
        ),
        (
            "traffic after a pass",
            "redblack_rollout_verdict_to_traffic_seconds_count",
            r#",verdict="Passed""#,
        ),
        (
            "traffic after a failure",
            "redblack_rollout_verdict_to_traffic_seconds_count",
            r#",verdict="Failed""#,
        ),
    ];
    for (what, metric, labels) in counted {
        let expr = format!(r#"{metric}{{namespace="{NS}"{labels}}}"#);
        wait_value(&client, what, &expr, |v| v >= 1.0).await;
    }
    let score =
        format!(r#"redblack_analysis_score{{namespace="{NS}",rollout="web",stage="canary"}}"#);
    wait_value(&client, "v3's canary score", &score, |v| {
        (0.0..=100.0).contains(&v)
    })
    .await;
    // One info series for the Rollout: its old label sets are gone.
    let info = format!(r#"redblack_rollout_info{{namespace="{NS}",rollout="web"}}"#);
    wait_value(
        &client,
        "one info series, Degraded",
        &format!(r#"count({info})"#),
        |v| v == 1.0,
    )
    .await;
    wait_value(
        &client,
        "the info series says Degraded",
        &format!(r#"redblack_rollout_info{{namespace="{NS}",rollout="web",phase="Degraded"}}"#),
        |v| v == 1.0,
    )
    .await;

    // Every panel query, as Grafana would send it.
    let all = namespace_all_value(&dashboard);
    for (panel, expr) in &queries {
        let sent = substitute(expr, &all);
        assert!(
            !sent.contains('$'),
            "an unknown template variable in `{sent}`"
        );
        wait_value(&client, &format!("panel {panel:?}"), &sent, |_| true).await;
    }
    eprintln!("{} dashboard queries returned samples", queries.len());

    // A deleted Rollout drops its series (read from the endpoint directly:
    // Prometheus keeps a vanished series for a staleness period).
    env.rollouts()
        .delete(APP, &DeleteParams::default())
        .await
        .expect("rollout deleted");
    eventually(
        "the deleted Rollout's series gone from /metrics",
        || async {
            let text = operator.metrics.encode().ok()?;
            (!text.contains(r#"rollout="web""#)).then_some(())
        },
    )
    .await;

    load.abort();
    operator.stop().await.expect("operator stops cleanly");
    drop(prometheus);
    env.sandbox.shutdown().await;
}
