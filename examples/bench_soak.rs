//! Benchmark (not a test): memory, file descriptors and tasks over many
//! red/black rollout cycles in ONE process (the sandbox, a SIMULATOR, and the
//! operator in-process), the "flat for months" claim of issue 16 (anchor:
//! Argo Rollouts grew from 140 MB to 8.8 GB over 127 days with 25 Rollouts,
//! argo-rollouts #4571).
//!
//!     cargo run --release --example bench_soak [-- --rollouts 300 --cycles 10000 --canary-every 10 --warmup-percent 10]
//!
//! A fleet of `--rollouts` Rollouts (replicas 1, simulated pods ready after
//! 100 ms, `scaleDownDelay: 0s`, `revisionHistoryLimit: 2`) is rolled to a new
//! image in waves until `--cycles` rollout cycles have completed; after each
//! wave the process's VmRSS, open fds and live tokio tasks are sampled. Every
//! `--canary-every`-th Rollout (default 10: 10 % of the cycles) is
//! canary-gated: canary + baseline, a CanaryAnalysis judged by the real
//! controller against the fake Prometheus of tests/fake_prometheus (same
//! steady latency on both sides: every canary passes and is promoted), then
//! the red/black switch; the rest are plain red/black cycles. The first 10 %
//! of the waves, and at least the first 10 (until every Rollout's
//! `status.history` is full), are warm-up (history limits filling, allocator arenas
//! growing); the trend is fitted over the rest and printed with the
//! start / middle / end samples. The bounded version is `tests/soak.rs`.
//! The sandbox runs with its defaults (watch history bounded by count, age
//! and bytes) except the Event TTL: 1 minute instead of 1 hour, as the soak
//! runs thousands of times faster than a real fleet rolls.

#[path = "../tests/fake_prometheus/mod.rs"]
mod fake_prometheus;
mod support;

use std::time::{Duration, Instant};

use fake_prometheus::{FakePrometheus, Query, Reply};
use redblack::api::HISTORY_LIMIT;
use redblack::cli::controller::ControllerConfig;
use redblack_sandbox::SandboxConfig;
use redblack_sandbox::watch_history::approx_bytes;
use support::soak::{self, Fleet, Sample};
use support::{BoxError, Operator};

const EVENT_TTL: Duration = Duration::from_secs(60);

struct Args {
    rollouts: usize,
    cycles: usize,
    canary_every: usize,
    /// Percent of the waves before the trend is fitted.
    warmup_percent: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        rollouts: 300,
        cycles: 10_000,
        canary_every: 10,
        warmup_percent: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rollouts" => args.rollouts = value()?.parse()?,
            "--cycles" => args.cycles = value()?.parse()?,
            "--canary-every" => args.canary_every = value()?.parse()?,
            "--warmup-percent" => args.warmup_percent = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "bench_soak [--rollouts N (300)] [--cycles C (10000)] \
                     [--canary-every K (10; 0: no canaries)] [--warmup-percent P (10)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.warmup_percent >= 100 {
        return Err("--warmup-percent must be below 100".into());
    }
    if args.rollouts == 0 || args.cycles < args.rollouts {
        return Err("need --rollouts ≥ 1 and --cycles ≥ --rollouts".into());
    }
    Ok(args)
}

/// Objects per kind in the sandbox's store, the most numerous first (what
/// grows with the cycles shows here).
fn object_counts(store: &redblack_sandbox::store::Store) -> String {
    let mut counts: Vec<(usize, String, usize)> = store
        .kinds()
        .into_iter()
        .map(|gr| {
            let objects = store.list(&gr, None).0;
            let bytes = objects.iter().map(|o| approx_bytes(o)).sum();
            (objects.len(), gr.resource.clone(), bytes)
        })
        .filter(|(n, _, _)| *n > 0)
        .collect();
    counts.sort_by(|a, b| b.cmp(a));
    counts
        .iter()
        .take(8)
        .map(|(n, kind, bytes)| format!("{kind} {n} (~{:.1} MB)", *bytes as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn show(label: &str, s: &Sample) {
    println!(
        "  {label:<7} after {:>6} cycles: VmRSS {:>7.1} MB, {:>4} fds, {:>5} tasks",
        s.cycles,
        mb(s.rss_kb),
        s.fds,
        s.tasks
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let n = args.rollouts;
    let fleet = Fleet {
        n,
        canary_every: args.canary_every,
    };
    let waves = args.cycles.div_ceil(n);
    let (sandbox, client) = support::start_sandbox(SandboxConfig {
        pod_ready_after: Duration::from_millis(100),
        // The soak compresses time (~15 cycles/s, where 300 real Rollouts do
        // a few a day): Events expire after a minute instead of
        // kube-apiserver's hour, so that the plateau comes within the warm-up.
        event_ttl: EVENT_TTL,
        ..SandboxConfig::default()
    })
    .await?;
    let prometheus = FakePrometheus::start(std::sync::Arc::new(|q: &Query| {
        Reply::one(q, |_, _| Some(soak::steady_metrics(&q.query).to_owned()))
    }))
    .await;
    let operator = Operator::start(
        client.clone(),
        ControllerConfig {
            prometheus_url: Some(prometheus.url.clone()),
            ..ControllerConfig::default()
        },
    );
    let canaries = fleet.canaries();
    println!(
        "bench_soak: {n} Rollouts × {waves} waves = {} rollout cycles ({} canary-gated, \
         {} red/black), one process (sandbox SIMULATOR + operator + fake Prometheus)",
        n * waves,
        canaries * waves,
        (n - canaries) * waves
    );
    let t0 = Instant::now();
    soak::create_fleet(&client, fleet).await?;
    let timeout = Duration::from_secs(120 + n as u64 / 5);
    soak::wait_fleet(&client, n, 0, timeout).await?;
    let mut samples = vec![soak::sample(0)];
    show("created", &samples[0]);
    for tag in 1..=waves {
        soak::wave(&client, n, tag).await?;
        soak::wait_fleet(&client, n, tag, timeout).await?;
        let s = soak::sample(tag * n);
        if tag % (waves / 10).max(1) == 0 {
            show("wave", &s);
            let (events, bytes) = sandbox.store().history_size();
            println!(
                "          watch history {events} events, ~{:.1} MB; {:.0} s; objects: {}",
                bytes as f64 / 1e6,
                t0.elapsed().as_secs_f64(),
                object_counts(&sandbox.store())
            );
        }
        samples.push(s);
    }
    let elapsed = t0.elapsed();

    println!(
        "  every sample (cycles: VmRSS MB): {}",
        samples
            .iter()
            .map(|s| format!("{}: {:.0}", s.cycles, mb(s.rss_kb)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Warm-up: `--warmup-percent` of the waves, and at least until every
    // Rollout's `status.history` is full (one entry per cycle, HISTORY_LIMIT
    // kept): until then every Rollout object — in the store, the watch
    // history and the operator's caches — grows with each wave by design.
    let warm = (samples.len() * args.warmup_percent / 100)
        .max(HISTORY_LIMIT.min(samples.len().saturating_sub(2)))
        .max(1);
    let measured = &samples[warm..];
    let (events, bytes) = sandbox.store().history_size();
    println!(
        "  sandbox watch history at the end: {events} events, ~{:.1} MB (estimated)",
        bytes as f64 / 1e6
    );
    println!(
        "  fake Prometheus: {} queries for {} canary cycles",
        prometheus.queries(),
        canaries * waves
    );
    let (start, mid, end) = (
        measured[0],
        measured[measured.len() / 2],
        measured[measured.len() - 1],
    );
    println!();
    println!("== after warm-up ({} waves)", warm);
    show("start", &start);
    show("middle", &mid);
    show("end", &end);
    let points: Vec<(f64, f64)> = measured
        .iter()
        .map(|s| (s.cycles as f64, s.rss_kb as f64))
        .collect();
    let (slope, intercept) = soak::trend(&points);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let span = (end.cycles - start.cycles) as f64;
    let drift = slope * span / mean * 100.0;
    println!(
        "  RSS trend: {:+.1} bytes/cycle (fit {:.1} MB at cycle {}), {:+.1} % of the mean over {} cycles; \
         end vs start {:+.1} %",
        slope * 1024.0,
        intercept / 1024.0 + slope * start.cycles as f64 / 1024.0,
        start.cycles,
        drift,
        span,
        (end.rss_kb as f64 / start.rss_kb as f64 - 1.0) * 100.0
    );
    println!(
        "  fds {} → {}, tasks {} → {}; {:.0} s wall ({:.1} cycles/s)",
        start.fds,
        end.fds,
        start.tasks,
        end.tasks,
        elapsed.as_secs_f64(),
        (n * waves) as f64 / elapsed.as_secs_f64()
    );
    let flat = drift.abs() <= 10.0;
    println!(
        "  verdict: {}",
        if flat {
            "flat (within ±10 %)"
        } else {
            "NOT flat (beyond ±10 %)"
        }
    );
    operator.stop().await?;
    sandbox.shutdown().await;
    if !flat {
        return Err("RSS trend beyond ±10 %".into());
    }
    Ok(())
}
