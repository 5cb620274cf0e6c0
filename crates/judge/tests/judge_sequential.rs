//! Sequential mode, bounded version of examples/bench_sequential.rs: the
//! false failure rate of whole healthy analyses judged at every step, and
//! how fast a 10%-error canary is failed, on fixed seeds (deterministic).

#[path = "support/sim.rs"]
mod sim;

use redblack_judge::{
    Counts, Direction, JudgeConfig, JudgeMode, MetricConfig, MetricKind, MetricSamples, Side,
};
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
    // can at most double the evidence, and the e-process spends 0.75% per
    // test (¾ of α/2; the final look has the rest): about 7-9
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

#[test]
fn the_report_shows_the_e_value_path_and_the_crossing() {
    let a = analysis(&REGRESSIONS[0], STEPS, 42);
    let r = redblack_judge::judge(&config(JudgeMode::Sequential), &a).expect("judged");
    let text = redblack_judge::render_report(&r);
    assert!(text.contains("Sequential test (anytime-valid"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("error-rate") && l.contains(" of 40"))
        .unwrap_or_else(|| panic!("no crossing row for error-rate in\n{text}"));
    assert!(row.contains('█'), "{row}");
    // The JSON keeps the path step by step.
    let errors = r
        .metrics
        .iter()
        .find(|m| m.name == "error-rate")
        .expect("metric");
    let seq = errors.sequential.as_ref().expect("sequential stats");
    assert_eq!((seq.path.len(), seq.path_every), (40, 1));
}

#[test]
fn a_long_path_is_thinned_for_the_status_keeping_the_last_step() {
    let mut s = redblack_judge::SequentialStats {
        alpha: 0.01,
        threshold: 100.0,
        e_value: 301.0,
        max_e_value: 301.0,
        p_value: 1.0 / 301.0,
        crossed_at_step: None,
        steps: 301,
        path: (1..=301).map(f64::from).collect(),
        path_every: 1,
        early_pass: None,
        final_look: None,
    };
    s.thin_path(120);
    assert_eq!(s.path_every, 3);
    assert!(s.path.len() <= 120, "{}", s.path.len());
    // path[i] is the e-value after step (i + 1)·3; the last step is kept.
    assert_eq!(&s.path[..3], &[3.0, 6.0, 9.0]);
    assert_eq!(s.path.last(), Some(&301.0));
    let short = s.clone();
    s.thin_path(120);
    assert_eq!(s, short, "thinning twice changes nothing");
}

#[test]
fn a_rate_step_with_a_gap_is_still_a_step() {
    // The canary's denominator is missing (NaN) at step 2: no bet there,
    // but the step counts, as a continuous step without its pair, so the
    // crossing step is a position in the samples.
    let config = JudgeConfig {
        mode: JudgeMode::Sequential,
        ..JudgeConfig::new(vec![MetricConfig {
            kind: MetricKind::Rate,
            direction: Direction::Increase,
            ..MetricConfig::new("errors")
        }])
    };
    let mut denominator = vec![Some(10.0); 20];
    denominator[1] = None;
    let samples = MetricSamples {
        name: "errors".into(),
        canary: Side::Counts(Counts {
            numerator: vec![Some(1.0); 20],
            denominator,
        }),
        baseline: Side::counts(&[0.0; 20], &[10.0; 20]),
    };
    let r = redblack_judge::judge(&config, &[samples]).expect("judged");
    let s = r.metrics[0].sequential.as_ref().expect("sequential stats");
    assert_eq!((s.steps, s.path.len()), (20, 20));
    assert_eq!(s.path[1], s.path[0], "no bet at the gap");
    let at = s.crossed_at_step.expect("an error a step against none");
    assert!(
        s.path[at - 1] >= s.threshold * (1.0 - 1e-12) && s.path[at - 2] < s.threshold,
        "{at}: {:?}",
        s.path
    );
}
