//! Benchmark (not a test): fixed-horizon vs sequential judgement of simulated
//! canary analyses — false failures of healthy analyses by look schedule,
//! time to detect four regressions, and power at the end of the lifetime.
//!
//!     cargo run --release -p redblack-judge --example bench_sequential [-- ANALYSES]
//!
//! Two metrics as `make demo` judges them (a p99 latency point and an
//! errors/requests count per 1 s step, ~10 requests a step per side),
//! direction increase, confidence 0.98, 40 steps; fixed mode's controller
//! looks at interval boundaries (every 10 steps), sequential mode every step
//! and its final look at the end (step 40).
//! Each mode runs its default configuration (fixed: Kayenta's tolerance 0.25),
//! the honest baseline a user gets.

#[path = "../tests/support/sim.rs"]
mod sim;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
use redblack_judge::{
    Band, Direction, JudgeConfig, JudgeMode, Look, MetricConfig, MetricSamples, judge_at,
};
use sim::{REGRESSIONS, STEP_SECONDS, Scenario, analysis, config, first_failure};

const STEPS: usize = 40;
const INTERVAL: usize = 10;

fn percent(k: usize, n: usize) -> String {
    format!("{:.2}% ({k}/{n})", 100.0 * k as f64 / n as f64)
}

/// Median of the detection steps, counting misses as never.
fn median(mut steps: Vec<Option<usize>>) -> String {
    steps.sort_by_key(|s| s.unwrap_or(usize::MAX));
    match steps[steps.len() / 2] {
        Some(s) => format!("{s} steps = {:.0} s", s as f64 * STEP_SECONDS),
        None => "not detected".into(),
    }
}

/// One latency metric (direction increase) at `n` points per side: a
/// fraction `tail` of the canary's points 100× higher (kayenta #780), or the
/// whole canary `shift` times higher. Fails at the end of the lifetime
/// (judged as the final `look`)?
fn labelled_power(
    mode: JudgeMode,
    look: Look,
    n: usize,
    tail: f64,
    shift: f64,
    seeds: u64,
) -> usize {
    let cfg = JudgeConfig {
        mode,
        ..JudgeConfig::new(vec![MetricConfig {
            direction: Direction::Increase,
            ..MetricConfig::new("latency")
        }])
    };
    let dist = LogNormal::new(0.0, 0.3).expect("valid lognormal");
    (0..seeds)
        .filter(|seed| {
            let mut rng = StdRng::seed_from_u64(7_000_000 + seed);
            let b: Vec<f64> = (0..n).map(|_| dist.sample(&mut rng)).collect();
            let c: Vec<f64> = (0..n)
                .map(|i| {
                    let v = dist.sample(&mut rng) * shift;
                    // The slow points spread over the run, as they come.
                    if (i as f64 + 0.5) * tail % 1.0 < tail {
                        v * 100.0
                    } else {
                        v
                    }
                })
                .collect();
            judge_at(&cfg, &[MetricSamples::continuous("latency", &c, &b)], look)
                .is_ok_and(|r| r.band == Band::Fail)
        })
        .count()
}

/// Two continuous metrics (direction increase), `n` points per side, the
/// first changed: a `tail` fraction of its canary points `factor`× higher,
/// or all of them `shift`× higher. How many of 200 analyses fail it at the
/// end (the final look in sequential mode)?
fn power_by_window(mode: JudgeMode, n: usize, tail: f64, factor: f64, shift: f64) -> usize {
    let metric = |name: &str| MetricConfig {
        direction: Direction::Increase,
        ..MetricConfig::new(name)
    };
    let cfg = JudgeConfig {
        mode,
        ..JudgeConfig::new(vec![metric("latency"), metric("other")])
    };
    let dist = LogNormal::new(0.0, 0.3).expect("valid lognormal");
    (0..200u64)
        .filter(|seed| {
            let mut rng = StdRng::seed_from_u64(9_000_000 + seed);
            let mut draw =
                |k: f64| -> Vec<f64> { (0..n).map(|_| dist.sample(&mut rng) * k).collect() };
            let b = draw(1.0);
            let c: Vec<f64> = draw(shift)
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    if (i as f64 + 0.5) * tail % 1.0 < tail {
                        v * factor
                    } else {
                        v
                    }
                })
                .collect();
            let (o1, o2) = (draw(1.0), draw(1.0));
            let s = [
                MetricSamples::continuous("latency", &c, &b),
                MetricSamples::continuous("other", &o1, &o2),
            ];
            judge_at(&cfg, &s, Look::Final)
                .is_ok_and(|r| r.metrics[0].classification == redblack_judge::Classification::High)
        })
        .count()
}

fn main() {
    let analyses: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let fixed = config(JudgeMode::Fixed);
    let seq = config(JudgeMode::Sequential);
    let every_step: Vec<usize> = (1..=STEPS).collect();
    let boundaries: Vec<usize> = (INTERVAL..=STEPS).step_by(INTERVAL).collect();
    let end = vec![STEPS];

    println!(
        "False failures of whole healthy analyses (A/A, 1% errors both sides), {analyses} analyses, \
         {STEPS} steps, confidence 0.98:"
    );
    let mut counts = [0usize; 4];
    for seed in 0..analyses {
        let a = analysis(&Scenario::healthy(0.01), STEPS, seed);
        for (i, (cfg, looks)) in [
            (&fixed, &end),
            (&fixed, &boundaries),
            (&fixed, &every_step),
            (&seq, &every_step),
        ]
        .into_iter()
        .enumerate()
        {
            counts[i] += usize::from(first_failure(cfg, &a, looks).is_some());
        }
    }
    let n = analyses as usize;
    println!(
        "  fixed, judged once at the end:          {}",
        percent(counts[0], n)
    );
    println!(
        "  fixed, at the 4 interval boundaries:    {}",
        percent(counts[1], n)
    );
    println!(
        "  fixed, at every step (40 looks):        {}",
        percent(counts[2], n)
    );
    println!(
        "  sequential, every step + final look:    {}",
        percent(counts[3], n)
    );

    let seeds = (analyses / 10).max(50);
    println!(
        "\nPower at the end of the lifetime, one latency metric (increase), confidence 0.98, {seeds} seeds each:"
    );
    println!(
        "  {:<34} {:>8} {:>18} {:>18} {:>18}",
        "scenario", "n/side", "fixed", "sequential", "e-processes alone"
    );
    for (name, tail, shift) in [
        ("10% of points 100x (#780)", 0.1, 1.0),
        ("20% of points 100x", 0.2, 1.0),
        ("30% of points 100x (#780)", 0.3, 1.0),
        ("all points +10%", 0.0, 1.1),
        ("all points +30%", 0.0, 1.3),
    ] {
        for n in [50, 120] {
            let f = labelled_power(JudgeMode::Fixed, Look::Final, n, tail, shift, seeds);
            let q = labelled_power(JudgeMode::Sequential, Look::Final, n, tail, shift, seeds);
            let e = labelled_power(JudgeMode::Sequential, Look::Interim, n, tail, shift, seeds);
            println!(
                "  {name:<34} {n:>8} {:>18} {:>18} {:>18}",
                percent(f, seeds as usize),
                percent(q, seeds as usize),
                percent(e, seeds as usize)
            );
        }
    }

    let runs = (analyses / 10).max(50);
    println!(
        "\nTime to detect ({runs} analyses each; median first failing look; detected by the end):"
    );
    println!(
        "  {:<38} {:>24} {:>24} {:>10} {:>10}",
        "scenario", "fixed (every 10 steps)", "sequential (every step)", "fixed end", "seq end"
    );
    for s in REGRESSIONS {
        let (mut f, mut q) = (Vec::new(), Vec::new());
        for seed in 0..runs {
            let a = analysis(&s, STEPS, 1_000_000 + seed);
            f.push(first_failure(&fixed, &a, &boundaries));
            q.push(first_failure(&seq, &a, &every_step));
        }
        let hit = |v: &[Option<usize>]| v.iter().filter(|x| x.is_some()).count();
        println!(
            "  {:<38} {:>24} {:>24} {:>10} {:>10}",
            s.name,
            median(f.clone()),
            median(q.clone()),
            percent(hit(&f), runs as usize),
            percent(hit(&q), runs as usize),
        );
    }

    println!(
        "\nPower by window length (2 continuous metrics, the first changed; analyses of 200 failing it at the end, fixed / sequential):"
    );
    let windows = [5, 7, 10, 15, 20, 30, 40, 60];
    print!("  {:<22}", "change");
    for n in windows {
        print!(" {:>11}", format!("n={n}"));
    }
    println!();
    for (name, tail, factor, shift) in [
        ("5x everywhere", 0.0, 1.0, 5.0),
        ("+30%", 0.0, 1.0, 1.3),
        ("+60%", 0.0, 1.0, 1.6),
        ("30% of points 100x", 0.3, 100.0, 1.0),
        ("20% of points 10x", 0.2, 10.0, 1.0),
    ] {
        print!("  {name:<22}");
        for n in windows {
            let f = power_by_window(JudgeMode::Fixed, n, tail, factor, shift);
            let q = power_by_window(JudgeMode::Sequential, n, tail, factor, shift);
            print!(" {:>11}", format!("{f} / {q}"));
        }
        println!();
    }
}
