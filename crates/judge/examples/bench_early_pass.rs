//! Benchmark (not a test): early pass (`earlyPass`, sequential mode) on
//! simulated canary analyses — how soon healthy (A/A) canaries pass early,
//! and how often canaries exactly at or beyond the margin falsely do.
//!
//!     cargo run --release -p redblack-judge --example bench_early_pass [-- ANALYSES]
//!
//! 300 one-second steps (a 5-minute lifetime), confidence 0.98, margin 1.2,
//! looks at every step. Metrics: the demo's p99 latency point per step
//! (lognormal, ±20 % step to step; direction increase) and an error rate at
//! 1,000 requests a step per side with 1 % errors (and, for contrast, at the
//! demo's 10 requests a step).

#[allow(dead_code)] // the helpers this benchmark does not use
#[path = "../tests/support/sim.rs"]
mod sim;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Poisson};
use redblack_judge::{
    Classification, Direction, EarlyPassConfig, JudgeConfig, JudgeMode, MetricConfig, MetricKind,
    MetricSamples, Side, judge,
};
use sim::{Scenario, analysis};

const STEPS: usize = 300;
const MARGIN: f64 = 1.2;

#[derive(Clone, Copy, PartialEq)]
enum Metrics {
    Latency,
    Errors,
    Both,
}

fn config(metrics: Metrics) -> JudgeConfig {
    let latency = MetricConfig {
        direction: Direction::Increase,
        ..MetricConfig::new("latency-p99")
    };
    let errors = MetricConfig {
        kind: MetricKind::Rate,
        direction: Direction::Increase,
        ..MetricConfig::new("error-rate")
    };
    let list = match metrics {
        Metrics::Latency => vec![latency],
        Metrics::Errors => vec![errors],
        Metrics::Both => vec![latency, errors],
    };
    JudgeConfig {
        mode: JudgeMode::Sequential,
        early_pass: Some(EarlyPassConfig { margin: MARGIN }),
        ..JudgeConfig::new(list)
    }
}

/// Error counts per step: `requests` a step per side (Poisson), the
/// canary's error rate `factor` × the baseline's 1 %.
fn errors(requests: f64, factor: f64, rng: &mut StdRng) -> MetricSamples {
    let (mut cn, mut cd, mut bn, mut bd) = (vec![], vec![], vec![], vec![]);
    let load = Poisson::new(requests).expect("valid Poisson");
    for _ in 0..STEPS {
        for (n, d, rate) in [(&mut cn, &mut cd, 0.01 * factor), (&mut bn, &mut bd, 0.01)] {
            let r: f64 = load.sample(rng);
            let e: f64 = Poisson::new((r * rate).max(1e-12))
                .expect("valid Poisson")
                .sample(rng);
            n.push(e);
            d.push(r);
        }
    }
    MetricSamples {
        name: "error-rate".into(),
        canary: Side::counts(&cn, &cd),
        baseline: Side::counts(&bn, &bd),
    }
}

/// The step at which the analysis would pass early when looked at every
/// step (None: not within the lifetime, or a (false) failure came first).
/// Both e-processes are causal, so one judgement of all the steps gives
/// every look's crossing.
fn early_pass_step(cfg: &JudgeConfig, samples: &[MetricSamples]) -> Option<usize> {
    let r = judge(cfg, samples).ok()?;
    let failed_at = r
        .metrics
        .iter()
        .filter(|m| matches!(m.classification, Classification::High | Classification::Low))
        .filter_map(|m| m.sequential.as_ref()?.crossed_at_step)
        .min();
    // Every metric's non-inferiority crossed: the last of them is the step
    // at which `early_pass_verdict` turned eligible, unless a failure came
    // first (then the analysis ended Failed).
    let pass = r
        .metrics
        .iter()
        .map(|m| m.sequential.as_ref()?.early_pass.as_ref()?.crossed_at_step)
        .collect::<Option<Vec<usize>>>()?
        .into_iter()
        .max()?;
    failed_at.is_none_or(|f| f > pass).then_some(pass)
}

fn run(
    metrics: Metrics,
    latency_factor: f64,
    error_factor: f64,
    requests: f64,
    n: u64,
) -> Vec<Option<usize>> {
    let cfg = config(metrics);
    (0..n)
        .map(|seed| {
            let s = Scenario {
                latency_factor,
                ..Scenario::healthy(0.01)
            };
            let mut all = analysis(&s, STEPS, 40_000 + seed);
            let mut rng = StdRng::seed_from_u64(80_000 + seed);
            all[1] = errors(requests, error_factor, &mut rng);
            let samples: Vec<MetricSamples> = match metrics {
                Metrics::Latency => vec![all[0].clone()],
                Metrics::Errors => vec![all[1].clone()],
                Metrics::Both => all,
            };
            early_pass_step(&cfg, &samples)
        })
        .collect()
}

fn percent(k: usize, n: usize) -> String {
    format!("{:.2}% ({k}/{n})", 100.0 * k as f64 / n as f64)
}

/// Median and p90 of the pass steps, misses counted as never.
fn quantiles(steps: &[Option<usize>]) -> (String, String) {
    let mut s: Vec<usize> = steps.iter().map(|s| s.unwrap_or(usize::MAX)).collect();
    s.sort_unstable();
    let at = |q: f64| match s[((s.len() as f64 * q).ceil() as usize)
        .saturating_sub(1)
        .min(s.len() - 1)]
    {
        usize::MAX => "never".to_owned(),
        k => format!("{k}"),
    };
    (at(0.5), at(0.9))
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let started = std::time::Instant::now();
    println!(
        "Early pass, {n} analyses each, {STEPS} steps of 1 s, looks at every step, confidence 0.98 (α = 2%), margin {MARGIN}:"
    );
    println!(
        "  {:<58} {:>16} {:>8} {:>8}",
        "healthy (A/A) canaries", "passed early", "median", "p90"
    );
    for (name, metrics, requests) in [
        ("p99 latency", Metrics::Latency, 1000.0),
        (
            "error rate, 1% of 1,000 requests/step",
            Metrics::Errors,
            1000.0,
        ),
        (
            "p99 latency + error rate (1,000 requests/step)",
            Metrics::Both,
            1000.0,
        ),
        (
            "p99 latency + error rate (10 requests/step, the demo)",
            Metrics::Both,
            10.0,
        ),
    ] {
        let steps = run(metrics, 1.0, 1.0, requests, n);
        let passed = steps.iter().filter(|s| s.is_some()).count();
        let (median, p90) = quantiles(&steps);
        println!(
            "  {name:<58} {:>16} {median:>8} {p90:>8}",
            percent(passed, n as usize)
        );
    }
    println!(
        "  {:<58} {:>16}",
        "false early passes (bound: 2%)", "passed early"
    );
    for (name, metrics, lat, err) in [
        (
            "p99 latency exactly 1.2x (at the margin)",
            Metrics::Latency,
            1.2,
            1.0,
        ),
        ("p99 latency 1.3x (beyond)", Metrics::Latency, 1.3, 1.0),
        (
            "error rate exactly 1.2x (at the margin)",
            Metrics::Errors,
            1.0,
            1.2,
        ),
        ("error rate 1.3x (beyond)", Metrics::Errors, 1.0, 1.3),
        (
            "latency 1.2x, errors as the baseline (both metrics)",
            Metrics::Both,
            1.2,
            1.0,
        ),
    ] {
        let steps = run(metrics, lat, err, 1000.0, n);
        let passed = steps.iter().filter(|s| s.is_some()).count();
        println!("  {name:<58} {:>16}", percent(passed, n as usize));
    }
    println!("({:.1} s)", started.elapsed().as_secs_f64());
}
