//! Benchmark (not a test): judge 10,000 continuous metrics at 120 samples per
//! side, plus 10,000 rate metrics, and print throughput and work per metric.
//!
//!     cargo run --release --example bench_judge

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal, Poisson};
use redblack::analysis::judge::{
    JudgeConfig, MetricConfig, MetricKind, MetricSamples, Side, judge,
};

const METRICS: usize = 10_000;
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

    let start = Instant::now();
    let result = judge(&config, &samples).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed().as_secs_f64();
    let comparisons: usize = result
        .metrics
        .iter()
        .filter_map(|m| m.location.as_ref())
        .map(|l| l.comparisons)
        .sum();
    let high = result
        .metrics
        .iter()
        .filter(|m| m.classification != redblack::analysis::judge::Classification::Pass)
        .count();
    println!("continuous: {METRICS} metrics x {SAMPLES} samples/side in {elapsed:.3} s");
    println!(
        "  {:.0} metrics/s, {:.1} us/metric",
        METRICS as f64 / elapsed,
        1e6 * elapsed / METRICS as f64
    );
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
    let start = Instant::now();
    let result = judge(&config, &rate_samples).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed().as_secs_f64();
    println!("rate: {METRICS} metrics x {SAMPLES} intervals/side in {elapsed:.3} s");
    println!(
        "  {:.0} metrics/s, {:.1} us/metric ({} scored)",
        METRICS as f64 / elapsed,
        1e6 * elapsed / METRICS as f64,
        result.metrics.len()
    );
}
