//! The dashboard over plain HTTP against the sandbox (no browser, no pods as
//! processes: fast): the fleet page from the watches, 404 pages that say what
//! was not found, the "API unreachable" banner raised while the API fails the
//! watches and gone once it answers again, and an action refused by RBAC shown
//! with the API's own message.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::PostParams;
use redblack::web::dashboard::{Running as Dashboard, Settings, start};
use serde_json::json;
use support::{Env, NS, TIMEOUT, eventually_within, rollout_json};

async fn dashboard(
    client: kube::Client,
    namespace: Option<&str>,
    allow_actions: bool,
) -> Dashboard {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start(
        client,
        listener,
        Settings {
            namespace: namespace.map(str::to_owned),
            allow_actions,
            prometheus_url: None,
        },
    )
    .await
    .expect("dashboard starts")
}

/// A TCP proxy to the API server that can be cut (every connection dropped,
/// the port closed) and started again on the same port.
struct Proxy {
    addr: SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        Proxy::start_on("127.0.0.1:0".parse().unwrap(), upstream).await
    }

    async fn start_on(addr: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listener = eventually_within(TIMEOUT, "the proxy's port bound", || async {
            tokio::net::TcpListener::bind(addr).await.ok()
        })
        .await;
        let addr = listener.local_addr().expect("proxy address");
        let mut tasks = tokio::task::JoinSet::new();
        let conns = std::sync::Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
        let held = conns.clone();
        tasks.spawn(async move {
            // The connection tasks live in `held` and die with this task.
            let _held = held;
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                conns.lock().await.spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Proxy { addr, tasks }
    }

    /// Cuts every connection and closes the port; the address to start on again.
    fn stop(mut self) -> SocketAddr {
        self.tasks.abort_all();
        self.addr
    }
}

/// The administrator's client, through `proxy`.
fn kube_client_via(env: &Env, proxy: SocketAddr) -> kube::Client {
    let mut config = kube::Config::new(format!("http://{proxy}").parse().expect("uri"));
    config.auth_info.token = Some(env.sandbox.admin_token().into());
    kube::Client::try_from(config).expect("client")
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// A ServiceAccount that may read what the dashboard watches, and nothing more.
async fn viewer(env: &Env) -> kube::Client {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "viewer", "namespace": NS}})).unwrap();
    Api::<ServiceAccount>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &sa)
        .await
        .expect("service account");
    let read = json!(["get", "list", "watch"]);
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "viewer", "namespace": NS},
        "rules": [
            {"apiGroups": ["redblack.io"], "resources": ["rollouts", "canaryanalyses"], "verbs": read},
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": read},
            {"apiGroups": [""], "resources": ["services"], "verbs": read},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read}
        ]
    }))
    .unwrap();
    Api::<Role>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "viewer", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": NS}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding");
    env.sandbox
        .client_for_service_account(NS, "viewer")
        .expect("viewer client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_404s_the_api_banner_and_an_rbac_refusal() {
    redblack::runtime::client::install_crypto_provider();
    let env = Env::start(Duration::from_millis(100)).await;
    env.create_service("web", "web").await;
    env.create_rollout(rollout_json("web", "demo:v1", 2)).await;
    let admin = dashboard(env.client.clone(), None, false).await;
    let base = format!("http://{}", admin.addr);

    // The fleet page lists the Rollout (from the watches).
    let (code, fleet) = get(&format!("{base}/")).await;
    assert_eq!(code, 200);
    assert!(fleet.contains("data-name=\"default/web\""), "{fleet}");
    assert!(!fleet.contains("id=\"api-banner\""));

    // 404 pages say what was not found.
    for (path, what) in [
        (
            "/rollouts/default/nope",
            "Rollout default/nope was not found",
        ),
        (
            "/analyses/default/nope",
            "CanaryAnalysis default/nope was not found",
        ),
        ("/nowhere", "The page /nowhere was not found"),
        ("/confirm/default/web/promote", "actions are disabled"),
    ] {
        let (code, body) = get(&format!("{base}{path}")).await;
        assert_eq!(code, 404, "{path}");
        assert!(body.contains(what), "{path}: {body}");
    }

    // The API becomes unreachable (its connections cut, its port closed):
    // the banner, over the last known state; it goes once the API is back.
    let proxy = Proxy::start(env.sandbox.addr()).await;
    let through = kube_client_via(&env, proxy.addr);
    let cut = dashboard(through, None, false).await;
    let cbase = format!("http://{}", cut.addr);
    let (_, up) = get(&format!("{cbase}/")).await;
    assert!(
        up.contains("data-name=\"default/web\"") && !up.contains("id=\"api-banner\""),
        "{up}"
    );
    let proxy = proxy.stop();
    let down = eventually_within(TIMEOUT, "the API banner", || async {
        let (_, body) = get(&format!("{cbase}/")).await;
        body.contains("id=\"api-banner\"").then_some(body)
    })
    .await;
    assert!(
        down.contains("data-name=\"default/web\""),
        "the last known state stays: {down}"
    );
    let _proxy = Proxy::start_on(proxy, env.sandbox.addr()).await;
    eventually_within(TIMEOUT, "the banner gone once the API answers", || async {
        let (_, body) = get(&format!("{cbase}/")).await;
        (!body.contains("id=\"api-banner\"")).then_some(())
    })
    .await;

    // With a ServiceAccount that may only read: the pages work, a pause is
    // refused with the API's message.
    let viewer = viewer(&env).await;
    let limited = dashboard(viewer, Some(NS), true).await;
    let vbase = format!("http://{}", limited.addr);
    let (_, confirm) = get(&format!("{vbase}/confirm/default/web/pause")).await;
    let token = confirm
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a token")
        .to_owned();
    let refused = reqwest::Client::new()
        .post(format!("{vbase}/actions/default/web/pause"))
        .header("Origin", &vbase)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 403);
    let body = refused.text().await.expect("body");
    assert!(body.contains("class=\"refused\""), "{body}");
    assert!(body.contains("forbidden"), "the API's message: {body}");
    assert!(!env.get("web").await.spec.paused);

    admin.server.abort();
    cut.server.abort();
    limited.server.abort();
    env.sandbox.shutdown().await;
}
