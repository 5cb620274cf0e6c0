//! `kubectl wait --for=condition=Paused` — as CI pipelines migrating from
//! Argo Rollouts use it — with the real kubectl against the sandbox: it
//! returns when the Rollout waits for a person (a manual promote, then
//! `spec.paused`), and the condition's reason says which gate.

mod support;
mod tools;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use redblack::api::Phase;
use serde_json::json;
use support::*;
use tools::tool;

/// The real kubectl (`.cache/tools/bin`, else PATH) as the sandbox's admin.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl wait` in a blocking thread (it runs for seconds).
async fn wait(kubeconfig: &Path, args: Vec<String>) -> Output {
    wait_owned(kubeconfig.to_owned(), args).await
}

async fn wait_owned(kc: std::path::PathBuf, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&kc, &args)
    })
    .await
    .expect("kubectl thread")
}

fn paused_reason(kubeconfig: &Path) -> String {
    let out = kubectl(
        kubeconfig,
        &[
            "get",
            "rollouts.redblack.io",
            "web",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Paused")].status}/{.status.conditions[?(@.type=="Paused")].reason}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_for_condition_paused_returns_at_each_person_gate() {
    let env = Env::start(Duration::from_millis(200)).await;
    env.create_service("web", "web").await;
    let manual = set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/promotion",
        json!("Manual"),
    );
    env.create_rollout(manual).await;
    let running = env.start_controller();
    env.wait_phase("web", Phase::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kc).unwrap();

    // Healthy: no Paused condition, so a short wait times out (nothing can
    // pause this Rollout by itself: the failure is not a race).
    let out = wait(
        &kc,
        [
            "wait",
            "--for=condition=Paused",
            "rollouts.redblack.io/web",
            "--timeout=1s",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(
        !out.status.success(),
        "Healthy is not Paused: {}",
        text(&out)
    );

    // A new revision under manual promotion: the wait, started before the
    // fleet is up, returns once it awaits the promote.
    let long_wait = [
        "wait",
        "--for=condition=Paused",
        "rollouts.redblack.io/web",
        "--timeout=90s",
    ]
    .map(String::from)
    .to_vec();
    let waiting = tokio::spawn(wait_owned(kc.clone(), long_wait.clone()));
    env.set_image("web", "demo:2").await;
    let out = waiting.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("condition met"), "{}", text(&out));
    assert_eq!(paused_reason(&kc), "True/AwaitingPromotion");
    assert_eq!(
        env.get("web").await.status.unwrap().phase,
        Some(Phase::Paused)
    );

    // Promoted: Ready, and the Paused condition is gone.
    let out = kubectl(
        &kc,
        &[
            "annotate",
            "rollouts.redblack.io",
            "web",
            &format!("redblack.io/promote={}", hash_of(&env.get("web").await)),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = wait(
        &kc,
        [
            "wait",
            "--for=condition=Ready",
            "rollouts.redblack.io/web",
            "--timeout=90s",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(paused_reason(&kc), "/");

    // spec.paused through kubectl: the reason says so.
    let out = kubectl(
        &kc,
        &[
            "patch",
            "rollouts.redblack.io",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = wait(&kc, long_wait).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(paused_reason(&kc), "True/SpecPaused");
    running.stop().await.unwrap();
}
