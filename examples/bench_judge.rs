//! Benchmark (not a test): judge 10,000 continuous metrics at 120 samples per
//! side, plus 10,000 rate metrics, and print throughput and work per metric.
//!
//!     cargo run --release --example bench_judge

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal, Poisson};
use redblack_judge::{JudgeConfig, MetricConfig, MetricKind, MetricSamples, Side, judge};

const METRICS: usize = 10_000;

/// Process CPU seconds (user + system) from /proc/self/stat, if available:
/// on a shared machine wall time alone overstates the cost.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn report(label: &str, wall: f64, cpu: Option<f64>) {
    println!(
        "  {label}: {:.0} metrics/s wall, {:.1} us/metric wall",
        METRICS as f64 / wall,
        1e6 * wall / METRICS as f64
    );
    if let Some(cpu) = cpu {
        println!(
            "  {label}: {:.0} metrics/s CPU, {:.1} us/metric CPU (10 ms resolution)",
            METRICS as f64 / cpu,
            1e6 * cpu / METRICS as f64
        );
    }
}
const SAMPLES: usize = 120;

fn main() {
    let mut rng = StdRng::seed_from_u64(42);
    let lat = LogNormal::new(4.0, 0.4).unwrap_or_else(|e| panic!("{e}"));
    let req = Poisson::new(1000.0).unwrap_or_else(|e| panic!("{e}"));
    let err = Poisson::new(2.0).unwrap_or_else(|e| panic!("{e}"));

    let configs: Vec<MetricConfig> = (0..METRICS)
        .map(|i| MetricConfig::new(format!("m{i}")))
        .collect();
    let samples: Vec<MetricSamples> = (0..METRICS)
        .map(|i| {
            // Every 10th canary is 20% slower so both decision paths run.
            let scale = if i % 10 == 0 { 1.2 } else { 1.0 };
            let c: Vec<f64> = (0..SAMPLES).map(|_| lat.sample(&mut rng) * scale).collect();
            let b: Vec<f64> = (0..SAMPLES).map(|_| lat.sample(&mut rng)).collect();
            MetricSamples::continuous(format!("m{i}"), &c, &b)
        })
        .collect();
    let config = JudgeConfig::new(configs);

    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let result = judge(&config, &samples).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let comparisons: usize = result
        .metrics
        .iter()
        .filter_map(|m| m.location.as_ref())
        .map(|l| l.comparisons)
        .sum();
    let high = result
        .metrics
        .iter()
        .filter(|m| m.classification != redblack_judge::Classification::Pass)
        .count();
    println!("continuous: {METRICS} metrics x {SAMPLES} samples/side in {elapsed:.3} s");
    report("continuous", elapsed, cpu);
    println!(
        "  work/metric: {} pairwise differences (HL, O(nm) selection), {} values ranked (MW, O(N log N)), tail check on {} quantiles",
        comparisons / METRICS,
        2 * SAMPLES,
        2
    );
    println!(
        "  non-Pass: {high} (expected ~{} shifted + noise)",
        METRICS / 10
    );

    let rate_cfg: Vec<MetricConfig> = (0..METRICS)
        .map(|i| MetricConfig {
            kind: MetricKind::Rate,
            ..MetricConfig::new(format!("r{i}"))
        })
        .collect();
    let rate_samples: Vec<MetricSamples> = (0..METRICS)
        .map(|i| {
            let mut side = || {
                let d: Vec<f64> = (0..SAMPLES).map(|_| req.sample(&mut rng)).collect();
                let n: Vec<f64> = (0..SAMPLES).map(|_| err.sample(&mut rng)).collect();
                Side::counts(&n, &d)
            };
            MetricSamples {
                name: format!("r{i}"),
                canary: side(),
                baseline: side(),
            }
        })
        .collect();
    let config = JudgeConfig::new(rate_cfg);
    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let result = judge(&config, &rate_samples).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    println!("rate: {METRICS} metrics x {SAMPLES} intervals/side in {elapsed:.3} s");
    report("rate", elapsed, cpu);
    println!("  scored: {}", result.metrics.len());
}
