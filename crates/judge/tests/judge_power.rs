//! Power of the judge against tail regressions (kayenta #780 family), with
//! and without the tail check. Run with `--nocapture` for the table that
//! docs/judge.md quotes.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
use redblack_judge::{Classification, Direction, MetricConfig, MetricSamples, judge_metric};

const SEEDS: u64 = 200;

/// Share of seeds where a canary with `fraction` of its samples 100× higher is High.
fn detection(n: usize, fraction: f64, tail: bool) -> f64 {
    let mut cfg = MetricConfig {
        direction: Direction::Increase,
        ..MetricConfig::new("latency")
    };
    cfg.tail.enabled = tail;
    let d = LogNormal::new(4.0, 0.4).expect("lognormal");
    let bad = (n as f64 * fraction).round() as usize;
    let high = (0..SEEDS)
        .filter(|seed| {
            let mut rng = StdRng::seed_from_u64(*seed);
            let b: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
            let c: Vec<f64> = (0..n)
                .map(|i| d.sample(&mut rng) * if i < bad { 100.0 } else { 1.0 })
                .collect();
            let s = MetricSamples::continuous("latency", &c, &b);
            judge_metric(&cfg, 0.98, &s).expect("judge").classification == Classification::High
        })
        .count();
    high as f64 / SEEDS as f64
}

#[test]
fn tail_check_adds_power_against_tail_regressions() {
    println!("n/side  tail-fraction  High with MW only  High with MW + tail check");
    for n in [50, 120] {
        for fraction in [0.05, 0.08, 0.10, 0.20, 0.30] {
            let (mw, both) = (detection(n, fraction, false), detection(n, fraction, true));
            println!(
                "{n:>6}  {:>12.0}%  {:>16.1}%  {:>24.1}%",
                100.0 * fraction,
                100.0 * mw,
                100.0 * both
            );
            // The tail check only adds High findings in the checked direction.
            assert!(both >= mw, "n={n} fraction={fraction}: {both} < {mw}");
            if fraction >= 0.30 {
                assert!(
                    both >= 0.99,
                    "n={n}: #780-like regression caught only {both}"
                );
            }
            if n == 120 && fraction >= 0.10 {
                assert!(
                    both >= 0.95,
                    "n={n} fraction={fraction}: caught only {both}"
                );
            }
        }
    }
}
