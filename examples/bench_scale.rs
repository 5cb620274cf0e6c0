//! Benchmark (not a test): the Rollout controller at scale ("cheap at scale" in
//! docs/architecture.md; anchor: Argo Rollouts' controller holds 11–14 GB with
//! 11k–13k Rollouts, ≈ 1 MB per Rollout, argo-rollouts #2855).
//!
//!     cargo run --release --example bench_scale [-- --rollouts N]
//!
//! Starts the sandbox in-process (a SIMULATOR; large watch history) and the
//! controller as a SEPARATE process (`redblack controller --kubeconfig F`, built
//! by this program with `$CARGO build --release --bin redblack` when run by
//! cargo, or given with `--controller-bin`), so that its memory is its own.
//! Then, for N Rollouts (`replicas: 1` of a simulated image, one Service each,
//! pods ready after 200 ms):
//!
//! 1. memory: controller VmRSS after convergence minus VmRSS when ready with no
//!    Rollouts, per Rollout and per cached object;
//! 2. API requests to converge (until all are Healthy), by verb and resource;
//! 3. steady state: requests in a quiet window, per Rollout per minute;
//! 4. an update wave (new image tag on every Rollout): requests per red/black
//!    rollout until every Service selects the new fleet.
//!
//! Requests are counted by the sandbox; the benchmark's own requests (the
//! creates and the template patches) are known exactly and subtracted, and its
//! polling reads the sandbox's store in-process (not counted). Everything is a
//! count or a ratio; wall times are printed only as context.

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use redblack::api::{POD_TEMPLATE_HASH_LABEL, Rollout};
use redblack_sandbox::registry::GroupResource;
use redblack_sandbox::{RequestCounts, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use support::{BoxError, Counts, by_verb, settle, total};

type BoxResult<T> = Result<T, BoxError>;

const NS: &str = "default";
/// Argo Rollouts: 11–14 GB RSS at 11k–13k Rollouts (argo-rollouts #2855).
const ARGO_BYTES_PER_ROLLOUT: f64 = 1.0e6;
/// Requests in flight while the benchmark creates or patches objects.
const CLIENT_CONCURRENCY: usize = 16;

struct Args {
    rollouts: usize,
    steady: Duration,
    timeout: Duration,
    controller_bin: Option<PathBuf>,
}

fn parse_args() -> BoxResult<Args> {
    let mut args = Args {
        rollouts: 2_000,
        steady: Duration::from_secs(30),
        timeout: Duration::ZERO,
        controller_bin: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rollouts" => args.rollouts = value()?.parse()?,
            "--steady-secs" => args.steady = Duration::from_secs(value()?.parse()?),
            "--timeout-secs" => args.timeout = Duration::from_secs(value()?.parse()?),
            "--controller-bin" => args.controller_bin = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!(
                    "bench_scale [--rollouts N (2000)] [--steady-secs S (30)] \
                     [--timeout-secs T (per phase; default 120 + N/10)] [--controller-bin PATH]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if args.rollouts == 0 {
        return Err("--rollouts must be at least 1".into());
    }
    if args.timeout.is_zero() {
        args.timeout = Duration::from_secs(120 + args.rollouts as u64 / 10);
    }
    Ok(args)
}

/// The controller binary: built now when run by cargo (so it is never stale).
fn controller_bin(args: &Args) -> BoxResult<PathBuf> {
    if let Some(bin) = &args.controller_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    // target/release/examples/bench_scale -> target/release/redblack
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        println!("building the controller: cargo build --release --bin redblack");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--quiet", "--bin", "redblack"])
            .status()?;
        if !status.success() {
            return Err("cargo build --release --bin redblack failed".into());
        }
    }
    let bin = dir.join("redblack");
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release --bin redblack` first",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

// ---------------------------------------------------------------------------
// The controller process: memory, CPU, metrics
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss_kb: u64,
    hwm_kb: u64,
}

fn proc_mem(pid: u32) -> BoxResult<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Ok(Mem {
        rss_kb: field("VmRSS:").ok_or("no VmRSS")?,
        hwm_kb: field("VmHWM:").ok_or("no VmHWM")?,
    })
}

/// utime + stime of a process, in seconds (10 ms resolution).
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A tiny HTTP/1.0 GET against 127.0.0.1 (the controller's own endpoints).
async fn http_get(addr: SocketAddr, path: &str) -> BoxResult<(u16, String)> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("not an HTTP response")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// Sum of every sample of a counter family in OpenMetrics text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Controller {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

impl Controller {
    async fn start(bin: &Path, kubeconfig: &Path, log: &Path) -> BoxResult<Controller> {
        let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(bin)
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .arg("--health-addr")
            .arg(addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the controller exited at once")?;
        let mut c = Controller { child, pid, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.child.try_wait()? {
                return Err(
                    format!("the controller exited ({status}); see {}", log.display()).into(),
                );
            }
            if let Ok((200, _)) = http_get(addr, "/readyz").await {
                return Ok(c);
            }
            if Instant::now() > deadline {
                return Err("the controller did not become ready in 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn mem(&self) -> BoxResult<Mem> {
        proc_mem(self.pid)
    }

    fn cpu(&self) -> f64 {
        proc_cpu(self.pid).unwrap_or(f64::NAN)
    }

    async fn metrics(&self) -> ControllerMetrics {
        let text = http_get(self.addr, "/metrics")
            .await
            .map(|(_, b)| b)
            .unwrap_or_default();
        ControllerMetrics {
            reconciles: metric_sum(&text, "redblack_reconciles_total"),
            errors: metric_sum(&text, "redblack_reconcile_errors_total"),
            writes: metric_sum(&text, "redblack_api_writes_total"),
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct ControllerMetrics {
    reconciles: f64,
    errors: f64,
    writes: f64,
}

impl std::ops::Sub for ControllerMetrics {
    type Output = ControllerMetrics;
    fn sub(self, o: ControllerMetrics) -> ControllerMetrics {
        ControllerMetrics {
            reconciles: self.reconciles - o.reconciles,
            errors: self.errors - o.errors,
            writes: self.writes - o.writes,
        }
    }
}

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

fn name(i: usize) -> String {
    format!("app-{i:05}")
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080}]
        }
    })
}

fn rollout(name: &str, tag: &str) -> Value {
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"sandbox.redblack.io/ready-after": "200ms"}
                },
                "spec": {"containers": [{"name": "app", "image": format!("registry.example/app:{tag}")}]}
            },
            "strategy": {"redBlack": {"activeService": name, "scaleDownDelay": "30m"}}
        }
    })
}

/// The store, read in-process (these reads are not API requests).
struct View {
    sandbox_store: std::sync::Arc<redblack_sandbox::store::Store>,
}

#[derive(Default)]
struct Progress {
    healthy: usize,
    /// Healthy on a revision different from the one recorded before the wave.
    switched: usize,
    stable: HashMap<String, String>,
}

impl View {
    fn list(&self, group: &str, resource: &str) -> Vec<std::sync::Arc<Value>> {
        self.sandbox_store
            .list(&GroupResource::new(group, resource), Some(NS))
            .0
    }

    fn progress(&self, before: &HashMap<String, String>) -> Progress {
        let mut p = Progress::default();
        for r in self.list("redblack.io", "rollouts") {
            let name = r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let st = &r["status"];
            let healthy = st["phase"] == "Healthy"
                && st["observedGeneration"] == r["metadata"]["generation"]
                && st["currentRevision"] == st["stableRevision"];
            if !healthy {
                continue;
            }
            p.healthy += 1;
            let stable = st["stableRevision"].as_str().unwrap_or_default().to_owned();
            if before.get(&name).is_some_and(|b| *b != stable) {
                p.switched += 1;
            }
            p.stable.insert(name, stable);
        }
        p
    }

    /// Services whose selector names the Rollout's stable revision.
    fn services_on(&self, stable: &HashMap<String, String>) -> usize {
        self.list("", "services")
            .iter()
            .filter(|s| {
                let name = s["metadata"]["name"].as_str().unwrap_or_default();
                let sel = s["spec"]["selector"][POD_TEMPLATE_HASH_LABEL].as_str();
                sel.is_some() && stable.get(name).map(String::as_str) == sel
            })
            .count()
    }

    fn labelled_replica_sets(&self) -> usize {
        self.list("apps", "replicasets")
            .iter()
            .filter(|rs| rs["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL].is_string())
            .count()
    }
}

// ---------------------------------------------------------------------------
// Request accounting
// ---------------------------------------------------------------------------

/// The controller's requests: everything counted minus what the benchmark sent.
fn controller_requests(counts: &RequestCounts, ours: &[(&str, &str, u64)]) -> Counts {
    let mut snap = counts.snapshot();
    support::subtract(&mut snap, ours);
    snap
}

fn print_counts(title: &str, c: &Counts, per: usize) {
    let per = per as f64;
    println!(
        "  {title}: {} requests, {:.2} per Rollout",
        total(c),
        total(c) as f64 / per
    );
    let verbs: Vec<String> = by_verb(c)
        .iter()
        .map(|(v, n)| format!("{v} {:.2}", *n as f64 / per))
        .collect();
    println!("    per Rollout by verb: {}", verbs.join(", "));
    for ((verb, resource), n) in c {
        println!(
            "    {verb:>8} {resource:<22} {n:>8}  ({:.3}/Rollout)",
            *n as f64 / per
        );
    }
}

/// Waits until `done(progress)`, printing progress; errors after `timeout` or if
/// the controller died.
async fn wait_until(
    what: &str,
    view: &View,
    controller: &mut Controller,
    before: &HashMap<String, String>,
    timeout: Duration,
    done: impl Fn(&Progress) -> bool,
    count: impl Fn(&Progress) -> usize,
) -> BoxResult<Progress> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let p = view.progress(before);
        if done(&p) {
            println!(
                "  {what}: done in {:.1} s wall",
                started.elapsed().as_secs_f64()
            );
            return Ok(p);
        }
        if !controller.alive() {
            return Err(format!("the controller died while waiting until {what}").into());
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "timed out after {} s waiting until {what} ({} so far)",
                timeout.as_secs(),
                count(&p)
            )
            .into());
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!("    … {what}: {} so far", count(&p));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = parse_args()?;
    let n = args.rollouts;
    let bin = controller_bin(&args)?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let log =
        std::env::temp_dir().join(format!("bench_scale-controller-{}.log", std::process::id()));

    // Every object changes a few times per phase; keep enough history that no
    // watch falls off the end of it (a 410 would force a relist).
    let (sandbox, client): (_, Client) = support::start_sandbox(SandboxConfig {
        watch_history: (40 * n).max(20_000),
        pod_ready_after: Duration::from_millis(200),
        ..SandboxConfig::default()
    })
    .await?;
    sandbox.write_kubeconfig(&kubeconfig)?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let view = View {
        sandbox_store: sandbox.store(),
    };
    let counts = sandbox.request_counts();

    println!(
        "bench_scale: {n} Rollouts (replicas 1, simulated pods, one Service each); \
         controller {} as a separate process; sandbox is a SIMULATOR",
        bin.display()
    );
    // The sandbox runs in this process: its own cost is this process's.
    let me = std::process::id();
    let sbx_mem0 = proc_mem(me)?;
    let sbx_cpu0 = proc_cpu(me).unwrap_or(f64::NAN);
    counts.reset();
    let mut controller = Controller::start(&bin, &kubeconfig, &log).await?;
    // Let startup allocations (first lists, runtime threads) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let startup_requests = counts.snapshot();
    let mem0 = controller.mem()?;
    let cpu0 = controller.cpu();
    let m0 = controller.metrics().await;
    println!(
        "  controller ready with 0 Rollouts: VmRSS {:.1} MB (VmHWM {:.1} MB), {} startup requests",
        mb(mem0.rss_kb),
        mb(mem0.hwm_kb),
        startup_requests.values().sum::<u64>()
    );

    // ---- 1. create N Services + N Rollouts, converge -------------------------
    counts.reset();
    let t_create = Instant::now();
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    stream::iter(0..n)
        .map(|i| {
            let services = services.clone();
            let rollouts = rollouts.clone();
            async move {
                let name = name(i);
                let svc = serde_json::from_value(service(&name))?;
                services.create(&PostParams::default(), &svc).await?;
                let ro: Rollout = serde_json::from_value(rollout(&name, "v1"))?;
                rollouts.create(&PostParams::default(), &ro).await?;
                Ok::<(), BoxError>(())
            }
        })
        .buffer_unordered(CLIENT_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "  created {n} Services + {n} Rollouts in {:.1} s wall",
        t_create.elapsed().as_secs_f64()
    );
    let none = HashMap::new();
    let converged = wait_until(
        "all Rollouts Healthy",
        &view,
        &mut controller,
        &none,
        args.timeout,
        |p| p.healthy == n,
        |p| p.healthy,
    )
    .await?;
    settle(
        &counts,
        Duration::from_millis(250),
        Duration::from_secs(3),
        Duration::from_secs(30),
        total,
    )
    .await;
    let create_ours = [
        ("create", "services", n as u64),
        ("create", "rollouts", n as u64),
    ];
    let converge = controller_requests(&counts, &create_ours);
    let services_ok = view.services_on(&converged.stable);
    let converge_secs = t_create.elapsed().as_secs_f64();
    let sbx_mem1 = proc_mem(me)?;
    let sbx_cpu1 = proc_cpu(me).unwrap_or(f64::NAN);
    let mem1 = controller.mem()?;
    let cpu1 = controller.cpu();
    let m1 = controller.metrics().await;
    let rs1 = view.labelled_replica_sets();
    let svc_total = view.list("", "services").len();

    // ---- 2. steady state -----------------------------------------------------
    counts.reset();
    let m_steady0 = controller.metrics().await;
    println!("  steady state: watching for {} s …", args.steady.as_secs());
    tokio::time::sleep(args.steady).await;
    let steady = counts.snapshot();
    let m_steady = controller.metrics().await - m_steady0;

    // ---- 3. update wave --------------------------------------------------------
    counts.reset();
    let before: HashMap<String, String> = converged.stable.clone();
    let t_wave = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let rollouts = rollouts.clone();
            async move {
                let patch = json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "registry.example/app:v2"}
                ]}}}});
                rollouts
                    .patch(&name(i), &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok::<(), BoxError>(())
            }
        })
        .buffer_unordered(CLIENT_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "  patched {n} Rollouts to a new image in {:.1} s wall",
        t_wave.elapsed().as_secs_f64()
    );
    let switched = wait_until(
        "all Rollouts switched to the new revision",
        &view,
        &mut controller,
        &before,
        args.timeout,
        |p| p.switched == n,
        |p| p.switched,
    )
    .await?;
    settle(
        &counts,
        Duration::from_millis(250),
        Duration::from_secs(3),
        Duration::from_secs(30),
        total,
    )
    .await;
    let wave = controller_requests(&counts, &[("patch", "rollouts", n as u64)]);
    let services_switched = view.services_on(&switched.stable);
    let wave_secs = t_wave.elapsed().as_secs_f64();
    let sbx_mem2 = proc_mem(me)?;
    let sbx_cpu2 = proc_cpu(me).unwrap_or(f64::NAN);
    let mem2 = controller.mem()?;
    let cpu2 = controller.cpu();
    let m2 = controller.metrics().await;
    let rs2 = view.labelled_replica_sets();

    // ---- report ----------------------------------------------------------------
    let per = |kb_after: u64| (kb_after as f64 - mem0.rss_kb as f64) * 1024.0 / n as f64;
    let cached1 = n + rs1 + svc_total;
    let cached2 = n + rs2 + svc_total;
    let b1 = per(mem1.rss_kb);
    let b2 = per(mem2.rss_kb);
    println!();
    println!("== controller memory (VmRSS of the controller process alone)");
    println!("  ready, 0 Rollouts:        {:>8.1} MB", mb(mem0.rss_kb));
    println!(
        "  {n} converged:           {:>8.1} MB (VmHWM {:.1} MB) -> {:.0} bytes/Rollout, {:.0} bytes/cached object \
         ({n} Rollouts + {rs1} ReplicaSets + {svc_total} Services)",
        mb(mem1.rss_kb),
        mb(mem1.hwm_kb),
        b1,
        (mem1.rss_kb as f64 - mem0.rss_kb as f64) * 1024.0 / cached1 as f64
    );
    println!(
        "  after the update wave:    {:>8.1} MB (VmHWM {:.1} MB) -> {:.0} bytes/Rollout, {:.0} bytes/cached object \
         ({n} + {rs2} ReplicaSets + {svc_total} Services)",
        mb(mem2.rss_kb),
        mb(mem2.hwm_kb),
        b2,
        (mem2.rss_kb as f64 - mem0.rss_kb as f64) * 1024.0 / cached2 as f64
    );
    let worst = b1.max(b2).max(1.0);
    println!(
        "  vs Argo Rollouts (≈1 MB/Rollout at 11k–13k, argo-rollouts #2855): {:.0}× less \
         (projected at 10,000 Rollouts: {:.0} MB over the {:.0} MB baseline)",
        ARGO_BYTES_PER_ROLLOUT / worst,
        worst * 10_000.0 / 1.0e6,
        mb(mem0.rss_kb)
    );

    println!();
    println!("== API requests by the controller (sandbox counters minus the benchmark's own)");
    println!(
        "  startup with 0 Rollouts: {:?}",
        startup_requests
            .iter()
            .map(|((v, r), c)| format!("{v} {r} {c}"))
            .collect::<Vec<_>>()
    );
    print_counts("converge (create → all Healthy)", &converge, n);
    println!(
        "    reconciles {:.2}/Rollout, writes {:.2}/Rollout, errors {}; controller CPU {:.2} ms/Rollout",
        (m1 - m0).reconciles / n as f64,
        (m1 - m0).writes / n as f64,
        (m1 - m0).errors,
        1000.0 * (cpu1 - cpu0) / n as f64
    );
    println!("    Services selecting the stable revision: {services_ok}/{n}");
    let steady_total: u64 = steady.values().sum();
    let minutes = args.steady.as_secs_f64() / 60.0;
    println!(
        "  steady state ({} s): {} requests = {:.4} per Rollout per minute; reconciles {}",
        args.steady.as_secs(),
        steady_total,
        steady_total as f64 / n as f64 / minutes,
        m_steady.reconciles
    );
    for ((verb, resource), c) in &steady {
        println!("    {verb:>8} {resource:<22} {c:>8}");
    }
    print_counts("update wave (new template → Service switched)", &wave, n);
    println!(
        "    reconciles {:.2}/Rollout, writes {:.2}/Rollout, errors {}; controller CPU {:.2} ms/Rollout",
        (m2 - m1).reconciles / n as f64,
        (m2 - m1).writes / n as f64,
        (m2 - m1).errors,
        1000.0 * (cpu2 - cpu1) / n as f64
    );
    println!("    Services selecting the new revision: {services_switched}/{n}");
    let lists = |c: &Counts| by_verb(c).get("list").copied().unwrap_or(0);
    let watches = |c: &Counts| by_verb(c).get("watch").copied().unwrap_or(0);
    println!(
        "  relists/rewatches after startup: converge {} list + {} watch, steady {} + {}, wave {} + {}",
        lists(&converge),
        watches(&converge),
        lists(&steady),
        watches(&steady),
        lists(&wave),
        watches(&wave)
    );

    println!();
    println!("== where the time goes (CPU seconds; wall includes waiting for simulated pods)");
    let objects = view.list("", "pods").len() + rs2 + 2 * n + svc_total;
    println!(
        "  converge: {converge_secs:.1} s wall (incl. settle); controller CPU {:.1} s, sandbox+bench process CPU {:.1} s",
        cpu1 - cpu0,
        sbx_cpu1 - sbx_cpu0
    );
    println!(
        "  wave:     {wave_secs:.1} s wall (incl. settle); controller CPU {:.1} s, sandbox+bench process CPU {:.1} s",
        cpu2 - cpu1,
        sbx_cpu2 - sbx_cpu1
    );
    println!(
        "  controller CPU per reconcile: converge {:.3} ms, wave {:.3} ms",
        1000.0 * (cpu1 - cpu0) / (m1 - m0).reconciles.max(1.0),
        1000.0 * (cpu2 - cpu1) / (m2 - m1).reconciles.max(1.0)
    );
    println!(
        "  sandbox process VmRSS: {:.1} MB empty, {:.1} MB converged, {:.1} MB after the wave \
         ({objects} objects in store -> {:.0} bytes/object incl. the watch history)",
        mb(sbx_mem0.rss_kb),
        mb(sbx_mem1.rss_kb),
        mb(sbx_mem2.rss_kb),
        (sbx_mem2.rss_kb as f64 - sbx_mem0.rss_kb as f64) * 1024.0 / objects.max(1) as f64
    );

    println!();
    println!(
        "| N | bytes/Rollout | bytes/cached object | req/Rollout converge | req/Rollout/min steady | req per red/black rollout | CPU ms/reconcile converge | CPU ms/reconcile wave |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.0} | {:.0} | {:.2} | {:.4} | {:.2} | {:.3} | {:.3} |",
        b1,
        (mem1.rss_kb as f64 - mem0.rss_kb as f64) * 1024.0 / cached1 as f64,
        total(&converge) as f64 / n as f64,
        steady_total as f64 / n as f64 / minutes,
        total(&wave) as f64 / n as f64,
        1000.0 * (cpu1 - cpu0) / (m1 - m0).reconciles.max(1.0),
        1000.0 * (cpu2 - cpu1) / (m2 - m1).reconciles.max(1.0)
    );

    let _ = controller.child.start_kill();
    let _ = controller.child.wait().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_file(&log);
    Ok(())
}
