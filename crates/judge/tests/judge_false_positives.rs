//! False-positive rate on pure noise at the default confidence (0.98),
//! measured over 2,000 seeds × a realistic metric set, 60 intervals per side.
//! Run with `--nocapture` to see the measured numbers: at the fixed mode's
//! default tolerance (0.25, Kayenta's production judge) and at 0.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};
use redblack_judge::{
    Band, Classification, Direction, JudgeConfig, MetricConfig, MetricKind, MetricSamples, Side,
    judge,
};

const SEEDS: u64 = 2000;
const N: usize = 60;

fn config() -> JudgeConfig {
    let m = |name: &str, direction| MetricConfig {
        direction,
        ..MetricConfig::new(name)
    };
    JudgeConfig::new(vec![
        m("latency_p50", Direction::Increase),
        m("latency_p99", Direction::Increase),
        m("cpu", Direction::Either),
        m("memory", Direction::Either),
        m("throughput", Direction::Decrease),
        m("gc_pauses", Direction::Increase),
        MetricConfig {
            kind: MetricKind::Rate,
            direction: Direction::Increase,
            ..MetricConfig::new("error_rate")
        },
    ])
}

/// Canary and baseline from the same distributions: every non-Pass is a false positive.
fn noise(rng: &mut StdRng) -> Vec<MetricSamples> {
    let p50 = LogNormal::new(3.0, 0.2).expect("dist");
    let p99 = LogNormal::new(5.0, 0.6).expect("dist");
    let cpu = Normal::new(0.45, 0.05).expect("dist");
    let mem = Normal::new(512.0, 8.0).expect("dist");
    let rps = Poisson::new(200.0).expect("dist");
    let gc = Poisson::new(2.0).expect("dist");
    let req = Poisson::new(1000.0).expect("dist");
    let mut side = |d: &dyn Fn(&mut StdRng) -> f64| -> (Vec<f64>, Vec<f64>) {
        (
            (0..N).map(|_| d(rng)).collect(),
            (0..N).map(|_| d(rng)).collect(),
        )
    };
    let mut out = Vec::new();
    let mut push = |name: &str, (c, b): (Vec<f64>, Vec<f64>)| {
        out.push(MetricSamples::continuous(name, &c, &b))
    };
    push("latency_p50", side(&|r| p50.sample(r)));
    push("latency_p99", side(&|r| p99.sample(r)));
    push("cpu", side(&|r| cpu.sample(r)));
    push("memory", side(&|r| f64::round(mem.sample(r))));
    push("throughput", side(&|r| rps.sample(r)));
    push("gc_pauses", side(&|r| gc.sample(r)));
    let (rc, rb) = side(&|r| req.sample(r));
    let errs = |reqs: &[f64], rng: &mut StdRng| -> Vec<f64> {
        reqs.iter()
            .map(|n| Poisson::new(n * 0.002).map_or(0.0, |d| d.sample(rng)))
            .collect()
    };
    let (ec, eb) = (errs(&rc, rng), errs(&rb, rng));
    out.push(MetricSamples {
        name: "error_rate".into(),
        canary: Side::counts(&ec, &rc),
        baseline: Side::counts(&eb, &rb),
    });
    out
}

#[test]
fn false_positive_rate_on_noise_is_controlled() {
    for tolerance in [None, Some(0.0)] {
        false_positive_rate_at(tolerance);
    }
}

fn false_positive_rate_at(tolerance: Option<f64>) {
    let cfg = JudgeConfig {
        tolerance,
        ..config()
    };
    let tolerance = cfg.effective_tolerance().unwrap_or(0.0);
    let mut false_positives = 0usize;
    let mut judged = 0usize;
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_metric: BTreeMap<String, usize> = BTreeMap::new();
    let mut canaries_not_passing = 0usize;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let r = judge(&cfg, &noise(&mut rng)).expect("judge");
        for m in &r.metrics {
            judged += 1;
            if m.classification != Classification::Pass {
                false_positives += 1;
                *by_rule.entry(format!("{:?}", m.decided_by)).or_default() += 1;
                *by_metric.entry(m.name.clone()).or_default() += 1;
            }
        }
        if r.band != Band::Pass {
            canaries_not_passing += 1;
        }
    }
    let rate = false_positives as f64 / judged as f64;
    println!(
        "tolerance {tolerance}: noise FPR per metric: {false_positives}/{judged} = {:.2}% (confidence 0.98); by rule {by_rule:?}; by metric {by_metric:?}; canaries not Pass (thresholds 75/95, 7 metrics): {}/{SEEDS} = {:.1}%",
        100.0 * rate,
        canaries_not_passing,
        100.0 * canaries_not_passing as f64 / SEEDS as f64
    );
    assert!(
        rate <= 0.03,
        "false-positive rate {:.2}% > 3%",
        100.0 * rate
    );
    // Sanity that the measurement measures something: not all Pass by construction.
    assert!(
        false_positives > 0,
        "no false positive at all in {judged} noise judgements is implausible"
    );
}
