//! The CanaryAnalysis controller against the sandbox API server (real kube
//! client over HTTP on 127.0.0.1), with a `StaticSource` injected through the
//! controller's source factory: verdicts, early end, no traffic, no data, bad
//! input, an unreachable source, live runs woken at interval boundaries,
//! restarts, and "nothing due writes nothing".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use redblack::analysis::controller::spec::scope;
use redblack::analysis::controller::{
    AnalysisController, AnalysisControllerConfig, Limits, SourceFactory,
};
use redblack::analysis::endpoint::EndpointConfig;
use redblack::analysis::query::QueryTemplate;
use redblack::analysis::source::{MetricSource, Sample, SourceError};
use redblack::analysis::static_source::StaticSource;
use redblack::api::canary_analysis::{AnalysisScope, CanaryAnalysis, CanaryAnalysisPhase, crd};
use redblack::web::metrics::OperatorMetrics;
use redblack_judge::{Classification, DecidedBy};
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "default";
const STEP: i64 = 30;
const LATENCY: &str = r#"avg(latency_seconds{namespace="${namespace}", pod=~"${podRegex}"})"#;
const ERRORS: &str = r#"sum(increase(requests_total{namespace="${namespace}", pod=~"${podRegex}", code="500"}[${interval}]))"#;
const REQUESTS: &str =
    r#"sum(increase(requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;
const TRAFFIC: &str =
    r#"sum(increase(requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;

struct Env {
    sandbox: Sandbox,
    client: Client,
}

async fn env() -> Env {
    if std::env::var_os("RUST_LOG").is_some() {
        redblack::telemetry::init(redblack::telemetry::LogFormat::Pretty);
    }
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let client = sandbox.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd())
        .await
        .expect("install the CRD");
    // Wait until the new kind is served.
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), NS);
    for _ in 0..100 {
        if api.list(&Default::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Env { sandbox, client }
}

/// A running controller; stopped (gracefully) on `stop`.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

fn config() -> AnalysisControllerConfig {
    AnalysisControllerConfig {
        limits: Limits {
            max_source_attempts: 3,
            retry_backoff: Duration::from_millis(300),
            max_retry_backoff: Duration::from_secs(1),
            ..Limits::default()
        },
        error_requeue: Duration::from_millis(500),
        allowed_endpoints: vec!["http://127.0.0.1:9".into()],
        ..AnalysisControllerConfig::default()
    }
}

fn start_controller(client: &Client, sources: SourceFactory) -> Running {
    start_controller_with(client, sources, OperatorMetrics::new())
}

fn start_controller_with(
    client: &Client,
    sources: SourceFactory,
    metrics: OperatorMetrics,
) -> Running {
    let (tx, rx) = oneshot::channel::<()>();
    let controller = AnalysisController::new(client.clone(), config())
        .with_sources(sources)
        .with_metrics(metrics);
    let task = tokio::spawn(async move {
        controller
            .run(async move {
                let _ = rx.await;
            })
            .await
            .expect("controller");
    });
    Running {
        stop: Some(tx),
        task,
    }
}

/// A factory handing out one StaticSource, counting how often it is asked for.
fn static_sources(source: StaticSource) -> (SourceFactory, Arc<StaticSource>, Arc<AtomicUsize>) {
    let source = Arc::new(source);
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (source.clone(), calls.clone());
    let factory: SourceFactory = Arc::new(move |_endpoint: &EndpointConfig| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(s.clone() as Arc<dyn MetricSource>)
    });
    (factory, source, calls)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A CanaryAnalysis named `name` comparing ReplicaSet `rs` (experiment) with
/// `base`, with a latency and an error-rate metric, `spec` merged in.
fn analysis(name: &str, rs: &str, base: &str, spec: Value) -> CanaryAnalysis {
    let mut object = json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "prometheus": {"url": "http://127.0.0.1:9"},
            "control": {"replicaSet": base},
            "experiment": {"replicaSet": rs},
            "interval": "10m",
            "step": "30s",
            "metrics": [
                {"name": "latency", "direction": "increase", "query": LATENCY},
                {"name": "errors", "kind": "rate", "direction": "increase",
                 "numerator": ERRORS, "denominator": REQUESTS}
            ]
        }
    });
    json_patch::merge(&mut object["spec"], &spec);
    serde_json::from_value(object).expect("analysis")
}

fn render(template: &str, rs: &str, role: &str, interval: Duration) -> String {
    let side = AnalysisScope {
        replica_set: Some(rs.to_owned()),
        ..AnalysisScope::default()
    };
    QueryTemplate::parse(template)
        .unwrap()
        .render(&scope(&side, NS, role), interval)
        .unwrap()
}

/// Deterministic noise in [0, 1).
fn noise(i: i64, salt: u64) -> f64 {
    let mut x =
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Canned series for one side: latency `latency·(1 + noise)` and per-step
/// request/error counts, every STEP seconds over [from, to].
fn side(
    source: StaticSource,
    rs: &str,
    role: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    latency: f64,
    error_share: f64,
    salt: u64,
) -> StaticSource {
    let step = Duration::from_secs(STEP as u64);
    let n = (to - from).num_seconds() / STEP;
    let at = |k: i64| from + TimeDelta::seconds(k * STEP);
    let lat = (0..=n)
        .map(|k| Sample {
            timestamp: at(k),
            value: latency * (1.0 + 0.2 * noise(k, salt)),
        })
        .collect();
    let req = |k: i64| 300.0 + (20.0 * noise(k, salt + 1)).round();
    let errs = (0..=n)
        .map(|k| Sample {
            timestamp: at(k),
            value: (req(k) * error_share).round(),
        })
        .collect();
    let reqs = (0..=n)
        .map(|k| Sample {
            timestamp: at(k),
            value: req(k),
        })
        .collect();
    source
        .with_series(render(LATENCY, rs, role, step), lat)
        .with_series(render(ERRORS, rs, role, step), errs)
        .with_series(render(REQUESTS, rs, role, step), reqs)
}

async fn wait_for(
    api: &Api<CanaryAnalysis>,
    name: &str,
    what: &str,
    done: impl Fn(&CanaryAnalysis) -> bool,
) -> CanaryAnalysis {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(ca) = api.get(name).await
            && done(&ca)
        {
            return ca;
        }
        if tokio::time::Instant::now() > deadline {
            let ca = api.get(name).await.ok();
            panic!(
                "{name}: timed out waiting for {what}; status: {:#?}",
                ca.and_then(|c| c.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_terminal(api: &Api<CanaryAnalysis>, name: &str) -> CanaryAnalysis {
    wait_for(api, name, "a terminal phase", |ca| {
        ca.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(CanaryAnalysisPhase::is_terminal)
    })
    .await
}

fn phase(ca: &CanaryAnalysis) -> CanaryAnalysisPhase {
    ca.status.as_ref().and_then(|s| s.phase).expect("phase")
}

fn message(ca: &CanaryAnalysis) -> String {
    ca.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn condition(ca: &CanaryAnalysis, type_: &str) -> String {
    ca.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

/// A past window: [now - 2h, now - 1h), 6 intervals of 10m.
fn past_window() -> (DateTime<Utc>, DateTime<Utc>) {
    let end = DateTime::from_timestamp((Utc::now() - TimeDelta::hours(1)).timestamp() / 60 * 60, 0)
        .unwrap();
    (end - TimeDelta::hours(1), end)
}

fn window_spec(from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    json!({"startTime": rfc3339(from), "endTime": rfc3339(to)})
}

/// The sequential mode's final look, end to end through the controller: a
/// canary whose latency is 100× slower at one step in ten (kayenta #780 at
/// 10 %) gives the e-process too little to cross at any interval boundary
/// of a 120-step window, but the last boundary is judged as the final look
/// and its tail check fails the canary — at the end, not before.
#[tokio::test]
async fn a_rare_slow_tail_is_failed_by_the_final_look() {
    let env = env().await;
    let (from, to) = past_window();
    let mut source = StaticSource::new();
    source = side(source, "base-1", "baseline", (from, to), 0.100, 0.01, 1);
    source = side(source, "rare-1", "canary", (from, to), 0.100, 0.01, 2);
    let step = Duration::from_secs(STEP as u64);
    let slow: Vec<Sample> = (0..=(to - from).num_seconds() / STEP)
        .map(|k| Sample {
            timestamp: from + TimeDelta::seconds(k * STEP),
            value: 0.100 * (1.0 + 0.2 * noise(k, 2)) * if k % 10 == 5 { 100.0 } else { 1.0 },
        })
        .collect();
    source = source.with_series(render(LATENCY, "rare-1", "canary", step), slow);
    let (factory, _, _) = static_sources(source);
    let controller = start_controller(&env.client, factory);
    let api: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    api.create(
        &PostParams::default(),
        &analysis("rare", "rare-1", "base-1", window_spec(from, to)),
    )
    .await
    .unwrap();

    let ca = wait_terminal(&api, "rare").await;
    eprintln!("{}", redblack::cli::report::render_analysis(&ca));
    assert_eq!(phase(&ca), CanaryAnalysisPhase::Failed, "{}", message(&ca));
    let s = ca.status.clone().unwrap();
    assert_eq!(
        s.judgement.as_ref().and_then(|j| j.mode),
        Some(redblack_judge::JudgeMode::Sequential),
        "120 steps and no mode: sequential"
    );
    assert_eq!(
        s.completed_intervals,
        6,
        "judged to the end: {}",
        message(&ca)
    );
    let l = s.metrics.iter().find(|m| m.name == "latency").unwrap();
    assert_eq!(l.classification, Classification::High, "{}", l.reason);
    assert_eq!(l.decided_by, DecidedBy::TailCheck, "{}", l.reason);
    assert!(l.reason.starts_with("final look"), "{}", l.reason);
    let seq = l.sequential.as_ref().expect("the e-process is kept");
    assert_eq!(
        seq.crossed_at_step, None,
        "the e-process alone never crossed"
    );
    let fl = seq.final_look.as_ref().expect("final look stats");
    assert_eq!(fl.classification, Classification::High);
    // The errors metric was looked at too, and found nothing.
    let e = s.metrics.iter().find(|m| m.name == "errors").unwrap();
    assert_eq!(e.classification, Classification::Pass, "{}", e.reason);
    assert!(
        e.sequential
            .as_ref()
            .and_then(|q| q.final_look.as_ref())
            .is_some_and(|f| f.classification == Classification::Pass)
    );
    controller.stop().await;
    env.sandbox.shutdown().await;
}

#[tokio::test]
async fn retrospective_verdicts() {
    let env = env().await;
    let (from, to) = past_window();
    let mut source = StaticSource::new();
    source = side(source, "base-1", "baseline", (from, to), 0.100, 0.01, 1);
    source = side(source, "good-1", "canary", (from, to), 0.100, 0.01, 2);
    source = side(source, "errs-1", "canary", (from, to), 0.100, 0.10, 3);
    source = side(source, "slow-1", "canary", (from, to), 0.300, 0.01, 4);
    // The previous fleet's data, two hours earlier (post-promotion analysis).
    let shift = TimeDelta::hours(2);
    source = side(
        source,
        "prev-1",
        "baseline",
        (from - shift, to - shift),
        0.100,
        0.01,
        1,
    );
    // Idle: traffic query answers 0; and a canary whose every query is empty.
    source = source
        .with_series(
            render(TRAFFIC, "idle-1", "canary", Duration::from_secs(600)),
            vec![Sample {
                timestamp: to,
                value: 0.0,
            }],
        )
        .with_series(
            render(LATENCY, "gone-1", "canary", Duration::from_secs(30)),
            vec![],
        )
        .with_series(
            render(ERRORS, "gone-1", "canary", Duration::from_secs(30)),
            vec![],
        )
        .with_series(
            render(REQUESTS, "gone-1", "canary", Duration::from_secs(30)),
            vec![],
        );
    let (factory, static_source, _) = static_sources(source);
    let controller = start_controller(&env.client, factory);
    let api: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let w = window_spec(from, to);
    let traffic = json!({"startTime": rfc3339(from), "endTime": rfc3339(to), "traffic": TRAFFIC});
    for (name, rs, spec) in [
        ("good", "good-1", w.clone()),
        ("errs", "errs-1", w.clone()),
        ("slow", "slow-1", w.clone()),
        ("idle", "idle-1", traffic),
        ("gone", "gone-1", w.clone()),
    ] {
        api.create(&PostParams::default(), &analysis(name, rs, "base-1", spec))
            .await
            .unwrap();
    }
    // Control = the previous fleet over the window two hours earlier.
    let mut shifted = w.clone();
    json_patch::merge(&mut shifted, &json!({"control": {"timeShift": "2h"}}));
    api.create(
        &PostParams::default(),
        &analysis("shifted", "good-1", "prev-1", shifted),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &analysis("unshifted", "good-1", "prev-1", w.clone()),
    )
    .await
    .unwrap();

    let good = wait_terminal(&api, "good").await;
    assert_eq!(
        phase(&good),
        CanaryAnalysisPhase::Passed,
        "{}",
        message(&good)
    );
    let s = good.status.clone().unwrap();
    assert_eq!((s.completed_intervals, s.total_intervals), (6, 6));
    assert_eq!(s.interval_progress.as_deref(), Some("6/6"));
    assert_eq!(s.intervals.len(), 6);
    assert_eq!(s.score, Some(100.0));
    assert_eq!(condition(&good, "Ready"), "True");
    assert_eq!(condition(&good, "Completed"), "True");
    assert_eq!(s.observed_generation, good.metadata.generation);
    assert_eq!(s.metrics.len(), 2);
    assert!(
        s.metrics
            .iter()
            .all(|m| m.classification == Classification::Pass)
    );
    // Cumulative windows: the last judgement saw the whole hour (121 points a side).
    let latency = s.metrics.iter().find(|m| m.name == "latency").unwrap();
    assert_eq!((latency.canary_count, latency.baseline_count), (121, 121));

    let errs = wait_terminal(&api, "errs").await;
    assert_eq!(
        phase(&errs),
        CanaryAnalysisPhase::Failed,
        "{}",
        message(&errs)
    );
    let s = errs.status.clone().unwrap();
    assert_eq!(
        s.completed_intervals,
        1,
        "ends early at the first interval: {}",
        message(&errs)
    );
    assert!(message(&errs).contains("ended early"), "{}", message(&errs));
    let e = s.metrics.iter().find(|m| m.name == "errors").unwrap();
    assert_eq!(e.classification, Classification::High);
    // 120 steps and no `mode`: the default on such a window is sequential.
    assert_eq!(
        s.judgement.as_ref().and_then(|j| j.mode),
        Some(redblack_judge::JudgeMode::Sequential)
    );
    assert_eq!(e.decided_by, DecidedBy::Sequential, "{}", e.reason);

    let slow = wait_terminal(&api, "slow").await;
    assert_eq!(
        phase(&slow),
        CanaryAnalysisPhase::Failed,
        "{}",
        message(&slow)
    );
    let l = slow
        .status
        .as_ref()
        .unwrap()
        .metrics
        .iter()
        .find(|m| m.name == "latency")
        .unwrap();
    assert_eq!(l.classification, Classification::High);

    let idle = wait_terminal(&api, "idle").await;
    assert_eq!(
        phase(&idle),
        CanaryAnalysisPhase::Inconclusive,
        "{}",
        message(&idle)
    );
    assert!(
        message(&idle).contains("canary received no traffic"),
        "{}",
        message(&idle)
    );
    assert_eq!(
        idle.status.as_ref().unwrap().intervals[0]
            .inconclusive_reason
            .as_deref(),
        Some("canary received no traffic")
    );

    // Empty vectors: NoData per the judge (never a crash, never a pass).
    // timeShift: the control's queries cover [start - 2h, end - 2h].
    let shifted = wait_terminal(&api, "shifted").await;
    assert_eq!(
        phase(&shifted),
        CanaryAnalysisPhase::Passed,
        "{}",
        message(&shifted)
    );
    let m = &shifted.status.as_ref().unwrap().metrics[0];
    assert_eq!(
        (m.canary_count, m.baseline_count),
        (121, 121),
        "{:#?}",
        shifted.status
    );
    let unshifted = wait_terminal(&api, "unshifted").await;
    assert_eq!(
        phase(&unshifted),
        CanaryAnalysisPhase::Inconclusive,
        "{}",
        message(&unshifted)
    );

    let gone = wait_terminal(&api, "gone").await;
    assert_eq!(
        phase(&gone),
        CanaryAnalysisPhase::Inconclusive,
        "{}",
        message(&gone)
    );
    let s = gone.status.clone().unwrap();
    assert!(
        s.metrics
            .iter()
            .all(|m| m.classification == Classification::Nodata),
        "{:?}",
        s.metrics
    );

    // One range query per template and scope for all six intervals: each
    // interval's cumulative window is a prefix of the last one.
    let asked = static_source.asked();
    let good_queries: Vec<&String> = asked
        .iter()
        .filter(|q| q.contains("good-1-[a-z0-9]{5}"))
        .collect();
    // three analyses (good, shifted, unshifted) judge good-1, 3 templates each
    assert_eq!(good_queries.len(), 3 * 3, "{good_queries:#?}");
    // No traffic, no metric queries.
    assert!(
        asked
            .iter()
            .filter(|q| q.contains("idle-1"))
            .all(|q| q.starts_with("sum(increase(requests_total"))
    );

    // What users must see is published as Kubernetes Events.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), NS);
    let events = events.list(&Default::default()).await.unwrap().items;
    let find = |name: &str, reason: &str| {
        events.iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
    };
    let passed = find("good", "Passed").expect("a Passed event for good");
    assert_eq!(passed.type_.as_deref(), Some("Normal"));
    let failed = find("errs", "Failed").expect("a Failed event for errs");
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(failed.note.as_deref().unwrap_or("").contains("ended early"));
    assert!(find("idle", "IntervalJudged").is_some());

    // A finished analysis is left alone: no further writes.
    let rv = good.resource_version();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.get("good").await.unwrap().resource_version(), rv);

    controller.stop().await;
    env.sandbox.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_an_error_naming_the_field() {
    let env = env().await;
    let (from, to) = past_window();
    let source = StaticSource::new();
    let source = side(source, "base-1", "baseline", (from, to), 0.1, 0.01, 1);
    let source = side(source, "badq-1", "canary", (from, to), 0.1, 0.01, 2).with_error(
        render(LATENCY, "badq-1", "canary", Duration::from_secs(30)),
        SourceError::InvalidQuery {
            message: "1:10: parse error: unexpected end of input".into(),
        },
    );
    let source = side(source, "down-1", "canary", (from, to), 0.1, 0.01, 3).with_error(
        render(LATENCY, "down-1", "canary", Duration::from_secs(30)),
        SourceError::Unreachable {
            url: "http://127.0.0.1:9".into(),
            cause: "connection refused".into(),
        },
    );
    let (factory, _, _) = static_sources(source);
    let controller = start_controller(&env.client, factory);
    let api: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let w = |extra: Value| {
        let mut spec = window_spec(from, to);
        json_patch::merge(&mut spec, &extra);
        spec
    };
    // What the CRD schema can express is refused at admission, naming the field.
    let refused: Vec<(&str, Value, &str)> = vec![
        (
            "thresholds",
            w(json!({"scoreThresholds": {"marginal": 90, "pass": 80}})),
            "scoreThresholds.marginal must not exceed scoreThresholds.pass",
        ),
        ("nometrics", w(json!({"metrics": []})), "spec.metrics"),
        (
            "duration",
            w(json!({"interval": "5 minutes"})),
            "spec.interval",
        ),
        (
            "both",
            w(json!({"lifetime": "1h"})),
            "set exactly one of endTime and lifetime",
        ),
        (
            "norate",
            w(json!({"metrics": [{"name": "m", "kind": "rate", "numerator": ERRORS}]})),
            "a rate metric (kind: rate) has numerator and denominator",
        ),
        (
            "earlyfixed",
            w(json!({"mode": "fixed", "earlyPass": {"minDuration": "1m"}})),
            "earlyPass needs mode: sequential",
        ),
        (
            "earlydur",
            w(json!({"mode": "sequential", "earlyPass": {"minDuration": "2 min"}})),
            "spec.earlyPass.minDuration",
        ),
    ];
    for (name, spec, needle) in &refused {
        let err = api
            .create(
                &PostParams::default(),
                &analysis(name, "x-1", "base-1", spec.clone()),
            )
            .await
            .expect_err(name);
        assert!(
            err.to_string().contains(needle),
            "{name}: want {needle:?} in {err}"
        );
    }
    // The rest is the controller's: phase Error with a message naming the field.
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "unknownvar",
            "x-1",
            w(json!({"metrics": [{"name": "m", "query": "avg(x{a=\"${nope}\"})"}]})),
            "spec.metrics[0].query: unknown variable ${nope}",
        ),
        (
            "earlymargin",
            "x-1",
            w(json!({"mode": "sequential", "earlyPass": {"minDuration": "1m", "margin": 1.0}})),
            "spec.earlyPass.margin: must be a finite ratio > 1",
        ),
        (
            "earlylong",
            "x-1",
            w(json!({"mode": "sequential", "earlyPass": {"minDuration": "100h"}})),
            "spec.earlyPass.minDuration: 100h is longer than the analysis window",
        ),
        (
            "warmup",
            "x-1",
            w(json!({"warmup": "2h"})),
            "spec.endTime: the window ends at",
        ),
        (
            "badquery",
            "badq-1",
            w(json!({})),
            "spec.metrics[0].query (experiment scope): invalid query: 1:10: parse error",
        ),
        (
            "unreachable",
            "down-1",
            w(json!({})),
            "prometheus at http://127.0.0.1:9 unreachable: connection refused",
        ),
    ];
    for (name, rs, spec, _) in &cases {
        api.create(
            &PostParams::default(),
            &analysis(name, rs, "base-1", spec.clone()),
        )
        .await
        .unwrap();
    }
    for (name, _, _, needle) in &cases {
        let ca = wait_terminal(&api, name).await;
        assert_eq!(
            phase(&ca),
            CanaryAnalysisPhase::Error,
            "{name}: {}",
            message(&ca)
        );
        assert!(
            message(&ca).contains(needle),
            "{name}: want {needle:?} in {:?}",
            message(&ca)
        );
        assert_eq!(condition(&ca, "Stalled"), "True", "{name}");
        assert_eq!(condition(&ca, "Ready"), "False", "{name}");
    }
    let down = api.get("unreachable").await.unwrap();
    assert!(
        message(&down).contains("after 3 attempts"),
        "{}",
        message(&down)
    );

    // Fixing the spec (new generation) starts over.
    let mut fixed = api.get("unknownvar").await.unwrap();
    fixed.spec.metrics = analysis("x", "x", "x", json!({})).spec.metrics;
    fixed.spec.experiment.replica_set = Some("base-1".into());
    api.replace("unknownvar", &PostParams::default(), &fixed)
        .await
        .unwrap();
    let ca = wait_for(&api, "unknownvar", "a verdict for generation 2", |ca| {
        ca.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(CanaryAnalysisPhase::Passed))
    })
    .await;
    assert_eq!(
        ca.status.unwrap().observed_generation,
        ca.metadata.generation
    );

    controller.stop().await;
    env.sandbox.shutdown().await;
}

/// A live analysis: the controller wakes at each interval boundary (not on a
/// poll), writes each interval once, survives a restart, and ends on time.
#[tokio::test]
async fn live_run_wakes_at_boundaries_and_survives_a_restart() {
    let env = env().await;
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 1, 0).unwrap();
    let end = start + TimeDelta::seconds(9);
    // Data for the whole run (StaticSource filters by the asked window).
    let mut source = StaticSource::new();
    for (rs, role, salt) in [("live-base", "baseline", 1), ("live-can", "canary", 2)] {
        let step = Duration::from_secs(1);
        let n = 9;
        let at = |k: i64| start + TimeDelta::seconds(k);
        let lat = (0..=n)
            .map(|k| Sample {
                timestamp: at(k),
                value: 0.1 * (1.0 + 0.2 * noise(k, salt)),
            })
            .collect();
        let reqs = (0..=n)
            .map(|k| Sample {
                timestamp: at(k),
                value: 100.0,
            })
            .collect();
        let errs = (0..=n)
            .map(|k| Sample {
                timestamp: at(k),
                value: 1.0,
            })
            .collect();
        source = source
            .with_series(render(LATENCY, rs, role, step), lat)
            .with_series(render(ERRORS, rs, role, step), errs)
            .with_series(render(REQUESTS, rs, role, step), reqs);
    }
    let (factory, static_source, _) = static_sources(source);
    let api: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let spec =
        json!({"startTime": rfc3339(start), "lifetime": "9s", "interval": "3s", "step": "1s"});
    api.create(
        &PostParams::default(),
        &analysis("live", "live-can", "live-base", spec),
    )
    .await
    .unwrap();

    let controller = start_controller(&env.client, factory.clone());
    let first = wait_for(&api, "live", "interval 1", |ca| {
        ca.status
            .as_ref()
            .is_some_and(|s| s.completed_intervals >= 1)
    })
    .await;
    let judged_at = Utc::now();
    assert!(
        judged_at >= start + TimeDelta::seconds(3),
        "judged before the boundary"
    );
    assert_eq!(phase(&first), CanaryAnalysisPhase::Running);
    // Stop the operator mid-run; start a new one, which continues from status.
    controller.stop().await;
    let asked_before = static_source.asked().len();
    let metrics = OperatorMetrics::new();
    let controller = start_controller_with(&env.client, factory, metrics.clone());
    let done = wait_terminal(&api, "live").await;
    let finished_at = Utc::now();
    assert_eq!(
        phase(&done),
        CanaryAnalysisPhase::Passed,
        "{}",
        message(&done)
    );
    let s = done.status.clone().unwrap();
    assert_eq!(s.completed_intervals, 3);
    let indexes: Vec<u32> = s.intervals.iter().map(|i| i.index).collect();
    assert_eq!(indexes, vec![1, 2, 3], "each interval written once");
    assert!(finished_at >= end, "finished before the window ended");
    assert!(
        finished_at < end + TimeDelta::seconds(5),
        "late verdict: {finished_at} vs end {end}"
    );
    // 3 metric queries x 2 scopes per interval, and no polling in between:
    // the new operator judged at most intervals 2 and 3 (plus a possible retry of 1's write).
    let asked_after = static_source.asked().len() - asked_before;
    assert!(
        asked_after <= 3 * 6,
        "the restarted operator asked {asked_after} queries"
    );

    // Nothing due, nothing written: the resourceVersion stays put.
    let rv = done.resource_version();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.get("live").await.unwrap().resource_version(), rv);
    // The restarted operator wrote exactly twice: interval 2, then the verdict.
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("redblack_api_writes_total{controller=\"canaryanalysis\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("redblack_reconciles_total{controller=\"canaryanalysis\"}"),
        "{text}"
    );

    api.delete("live", &DeleteParams::default()).await.unwrap();
    controller.stop().await;
    env.sandbox.shutdown().await;
}

/// Without the CRD the controller stops at once with a message saying so,
/// instead of a watcher retrying forever.
#[tokio::test]
async fn missing_crd_is_reported() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let client = sandbox.client().expect("client");
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        redblack::analysis::controller::run_analysis_controller(
            client,
            AnalysisControllerConfig::default(),
            std::future::pending(),
        ),
    )
    .await
    .expect("returns promptly");
    let err = result.expect_err("no CRD");
    assert!(err.to_string().contains("is the CRD installed?"), "{err}");
    sandbox.shutdown().await;
}

/// The controller's first list failing for a moment (a 500 from a busy API
/// server) is retried with backoff: it used to stop the CanaryAnalysis
/// controller for good, leaving every canary unjudged while the Rollout
/// controller ran on.
#[tokio::test]
async fn a_transient_failure_of_the_first_list_is_retried_not_fatal() {
    use redblack_sandbox::{FaultAction, FaultConfig, FaultRule};
    let env = env().await;
    env.sandbox.set_faults(FaultConfig {
        rules: vec![FaultRule {
            verb: Some("list".into()),
            resource: Some("canaryanalyses".into()),
            probability: 1.0,
            action: FaultAction::Error { code: 500 },
        }],
        watch_cut_after: None,
    });
    let (factory, _, _) = static_sources(StaticSource::new());
    let running = start_controller(&env.client, factory);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while env
        .sandbox
        .request_counts()
        .faults_by_verb()
        .get("list")
        .copied()
        .unwrap_or(0)
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller did not list again after a 500"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.sandbox.set_faults(FaultConfig::default());
    let api: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let (from, to) = past_window();
    api.create(
        &PostParams::default(),
        &analysis("after-500", "web-v2", "web-v1", window_spec(from, to)),
    )
    .await
    .expect("create");
    wait_for(&api, "after-500", "a status", |ca| {
        ca.status.as_ref().is_some_and(|s| s.phase.is_some())
    })
    .await;
    running.stop().await;
}
