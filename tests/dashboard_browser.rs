//! The dashboard in a real browser: headless Chromium (Debian's `chromium`),
//! driven over the DevTools protocol (chromiumoxide), against the sandbox with
//! a live fleet (every pod a real `redblack demo-app` process under real
//! load), a real Prometheus scraping it and the operator judging canaries.
//!
//! One scenario, because each canary costs real seconds: the fleet table lists
//! the Rollouts; a running canary appears in it and its score changes with no
//! reload (a marker set on the page survives); the failed canary's report
//! shows the failing metric first with both series charted; the promote
//! button (after its confirmation) switches the Service; a cross-origin POST
//! is refused; a dashboard started without --allow-actions shows no actions
//! and refuses them. Every wait is bounded; nothing asserts on time.

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::Page;
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use redblack::api::{CanaryPhase, Phase, Rollout};
use redblack::cli::controller::ControllerConfig;
use redblack::web::dashboard::{Running as Dashboard, Settings, start};
use redblack_demo::load::{LoadConfig, run_load};
use redblack_sandbox::SandboxConfig;
use redblack_sandbox::controllers::process_runtime::ProcessConfig;
use redblack_sandbox::prometheus_sd;
use redblack_sandbox::testing::prometheus::{PrometheusOptions, PrometheusProcess};
use serde_json::{Value, json};
use support::{Env, NS, Running, eventually_within, hash_of, web};

const APP: &str = "web";
const WAIT: Duration = Duration::from_secs(300);

fn analysis(interval: &str, lifetime: &str) -> Value {
    let pods = r#"namespace="${namespace}", pod=~"${podRegex}""#;
    json!({
        "interval": interval, "lifetime": lifetime, "step": "1s",
        "traffic": format!("sum(increase(http_requests_total{{{pods}}}[${{interval}}]))"),
        "metrics": [
            {"name": "error-rate", "kind": "rate", "direction": "increase", "critical": true,
             "numerator": format!(r#"sum(increase(http_requests_total{{{pods}, code=~"5.."}}[${{interval}}]))"#),
             "denominator": format!("sum(increase(http_requests_total{{{pods}}}[${{interval}}]))")},
            {"name": "latency-p99", "direction": "increase", "effectSize": {"allowedIncrease": 1.5},
             "query": format!("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{pods}}}[${{interval}}])))")}
        ]
    })
}

/// A canary judged every 4 s over 16 s; a passed revision waits for a promote.
fn strategy() -> Value {
    json!({"promotion": "Manual",
           "canary": {"replicas": 1, "analysis": {"inline": analysis("4s", "16s")}}})
}

fn status(r: &Rollout) -> redblack::api::RolloutStatus {
    r.status.clone().unwrap_or_default()
}

async fn apply(env: &Env, manifest: Value) -> String {
    let patch = json!({"spec": {"template": manifest["spec"]["template"],
                                "strategy": manifest["spec"]["strategy"]}});
    let r = env
        .rollouts()
        .patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("rollout patched");
    hash_of(&r)
}

async fn wait_rollout(env: &Env, what: &str, done: impl Fn(&Rollout) -> bool) -> Rollout {
    eventually_within(WAIT, what, || async {
        let r = env.rollouts().get(APP).await.ok()?;
        done(&r).then_some(r)
    })
    .await
}

async fn dashboard(env: &Env, allow_actions: bool, prometheus: &str) -> Dashboard {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start(
        env.client.clone(),
        listener,
        Settings {
            namespace: None,
            allow_actions,
            // The analyses name none: the operator's, as `--prometheus-url`.
            prometheus_url: Some(prometheus.to_owned()),
        },
    )
    .await
    .expect("dashboard starts")
}

/// Evaluates `js` (an expression giving a string, or null) until it gives a
/// non-empty string; returns it.
async fn dom_until(page: &Page, what: &str, js: &str) -> String {
    eventually_within(WAIT, what, || async {
        let v: Option<String> = page.evaluate(js).await.ok()?.into_value().ok()?;
        v.filter(|s| !s.is_empty())
    })
    .await
}

async fn js(page: &Page, js: &str) -> Value {
    page.evaluate(js)
        .await
        .expect("evaluate")
        .into_value()
        .expect("a JSON value")
}

/// Debian's `chromium` on PATH (hack/deps.sh installs it), or $CHROMIUM.
fn chromium() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return path.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .expect("chromium on PATH (hack/deps.sh installs it)")
}

async fn launch() -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("profile dir");
    let config = BrowserConfig::builder()
        .chrome_executable(chromium())
        .no_sandbox()
        .user_data_dir(dir.path())
        .window_size(1280, 800)
        .args([
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .request_timeout(Duration::from_secs(60))
        .launch_timeout(Duration::from_secs(60))
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("chromium starts");
    let events = tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if event.is_err() {
                break;
            }
        }
    });
    (browser, events, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_chromium_follows_a_live_fleet_and_promotes() {
    // reqwest's rustls needs the process' provider (ring, as kube's).
    redblack::runtime::client::install_crypto_provider();
    // The live fleet: sandbox (pods as processes), Prometheus, operator, load.
    let dir = tempfile::tempdir().expect("temp dir");
    let sd_file = dir.path().join("pods.json");
    let env = Env::start_with(SandboxConfig {
        pod_ready_after: Duration::from_millis(200),
        process: ProcessConfig {
            command: Some(env!("CARGO_BIN_EXE_redblack").into()),
            restart_backoff: Duration::from_millis(200),
            max_restart_backoff: Duration::from_secs(2),
        },
        prometheus_sd_file: Some(sd_file.clone()),
        ..SandboxConfig::default()
    })
    .await;
    let prometheus = PrometheusProcess::start_with(PrometheusOptions {
        scrape_configs: Some(prometheus_sd::scrape_config("pods", &sd_file)),
        scrape_interval: Duration::from_millis(250),
        ..PrometheusOptions::default()
    })
    .expect("prometheus starts");
    env.create_service(APP, APP).await;
    env.create_service("api", "api").await;
    env.create_rollout(web("v1", &[], strategy())).await;
    // A second Rollout, without a canary, for the fleet table.
    let mut api = web("v1", &[], json!({"activeService": "api"}));
    api["metadata"]["name"] = json!("api");
    api["spec"]["selector"]["matchLabels"]["app"] = json!("api");
    api["spec"]["template"]["metadata"]["labels"]["app"] = json!("api");
    api["spec"]["replicas"] = json!(1);
    env.create_rollout(api).await;
    let operator = Running::start_with(
        env.client.clone(),
        ControllerConfig {
            prometheus_url: Some(prometheus.url().to_owned()),
            ..ControllerConfig::default()
        },
    );
    let v1 = wait_rollout(&env, "v1 Healthy", |r| {
        status(r).phase == Some(Phase::Healthy)
    })
    .await;
    let h1 = hash_of(&v1);
    let url = eventually_within(WAIT, "the Service's data-plane port", || async {
        env.sandbox.dataplane().service_url(NS, APP)
    })
    .await;
    let load = tokio::spawn(async move {
        let cfg = LoadConfig {
            target: url,
            rps: 50.0,
            duration: Duration::from_secs(900),
            concurrency: 64,
            timeout: Duration::from_secs(5),
        };
        let _ = run_load(cfg, |_| {}).await;
    });

    let with_actions = dashboard(&env, true, prometheus.url()).await;
    let read_only = dashboard(&env, false, prometheus.url()).await;
    let base = format!("http://{}", with_actions.addr);
    let (mut browser, events, _profile) = launch().await;

    // (1) The fleet table lists the Rollouts.
    let page = browser
        .new_page(format!("{base}/"))
        .await
        .expect("fleet page");
    let names = dom_until(
        &page,
        "both Rollouts in the fleet table",
        "(function(){var r=document.querySelectorAll('#fleet tbody tr');\
         return r.length==2?Array.prototype.map.call(r,function(x){return x.getAttribute('data-name')}).join(','):null})()",
    )
    .await;
    assert_eq!(names, "default/api,default/web");
    js(&page, "window.__noReload='yes'").await;

    // (2) A bad canary (30% errors) appears and its score changes, live.
    let h3 = apply(&env, web("v3", &[("DEMO_ERROR_RATE", "0.3")], strategy())).await;
    let score_js = "(function(){var a=document.querySelector('tr[data-name=\"default/web\"] .score');\
                    return a?a.textContent+'|'+(a.getAttribute('href')||''):null})()";
    let seen = Mutex::new(BTreeSet::new());
    eventually_within(WAIT, "the canary's score live in the fleet table", || async {
        let v: Option<String> = page.evaluate(score_js).await.ok()?.into_value().ok()?;
        if let Some(v) = v {
            seen.lock().expect("seen").insert(v);
        }
        let band: Option<String> = page
            .evaluate("(function(){var b=document.querySelector('tr[data-name=\"default/web\"] .Fail');return b?b.textContent:null})()")
            .await
            .ok()?
            .into_value()
            .ok()?;
        band.map(|_| ())
    })
    .await;
    let seen = seen.into_inner().expect("seen");
    let analysis = seen
        .iter()
        .find_map(|s| {
            s.split_once("|/analyses/default/")
                .map(|(_, n)| n.to_owned())
        })
        .expect("the score links to the canary report");
    assert!(analysis.contains(&h3), "{analysis}");
    assert!(seen.len() >= 2, "the score changed on the page: {seen:?}");
    assert_eq!(
        js(&page, "window.__noReload||null").await,
        json!("yes"),
        "updated without a reload"
    );
    let updates = js(&page, "+document.body.getAttribute('data-updates')").await;
    assert!(updates.as_f64().unwrap_or(0.0) >= 1.0, "{updates}");
    let r = wait_rollout(&env, "v3 reverted", |r| {
        status(r).canary.and_then(|c| c.phase) == Some(CanaryPhase::Failed)
    })
    .await;
    assert_eq!(env.selected(APP).await.as_deref(), Some(h1.as_str()));
    assert_eq!(status(&r).stable_revision.as_deref(), Some(h1.as_str()));

    // (3) The failed canary's report: the failing metric first, charted.
    page.goto(format!("{base}/analyses/default/{analysis}"))
        .await
        .expect("report page");
    let first = dom_until(
        &page,
        "the report's metrics",
        "(function(){var m=document.querySelector('.metric');return m?m.getAttribute('data-name')+'/'+m.getAttribute('data-class'):null})()",
    )
    .await;
    assert_eq!(first, "error-rate/High");
    let chart = js(
        &page,
        "(function(){var m=document.querySelector('.metric');\
         return Array.prototype.map.call(m.querySelectorAll('svg polyline'),function(p){\
           return p.getAttribute('data-label')+':'+p.getAttribute('points').trim().split(' ').filter(Boolean).length})})()",
    )
    .await;
    let series: Vec<(String, usize)> = chart
        .as_array()
        .expect("polylines")
        .iter()
        .filter_map(|v| {
            let (l, n) = v.as_str()?.split_once(':')?;
            Some((l.to_owned(), n.parse().ok()?))
        })
        .collect();
    let why = js(&page, "(function(){var n=document.querySelector('.metric .nochart');return n?n.textContent:''})()").await;
    assert_eq!(series.len(), 2, "{chart} {why}");
    assert!(
        series.iter().any(|(l, n)| l == "canary" && *n > 1),
        "{chart}"
    );
    assert!(
        series.iter().any(|(l, n)| l == "baseline" && *n > 1),
        "{chart}"
    );

    // (4) A healthy v2 passes and waits for a promote; the button promotes.
    let h2 = apply(&env, web("v2", &[], strategy())).await;
    wait_rollout(&env, "v2 passed, waiting for a promote", |r| {
        let s = status(r);
        s.current_revision.as_deref() == Some(h2.as_str())
            && s.canary.as_ref().and_then(|c| c.phase) == Some(CanaryPhase::Passed)
            && s.phase == Some(Phase::Paused)
    })
    .await;
    assert_eq!(env.selected(APP).await.as_deref(), Some(h1.as_str()));
    page.goto(format!("{base}/rollouts/default/{APP}"))
        .await
        .expect("rollout page");
    page.find_element("#action-promote button")
        .await
        .expect("a promote button")
        .click()
        .await
        .expect("click promote");
    let confirm = eventually_within(WAIT, "the confirmation page", || async {
        page.find_element("#confirm").await.ok()
    })
    .await;
    confirm.click().await.expect("confirm");
    let result = dom_until(
        &page,
        "the action's result",
        "(function(){var r=document.getElementById('result');return r?r.className+': '+r.textContent:null})()",
    )
    .await;
    assert!(result.starts_with("ok: "), "{result}");
    eventually_within(WAIT, "the Service switched to v2", || async {
        (env.selected(APP).await.as_deref() == Some(h2.as_str())).then_some(())
    })
    .await;

    // (5) Cross-site requests are refused, even with the right token.
    let confirm_html = reqwest::get(format!("{base}/confirm/default/{APP}/abort"))
        .await
        .expect("confirm page")
        .text()
        .await
        .expect("body");
    let token = confirm_html
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a token in the form")
        .to_owned();
    let http = reqwest::Client::new();
    let post = |origin: &str, token: &str| {
        http.post(format!("{base}/actions/default/{APP}/pause"))
            .header("Origin", origin)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let evil = post("http://evil.example", &token).await.expect("post");
    assert_eq!(evil.status(), 403);
    assert!(
        evil.text()
            .await
            .unwrap_or_default()
            .contains("cross-origin request refused")
    );
    let no_token = post(&base, "wrong").await.expect("post");
    assert_eq!(no_token.status(), 403);
    assert!(!env.rollouts().get(APP).await.expect("rollout").spec.paused);

    // (6) Without --allow-actions: no buttons, no confirmation, no action.
    let ro = format!("http://{}", read_only.addr);
    page.goto(format!("{ro}/rollouts/default/{APP}"))
        .await
        .expect("read-only rollout page");
    dom_until(
        &page,
        "the read-only Rollout page",
        "(function(){var p=document.getElementById('phase');return p?p.textContent:null})()",
    )
    .await;
    assert_eq!(
        js(
            &page,
            "document.querySelectorAll('#actions, .action').length"
        )
        .await,
        json!(0)
    );
    let refused = http
        .post(format!("{ro}/actions/default/{APP}/pause"))
        .header("Origin", &ro)
        .body(format!("token={token}"))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);
    assert_eq!(
        reqwest::get(format!("{ro}/confirm/default/{APP}/pause"))
            .await
            .expect("get")
            .status(),
        404
    );

    browser.close().await.expect("browser closes");
    let _ = browser.wait().await;
    events.abort();
    load.abort();
    with_actions.server.abort();
    read_only.server.abort();
    operator.stop().await.expect("operator stops cleanly");
    env.sandbox.shutdown().await;
    drop(prometheus);
}
