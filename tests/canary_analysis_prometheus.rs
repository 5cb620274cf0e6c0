//! End to end with a REAL Prometheus: OpenMetrics series for a baseline and
//! several canaries are backfilled with promtool, Prometheus serves them on a
//! free 127.0.0.1 port, retrospective CanaryAnalyses are created in the
//! sandbox through the kube client, the controller (real `PrometheusSource`)
//! judges them, and `redblack report` prints the verdict.

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
use redblack::analysis::controller::{AnalysisController, AnalysisControllerConfig, Limits};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase, crd};
use redblack_judge::{Classification, DecidedBy};
use redblack_sandbox::testing::prometheus::{OpenMetricsSeries, PrometheusProcess, backfill};
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "shop";
const BASELINE: &str = "api-base-5f4d3c2b1";
/// Seconds between backfilled samples (the "scrape interval").
const SCRAPE: i64 = 10;
const REQ_PER_SEC: f64 = 20.0;

const LATENCY: &str =
    r#"avg(request_latency_seconds{namespace="${namespace}", pod=~"${podRegex}"})"#;
const ERRORS: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}", code="500"}[${interval}]))"#;
const REQUESTS: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;
const TRAFFIC: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;

/// How one ReplicaSet behaves.
struct Fleet {
    rs: &'static str,
    error_share: f64,
    req_per_sec: f64,
    /// Every `tail_every`-th latency sample is multiplied by `tail_factor`.
    tail_every: Option<i64>,
    tail_factor: f64,
    seed: u64,
}

/// Two pods per ReplicaSet: request counters (200 and 500) and a latency gauge,
/// every SCRAPE seconds over [from, to].
fn series(f: &Fleet, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<OpenMetricsSeries> {
    let mut rng = StdRng::seed_from_u64(f.seed);
    let lognormal = LogNormal::new((0.1f64).ln(), 0.4).expect("lognormal");
    let n = (to - from).num_seconds() / SCRAPE;
    let latency: Vec<f64> = (0..=n)
        .map(|k| {
            let v = lognormal.sample(&mut rng);
            match f.tail_every {
                Some(every) if k % every == every / 2 => v * f.tail_factor,
                _ => v,
            }
        })
        .collect();
    let mut out = Vec::new();
    for (i, suffix) in ["x2k9q", "b7m4z"].iter().enumerate() {
        let pod = format!("{}-{suffix}", f.rs);
        let labels =
            |code: &'static str| [("namespace", NS), ("pod", pod.as_str()), ("code", code)];
        let mut ok = OpenMetricsSeries::counter("http_requests_total", &labels("200"));
        let mut err = OpenMetricsSeries::counter("http_requests_total", &labels("500"));
        let mut lat = OpenMetricsSeries::gauge(
            "request_latency_seconds",
            &[("namespace", NS), ("pod", pod.as_str())],
        );
        for k in 0..=n {
            let t = from + TimeDelta::seconds(k * SCRAPE);
            let total = (f.req_per_sec * (k * SCRAPE) as f64).floor();
            let errors = (total * f.error_share).floor();
            ok.push(t, total - errors);
            err.push(t, errors);
            lat.push(t, latency[k as usize] * (1.0 + 0.02 * i as f64));
        }
        out.extend([ok, err, lat]);
    }
    out
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn analysis(
    name: &str,
    canary: &str,
    url: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    extra: Value,
) -> CanaryAnalysis {
    let mut object = json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "prometheus": {"url": url},
            "control": {"replicaSet": BASELINE},
            "experiment": {"replicaSet": canary},
            "startTime": rfc3339(from),
            "endTime": rfc3339(to),
            "interval": "20m",
            "step": "30s",
            "traffic": TRAFFIC,
            "metrics": [
                {"name": "latency", "direction": "increase", "query": LATENCY},
                {"name": "errors", "kind": "rate", "direction": "increase",
                 "numerator": ERRORS, "denominator": REQUESTS}
            ]
        }
    });
    json_patch::merge(&mut object["spec"], &extra);
    serde_json::from_value(object).expect("analysis")
}

async fn wait_terminal(api: &Api<CanaryAnalysis>, name: &str) -> CanaryAnalysis {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ca) = api.get(name).await
            && ca
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(CanaryAnalysisPhase::is_terminal)
        {
            return ca;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: no verdict in 60s: {:#?}",
            api.get(name).await.ok().and_then(|c| c.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn summary(ca: &CanaryAnalysis) -> (CanaryAnalysisPhase, String) {
    let s = ca.status.clone().unwrap_or_default();
    (
        s.phase.unwrap_or(CanaryAnalysisPhase::Pending),
        s.message.unwrap_or_default(),
    )
}

async fn ensure_namespace(client: &Client) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    let _ = namespaces.create(&PostParams::default(), &ns).await;
}

#[tokio::test]
async fn verdicts_from_real_prometheus_and_the_report() {
    if std::env::var_os("RUST_LOG").is_some() {
        redblack::telemetry::init(redblack::telemetry::LogFormat::Pretty);
    }
    // One past hour, well before "now", so nothing overlaps the live head block.
    let from = (Utc::now() - TimeDelta::hours(3))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap();
    let to = from + TimeDelta::hours(1);
    let fleets = [
        Fleet {
            rs: BASELINE,
            error_share: 0.01,
            req_per_sec: REQ_PER_SEC,
            tail_every: None,
            tail_factor: 1.0,
            seed: 1,
        },
        Fleet {
            rs: "api-good-7d9f8c6b5",
            error_share: 0.01,
            req_per_sec: REQ_PER_SEC,
            tail_every: None,
            tail_factor: 1.0,
            seed: 2,
        },
        // The baseline's latency draws (same seed): only the errors differ.
        Fleet {
            rs: "api-errs-7d9f8c6b5",
            error_share: 0.10,
            req_per_sec: REQ_PER_SEC,
            tail_every: None,
            tail_factor: 1.0,
            seed: 1,
        },
        // The baseline's own latency draws (same seed), but 1 in 12 samples 100x
        // slower: the median barely moves, so Mann-Whitney alone passes it (kayenta #780).
        Fleet {
            rs: "api-tail-7d9f8c6b5",
            error_share: 0.01,
            req_per_sec: REQ_PER_SEC,
            tail_every: Some(36),
            tail_factor: 100.0,
            seed: 1,
        },
        Fleet {
            rs: "api-idle-7d9f8c6b5",
            error_share: 0.0,
            req_per_sec: 0.0,
            tail_every: None,
            tail_factor: 1.0,
            seed: 5,
        },
    ];
    let data = tempfile::tempdir().unwrap();
    let all: Vec<OpenMetricsSeries> = fleets
        .iter()
        .flat_map(|f| series(f, from - TimeDelta::minutes(5), to + TimeDelta::minutes(5)))
        .collect();
    let started = Instant::now();
    backfill(&all, data.path()).unwrap();
    let prometheus = PrometheusProcess::start(Some(data.path()), None).unwrap();
    eprintln!("backfill + prometheus start: {:?}", started.elapsed());
    let url = prometheus.url().to_owned();

    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = sandbox.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    ensure_namespace(&client).await;
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), NS);
    for _ in 0..100 {
        if api.list(&Default::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let config = AnalysisControllerConfig {
        query_retries: 0,
        allowed_endpoint_regex: Some(r"http://127\.0\.0\.1:\d+/".into()),
        limits: Limits {
            max_source_attempts: 2,
            retry_backoff: Duration::from_millis(200),
            ..Limits::default()
        },
        ..AnalysisControllerConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let controller = tokio::spawn(AnalysisController::new(client.clone(), config).run(
        async move {
            let _ = stopped.await;
        },
    ));

    let cases = [
        ("good", "api-good-7d9f8c6b5", url.as_str(), json!({})),
        ("errs", "api-errs-7d9f8c6b5", url.as_str(), json!({})),
        // Fixed mode: pins Kayenta's tests plus the tail check on real data
        // (the default on this 120-step window is sequential, `errs` above).
        (
            "tail",
            "api-tail-7d9f8c6b5",
            url.as_str(),
            json!({"mode": "fixed"}),
        ),
        ("idle", "api-idle-7d9f8c6b5", url.as_str(), json!({})),
        // Prometheus rejects the query (HTTP 400): its own message is shown.
        (
            "badquery",
            "api-good-7d9f8c6b5",
            url.as_str(),
            json!({"metrics": [{"name": "latency", "query": "avg(request_latency_seconds{pod=~\"${podRegex}\"}) +"}]}),
        ),
        (
            "down",
            "api-good-7d9f8c6b5",
            "http://127.0.0.1:1",
            json!({}),
        ),
        // A canary with no series at all and no traffic query: empty vectors,
        // every metric Nodata, Inconclusive (never a crash, never a pass).
        (
            "ghost",
            "api-ghost-7d9f8c6b5",
            url.as_str(),
            json!({"traffic": null}),
        ),
    ];
    let t0 = Instant::now();
    for (name, canary, url, extra) in &cases {
        api.create(
            &PostParams::default(),
            &analysis(name, canary, url, from, to, extra.clone()),
        )
        .await
        .unwrap();
    }

    let good = wait_terminal(&api, "good").await;
    let (phase, message) = summary(&good);
    assert_eq!(phase, CanaryAnalysisPhase::Passed, "{message}");
    let s = good.status.clone().unwrap();
    assert_eq!((s.completed_intervals, s.total_intervals), (3, 3));
    let latency = s.metrics.iter().find(|m| m.name == "latency").unwrap();
    // 60 minutes at a 30s step, both ends included.
    assert_eq!(
        (latency.canary_count, latency.baseline_count),
        (121, 121),
        "{latency:?}"
    );

    let errs = wait_terminal(&api, "errs").await;
    let (phase, message) = summary(&errs);
    assert_eq!(phase, CanaryAnalysisPhase::Failed, "{message}");
    let s = errs.status.clone().unwrap();
    assert_eq!(s.completed_intervals, 1, "ends early: {message}");
    let e = s.metrics.iter().find(|m| m.name == "errors").unwrap();
    assert_eq!(e.classification, Classification::High, "{e:?}");
    // 120 steps and no `mode`: the default on such a window is sequential.
    assert_eq!(
        s.judgement.as_ref().and_then(|j| j.mode),
        Some(redblack_judge::JudgeMode::Sequential)
    );
    assert_eq!(e.decided_by, DecidedBy::Sequential, "{}", e.reason);
    let rate = e.rate.as_ref().unwrap();
    assert!(
        (rate.canary_rate - 0.10).abs() < 0.01 && (rate.baseline_rate - 0.01).abs() < 0.005,
        "{rate:?}"
    );

    let tail = wait_terminal(&api, "tail").await;
    let (phase, message) = summary(&tail);
    assert_eq!(phase, CanaryAnalysisPhase::Failed, "{message}");
    let l = tail
        .status
        .as_ref()
        .unwrap()
        .metrics
        .iter()
        .find(|m| m.name == "latency")
        .unwrap()
        .clone();
    assert_eq!(l.classification, Classification::High, "{l:?}");
    assert_eq!(l.decided_by, DecidedBy::TailCheck, "{}", l.reason);

    eprintln!("{}", redblack::cli::report::render_analysis(&tail));
    let location = l.location.as_ref().expect("location stats");
    assert!(
        location.p_value > 0.02,
        "Mann-Whitney alone would have missed it: {location:?}"
    );

    let idle = wait_terminal(&api, "idle").await;
    let (phase, message) = summary(&idle);
    assert_eq!(phase, CanaryAnalysisPhase::Inconclusive, "{message}");
    assert!(message.contains("canary received no traffic"), "{message}");

    let bad = wait_terminal(&api, "badquery").await;
    let (phase, message) = summary(&bad);
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(
        message.starts_with("spec.metrics[0].query (") && message.contains("parse error"),
        "{message}"
    );

    let down = wait_terminal(&api, "down").await;
    let (phase, message) = summary(&down);
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(
        message.starts_with("prometheus at http://127.0.0.1:1 unreachable: "),
        "{message}"
    );
    let ghost = wait_terminal(&api, "ghost").await;
    let (phase, message) = summary(&ghost);
    assert_eq!(phase, CanaryAnalysisPhase::Inconclusive, "{message}");
    let s = ghost.status.clone().unwrap();
    assert!(
        s.metrics
            .iter()
            .all(|m| m.classification == Classification::Nodata),
        "{:?}",
        s.metrics
    );
    eprintln!("seven retrospective analyses judged in {:?}", t0.elapsed());

    // `redblack report` (the real binary, through a kubeconfig).
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sandbox.write_kubeconfig(&kubeconfig).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_redblack"))
        .args(["report", "errs", "-n", NS, "--kubeconfig"])
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{text}");
    assert!(text.contains("Canary Score: 50% FAIL"), "{text}");
    assert!(text.contains("Phase:       Failed"), "{text}");
    let errors_row = text
        .lines()
        .position(|l| l.starts_with("errors "))
        .expect("errors row");
    let latency_row = text
        .lines()
        .position(|l| l.starts_with("latency "))
        .expect("latency row");
    assert!(
        errors_row < latency_row,
        "the hot metric comes first:\n{text}"
    );
    assert!(
        text.lines().nth(errors_row).unwrap().contains("High"),
        "{text}"
    );

    // The printer columns, through the real kubectl and the short name.
    let output = tokio::process::Command::new("kubectl")
        .args(["get", "rbca", "-n", NS, "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .await
        .expect("kubectl (installed on every machine here)");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{table}");
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "PHASE", "SCORE", "INTERVALS", "AGE"] {
        assert!(header.contains(column), "{table}");
    }
    let good_row = table
        .lines()
        .find(|l| l.starts_with("good "))
        .expect("good row");
    assert!(
        good_row.contains("Passed") && good_row.contains("3/3") && good_row.contains("100"),
        "{table}"
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    sandbox.shutdown().await;
    drop(prometheus);
}
