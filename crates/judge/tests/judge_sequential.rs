//! Sequential mode, bounded version of examples/bench_sequential.rs: the
//! false failure rate of whole healthy analyses judged at every step, and
//! how fast a 10%-error canary is failed, on fixed seeds (deterministic).

#[path = "support/sim.rs"]
mod sim;

use redblack_judge::JudgeMode;
use sim::{REGRESSIONS, Scenario, analysis, config, first_failure};

const STEPS: usize = 40;

#[test]
fn a_healthy_analysis_judged_every_step_rarely_fails_in_sequential_mode() {
    let analyses = 400;
    let every_step: Vec<usize> = (1..=STEPS).collect();
    let (seq, fixed) = (config(JudgeMode::Sequential), config(JudgeMode::Fixed));
    let (mut seq_fail, mut fixed_fail) = (0, 0);
    for seed in 0..analyses {
        let a = analysis(&Scenario::healthy(0.01), STEPS, seed);
        seq_fail += usize::from(first_failure(&seq, &a, &every_step).is_some());
        fixed_fail += usize::from(first_failure(&fixed, &a, &every_step).is_some());
    }
    eprintln!(
        "healthy analyses failed, looking at every one of {STEPS} steps ({analyses} analyses): \
         sequential {seq_fail}, fixed {fixed_fail}"
    );
    // α = 2%: the bound holds for the whole analysis; expect well below it.
    assert!(
        seq_fail * 100 <= 2 * analyses as usize,
        "{seq_fail}/{analyses}"
    );
    // The reason for the mode: fixed-horizon tests at every look fail more.
    assert!(
        fixed_fail > seq_fail,
        "fixed {fixed_fail} vs sequential {seq_fail}"
    );
}

#[test]
fn ten_percent_errors_fail_within_seconds_in_sequential_mode() {
    // 10 requests a step per side, 10% errors on the canary, none on the
    // baseline: ~1 canary error a step. With equal traffic each such error
    // can at most double the evidence, and α per test is 1%: about 7-9
    // errors are needed, whatever the test.
    let scenario = REGRESSIONS[0];
    let every_step: Vec<usize> = (1..=STEPS).collect();
    let seq = config(JudgeMode::Sequential);
    let mut steps: Vec<usize> = (0..100)
        .map(|seed| {
            first_failure(
                &seq,
                &analysis(&scenario, STEPS, 10_000 + seed),
                &every_step,
            )
            .unwrap_or(usize::MAX)
        })
        .collect();
    steps.sort_unstable();
    eprintln!(
        "{}: failed at step median {}, 95th percentile {}, max {} (100 analyses)",
        scenario.name, steps[49], steps[94], steps[99]
    );
    assert!(steps[49] <= 10, "{steps:?}");
    assert!(steps[94] <= 20, "{steps:?}");
}
