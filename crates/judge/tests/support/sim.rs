//! Simulated canary analyses for the sequential-vs-fixed comparisons: two
//! metrics as `make demo` judges them — a latency (one p99 point per step)
//! and an error rate (errors/requests per step) — canary and baseline drawn
//! from the distributions of a scenario. Shared by the bounded test
//! (crates/judge/tests/judge_sequential.rs) and the benchmark
//! (examples/bench_sequential.rs).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution, LogNormal, Poisson};
use redblack_judge::{
    Band, Direction, JudgeConfig, JudgeMode, Look, MetricConfig, MetricKind, MetricSamples, Side,
    judge, judge_at,
};

/// Requests per step per side: the demo's canary gets ~10 requests/s and
/// the controller's step is 1 s.
pub const REQUESTS_PER_STEP: f64 = 10.0;
/// Seconds per step, to turn steps into time.
#[allow(dead_code)] // used by the benchmark, not by every test including this file
pub const STEP_SECONDS: f64 = 1.0;

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    /// Canary p99 = baseline-like draw × this.
    pub latency_factor: f64,
    /// Fraction of canary points multiplied by `tail_factor` (kayenta #780).
    pub tail_fraction: f64,
    pub tail_factor: f64,
    pub canary_error_rate: f64,
    pub baseline_error_rate: f64,
}

impl Scenario {
    /// Canary and baseline alike: every failure is a false failure.
    pub const fn healthy(error_rate: f64) -> Self {
        Self {
            name: "healthy (A/A)",
            latency_factor: 1.0,
            tail_fraction: 0.0,
            tail_factor: 1.0,
            canary_error_rate: error_rate,
            baseline_error_rate: error_rate,
        }
    }
}

/// The regressions of the issue, at the demo's traffic.
pub const REGRESSIONS: [Scenario; 4] = [
    Scenario {
        name: "10% vs 0% errors",
        canary_error_rate: 0.10,
        baseline_error_rate: 0.0,
        ..Scenario::healthy(0.0)
    },
    Scenario {
        name: "2% vs 0.5% errors",
        canary_error_rate: 0.02,
        baseline_error_rate: 0.005,
        ..Scenario::healthy(0.0)
    },
    Scenario {
        name: "latency +30%",
        latency_factor: 1.3,
        ..Scenario::healthy(0.001)
    },
    Scenario {
        name: "slow tail: 10% of points 10x (#780)",
        tail_fraction: 0.1,
        tail_factor: 10.0,
        ..Scenario::healthy(0.001)
    },
];

pub fn config(mode: JudgeMode) -> JudgeConfig {
    JudgeConfig {
        mode,
        ..JudgeConfig::new(vec![
            MetricConfig {
                direction: Direction::Increase,
                ..MetricConfig::new("latency-p99")
            },
            MetricConfig {
                kind: MetricKind::Rate,
                direction: Direction::Increase,
                ..MetricConfig::new("error-rate")
            },
        ])
    }
}

/// One analysis of `steps` steps; `seed` makes it reproducible.
pub fn analysis(s: &Scenario, steps: usize, seed: u64) -> Vec<MetricSamples> {
    let mut rng = StdRng::seed_from_u64(seed);
    // p99 of a ~50 ms service, ±20% from step to step.
    let p99 = LogNormal::new((0.05_f64).ln(), 0.2).expect("valid lognormal");
    let requests = Poisson::new(REQUESTS_PER_STEP).expect("valid Poisson");
    let mut lat = (Vec::new(), Vec::new());
    let mut err = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for _ in 0..steps {
        let slow = rand::RngExt::random_bool(&mut rng, s.tail_fraction);
        let c = p99.sample(&mut rng) * s.latency_factor * if slow { s.tail_factor } else { 1.0 };
        lat.0.push(c);
        lat.1.push(p99.sample(&mut rng));
        for (side, rate) in [
            (&mut err.0, s.canary_error_rate),
            (&mut err.1, s.baseline_error_rate),
        ] {
            let n = requests.sample(&mut rng);
            // n is a small whole number of requests.
            let errors = Binomial::new(n as u64, rate)
                .expect("valid binomial")
                .sample(&mut rng);
            side.0.push(errors as f64);
            side.1.push(n);
        }
    }
    vec![
        MetricSamples::continuous("latency-p99", &lat.0, &lat.1),
        MetricSamples {
            name: "error-rate".into(),
            canary: Side::counts(&(err.0).0, &(err.0).1),
            baseline: Side::counts(&(err.1).0, &(err.1).1),
        },
    ]
}

/// The first `t` steps of an analysis.
pub fn prefix(samples: &[MetricSamples], t: usize) -> Vec<MetricSamples> {
    let cut = |side: &Side| match side {
        Side::Values(v) => Side::Values(v[..t.min(v.len())].to_vec()),
        Side::Counts(c) => Side::Counts(redblack_judge::Counts {
            numerator: c.numerator[..t.min(c.numerator.len())].to_vec(),
            denominator: c.denominator[..t.min(c.denominator.len())].to_vec(),
        }),
    };
    samples
        .iter()
        .map(|m| MetricSamples {
            name: m.name.clone(),
            canary: cut(&m.canary),
            baseline: cut(&m.baseline),
        })
        .collect()
}

/// Whether the judgement of the first `t` steps fails the canary (the
/// controller ends an analysis Failed on a score at or below marginal).
pub fn fails_at(cfg: &JudgeConfig, samples: &[MetricSamples], t: usize) -> bool {
    judge(cfg, &prefix(samples, t))
        .map(|r| r.band == Band::Fail)
        .unwrap_or(false)
}

/// The first look (a step count) at which the analysis fails, if any; the
/// last of `looks` is the end of the analysis' lifetime.
/// Sequential mode: the e-process' first crossing is the first failing look
/// when looking every step, read off one judgement of all the steps as the
/// final look; a metric the final look's fixed tests failed fails at the end.
pub fn first_failure(
    cfg: &JudgeConfig,
    samples: &[MetricSamples],
    looks: &[usize],
) -> Option<usize> {
    if cfg.mode == JudgeMode::Sequential {
        let last = *looks.last()?;
        let r = judge_at(cfg, &prefix(samples, last), Look::Final).ok()?;
        if r.band != Band::Fail {
            return None;
        }
        return r
            .metrics
            .iter()
            .filter(|m| {
                matches!(
                    m.classification,
                    redblack_judge::Classification::High | redblack_judge::Classification::Low
                )
            })
            .map(|m| {
                m.sequential
                    .as_ref()
                    .and_then(|s| s.crossed_at_step)
                    .unwrap_or(last)
            })
            .min();
    }
    looks.iter().copied().find(|&t| fails_at(cfg, samples, t))
}
