//! Benchmark (not a test): N concurrent live CanaryAnalyses (default 1,000)
//! judged by the real CanaryAnalysis controller against a fake Prometheus
//! over HTTP. Prints the Prometheus queries per analysis per interval, the
//! most queries the fake Prometheus saw in flight at once (bounded by the
//! per-endpoint concurrency, `--metric-endpoint-concurrency`, default 8), the
//! controller's CPU per judged interval, and how late each interval was
//! judged (when its result landed in the store minus the interval's end).
//!
//!     cargo build --release --example bench_analyses
//!     target/release/examples/bench_analyses [--analyses N] [--interval SECS]
//!         [--intervals K] [--prom-latency-ms MS] [--reconciles R]
//!
//! Two tokio runtimes in one process, so the controller's CPU can be told
//! apart: `bench` (sandbox, fake Prometheus, the store observer, creating the
//! analyses) and `ca-operator` (the `AnalysisController` with the real
//! `PrometheusSource`, its kube client and HTTP connections). The
//! controller's CPU is the utime + stime of the `ca-operator` threads
//! (/proc/self/task): reconciles, queries, JSON, the judge, status writes.
//!
//! The fake Prometheus (tests/fake_prometheus) holds every answer
//! `--prom-latency-ms` (default 5 ms, a query's evaluation time) and answers
//! one series per query, the same values for baseline and canary (every
//! analysis passes). Analyses are `mode: fixed` (one judgement per interval
//! boundary; `sequential` would add a look per `step`).
//!
//! Lateness: a task subscribed to the sandbox store (in-process, no polling)
//! sees each status write; every interval that is new in `status.intervals`
//! is stamped with the wall clock on arrival, minus its `end`. Status times
//! have 1 s resolution, so lateness is exact to about a second.

mod support;

#[path = "../tests/fake_prometheus/mod.rs"]
mod fake_prometheus;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fake_prometheus::{Answer, FakePrometheus, Query, Reply};
use futures::StreamExt;
use kube::Api;
use kube::api::PostParams;
use redblack::analysis::controller::{AnalysisController, AnalysisControllerConfig};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisStatus};
use redblack_sandbox::SandboxConfig;
use redblack_sandbox::registry::GroupResource;
use redblack_sandbox::store::{EventType, Store};
use serde_json::{Value, json};
use support::{BoxError, diff, percentile};

const NS: &str = "default";
/// Thread name of the controller's runtime (≤ 15 bytes: /proc's `comm`).
const OP_THREADS: &str = "ca-operator";

struct Args {
    analyses: usize,
    interval_secs: u64,
    intervals: u64,
    prom_latency: Duration,
    /// Analyses reconciled at once (the controller's `concurrency`).
    reconciles: u16,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        analyses: 1000,
        interval_secs: 30,
        intervals: 3,
        prom_latency: Duration::from_millis(5),
        reconciles: AnalysisControllerConfig::default().concurrency,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--analyses" => args.analyses = value()?.parse()?,
            "--interval" => args.interval_secs = value()?.trim_end_matches('s').parse()?,
            "--intervals" => args.intervals = value()?.parse()?,
            "--prom-latency-ms" => {
                args.prom_latency = Duration::from_millis(value()?.parse()?);
            }
            "--reconciles" => args.reconciles = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "bench_analyses [--analyses N (1000)] [--interval SECS (30)] \
                     [--intervals K (3)] [--prom-latency-ms MS (5)] [--reconciles R (16)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if args.analyses == 0 || args.interval_secs == 0 || args.intervals == 0 || args.reconciles == 0
    {
        return Err(
            "--analyses, --interval, --intervals and --reconciles must be at least 1".into(),
        );
    }
    Ok(args)
}

// ---------------------------------------------------------------------------
// The analyses and the fake Prometheus's answers
// ---------------------------------------------------------------------------

const LATENCY: &str =
    r#"avg(request_latency_seconds{namespace="${namespace}", pod=~"${podRegex}"})"#;
const ERRORS: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}", code="500"}[${interval}]))"#;
const REQUESTS: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;

/// A live analysis as the Rollout controller would create one: a latency
/// metric, an error-rate metric and a traffic query.
fn analysis(i: usize, args: &Args) -> Result<CanaryAnalysis, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": format!("ca-{i:05}"), "namespace": NS},
        "spec": {
            "control": {"replicaSet": format!("app{i}-baseline")},
            "experiment": {"replicaSet": format!("app{i}-canary")},
            "lifetime": format!("{}s", args.interval_secs * args.intervals),
            "interval": format!("{}s", args.interval_secs),
            "step": "1s",
            "mode": "fixed",
            "traffic": REQUESTS,
            "metrics": [
                {"name": "latency", "direction": "increase", "query": LATENCY},
                {"name": "errors", "kind": "rate", "direction": "increase",
                 "numerator": ERRORS, "denominator": REQUESTS}
            ]
        }
    }))
}

/// One series with a value at every step; baseline and canary alike (the
/// value depends on the step only), so every analysis passes. Errors are a
/// small share of requests.
fn answer() -> Answer {
    Arc::new(|q: &Query| {
        let errors = q.query.contains("code=\"500\"");
        let requests = q.query.contains("http_requests_total");
        Reply::one(q, |i, _| {
            let wobble = ((i * 37) % 11) as f64;
            let v = if errors {
                1.0 + wobble / 10.0
            } else if requests {
                100.0 + wobble
            } else {
                0.1 + wobble / 1000.0
            };
            Some(v.to_string())
        })
    })
}

// ---------------------------------------------------------------------------
// Observing the judged intervals
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Judged {
    /// Intervals seen per analysis.
    seen: HashMap<String, u32>,
    /// Wall clock at arrival minus interval end, ms.
    lateness_ms: Vec<f64>,
}

fn canary_analyses() -> GroupResource {
    GroupResource::new("redblack.io", "canaryanalyses")
}

/// Stamps every newly judged interval on arrival of the status write that
/// records it, until aborted.
fn spawn_observer(
    store: &Store,
    judged: Arc<Mutex<Judged>>,
    lagged: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let mut rx = store.subscribe();
    let gr = canary_analyses();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    lagged.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if ev.gr != gr || ev.event_type == EventType::Deleted {
                continue;
            }
            let now = Utc::now();
            let Some(name) = ev.object.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let Some(intervals) = ev
                .object
                .pointer("/status/intervals")
                .and_then(Value::as_array)
            else {
                continue;
            };
            let mut j = judged.lock().unwrap_or_else(|e| e.into_inner());
            let last = j.seen.get(name).copied().unwrap_or(0);
            let mut newest = last;
            for iv in intervals {
                let index = iv["index"].as_u64().unwrap_or(0) as u32;
                let end = iv["end"]
                    .as_str()
                    .and_then(|e| DateTime::parse_from_rfc3339(e).ok());
                if index > last
                    && let Some(end) = end
                {
                    let late = now - end.with_timezone(&Utc);
                    j.lateness_ms.push(late.num_milliseconds() as f64);
                    newest = newest.max(index);
                }
            }
            j.seen.insert(name.to_owned(), newest);
        }
    })
}

/// Analyses in the store with a terminal phase, and their judged intervals.
fn progress(store: &Store) -> (usize, u64) {
    let (all, _) = store.list(&canary_analyses(), Some(NS));
    let mut done = 0;
    let mut intervals = 0;
    for a in &all {
        let Some(status) = a
            .get("status")
            .and_then(|s| serde_json::from_value::<CanaryAnalysisStatus>(s.clone()).ok())
        else {
            continue;
        };
        intervals += u64::from(status.completed_intervals);
        if status.phase.is_some_and(|p| p.is_terminal()) {
            done += 1;
        }
    }
    (done, intervals)
}

/// Phases of every analysis, counted.
fn phases(store: &Store) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for a in store.list(&canary_analyses(), Some(NS)).0 {
        let p = a
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("none");
        *by.entry(p.to_owned()).or_insert(0) += 1;
    }
    by.iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// CPU of the controller's threads
// ---------------------------------------------------------------------------

/// utime + stime, in seconds (10 ms resolution), of this process's threads
/// named `name`.
fn threads_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some((head, rest)), Some(comm_start)) = (stat.rsplit_once(')'), stat.find('(')) else {
            continue;
        };
        if &head[comm_start + 1..] != name {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        ticks += field(11) + field(12);
    }
    ticks / 100.0
}

/// utime + stime of the whole process, in seconds.
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / 100.0
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let bench = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;
    let operator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(OP_THREADS)
        .enable_all()
        .build()?;
    bench.block_on(run(args, operator.handle().clone()))
}

async fn run(args: Args, op: tokio::runtime::Handle) -> Result<(), BoxError> {
    let n = args.analyses;
    let (sandbox, bench_client) = support::start_sandbox(SandboxConfig::default()).await?;
    let prometheus = FakePrometheus::start_with_latency(answer(), args.prom_latency).await;
    let store = sandbox.store();
    let judged = Arc::new(Mutex::new(Judged::default()));
    let lagged = Arc::new(AtomicU64::new(0));
    let observer = spawn_observer(&store, judged.clone(), lagged.clone());

    let config = AnalysisControllerConfig {
        default_prometheus_url: Some(prometheus.url.clone()),
        concurrency: args.reconciles,
        ..AnalysisControllerConfig::default()
    };
    let (endpoint_bound, query_bound, reconciles_bound) = (
        config.endpoint_concurrency,
        config.query_concurrency,
        config.concurrency,
    );
    // The client's connection tasks run on the controller's runtime.
    let op_client = {
        let _on = op.enter();
        sandbox.client()?
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = op.spawn(AnalysisController::new(op_client, config).run(async move {
        let _ = stopped.await;
    }));

    let op_cpu0 = threads_cpu(OP_THREADS);
    let cpu0 = process_cpu();
    let counts0 = sandbox.request_counts().snapshot();
    let started = Instant::now();
    let api: Api<CanaryAnalysis> = Api::namespaced(bench_client, NS);
    let objects = (0..n)
        .map(|i| analysis(i, &args))
        .collect::<Result<Vec<_>, _>>()?;
    let created: Vec<Result<CanaryAnalysis, kube::Error>> = futures::stream::iter(objects)
        .map(|a| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &a).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    if let Some(Err(e)) = created.into_iter().find(Result::is_err) {
        return Err(format!("creating an analysis: {e}").into());
    }
    let create_secs = started.elapsed().as_secs_f64();

    // Every analysis ends after its lifetime; wait for that plus a generous
    // margin (the machine is shared), checking the in-process store.
    let lifetime = Duration::from_secs(args.interval_secs * args.intervals);
    let deadline = Instant::now() + lifetime + Duration::from_secs(120) + lifetime;
    let mut done = 0;
    while Instant::now() < deadline {
        let (d, _) = progress(&store);
        done = d;
        if done == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let op_cpu = threads_cpu(OP_THREADS) - op_cpu0;
    let cpu = process_cpu() - cpu0;
    let requests = diff(&sandbox.request_counts().snapshot(), &counts0);
    let (_, intervals) = progress(&store);
    let queries = prometheus.queries();
    let max_in_flight = prometheus.max_in_flight();
    let _ = stop.send(());
    controller.await??;
    observer.abort();

    let mut lateness = judged
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .lateness_ms
        .clone();
    lateness.sort_by(f64::total_cmp);
    let expected = n as u64 * args.intervals;
    let per_interval = |x: f64| x / intervals.max(1) as f64;
    let status_writes: u64 = requests
        .iter()
        .filter(|((verb, res), _)| verb == "patch" && res == "canaryanalyses/status")
        .map(|(_, c)| c)
        .sum();

    println!(
        "bench_analyses: {n} live CanaryAnalyses, interval {}s × {} (lifetime {}s), step 1s, \
         mode fixed, 2 metrics (latency; errors as a rate) + traffic; fake Prometheus on \
         127.0.0.1 answering after {:?}; in-process sandbox (a SIMULATOR); {:.0} s wall \
         ({create_secs:.1} s to create them)",
        args.interval_secs,
        args.intervals,
        lifetime.as_secs(),
        args.prom_latency,
        wall
    );
    println!(
        "  analyses finished: {done}/{n} ({}); intervals judged: {intervals}/{expected}",
        phases(&store)
    );
    println!(
        "  Prometheus queries: {queries} total, {:.2} per analysis per interval",
        per_interval(queries as f64)
    );
    println!(
        "  max queries in flight at the fake Prometheus: {max_in_flight} \
         (bound: {endpoint_bound} per endpoint; {query_bound} per interval; \
         {reconciles_bound} analyses reconciled at once)"
    );
    println!(
        "  controller CPU ({OP_THREADS} threads): {op_cpu:.2} s, {:.2} ms per judged interval; \
         whole process (sandbox + fake Prometheus + bench + controller) {cpu:.2} s, {:.2} ms per interval",
        1000.0 * per_interval(op_cpu),
        1000.0 * per_interval(cpu)
    );
    println!(
        "  status writes (patch canaryanalyses/status): {status_writes}, {:.2} per interval; \
         all API requests: {}",
        per_interval(status_writes as f64),
        support::total(&requests)
    );
    println!(
        "  lateness, judged (status write in the store) minus interval end, {} intervals, ms: \
         p50 {:.0} / p90 {:.0} / p99 {:.0} / max {:.0}",
        lateness.len(),
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.9),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(f64::NAN)
    );
    let lost = lagged.load(Ordering::Relaxed);
    if lost > 0 {
        println!("WARNING: the store observer lagged and lost {lost} events: lateness is partial");
    }
    sandbox.shutdown().await;
    if done < n {
        return Err(format!("only {done} of {n} analyses finished in time").into());
    }
    Ok(())
}
