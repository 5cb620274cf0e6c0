//! Benchmark (not a test): the dashboard's fleet page with many Rollouts.
//!
//!     cargo run --release --example bench_dashboard [-- --rollouts N] [--bin PATH]
//!
//! Starts the sandbox in-process (a SIMULATOR) and `redblack dashboard` as a
//! SEPARATE process (built by this program with `$CARGO build --release --bin
//! redblack` when run by cargo, or `--bin`), so that its memory is its own.
//! Creates N Rollouts (default 1,000), each with a status (Healthy, a canary
//! score) and a ReplicaSet it owns, and measures:
//!
//! 1. the dashboard's VmRSS with no Rollouts, and once its watches hold all N
//!    (its fleet page lists N rows);
//! 2. the fleet page over HTTP: time to the last byte (20 requests, from a
//!    client on the same host) and bytes sent;
//! 3. the pure render alone (rows + HTML from an in-process snapshot), 20 runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use redblack::api::Rollout;
use redblack::web::dashboard::fleet::render_fleet;
use redblack::web::dashboard::model::{Snapshot, fleet_rows};
use redblack_sandbox::SandboxConfig;
use serde_json::json;
use support::{BoxError, percentile, start_sandbox};
use tokio::io::{AsyncBufReadExt, BufReader};

type BoxResult<T> = Result<T, BoxError>;

struct Args {
    rollouts: usize,
    bin: Option<PathBuf>,
}

fn args() -> BoxResult<Args> {
    let mut a = Args {
        rollouts: 1000,
        bin: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rollouts" => a.rollouts = it.next().ok_or("--rollouts N")?.parse()?,
            "--bin" => a.bin = Some(it.next().ok_or("--bin PATH")?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

fn dashboard_bin(args: &Args) -> BoxResult<PathBuf> {
    if let Some(bin) = &args.bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.ends_with("release");
        println!(
            "building the dashboard: cargo build{} --bin redblack",
            if release { " --release" } else { "" }
        );
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--quiet", "--bin", "redblack"]);
        if release {
            cmd.arg("--release");
        }
        if !cmd.status()?.success() {
            return Err("cargo build --bin redblack failed".into());
        }
    }
    Ok(dir.join("redblack"))
}

fn rss_kb(pid: u32) -> BoxResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

async fn rows(url: &str) -> BoxResult<(usize, usize, Duration)> {
    let start = Instant::now();
    let body = reqwest::get(url).await?.bytes().await?;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&body);
    Ok((text.matches("<tr data-name=").count(), body.len(), took))
}

async fn create(client: &kube::Client, i: usize) -> BoxResult<()> {
    let ns = "default";
    let name = format!("app-{i:04}");
    let hash = format!("h{i:09}");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": format!("registry.example/{name}:v{}", i % 7)}]}},
            "strategy": {"redBlack": {"activeService": name}}}
    }))?;
    let r = rollouts.create(&PostParams::default(), &r).await?;
    let status = json!({"status": {"phase": "Healthy", "observedGeneration": 1,
        "stableRevision": hash, "currentRevision": hash, "replicas": 3, "readyReplicas": 3,
        "availableReplicas": 3, "updatedReplicas": 3, "lastScore": 90.0 + (i % 10) as f64,
        "history": [{"revision": 1, "hash": hash, "images": ["x"], "outcome": "Promoted",
                     "time": "2026-01-01T00:00:00Z"}]}});
    rollouts
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-{hash}"), "namespace": ns,
            "labels": {"app": name, "rollouts.redblack.io/pod-template-hash": hash},
            "annotations": {"rollouts.redblack.io/revision": "1"},
            "ownerReferences": [{"apiVersion": "redblack.io/v1alpha1", "kind": "Rollout", "name": name,
                                 "uid": r.uid().unwrap_or_default(), "controller": true}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name, "rollouts.redblack.io/pod-template-hash": hash}},
            "template": {"metadata": {"labels": {"app": name, "rollouts.redblack.io/pod-template-hash": hash}},
                         "spec": {"containers": [{"name": "app", "image": format!("registry.example/{name}:v{}", i % 7)}]}}}
    }))?;
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rs)
        .await?;
    Ok(())
}

fn ms(d: &[f64], p: f64) -> String {
    format!("{:.1} ms", percentile(d, p))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BoxResult<()> {
    let args = args()?;
    let bin = dashboard_bin(&args)?;
    let (sandbox, client) = start_sandbox(SandboxConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sandbox.write_kubeconfig(&kubeconfig)?;

    let mut child = tokio::process::Command::new(&bin)
        .arg("dashboard")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("no pid")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await??
            .ok_or("the dashboard exited")?;
        if let Some(u) = line.strip_prefix("redblack dashboard: ") {
            break u.trim().to_owned();
        }
    };
    rows(&url).await?;
    let rss_empty = rss_kb(pid)?;

    let n = args.rollouts;
    let created = Instant::now();
    let results: Vec<BoxResult<()>> = stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move { create(&client, i).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<BoxResult<Vec<()>>>()?;
    println!(
        "created {n} Rollouts (+ status, + a ReplicaSet each) in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (count, _, _) = rows(&url).await?;
        if count == n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the fleet page lists {count} of {n} Rollouts").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut http = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let (_, b, took) = rows(&url).await?;
        bytes = b;
        http.push(took.as_secs_f64() * 1000.0);
    }
    http.sort_by(f64::total_cmp);
    let rss_full = rss_kb(pid)?;

    let snapshot = Snapshot {
        rollouts: Api::<Rollout>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect(),
        replica_sets: Api::<ReplicaSet>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect(),
        ..Snapshot::default()
    };
    let mut pure = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let now = chrono::Utc::now();
        let html = render_fleet(&fleet_rows(&snapshot, now), now);
        pure.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(html);
    }
    pure.sort_by(f64::total_cmp);

    println!("== fleet page with {n} Rollouts");
    println!(
        "  HTTP GET / (server render + transfer, loopback): p50 {}, p90 {}, max {}",
        ms(&http, 0.5),
        ms(&http, 0.9),
        ms(&http, 1.0)
    );
    println!(
        "  bytes sent: {bytes} ({:.0} per Rollout; uncompressed)",
        bytes as f64 / n as f64
    );
    println!(
        "  pure render (rows + HTML, in-process): p50 {}, max {}",
        ms(&pure, 0.5),
        ms(&pure, 1.0)
    );
    println!("== dashboard memory (VmRSS of the dashboard process)");
    println!(
        "  0 Rollouts: {:.1} MB; {n} Rollouts watched: {:.1} MB ({:.1} KB per Rollout with its ReplicaSet)",
        rss_empty as f64 / 1024.0,
        rss_full as f64 / 1024.0,
        (rss_full.saturating_sub(rss_empty)) as f64 / n as f64
    );
    child.kill().await?;
    sandbox.shutdown().await;
    Ok(())
}
