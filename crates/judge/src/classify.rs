//! Per-metric decision: clean, test, then filter by direction and effect size.

use super::config::{Direction, MetricConfig};
use super::hodges_lehmann::hodges_lehmann;
use super::mann_whitney::mann_whitney;
use super::outliers::{clean, quantile_sorted};
use super::rates::rate_test;
use super::result::{Classification, DecidedBy, LocationStats, MetricResult, RateStats, TailStats};
use super::samples::{Counts, to_nan};
use super::tail::{Tail, tail_test};

/// A result with nothing decided yet; the flows below fill it in.
fn blank(cfg: &MetricConfig) -> MetricResult {
    MetricResult {
        name: cfg.name.clone(),
        group: cfg.group.clone(),
        kind: cfg.kind,
        direction: cfg.direction,
        classification: Classification::Pass,
        decided_by: DecidedBy::CiContainsZero,
        reason: String::new(),
        critical: cfg.critical,
        critical_failure: false,
        canary_count: 0,
        baseline_count: 0,
        canary_nan_removed: 0,
        baseline_nan_removed: 0,
        canary_outliers_removed: 0,
        baseline_outliers_removed: 0,
        canary_mean: None,
        baseline_mean: None,
        ratio: None,
        effect_size_bounds: cfg.effect_size,
        location: None,
        tail: None,
        rate: None,
        sequential: None,
    }
}

pub(crate) fn decide(r: &mut MetricResult, label: Classification, by: DecidedBy, reason: String) {
    r.classification = label;
    r.decided_by = by;
    r.reason = reason;
    let failed = matches!(
        label,
        Classification::High
            | Classification::Low
            | Classification::NodataFailMetric
            | Classification::Error
    );
    r.critical_failure = r.critical_failure || (r.critical && failed);
}

fn nodata(cfg: &MetricConfig, r: &mut MetricResult, why: &str) {
    let label = if cfg.must_have_data {
        Classification::NodataFailMetric
    } else {
        Classification::Nodata
    };
    decide(r, label, DecidedBy::Nodata, why.to_string());
}

/// Metric with no samples supplied at all.
pub fn classify_missing(cfg: &MetricConfig) -> MetricResult {
    let mut r = blank(cfg);
    nodata(cfg, &mut r, "no samples were supplied for this metric");
    r
}

/// Applies the direction and effect-size rules to a significant finding.
/// `ratio` may be +inf (baseline 0, canary > 0): beyond any bound.
pub(crate) fn finish(
    cfg: &MetricConfig,
    r: &mut MetricResult,
    label: Classification,
    by: DecidedBy,
    ratio: Option<f64>,
    what: &str,
) {
    let e = cfg.effect_size;
    let (checked, allowed, critical) = match label {
        Classification::High => (
            cfg.direction.checks_increase(),
            e.allowed_increase.zip(ratio).is_some_and(|(a, x)| x < a),
            e.critical_increase.zip(ratio).is_some_and(|(c, x)| x >= c),
        ),
        _ => (
            cfg.direction.checks_decrease(),
            e.allowed_decrease.zip(ratio).is_some_and(|(a, x)| x > a),
            e.critical_decrease.zip(ratio).is_some_and(|(c, x)| x <= c),
        ),
    };
    let word = if label == Classification::High {
        "higher"
    } else {
        "lower"
    };
    let ratio_text = ratio.map_or("n/a".to_string(), |x| format!("{x:.4}"));
    if !checked {
        let reason = format!("canary is {word} ({what}), a direction this metric does not check");
        decide(r, Classification::Pass, DecidedBy::Direction, reason);
    } else if critical {
        r.critical_failure = true;
        let reason =
            format!("canary is {word} ({what}); ratio {ratio_text} is beyond the critical bound");
        decide(r, label, DecidedBy::CriticalBound, reason);
    } else if allowed {
        let reason = format!(
            "canary is {word} ({what}) but ratio {ratio_text} is within the allowed effect size"
        );
        decide(
            r,
            Classification::Pass,
            DecidedBy::EffectSizeWithinAllowed,
            reason,
        );
    } else {
        let reason = format!("canary is {word} ({what}), ratio {ratio_text}");
        decide(r, label, by, reason);
    }
}

/// A value for a reason a person reads: 4 significant digits, trailing
/// zeros dropped (30 s prints as `30`, not `30.000000`); the JSON keeps the
/// full value.
fn short(x: f64) -> String {
    let magnitude = x.abs();
    if x == 0.0 || !x.is_finite() {
        format!("{x}")
    } else if !(1e-3..1e6).contains(&magnitude) {
        format!("{x:.3e}")
    } else {
        // 1e-3 <= |x| < 1e6: log10 is in [-3, 6), so 0..=6 decimals.
        let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
        let text = format!("{x:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    }
}

/// An event or exposure count for a reason a person reads. Counts from
/// Prometheus' `increase()` are fractional (`421.9165009940358`); the JSON
/// (RateStats) keeps them whole, the reason rounds: integers as integers,
/// other counts with one decimal (`421.9`), below 1 with two significant
/// digits so that a fractional event does not read as `0.0`, and beyond
/// 1e15 in exponent form (not as a 300-digit integer).
fn count(x: f64) -> String {
    let magnitude = x.abs();
    if !x.is_finite() || x == 0.0 {
        format!("{x}")
    } else if magnitude >= 1e15 {
        format!("{x:.3e}")
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else if magnitude >= 1.0 {
        format!("{x:.1}")
    } else {
        // 0 < |x| < 1: log10 < 0, so at least 2 decimals; capped so that a
        // subnormal does not print hundreds of zeros.
        let decimals = (1 - magnitude.log10().floor() as i32).clamp(2, 17) as usize;
        format!("{x:.decimals$}")
    }
}

fn short_opt(x: Option<f64>) -> String {
    x.map_or("unbounded".to_string(), short)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Kayenta's location rule with its tolerance: High when the interval's
/// lower bound exceeds c = tolerance·|HL|, Low when its upper bound is below
/// −c (an unbounded interval finds nothing). Tolerance 0: the interval
/// excludes 0.
pub fn location_finding(
    lower: Option<f64>,
    upper: Option<f64>,
    estimate: f64,
    tolerance: f64,
) -> Option<Classification> {
    let c = tolerance * estimate.abs();
    match (lower, upper) {
        (Some(lo), _) if lo > c => Some(Classification::High),
        (_, Some(hi)) if hi < -c => Some(Classification::Low),
        _ => None,
    }
}

/// Continuous metric: Mann-Whitney + Hodges-Lehmann interval (with Kayenta's
/// `tolerance`), then the tail check.
pub fn classify_continuous(
    cfg: &MetricConfig,
    confidence: f64,
    tolerance: f64,
    canary: &[Option<f64>],
    baseline: &[Option<f64>],
) -> MetricResult {
    let mut r = blank(cfg);
    let (raw_c, raw_b) = (to_nan(canary), to_nan(baseline));
    if raw_c.iter().chain(raw_b.iter()).any(|v| v.is_infinite()) {
        decide(
            &mut r,
            Classification::Error,
            DecidedBy::InvalidData,
            "samples contain an infinite value".into(),
        );
        return r;
    }
    let (c, rc) = clean(&raw_c, cfg.nan_strategy, cfg.outliers);
    let (b, rb) = clean(&raw_b, cfg.nan_strategy, cfg.outliers);
    r.canary_count = c.len();
    r.baseline_count = b.len();
    r.canary_nan_removed = rc.nan;
    r.baseline_nan_removed = rb.nan;
    r.canary_outliers_removed = rc.outliers;
    r.baseline_outliers_removed = rb.outliers;
    if c.is_empty() || b.is_empty() {
        let side = if c.is_empty() { "canary" } else { "baseline" };
        nodata(
            cfg,
            &mut r,
            &format!("no {side} samples left after cleaning (no traffic?)"),
        );
        return r;
    }
    let (cm, bm) = (mean(&c), mean(&b));
    r.canary_mean = Some(cm);
    r.baseline_mean = Some(bm);
    // A ratio of means only means something for non-negative metrics.
    let ratio = (bm > 0.0 && cm >= 0.0).then(|| cm / bm);
    r.ratio = ratio;

    let mut sc = c.clone();
    let mut sb = b.clone();
    sc.sort_by(f64::total_cmp);
    sb.sort_by(f64::total_cmp);
    if sc == sb {
        decide(
            &mut r,
            Classification::Pass,
            DecidedBy::Identical,
            "canary and baseline samples are identical".into(),
        );
        return r;
    }
    if sc.first() == sc.last() && sb.first() == sb.last() && sc.first() == sb.first() {
        decide(
            &mut r,
            Classification::Pass,
            DecidedBy::Identical,
            "all samples are equal".into(),
        );
        return r;
    }

    let mw = mann_whitney(&c, &b);
    let hl = hodges_lehmann(&c, &b, mw.sigma, confidence);
    let nm = (c.len() * b.len()) as f64;
    let baseline_median = quantile_sorted(&sb, 0.5);
    r.location = Some(LocationStats {
        u: mw.u,
        z: mw.z,
        p_value: mw.p_value,
        hodges_lehmann: hl.estimate,
        ci_lower: hl.lower,
        ci_upper: hl.upper,
        cliffs_delta: 2.0 * mw.u / nm - 1.0,
        relative_shift: (baseline_median != 0.0).then(|| hl.estimate / baseline_median.abs()),
        comparisons: hl.comparisons,
        tolerance_bound: Some(tolerance * hl.estimate.abs()),
    });

    let alpha = 1.0 - confidence;
    let tail = if cfg.tail.enabled {
        tail_test(&c, &b, cfg.direction, &cfg.tail.quantiles)
    } else {
        None
    };
    if let Some(t) = tail {
        r.tail = Some(TailStats {
            tail: match t.tail {
                Tail::Upper => "upper".into(),
                Tail::Lower => "lower".into(),
            },
            quantile: t.quantile,
            threshold: t.threshold,
            canary_exceedances: t.canary_exceedances,
            baseline_exceedances: t.baseline_exceedances,
            p_value: t.p_value,
            tests: t.tests,
        });
    }

    // The raw finding (interval excludes 0) and Kayenta's (clears the
    // tolerance): a raw finding in a checked direction that does not clear
    // the tolerance is a Pass said as such (`tolerance`).
    let raw_finding = location_finding(hl.lower, hl.upper, hl.estimate, 0.0);
    let finding = location_finding(hl.lower, hl.upper, hl.estimate, tolerance);
    let bad = |label: Classification| match label {
        Classification::High => cfg.direction.checks_increase(),
        _ => cfg.direction.checks_decrease(),
    };
    let tail_finding = tail.filter(|t| t.p_value < alpha).map(|t| match t.tail {
        Tail::Upper => Classification::High,
        Tail::Lower => Classification::Low,
    });

    let interval = format!("[{}, {}]", short_opt(hl.lower), short_opt(hl.upper));
    let ci_text = if tolerance > 0.0 {
        format!(
            "p={:.3e}, HL {} interval {interval} clears the tolerance {}·|HL| = {}",
            mw.p_value,
            short(hl.estimate),
            short(tolerance),
            short(tolerance * hl.estimate.abs())
        )
    } else {
        format!("p={:.3e}, HL interval excludes 0", mw.p_value)
    };
    match (finding, tail_finding) {
        (Some(l), _) if bad(l) => finish(cfg, &mut r, l, DecidedBy::MannWhitney, ratio, &ci_text),
        (_, Some(t)) => {
            let what = tail.map_or(String::new(), |t| {
                // Say when ties at the threshold were counted: the JSON has
                // the threshold but not the comparison.
                let at = if t.inclusive { "at or beyond" } else { "beyond" };
                format!(
                    "tail check: {} of {} canary vs {} of {} baseline {at} the pooled q{} ({}), p={:.3e}",
                    t.canary_exceedances, c.len(), t.baseline_exceedances, b.len(), t.quantile, short(t.threshold), t.p_value
                )
            });
            finish(cfg, &mut r, t, DecidedBy::TailCheck, ratio, &what)
        }
        (Some(l), None) => finish(cfg, &mut r, l, DecidedBy::MannWhitney, ratio, &ci_text),
        (None, None) => match raw_finding {
            Some(l) if bad(l) => {
                let (word, bound) = if l == Classification::High {
                    ("higher", "lower bound")
                } else {
                    ("lower", "upper bound")
                };
                let reason = format!(
                    "canary is {word} (p={:.3e}, HL {} interval {interval} excludes 0) but within the tolerance: its {bound} is within {}·|HL| = {} of 0, and no tail regression",
                    mw.p_value,
                    short(hl.estimate),
                    short(tolerance),
                    short(tolerance * hl.estimate.abs())
                );
                decide(&mut r, Classification::Pass, DecidedBy::Tolerance, reason);
            }
            Some(l) => {
                let what = format!("p={:.3e}, HL interval excludes 0", mw.p_value);
                finish(cfg, &mut r, l, DecidedBy::MannWhitney, ratio, &what)
            }
            None => decide(
                &mut r,
                Classification::Pass,
                DecidedBy::CiContainsZero,
                format!(
                    "HL interval contains 0 (p={:.3e}) and no tail regression",
                    mw.p_value
                ),
            ),
        },
    }
    r
}

/// Cleans one side's counts; `Err` is a data problem reported as the Error label.
fn pooled_counts(
    cfg: &MetricConfig,
    side: &Counts,
    which: &str,
) -> Result<(f64, f64, usize, usize), String> {
    if side.numerator.len() != side.denominator.len() {
        return Err(format!(
            "{which}: {} numerators but {} denominators",
            side.numerator.len(),
            side.denominator.len()
        ));
    }
    let (mut events, mut exposure, mut kept, mut dropped) = (0.0, 0.0, 0, 0);
    for (num, den) in side.numerator.iter().zip(&side.denominator) {
        let (num, den) = (num.unwrap_or(f64::NAN), den.unwrap_or(f64::NAN));
        let (num, den) = if num.is_nan() || den.is_nan() {
            match cfg.nan_strategy {
                super::config::NanStrategy::Remove => {
                    dropped += 1;
                    continue;
                }
                super::config::NanStrategy::Replace => (
                    if num.is_nan() { 0.0 } else { num },
                    if den.is_nan() { 0.0 } else { den },
                ),
            }
        } else {
            (num, den)
        };
        if !(num >= 0.0 && den >= 0.0 && num.is_finite() && den.is_finite()) {
            return Err(format!("{which}: counts must be finite and >= 0"));
        }
        events += num;
        exposure += den;
        kept += 1;
    }
    Ok((events, exposure, kept, dropped))
}

/// Rate metric: exact conditional test on the pooled counts.
pub fn classify_rate(
    cfg: &MetricConfig,
    confidence: f64,
    canary: &Counts,
    baseline: &Counts,
) -> MetricResult {
    let mut r = blank(cfg);
    let (c, b) = match (
        pooled_counts(cfg, canary, "canary"),
        pooled_counts(cfg, baseline, "baseline"),
    ) {
        (Ok(c), Ok(b)) => (c, b),
        (Err(e), _) | (_, Err(e)) => {
            decide(&mut r, Classification::Error, DecidedBy::InvalidData, e);
            return r;
        }
    };
    let ((xc, nc, kc, dc), (xb, nb, kb, db)) = (c, b);
    r.canary_count = kc;
    r.baseline_count = kb;
    r.canary_nan_removed = dc;
    r.baseline_nan_removed = db;
    if nc <= 0.0 || nb <= 0.0 {
        let side = if nc <= 0.0 { "canary" } else { "baseline" };
        nodata(
            cfg,
            &mut r,
            &format!("{side} denominator is 0: it received no traffic"),
        );
        return r;
    }
    let (rc, rb) = (xc / nc, xb / nb);
    r.canary_mean = Some(rc);
    r.baseline_mean = Some(rb);
    let ratio = if rb > 0.0 {
        Some(rc / rb)
    } else if rc > 0.0 {
        Some(f64::INFINITY)
    } else {
        None
    };
    r.ratio = ratio.filter(|x| x.is_finite());
    let Some(t) = rate_test(xc, nc, xb, nb, cfg.direction, confidence) else {
        let reason = format!(
            "counts {}/{} vs {}/{} are beyond what the exact test can evaluate",
            count(xc),
            count(nc),
            count(xb),
            count(nb)
        );
        decide(
            &mut r,
            Classification::Error,
            DecidedBy::InvalidData,
            reason,
        );
        return r;
    };
    r.rate = Some(RateStats {
        canary_numerator: xc,
        canary_denominator: nc,
        baseline_numerator: xb,
        baseline_denominator: nb,
        canary_rate: rc,
        baseline_rate: rb,
        p_value: t.p_value,
        p_higher: t.p_higher,
        p_lower: t.p_lower,
        ratio_ci_lower: t.ratio_lower,
        ratio_ci_upper: t.ratio_upper,
    });
    let what = format!(
        "{}/{} vs {}/{}, exact rate test p={:.3e}",
        count(xc),
        count(nc),
        count(xb),
        count(nb),
        t.p_value
    );
    if t.p_value < 1.0 - confidence {
        let label = match cfg.direction {
            Direction::Increase => Classification::High,
            Direction::Decrease => Classification::Low,
            Direction::Either if t.p_higher <= t.p_lower => Classification::High,
            Direction::Either => Classification::Low,
        };
        finish(cfg, &mut r, label, DecidedBy::RateTest, ratio, &what);
    } else {
        decide(
            &mut r,
            Classification::Pass,
            DecidedBy::RateTest,
            format!("not enough evidence of a different rate ({what})"),
        );
    }
    r
}
