//! The fixture generator: real rollouts and real analyses in the sandbox,
//! captured as the API returns them into `tests/data/gitops/`. Ignored by
//! default (it writes files); rerun after a status change with
//!
//!     cargo nextest run --test gitops --run-ignored only
//!
//! Rollouts: the operator in-process (Rollout controller), the test playing
//! the CanaryAnalysis controller where a canary needs a verdict — the
//! Rollout's status is the operator's own. CanaryAnalyses: the real analysis
//! controller judging a synthetic metric source.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use redblack::analysis::controller::{AnalysisController, AnalysisControllerConfig, SourceFactory};
use redblack::analysis::endpoint::EndpointConfig;
use redblack::analysis::source::{MetricSource, Sample, Samples, SourceError};
use redblack::api::canary_analysis::{self, CanaryAnalysis, CanaryAnalysisPhase};
use redblack::api::{CanaryPhase, Phase, ROLLOUT_LABEL, Rollout};
use redblack::cli::rollouts::{abort, pause, promote};
use redblack_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::fixtures::{self, Kind};
use crate::support::{Env, NS, eventually, hash_of, rollout_json, set};

const FAST: Duration = Duration::from_millis(200);
const NEVER_READY: &str = "sandbox.redblack.io/never-ready";

/// The object as the API serves it, without `managedFields` (noise for a
/// health check, and large).
async fn raw<K>(client: &Client, name: &str) -> Value
where
    K: kube::Resource<DynamicType = ()>,
{
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &ApiResource::erase::<K>(&()));
    let mut object = serde_json::to_value(api.get(name).await.expect("object exists"))
        .expect("object serialises");
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

async fn capture_rollout(env: &Env, name: &str, fixture: &str) {
    fixtures::save(
        Kind::Rollout,
        fixture,
        &raw::<Rollout>(&env.client, name).await,
    );
}

/// Waits until the Rollout's status describes its generation and `done` holds.
async fn wait_until(env: &Env, name: &str, what: &str, done: impl Fn(&Rollout) -> bool) {
    eventually(&format!("Rollout {name}: {what}"), || async {
        let r = env.rollouts().get(name).await.ok()?;
        let observed = r.status.as_ref()?.observed_generation == r.metadata.generation;
        (observed && done(&r)).then_some(())
    })
    .await;
}

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref()?.phase
}

fn canary_phase(r: &Rollout) -> Option<CanaryPhase> {
    r.status.as_ref()?.canary.as_ref()?.phase
}

fn reason(r: &Rollout, type_: &str) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

/// A template patch making the new revision's pods never ready.
fn never_ready(image: &str) -> Value {
    json!({"spec": {"template": {
        "metadata": {"annotations": {(NEVER_READY): "true"}},
        "spec": {"containers": [{"name": "app", "image": image}]}
    }}})
}

fn http_routes(env: &Env) -> Api<DynamicObject> {
    use kube::api::GroupVersionKind;
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(env.client.clone(), NS, &ApiResource::from_gvk(&gvk))
}

/// A Rollout with a canary routed through its own HTTPRoute; `analysis`
/// is the `canary.analysis` source.
async fn canary_rollout(env: &Env, name: &str, analysis: Value) {
    env.create_service(name, name).await;
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": name, "port": 80}]}]}
    }))
    .expect("route JSON");
    http_routes(env)
        .create(&PostParams::default(), &route)
        .await
        .expect("route created");
    let manifest = set(
        set(
            rollout_json(name, "demo:1", 2),
            "/spec/strategy/redBlack/canary",
            json!({"replicas": 1, "analysis": analysis}),
        ),
        "/spec/strategy/redBlack/trafficRouting",
        json!({"httpRoute": {"name": name}}),
    );
    env.create_rollout(manifest).await;
}

fn inline_analysis(app: &str) -> Value {
    json!({"inline": {
        "interval": "1m",
        "lifetime": "10m",
        "experiment": {"variables": {"app": app}},
        "metrics": [{"name": "errors",
                     "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]
    }})
}

/// The analysis the operator created for the current canary of `name`.
async fn analysis_of(env: &Env, name: &str) -> CanaryAnalysis {
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let wanted = eventually(
        &format!("the canary of {name} names its analysis"),
        || async {
            let r = env.rollouts().get(name).await.ok()?;
            r.status?.canary?.analysis_name
        },
    )
    .await;
    eventually(&format!("analysis {wanted} exists"), || async {
        analyses
            .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}")))
            .await
            .ok()?
            .items
            .into_iter()
            .find(|a| a.name_any() == wanted)
    })
    .await
}

/// Plays the analysis controller: writes a verdict for the current spec.
async fn verdict(env: &Env, analysis: &CanaryAnalysis, phase: &str, score: f64) {
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let status = json!({"status": {
        "phase": phase,
        "score": score,
        "message": format!("verdict {phase} written by the fixture generator"),
        "observedGeneration": analysis.metadata.generation,
    }});
    analyses
        .patch_status(
            &analysis.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("verdict written");
}

/// A canary rollout brought to a verdict: healthy first deploy, new image,
/// analysis judged `verdict_phase`; captured once the Rollout's canary is in
/// `expect`.
async fn canary_verdict(env: &Env, name: &str, verdict_phase: &str, expect: CanaryPhase) {
    canary_rollout(env, name, inline_analysis(name)).await;
    wait_until(env, name, "Healthy", |r| phase(r) == Some(Phase::Healthy)).await;
    env.set_image(name, "demo:2").await;
    let analysis = analysis_of(env, name).await;
    let score = match verdict_phase {
        "Passed" => 100.0,
        "Marginal" => 60.0,
        _ => 0.0,
    };
    verdict(env, &analysis, verdict_phase, score).await;
    wait_until(env, name, &format!("canary {expect:?}"), |r| {
        canary_phase(r) == Some(expect)
            && (expect != CanaryPhase::Passed || phase(r) == Some(Phase::Healthy))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/data/gitops/rollout: run to regenerate the fixtures"]
async fn generate_rollout_fixtures() {
    let env = Env::start(FAST).await;
    let running = env.start_controller();

    // A first deploy whose pods never get ready: Progressing.
    env.create_service("first", "first").await;
    let first = rollout_json("first", "demo:1", 2);
    let first = set(
        first,
        "/spec/template/metadata/annotations",
        json!({(NEVER_READY): "true"}),
    );
    env.create_rollout(first).await;
    wait_until(&env, "first", "Progressing", |r| {
        phase(r) == Some(Phase::Progressing)
    })
    .await;
    capture_rollout(&env, "first", "first-deploy-progressing").await;

    // Healthy, then an update in progress (its pods never get ready).
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    wait_until(&env, "web", "Healthy", |r| phase(r) == Some(Phase::Healthy)).await;
    capture_rollout(&env, "web", "healthy").await;
    env.patch("web", never_ready("demo:2")).await;
    wait_until(&env, "web", "Progressing", |r| {
        phase(r) == Some(Phase::Progressing)
    })
    .await;
    capture_rollout(&env, "web", "update-progressing").await;

    // The progress deadline missed: Degraded.
    env.create_service("late", "late").await;
    let late = set(
        rollout_json("late", "demo:1", 2),
        "/spec/progressDeadlineSeconds",
        json!(2),
    );
    env.create_rollout(late).await;
    wait_until(&env, "late", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.patch("late", never_ready("demo:2")).await;
    wait_until(&env, "late", "Degraded", |r| {
        phase(r) == Some(Phase::Degraded)
    })
    .await;
    capture_rollout(&env, "late", "progress-deadline-exceeded").await;

    // Manual promotion: awaiting it, then aborted.
    env.create_service("manual", "manual").await;
    let manual = set(
        rollout_json("manual", "demo:1", 2),
        "/spec/strategy/redBlack/promotion",
        json!("Manual"),
    );
    env.create_rollout(manual).await;
    wait_until(&env, "manual", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.set_image("manual", "demo:2").await;
    wait_until(&env, "manual", "AwaitingPromotion", |r| {
        reason(r, "Progressing") == "AwaitingPromotion"
    })
    .await;
    capture_rollout(&env, "manual", "awaiting-promotion").await;
    abort(&env.client, NS, "manual").await.expect("abort");
    wait_until(&env, "manual", "Aborted", |r| {
        phase(r) == Some(Phase::Aborted)
    })
    .await;
    capture_rollout(&env, "manual", "aborted").await;

    // `redblack pause`: paused while live, then a new revision held.
    env.create_service("held", "held").await;
    env.create_rollout(rollout_json("held", "demo:1", 2)).await;
    wait_until(&env, "held", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    pause(&env.client, NS, "held").await.expect("pause");
    wait_until(&env, "held", "Paused", |r| phase(r) == Some(Phase::Paused)).await;
    capture_rollout(&env, "held", "paused-live").await;
    let h2 = hash_of(&env.set_image("held", "demo:2").await);
    wait_until(&env, "held", "Paused on the new revision", |r| {
        let s = r.status.as_ref();
        phase(r) == Some(Phase::Paused)
            && s.and_then(|s| s.current_revision.as_deref()) == Some(h2.as_str())
    })
    .await;
    capture_rollout(&env, "held", "paused-new-revision").await;

    // Outside every promotion window: a window three days from now.
    env.create_service("window", "window").await;
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(Utc::now() + TimeDelta::days(3))
        .weekday()
        .num_days_from_monday()
        as usize];
    let windowed = set(
        rollout_json("window", "demo:1", 2),
        "/spec/strategy/redBlack/promotionWindows",
        json!([{"days": [day], "start": "00:00", "end": "00:01"}]),
    );
    env.create_rollout(windowed).await;
    wait_until(&env, "window", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.set_image("window", "demo:2").await;
    wait_until(&env, "window", "OutsidePromotionWindow", |r| {
        reason(r, "Progressing") == "OutsidePromotionWindow"
    })
    .await;
    capture_rollout(&env, "window", "outside-promotion-window").await;

    // An invalid spec; a missing active Service.
    env.create_service("invalid", "invalid").await;
    let invalid = set(
        rollout_json("invalid", "demo:1", 1),
        "/spec/template/metadata/labels",
        json!({"app": "something-else"}),
    );
    env.create_rollout(invalid).await;
    wait_until(&env, "invalid", "InvalidSpec", |r| {
        phase(r) == Some(Phase::InvalidSpec)
    })
    .await;
    capture_rollout(&env, "invalid", "invalid-spec").await;
    env.create_rollout(rollout_json("orphan", "demo:1", 1))
        .await;
    wait_until(&env, "orphan", "Degraded", |r| {
        phase(r) == Some(Phase::Degraded)
    })
    .await;
    capture_rollout(&env, "orphan", "service-missing").await;

    // Canaries: brought up (never ready), judged, each verdict, promoted by a person.
    canary_rollout(&env, "cup", inline_analysis("cup")).await;
    wait_until(&env, "cup", "Healthy", |r| phase(r) == Some(Phase::Healthy)).await;
    env.patch("cup", never_ready("demo:2")).await;
    wait_until(&env, "cup", "canary Progressing", |r| {
        canary_phase(r) == Some(CanaryPhase::Progressing)
    })
    .await;
    capture_rollout(&env, "cup", "canary-progressing").await;

    canary_rollout(&env, "judged", inline_analysis("judged")).await;
    wait_until(&env, "judged", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.set_image("judged", "demo:2").await;
    // The analysis exists (the test plays no controller for it here).
    analysis_of(&env, "judged").await;
    wait_until(&env, "judged", "CanaryAnalysing", |r| {
        reason(r, "Ready") == "CanaryAnalysing"
    })
    .await;
    capture_rollout(&env, "judged", "canary-analysing").await;
    promote(&env.client, NS, "judged").await.expect("promote");
    wait_until(&env, "judged", "promoted by a person", |r| {
        canary_phase(r) == Some(CanaryPhase::Promoted) && phase(r) == Some(Phase::Healthy)
    })
    .await;
    capture_rollout(&env, "judged", "canary-promoted-by-person").await;

    for (name, verdict_phase, expect) in [
        ("passed", "Passed", CanaryPhase::Passed),
        ("failed", "Failed", CanaryPhase::Failed),
        ("marginal", "Marginal", CanaryPhase::Marginal),
        ("inconclusive", "Inconclusive", CanaryPhase::Inconclusive),
        ("broken", "Error", CanaryPhase::Error),
    ] {
        canary_verdict(&env, name, verdict_phase, expect).await;
        capture_rollout(
            &env,
            name,
            &format!("canary-{}", verdict_phase.to_lowercase()),
        )
        .await;
    }

    // A canary whose analysis template does not exist yet; one whose
    // analysis the API refuses (no metrics: the CRD wants at least one).
    canary_rollout(&env, "tmpl", json!({"templateName": "not-there-yet"})).await;
    wait_until(&env, "tmpl", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.set_image("tmpl", "demo:2").await;
    wait_until(&env, "tmpl", "AnalysisTemplateNotFound", |r| {
        reason(r, "Ready") == "AnalysisTemplateNotFound"
    })
    .await;
    capture_rollout(&env, "tmpl", "canary-template-missing").await;
    canary_rollout(
        &env,
        "refused",
        json!({"inline": {"interval": "1m", "lifetime": "10m", "metrics": []}}),
    )
    .await;
    wait_until(&env, "refused", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.set_image("refused", "demo:2").await;
    wait_until(&env, "refused", "AnalysisCreateFailed", |r| {
        reason(r, "Ready") == "AnalysisCreateFailed"
    })
    .await;
    capture_rollout(&env, "refused", "canary-analysis-refused").await;

    // A post-promotion analysis that fails: traffic goes back, Degraded.
    env.create_service("post", "post").await;
    let post = set(
        rollout_json("post", "demo:1", 2),
        "/spec/strategy/redBlack/postPromotionAnalysis",
        inline_analysis("post"),
    );
    env.create_rollout(post).await;
    wait_until(&env, "post", "Healthy", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    env.set_image("post", "demo:2").await;
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let post_analysis = eventually("the post-promotion analysis exists", || async {
        let r = env.rollouts().get("post").await.ok()?;
        let name = r.status?.post_promotion?.analysis_name;
        analyses.get_opt(&name).await.ok().flatten()
    })
    .await;
    wait_until(&env, "post", "live, judged after the switch", |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    capture_rollout(&env, "post", "post-promotion-analysing").await;
    verdict(&env, &post_analysis, "Failed", 0.0).await;
    wait_until(&env, "post", "reverted", |r| {
        reason(r, "Ready") == "PostPromotionAnalysisFailed"
    })
    .await;
    capture_rollout(&env, "post", "post-promotion-failed-reverted").await;

    // Last: with the operator stopped, a new spec it has not observed.
    running.stop().await.expect("operator stops");
    env.set_image("web", "demo:3").await;
    capture_rollout(&env, "web", "stale-generation").await;
}

/// A metric source for the analysis fixtures: every query is answered with a
/// noisy series per step whose level depends on the ReplicaSet it names
/// (`bad` 3×, `meh` 3× on the `latency` metric only, `idle` nothing, the rest
/// 1×): enough for real verdicts from the real judge.
struct Synthetic;

impl Synthetic {
    fn level(query: &str) -> Option<f64> {
        if query.contains("idle") {
            return None;
        }
        let slow = query.contains("bad") || (query.contains("meh") && query.contains("latency"));
        Some(if slow { 3.0 } else { 1.0 })
    }

    fn series(query: &str, start: DateTime<Utc>, end: DateTime<Utc>, step: Duration) -> Samples {
        let Some(level) = Synthetic::level(query) else {
            return Samples::default();
        };
        let step = TimeDelta::from_std(step).unwrap_or(TimeDelta::seconds(30));
        let mut points = Vec::new();
        let mut t = start;
        while t <= end {
            // Deterministic noise in [0, 0.2), different per timestamp.
            let k = t.timestamp() as u64 ^ query.len() as u64;
            let noise = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
            points.push(Sample {
                timestamp: t,
                value: level * (1.0 + 0.2 * noise),
            });
            t += step;
        }
        Samples::new(points)
    }
}

impl MetricSource for Synthetic {
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        Box::pin(std::future::ready(Ok(Synthetic::series(
            query, start, end, step,
        ))))
    }

    fn query_instant<'a>(
        &'a self,
        query: &'a str,
        time: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        let one = Synthetic::series(query, time, time, Duration::from_secs(1));
        Box::pin(std::future::ready(Ok(one)))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An analysis comparing ReplicaSet `rs` with `base-1`, with a latency and an
/// error metric, `spec` merged in.
fn analysis(name: &str, rs: &str, spec: Value) -> CanaryAnalysis {
    let mut object = json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "prometheus": {"url": "http://127.0.0.1:9"},
            "control": {"replicaSet": "base-1"},
            "experiment": {"replicaSet": rs},
            "interval": "10m",
            "step": "30s",
            "scoreThresholds": {"marginal": 40, "pass": 90},
            "metrics": [
                {"name": "latency", "direction": "increase",
                 "query": "avg(latency{pod=~\"${podRegex}\"})"},
                {"name": "errors", "direction": "increase",
                 "query": "sum(errors{pod=~\"${podRegex}\"})"}
            ]
        }
    });
    json_patch::merge(&mut object["spec"], &spec);
    serde_json::from_value(object).expect("analysis JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/data/gitops/canaryanalysis: run to regenerate the fixtures"]
async fn generate_analysis_fixtures() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let client = sandbox.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &canary_analysis::crd())
        .await
        .expect("CRD");
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), NS);
    eventually("the CanaryAnalysis CRD is served", || async {
        api.list(&ListParams::default()).await.ok().map(|_| ())
    })
    .await;

    let factory: SourceFactory =
        Arc::new(|_endpoint: &EndpointConfig| Ok(Arc::new(Synthetic) as Arc<dyn MetricSource>));
    let (stop, stopped) = oneshot::channel::<()>();
    let config = AnalysisControllerConfig {
        allowed_endpoints: vec!["http://127.0.0.1:9".into()],
        ..AnalysisControllerConfig::default()
    };
    let controller = AnalysisController::new(client.clone(), config).with_sources(factory);
    let task = tokio::spawn(async move {
        controller
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });

    // A past window of six 10-minute intervals: judged at once.
    let end = DateTime::from_timestamp((Utc::now() - TimeDelta::hours(1)).timestamp() / 60 * 60, 0)
        .expect("a timestamp");
    let past = json!({"startTime": rfc3339(end - TimeDelta::hours(1)), "endTime": rfc3339(end)});
    let cases = [
        (
            "passed",
            "good-1",
            past.clone(),
            CanaryAnalysisPhase::Passed,
        ),
        ("failed", "bad-1", past.clone(), CanaryAnalysisPhase::Failed),
        (
            "marginal",
            "meh-1",
            past.clone(),
            CanaryAnalysisPhase::Marginal,
        ),
        (
            "inconclusive",
            "idle-1",
            past.clone(),
            CanaryAnalysisPhase::Inconclusive,
        ),
        (
            "error",
            "good-1",
            json!({"startTime": past["startTime"], "endTime": past["endTime"],
                   "metrics": [{"name": "latency", "query": "avg(latency{pod=~\"${nope}\"})"}]}),
            CanaryAnalysisPhase::Error,
        ),
        (
            "pending",
            "good-1",
            json!({"startTime": rfc3339(Utc::now() + TimeDelta::hours(2)), "lifetime": "1h"}),
            CanaryAnalysisPhase::Pending,
        ),
        (
            "running",
            "good-1",
            json!({"startTime": rfc3339(Utc::now() - TimeDelta::minutes(15)),
                   "lifetime": "1h"}),
            CanaryAnalysisPhase::Running,
        ),
    ];
    for (name, rs, spec, expected) in cases {
        api.create(&PostParams::default(), &analysis(name, rs, spec))
            .await
            .expect("analysis created");
        eventually(&format!("analysis {name} reaches {expected}"), || async {
            let a = api.get(name).await.ok()?;
            (a.is_observed() && a.status.as_ref()?.phase == Some(expected)).then_some(())
        })
        .await;
        let object = raw::<CanaryAnalysis>(&client, name).await;
        fixtures::save(Kind::CanaryAnalysis, name, &object);
    }

    // Stopped controller, changed spec: a status of an older generation.
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    api.patch(
        "passed",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"confidence": 0.9}})),
    )
    .await
    .expect("spec changed");
    let object = raw::<CanaryAnalysis>(&client, "passed").await;
    fixtures::save(Kind::CanaryAnalysis, "stale-generation", &object);
}
