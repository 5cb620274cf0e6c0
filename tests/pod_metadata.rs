//! `activeMetadata` / `previewMetadata` (Argo Rollouts' blue-green fields):
//! planner rows on the simulated world, and end to end on the sandbox — the
//! labels and annotations land on the ReplicaSets' pod templates and on the
//! running pods, move at the switch, and never change a revision's hash.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Sim, switches_to};
use redblack::api::pod_metadata::PodMetadata;
use redblack::api::{PROMOTE_ANNOTATION, Phase, PromotionPolicy};
use redblack::rollout::{Action, Plan};
use serde_json::json;

fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PodMetadata {
    let map = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    PodMetadata {
        labels: map(labels),
        annotations: map(annotations),
    }
}

fn with_metadata(sim: &mut Sim) {
    let rb = &mut sim.rollout.spec.strategy.red_black;
    rb.active_metadata = Some(meta(&[("role", "active")], &[("dash", "live")]));
    rb.preview_metadata = Some(meta(&[("role", "preview")], &[]));
}

/// The pod-template labels of the fleet of `hash` (after the sim applied plans).
fn template_labels(sim: &Sim, hash: &str) -> BTreeMap<String, String> {
    sim.rs(hash)
        .and_then(|rs| rs.spec.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// A ReplicaSet's name and its label changes (None: removed).
type LabelWrite = (String, Vec<(String, Option<String>)>);

fn metadata_actions(plan: &Plan) -> Vec<LabelWrite> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::SetPodMetadata { name, labels, .. } => Some((
                name.clone(),
                labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn first_deploy_is_born_active() {
    let mut sim = Sim::new("web:1", 3);
    with_metadata(&mut sim);
    let h1 = sim.hash();
    sim.step();
    assert_eq!(
        template_labels(&sim, &h1).get("role").map(String::as_str),
        Some("active")
    );
    sim.make_ready();
    sim.settle();
    assert_eq!(sim.active_hash(), Some(h1.clone()));
    assert_eq!(
        metadata_actions(&sim.plan()),
        vec![],
        "converged: no writes"
    );
}

#[test]
fn preview_then_moved_at_the_switch() {
    let mut sim = Sim::steady("web:1", 3);
    with_metadata(&mut sim);
    sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
    let h1 = sim.hash();
    // Steady, metadata just added: the live fleet gets the active metadata.
    let plan = sim.step();
    assert_eq!(
        metadata_actions(&plan).len(),
        1,
        "{:?}",
        metadata_actions(&plan)
    );
    assert_eq!(template_labels(&sim, &h1)["role"], "active");

    sim.set_image("web:2");
    let h2 = sim.hash();
    sim.step();
    assert_eq!(
        template_labels(&sim, &h2)["role"],
        "preview",
        "born preview"
    );
    assert!(
        template_labels(&sim, &h2).contains_key(redblack::api::POD_TEMPLATE_HASH_LABEL),
        "the hash label stays"
    );
    sim.make_ready();
    sim.step();
    assert_eq!(sim.active_hash(), Some(h1.clone()), "waits for its promote");
    assert_eq!(metadata_actions(&sim.plan()), vec![]);

    sim.annotate(PROMOTE_ANNOTATION, &format!("{h2}@1"));
    let plan = sim.plan();
    assert_eq!(switches_to(&plan, "web"), Some(h2.clone()));
    // In the same plan as the switch: the new live fleet active, the old one neither.
    let mut moved = metadata_actions(&plan);
    moved.sort();
    let mut want = vec![
        (
            sim.rs(&h1).unwrap().metadata.name.clone().unwrap(),
            vec![("role".to_owned(), None)],
        ),
        (
            sim.rs(&h2).unwrap().metadata.name.clone().unwrap(),
            vec![("role".to_owned(), Some("active".to_owned()))],
        ),
    ];
    want.sort();
    assert_eq!(moved, want);
    sim.apply(&plan);
    assert_eq!(sim.hash(), h2, "the revision's hash is the spec's");
    assert!(!template_labels(&sim, &h1).contains_key("role"));
    assert_eq!(metadata_actions(&sim.plan()), vec![], "converged");
}

// ---- end to end on the sandbox ----

use support::{Env, eventually, hash_of, rollout_json, set};

/// `role` label and `dash` annotation of every pod of the fleet `hash`
/// (None when the fleet has no pods yet).
async fn pod_metadata(env: &Env, hash: &str) -> Option<Vec<(Option<String>, Option<String>)>> {
    let pods = env
        .pods()
        .list(&kube::api::ListParams::default().labels(&format!(
            "{}={hash}",
            redblack::api::POD_TEMPLATE_HASH_LABEL
        )))
        .await
        .ok()?;
    let got: Vec<_> = pods
        .items
        .iter()
        .map(|p| {
            (
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("role").cloned()),
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("dash").cloned()),
            )
        })
        .collect();
    (!got.is_empty()).then_some(got)
}

async fn wait_pods(env: &Env, hash: &str, want: (Option<&str>, Option<&str>)) {
    let want = (want.0.map(str::to_owned), want.1.map(str::to_owned));
    eventually(&format!("pods of {hash} carry {want:?}"), || async {
        let got = pod_metadata(env, hash).await?;
        got.iter().all(|g| *g == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_moves_with_the_switch_on_the_running_pods() {
    let env = Env::start(Duration::from_millis(200)).await;
    env.create_service("web", "web").await;
    let manifest = set(
        set(
            set(
                rollout_json("web", "demo:1", 2),
                "/spec/strategy/redBlack/promotion",
                json!("Manual"),
            ),
            "/spec/strategy/redBlack/activeMetadata",
            json!({"labels": {"role": "active"}, "annotations": {"dash": "live"}}),
        ),
        "/spec/strategy/redBlack/previewMetadata",
        json!({"labels": {"role": "preview"}}),
    );
    env.create_rollout(manifest).await;
    let running = env.start_controller();
    let h1 = hash_of(&env.wait_phase("web", Phase::Healthy).await);
    wait_pods(&env, &h1, (Some("active"), Some("live"))).await;

    env.set_image("web", "demo:2").await;
    let h2 = hash_of(&env.wait_phase("web", Phase::Paused).await);
    assert_ne!(h1, h2);
    wait_pods(&env, &h2, (Some("preview"), None)).await;
    wait_pods(&env, &h1, (Some("active"), Some("live"))).await;
    let pod_names = |env: &Env, hash: String| {
        let pods = env.pods();
        async move {
            let mut names: Vec<String> = pods
                .list(&kube::api::ListParams::default().labels(&format!(
                    "{}={hash}",
                    redblack::api::POD_TEMPLATE_HASH_LABEL
                )))
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            names.sort();
            names
        }
    };
    let before = pod_names(&env, h2.clone()).await;

    env.patch(
        "web",
        json!({"metadata": {"annotations": {PROMOTE_ANNOTATION: format!("{h2}@1")}}}),
    )
    .await;
    env.wait_selected("web", &h2).await;
    wait_pods(&env, &h2, (Some("active"), Some("live"))).await;
    wait_pods(&env, &h1, (None, None)).await;
    let live = env.wait_phase("web", Phase::Healthy).await;
    assert_eq!(
        hash_of(&live),
        h2,
        "same revision: the metadata is not in its hash"
    );
    assert_eq!(
        pod_names(&env, h2.clone()).await,
        before,
        "the same pods, relabelled in place"
    );
    running.stop().await.unwrap();
}
