//! The rollouts the harness interrupts. Each flow is a Rollout manifest and a
//! driver: what a user (image updates, an undo) and the CanaryAnalysis
//! controller (verdicts; not under test here) do, each step waiting for the
//! state that a person or that controller would wait for. Drivers only read
//! and write through the harness's own client, so they neither know nor care
//! how often the operator is killed meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use redblack::api::canary_analysis::CanaryAnalysis;
use redblack::api::{POD_TEMPLATE_HASH_LABEL, Rollout, pod_template_hash};
use serde_json::{Value, json};

pub const ROLLOUT: &str = "web";

/// Found by this harness and fixed (docs/reliability.md): an operator killed
/// between the Service switch and the status write that records the
/// post-promotion analysis left the new revision live and Healthy with no
/// analysis ever created.
pub const LOST_POST_PROMOTION: &str =
    "switched without recording its post-promotion analysis, which is never created";
pub const REPLICAS: i32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flow {
    /// Plain red/black: first deploy, an image update, the old fleet scaled
    /// down after `scaleDownDelay`.
    Plain,
    /// A canary-gated update whose analysis passes: promoted.
    CanaryPass,
    /// A canary-gated update whose analysis fails: reverted, Degraded.
    CanaryFail,
    /// An update, then an undo inside the warm window (one switch back).
    Undo,
    /// An update whose post-promotion analysis fails: switched back.
    PostPromotionFail,
}

pub const ALL: [Flow; 5] = [
    Flow::Plain,
    Flow::CanaryPass,
    Flow::CanaryFail,
    Flow::Undo,
    Flow::PostPromotionFail,
];

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Flow::Plain => "plain",
            Flow::CanaryPass => "canary-pass",
            Flow::CanaryFail => "canary-fail",
            Flow::Undo => "undo",
            Flow::PostPromotionFail => "post-fail",
        }
    }

    /// Whether the Rollout may be Degraded, and then only after a Failed
    /// verdict was written.
    pub fn degrades_on_failed_verdict(self) -> bool {
        matches!(self, Flow::CanaryFail | Flow::PostPromotionFail)
    }

    pub fn manifest(self, namespace: &str) -> Value {
        let analysis = json!({"inline": {
            "interval": "1m",
            "lifetime": "10m",
            "metrics": [{"name": "errors",
                         "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]
        }});
        // Plain and a passing canary wait for the old fleet to go; the others
        // keep it warm, so that an undo or a revert never depends on how long
        // a kill took.
        let delay = match self {
            Flow::Plain | Flow::CanaryPass => "1s",
            _ => "30m",
        };
        let mut strategy = json!({"activeService": ROLLOUT, "scaleDownDelay": delay});
        match self {
            Flow::CanaryPass | Flow::CanaryFail => {
                strategy["canary"] = json!({"replicas": 1, "analysis": analysis});
            }
            Flow::PostPromotionFail => strategy["postPromotionAnalysis"] = analysis,
            Flow::Plain | Flow::Undo => {}
        }
        json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": ROLLOUT, "namespace": namespace},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": ROLLOUT}},
                "template": {
                    "metadata": {"labels": {"app": ROLLOUT}},
                    "spec": {"containers": [{"name": "app", "image": "demo:1"}]}
                },
                "strategy": {"redBlack": strategy}
            }
        })
    }

    /// Drives the flow to its end; Err says which step did not happen in time.
    pub async fn drive(self, w: &World, deadline: tokio::time::Instant) -> Result<(), String> {
        let h1 = w.hash_for("demo:1");
        let h2 = w.hash_for("demo:2");
        until(deadline, "v1 is Healthy", || w.healthy_on(&h1)).await?;
        w.set_image("demo:2").await;
        match self {
            Flow::Plain => {
                until(deadline, "v2 Healthy, v1 scaled to zero", || async {
                    w.healthy_on(&h2).await?;
                    w.scaled_down(&h1).await
                })
                .await
            }
            Flow::CanaryPass | Flow::CanaryFail => {
                let analysis = format!("{ROLLOUT}-{h2}-1");
                until(
                    deadline,
                    "the canary gets traffic under its analysis",
                    || async {
                        w.analysis(&analysis).await?;
                        (!w.selector().await?.contains_key(POD_TEMPLATE_HASH_LABEL)).then_some(())
                    },
                )
                .await?;
                let pass = self == Flow::CanaryPass;
                w.verdict(&analysis, pass).await;
                if pass {
                    until(
                        deadline,
                        "v2 Healthy, v1 scaled to zero, no canary",
                        || async {
                            w.healthy_on(&h2).await?;
                            w.scaled_down(&h1).await?;
                            w.no_role_fleets().await
                        },
                    )
                    .await
                } else {
                    until(deadline, "Degraded on v1, no canary", || async {
                        w.phase_on("Degraded", &h1).await?;
                        w.no_role_fleets().await
                    })
                    .await
                }
            }
            Flow::Undo => {
                until(deadline, "v2 is Healthy", || w.healthy_on(&h2)).await?;
                w.set_image("demo:1").await;
                until(deadline, "back on v1, v2 warm", || async {
                    w.healthy_on(&h1).await?;
                    let rs = w.replica_set(&format!("{ROLLOUT}-{h2}")).await?;
                    (rs.spec.replicas == Some(REPLICAS)).then_some(())
                })
                .await
            }
            Flow::PostPromotionFail => {
                let found = until(deadline, "the post-promotion analysis", || async {
                    let prefix = format!("{ROLLOUT}-{h2}-post-");
                    if let Some(a) = w
                        .analyses()
                        .await
                        .into_iter()
                        .find(|a| a.name_any().starts_with(&prefix))
                    {
                        return Some(Ok(a));
                    }
                    w.post_promotion_lost(&h2).await.map(Err)
                })
                .await?;
                let analysis =
                    found.map_err(|status| format!("{LOST_POST_PROMOTION}: {status}"))?;
                w.verdict(&analysis.name_any(), false).await;
                until(deadline, "Degraded, switched back to v1", || {
                    w.phase_on("Degraded", &h1)
                })
                .await
            }
        }
    }
}

/// Polls `f` every 20 ms until it yields `Some`, or says what did not happen.
pub async fn until<T, F, Fut>(
    deadline: tokio::time::Instant,
    what: &str,
    mut f: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One point's namespace, seen through the harness's own client.
pub struct World {
    pub client: Client,
    pub namespace: String,
}

impl World {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn hash_for(&self, image: &str) -> String {
        let manifest = Flow::Plain.manifest(&self.namespace);
        let mut rollout: Rollout = serde_json::from_value(manifest).expect("Rollout JSON");
        rollout
            .spec
            .template
            .spec
            .as_mut()
            .expect("pod spec")
            .containers[0]
            .image = Some(image.to_owned());
        pod_template_hash(&rollout.spec.template)
    }

    pub async fn rollout(&self) -> Option<Rollout> {
        self.api::<Rollout>().get(ROLLOUT).await.ok()
    }

    pub async fn selector(&self) -> Option<BTreeMap<String, String>> {
        self.api::<Service>()
            .get(ROLLOUT)
            .await
            .ok()?
            .spec?
            .selector
    }

    pub async fn replica_set(&self, name: &str) -> Option<ReplicaSet> {
        self.api::<ReplicaSet>().get_opt(name).await.ok().flatten()
    }

    pub async fn replica_sets(&self) -> Vec<ReplicaSet> {
        self.api::<ReplicaSet>()
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    pub async fn services(&self) -> Vec<Service> {
        self.api::<Service>()
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    pub async fn analyses(&self) -> Vec<CanaryAnalysis> {
        self.api::<CanaryAnalysis>()
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    pub async fn analysis(&self, name: &str) -> Option<CanaryAnalysis> {
        self.api::<CanaryAnalysis>()
            .get_opt(name)
            .await
            .ok()
            .flatten()
    }

    pub async fn set_image(&self, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        self.api::<Rollout>()
            .patch(ROLLOUT, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("image set");
    }

    /// Plays the CanaryAnalysis controller: the final verdict.
    pub async fn verdict(&self, analysis: &str, pass: bool) {
        let status = if pass {
            json!({"status": {"phase": "Passed", "score": 100.0}})
        } else {
            json!({"status": {"phase": "Failed", "score": 0.0}})
        };
        self.api::<CanaryAnalysis>()
            .patch_status(analysis, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("verdict written");
    }

    /// The Rollout describes its current generation in `phase`, and the
    /// active Service selects `hash`.
    pub async fn phase_on(&self, phase: &str, hash: &str) -> Option<()> {
        let r = self.rollout().await?;
        let s = serde_json::to_value(r.status.as_ref()?).ok()?;
        let current = s["observedGeneration"].as_i64() == r.metadata.generation;
        let selected = self.selector().await?.get(POD_TEMPLATE_HASH_LABEL).cloned();
        (current && s["phase"] == phase && selected.as_deref() == Some(hash)).then_some(())
    }

    /// The state of [`LOST_POST_PROMOTION`]: the current generation
    /// Healthy on `hash` with no post-promotion record (a correct switch
    /// writes the record in the status that first says Healthy). Its status.
    pub async fn post_promotion_lost(&self, hash: &str) -> Option<String> {
        self.healthy_on(hash).await?;
        let s = serde_json::to_value(self.rollout().await?.status?).ok()?;
        s.get("postPromotion")
            .is_none_or(Value::is_null)
            .then(|| format!("status {s}"))
    }

    pub async fn healthy_on(&self, hash: &str) -> Option<()> {
        self.phase_on("Healthy", hash).await
    }

    /// The fleet of `hash` is at zero, desired and actual.
    pub async fn scaled_down(&self, hash: &str) -> Option<()> {
        let rs = self.replica_set(&format!("{ROLLOUT}-{hash}")).await?;
        let pods = rs.status.map(|s| s.replicas).unwrap_or(0);
        (rs.spec.replicas == Some(0) && pods == 0).then_some(())
    }

    pub async fn no_role_fleets(&self) -> Option<()> {
        let names: Vec<String> = self
            .replica_sets()
            .await
            .iter()
            .map(|r| r.name_any())
            .collect();
        (!names
            .iter()
            .any(|n| n.ends_with("-canary") || n.ends_with("-baseline")))
        .then_some(())
    }
}
