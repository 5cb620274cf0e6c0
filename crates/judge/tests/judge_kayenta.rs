//! Kayenta parity (issue 12): the tolerance of Kayenta's production judge,
//! the score rounded to two decimals, the sign of z, Kayenta's outlier
//! fences, and the one deliberate difference pinned here: an empty side is
//! Nodata even with `nanStrategy: replace`. docs/judge.md, "Differences
//! from Kayenta", has the whole table.

use redblack_judge::classify::location_finding;
use redblack_judge::config::DEFAULT_TOLERANCE;
use redblack_judge::outliers::clean;
use redblack_judge::{
    Band, Classification, DecidedBy, Direction, JudgeConfig, JudgeMode, MetricConfig,
    MetricSamples, NanStrategy, OutlierConfig, judge, judge_metric, validate,
};
use statrs::distribution::{ContinuousCDF, Normal};

const CONF: f64 = 0.98;

/// `n` evenly spread normal quantiles around `mean`: deterministic samples
/// whose statistics the table below can state. `offset` in (0, 1) moves the
/// grid so that the canary is not a shifted copy of the baseline.
fn grid(n: usize, mean: f64, sd: f64, offset: f64) -> Vec<f64> {
    let z = Normal::new(0.0, 1.0).expect("normal");
    (0..n)
        .map(|i| mean + sd * z.inverse_cdf((i as f64 + offset) / n as f64))
        .collect()
}

/// Canary shifted by `shift` (negative: lower) against a baseline around
/// 100 with spread `sd`, 60 samples per side. The lower case mirrors the
/// higher one around 100, so both have the same p-value.
fn shifted(shift: f64, sd: f64) -> (Vec<f64>, Vec<f64>) {
    let baseline = grid(60, 100.0, sd, 0.5);
    let up = grid(60, 0.0, sd, 0.25);
    let canary = if shift >= 0.0 {
        up.iter().map(|v| 100.0 + shift + v).collect()
    } else {
        up.iter().map(|v| 100.0 + shift - v).collect()
    };
    (canary, baseline)
}

#[test]
fn the_location_rule_with_a_tolerance_is_kayentas() {
    // (lower, upper, HL, tolerance) -> finding; c = tolerance·|HL|.
    type Row = (Option<f64>, Option<f64>, f64, f64, Option<Classification>);
    let high = Some(Classification::High);
    let low = Some(Classification::Low);
    let rows: [Row; 10] = [
        (Some(0.1), Some(2.0), 1.0, 0.0, high),     // excludes 0
        (Some(0.1), Some(2.0), 1.0, 0.25, None),    // 0.1 <= 0.25
        (Some(0.3), Some(2.0), 1.0, 0.25, high),    // 0.3 > 0.25
        (Some(0.25), Some(2.0), 1.0, 0.25, None),   // strict: at c is not beyond
        (Some(-2.0), Some(-0.1), -1.0, 0.0, low),   // mirror
        (Some(-2.0), Some(-0.1), -1.0, 0.25, None), // -0.1 >= -0.25
        (Some(-2.0), Some(-0.3), -1.0, 0.25, low),  // -0.3 < -0.25
        (Some(-0.5), Some(0.5), 0.0, 0.0, None),    // contains 0
        (None, None, 3.0, 0.0, None),               // unbounded: no evidence
        (Some(0.5), Some(1.5), 1.0, 0.0 + 0.5 - 1e-9, high), // just clears
    ];
    for (lo, hi, hl, tol, want) in rows {
        assert_eq!(
            location_finding(lo, hi, hl, tol),
            want,
            "lower {lo:?} upper {hi:?} HL {hl} tolerance {tol}"
        );
    }
}

#[test]
fn a_small_significant_shift_passes_within_kayentas_tolerance() {
    struct Case {
        name: &'static str,
        shift: f64,
        sd: f64,
        direction: Direction,
        /// p-value range the data must have, so the case is what it says.
        p: (f64, f64),
        at_zero: (Classification, DecidedBy),
        at_default: (Classification, DecidedBy),
    }
    use Classification::{High, Low, Pass};
    let cases = [
        Case {
            name: "5.5% higher, p≈0.009 (the issue's case)",
            shift: 5.75,
            sd: 11.3,
            direction: Direction::Either,
            p: (0.006, 0.012),
            at_zero: (High, DecidedBy::MannWhitney),
            at_default: (Pass, DecidedBy::Tolerance),
        },
        Case {
            name: "5.5% lower, p≈0.009",
            shift: -5.75,
            sd: 11.3,
            direction: Direction::Either,
            p: (0.006, 0.012),
            at_zero: (Low, DecidedBy::MannWhitney),
            at_default: (Pass, DecidedBy::Tolerance),
        },
        Case {
            name: "5.5% higher with a narrow spread, p<1e-4: clears the tolerance",
            shift: 5.75,
            sd: 7.0,
            direction: Direction::Either,
            p: (0.0, 1e-4),
            at_zero: (High, DecidedBy::MannWhitney),
            at_default: (High, DecidedBy::MannWhitney),
        },
        Case {
            name: "5.5% lower on an increase-only metric: not checked either way",
            shift: -5.75,
            sd: 11.3,
            direction: Direction::Increase,
            p: (0.006, 0.012),
            at_zero: (Pass, DecidedBy::Direction),
            at_default: (Pass, DecidedBy::Direction),
        },
        Case {
            name: "no shift",
            shift: 0.0,
            sd: 11.3,
            direction: Direction::Either,
            p: (0.5, 1.0),
            at_zero: (Pass, DecidedBy::CiContainsZero),
            at_default: (Pass, DecidedBy::CiContainsZero),
        },
    ];
    for case in cases {
        let (c, b) = shifted(case.shift, case.sd);
        let mut cfg = MetricConfig {
            direction: case.direction,
            ..MetricConfig::new("latency")
        };
        // About the location rule: the tail check must not decide.
        cfg.tail.enabled = false;
        let s = MetricSamples::continuous("latency", &c, &b);
        for (tolerance, want) in [(0.0, case.at_zero), (DEFAULT_TOLERANCE, case.at_default)] {
            let r = judge_metric(&cfg, CONF, tolerance, &s).expect("judge");
            let loc = r.location.as_ref().expect("location stats");
            assert!(
                (case.p.0..=case.p.1).contains(&loc.p_value),
                "{}: p={}",
                case.name,
                loc.p_value
            );
            assert_eq!(
                (r.classification, r.decided_by),
                want,
                "{} at tolerance {tolerance}: {}",
                case.name,
                r.reason
            );
            assert_eq!(
                loc.tolerance_bound,
                Some(tolerance * loc.hodges_lehmann.abs())
            );
            if r.decided_by == DecidedBy::Tolerance {
                assert!(r.reason.contains("within the tolerance"), "{}", r.reason);
            }
        }
        if case.shift.abs() > 0.0 {
            let ratio = r_ratio(&c, &b);
            assert!(
                (0.05..0.06).contains(&(ratio - 1.0).abs()),
                "{}: ratio {ratio}",
                case.name
            );
        }
    }
}

fn r_ratio(c: &[f64], b: &[f64]) -> f64 {
    (c.iter().sum::<f64>() / c.len() as f64) / (b.iter().sum::<f64>() / b.len() as f64)
}

#[test]
fn the_tolerance_defaults_to_kayentas_in_fixed_mode_only() {
    let parse =
        |v: serde_json::Value| -> JudgeConfig { serde_json::from_value(v).expect("config") };
    let fixed = parse(serde_json::json!({"metrics": [{"name": "m"}]}));
    assert_eq!(fixed.tolerance, None);
    assert_eq!(fixed.effective_tolerance(), Some(0.25));
    let zero = parse(serde_json::json!({"tolerance": 0, "metrics": [{"name": "m"}]}));
    assert_eq!(zero.effective_tolerance(), Some(0.0));
    let seq = parse(serde_json::json!({"mode": "sequential", "metrics": [{"name": "m"}]}));
    assert_eq!(seq.effective_tolerance(), None);
    assert!(validate(&seq).is_ok());

    // Validation: finite, >= 0, and not with the sequential mode.
    let bad = |v: serde_json::Value, needle: &str| {
        let errors = validate(&parse(v)).expect_err("invalid");
        assert!(
            errors
                .issues
                .iter()
                .any(|i| i.path == "tolerance" && i.message.contains(needle)),
            "{errors:?}"
        );
    };
    bad(
        serde_json::json!({"tolerance": -0.1, "metrics": [{"name": "m"}]}),
        ">= 0",
    );
    for tolerance in [f64::INFINITY, f64::NAN] {
        let mut cfg = fixed.clone();
        cfg.tolerance = Some(tolerance);
        let errors = validate(&cfg).expect_err("invalid");
        assert_eq!(errors.issues[0].path, "tolerance", "{errors:?}");
    }
    bad(
        serde_json::json!({"mode": "sequential", "tolerance": 0.25, "metrics": [{"name": "m"}]}),
        "mode: fixed only",
    );

    // The result says which tolerance was applied, and the report prints it.
    let (c, b) = shifted(5.75, 11.3);
    let s = [MetricSamples::continuous("m", &c, &b)];
    let r = judge(&fixed, &s).expect("judge");
    assert_eq!(r.tolerance, Some(0.25));
    assert_eq!(r.metrics[0].decided_by, DecidedBy::Tolerance);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["tolerance"], 0.25);
    assert_eq!(json["metrics"][0]["decidedBy"], "tolerance");
    assert!(
        redblack_judge::render_report(&r).contains("(confidence 0.98, mode fixed, tolerance 0.25,")
    );
    let mut seq = fixed.clone();
    seq.mode = JudgeMode::Sequential;
    let r = judge(&seq, &s).expect("judge");
    assert_eq!(r.tolerance, None);
    assert!(!redblack_judge::render_report(&r).contains("tolerance"));
}

#[test]
fn the_summary_score_is_rounded_to_two_decimals_and_banded_rounded() {
    // 2 of 3 pass: 66.666…, reported as 66.67 and banded as 66.67: with a
    // pass threshold of 66.67 it passes (unrounded it would be Marginal).
    let mut cfg = JudgeConfig::new(vec![
        MetricConfig::new("a"),
        MetricConfig::new("b"),
        MetricConfig::new("c"),
    ]);
    cfg.score_thresholds.pass = 66.67;
    cfg.score_thresholds.marginal = 50.0;
    let same: Vec<f64> = (0..40).map(|i| 100.0 + (i % 7) as f64).collect();
    let far: Vec<f64> = same.iter().map(|v| v + 50.0).collect();
    let s = [
        MetricSamples::continuous("a", &same, &same),
        MetricSamples::continuous("b", &same, &same),
        MetricSamples::continuous("c", &far, &same),
    ];
    let r = judge(&cfg, &s).expect("judge");
    assert_eq!(r.metrics[2].classification, Classification::High);
    assert_eq!((r.score, r.band), (66.67, Band::Pass), "{}", r.reason);
    assert!(redblack_judge::render_report(&r).starts_with("Canary Score: 66.67% PASS"));
}

#[test]
fn z_has_the_sign_of_the_shift() {
    let (c, b) = shifted(5.75, 11.3);
    let cfg = MetricConfig::new("m");
    let up = judge_metric(&cfg, CONF, 0.0, &MetricSamples::continuous("m", &c, &b))
        .expect("judge")
        .location
        .expect("stats");
    let down = judge_metric(&cfg, CONF, 0.0, &MetricSamples::continuous("m", &b, &c))
        .expect("judge")
        .location
        .expect("stats");
    assert!(up.z > 2.0, "canary higher: z = {}", up.z);
    assert_eq!(down.z, -up.z);
    assert_eq!(down.p_value, up.p_value);
    // |U − nm/2| below the continuity correction: z is 0 and p is 1, as scipy's.
    let same = judge_metric(
        &cfg,
        CONF,
        0.0,
        &MetricSamples::continuous("m", &[1.0, 3.0], &[2.0, 2.5]),
    )
    .expect("judge")
    .location
    .expect("stats");
    assert_eq!((same.z, same.p_value), (0.0, 1.0));
}

#[test]
fn outlier_fences_never_cut_between_the_1st_and_99th_percentiles() {
    let on = OutlierConfig {
        enabled: true,
        factor: 3.0,
    };
    // IQR 0: the IQR rule alone would drop the 4 values away from 10, but
    // they lie within [P1, P99] = [0, 20], so Kayenta keeps them.
    let mut v = vec![10.0; 96];
    v.extend([0.0, 0.0, 20.0, 20.0]);
    let (kept, removed) = clean(&v, NanStrategy::Remove, on);
    assert_eq!((kept.len(), removed.outliers), (100, 0));
    // One value far beyond both P99 (19.9, interpolated) and Q3 + 3·IQR: removed.
    let mut v = vec![10.0; 98];
    v.extend([20.0, 1000.0]);
    let (kept, removed) = clean(&v, NanStrategy::Remove, on);
    assert_eq!(removed.outliers, 1);
    assert!(!kept.contains(&1000.0));
    // Below: the mirror image.
    let mut v = vec![10.0; 98];
    v.extend([0.0, -1000.0]);
    let (kept, removed) = clean(&v, NanStrategy::Remove, on);
    assert_eq!(removed.outliers, 1);
    assert!(!kept.contains(&-1000.0));
    // Off (the default): nothing is removed.
    let (kept, _) = clean(&v, NanStrategy::Remove, OutlierConfig::default());
    assert_eq!(kept.len(), 100);
}

#[test]
fn an_empty_side_is_nodata_even_with_nan_replace() {
    // Kayenta fills a series that returned nothing with NaN, which replace
    // turns into zeros (Pass against zeros). We keep Nodata: no promotion on
    // missing data. A side whose series exists but is all NaN is data (zeros).
    let rep = MetricConfig {
        nan_strategy: NanStrategy::Replace,
        ..MetricConfig::new("m")
    };
    for (c, b) in [
        (vec![], vec![0.0; 5]),
        (vec![0.0; 5], vec![]),
        (vec![], vec![]),
    ] {
        let r = judge_metric(
            &rep,
            CONF,
            DEFAULT_TOLERANCE,
            &MetricSamples::continuous("m", &c, &b),
        )
        .expect("judge");
        assert_eq!(
            (r.classification, r.decided_by),
            (Classification::Nodata, DecidedBy::Nodata),
            "{c:?} vs {b:?}"
        );
    }
    let r = judge_metric(
        &rep,
        CONF,
        DEFAULT_TOLERANCE,
        &MetricSamples::continuous("m", &[f64::NAN; 5], &[0.0; 5]),
    )
    .expect("judge");
    assert_eq!(
        (r.classification, r.canary_count),
        (Classification::Pass, 5)
    );
    // And so a canary whose metric returned nothing never passes on it.
    let cfg = JudgeConfig::new(vec![
        MetricConfig {
            critical: true,
            ..rep.clone()
        },
        MetricConfig::new("other"),
    ]);
    let same = [1.0, 2.0, 3.0];
    let r = judge(
        &cfg,
        &[
            MetricSamples::continuous("m", &[], &[0.0; 5]),
            MetricSamples::continuous("other", &same, &same),
        ],
    )
    .expect("judge");
    assert_ne!(r.band, Band::Pass, "{}", r.reason);
    assert_ne!(r.band, Band::Marginal, "{}", r.reason);
}
