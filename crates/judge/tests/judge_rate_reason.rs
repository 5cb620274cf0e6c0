//! A rate metric's reason is read by people: counts from Prometheus'
//! `increase()` are fractional (`0/421.9165009940358`) and are rounded
//! there, while the JSON keeps every digit.

use redblack_judge::{
    Classification, Direction, MetricConfig, MetricKind, MetricSamples, Side, judge_metric,
};

struct Case {
    name: &'static str,
    /// (numerator, denominator) per side, one interval each.
    canary: (f64, f64),
    baseline: (f64, f64),
    /// What the reason must show, and must not.
    shows: &'static str,
    hides: &'static str,
}

#[test]
fn rate_reason_rounds_counts_and_json_keeps_them() {
    let cases = [
        Case {
            name: "fractional denominator",
            canary: (0.0, 421.9165009940358),
            baseline: (2.0, 500.0),
            shows: "0/421.9 vs 2/500,",
            hides: "421.9165",
        },
        Case {
            name: "integral counts print as integers",
            canary: (14.0, 172.0),
            baseline: (3.0, 180.0),
            shows: "14/172 vs 3/180,",
            hides: "172.0",
        },
        Case {
            name: "fractional numerators, one below 1",
            canary: (2.5000001, 1000.26),
            baseline: (0.041666666666666664, 998.0),
            shows: "2.5/1000.3 vs 0.042/998,",
            hides: "0.0416666",
        },
    ];
    for case in &cases {
        let cfg = MetricConfig {
            kind: MetricKind::Rate,
            direction: Direction::Increase,
            ..MetricConfig::new("errors")
        };
        let samples = MetricSamples {
            name: "errors".into(),
            canary: Side::counts(&[case.canary.0], &[case.canary.1]),
            baseline: Side::counts(&[case.baseline.0], &[case.baseline.1]),
        };
        let r = judge_metric(
            &cfg,
            0.98,
            redblack_judge::config::DEFAULT_TOLERANCE,
            &samples,
        )
        .expect("judge");
        println!("{}: {:?}: {}", case.name, r.classification, r.reason);
        assert_ne!(r.classification, Classification::Error, "{}", case.name);
        assert!(
            r.reason.contains(case.shows) && !r.reason.contains(case.hides),
            "{}: {}",
            case.name,
            r.reason
        );
        let json = serde_json::to_value(&r).expect("serialize");
        let rate = &json["rate"];
        for (field, want) in [
            ("canaryNumerator", case.canary.0),
            ("canaryDenominator", case.canary.1),
            ("baselineNumerator", case.baseline.0),
            ("baselineDenominator", case.baseline.1),
        ] {
            assert_eq!(rate[field].as_f64(), Some(want), "{}: {field}", case.name);
        }
    }
}

/// Counts too large for the exact test are an Error whose reason names them
/// in a readable form, not as a 300-digit integer.
#[test]
fn huge_counts_in_an_error_reason_are_short() {
    let cfg = MetricConfig {
        kind: MetricKind::Rate,
        ..MetricConfig::new("errors")
    };
    let samples = MetricSamples {
        name: "errors".into(),
        canary: Side::counts(&[1e300], &[2e300]),
        baseline: Side::counts(&[1e299], &[2e300]),
    };
    let r = judge_metric(
        &cfg,
        0.98,
        redblack_judge::config::DEFAULT_TOLERANCE,
        &samples,
    )
    .expect("judge");
    println!("huge: {:?}: {}", r.classification, r.reason);
    assert!(r.reason.len() < 200, "{}", r.reason);
}
