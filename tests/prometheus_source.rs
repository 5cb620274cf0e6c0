//! `PrometheusSource`, query templates and the traffic check against a REAL
//! Prometheus (backfilled with promtool), plus retry/error classification
//! against a scripted HTTP server. Everything listens on 127.0.0.1 only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use redblack::analysis::prometheus::PrometheusSource;
use redblack::analysis::query::{QueryTemplate, Scope};
use redblack::analysis::source::{MetricSource, SourceError};
use redblack::analysis::traffic_check::{Traffic, TrafficCheck};
use redblack_sandbox::testing::prometheus::{
    FileSdGroup, OpenMetricsSeries, PrometheusOptions, PrometheusProcess, backfill,
    file_sd_scrape_config, write_file_sd_targets,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NS: &str = "shop";
const CANARY_RS: &str = "api-7d9f8c6b5";
const BASELINE_RS: &str = "api-baseline-5f4d3c2b1";
/// Pods of the stable ReplicaSet: same namespace, different error rate,
/// must never leak into the canary's or baseline's numbers.
const STABLE_RS: &str = "api-5f4d3c2b1";
/// Pods that exist and export counters but get no requests.
const IDLE_RS: &str = "api-idle";
const STEP_SECS: i64 = 15;
const REQ_PER_SEC: f64 = 10.0;

const ERROR_RATE: &str = r#"sum(rate(http_requests_total{namespace="${namespace}", pod=~"${podRegex}", code=~"5.."}[${interval}])) / sum(rate(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;
const LATENCY: &str =
    r#"avg(request_latency_seconds{namespace="${namespace}", pod=~"${podRegex}"})"#;
const TRAFFIC: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;

/// Counters for `pods` of one ReplicaSet: REQ_PER_SEC per pod, a share
/// `error_share` of them with code 500; and a constant latency gauge.
fn fleet(
    namespace: &str,
    pods: &[String],
    error_share: f64,
    latency: f64,
    req_per_sec: f64,
    start: DateTime<Utc>,
    minutes: i64,
) -> Vec<OpenMetricsSeries> {
    let mut out = Vec::new();
    for pod in pods {
        let labels = |code: &'static str| {
            [
                ("namespace", namespace),
                ("pod", pod.as_str()),
                ("code", code),
            ]
        };
        let mut ok = OpenMetricsSeries::counter("http_requests_total", &labels("200"));
        let mut err = OpenMetricsSeries::counter("http_requests_total", &labels("500"));
        let mut lat = OpenMetricsSeries::gauge(
            "request_latency_seconds",
            &[("namespace", namespace), ("pod", pod.as_str())],
        );
        for k in 0..=(minutes * 60 / STEP_SECS) {
            let t = start + TimeDelta::seconds(k * STEP_SECS);
            let total = req_per_sec * (k * STEP_SECS) as f64;
            ok.push(t, total * (1.0 - error_share));
            err.push(t, total * error_share);
            lat.push(t, latency);
        }
        out.extend([ok, err, lat]);
    }
    out
}

fn pods(rs: &str) -> Vec<String> {
    ["x2k9q", "b7m4z", "q9w8e"]
        .iter()
        .map(|s| format!("{rs}-{s}"))
        .collect()
}

fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[tokio::test]
async fn against_real_prometheus() {
    // One past hour, well before "now", so nothing overlaps the live head block.
    let start = (Utc::now() - TimeDelta::hours(3))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap();
    let mut series = Vec::new();
    series.extend(fleet(
        NS,
        &pods(CANARY_RS),
        0.05,
        0.200,
        REQ_PER_SEC,
        start,
        60,
    ));
    series.extend(fleet(
        NS,
        &pods(BASELINE_RS),
        0.01,
        0.100,
        REQ_PER_SEC,
        start,
        60,
    ));
    series.extend(fleet(
        NS,
        &pods(STABLE_RS),
        0.30,
        0.900,
        REQ_PER_SEC,
        start,
        60,
    ));
    series.extend(fleet(NS, &pods(IDLE_RS), 0.0, 0.1, 0.0, start, 60));
    // A namespace and ReplicaSet name with characters that need escaping,
    // and a decoy whose name differs only where the regex has a `.`.
    let weird_ns = "we\"ird\\n\ns";
    series.extend(fleet(
        weird_ns,
        &["web.v2-abcde".to_owned()],
        0.5,
        1.0,
        2.0,
        start,
        60,
    ));
    series.extend(fleet(
        weird_ns,
        &["webxv2-abcde".to_owned()],
        0.0,
        9.0,
        2.0,
        start,
        60,
    ));
    // NaN and +Inf must arrive as such.
    let mut odd = OpenMetricsSeries::gauge("queue_depth", &[("namespace", NS), ("pod", "odd")]);
    odd.push(start, f64::NAN);
    odd.push(start + TimeDelta::seconds(60), f64::INFINITY);
    odd.push(start + TimeDelta::seconds(120), 1.0);

    let data = tempfile::tempdir().unwrap();
    backfill(&series, data.path()).unwrap();
    backfill(&[odd], data.path()).unwrap();
    let prometheus = PrometheusProcess::start(Some(data.path()), None).unwrap();
    let source = PrometheusSource::new(prometheus.url(), Duration::from_secs(10), 2).unwrap();

    let canary = Scope::for_replica_set(NS, CANARY_RS, "7d9f8c6b5", "canary");
    let baseline = Scope::for_replica_set(NS, BASELINE_RS, "5f4d3c2b1", "baseline");
    let minute = Duration::from_secs(60);
    let (from, to) = (
        start + TimeDelta::minutes(10),
        start + TimeDelta::minutes(50),
    );
    let step = Duration::from_secs(60);

    // Error rate per scope, from a rendered template.
    let error_rate = QueryTemplate::parse(ERROR_RATE).unwrap();
    for (scope, expected) in [(&canary, 0.05), (&baseline, 0.01)] {
        let query = error_rate.render(scope, minute).unwrap();
        let samples = source.query_range(&query, from, to, step).await.unwrap();
        assert_eq!(
            samples.len(),
            41,
            "{} points over 40 minutes at 1m",
            scope.role
        );
        assert_eq!(samples.points[0].timestamp, from);
        for v in samples.values() {
            assert!(
                near(v, expected, 1e-9),
                "{} error rate {v}, expected {expected}",
                scope.role
            );
        }
    }
    let latency = QueryTemplate::parse(LATENCY).unwrap();
    let canary_latency = source
        .query_range(&latency.render(&canary, minute).unwrap(), from, to, step)
        .await
        .unwrap();
    assert!(canary_latency.values().iter().all(|v| near(*v, 0.2, 1e-12)));

    // A query that matches nothing is Ok and empty (judge: NoData), range and instant.
    let nothing = r#"sum(rate(http_requests_total{namespace="nowhere"}[1m]))"#;
    assert!(
        source
            .query_range(nothing, from, to, step)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(source.query_instant(nothing, to).await.unwrap().is_empty());

    // Several series for one scope is an error naming the fix.
    let err = source
        .query_range(r#"http_requests_total{namespace="shop"}"#, from, to, step)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::MultipleSeries { count: 24, .. }),
        "{err}"
    );

    // NaN and +Inf are kept.
    let odd = source
        .query_range(
            r#"queue_depth{pod="odd"}"#,
            start,
            start + TimeDelta::seconds(120),
            step,
        )
        .await
        .unwrap()
        .values();
    assert_eq!(odd.len(), 3);
    assert!(
        odd[0].is_nan() && odd[1] == f64::INFINITY && odd[2] == 1.0,
        "{odd:?}"
    );

    // Prometheus's parse error comes back as InvalidQuery with its message.
    let err = source
        .query_range("sum(rate(http_requests_total[5m])", from, to, step)
        .await
        .unwrap_err();
    match err {
        SourceError::InvalidQuery { message } => {
            assert!(message.contains("parse error"), "{message}")
        }
        other => panic!("expected InvalidQuery, got {other:?}"),
    }

    // Injection: the value stays inside its string literal and matches nothing,
    // whereas naive substitution would have changed the query.
    let template = r#"sum(http_requests_total{namespace="${namespace}", code="500"})"#;
    let evil = Scope {
        namespace: r#"x"} or vector(1) or {a=""#.to_owned(),
        ..canary.clone()
    };
    let naive = template.replace("${namespace}", &evil.namespace);
    assert!(
        !source.query_instant(&naive, to).await.unwrap().is_empty(),
        "naive substitution injects"
    );
    let safe = QueryTemplate::parse(template)
        .unwrap()
        .render(&evil, minute)
        .unwrap();
    assert!(
        source.query_instant(&safe, to).await.unwrap().is_empty(),
        "escaped: {safe}"
    );

    // Escaped values decode to the exact label value (in both string quotes),
    // and `.` in the ReplicaSet name is literal in podRegex and in a `=~`
    // matcher: the decoy pod `webxv2-abcde` is never counted.
    let weird = Scope::for_replica_set(weird_ns, "web.v2", "v2", "canary");
    for template in [
        r#"count(request_latency_seconds{namespace="${namespace}", pod=~"${podRegex}"})"#,
        r#"count(request_latency_seconds{namespace='${namespace}', pod=~'${podRegex}'})"#,
        r#"count(request_latency_seconds{namespace="${namespace}", pod=~"${replicaSet}-.*"})"#,
    ] {
        let count = QueryTemplate::parse(template)
            .unwrap()
            .render(&weird, minute)
            .unwrap();
        assert_eq!(
            source.query_instant(&count, to).await.unwrap().values(),
            vec![1.0],
            "{count}"
        );
    }

    // Traffic: canary has it, idle pods and absent pods have none.
    let traffic = TrafficCheck::parse(TRAFFIC).unwrap();
    let window = (to - TimeDelta::minutes(10), to);
    match traffic
        .check(&source, &canary, window.0, window.1)
        .await
        .unwrap()
    {
        Traffic::Received { total } => {
            let expected = REQ_PER_SEC * 3.0 * 600.0;
            assert!(near(total, expected, expected * 0.01), "total {total}");
        }
        Traffic::NoTraffic => panic!("canary had traffic"),
    }
    let idle = Scope::for_replica_set(NS, IDLE_RS, "idle", "canary");
    assert_eq!(
        traffic
            .check(&source, &idle, window.0, window.1)
            .await
            .unwrap(),
        Traffic::NoTraffic
    );
    let absent = Scope::for_replica_set(NS, "api-absent", "absent", "canary");
    assert_eq!(
        traffic
            .check(&source, &absent, window.0, window.1)
            .await
            .unwrap(),
        Traffic::NoTraffic
    );
}

#[tokio::test]
async fn unreachable_after_bounded_retries() {
    // A port held bound but never listening: connecting is refused, and no
    // other test's server can be given it meanwhile (as a port bound and
    // closed again could be).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", held.local_addr().unwrap());
    let source = PrometheusSource::new(&url, Duration::from_secs(2), 2)
        .unwrap()
        .with_backoff(Duration::from_millis(50), Duration::from_millis(100));
    let started = Instant::now();
    let err = source.query_instant("up", Utc::now()).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Unreachable { url: u, .. } if *u == url),
        "{err:?}"
    );
    // Two retries waited 50ms + 100ms.
    assert!(started.elapsed() >= Duration::from_millis(150));
}

/// An HTTP server on 127.0.0.1 that answers each connection with the next
/// scripted response (`None`: accept and never answer). Counts requests.
async fn scripted_server(responses: Vec<Option<String>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for response in responses {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            read_request(&mut stream).await;
            match response {
                Some(text) => {
                    let _ = stream.write_all(text.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
                None => held.push(stream),
            }
        }
        // Keep silent connections open until the test ends.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(held);
    });
    (url, count)
}

async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
    }
}

fn http(status: &str, content_type: &str, extra: &str, body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    ))
}

const ONE_POINT: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}"#;

fn fast(url: &str, retries: u32) -> PrometheusSource {
    PrometheusSource::new(url, Duration::from_millis(500), retries)
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(20))
}

#[tokio::test]
async fn retries_5xx_and_429_then_succeeds() {
    let (url, count) = scripted_server(vec![
        http("503 Service Unavailable", "text/plain", "", "overloaded"),
        http(
            "429 Too Many Requests",
            "text/plain",
            "Retry-After: 0\r\n",
            "slow down",
        ),
        http("200 OK", "application/json", "", ONE_POINT),
    ])
    .await;
    let samples = fast(&url, 3).query_instant("up", Utc::now()).await.unwrap();
    assert_eq!(samples.values(), vec![0.25]);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn bad_data_is_not_retried() {
    let body = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
    let (url, count) = scripted_server(vec![
        http("400 Bad Request", "application/json", "", body),
        http("200 OK", "application/json", "", ONE_POINT),
    ])
    .await;
    let err = fast(&url, 3)
        .query_instant("sum(", Utc::now())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::InvalidQuery {
            message: "1:5: parse error: unexpected end of input".into()
        }
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn persistent_5xx_gives_server_error_after_retries() {
    let bad = http(
        "502 Bad Gateway",
        "text/html",
        "",
        "<html>bad gateway</html>",
    );
    let (url, count) = scripted_server(vec![bad.clone(), bad.clone(), bad]).await;
    let err = fast(&url, 2)
        .query_instant("up", Utc::now())
        .await
        .unwrap_err();
    assert!(
        // The status line, never the (proxy's) body.
        matches!(&err, SourceError::Server { status: 502, message } if message == "Bad Gateway"),
        "{err:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn silent_server_times_out_after_retries() {
    let (url, count) = scripted_server(vec![None, None]).await;
    let err = fast(&url, 1)
        .query_instant("up", Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn empty_vector_and_garbage_are_distinguished() {
    let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let (url, _) = scripted_server(vec![
        http("200 OK", "application/json", "", empty),
        http("200 OK", "application/json", "", r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"not a number"]}]}}"#),
    ])
    .await;
    let source = fast(&url, 0);
    assert!(
        source
            .query_instant("up", Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    let err = source.query_instant("up", Utc::now()).await.unwrap_err();
    assert!(
        matches!(err, SourceError::InvalidResponse { .. }),
        "{err:?}"
    );
}

/// The harness's file_sd support: Prometheus scrapes a target listed in a
/// file that the test writes, with the labels given there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_scrapes_file_sd_targets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        // Bounded: enough scrapes for the test, then stop.
        for _ in 0..200 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            read_request(&mut stream).await;
            let body = "# TYPE demo_requests_total counter\ndemo_requests_total 42\n";
            let _ = stream
                .write_all(
                    http("200 OK", "text/plain; version=0.0.4", "", body)
                        .unwrap_or_default()
                        .as_bytes(),
                )
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let targets_dir = tempfile::tempdir().unwrap();
    let targets_file = targets_dir.path().join("pods.json");
    let group = FileSdGroup {
        targets: vec![target],
        labels: [
            ("namespace", NS),
            ("pod", "api-7d9f8c6b5-x2k9q"),
            ("rollouts_redblack_io_pod_template_hash", "7d9f8c6b5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    };
    write_file_sd_targets(&targets_file, &[group]).unwrap();
    let prometheus = PrometheusProcess::start_with(PrometheusOptions {
        scrape_configs: Some(file_sd_scrape_config("pods", &targets_file)),
        scrape_interval: Duration::from_secs(1),
        ..PrometheusOptions::default()
    })
    .unwrap();
    let source = PrometheusSource::new(prometheus.url(), Duration::from_secs(5), 1).unwrap();
    let canary = Scope::for_replica_set(NS, CANARY_RS, "7d9f8c6b5", "canary");
    let query = QueryTemplate::parse(
        r#"demo_requests_total{namespace="${namespace}", pod=~"${podRegex}", rollouts_redblack_io_pod_template_hash="${revision}"}"#,
    )
    .unwrap()
    .render(&canary, Duration::from_secs(60))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = source.query_instant(&query, Utc::now()).await.unwrap();
        if samples.values() == vec![42.0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape within 30s:\n{}",
            prometheus.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.abort();
}

#[test]
fn invalid_url_is_rejected_up_front() {
    let err = PrometheusSource::new("not a url", Duration::from_secs(1), 0).unwrap_err();
    assert!(matches!(err, SourceError::InvalidUrl { .. }), "{err:?}");
}
