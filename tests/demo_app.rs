//! The demo app and load generator, run in-process on 127.0.0.1 (and the
//! binary for start-up behaviour). Every test bounds its request count and time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use redblack_demo::load::LATE_GRACE;
use redblack_demo::{DemoAppConfig, DemoAppError, LoadConfig, run_load, serve_until};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct App {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DemoAppError>>,
}

impl App {
    async fn start(cfg: DemoAppConfig) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve_until(cfg, listener, async {
            let _ = rx.await;
        }));
        App {
            base,
            stop: Some(tx),
            task,
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        // DEMO_SHUTDOWN_DELAY (1 s by default) and then the drain.
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("graceful shutdown within 20s")
            .unwrap()
            .unwrap();
    }
}

fn config(version: &str) -> DemoAppConfig {
    DemoAppConfig {
        port: 0,
        version: version.to_owned(),
        ..DemoAppConfig::default()
    }
}

/// The value of one exact series (`name{labels}`) in OpenMetrics text.
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name_and_labels} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn bucket(text: &str, version: &str, le: &str) -> f64 {
    series(
        text,
        &format!("http_request_duration_seconds_bucket{{le=\"{le}\",version=\"{version}\"}}"),
    )
}

/// Sends `n` GETs to `/` with `concurrency` in flight; returns status counts.
async fn hammer(base: &str, n: usize, concurrency: usize) -> BTreeMap<u16, u64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/");
    let codes: Vec<u16> = futures::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let resp = client.get(url).send().await.unwrap();
                let code = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["version"], "v-err");
                code
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut counts = BTreeMap::new();
    for c in codes {
        *counts.entry(c).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_is_binomial_and_metrics_match_the_client_exactly() {
    const N: usize = 2000;
    const P: f64 = 0.1;
    let app = App::start(DemoAppConfig {
        error_rate: P,
        ..config("v-err")
    })
    .await;
    let counts = hammer(&app.base, N, 16).await;
    let ok = counts.get(&200).copied().unwrap_or(0);
    let failed = counts.get(&500).copied().unwrap_or(0);
    assert_eq!(
        ok + failed,
        N as u64,
        "only 200 and 500 expected: {counts:?}"
    );

    // 4 sigma of Binomial(N, P): a false alarm about once in 16,000 runs.
    let sigma = (P * (1.0 - P) / N as f64).sqrt();
    let observed = failed as f64 / N as f64;
    assert!(
        (observed - P).abs() <= 4.0 * sigma,
        "5xx fraction {observed} is not within 4 sigma ({sigma}) of {P}"
    );

    let text = app.metrics().await;
    assert_eq!(
        series(&text, "http_requests_total{code=\"200\",version=\"v-err\"}"),
        ok as f64
    );
    assert_eq!(
        series(&text, "http_requests_total{code=\"500\",version=\"v-err\"}"),
        failed as f64
    );
    assert_eq!(
        series(
            &text,
            "http_request_duration_seconds_count{version=\"v-err\"}"
        ),
        N as f64
    );
    assert!(text.trim_end().ends_with("# EOF"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tail_and_mean_latency_show_in_the_histogram() {
    const N: usize = 200;
    const TAIL: f64 = 0.25;
    let app = App::start(DemoAppConfig {
        tail_latency_ms: 300.0,
        tail_fraction: TAIL,
        ..config("v-tail")
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/", app.base);
    // All at once: the tail sleeps overlap, so this takes ~0.3 s, not N × 0.3 s.
    let latencies: Vec<Duration> = futures::stream::iter(0..N)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let t = Instant::now();
                let resp = client.get(url).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
                t.elapsed()
            }
        })
        .buffer_unordered(N)
        .collect()
        .await;
    let text = app.metrics().await;
    let total = series(
        &text,
        "http_request_duration_seconds_count{version=\"v-tail\"}",
    );
    assert_eq!(total, N as f64);
    // Tail requests sleep ≥ 300 ms, so they and only they are above 0.25 s.
    let slow = total - bucket(&text, "v-tail", "0.25");
    let sigma = (TAIL * (1.0 - TAIL) / N as f64).sqrt();
    assert!(
        (slow / N as f64 - TAIL).abs() <= 4.0 * sigma,
        "{slow} of {N} in the tail"
    );
    assert!(slow >= 1.0);
    assert_eq!(
        bucket(&text, "v-tail", "0.5"),
        total,
        "nothing beyond 0.5 s"
    );
    // The client saw at least as many slow answers as the server counted.
    let client_slow = latencies
        .iter()
        .filter(|d| **d >= Duration::from_millis(300))
        .count();
    assert!(client_slow as f64 >= slow, "{client_slow} < {slow}");
    app.stop().await;

    // Mean added latency: Gamma with mean 20 ms, so sum/count ≈ 20 ms plus
    // timer granularity and scheduling on a busy machine.
    let app = App::start(DemoAppConfig {
        latency_ms: 20.0,
        ..config("v-mean")
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/", app.base);
    futures::stream::iter(0..N)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.unwrap().bytes().await.unwrap() }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    let text = app.metrics().await;
    let mean = series(
        &text,
        "http_request_duration_seconds_sum{version=\"v-mean\"}",
    ) / series(
        &text,
        "http_request_duration_seconds_count{version=\"v-mean\"}",
    );
    // Standard error of the mean: 10 ms / sqrt(200) ≈ 0.7 ms; 17 ms is > 4 SE
    // below, and sleeps are never shorter than asked.
    assert!((0.017..0.080).contains(&mean), "mean latency {mean}s");
    app.stop().await;
}

#[tokio::test]
async fn readiness_turns_200_after_ready_after() {
    let ready_after = Duration::from_millis(700);
    let started = Instant::now();
    let app = App::start(DemoAppConfig {
        ready_after,
        ..config("v-ready")
    })
    .await;
    let get = |path: &'static str| {
        let url = format!("{}{path}", app.base);
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/healthz").await, 200, "alive while warming up");
    assert_eq!(get("/readyz").await, 503);
    let deadline = started + Duration::from_secs(10);
    while get("/readyz").await != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started.elapsed() >= ready_after);
    app.stop().await;
}

#[tokio::test]
async fn fail_at_start_returns_an_error_without_serving() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = DemoAppConfig {
        fail_at_start: true,
        ..config("v-crash")
    };
    let res = serve_until(cfg, listener, std::future::pending()).await;
    assert!(matches!(res, Err(DemoAppError::FailAtStart)), "{res:?}");
}

#[test]
fn bad_env_values_are_rejected_naming_the_variable() {
    let err = DemoAppConfig::from_lookup(|k| (k == "DEMO_TAIL_FRACTION").then(|| "lots".into()))
        .unwrap_err();
    assert_eq!(err.var, "DEMO_TAIL_FRACTION");
    assert!(err.to_string().contains("DEMO_TAIL_FRACTION"));
}

/// The real binary: bad env → exit 1 naming the variable; DEMO_FAIL_AT_START
/// → exit 1; PORT=0 → prints the port it picked and serves there.
#[tokio::test]
async fn binary_start_up_behaviour() {
    let bin = env!("CARGO_BIN_EXE_redblack");
    let run = |envs: &[(&str, &str)]| {
        std::process::Command::new(bin)
            .arg("demo-app")
            .envs(envs.iter().copied())
            .env("PORT", "0")
            .output()
            .unwrap()
    };
    let out = run(&[("DEMO_ERROR_RATE", "ten percent")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEMO_ERROR_RATE"), "{stderr}");

    let out = run(&[("DEMO_FAIL_AT_START", "1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEMO_FAIL_AT_START"));

    let mut child = tokio::process::Command::new(bin)
        .arg("demo-app")
        .env("PORT", "0")
        .env("DEMO_VERSION", "v-bin")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = redblack_demo::parse_listening_line(&line).unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
    let base = format!("http://{addr}");
    let body: serde_json::Value = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"version": "v-bin"}));
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_delivers_the_requested_count_and_stops() {
    let app = App::start(config("v-load")).await;
    let cfg = LoadConfig {
        target: format!("{}/", app.base),
        rps: 200.0,
        duration: Duration::from_secs(2),
        concurrency: 8,
        timeout: Duration::from_secs(1),
    };
    let started = Instant::now();
    let mut reports = 0;
    let stats = run_load(cfg, |_| reports += 1).await.unwrap();
    let took = started.elapsed();
    assert_eq!(stats.planned, 400);
    assert_eq!(stats.sent, 400, "{stats}");
    assert_eq!(stats.ok, 400, "{stats}");
    assert_eq!(stats.completed(), 400);
    // The documented bound (duration + LATE_GRACE + timeout) plus slack for
    // the test's own start-up on a busy machine.
    let bound = Duration::from_secs(2) + LATE_GRACE + Duration::from_secs(1);
    assert!(took < bound + Duration::from_millis(250), "took {took:?}");
    // Paced, not a burst: the last request is due at 1.995 s.
    assert!(took >= Duration::from_millis(1990), "took {took:?}");
    assert!(reports >= 2, "progress called {reports} times");
    assert!(stats.p50().unwrap() <= stats.p99().unwrap());
    let text = app.metrics().await;
    assert_eq!(
        series(
            &text,
            "http_requests_total{code=\"200\",version=\"v-load\"}"
        ),
        400.0
    );
    app.stop().await;
}

/// A server that accepts connections and never answers: the generator still
/// ends by itself, by duration + timeout, counting transport errors.
#[tokio::test]
async fn load_generator_stops_by_itself_against_a_black_hole() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let cfg = LoadConfig {
        target: format!("http://{addr}/"),
        rps: 20.0,
        duration: Duration::from_millis(500),
        concurrency: 4,
        timeout: Duration::from_millis(300),
    };
    let started = Instant::now();
    let stats = run_load(cfg, |_| {}).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.ok, 0);
    assert!(stats.sent >= 1);
    assert_eq!(stats.transport_errors, stats.sent, "{stats}");
    hole.abort();
}

#[tokio::test]
async fn load_generator_rejects_bad_settings() {
    for cfg in [
        LoadConfig {
            target: "ftp://127.0.0.1/".into(),
            ..LoadConfig::default()
        },
        LoadConfig {
            target: "not a url".into(),
            ..LoadConfig::default()
        },
        LoadConfig {
            rps: 0.0,
            ..LoadConfig::default()
        },
        LoadConfig {
            concurrency: 0,
            ..LoadConfig::default()
        },
        LoadConfig {
            timeout: Duration::MAX,
            ..LoadConfig::default()
        },
        LoadConfig {
            rps: 0.5,
            duration: Duration::from_secs(1),
            ..LoadConfig::default()
        },
    ] {
        assert!(run_load(cfg, |_| {}).await.is_err());
    }
}

/// The real Prometheus server (Debian package, installed by hack/deps.sh)
/// scrapes the demo app and stores exactly the counts the client saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_the_demo_app() {
    let app = App::start(DemoAppConfig {
        error_rate: 0.2,
        ..config("v-prom")
    })
    .await;
    let mut seen = BTreeMap::<u16, u64>::new();
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let code = client
            .get(format!("{}/", app.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        *seen.entry(code).or_default() += 1;
    }

    let dir = tempfile::tempdir().unwrap();
    let target = app.base.trim_start_matches("http://");
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
         scrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: ['{target}']}}]\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    // Prometheus needs a fixed port: take a free one from the OS.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut prom = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus not found: run hack/deps.sh");

    let query = |q: &'static str| {
        let client = client.clone();
        async move {
            let resp = client
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = resp.json().await.ok()?;
            let result = body["data"]["result"].as_array()?.clone();
            Some(result)
        }
    };
    let value = |sample: &serde_json::Value| -> f64 {
        sample["value"][1].as_str().unwrap().parse().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus never stored the counters"
        );
        if let Some(r) = query("http_requests_total{version=\"v-prom\"}").await
            && r.len() == seen.len()
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for s in &series {
        let code: u16 = s["metric"]["code"].as_str().unwrap().parse().unwrap();
        assert_eq!(value(s), seen[&code] as f64, "code {code}");
    }
    let up = query("up{job=\"demo\"}").await.unwrap();
    assert_eq!(value(&up[0]), 1.0);
    let buckets = query("http_request_duration_seconds_bucket{version=\"v-prom\"}")
        .await
        .unwrap();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf");
    let rss = query("process_resident_memory_bytes").await.unwrap();
    assert!(value(&rss[0]) > 1e6);
    prom.kill().await.unwrap();
    app.stop().await;
}

/// The binary with `env`, serving on a port it picked; its stderr is piped.
async fn spawn_binary(env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redblack"))
        .arg("demo-app")
        .env("PORT", "0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the listening line")
        .unwrap()
        .unwrap();
    let addr = redblack_demo::parse_listening_line(&line).unwrap();
    (child, format!("http://{addr}"))
}

fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Polls `/metrics` until `http_requests_in_flight` is `n` (bounded).
async fn wait_in_flight(base: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/metrics")).await
            && let Ok(text) = r.text().await
            && series(&text, "http_requests_in_flight") == n
        {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} request(s) in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a kubelet's SIGTERM does to the real binary: the request in flight
/// finishes with 200, new connections are refused, the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let (mut child, base) = spawn_binary(&[
        ("DEMO_TAIL_FRACTION", "1"),
        ("DEMO_TAIL_LATENCY_MS", "1500"),
    ])
    .await;
    let slow = tokio::spawn({
        let url = format!("{base}/");
        async move {
            let r = reqwest::get(url).await.expect("an answer, not a reset");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    });
    wait_in_flight(&base, 1.0).await;
    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits once drained")
        .unwrap();
    let (code, body) = slow.await.unwrap();
    assert_eq!((code, body.as_str()), (200, r#"{"version":"v1"}"#));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "nothing listens after the drain"
    );
}

/// `DEMO_SHUTDOWN_DELAY`: after the stop signal `/readyz` answers 503 at once
/// but a request on a new connection is still served (a proxy that chose
/// this pod an instant before its deletion must not meet a closed port); once
/// the delay is over the listener closes and the app exits by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_stop_signal_the_app_serves_for_the_shutdown_delay_then_closes() {
    let app = App::start(DemoAppConfig {
        // Long enough that the checks below surely run inside the delay.
        shutdown_delay: Duration::from_secs(3600),
        ..config("v-delay")
    })
    .await;
    let App {
        base,
        mut stop,
        task,
    } = app;
    let _ = stop.take().unwrap().send(());
    // Each request on its own connection, as a proxy's first one would be.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = fresh().get(format!("{base}/readyz")).send().await.unwrap();
        if ready.status().as_u16() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let work = fresh().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(work.status().as_u16(), 200, "served during the delay");
    assert!(!task.is_finished(), "still running during the delay");
    task.abort();

    // A short delay ends by itself: the app drains and returns Ok.
    let app = App::start(DemoAppConfig {
        shutdown_delay: Duration::from_millis(200),
        ..config("v-short-delay")
    })
    .await;
    let base = app.base.clone();
    app.stop().await;
    assert!(
        fresh().get(format!("{base}/healthz")).send().await.is_err(),
        "nothing listens once the delay and the drain are over"
    );
}

/// `DEMO_SHUTDOWN_TIMEOUT` bounds the drain: a request still running then
/// makes the app give up with an error (the binary exits 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_by_the_shutdown_timeout() {
    let app = App::start(DemoAppConfig {
        tail_fraction: 1.0,
        tail_latency_ms: 600_000.0,
        shutdown_timeout: Duration::from_millis(300),
        ..config("v-stuck")
    })
    .await;
    let url = format!("{}/", app.base);
    let stuck = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    wait_in_flight(&app.base, 1.0).await;
    let App { mut stop, task, .. } = app;
    let _ = stop.take().unwrap().send(());
    let res = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("gives up by itself")
        .unwrap();
    assert!(
        matches!(res, Err(DemoAppError::ShutdownTimeout(d)) if d == Duration::from_millis(300)),
        "{res:?}"
    );
    stuck.abort();
}

/// `DEMO_IGNORE_SIGTERM`: SIGTERM is logged and changes nothing; the app
/// keeps serving and ready until SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_sigterm_keeps_serving_until_sigkill() {
    let (mut child, base) =
        spawn_binary(&[("DEMO_IGNORE_SIGTERM", "1"), ("RUST_LOG", "info")]).await;
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    signal(&child, "-TERM");
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("SIGTERM ignored") {
                return;
            }
        }
        panic!("stderr ended without the SIGTERM line");
    })
    .await
    .expect("the SIGTERM line on stderr");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let work = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(work.status().as_u16(), 200);
    signal(&child, "-KILL");
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "killed by a signal: {status:?}");
}
