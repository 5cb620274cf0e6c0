//! Notifications end to end: the operator in-process against the sandbox,
//! real receivers on 127.0.0.1 started by the test (tests/notifications/
//! receiver.rs). The test plays the CanaryAnalysis controller: it writes the
//! verdict (a recorded failed analysis' status, with its metrics).
//!
//! - A failed canary reaches a signed webhook (HMAC checked here with the
//!   `hmac` crate, independently of the operator's code) and a Slack-format
//!   chat subscribed only to Critical notifications; each exactly once.
//! - The endpoint down when the verdict comes, the operator killed after it
//!   recorded the pending notifications, restarted, the endpoint back: each
//!   notification arrives exactly once.
//! - The operator stopped right after the verdict (the endpoint down) and
//!   started again with the endpoint back: each notification arrives once.
//! - A slow endpoint (holding every request) does not slow the Rollout: it
//!   is live on the new revision while the first notification is still
//!   unanswered; released, everything arrives once.
//! - A failed canary is emailed, over SMTP to a real server (Python's
//!   aiosmtpd, tests/notifications/smtp_sink.py), as its canary report in a
//!   text and an HTML part.
//! - A Notifier's namespace-wide default subscription (a label selector)
//!   covers a Rollout that names no Notifier.
//! - The same over STARTTLS (required by the server; its certificate from a
//!   CA the test makes with rcgen, trusted through `caSecretRef`) with AUTH
//!   (the password from a Secret).
//! - Bad Notifiers (a malformed URL, a missing Secret key, a template that
//!   does not compile; two channels are refused at admission) are
//!   Ready=False naming the field, and the Rollout rolls out regardless; a
//!   good, templated Notifier beside them delivers its text.

mod support;

#[path = "notifications/receiver.rs"]
mod receiver;
#[path = "notifications/smtp.rs"]
mod smtp;

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use receiver::{Received, Receiver};
use redblack::api::canary_analysis::CanaryAnalysis;
use redblack::api::notifier::Notifier;
use redblack::api::{CanaryPhase, Phase, ROLLOUT_LABEL, Rollout};
use redblack::cli::controller::ControllerConfig;
use redblack::notify::controller::NotifySettings;
use redblack::notify::ledger::Backoff;
use serde_json::{Value, json};
use support::*;

const FAST: Duration = Duration::from_millis(200);

/// Quick retries: the test waits for them.
fn config() -> ControllerConfig {
    ControllerConfig {
        canary_analysis: false,
        notify: NotifySettings {
            backoff: Backoff {
                first: Duration::from_millis(200),
                cap: Duration::from_secs(1),
            },
            recheck: Duration::from_secs(1),
            ..NotifySettings::default()
        },
        ..ControllerConfig::default()
    }
}

/// `web` with a canary judged by an inline analysis (never run: the test
/// writes the verdict).
fn canary_rollout() -> Value {
    set(
        rollout_json("web", "demo:1", 2),
        "/spec/strategy/redBlack/canary",
        json!({
            "replicas": 1,
            "analysis": {"inline": {
                "interval": "1m",
                "lifetime": "10m",
                "experiment": {"variables": {"app": "web"}},
                "metrics": [{"name": "latency", "query": "q{pod=~\"${podRegex}\"}"}]
            }}
        }),
    )
}

async fn create<K>(env: &Env, object: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(object).expect("valid object");
    Api::<K>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &object)
        .await
        .expect("created")
}

async fn secret(env: &Env, data: &[(&str, &str)]) {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let _: Secret = create(
        env,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "hooks", "namespace": NS}, "stringData": data}),
    )
    .await;
}

async fn notifier(env: &Env, name: &str, spec: Value) {
    let _: Notifier = create(
        env,
        json!({"apiVersion": "redblack.io/v1alpha1", "kind": "Notifier",
               "metadata": {"name": name, "namespace": NS}, "spec": spec}),
    )
    .await;
}

/// The ledger of `web`, once it exists.
async fn ledger(env: &Env) -> Option<Value> {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .get_opt("web-notifications")
        .await
        .ok()??;
    serde_json::from_str(cm.data?.get("ledger.json")?).ok()
}

/// Subscribes `web` and waits until its ledger starts at revision `hash`
/// (so what happened before is not announced).
/// A healthy canary Rollout `web` subscribed to the webhook Notifier
/// `team-hook` (a receiver on 127.0.0.1), with the operator running.
async fn live_canary_rollout_with_a_webhook(env: &Env) -> (Receiver, Running) {
    env.create_service("web", "web").await;
    let hooks = Receiver::start().await;
    notifier(
        env,
        "team-hook",
        json!({"webhook": {"url": format!("{}/hook", hooks.url)}}),
    )
    .await;
    env.create_rollout(canary_rollout()).await;
    let running = Running::start_with(env.client.clone(), config());
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    subscribe(env, json!([{"notifier": "team-hook"}]), &hash_of(&r1)).await;
    (hooks, running)
}

async fn subscribe(env: &Env, subscriptions: Value, hash: &str) {
    env.patch("web", json!({"spec": {"notifications": subscriptions}}))
        .await;
    eventually("the ledger starts at the live revision", || async {
        let l = ledger(env).await?;
        (l["observed"]["currentRevision"] == hash).then_some(())
    })
    .await;
}

/// Rolls out `demo:2` to its canary, writes the recorded failed verdict and
/// waits until the Rollout reverted it.
async fn fail_a_canary(env: &Env) -> CanaryAnalysis {
    env.set_image("web", "demo:2").await;
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    eventually("the canary is analysing", || async {
        let r = env.rollouts().get("web").await.ok()?;
        (r.status?.canary?.phase == Some(CanaryPhase::Analysing)).then_some(())
    })
    .await;
    let analysis = analyses
        .list(&ListParams::default().labels(ROLLOUT_LABEL))
        .await
        .expect("list analyses")
        .items
        .into_iter()
        .next()
        .expect("the canary's analysis");
    let recorded: Value =
        serde_json::from_str(include_str!("data/gitops/canaryanalysis/failed.json")).unwrap();
    let s = &recorded["status"];
    let verdict = json!({"status": {
        "phase": s["phase"], "message": s["message"], "score": s["score"],
        "band": s["band"], "metrics": s["metrics"]
    }});
    analyses
        .patch_status(
            &analysis.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&verdict),
        )
        .await
        .expect("verdict written");
    eventually("the canary is reverted", || async {
        let r = env.rollouts().get("web").await.ok()?;
        (r.status?.canary?.phase == Some(CanaryPhase::Failed)).then_some(())
    })
    .await;
    analysis
}

/// The recorded failed analysis `fail_a_canary` writes (a gitops fixture,
/// regenerated with the code): its latency's canary and baseline means.
fn recorded_latency_means() -> (f64, f64) {
    let recorded: Value =
        serde_json::from_str(include_str!("data/gitops/canaryanalysis/failed.json")).unwrap();
    let latency = recorded["status"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "latency")
        .unwrap()
        .clone();
    (
        latency["canaryMean"].as_f64().unwrap(),
        latency["baselineMean"].as_f64().unwrap(),
    )
}

/// The report line of that latency, as Slack and email print it.
fn latency_line() -> String {
    let (c, b) = recorded_latency_means();
    format!("• latency: High (canary {c:.4}, baseline {b:.4}")
}

/// The endpoint back up and a fresh operator started: the four
/// notifications of a failed canary arrive, each exactly once.
async fn back_up_and_restarted_each_delivered_once(env: &Env, hooks: &Receiver) -> Running {
    hooks.set_down(false);
    let running = Running::start_with(env.client.clone(), config());
    let hook = all_delivered(env, hooks, "/hook", 4).await;
    assert_eq!(
        triggers(&hook),
        [
            "CanaryStarted",
            "CanaryVerdict",
            "Reverted",
            "RolloutStarted"
        ]
    );
    assert_once(&hook);
    running
}

/// Waits until the ledger has nothing pending and `receiver` got `n` at `path`.
async fn all_delivered(env: &Env, receiver: &Receiver, path: &str, n: usize) -> Vec<Received> {
    eventually(
        &format!("{n} notifications at {path}, none pending"),
        || async {
            let l = ledger(env).await?;
            let got = receiver.at(path);
            (l["pending"].as_array()?.is_empty() && got.len() >= n).then_some(got)
        },
    )
    .await
}

fn triggers(received: &[Received]) -> Vec<String> {
    let mut t: Vec<String> = received
        .iter()
        .map(|r| r.json()["event"]["trigger"].as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

/// Each delivery key once.
fn assert_once(received: &[Received]) {
    let mut ids: Vec<String> = received
        .iter()
        .map(|r| r.header("x-redblack-delivery").expect("delivery header"))
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a notification arrived twice: {ids:?}");
}

async fn ready(env: &Env, name: &str) -> Option<(String, String, String)> {
    let n = Api::<Notifier>::namespaced(env.client.clone(), NS)
        .get(name)
        .await
        .ok()?;
    let c = n
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((format!("{:?}", c.status), c.reason, c.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_reaches_a_signed_webhook_and_a_slack_channel_once() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let hooks = Receiver::start().await;
    secret(
        &env,
        &[
            ("signing", "s3cret"),
            ("slack", &format!("{}/slack", hooks.url)),
        ],
    )
    .await;
    notifier(
        &env,
        "team-hook",
        json!({"webhook": {"url": format!("{}/hook", hooks.url),
                           "signingSecretRef": {"name": "hooks", "key": "signing"}}}),
    )
    .await;
    notifier(
        &env,
        "team-chat",
        json!({"slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}},
               "dashboardUrl": "https://grafana.example/d/rb?var-rollout={{ rollout.name }}"}),
    )
    .await;
    env.create_rollout(canary_rollout()).await;
    let running = Running::start_with(env.client.clone(), config());
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    subscribe(
        &env,
        json!([{"notifier": "team-hook"},
               {"notifier": "team-chat", "minSeverity": "Critical"}]),
        &hash_of(&r1),
    )
    .await;
    fail_a_canary(&env).await;

    let hook = all_delivered(&env, &hooks, "/hook", 4).await;
    let chat = all_delivered(&env, &hooks, "/slack", 2).await;
    assert_eq!(
        triggers(&hook),
        [
            "CanaryStarted",
            "CanaryVerdict",
            "Reverted",
            "RolloutStarted"
        ]
    );
    assert_once(&hook);
    assert_once(&chat);
    for r in &hook {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&r.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(r.header("x-redblack-signature"), Some(expected));
        let body = r.json();
        assert_eq!(body["apiVersion"], "redblack.notification/v1");
        assert_eq!(body["kind"], "Notification");
        assert_eq!(
            r.header("x-redblack-delivery").as_deref(),
            body["id"].as_str()
        );
        assert_eq!(body["rollout"]["name"], "web");
        assert_eq!(body["rollout"]["uid"], r1.uid().unwrap());
        assert_eq!(body["notifier"], "team-hook");
        assert!(
            body["rollout"].get("dashboard").is_none(),
            "no dashboardUrl"
        );
    }
    let verdict = hook
        .iter()
        .map(Received::json)
        .find(|b| b["event"]["trigger"] == "CanaryVerdict")
        .unwrap();
    println!("verdict payload: {verdict:#}");
    assert_eq!(verdict["event"]["verdict"], "Failed");
    assert_eq!(verdict["event"]["severity"], "Critical");
    assert_eq!(verdict["report"]["band"], "Fail");
    let metric = &verdict["report"]["failingMetrics"][0];
    assert_eq!(metric["name"], "latency");
    assert_eq!(metric["classification"], "High");
    let (canary_mean, _) = recorded_latency_means();
    assert!((metric["canaryMean"].as_f64().unwrap() - canary_mean).abs() < 1e-9);

    // Slack: only the Critical ones, in the documented shape.
    let mut chat_triggers: Vec<String> = Vec::new();
    for r in &chat {
        assert!(r.header("x-redblack-signature").is_none(), "unsigned");
        let body = r.json();
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("[Critical] default/web: "), "{text}");
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let fields = serde_json::to_string(&blocks[2]["fields"]).unwrap();
        let trigger = ["CanaryVerdict", "Reverted"]
            .into_iter()
            .find(|t| fields.contains(&format!("*Trigger*\\n{t}")))
            .unwrap_or_else(|| panic!("no trigger field in {fields}"));
        chat_triggers.push(trigger.to_owned());
        assert!(
            text.contains("\nDashboard: https://grafana.example/d/rb?var-rollout=web"),
            "{text}"
        );
        if trigger == "CanaryVerdict" {
            println!("slack text: {text}");
            assert!(text.contains("Score 0.0 (Fail)"), "{text}");
            assert!(text.contains(&latency_line()), "{text}");
        }
    }
    chat_triggers.sort();
    assert_eq!(chat_triggers, ["CanaryVerdict", "Reverted"]);

    let metrics = running.metrics.encode().unwrap();
    for line in [
        r#"redblack_notifications_total{channel="webhook",trigger="CanaryVerdict",result="delivered"} 1"#,
        r#"redblack_notifications_total{channel="slack",trigger="Reverted",result="delivered"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let hook_ready = eventually("team-hook is Ready", || async {
        ready(&env, "team-hook").await.filter(|r| r.0 == "True")
    })
    .await;
    assert_eq!(hook_ready.1, "Delivered");
    running.stop().await.unwrap();
    // Nothing more arrives after the ledger emptied.
    assert_eq!(hooks.received().len(), 6);
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_verdict_with_the_endpoint_down_each_notification_arrives_once() {
    let env = Env::start(FAST).await;
    let (hooks, running) = live_canary_rollout_with_a_webhook(&env).await;
    hooks.set_down(true);
    fail_a_canary(&env).await;
    // The verdict's notification is recorded and failed at least once.
    eventually("the verdict's notification failed once", || async {
        let l = ledger(&env).await?;
        l["pending"]
            .as_array()?
            .iter()
            .any(|p| {
                p["happening"]["trigger"] == "CanaryVerdict" && p["attempts"].as_u64() >= Some(1)
            })
            .then_some(())
    })
    .await;
    let down = eventually("team-hook is not Ready", || async {
        ready(&env, "team-hook").await.filter(|r| r.0 == "False")
    })
    .await;
    assert_eq!(down.1, "DeliveryFailed", "{down:?}");
    assert!(down.2.contains("503"), "{down:?}");
    let rollout: Rollout = env.get("web").await;
    env.wait_event_reasons(&rollout, &["NotificationFailed"])
        .await;
    running.kill().await;
    let refused = hooks.refused();
    assert!(refused >= 1);

    let running = back_up_and_restarted_each_delivered_once(&env, &hooks).await;
    eventually("team-hook is Ready again", || async {
        ready(&env, "team-hook").await.filter(|r| r.0 == "True")
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(hooks.received().len(), 4, "nothing arrived twice");
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifiers_are_not_ready_naming_the_field_and_rollouts_go_on() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let hooks = Receiver::start().await;
    secret(&env, &[("chat", &format!("{}/chat", hooks.url))]).await;
    // Two channels: refused at admission (the CRD's CEL rule).
    let two: Result<Notifier, _> = Api::<Notifier>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "redblack.io/v1alpha1", "kind": "Notifier",
                "metadata": {"name": "two", "namespace": NS},
                "spec": {"webhook": {"url": "http://127.0.0.1:9/"},
                         "slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}}}
            }))
            .unwrap(),
        )
        .await;
    let refused = format!("{:?}", two.expect_err("two channels are refused"));
    assert!(
        refused.contains("set exactly one of webhook, slack and email"),
        "{refused}"
    );
    notifier(&env, "bad-url", json!({"webhook": {"url": "http//nope"}})).await;
    notifier(
        &env,
        "no-key",
        json!({"slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}}}),
    )
    .await;
    notifier(
        &env,
        "bad-template",
        json!({"slack": {"urlSecretRef": {"name": "hooks", "key": "chat"}},
               "template": {"text": "{{ rollout.name }} {% if %}"}}),
    )
    .await;
    // A good one beside them, templated.
    notifier(
        &env,
        "templated",
        json!({"slack": {"urlSecretRef": {"name": "hooks", "key": "chat"}},
               "template": {"text": "{{ rollout.name }} is live on {{ event.revision }} ({{ event.trigger }})"}}),
    )
    .await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let running = Running::start_with(env.client.clone(), config());
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    subscribe(
        &env,
        json!([{"notifier": "bad-url"}, {"notifier": "no-key"}, {"notifier": "bad-template"},
               {"notifier": "templated", "triggers": ["Promoted"]}]),
        &hash_of(&r1),
    )
    .await;
    let r2 = env.set_image("web", "demo:2").await;
    env.wait_selected("web", &hash_of(&r2)).await;
    env.wait_phase("web", Phase::Healthy).await;

    let bad = eventually("bad-url is not Ready", || async {
        ready(&env, "bad-url").await.filter(|r| r.0 == "False")
    })
    .await;
    println!("bad-url: {bad:?}");
    assert_eq!(bad.1, "InvalidConfig");
    assert!(bad.2.starts_with("spec.webhook.url: "), "{bad:?}");
    let key = eventually("no-key is not Ready", || async {
        ready(&env, "no-key").await.filter(|r| r.0 == "False")
    })
    .await;
    println!("no-key: {key:?}");
    assert_eq!(key.1, "InvalidConfig");
    assert!(
        key.2
            .starts_with("spec.slack.urlSecretRef: Secret hooks has no key \"slack\""),
        "{key:?}"
    );
    let template = eventually("bad-template is not Ready", || async {
        ready(&env, "bad-template").await.filter(|r| r.0 == "False")
    })
    .await;
    println!("bad-template: {template:?}");
    assert_eq!(template.1, "InvalidConfig");
    assert!(
        template.2.starts_with("spec.template.text: syntax error"),
        "{template:?}"
    );
    // The good one delivered its templated text.
    let chat = eventually("the templated notifier delivered", || async {
        let got = hooks.at("/chat");
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(chat.len(), 1, "only Promoted: {chat:?}");
    let body = chat[0].json();
    assert_eq!(
        body["text"],
        format!("web is live on {} (Promoted)", hash_of(&r2))
    );
    // The bad ones' notifications wait in the ledger, saying why.
    let pending = eventually("the failures are recorded", || async {
        let l = ledger(&env).await?;
        let p = l["pending"].as_array()?.clone();
        (p.len() >= 6 && p.iter().all(|p| p["attempts"].as_u64() >= Some(1))).then_some(p)
    })
    .await;
    let errors: Vec<&str> = pending
        .iter()
        .filter_map(|p| p["lastError"].as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("spec.webhook.url")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("spec.slack.urlSecretRef")),
        "{errors:?}"
    );
    running.stop().await.unwrap();
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_right_after_the_verdict_and_restarted_each_notification_arrives_once() {
    let env = Env::start(FAST).await;
    let (hooks, running) = live_canary_rollout_with_a_webhook(&env).await;
    // Down, so that the verdict cannot be delivered before the stop (a
    // graceful stop lets a delivery in flight finish).
    hooks.set_down(true);
    // fail_a_canary returns as soon as the status records the verdict.
    fail_a_canary(&env).await;
    running.stop().await.unwrap();
    let recorded = ledger(&env)
        .await
        .map(|l| l["pending"].as_array().map_or(0, Vec::len));
    println!("pending in the ledger at the stop: {recorded:?}");
    let running = back_up_and_restarted_each_delivered_once(&env, &hooks).await;
    running.stop().await.unwrap();
    assert_eq!(hooks.received().len(), 4);
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_slow_the_rollout() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let hooks = Receiver::start().await;
    notifier(
        &env,
        "slow",
        json!({"webhook": {"url": format!("{}/hook", hooks.url)}}),
    )
    .await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let mut cfg = config();
    // Longer than the test: the held request is never cut short.
    cfg.notify.timeout = Duration::from_secs(600);
    let running = Running::start_with(env.client.clone(), cfg);
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    subscribe(&env, json!([{"notifier": "slow"}]), &hash_of(&r1)).await;
    let release = hooks.hold();
    let r2 = env.set_image("web", "demo:2").await;
    env.wait_selected("web", &hash_of(&r2)).await;
    env.wait_phase("web", Phase::Healthy).await;
    assert!(hooks.received().is_empty(), "nothing was answered yet");
    eventually("the first notification is in flight", || async {
        (hooks.in_flight() >= 1).then_some(())
    })
    .await;
    release.send(true).unwrap();
    let hook = all_delivered(&env, &hooks, "/hook", 2).await;
    assert_eq!(triggers(&hook), ["Promoted", "RolloutStarted"]);
    assert_once(&hook);
    running.stop().await.unwrap();
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_is_emailed_as_its_report_over_smtp() {
    let sink = smtp::SmtpSink::start();
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    notifier(
        &env,
        "team-mail",
        json!({"email": {"host": "127.0.0.1", "port": sink.port, "tls": "None",
                         "from": "redblack <redblack@example.com>",
                         "to": ["team@example.com", "Oncall <oncall@example.com>"]},
               "dashboardUrl": "https://grafana.example/d/rb?var-ns={{ rollout.namespace }}&var-rollout={{ rollout.name }}"}),
    )
    .await;
    env.create_rollout(canary_rollout()).await;
    let running = Running::start_with(env.client.clone(), config());
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    subscribe(
        &env,
        json!([{"notifier": "team-mail", "triggers": ["CanaryVerdict"]}]),
        &hash_of(&r1),
    )
    .await;
    fail_a_canary(&env).await;
    let mails = eventually("the report is mailed, none pending", || async {
        let l = ledger(&env).await?;
        let mails = sink.messages();
        (l["pending"].as_array()?.is_empty() && !mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    println!(
        "subject: {}\ntext:\n{}",
        mail["subject"],
        mail["text"].as_str().unwrap_or("")
    );
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[Critical] default/web: canary of revision "),
        "{subject}"
    );
    assert!(subject.ends_with(": Failed (score 0.0)"), "{subject}");
    assert_eq!(mail["mailFrom"], "redblack@example.com");
    assert_eq!(
        mail["rcptTos"],
        json!(["team@example.com", "oncall@example.com"])
    );
    assert_eq!(mail["contentType"], "multipart/alternative");
    assert!(
        mail["messageId"]
            .as_str()
            .unwrap()
            .ends_with("@redblack.notification>")
    );
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("Score 0.0 (Fail)"), "{text}");
    assert!(text.contains(&latency_line()), "{text}");
    assert!(
        text.contains("Dashboard: https://grafana.example/d/rb?var-ns=default&var-rollout=web"),
        "{text}"
    );
    let html = mail["html"].as_str().unwrap();
    assert!(
        html.contains(
            "<a href=\"https://grafana.example/d/rb?var-ns=default&amp;var-rollout=web\">"
        ),
        "{html}"
    );
    let (c, b) = recorded_latency_means();
    assert!(
        html.contains(&format!(
            "<tr><td>latency</td><td>High</td><td>{c:.4}</td><td>{b:.4}</td>"
        )),
        "{html}"
    );
    let metrics = running.metrics.encode().unwrap();
    let line = r#"redblack_notifications_total{channel="email",trigger="CanaryVerdict",result="delivered"} 1"#;
    assert!(metrics.contains(line), "{line} not in\n{metrics}");
    running.stop().await.unwrap();
    assert_eq!(sink.messages().len(), 1);
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifiers_default_subscription_covers_the_rollouts_it_selects() {
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    let hooks = Receiver::start().await;
    let mut manifest = rollout_json("web", "demo:1", 2);
    manifest["metadata"]["labels"] = json!({"team": "shop"});
    env.create_rollout(manifest).await;
    let running = Running::start_with(env.client.clone(), config());
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    assert!(
        r1.spec.notifications.is_empty(),
        "no subscription of its own"
    );
    // Created after v1 is live: the ledger starts there.
    notifier(
        &env,
        "shop-feed",
        json!({"webhook": {"url": format!("{}/feed", hooks.url)},
               "subscribe": {"rolloutSelector": {"matchLabels": {"team": "shop"}},
                             "triggers": ["Promoted"]}}),
    )
    .await;
    eventually("the ledger starts at the live revision", || async {
        let l = ledger(&env).await?;
        (l["observed"]["currentRevision"] == hash_of(&r1)).then_some(())
    })
    .await;
    let r2 = env.set_image("web", "demo:2").await;
    env.wait_selected("web", &hash_of(&r2)).await;
    let feed = all_delivered(&env, &hooks, "/feed", 1).await;
    assert_eq!(triggers(&feed), ["Promoted"]);
    assert_eq!(feed[0].json()["event"]["revision"], hash_of(&r2));
    assert_once(&feed);
    running.stop().await.unwrap();
    assert_eq!(hooks.received().len(), 1);
    env.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_with_auth_trusts_the_notifiers_ca() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "notify test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let sink = smtp::SmtpSink::start_with(Some(smtp::Secured {
        cert: &cert.pem(),
        key: &key.serialize_pem(),
        user: "redblack",
        password: "correct horse",
    }));
    let env = Env::start(FAST).await;
    env.create_service("web", "web").await;
    secret(
        &env,
        &[("smtp-password", "correct horse"), ("ca.crt", &ca.pem())],
    )
    .await;
    notifier(
        &env,
        "team-mail",
        json!({"email": {"host": "127.0.0.1", "port": sink.port, "tls": "StartTLS",
                         "from": "redblack@example.com", "to": ["team@example.com"],
                         "auth": {"username": "redblack",
                                  "passwordSecretRef": {"name": "hooks", "key": "smtp-password"}},
                         "caSecretRef": {"name": "hooks", "key": "ca.crt"}}}),
    )
    .await;
    // The same without the CA: the server's certificate is not trusted.
    notifier(
        &env,
        "no-ca",
        json!({"email": {"host": "127.0.0.1", "port": sink.port, "tls": "StartTLS",
                         "from": "redblack@example.com", "to": ["team@example.com"],
                         "auth": {"username": "redblack",
                                  "passwordSecretRef": {"name": "hooks", "key": "smtp-password"}}}}),
    )
    .await;
    env.create_rollout(rollout_json("web", "demo:1", 2)).await;
    let running = Running::start_with(env.client.clone(), config());
    let r1 = env.wait_phase("web", Phase::Healthy).await;
    subscribe(
        &env,
        json!([{"notifier": "team-mail", "triggers": ["Promoted"]},
               {"notifier": "no-ca", "triggers": ["Promoted"]}]),
        &hash_of(&r1),
    )
    .await;
    let r2 = env.set_image("web", "demo:2").await;
    env.wait_selected("web", &hash_of(&r2)).await;
    let (mails, untrusted) = eventually("mailed once, and refused without the CA", || async {
        let l = ledger(&env).await?;
        let pending = l["pending"].as_array()?.clone();
        let mails = sink.messages();
        let untrusted = pending
            .iter()
            .find(|p| p["notifier"] == "no-ca" && p["attempts"].as_u64() >= Some(1))?;
        (pending.len() == 1 && !mails.is_empty()).then_some((mails, untrusted.clone()))
    })
    .await;
    let error = untrusted["lastError"].as_str().unwrap();
    println!("without the CA: {error}");
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0]["tls"], true, "STARTTLS");
    assert_eq!(mails[0]["authenticated"], true);
    assert_eq!(mails[0]["login"], "redblack");
    let subject = mails[0]["subject"].as_str().unwrap();
    assert_eq!(
        subject,
        format!(
            "[Info] default/web: traffic switched to revision {}",
            hash_of(&r2)
        )
    );
    running.stop().await.unwrap();
    env.sandbox.shutdown().await;
}
