//! Gates against the in-process sandbox (docs/rollout.md, "Gates"): a smoke
//! Job (`redblack smoke`, run by the sandbox as a process) that fails keeps
//! the new revision from its canary; a good one lets it go on; a Job that
//! never finishes fails at its deadline; an HTTP gate at a refusing port
//! fails after its retries. Traffic never moves on an undecided or failed gate.

mod support;
mod tools;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use redblack::api::conditions::{self, find};
use redblack::api::{CanaryPhase, GatePhase, Phase, Rollout};
use redblack_sandbox::SandboxConfig;
use redblack_sandbox::controllers::process_runtime::ProcessConfig;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The real kubectl (`.cache/tools/bin`, else PATH) as the sandbox's admin.
fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(tools::tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl runs")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const FAST: Duration = Duration::from_millis(200);

async fn env_with_processes() -> Env {
    Env::start_with(SandboxConfig {
        pod_ready_after: FAST,
        process: ProcessConfig {
            command: Some(env!("CARGO_BIN_EXE_redblack").into()),
            restart_backoff: Duration::from_millis(200),
            ..ProcessConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

/// A port on 127.0.0.1 that refuses connections (bound, then released).
fn refusing_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A tiny HTTP server on 127.0.0.1 that answers every request 200 `ok`;
/// stopped when the task is aborted.
async fn answering_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, task)
}

fn smoke_gate(url: &str, at: &str) -> Value {
    json!({"name": "smoke", "at": at, "job": {
        "activeDeadlineSeconds": 60,
        "template": {"spec": {"containers": [{"name": "smoke", "image": "redblack/redblack",
            "args": ["smoke", "--url", url, "--requests", "3", "--timeout", "2s"]}]}}}})
}

fn canary_rollout(gates: Value) -> Value {
    let analysis = json!({"interval": "1m", "lifetime": "10m",
        "metrics": [{"name": "errors", "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]});
    let r = set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/canary",
        json!({"replicas": 1, "analysis": {"inline": analysis}}),
    );
    set(r, "/spec/strategy/redBlack/gates", gates)
}

/// Waits for the Stalled condition with `reason` on the current generation.
async fn wait_stalled(env: &Env, reason: &str) -> Rollout {
    eventually(&format!("Stalled {reason}"), || async {
        let r = env.rollouts().get("web").await.ok()?;
        let s = r.status.as_ref()?;
        let c = find(&s.conditions, conditions::STALLED)?;
        (c.reason == reason && s.observed_generation == r.metadata.generation).then_some(r)
    })
    .await
}

fn stalled_message(r: &Rollout) -> String {
    let s = r.status.as_ref().expect("status");
    find(&s.conditions, conditions::STALLED)
        .expect("Stalled")
        .message
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smoke_job_never_gets_a_canary_and_a_good_one_goes_on() {
    let env = env_with_processes().await;
    env.create_service("web", "web").await;
    let refused = format!("http://127.0.0.1:{}/", refusing_port());
    env.create_rollout(canary_rollout(json!([smoke_gate(
        &refused,
        "BeforeCanary"
    )])))
    .await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);

    // A build whose smoke tests fail: no canary traffic, ever.
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    // As a CI pipeline would wait for it, with the real kubectl.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kc).unwrap();
    let out = kubectl(
        &kc,
        &[
            "wait",
            "rollout/web",
            "--for=condition=Stalled",
            "--timeout=90s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let failed = wait_stalled(&env, "GateFailed").await;
    let msg = stalled_message(&failed);
    assert!(msg.contains("gate smoke failed"), "{msg}");
    assert!(msg.contains("BackoffLimitExceeded"), "{msg}");
    assert!(msg.contains("kubectl logs -n default job/web-"), "{msg}");
    let status = failed.status.clone().unwrap();
    let gate = &status.gates[0];
    assert_eq!(
        (gate.phase, gate.revision.as_str()),
        (GatePhase::Failed, h2.as_str())
    );
    let job_name = gate.job_name.clone().expect("job name");
    let canary = status.canary.clone().expect("canary record");
    assert_ne!(canary.phase, Some(CanaryPhase::Analysing));
    assert_eq!(canary.traffic_percent, 0);
    assert!(canary.analysis_start.is_none(), "no traffic was given");
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    env.wait_event_reasons(&failed, &["GateJobCreated", "GateFailed"])
        .await;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), NS);
    let job = jobs
        .get(&job_name)
        .await
        .expect("the Job is kept as evidence");
    assert_eq!(job.status.and_then(|s| s.failed), Some(1));

    // A good build: its smoke tests pass and it goes on to its canary.
    let (port, server) = answering_server().await;
    let good = format!("http://127.0.0.1:{port}/");
    env.patch(
        "web",
        json!({"spec": {
            "template": {"spec": {"containers": [{"name": "app", "image": "demo:3"}]}},
            "strategy": {"redBlack": {"gates": [smoke_gate(&good, "BeforeCanary")]}}}}),
    )
    .await;
    let h3 = hash_of(&env.get("web").await);
    let on = eventually("the canary of demo:3 is analysed", || async {
        let r = env.rollouts().get("web").await.ok()?;
        let s = r.status.clone()?;
        let c = s.canary.clone()?;
        (c.revision.as_deref() == Some(h3.as_str()) && c.phase == Some(CanaryPhase::Analysing))
            .then_some(s)
    })
    .await;
    let gate = on.gates.iter().find(|g| g.revision == h3).expect("record");
    assert_eq!(gate.phase, GatePhase::Passed);
    let listed = jobs.list(&ListParams::default()).await.expect("jobs");
    assert_eq!(listed.items.len(), 2, "one Job per revision");
    server.abort();
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_never_finishes_fails_at_its_deadline() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    // `busybox` is simulated: it runs and never exits.
    let gate = json!({"name": "hangs", "at": "BeforeSwitch", "job": {
        "activeDeadlineSeconds": 2,
        "template": {"spec": {"containers": [{"name": "t", "image": "busybox"}]}}}});
    env.create_rollout(set(
        rollout_json("web", "demo:1", 1),
        "/spec/strategy/redBlack/gates",
        json!([gate]),
    ))
    .await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    env.set_image("web", "demo:2").await;
    let failed = wait_stalled(&env, "GateFailed").await;
    let msg = stalled_message(&failed);
    assert!(msg.contains("gate hangs failed"), "{msg}");
    assert!(msg.contains("DeadlineExceeded"), "{msg}");
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_gate_at_a_refusing_port_fails_and_no_traffic_moves() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let gate = json!({"name": "health", "at": "BeforeSwitch", "http": {
        "url": format!("http://127.0.0.1:{}/healthz", refusing_port()),
        "retries": 1, "retryInterval": "1s", "timeoutSeconds": 2}});
    env.create_rollout(set(
        rollout_json("web", "demo:1", 1),
        "/spec/strategy/redBlack/gates",
        json!([gate]),
    ))
    .await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    env.set_image("web", "demo:2").await;
    // Held while undecided: no switch.
    eventually("the gate holds the revision", || async {
        let r = env.rollouts().get("web").await.ok()?;
        let s = r.status.as_ref()?;
        let c = find(&s.conditions, conditions::PROGRESSING)?;
        (c.reason == "GateRunning"
            || find(&s.conditions, conditions::STALLED).is_some_and(|c| c.reason == "GateFailed"))
        .then_some(())
    })
    .await;
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    let failed = wait_stalled(&env, "GateFailed").await;
    let msg = stalled_message(&failed);
    assert!(msg.contains("gate health failed"), "{msg}");
    assert!(msg.contains("attempt 2/2"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    running.stop().await.unwrap();
}

/// `prePromotionAnalysis` against the sandbox; the test plays the
/// CanaryAnalysis controller (as tests/rollout_controller.rs does) and writes
/// a Failed verdict through the status subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_promotion_analysis_never_switches() {
    use kube::ResourceExt;
    use kube::api::{Patch, PatchParams};
    use redblack::api::canary_analysis::CanaryAnalysis;
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let body = json!({"interval": "1m", "lifetime": "10m",
        "metrics": [{"name": "errors", "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]});
    env.create_rollout(set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/prePromotionAnalysis",
        json!({"inline": body}),
    ))
    .await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let analysis = eventually("the pre-promotion analysis is created", || async {
        let list = analyses.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|a| a.name_any().starts_with(&format!("web-{h2}-pre-")))
    })
    .await;
    let spec = serde_json::to_value(&analysis.spec).unwrap();
    assert_eq!(spec["experiment"]["revision"], h2);
    assert_eq!(spec["control"]["revision"], h1);
    assert_eq!(
        env.selected("web").await.as_deref(),
        Some(h1.as_str()),
        "held while undecided"
    );
    analyses
        .patch_status(
            &analysis.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Failed", "score": 12.0}})),
        )
        .await
        .expect("verdict written");
    let failed = wait_stalled(&env, "PrePromotionAnalysisFailed").await;
    let msg = stalled_message(&failed);
    assert!(msg.contains(&analysis.name_any()), "{msg}");
    assert_eq!(env.selected("web").await.as_deref(), Some(h1.as_str()));
    env.wait_event_reasons(&failed, &["PrePromotionAnalysisFailed"])
        .await;
    running.stop().await.unwrap();
}

/// An HTTP server on 127.0.0.1 answering every request with the status in
/// `answer` (the test changes it); stopped when the task is aborted.
async fn controlled_server(
    answer: std::sync::Arc<std::sync::atomic::AtomicU16>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let code = answer.load(std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    (port, task)
}

/// `at: AfterSwitch`: the gate judges the live revision while the previous
/// fleet is kept warm (even with `scaleDownDelay: 0s`); a failure switches
/// traffic back to it; a pass completes the rollout (Healthy) and the
/// previous fleet goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_switch_gate_that_fails_switches_back_and_one_that_passes_completes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let answer = Arc::new(AtomicU16::new(503));
    let (port, server) = controlled_server(answer.clone()).await;
    // Undecided for as long as the test needs: many retries, 1s apart.
    let gate = |retries: i32| {
        json!([{"name": "verify", "at": "AfterSwitch", "http": {
            "url": format!("http://127.0.0.1:{port}/healthz"),
            "retries": retries, "retryInterval": "1s", "timeoutSeconds": 2}}])
    };
    let r = set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/gates",
        gate(100),
    );
    env.create_rollout(set(
        r,
        "/spec/strategy/redBlack/scaleDownDelay",
        json!("0s"),
    ))
    .await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);

    // demo:2 is switched to; the gate answers 503: undecided, live, warm.
    let h2 = hash_of(&env.set_image("web", "demo:2").await);
    env.wait_selected("web", &h2).await;
    let held = eventually("the live revision waits for its gate", || async {
        let r = env.rollouts().get("web").await.ok()?;
        let s = r.status.as_ref()?;
        let c = find(&s.conditions, conditions::PROGRESSING)?;
        let g = s.gates.iter().find(|g| g.revision == h2)?;
        (c.reason == "GateRunning" && g.attempts >= 2).then_some(r)
    })
    .await;
    assert_eq!(
        held.status.as_ref().unwrap().phase,
        Some(Phase::Progressing)
    );
    let msg = find(
        &held.status.as_ref().unwrap().conditions,
        conditions::PROGRESSING,
    )
    .unwrap()
    .message
    .clone();
    assert!(msg.contains("is live and waits for gate verify"), "{msg}");
    let warm = env.rs_for("web", &h1).await.expect("the previous fleet");
    assert_eq!(warm.spec.replicas, Some(2), "kept warm");

    // The gate fails (its retries are used up): traffic goes back to demo:1.
    env.patch(
        "web",
        json!({"spec": {"strategy": {"redBlack": {"gates": gate(0)}}}}),
    )
    .await;
    env.wait_selected("web", &h1).await;
    let failed = wait_stalled(&env, "GateFailed").await;
    let msg = stalled_message(&failed);
    assert!(msg.contains("gate verify failed"), "{msg}");
    assert!(msg.contains("after the switch"), "{msg}");
    assert!(msg.contains("answered 503"), "{msg}");
    let abort = failed
        .status
        .as_ref()
        .unwrap()
        .abort
        .clone()
        .expect("abort");
    assert_eq!(abort.reason, redblack::api::AbortReason::GateFailed);
    assert_eq!(abort.revision, h2);
    env.wait_event_reasons(&failed, &["GateFailed", "SwitchedTraffic"])
        .await;

    // demo:3 passes its gate after the switch: Healthy, demo:1 goes.
    answer.store(200, Ordering::SeqCst);
    env.patch(
        "web",
        json!({"spec": {
            "template": {"spec": {"containers": [{"name": "app", "image": "demo:3"}]}},
            "strategy": {"redBlack": {"gates": gate(100)}}}}),
    )
    .await;
    let h3 = hash_of(&env.get("web").await);
    let healthy = eventually("demo:3 is Healthy after its gate", || async {
        let r = env.rollouts().get("web").await.ok()?;
        let s = r.status.as_ref()?;
        let passed = s
            .gates
            .iter()
            .any(|g| g.revision == h3 && g.phase == GatePhase::Passed);
        (passed && s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() == Some(&h3))
            .then_some(r)
    })
    .await;
    let g = &healthy.status.as_ref().unwrap().gates[0];
    assert_eq!(g.previous_revision.as_deref(), Some(h1.as_str()));
    env.wait_rs_size("web", &h1, 0).await;
    server.abort();
    running.stop().await.unwrap();
}
