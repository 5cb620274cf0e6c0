//! Metric endpoints, safely (issue 19):
//!
//! * A REAL Prometheus started with `--web.config.file` (TLS with a CA this
//!   test generates with rcgen, basic auth with a bcrypt hash): an analysis
//!   with the right Secret passes, a wrong password is `Error` naming the
//!   401, a wrong CA is `Error` naming the certificate problem, and
//!   `insecureSkipVerify` passes with the `InsecureEndpoint` condition, a
//!   `serverName` the certificate does not name fails, a missing Secret key
//!   is named.
//! * An endpoint the allow-list refuses: `Error` naming the URL and the
//!   flag, and a listener at that URL receives no connection.
//! * Hostile endpoints (local listeners): a 10 MB non-JSON body, a body
//!   beyond the 16 MiB cap, a huge JSON error, one that never answers —
//!   bounded messages without the body, and a timeout.
//!
//! The metric is a constant-time PromQL expression (`vector(...)` of
//! `time()`), the same for both scopes: no data has to be stored, so the
//! test stays fast.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use redblack::analysis::controller::{AnalysisController, AnalysisControllerConfig, Limits};
use redblack::analysis::endpoint::{Auth, EndpointConfig, SecretValue, TlsSettings};
use redblack::analysis::prometheus::{MAX_MESSAGE, PrometheusSource};
use redblack::analysis::source::{MetricSource, SourceError};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase, crd};
use redblack_sandbox::testing::prometheus::{PrometheusOptions, PrometheusProcess};
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const NS: &str = "shop";
const USER: &str = "redblack";
const PASSWORD: &str = "correct horse battery staple";
/// The same series for both scopes: identical evidence passes.
const QUERY: &str = "vector(0.1 + (time() % 7) / 100)";
const DEADLINE: Duration = Duration::from_secs(60);

/// A CA and a server certificate for 127.0.0.1 it signed, as PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A Prometheus behind TLS (`pki`'s server certificate) and basic auth.
fn secured_prometheus(pki: &Pki) -> (PrometheusProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &pki.cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &pki.key).unwrap();
    // Cost 4, the least bcrypt allows: Prometheus checks it on every request.
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {USER}: '{hash}'\n",
        dir.path().join("tls.crt").display(),
        dir.path().join("tls.key").display(),
    );
    let prometheus = PrometheusProcess::start_with(PrometheusOptions {
        web_config: Some(web),
        ..PrometheusOptions::default()
    })
    .expect("prometheus starts");
    assert!(
        prometheus.url().starts_with("https://"),
        "{}",
        prometheus.url()
    );
    (prometheus, dir)
}

/// Waits until the secured Prometheus answers a query (it listens before it is ready).
async fn wait_queryable(url: &str, ca: &str) {
    let endpoint = EndpointConfig {
        url: url.to_owned(),
        tls: TlsSettings {
            ca_pem: Some(SecretValue(ca.as_bytes().to_vec())),
            ..TlsSettings::default()
        },
        auth: Auth::Basic {
            username: USER.to_owned(),
            password: SecretValue(PASSWORD.as_bytes().to_vec()),
        },
        headers: Vec::new(),
    };
    let source = PrometheusSource::for_endpoint(&endpoint, Duration::from_secs(2), 0, 1).unwrap();
    let started = Instant::now();
    loop {
        match source.query_instant("vector(1)", Utc::now()).await {
            Ok(samples) if samples.len() == 1 => return,
            other => assert!(
                started.elapsed() < DEADLINE,
                "secured Prometheus never answered: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sandbox() -> (Sandbox, Client) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = sandbox.client().unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd())
        .await
        .unwrap();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    while api.list(&Default::default()).await.is_err() {
        assert!(started.elapsed() < DEADLINE, "CRD never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (sandbox, client)
}

/// The controller, stopped when the returned sender is dropped or fired.
fn start_controller(client: &Client, config: AnalysisControllerConfig) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let controller = AnalysisController::new(client.clone(), config);
    tokio::spawn(controller.run(async move {
        let _ = stopped.await;
    }));
    stop
}

fn config() -> AnalysisControllerConfig {
    AnalysisControllerConfig {
        query_timeout: Duration::from_secs(5),
        query_retries: 0,
        limits: Limits {
            max_source_attempts: 2,
            retry_backoff: Duration::from_millis(200),
            max_retry_backoff: Duration::from_millis(500),
            ..Limits::default()
        },
        error_requeue: Duration::from_millis(500),
        ..AnalysisControllerConfig::default()
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A retrospective analysis of one 10-minute interval (60 steps) ending a minute ago.
fn analysis(name: &str, prometheus: Value) -> CanaryAnalysis {
    let to = Utc::now() - TimeDelta::minutes(1);
    let from = to - TimeDelta::minutes(10);
    serde_json::from_value(json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "prometheus": prometheus,
            "control": {"replicaSet": "base-1"},
            "experiment": {"replicaSet": "canary-1"},
            "startTime": rfc3339(from),
            "endTime": rfc3339(to),
            "interval": "10m",
            "step": "10s",
            "metrics": [{"name": "latency", "direction": "increase", "query": QUERY}]
        }
    }))
    .expect("analysis")
}

async fn wait_terminal(api: &Api<CanaryAnalysis>, name: &str) -> CanaryAnalysis {
    let started = Instant::now();
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
            started.elapsed() < DEADLINE,
            "{name}: no verdict in {DEADLINE:?}: {:#?}",
            api.get(name).await.ok().and_then(|c| c.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase_and_message(ca: &CanaryAnalysis) -> (CanaryAnalysisPhase, String) {
    let s = ca.status.clone().unwrap_or_default();
    (
        s.phase.unwrap_or(CanaryAnalysisPhase::Pending),
        s.message.unwrap_or_default(),
    )
}

async fn secret(client: &Client, name: &str, data: &[(&str, &str)]) {
    let string_data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "stringData": string_data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
}

#[tokio::test]
async fn tls_and_basic_auth_against_a_real_prometheus() {
    let started = Instant::now();
    let good = pki("redblack test CA");
    let other = pki("another CA");
    let (prometheus, _certs) = secured_prometheus(&good);
    let url = prometheus.url().to_owned();
    wait_queryable(&url, &good.ca).await;
    let (_sandbox, client) = sandbox().await;
    secret(
        &client,
        "prom",
        &[
            ("ca.crt", &good.ca),
            ("password", &format!("{PASSWORD}\n")),
            ("wrong-password", "hunter2"),
        ],
    )
    .await;
    secret(&client, "other-ca", &[("ca.crt", &other.ca)]).await;
    let _stop = start_controller(
        &client,
        AnalysisControllerConfig {
            allowed_endpoints: vec![url.clone()],
            ..config()
        },
    );

    let endpoint = |ca: (&str, &str), password_key: &str, insecure: bool| {
        json!({
            "url": url,
            "tls": {"caSecretRef": {"name": ca.0, "key": ca.1}, "insecureSkipVerify": insecure},
            "basicAuth": {"username": USER, "passwordSecretRef": {"name": "prom", "key": password_key}}
        })
    };
    let cases = [
        ("right", endpoint(("prom", "ca.crt"), "password", false)),
        (
            "wrong-password",
            endpoint(("prom", "ca.crt"), "wrong-password", false),
        ),
        (
            "wrong-ca",
            endpoint(("other-ca", "ca.crt"), "password", false),
        ),
        (
            "insecure",
            endpoint(("other-ca", "ca.crt"), "password", true),
        ),
        ("missing-key", endpoint(("prom", "ca.crt"), "nope", false)),
        ("wrong-name", {
            let mut e = endpoint(("prom", "ca.crt"), "password", false);
            e["tls"]["serverName"] = json!("prometheus.invalid");
            e
        }),
    ];
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), NS);
    for (name, prom) in &cases {
        api.create(&PostParams::default(), &analysis(name, prom.clone()))
            .await
            .expect("create");
    }

    let right = wait_terminal(&api, "right").await;
    let (phase, message) = phase_and_message(&right);
    assert_eq!(phase, CanaryAnalysisPhase::Passed, "{message}");
    assert!(
        !right
            .status
            .unwrap_or_default()
            .conditions
            .iter()
            .any(|c| c.type_ == "InsecureEndpoint")
    );

    let (phase, message) = phase_and_message(&wait_terminal(&api, "wrong-password").await);
    eprintln!("wrong-password: {message}");
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(message.contains("HTTP 401: Unauthorized"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let (phase, message) = phase_and_message(&wait_terminal(&api, "wrong-ca").await);
    eprintln!("wrong-ca: {message}");
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(
        message.contains("TLS failure") && message.contains("certificate"),
        "{message}"
    );

    let insecure = wait_terminal(&api, "insecure").await;
    let (phase, message) = phase_and_message(&insecure);
    assert_eq!(phase, CanaryAnalysisPhase::Passed, "{message}");
    let condition = insecure
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "InsecureEndpoint")
        .expect("an InsecureEndpoint condition");
    assert_eq!(condition.status, "True");

    let (phase, message) = phase_and_message(&wait_terminal(&api, "missing-key").await);
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(
        message.contains("Secret shop/prom has no key \"nope\""),
        "{message}"
    );
    // serverName is what the certificate is checked against.
    let (phase, message) = phase_and_message(&wait_terminal(&api, "wrong-name").await);
    eprintln!("wrong-name: {message}");
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(message.contains("TLS failure"), "{message}");
    eprintln!("took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_refused_endpoint_gets_no_request() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let refused = format!("http://{}", listener.local_addr().unwrap());
    let (_sandbox, client) = sandbox().await;
    // The default endpoint is allowed; the listener's port is not.
    let _stop = start_controller(
        &client,
        AnalysisControllerConfig {
            default_prometheus_url: Some("http://127.0.0.1:9".into()),
            allowed_endpoints: vec!["http://127.0.0.1:10".into()],
            ..config()
        },
    );
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), NS);
    api.create(
        &PostParams::default(),
        &analysis("refused", json!({"url": refused})),
    )
    .await
    .unwrap();
    let ca = wait_terminal(&api, "refused").await;
    let (phase, message) = phase_and_message(&ca);
    assert_eq!(phase, CanaryAnalysisPhase::Error, "{message}");
    assert!(message.contains(&format!("{refused}/")), "{message}");
    assert!(message.contains("--allowed-metric-endpoint"), "{message}");
    assert!(message.contains("prometheus.allowedEndpoints"), "{message}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the refused endpoint was contacted: {other:?}"),
    }
}

/// How a hostile endpoint answers every request.
#[derive(Clone)]
enum Answer {
    /// Status line, then `body`; `Content-Length` only if `length`.
    Body {
        status: &'static str,
        body: Vec<u8>,
        length: bool,
    },
    /// Reads the request and never answers.
    Never,
}

/// A local HTTP endpoint answering `answer`; its base URL.
async fn hostile(answer: Answer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                read_request(&mut stream).await;
                match answer {
                    Answer::Never => {
                        // Hold the connection open, silent.
                        let _ = stream.read(&mut [0u8; 1]).await;
                        std::future::pending::<()>().await;
                    }
                    Answer::Body {
                        status,
                        body,
                        length,
                    } => {
                        let mut head = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nConnection: close\r\n"
                        );
                        if length {
                            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                        }
                        head.push_str("\r\n");
                        // The client may stop reading: errors are expected.
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(&body).await;
                        let _ = stream.shutdown().await;
                    }
                }
            });
        }
    });
    url
}

/// Reads one request: the head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// 10 MB of HTML-ish text with a marker that must never reach a message.
fn junk(bytes: usize) -> Vec<u8> {
    let line = b"<p>SECRET-INTERNAL-PAGE lorem ipsum dolor sit amet</p>\n";
    line.iter().copied().cycle().take(bytes).collect()
}

async fn query(url: &str, timeout: Duration) -> SourceError {
    let source = PrometheusSource::new(url, timeout, 0).unwrap();
    let started = Instant::now();
    let result = source.query_instant("up", Utc::now()).await;
    let error = result.expect_err("a hostile endpoint gives no samples");
    eprintln!("{url}: {error} after {:?}", started.elapsed());
    error
}

fn assert_bounded(error: &SourceError) {
    let text = error.to_string();
    assert!(!text.contains("SECRET-INTERNAL-PAGE"), "{text}");
    assert!(!text.contains("lorem"), "{text}");
    assert!(text.chars().count() < MAX_MESSAGE + 200, "{text}");
}

#[tokio::test]
async fn a_10_mb_non_json_answer_is_refused_without_its_body() {
    let url = hostile(Answer::Body {
        status: "200 OK",
        body: junk(10_000_000),
        length: true,
    })
    .await;
    let error = query(&url, Duration::from_secs(20)).await;
    assert!(
        matches!(error, SourceError::InvalidResponse { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("not a Prometheus API answer"),
        "{error}"
    );
    assert_bounded(&error);
}

#[tokio::test]
async fn an_answer_beyond_the_cap_is_not_read() {
    // No Content-Length: the cap is met while streaming.
    let url = hostile(Answer::Body {
        status: "200 OK",
        body: junk(20 * 1024 * 1024),
        length: false,
    })
    .await;
    let error = query(&url, Duration::from_secs(20)).await;
    assert!(error.to_string().contains("larger than 16 MiB"), "{error}");
    assert_bounded(&error);
}

#[tokio::test]
async fn an_error_page_is_reduced_to_its_status_line() {
    let url = hostile(Answer::Body {
        status: "403 Forbidden",
        body: junk(10_000_000),
        length: true,
    })
    .await;
    let error = query(&url, Duration::from_secs(20)).await;
    assert_eq!(
        error,
        SourceError::Server {
            status: 403,
            message: "Forbidden".into()
        }
    );
}

#[tokio::test]
async fn a_prometheus_error_text_is_bounded() {
    let long = "x".repeat(5_000);
    let body = serde_json::to_vec(&json!({
        "status": "error", "errorType": "execution", "error": long
    }))
    .unwrap();
    let url = hostile(Answer::Body {
        status: "422 Unprocessable Entity",
        body,
        length: true,
    })
    .await;
    let error = query(&url, Duration::from_secs(20)).await;
    let SourceError::Server { status, message } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 422);
    assert!(message.starts_with("execution: xxx"), "{message}");
    assert_eq!(
        message.chars().count(),
        MAX_MESSAGE + 1,
        "cut and marked with …"
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out() {
    let url = hostile(Answer::Never).await;
    let started = Instant::now();
    let error = query(&url, Duration::from_millis(500)).await;
    assert!(matches!(error, SourceError::Timeout(_)), "{error}");
    // Well under the deadline even on a busy machine; far from "forever".
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
