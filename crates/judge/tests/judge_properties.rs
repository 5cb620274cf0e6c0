//! Property tests of the judge's invariances.
//! Samples are integer-valued so that shifting and scaling are exact in
//! floating point: the properties are about the statistics, not rounding.

use proptest::prelude::*;
use redblack_judge::{
    Band, Classification, Direction, GroupConfig, JudgeConfig, MetricConfig, MetricKind,
    MetricSamples, Side, judge, judge_metric,
};

const CONF: f64 = 0.98;
/// The product's tolerance (Kayenta's production 0.25): these tests are about
/// what a user of the default fixed mode gets.
const TOL: f64 = redblack_judge::config::DEFAULT_TOLERANCE;

/// `PROPTEST_CASES` (make fuzz: 20,000) or `default` (make test).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn samples(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((0i32..200).prop_map(f64::from), 1..max_len)
}

/// A canary that may be shifted against the baseline, so that every label occurs.
fn pair() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (samples(60), samples(60), -60i32..60)
        .prop_map(|(c, b, shift)| (c.into_iter().map(|v| v + f64::from(shift)).collect(), b))
}

fn classify(cfg: &MetricConfig, c: &[f64], b: &[f64]) -> redblack_judge::MetricResult {
    judge_metric(cfg, CONF, TOL, &MetricSamples::continuous("m", c, b)).expect("judge")
}

fn mirrored(l: Classification) -> Classification {
    match l {
        Classification::High => Classification::Low,
        Classification::Low => Classification::High,
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(400), ..ProptestConfig::default() })]

    /// Location evidence is antisymmetric. (The tail check is deliberately
    /// not: a heavier canary tail swapped is a *lighter* canary tail, an
    /// improvement, not the opposite regression; so it is off here.)
    #[test]
    fn swapping_sides_swaps_high_and_low((c, b) in pair()) {
        let mut cfg = MetricConfig::new("m");
        cfg.tail.enabled = false;
        let r = classify(&cfg, &c, &b);
        let s = classify(&cfg, &b, &c);
        prop_assert_eq!(s.classification, mirrored(r.classification));
        if let (Some(x), Some(y)) = (r.location, s.location) {
            prop_assert_eq!(x.p_value, y.p_value);
            prop_assert_eq!(x.ci_lower.map(|v| -v), y.ci_upper);
        }
    }

    #[test]
    fn swapping_rate_sides_swaps_high_and_low(
        xc in 0u32..50, nc in 1u32..5000, xb in 0u32..50, nb in 1u32..5000,
    ) {
        let cfg = MetricConfig { kind: MetricKind::Rate, ..MetricConfig::new("m") };
        let run = |c: (u32, u32), b: (u32, u32)| {
            let s = MetricSamples {
                name: "m".into(),
                canary: Side::counts(&[f64::from(c.0)], &[f64::from(c.1)]),
                baseline: Side::counts(&[f64::from(b.0)], &[f64::from(b.1)]),
            };
            judge_metric(&cfg, CONF, TOL, &s).expect("judge").classification
        };
        prop_assert_eq!(run((xb, nb), (xc, nc)), mirrored(run((xc, nc), (xb, nb))));
    }

    #[test]
    fn identical_samples_pass(c in samples(80), direction in prop_oneof![
        Just(Direction::Increase), Just(Direction::Decrease), Just(Direction::Either)]) {
        let cfg = MetricConfig { direction, ..MetricConfig::new("m") };
        let mut shuffled = c.clone();
        shuffled.reverse();
        prop_assert_eq!(classify(&cfg, &c, &shuffled).classification, Classification::Pass);
    }

    #[test]
    fn shifting_both_sides_changes_nothing((c, b) in pair(), shift in -1000i32..1000) {
        let cfg = MetricConfig::new("m");
        let s = f64::from(shift);
        let moved = |v: &[f64]| v.iter().map(|x| x + s).collect::<Vec<_>>();
        let r = classify(&cfg, &c, &b);
        let m = classify(&cfg, &moved(&c), &moved(&b));
        prop_assert_eq!(r.classification, m.classification);
        prop_assert_eq!(r.location.map(|l| l.p_value), m.location.map(|l| l.p_value));
        prop_assert_eq!(r.tail.map(|t| t.p_value), m.tail.map(|t| t.p_value));
    }

    #[test]
    fn scaling_both_sides_keeps_the_classification((c, b) in pair(), scale in prop_oneof![
        Just(0.25), Just(0.5), Just(2.0), Just(3.0), Just(10.0), Just(1000.0)]) {
        let cfg = MetricConfig::new("m");
        let scaled = |v: &[f64]| v.iter().map(|x| x * scale).collect::<Vec<_>>();
        let r = classify(&cfg, &c, &b);
        let m = classify(&cfg, &scaled(&c), &scaled(&b));
        prop_assert_eq!(r.classification, m.classification);
    }

    #[test]
    fn score_is_always_between_0_and_100(
        metrics in prop::collection::vec(
            (pair(), any::<bool>(), any::<bool>(), any::<bool>(), 0usize..3, 0u8..3), 1..8),
        weights in prop::collection::vec(0.0f64..100.0, 3),
        marginal in 0.0f64..100.0, gap in 0.0f64..50.0,
    ) {
        let mut cfg = JudgeConfig::new(Vec::new());
        cfg.groups = weights.iter().enumerate()
            .map(|(i, w)| GroupConfig { name: format!("g{i}"), weight: if i == 0 { w + 1.0 } else { *w } })
            .collect();
        cfg.score_thresholds.marginal = marginal;
        cfg.score_thresholds.pass = (marginal + gap).min(100.0);
        let mut data = Vec::new();
        for (i, ((c, b), critical, must, missing, group, dir)) in metrics.into_iter().enumerate() {
            let direction = [Direction::Increase, Direction::Decrease, Direction::Either][dir as usize];
            cfg.metrics.push(MetricConfig {
                group: format!("g{group}"), critical, must_have_data: must, direction,
                ..MetricConfig::new(format!("m{i}"))
            });
            if !missing {
                data.push(MetricSamples::continuous(format!("m{i}"), &c, &b));
            }
        }
        let r = judge(&cfg, &data).expect("judge");
        prop_assert!((0.0..=100.0).contains(&r.score), "score {}", r.score);
        let t = cfg.score_thresholds;
        match r.band {
            Band::Pass => prop_assert!(r.score >= t.pass),
            Band::Marginal => prop_assert!(r.score >= t.marginal && r.score < t.pass),
            Band::Fail => {
                // With a critical metric without data a score at the
                // threshold fails too (the controller's <= rule).
                let critical_nodata = r.metrics.iter()
                    .any(|m| m.critical && m.classification == Classification::Nodata);
                prop_assert!(r.score < t.marginal || r.forced_zero.is_some()
                    || (critical_nodata && r.score <= t.marginal));
            }
            Band::Inconclusive => prop_assert!(r.score == 0.0 && r.forced_zero.is_some()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// Arbitrary floats (NaN, ±inf, subnormals, huge) never panic and never
    /// yield NaN statistics in the result: they become labels.
    #[test]
    fn arbitrary_input_never_panics(
        c in prop::collection::vec(any::<f64>(), 0..30),
        b in prop::collection::vec(any::<f64>(), 0..30),
        nums in prop::collection::vec(any::<f64>(), 0..6),
        dens in prop::collection::vec(any::<f64>(), 0..6),
        replace in any::<bool>(),
    ) {
        let strategy = if replace { redblack_judge::NanStrategy::Replace } else { redblack_judge::NanStrategy::Remove };
        let cont = MetricConfig { nan_strategy: strategy, ..MetricConfig::new("c") };
        let rate = MetricConfig { kind: MetricKind::Rate, nan_strategy: strategy, ..MetricConfig::new("r") };
        let cfg = JudgeConfig::new(vec![cont, rate]);
        let samples = [
            MetricSamples::continuous("c", &c, &b),
            MetricSamples { name: "r".into(), canary: Side::counts(&nums, &dens), baseline: Side::counts(&dens, &nums) },
        ];
        let r = judge(&cfg, &samples).expect("judge");
        prop_assert!((0.0..=100.0).contains(&r.score));
        if let Some(l) = &r.metrics[0].location {
            prop_assert!(!l.p_value.is_nan());
        }
    }
}
