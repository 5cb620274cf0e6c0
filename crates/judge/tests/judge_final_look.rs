//! The final look of a sequential analysis (docs/judge.md, "Final look"):
//! the fixed-horizon tests judge the whole window once, at the end of the
//! lifetime, at a quarter of α — interim looks never run them.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
use redblack_judge::sequential::final_look::{SEQUENTIAL_SHARE, fixed_level};
use redblack_judge::{
    Band, Classification, DecidedBy, Direction, EffectSize, JudgeConfig, JudgeMode, Look,
    MetricConfig, MetricKind, MetricSamples, TailCheckConfig, judge_at,
};

fn latency(direction: Direction) -> MetricConfig {
    MetricConfig {
        direction,
        ..MetricConfig::new("latency")
    }
}

fn sequential(metrics: Vec<MetricConfig>) -> JudgeConfig {
    JudgeConfig {
        mode: JudgeMode::Sequential,
        ..JudgeConfig::new(metrics)
    }
}

/// `n` points per side from one log-normal; a `tail` fraction of the
/// canary's points `factor`× higher, spread over the run.
fn samples(seed: u64, n: usize, tail: f64, factor: f64) -> MetricSamples {
    let dist = LogNormal::new(0.0, 0.3).expect("valid lognormal");
    let mut rng = StdRng::seed_from_u64(seed);
    let b: Vec<f64> = (0..n).map(|_| dist.sample(&mut rng)).collect();
    let c: Vec<f64> = (0..n)
        .map(|i| {
            let v = dist.sample(&mut rng);
            if (i as f64 + 0.5) * tail % 1.0 < tail {
                v * factor
            } else {
                v
            }
        })
        .collect();
    MetricSamples::continuous("latency", &c, &b)
}

#[test]
fn the_level_keeps_every_fixed_rule_of_a_metric_within_its_share() {
    let no_tail = TailCheckConfig {
        enabled: false,
        ..TailCheckConfig::default()
    };
    let rate = |direction| MetricConfig {
        kind: MetricKind::Rate,
        direction,
        ..MetricConfig::new("errors")
    };
    let cases = [
        // One direction: HL interval L/2 + tail check L = 1.5 L.
        (latency(Direction::Increase), 0.003, 0.002),
        // Both: L/2 + L/2 + tail check L (both tails within it) = 2 L.
        (latency(Direction::Either), 0.004, 0.002),
        (
            MetricConfig {
                tail: no_tail.clone(),
                ..latency(Direction::Decrease)
            },
            0.002,
            0.004,
        ),
        (
            MetricConfig {
                tail: no_tail,
                ..latency(Direction::Either)
            },
            0.004,
            0.004,
        ),
        // One-sided p for one direction, doubled for both.
        (rate(Direction::Increase), 0.005, 0.005),
        (rate(Direction::Either), 0.01, 0.01),
    ];
    for (cfg, share, want) in cases {
        let got = fixed_level(&cfg, share);
        assert!(
            (got - want).abs() < 1e-15,
            "{:?} {:?}: {got} vs {want}",
            cfg.kind,
            cfg.direction
        );
    }
}

#[test]
fn interim_looks_never_run_the_fixed_tests() {
    let config = sequential(vec![latency(Direction::Increase)]);
    let r = judge_at(&config, &[samples(1, 120, 0.1, 100.0)], Look::Interim).expect("judged");
    let seq = r.metrics[0].sequential.as_ref().expect("sequential stats");
    assert_eq!(seq.final_look, None);
    assert_eq!(r.metrics[0].decided_by, DecidedBy::Sequential);
}

#[test]
fn the_final_look_catches_a_rare_slow_tail_the_e_processes_miss() {
    // kayenta #780 at 10 %: 12 of 120 canary points 100× slower. The
    // e-processes alone catch it in about a third of the runs (the price of
    // looking at every step); the final look's tail check nearly always.
    let config = sequential(vec![latency(Direction::Increase)]);
    let (mut interim, mut last) = (0, 0);
    for seed in 0..100 {
        let s = [samples(100 + seed, 120, 0.1, 100.0)];
        let fails = |look| {
            judge_at(&config, &s, look)
                .expect("judged")
                .band
                .eq(&Band::Fail)
        };
        interim += usize::from(fails(Look::Interim));
        last += usize::from(fails(Look::Final));
    }
    eprintln!(
        "10% of points 100x at 120/side: e-processes {interim}/100, with the final look {last}/100"
    );
    assert!(last >= 95, "{last}/100");
    assert!(last > interim + 30, "final {last} vs interim {interim}");

    // What a person reads: the rule, the level and the e-process beside it.
    let r = (0..100)
        .map(|seed| {
            judge_at(
                &config,
                &[samples(100 + seed, 120, 0.1, 100.0)],
                Look::Final,
            )
            .expect("judged")
        })
        .find(|r| r.metrics[0].decided_by == DecidedBy::TailCheck)
        .expect("some run is decided by the final look's tail check");
    let m = &r.metrics[0];
    assert_eq!(m.classification, Classification::High);
    assert!(m.reason.starts_with("final look"), "{}", m.reason);
    let seq = m.sequential.as_ref().expect("the e-process is kept");
    assert_eq!(seq.crossed_at_step, None);
    let fl = seq.final_look.as_ref().expect("final look stats");
    let share = 0.02 * (1.0 - SEQUENTIAL_SHARE);
    assert!((fl.alpha - share).abs() < 1e-15, "{}", fl.alpha);
    assert!((fl.level - share / 1.5).abs() < 1e-15, "{}", fl.level);
    assert_eq!(fl.classification, Classification::High);
    assert!(m.tail.as_ref().is_some_and(|t| t.p_value < fl.level));
}

#[test]
fn a_metric_the_e_process_failed_keeps_its_sequential_decision() {
    let config = sequential(vec![latency(Direction::Increase)]);
    let r = judge_at(&config, &[samples(7, 120, 0.5, 100.0)], Look::Final).expect("judged");
    let m = &r.metrics[0];
    assert_eq!(m.classification, Classification::High);
    assert_eq!(m.decided_by, DecidedBy::Sequential);
    let seq = m.sequential.as_ref().expect("sequential stats");
    assert!(seq.crossed_at_step.is_some());
    assert_eq!(
        seq.final_look.as_ref().map(|f| f.classification),
        Some(Classification::High)
    );
}

#[test]
fn the_effect_size_bounds_apply_to_the_final_look_too() {
    // +10 % everywhere: significant at 2,000 points but allowed up to +20 %.
    let cfg = MetricConfig {
        effect_size: EffectSize {
            allowed_increase: Some(1.2),
            ..EffectSize::default()
        },
        ..latency(Direction::Increase)
    };
    let config = sequential(vec![cfg]);
    let dist = LogNormal::new(0.0, 0.3).expect("valid lognormal");
    let mut rng = StdRng::seed_from_u64(3);
    let b: Vec<f64> = (0..2000).map(|_| dist.sample(&mut rng)).collect();
    let c: Vec<f64> = (0..2000).map(|_| dist.sample(&mut rng) * 1.1).collect();
    let r = judge_at(
        &config,
        &[MetricSamples::continuous("latency", &c, &b)],
        Look::Final,
    )
    .expect("judged");
    let m = &r.metrics[0];
    assert_eq!(m.classification, Classification::Pass, "{}", m.reason);
    let fl = m
        .sequential
        .as_ref()
        .and_then(|s| s.final_look.as_ref())
        .expect("final look stats");
    assert_eq!(fl.classification, Classification::Pass);
    assert_eq!(fl.decided_by, DecidedBy::EffectSizeWithinAllowed);
}

#[test]
fn healthy_windows_rarely_fail_at_the_final_look() {
    // A/A at 120 points per side, 1,000 windows: the final look alone may
    // fail at most its share of α (0.5 %) in expectation.
    let config = sequential(vec![latency(Direction::Increase)]);
    let failed = (0..1000)
        .filter(|seed| {
            let s = [samples(50_000 + seed, 120, 0.0, 1.0)];
            judge_at(&config, &s, Look::Final).is_ok_and(|r| r.band == Band::Fail)
        })
        .count();
    eprintln!("healthy windows failed at the final look (e-process included): {failed}/1000");
    // Bound 2 % (the whole α); expected ≈ 0.5–1 %.
    assert!(failed <= 20, "{failed}/1000");
}
