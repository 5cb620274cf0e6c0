//! Leader election with fencing, with the real `redblack controller` binary
//! as two separate processes against one sandbox (served in this test):
//!
//! - a leader frozen by SIGSTOP is replaced within the lease duration, the
//!   rollout it left in progress completes under the new leader, and after
//!   SIGCONT the old process writes nothing at all — counted per process by
//!   the sandbox, from each process's user agent `redblack/V (IDENTITY)` —
//!   and exits;
//! - a leader SIGKILLed mid-canary is replaced, and the new leader continues
//!   the same CanaryAnalysis (same uid, not recreated) to a promotion.
//!
//! Short durations (lease 4 s, renew deadline 3 s, retry 500 ms) keep it
//! quick; every wait is a condition with a deadline, never a sleep.

mod fake_prometheus;
mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fake_prometheus::{FakePrometheus, Query, Reply};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, ResourceExt};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase};
use redblack::api::{Outcome, Phase, Rollout};
use redblack_sandbox::controllers::pods::READY_AFTER;
use serde_json::json;
use support::{Env, NS, eventually, hash_of, rollout_json};

const LEASE: &str = "redblack-controller";
const APP: &str = "web";

/// One `redblack controller` process; killed (and its log shown when the
/// test failed) on drop.
struct Operator {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn spawn(name: &'static str, dir: &Path, kubeconfig: &Path, extra: &[&str]) -> Operator {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_redblack"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
            ])
            .args(["--leader-election-namespace", NS])
            .args(["--lease-duration", "4s", "--renew-deadline", "3s"])
            .args(["--retry-period", "500ms"])
            .args(extra)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAMESPACE")
            .env_remove("REDBLACK_PROMETHEUS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("redblack controller starts");
        Operator { name, child, log }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// The address of its HTTP endpoints, from its log (it binds port 0).
    async fn addr(&self) -> String {
        const LINE: &str = "serving operator endpoints addr=";
        eventually(&format!("{} serves HTTP", self.name), || async {
            let log = std::fs::read_to_string(&self.log).ok()?;
            let rest = &log[log.find(LINE)? + LINE.len()..];
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            (!addr.is_empty()).then_some(addr)
        })
        .await
    }

    /// Waits until `path` answers `status` with a body containing `body`.
    async fn wait_http(&self, path: &str, status: u16, body: &str) {
        let addr = self.addr().await;
        let what = format!("{} answers {status} {body:?} on {path}", self.name);
        eventually(&what, || async {
            let (code, text) = http_get(&addr, path).await?;
            (code == status && text.contains(body)).then_some(())
        })
        .await
    }

    /// Waits (bounded) until the process has exited.
    async fn exited(&mut self, what: &str) -> ExitStatus {
        let child = &mut self.child;
        eventually(what, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of {} ---", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A plain HTTP/1.0 GET: (status, body), or None when it cannot connect.
async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The sandbox, a kubeconfig for the processes, and the Service.
async fn world() -> (Env, tempfile::TempDir, PathBuf) {
    let env = Env::start(Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    env.sandbox
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    env.create_service(APP, APP).await;
    (env, dir, kubeconfig)
}

/// Waits until the Lease is held by an identity of the process `name`
/// (identities are `<POD_NAME>-<random suffix>`); returns the identity.
async fn wait_holder(env: &Env, name: &str) -> String {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), NS);
    let prefix = format!("{name}-");
    eventually(&format!("{name} holds the Lease"), || async {
        let lease = leases.get_opt(LEASE).await.ok()??;
        let holder = lease.spec?.holder_identity?;
        holder.starts_with(&prefix).then_some(holder)
    })
    .await
}

/// The sandbox's request counters of one process, found by its identity
/// in its user agent.
fn agent(identity: &str) -> String {
    format!("({identity})")
}

fn writes(env: &Env, identity: &str) -> u64 {
    env.sandbox
        .request_counts()
        .writes_by_client(&agent(identity))
}

/// Waits until a standby has looked at the Lease (it is up and electing).
async fn wait_standing_by(env: &Env, name: &str) {
    let counts = env.sandbox.request_counts();
    let agent = format!("({name}-");
    eventually(&format!("{name} reads the Lease"), || {
        let seen = counts
            .by_client(&agent)
            .get(&("get".to_string(), "leases".to_string()))
            .copied()
            .unwrap_or(0);
        async move { (seen >= 2).then_some(()) }
    })
    .await;
}

async fn wait_promoted(env: &Env, hash: &str) -> Rollout {
    let r = eventually(&format!("revision {hash} promoted and Healthy"), || async {
        let r = env.rollouts().get(APP).await.ok()?;
        let s = r.status.as_ref()?;
        (s.phase == Some(Phase::Healthy)
            && s.stable_revision.as_deref() == Some(hash)
            && s.observed_generation == r.metadata.generation)
            .then_some(r)
    })
    .await;
    env.wait_selected(APP, hash).await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_replaced_and_writes_nothing_after_it_resumes() {
    let (env, dir, kubeconfig) = world().await;
    let mut a = Operator::spawn("op-a", dir.path(), &kubeconfig, &[]);
    let a_id = wait_holder(&env, "op-a").await;
    let b = Operator::spawn("op-b", dir.path(), &kubeconfig, &[]);
    wait_standing_by(&env, "op-b").await;
    // Both Ready (a standby must be, or a rolling update would stall);
    // only the leader runs the controllers.
    a.wait_http("/readyz", 200, "ok: leader").await;
    b.wait_http("/readyz", 200, "ok: standby").await;
    a.wait_http("/metrics", 200, "\nredblack_leader 1\n").await;
    b.wait_http("/metrics", 200, "\nredblack_leader 0\n").await;

    let v1 = env.create_rollout(rollout_json(APP, "demo:1", 2)).await;
    wait_promoted(&env, &hash_of(&v1)).await;
    assert!(writes(&env, &a_id) > 0, "the leader did the first deploy");
    assert_eq!(
        env.sandbox.request_counts().writes_by_client("(op-b-"),
        0,
        "a standby writes nothing, not even the Lease"
    );

    // v2's pods take a while to become ready: the update is in progress
    // when the leader freezes.
    let v2 = env
        .patch(
            APP,
            json!({"spec": {"template": {
                "metadata": {"annotations": {READY_AFTER: "2s"}},
                "spec": {"containers": [{"name": "app", "image": "demo:2"}]}}}}),
        )
        .await;
    let h2 = hash_of(&v2);
    eventually("op-a creates v2's fleet", || async {
        env.rs_for(APP, &h2).await.map(|_| ())
    })
    .await;
    a.signal("STOP");
    let frozen_at = std::time::Instant::now();

    let b_id = wait_holder(&env, "op-b").await;
    // Reported, not asserted (a busy machine may delay the standby's look):
    // the design bound is the lease duration (4 s) plus one retry period.
    eprintln!(
        "op-b took the Lease {:.1} s after op-a froze",
        frozen_at.elapsed().as_secs_f64()
    );
    b.wait_http("/readyz", 200, "ok: leader").await;
    b.wait_http("/metrics", 200, "\nredblack_leader 1\n").await;
    // op-a is frozen: every write it sent before the freeze has arrived.
    let a_writes_when_replaced = writes(&env, &a_id);
    let lease: Api<Lease> = Api::namespaced(env.client.clone(), NS);
    let transitions = lease
        .get(LEASE)
        .await
        .expect("the Lease")
        .spec
        .and_then(|s| s.lease_transitions);
    assert_eq!(transitions, Some(1), "one change of holder: op-a to op-b");

    wait_promoted(&env, &h2).await;
    assert!(
        writes(&env, &b_id) > 0,
        "the new leader finished the update"
    );

    a.signal("CONT");
    let status = a
        .exited("op-a, resumed, notices its Lease is stale and exits")
        .await;
    assert!(
        !status.success(),
        "a deposed leader exits with an error: {status:?}"
    );
    let counts = env.sandbox.request_counts();
    assert_eq!(
        writes(&env, &a_id),
        a_writes_when_replaced,
        "op-a wrote after it resumed: {:?}",
        counts.by_client(&agent(&a_id))
    );
    let holder = lease
        .get(LEASE)
        .await
        .expect("the Lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(b_id.as_str()));
    drop(b);
}

/// The canary's only metric: equal on both sides, so the judge passes it.
fn steady_latency() -> fake_prometheus::Answer {
    Arc::new(|q: &Query| Reply::one(q, |_, _| Some("0.1".to_owned())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_canary_is_replaced_and_the_same_analysis_continues() {
    let (env, dir, kubeconfig) = world().await;
    let prometheus = FakePrometheus::start(steady_latency()).await;
    let extra = ["--prometheus-url", prometheus.url.as_str()];
    let a = Operator::spawn("op-a", dir.path(), &kubeconfig, &extra);
    wait_holder(&env, "op-a").await;
    let b = Operator::spawn("op-b", dir.path(), &kubeconfig, &extra);
    wait_standing_by(&env, "op-b").await;

    let v1 = env.create_rollout(rollout_json(APP, "demo:1", 2)).await;
    wait_promoted(&env, &hash_of(&v1)).await;

    let v2 = env
        .patch(
            APP,
            json!({"spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "demo:2"}]}},
                "strategy": {"redBlack": {"canary": {"replicas": 1, "analysis": {"inline": {
                    "interval": "2s", "lifetime": "6s", "step": "1s",
                    "metrics": [{"name": "latency", "direction": "increase",
                                 "query": "avg(latency_seconds{namespace=\"${namespace}\", pod=~\"${podRegex}\"})"}]
                }}}}}}}),
        )
        .await;
    let h2 = hash_of(&v2);
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), NS);
    let name = format!("{APP}-{h2}-1");
    let running = eventually("op-a's canary analysis is judging", || async {
        let ca = analyses.get_opt(&name).await.ok()??;
        let phase = ca.status.as_ref()?.phase?;
        (phase == CanaryAnalysisPhase::Running).then_some(ca)
    })
    .await;
    drop(a); // SIGKILL, mid-canary

    wait_holder(&env, "op-b").await;
    let r = wait_promoted(&env, &h2).await;
    let status = r.status.expect("status");
    let record = status
        .history
        .iter()
        .rfind(|h| h.hash == h2)
        .expect("v2 in the history");
    assert_eq!(record.outcome, Outcome::Promoted, "{record:?}");
    let judged = analyses.get(&name).await.expect("the analysis");
    assert_eq!(
        judged.uid(),
        running.uid(),
        "the same CanaryAnalysis continued, not a new one"
    );
    assert_eq!(
        judged.status.as_ref().and_then(|s| s.phase),
        Some(CanaryAnalysisPhase::Passed),
        "{:?}",
        judged.status
    );
    let of_v2 = analyses
        .list(&Default::default())
        .await
        .expect("list analyses")
        .items
        .into_iter()
        .filter(|ca| ca.name_any().starts_with(&format!("{APP}-{h2}")))
        .count();
    assert_eq!(of_v2, 1, "one analysis for the canary of v2");
    drop(b);
}

/// The gate alone, in-process and deterministic: the controllers' client
/// sends no write while the gate is closed — before the first renew, and
/// once the last renew is a renew deadline old — and reads always pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gated_client_sends_no_write_while_the_gate_is_closed() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::PostParams;
    use redblack::leader::{WriteGate, client};

    let env = Env::start(Duration::from_millis(100)).await;
    let mut config = kube::Config::new(env.sandbox.url().parse().expect("sandbox URL"));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("gate-test"),
    ));
    let renew_deadline = Duration::from_millis(300);
    let gate = WriteGate::new(renew_deadline);
    let gated = client::gated(config, gate.clone()).expect("client");
    let maps: Api<ConfigMap> = Api::namespaced(gated, NS);
    let map = |name: &str| ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    let counts = env.sandbox.request_counts();

    let refused = maps.create(&PostParams::default(), &map("before")).await;
    assert!(refused.is_err(), "closed before the first renew");
    assert_eq!(counts.writes_by_client("gate-test"), 0);
    assert!(maps.get_opt("before").await.expect("reads pass").is_none());

    gate.renewed(std::time::Instant::now());
    maps.create(&PostParams::default(), &map("while-open"))
        .await
        .expect("an open gate lets the write through");
    assert_eq!(counts.writes_by_client("gate-test"), 1);

    // No renew: the gate closes by itself, by the monotonic clock.
    eventually("the gate closes", || async {
        (!gate.is_open()).then_some(())
    })
    .await;
    let refused = maps.create(&PostParams::default(), &map("after")).await;
    assert!(refused.is_err(), "stale renew: fenced");
    assert_eq!(counts.writes_by_client("gate-test"), 1);
    assert!(gate.refused() >= 2);
}
