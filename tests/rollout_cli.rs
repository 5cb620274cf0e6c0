//! The CLI verbs end to end: the real `redblack` and `kubectl-redblack`
//! binaries (and kubectl's plugin mechanism) against the sandbox through a
//! kubeconfig, and the operator's HTTP endpoints.

mod support;

use std::process::Output;
use std::time::Duration;

use redblack::api::Phase;
use redblack::cli::controller::{ControllerConfig, run_controller};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn run(bin: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const REDBLACK: &str = env!("CARGO_BIN_EXE_redblack");
const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-redblack");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_work_through_a_kubeconfig() {
    let env = Env::start(Duration::from_millis(200)).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let running = env.start_controller();
    let r = env.wait_phase("web", Phase::Healthy).await;
    let hash = hash_of(&r);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kubeconfig).unwrap();
    let kc = kubeconfig.to_str().unwrap();

    let out = run(REDBLACK, &["list", "--kubeconfig", kc]).await;
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    assert!(
        listing.contains("NAME") && listing.contains("PHASE"),
        "{listing}"
    );
    assert!(
        listing.contains("web") && listing.contains("Healthy"),
        "{listing}"
    );
    assert!(listing.contains(&hash), "{listing}");

    let out = run(
        REDBLACK,
        &["status", "web", "-n", "default", "--kubeconfig", kc],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let tree = text(&out);
    for expected in [
        "Rollout default/web",
        "phase: Healthy",
        &format!("active Service web → revision 1 ({hash})"),
        "revision 1",
        "● ACTIVE",
        "2/2 ready",
        "Ready",
        "RolloutHealthy",
        "Events",
        "SwitchedTraffic",
    ] {
        assert!(tree.contains(expected), "{expected:?} in\n{tree}");
    }

    // Refusals are errors with a reason, exit code 1.
    let out = run(REDBLACK, &["promote", "web", "--kubeconfig", kc]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("already live"), "{}", text(&out));
    let out = run(REDBLACK, &["status", "nope", "--kubeconfig", kc]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not found"), "{}", text(&out));

    // The plugin binary has the same verbs.
    let out = run(PLUGIN, &["pause", "web", "--kubeconfig", kc]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.get("web").await.spec.paused);
    env.wait_phase("web", Phase::Paused).await;

    // kubectl finds it on the PATH: `kubectl redblack resume web`.
    let bin_dir = std::path::Path::new(PLUGIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = tokio::process::Command::new("kubectl")
        .args(["redblack", "resume", "web", "--kubeconfig", kc])
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .output()
        .await;
    match kubectl {
        Ok(out) => {
            assert!(out.status.success(), "{}", text(&out));
            assert!(text(&out).contains("resumed"), "{}", text(&out));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("kubectl is not installed; resuming with the plugin binary");
            let out = run(PLUGIN, &["resume", "web", "--kubeconfig", kc]).await;
            assert!(out.status.success(), "{}", text(&out));
        }
        Err(e) => panic!("kubectl: {e}"),
    }
    assert!(!env.get("web").await.spec.paused);
    env.wait_phase("web", Phase::Healthy).await;

    // undo through the binary.
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    env.wait_selected("web", &h2).await;
    let out = run(
        REDBLACK,
        &["undo", "web", "--to-revision", "1", "--kubeconfig", kc],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    env.wait_selected("web", &hash).await;
    running.stop().await.unwrap();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buf = String::new();
    stream.read_to_string(&mut buf).await.ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_endpoints() {
    let env = Env::start(Duration::from_millis(200)).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 1)).await;
    let health = free_addr();
    let metrics = free_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = ControllerConfig {
        health_addr: Some(health),
        metrics_addr: Some(metrics),
        ..ControllerConfig::default()
    };
    let task = tokio::spawn(run_controller(env.client.clone(), cfg, async move {
        let _ = rx.await;
    }));
    let (code, body) = eventually("/healthz answers", || http_get(health, "/healthz")).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    eventually("/readyz turns ready", || async {
        (http_get(health, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    env.wait_phase("web", Phase::Healthy).await;
    let (code, body) = http_get(metrics, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("redblack_reconciles_total{controller=\"rollout\"}"),
        "{body}"
    );
    assert!(body.contains("redblack_api_writes_total"), "{body}");
    let _ = tx.send(());
    task.await.unwrap().expect("graceful shutdown");
    assert!(
        http_get(health, "/healthz").await.is_none(),
        "stopped serving"
    );
}

/// deploy/examples/ is what a newcomer applies: the Services and Rollout, then
/// v2, with `kubectl apply` against the sandbox, demo-app pods running as real
/// processes. (v2's canary, judged from Prometheus, is `make demo`'s story:
/// tests/demo_script.rs; here it is skipped with `redblack promote`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_deploy_and_update_with_kubectl() {
    use redblack_sandbox::SandboxConfig;
    use redblack_sandbox::controllers::process_runtime::ProcessConfig;
    let env = Env::start_with(SandboxConfig {
        pod_ready_after: Duration::from_millis(200),
        process: ProcessConfig {
            command: Some(REDBLACK.into()),
            ..ProcessConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kubeconfig).unwrap();
    let kc = kubeconfig.to_str().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
    let apply = |file: &'static str| {
        let path = format!("{examples}/{file}");
        let kc = kc.to_owned();
        async move {
            tokio::process::Command::new("kubectl")
                .args(["apply", "--kubeconfig", &kc, "-f", &path])
                .env_remove("KUBECONFIG")
                .output()
                .await
        }
    };
    match apply("services.yaml").await {
        Ok(out) => assert!(out.status.success(), "{}", text(&out)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("kubectl is not installed; skipping the examples test");
            return;
        }
        Err(e) => panic!("kubectl: {e}"),
    }
    let out = apply("rollout.yaml").await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let running = env.start_controller();
    let v1 = env.wait_phase("web", Phase::Healthy).await;
    let h1 = hash_of(&v1);
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    assert_eq!(
        env.selected("web-preview").await.as_deref(),
        Some(h1.as_str())
    );

    // v2 is canary-gated: its analysis comes from the CanaryAnalysisTemplate
    // web-latency-errors (analysis-template.yaml) and the operator's
    // Prometheus. Neither is here, so its canary waits with no traffic and
    // the Service stays on v1, until a human skips the analysis.
    let out = apply("rollout-v2.yaml").await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let target = hash_of(&env.get("web").await);
    assert_ne!(target, h1);
    eventually("the canary of v2 held for its missing template", || async {
        let st = env.get("web").await.status?;
        (st.current_revision.as_deref() == Some(target.as_str())
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "Progressing" && c.reason == "AnalysisTemplateNotFound"))
        .then_some(())
    })
    .await;
    assert_eq!(
        env.selected("web").await.as_deref(),
        Some(h1.as_str()),
        "no traffic to a canary that would not be judged"
    );
    let out = run(REDBLACK, &["promote", "web", "--kubeconfig", kc]).await;
    assert!(out.status.success(), "{}", text(&out));
    let h2 = eventually("v2 is live", || async {
        let h2 = hash_of(&env.get("web").await);
        (h2 != h1 && env.selected("web").await.as_deref() == Some(h2.as_str())).then_some(h2)
    })
    .await;
    let v2 = env.wait_phase("web", Phase::Healthy).await;
    assert_eq!(hash_of(&v2), h2);
    // The previous fleet stays warm (scaleDownDelay 5m).
    let rs1 = env.rs_for("web", &h1).await.unwrap();
    assert_eq!(rs1.spec.replicas, Some(3));
    running.stop().await.unwrap();
}

/// `redblack rollouts set image` (Argo's verb) through a kubeconfig: a
/// server-side apply of one container's image rolls out a new revision; the
/// other container, and every other field of the changed one, keep their
/// values and owners; an unknown container or a malformed pair is refused
/// without a write; `*=IMAGE` then sets every container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_applies_one_image_and_rolls_it_out() {
    let env = Env::start(Duration::from_millis(200)).await;
    env.create_service("web", "web").await;
    let manifest = set(
        rollout_json("web", "demo:1", 2),
        "/spec/template/spec/containers",
        serde_json::json!([
            {"name": "app", "image": "demo:1", "env": [{"name": "MODE", "value": "blue"}]},
            {"name": "side", "image": "side:1"}
        ]),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kubeconfig).unwrap();
    let kc = kubeconfig.to_str().unwrap();

    // Refusals: nothing is written (the generation stays).
    let before = env.get("web").await.metadata.generation;
    let out = run(
        REDBLACK,
        &[
            "rollouts",
            "set",
            "image",
            "web",
            "nope=x:1",
            "--kubeconfig",
            kc,
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no container \"nope\"") && text(&out).contains("app, side"),
        "{}",
        text(&out)
    );
    let out = run(
        REDBLACK,
        &["set", "image", "web", "app", "--kubeconfig", kc],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("CONTAINER=IMAGE"), "{}", text(&out));
    assert_eq!(env.get("web").await.metadata.generation, before);

    let out = run(
        REDBLACK,
        &[
            "rollouts",
            "set",
            "image",
            "web",
            "app=demo:2",
            "--kubeconfig",
            kc,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("app=demo:2"), "{}", text(&out));

    let rollout = env.get("web").await;
    let h2 = hash_of(&rollout);
    assert_ne!(h1, h2, "a new revision");
    let containers =
        serde_json::to_value(&rollout.spec.template.spec.as_ref().unwrap().containers).unwrap();
    assert_eq!(
        containers,
        serde_json::json!([
            {"name": "app", "image": "demo:2", "env": [{"name": "MODE", "value": "blue"}]},
            {"name": "side", "image": "side:1"}
        ])
    );
    // The CLI's manager owns the image it set, not the rest of the template.
    let cli = rollout
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some("redblack-cli"))
        .expect("redblack-cli manages a field");
    assert_eq!(cli.operation.as_deref(), Some("Apply"));
    let owned = serde_json::to_string(&cli.fields_v1).unwrap();
    assert!(owned.contains(r#"k:{\"name\":\"app\"}"#), "{owned}");
    assert!(owned.contains("f:image"), "{owned}");
    assert!(
        !owned.contains("f:env") && !owned.contains("side"),
        "{owned}"
    );

    env.wait_selected("web", &h2).await;
    env.wait_phase("web", Phase::Healthy).await;

    // `*=IMAGE` (Argo's form) sets every container: one new revision.
    let out = run(
        REDBLACK,
        &["set", "image", "web", "*=demo:3", "--kubeconfig", kc],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let rollout = env.get("web").await;
    let h3 = hash_of(&rollout);
    assert_ne!(h3, h2, "a new revision");
    let images: Vec<Option<String>> = rollout
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.image.clone())
        .collect();
    assert_eq!(
        images,
        [Some("demo:3".to_owned()), Some("demo:3".to_owned())]
    );
    env.wait_selected("web", &h3).await;
    env.wait_phase("web", Phase::Healthy).await;
    running.stop().await.unwrap();
}
