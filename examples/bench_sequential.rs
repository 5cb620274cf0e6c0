//! Benchmark (not a test): fixed-horizon vs sequential judgement of simulated
//! canary analyses — false failures of healthy analyses by look schedule,
//! time to detect four regressions, and power at the end of the lifetime.
//!
//!     cargo run --release --example bench_sequential [-- ANALYSES]
//!
//! Two metrics as `make demo` judges them (a p99 latency point and an
//! errors/requests count per 1 s step, ~10 requests a step per side),
//! direction increase, confidence 0.98, 40 steps; fixed mode's controller
//! looks at interval boundaries (every 10 steps), sequential mode every step.

#[path = "../crates/judge/tests/support/sim.rs"]
mod sim;

use redblack_judge::JudgeMode;
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
        "  sequential, at every step (40 looks):   {}",
        percent(counts[3], n)
    );

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
}
