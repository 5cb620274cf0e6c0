//! The tail check on a tied tail: every slow request timing out at the same
//! 30 s, or Prometheus' histogram_quantile landing on a bucket bound, puts
//! the pooled order statistic inside a block of equal values. Counting only
//! values strictly beyond it then finds no exceedance at all, and a canary
//! with four times the baseline's timeouts passed (`ci-contains-zero`).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal, Poisson};
use redblack_judge::tail::{Tail, tail_test};
use redblack_judge::{Classification, DecidedBy, Direction, MetricConfig, MetricSamples};
use redblack_judge::{MetricResult, judge_metric};

const CONF: f64 = 0.98;
/// The product's tolerance (Kayenta's production 0.25): these tests are about
/// what a user of the default fixed mode gets.
const TOL: f64 = redblack_judge::config::DEFAULT_TOLERANCE;
const QUANTILES: [f64; 2] = [0.9, 0.95];

/// Latencies in seconds, lognormal around 0.1 s.
fn latency(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let d = LogNormal::new(0.1_f64.ln(), 0.4).expect("lognormal");
    (0..n).map(|_| d.sample(rng)).collect()
}

/// Requests per interval, Poisson around 100.
fn throughput(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let d = Poisson::new(100.0).expect("poisson");
    (0..n).map(|_| d.sample(rng)).collect()
}

/// `n` samples: `tied` of them exactly `value`, the rest drawn by `bulk`.
fn with_tied(
    rng: &mut StdRng,
    n: usize,
    tied: usize,
    value: f64,
    bulk: fn(&mut StdRng, usize) -> Vec<f64>,
) -> Vec<f64> {
    let mut v = bulk(rng, n - tied);
    v.extend(std::iter::repeat_n(value, tied));
    v
}

fn run(direction: Direction, canary: &[f64], baseline: &[f64]) -> MetricResult {
    let cfg = MetricConfig {
        direction,
        ..MetricConfig::new("m")
    };
    let samples = MetricSamples::continuous("m", canary, baseline);
    judge_metric(&cfg, CONF, TOL, &samples).expect("judge")
}

struct Case {
    name: &'static str,
    direction: Direction,
    /// (canary tied, baseline tied) samples at `value`, 120 per side.
    tied: (usize, usize),
    value: f64,
    bulk: fn(&mut StdRng, usize) -> Vec<f64>,
    expect: Classification,
    /// The rule that must decide: the tail check, since Mann-Whitney's
    /// interval contains 0 in these cases (asserted below).
    decided_by: DecidedBy,
}

/// Cases where the location test does not decide, so the tail check must.
#[test]
fn tied_tails_are_judged_by_the_tail_check() {
    let cases = [
        Case {
            name: "timeouts: 20 canary vs 6 baseline requests at exactly 30 s",
            direction: Direction::Increase,
            tied: (20, 6),
            value: 30.0,
            bulk: latency,
            expect: Classification::High,
            decided_by: DecidedBy::TailCheck,
        },
        Case {
            name: "timeouts, direction either",
            direction: Direction::Either,
            tied: (20, 6),
            value: 30.0,
            bulk: latency,
            expect: Classification::High,
            decided_by: DecidedBy::TailCheck,
        },
        Case {
            name: "histogram_quantile on the 0.5 s bucket bound: 22 vs 4",
            direction: Direction::Increase,
            tied: (22, 4),
            value: 0.5,
            bulk: latency,
            expect: Classification::High,
            decided_by: DecidedBy::TailCheck,
        },
        Case {
            name: "lower tail: throughput 0 in 20 canary vs 6 baseline intervals",
            direction: Direction::Decrease,
            tied: (20, 6),
            value: 0.0,
            bulk: throughput,
            expect: Classification::Low,
            decided_by: DecidedBy::TailCheck,
        },
        Case {
            name: "control: the same tied tail on both sides is no regression",
            direction: Direction::Either,
            tied: (13, 13),
            value: 30.0,
            bulk: latency,
            expect: Classification::Pass,
            decided_by: DecidedBy::CiContainsZero,
        },
    ];
    for (seed, case) in cases.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(100 + seed as u64);
        let c = with_tied(&mut rng, 120, case.tied.0, case.value, case.bulk);
        let b = with_tied(&mut rng, 120, case.tied.1, case.value, case.bulk);
        let r = run(case.direction, &c, &b);
        let loc = r.location.as_ref().expect("location stats");
        let tail = r.tail.as_ref().expect("tail stats");
        println!(
            "{}: {:?} by {:?}; MW p={:.3e} CI [{:?}, {:?}]; tail {} q{} threshold {} {}/{} p={:.3e}; ratio {:?}",
            case.name,
            r.classification,
            r.decided_by,
            loc.p_value,
            loc.ci_lower,
            loc.ci_upper,
            tail.tail,
            tail.quantile,
            tail.threshold,
            tail.canary_exceedances,
            tail.baseline_exceedances,
            tail.p_value,
            r.ratio
        );
        // The setup: Mann-Whitney's interval contains 0, so only the tail
        // check can find these regressions.
        let contains_zero =
            loc.ci_lower.is_none_or(|l| l <= 0.0) && loc.ci_upper.is_none_or(|u| u >= 0.0);
        assert!(
            contains_zero,
            "{}: location decides: {}",
            case.name, r.reason
        );
        assert_eq!(
            (r.classification, r.decided_by),
            (case.expect, case.decided_by),
            "{}: {}",
            case.name,
            r.reason
        );
    }
}

/// The #780 shape with a tied tail: 25% of the canary times out at exactly
/// 30 s, the rest like the baseline (ratio of means ≈ 70). Mann-Whitney's p
/// is small but its interval still contains 0 (the median of the
/// differences sits in the bulk), so the tail check must find it; it used
/// to pass (`ci-contains-zero`).
#[test]
fn quarter_of_canary_at_one_timeout_value_is_found_by_the_tail_check() {
    let mut rng = StdRng::seed_from_u64(7);
    let c = with_tied(&mut rng, 120, 30, 30.0, latency);
    let b = latency(&mut rng, 120);
    let t = tail_test(&c, &b, Direction::Increase, &QUANTILES).expect("tail test");
    println!("quarter at 30 s: {t:?}");
    assert_eq!(t.tail, Tail::Upper);
    assert_eq!((t.canary_exceedances, t.baseline_exceedances), (30, 0));
    assert!(t.p_value < 1e-6, "tail p {:e}", t.p_value);
    let r = run(Direction::Increase, &c, &b);
    let loc = r.location.as_ref().expect("location stats");
    println!(
        "quarter at 30 s: {:?} by {:?}; MW p={:.3e} CI [{:?}, {:?}]: {}",
        r.classification, r.decided_by, loc.p_value, loc.ci_lower, loc.ci_upper, r.reason
    );
    assert_eq!(
        (r.classification, r.decided_by),
        (Classification::High, DecidedBy::TailCheck),
        "{}",
        r.reason
    );
    // The reason says that the tied values were counted, and where.
    assert!(
        r.reason
            .contains("30 of 120 canary vs 0 of 120 baseline at or beyond the pooled q0.9 (30)"),
        "{}",
        r.reason
    );
}

/// Exactness with ties: under the null (labels a uniformly random half of
/// one fixed, heavily tied pooled sample) the adjusted p-value falls below
/// alpha at most alpha of the time. The threshold depends on the pooled
/// multiset only, never on the labels, which is what keeps the law exact.
#[test]
fn tied_tail_check_keeps_its_false_positive_rate() {
    let mut rng = StdRng::seed_from_u64(42);
    // 240 pooled values: 26 at one timeout value, 20 zeros (lower tail), and
    // bulk values rounded to 10 ms so that they tie among themselves too.
    let mut pooled: Vec<f64> = latency(&mut rng, 194)
        .into_iter()
        .map(|v| (v * 100.0).round() / 100.0)
        .collect();
    pooled.extend(std::iter::repeat_n(30.0, 26));
    pooled.extend(std::iter::repeat_n(0.0, 20));
    let alpha = 1.0 - CONF;
    let draws = 4000;
    let mut rejections = 0;
    for _ in 0..draws {
        // Fisher-Yates: a uniformly random labelling.
        for i in (1..pooled.len()).rev() {
            let j = rng.random_range(0..=i);
            pooled.swap(i, j);
        }
        let (c, b) = pooled.split_at(120);
        let t = tail_test(c, b, Direction::Either, &QUANTILES).expect("tail test");
        if t.p_value < alpha {
            rejections += 1;
        }
    }
    let rate = rejections as f64 / draws as f64;
    println!(
        "tied null: {rejections}/{draws} = {:.2}% below alpha {alpha}",
        100.0 * rate
    );
    // alpha plus 3 binomial standard deviations of the estimate.
    let slack = 3.0 * (alpha * (1.0 - alpha) / draws as f64).sqrt();
    assert!(rate <= alpha + slack, "false-positive rate {rate}");
}
