//! `spec.workloadRef` end to end, with the real kubectl against the sandbox:
//! a Rollout that names a Deployment which does not exist yet says so and
//! moves nothing; once the Deployment is applied its template is rolled out,
//! `scaleDown: onsuccess` scales the Deployment to 0 once Healthy, and
//! `kubectl set image deployment/...` is a new revision. The CRD refuses a
//! Rollout with both a template and a workloadRef, and `progressively`.

mod support;
mod tools;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use redblack::api::{ConditionStatus, Phase, Rollout};
use serde_json::{Value, json};
use support::*;
use tools::tool;

/// The real kubectl (`.cache/tools/bin`, else PATH) as the sandbox's admin.
fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&Value>) -> Output {
    use std::io::Write;
    let mut child = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(doc) = stdin {
        input.write_all(doc.to_string().as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().expect("kubectl output")
}

/// The redblack binary, in a blocking thread.
async fn redblack(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_redblack"))
            .args(&args)
            .env_remove("KUBECONFIG")
            .output()
            .expect("redblack runs")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl apply -f -` in a blocking thread.
async fn apply(kc: &Path, doc: Value) -> Output {
    let kc = kc.to_owned();
    tokio::task::spawn_blocking(move || kubectl(&kc, &["apply", "-f", "-"], Some(&doc)))
        .await
        .unwrap()
}

fn rollout(scale_down: &str) -> Value {
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 2,
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-deploy",
                            "scaleDown": scale_down},
            "strategy": {"redBlack": {"activeService": "web", "scaleDownDelay": "30m"}}
        }
    })
}

fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web-deploy", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

/// The images of the ReplicaSet of `hash` owned by the Rollout.
async fn images_of(env: &Env, rollout: &Rollout, hash: &str) -> Vec<String> {
    env.owned(rollout)
        .await
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(redblack::api::POD_TEMPLATE_HASH_LABEL))
                == Some(&hash.to_owned())
        })
        .flat_map(|rs| rs.spec.template.and_then(|t| t.spec))
        .flat_map(|p| p.containers)
        .filter_map(|c| c.image)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_takes_its_template_from_a_deployment() {
    let env = Env::start(Duration::from_millis(200)).await;
    env.create_service("web", "web").await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kc).unwrap();
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), NS);

    // The CRD: exactly one of template and workloadRef; no `progressively`.
    let both = set(
        rollout("never"),
        "/spec/template",
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "app", "image": "demo:1"}]}}),
    );
    let out = apply(&kc, both).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("exactly one of template and workloadRef"),
        "{}",
        text(&out)
    );
    let out = apply(&kc, rollout("progressively")).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("progressively is not supported"),
        "{}",
        text(&out)
    );

    // The Deployment does not exist yet: a condition naming it, nothing moves.
    let out = apply(&kc, rollout("onsuccess")).await;
    assert!(out.status.success(), "{}", text(&out));
    let running = env.start_controller();
    let missing = eventually("the Rollout says its Deployment is missing", || async {
        let r = env.get("web").await;
        let ready = r
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.reason == "WorkloadMissing").then_some((r, ready))
    })
    .await;
    let (r, ready) = missing;
    assert_eq!(ready.status, ConditionStatus::False);
    assert!(
        ready.message.contains("Deployment web-deploy"),
        "{}",
        ready.message
    );
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Degraded));
    assert!(
        env.owned(&r).await.is_empty(),
        "no fleet without a template"
    );
    assert_eq!(
        env.selector("web").await.get("app").map(String::as_str),
        Some("web")
    );
    env.wait_event_reasons(&r, &["WorkloadMissing"]).await;

    // The Deployment appears: its template is rolled out, then it is scaled to 0.
    let out = apply(&kc, deployment("demo:1")).await;
    assert!(out.status.success(), "{}", text(&out));
    let r = env.wait_phase("web", Phase::Healthy).await;
    let h1 = r.status.as_ref().unwrap().stable_revision.clone().unwrap();
    env.wait_selected("web", &h1).await;
    assert_eq!(images_of(&env, &r, &h1).await, ["demo:1"]);
    eventually("scaleDown onsuccess scales the Deployment to 0", || async {
        let d = deployments.get("web-deploy").await.ok()?;
        (d.spec.replicas == Some(0)).then_some(())
    })
    .await;
    assert!(
        r.status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.reason != "WorkloadMissing"),
        "recovered"
    );

    // kubectl set image on the Deployment: a new revision, rolled out.
    let out = kubectl(
        &kc,
        &["set", "image", "deployment/web-deploy", "app=demo:2"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = eventually("the Deployment's new template is rolled out", || async {
        let r = env.get("web").await;
        let s = r.status.as_ref()?;
        (s.phase == Some(Phase::Healthy)
            && s.stable_revision.is_some()
            && s.stable_revision != Some(h1.clone()))
        .then_some(r)
    })
    .await;
    let h2 = r.status.as_ref().unwrap().stable_revision.clone().unwrap();
    env.wait_selected("web", &h2).await;
    assert_eq!(images_of(&env, &r, &h2).await, ["demo:2"]);
    let d = deployments.get("web-deploy").await.unwrap();
    assert_eq!(d.spec.replicas, Some(0), "still scaled down");

    // The CLI: status marks the Deployment's revision current; set image
    // and undo point at the Deployment instead of writing spec.template.
    let kcs = kc.to_str().unwrap();
    let out = redblack(&["status", "web", "--kubeconfig", kcs]).await;
    assert!(out.status.success(), "{}", text(&out));
    let line = text(&out)
        .lines()
        .find(|l| l.contains(&format!("web-{h2}")))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("current") && line.contains("demo:2"),
        "{}",
        text(&out)
    );
    for verb in [
        &["set", "image", "web", "app=demo:3"][..],
        &["undo", "web"][..],
    ] {
        let out = redblack(&[verb, &["--kubeconfig", kcs]].concat()).await;
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("Deployment web-deploy (workloadRef)"),
            "{}",
            text(&out)
        );
    }
    running.stop().await.expect("controller stops cleanly");
    env.sandbox.shutdown().await;
}
