//! Labelled scenarios with known truth, and Kayenta's edge cases.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal, Poisson};
use redblack_judge::{
    Band, Classification, DecidedBy, Direction, EffectSize, MetricConfig, MetricKind,
    MetricSamples, NanStrategy, Side, judge_metric,
};

const CONF: f64 = 0.98;
/// The product's tolerance (Kayenta's production 0.25): these tests are about
/// what a user of the default fixed mode gets.
const TOL: f64 = redblack_judge::config::DEFAULT_TOLERANCE;

fn latency(rng: &mut StdRng, n: usize, scale: f64) -> Vec<f64> {
    let d = LogNormal::new(4.0, 0.4).expect("lognormal");
    (0..n).map(|_| d.sample(rng) * scale).collect()
}

fn run(cfg: &MetricConfig, canary: &[f64], baseline: &[f64]) -> redblack_judge::MetricResult {
    run_at(TOL, cfg, canary, baseline)
}

fn run_at(
    tolerance: f64,
    cfg: &MetricConfig,
    canary: &[f64],
    baseline: &[f64],
) -> redblack_judge::MetricResult {
    judge_metric(
        cfg,
        CONF,
        tolerance,
        &MetricSamples::continuous(&cfg.name, canary, baseline),
    )
    .expect("judge")
}

fn rate(
    cfg: &MetricConfig,
    c: (&[f64], &[f64]),
    b: (&[f64], &[f64]),
) -> redblack_judge::MetricResult {
    let s = MetricSamples {
        name: cfg.name.clone(),
        canary: Side::counts(c.0, c.1),
        baseline: Side::counts(b.0, b.1),
    };
    judge_metric(cfg, CONF, TOL, &s).expect("judge")
}

fn rate_cfg() -> MetricConfig {
    MetricConfig {
        kind: MetricKind::Rate,
        direction: Direction::Increase,
        ..MetricConfig::new("errors")
    }
}

#[test]
fn pure_noise_mostly_passes() {
    // Not a single seed: a single noise draw fails 2% of the time by design.
    let cfg = MetricConfig::new("latency");
    let passes = (0..100u64)
        .filter(|seed| {
            let mut rng = StdRng::seed_from_u64(*seed);
            let (c, b) = (latency(&mut rng, 120, 1.0), latency(&mut rng, 120, 1.0));
            run(&cfg, &c, &b).classification == Classification::Pass
        })
        .count();
    assert!(passes >= 92, "only {passes}/100 noise draws passed");
}

#[test]
fn small_shift_within_allowed_effect_size_passes() {
    let mut rng = StdRng::seed_from_u64(7);
    let (c, b) = (latency(&mut rng, 2000, 1.04), latency(&mut rng, 2000, 1.0));
    // About the effect-size rule, so the raw location rule (tolerance 0):
    // at 0.25 this 4% shift is already a Pass by the tolerance.
    let plain = run_at(0.0, &MetricConfig::new("latency"), &c, &b);
    // The shift is real and detected...
    assert_eq!(
        plain.classification,
        Classification::High,
        "{}",
        plain.reason
    );
    let cfg = MetricConfig {
        effect_size: EffectSize {
            allowed_increase: Some(1.10),
            ..Default::default()
        },
        ..MetricConfig::new("latency")
    };
    // ...but tolerated by the effect-size bound.
    let r = run_at(0.0, &cfg, &c, &b);
    assert_eq!(r.classification, Classification::Pass);
    assert_eq!(r.decided_by, DecidedBy::EffectSizeWithinAllowed);
}

#[test]
fn large_shift_is_high_and_beyond_critical_bound_forces_zero() {
    let mut rng = StdRng::seed_from_u64(11);
    let (c, b) = (latency(&mut rng, 120, 1.5), latency(&mut rng, 120, 1.0));
    let r = run(&MetricConfig::new("latency"), &c, &b);
    assert_eq!(r.classification, Classification::High);
    assert_eq!(r.decided_by, DecidedBy::MannWhitney);
    let loc = r.location.as_ref().expect("location stats");
    assert!(loc.ci_lower.is_some_and(|l| l > 0.0) && loc.p_value < 0.02);
    assert!(
        r.ratio.is_some_and(|x| x > 1.3 && x < 1.7),
        "ratio {:?}",
        r.ratio
    );

    let cfg = MetricConfig {
        effect_size: EffectSize {
            critical_increase: Some(1.3),
            ..Default::default()
        },
        ..MetricConfig::new("latency")
    };
    let config = redblack_judge::JudgeConfig::new(vec![cfg, MetricConfig::new("cpu")]);
    let cpu = latency(&mut rng, 120, 1.0);
    let samples = [
        MetricSamples::continuous("latency", &c, &b),
        MetricSamples::continuous("cpu", &cpu, &cpu),
    ];
    let res = redblack_judge::judge(&config, &samples).expect("judge");
    assert_eq!(res.metrics[0].decided_by, DecidedBy::CriticalBound);
    assert_eq!((res.score, res.band), (0.0, Band::Fail));
}

/// kayenta #780: canary like the baseline, but 30% of its samples 100× higher.
#[test]
fn tail_regression_780_is_high() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let b = latency(&mut rng, 50, 1.0);
        let mut c = latency(&mut rng, 50, 1.0);
        for v in c.iter_mut().take(15) {
            *v *= 100.0;
        }
        let cfg = MetricConfig {
            direction: Direction::Increase,
            ..MetricConfig::new("latency")
        };
        let r = run(&cfg, &c, &b);
        assert_eq!(
            r.classification,
            Classification::High,
            "seed {seed}: {}",
            r.reason
        );
    }
}

/// A thinner tail (10% of samples 100× higher) that Mann-Whitney's location
/// interval mostly does not see: the tail check catches it. (At 8% the exact
/// test at 0.98 is near its detection limit; docs/judge.md gives the power.)
#[test]
fn tail_check_catches_what_mann_whitney_misses() {
    let mut by_tail = 0;
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let b = latency(&mut rng, 120, 1.0);
        let mut c = latency(&mut rng, 120, 1.0);
        for v in c.iter_mut().take(12) {
            *v *= 100.0;
        }
        let cfg = MetricConfig {
            direction: Direction::Increase,
            ..MetricConfig::new("latency")
        };
        let r = run(&cfg, &c, &b);
        assert_eq!(
            r.classification,
            Classification::High,
            "seed {seed}: {}",
            r.reason
        );
        if r.decided_by == DecidedBy::TailCheck {
            by_tail += 1;
        }
        let mut off = cfg.clone();
        off.tail.enabled = false;
        if r.decided_by == DecidedBy::TailCheck {
            assert_eq!(run(&off, &c, &b).classification, Classification::Pass);
        }
    }
    assert!(
        by_tail >= 15,
        "Mann-Whitney alone caught too many: tail decided {by_tail}/20"
    );
}

#[test]
fn latency_improvement_with_direction_increase_passes() {
    let mut rng = StdRng::seed_from_u64(3);
    let (c, b) = (latency(&mut rng, 120, 0.6), latency(&mut rng, 120, 1.0));
    let either = run(&MetricConfig::new("latency"), &c, &b);
    assert_eq!(either.classification, Classification::Low);
    let cfg = MetricConfig {
        direction: Direction::Increase,
        ..MetricConfig::new("latency")
    };
    let r = run(&cfg, &c, &b);
    assert_eq!(r.classification, Classification::Pass);
    assert_eq!(r.decided_by, DecidedBy::Direction);
}

#[test]
fn sparse_errors_are_judged_on_counts() {
    let cfg = rate_cfg();
    // 3 errors in 100 requests vs 0 in 10,000: High.
    let r = rate(&cfg, (&[3.0], &[100.0]), (&[0.0], &[10_000.0]));
    assert_eq!(r.classification, Classification::High, "{}", r.reason);
    assert_eq!(r.decided_by, DecidedBy::RateTest);
    // 1/10,000 vs 1/10,000: Pass.
    let r = rate(&cfg, (&[1.0], &[10_000.0]), (&[1.0], &[10_000.0]));
    assert_eq!(r.classification, Classification::Pass);
    // 2/1,000 vs 0/50: not enough evidence.
    let r = rate(&cfg, (&[2.0], &[1000.0]), (&[0.0], &[50.0]));
    assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
    let stats = r.rate.expect("rate stats");
    assert!(stats.p_value > 0.5 && stats.ratio_ci_upper.is_none());
}

/// kayenta #426: errors 0,1,2 per interval vs all 0 at the same volume.
#[test]
fn sparse_error_intervals_426_fail() {
    let cfg = rate_cfg();
    let errors = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 1.0, 0.0, 2.0, 1.0];
    let zeros = [0.0; 10];
    let requests = [1000.0; 10];
    let r = rate(&cfg, (&errors, &requests), (&zeros, &requests));
    assert_eq!(r.classification, Classification::High, "{}", r.reason);
    // The reverse (the baseline has the errors) is an improvement for an
    // increase-is-bad metric: Pass.
    let r = rate(&cfg, (&zeros, &requests), (&errors, &requests));
    assert_eq!(r.classification, Classification::Pass);
}

#[test]
fn rate_metric_without_traffic_is_nodata() {
    let mut cfg = rate_cfg();
    let r = rate(
        &cfg,
        (&[0.0, 0.0], &[0.0, 0.0]),
        (&[1.0, 0.0], &[500.0, 400.0]),
    );
    assert_eq!(r.classification, Classification::Nodata);
    assert!(r.reason.contains("no traffic"), "{}", r.reason);
    cfg.must_have_data = true;
    let r = rate(&cfg, (&[], &[]), (&[1.0], &[500.0]));
    assert_eq!(r.classification, Classification::NodataFailMetric);
    let r = rate(&cfg, (&[1.0, 2.0], &[500.0]), (&[1.0], &[500.0]));
    assert_eq!(
        (r.classification, r.decided_by),
        (Classification::Error, DecidedBy::InvalidData)
    );
    let r = rate(&cfg, (&[-1.0], &[500.0]), (&[1.0], &[500.0]));
    assert_eq!(r.classification, Classification::Error);
}

#[test]
fn kayenta_edge_cases() {
    let cfg = MetricConfig::new("m");
    let some = [1.0, 2.0, 3.0, 4.0];
    // Empty side.
    assert_eq!(run(&cfg, &[], &some).classification, Classification::Nodata);
    assert_eq!(run(&cfg, &some, &[]).classification, Classification::Nodata);
    let must = MetricConfig {
        must_have_data: true,
        ..cfg.clone()
    };
    assert_eq!(
        run(&must, &[], &some).classification,
        Classification::NodataFailMetric
    );
    // Identical sides (in any order).
    let r = run(&cfg, &[4.0, 3.0, 2.0, 1.0], &some);
    assert_eq!(
        (r.classification, r.decided_by),
        (Classification::Pass, DecidedBy::Identical)
    );
    // Constant sides, equal.
    let r = run(&cfg, &[5.0; 10], &[5.0; 30]);
    assert_eq!(
        (r.classification, r.decided_by),
        (Classification::Pass, DecidedBy::Identical)
    );
    // Constant sides, different: a real, certain difference.
    let r = run(&cfg, &[6.0; 30], &[5.0; 30]);
    assert_eq!(r.classification, Classification::High);
    // All NaN.
    let r = run(&cfg, &[f64::NAN; 5], &some);
    assert_eq!(r.classification, Classification::Nodata);
    assert_eq!(r.canary_nan_removed, 5);
    // NaN replaced by 0 is data.
    let rep = MetricConfig {
        nan_strategy: NanStrategy::Replace,
        ..cfg.clone()
    };
    let r = run(&rep, &[f64::NAN; 5], &[0.0; 5]);
    assert_eq!(
        (r.classification, r.canary_count),
        (Classification::Pass, 5)
    );
    // Infinite values are an Error, not a silent pass.
    let r = run(&cfg, &[f64::INFINITY, 1.0], &some);
    assert_eq!(r.classification, Classification::Error);
    // One sample per side: no bounded interval, so no evidence: Pass.
    let r = run(&cfg, &[100.0], &[1.0]);
    assert_eq!(r.classification, Classification::Pass);
    assert_eq!(r.location.expect("stats").ci_lower, None);
}

#[test]
fn outlier_removal_is_reported() {
    let cfg = MetricConfig {
        outliers: redblack_judge::OutlierConfig {
            enabled: true,
            factor: 3.0,
        },
        ..MetricConfig::new("m")
    };
    let mut rng = StdRng::seed_from_u64(5);
    let mut c: Vec<f64> = (0..50).map(|_| rng.random_range(10.0..11.0)).collect();
    c.push(1e6);
    let b: Vec<f64> = (0..50).map(|_| rng.random_range(10.0..11.0)).collect();
    let r = run(&cfg, &c, &b);
    assert_eq!((r.canary_outliers_removed, r.canary_count), (1, 50));
    assert_eq!(r.baseline_outliers_removed, 0);
}

#[test]
fn poisson_counts_as_continuous_metric_work_with_ties() {
    let mut rng = StdRng::seed_from_u64(9);
    let p = Poisson::new(3.0).expect("poisson");
    let b: Vec<f64> = (0..120).map(|_| p.sample(&mut rng)).collect();
    let c: Vec<f64> = (0..120).map(|_| p.sample(&mut rng) + 3.0).collect();
    let r = run(&MetricConfig::new("queue"), &c, &b);
    assert_eq!(r.classification, Classification::High);
}
