//! The final look of a sequential analysis: once, at the end of the
//! analysis' lifetime, the fixed-horizon tests (Mann-Whitney with
//! Hodges-Lehmann, the tail check, the exact rate test) judge the whole
//! window at a level paid from the analysis' α.
//!
//! Why: an e-process pays for being allowed to look at every step — a test
//! at α/T must reach an e-value of T/α, where one fixed look needs a z of
//! about 2 — and that price is highest for what is rare in a short window
//! (a slow tail in 10 % of the points, a few extra errors). Spending part of
//! α on the one look the schedule fixes in advance (the end) buys that power
//! back, and by the union bound the whole analysis' false failure
//! probability stays ≤ α: P(some e-process ever crosses at its share) +
//! P(the final look rejects at its share) ≤ SEQUENTIAL_SHARE·α +
//! (1 − SEQUENTIAL_SHARE)·α. The final look happens at most once per
//! analysis, at a time fixed before any data (the end of the window), so it
//! is one fixed-horizon test, however the e-processes behaved before it.
//!
//! The level L of a metric's fixed tests ([`fixed_level`]; docs/judge.md,
//! "Final look") keeps their false findings in the checked directions
//! within the metric's share of the final look's α: the Hodges-Lehmann
//! interval at level L excludes 0 on one given side with probability ≤ L/2,
//! and the tail check is Bonferroni-adjusted within L — so `direction:
//! increase` with the tail check judges at L = share/1.5, `either` with it
//! at share/2 (its share counts two tests), the rate test at L = share.

use crate::classify::{classify_continuous, classify_rate};
use crate::config::{MetricConfig, MetricKind};
use crate::result::{Classification, FinalLookStats, MetricResult};
use crate::samples::{MetricSamples, Side};

/// The share of a test's α the e-process spends over all looks; the rest
/// (a quarter) is the final look's. Chosen by simulation
/// (examples/bench_sequential.rs): a quarter brings the #780 tails and small
/// shifts back to the fixed mode's power at the end of the lifetime while
/// the e-process' threshold only rises from 1/α to 4/(3α) (a 10 %-error
/// canary still fails within about 10 s at the demo's traffic).
pub const SEQUENTIAL_SHARE: f64 = 0.75;

/// The level L of the fixed-horizon rules for a metric whose final-look
/// share of α is `share`: the rules' false-positive probabilities in the
/// checked directions add up to at most `share`.
pub fn fixed_level(cfg: &MetricConfig, share: f64) -> f64 {
    let directions = f64::from(
        u8::from(cfg.direction.checks_increase()) + u8::from(cfg.direction.checks_decrease()),
    );
    match cfg.kind {
        // One-sided p for one direction, doubled for `either`: ≤ L in all.
        MetricKind::Rate => share,
        MetricKind::Continuous => {
            // The HL interval at level L excludes 0 on a given side with
            // probability ≤ L/2; the tail check rejects with ≤ L over every
            // quantile and tail it tests.
            let tail = if cfg.tail.enabled && !cfg.tail.quantiles.is_empty() {
                1.0
            } else {
                0.0
            };
            share / (directions / 2.0 + tail)
        }
    }
}

/// Decides a metric the e-process left at Pass with the fixed-horizon rules
/// at the final look's level. `alpha_metric` is the metric's whole share of
/// α (all its one-sided tests); `r` was decided by
/// [`super::decide_sequential`]. A metric already High/Low, without data or
/// with invalid data is left as it is.
pub fn decide_final(
    cfg: &MetricConfig,
    alpha_metric: f64,
    samples: &MetricSamples,
    r: &mut MetricResult,
) {
    let Some(seq) = r.sequential.as_mut() else {
        return;
    };
    let share = alpha_metric * (1.0 - SEQUENTIAL_SHARE);
    let level = fixed_level(cfg, share);
    // No tolerance: validation refuses it in sequential mode (the interval
    // at level L is the rule).
    let fixed = match (&samples.canary, &samples.baseline) {
        (Side::Values(c), Side::Values(b)) => classify_continuous(cfg, 1.0 - level, 0.0, c, b),
        (Side::Counts(c), Side::Counts(b)) => classify_rate(cfg, 1.0 - level, c, b),
        _ => return,
    };
    let found = matches!(
        fixed.classification,
        Classification::High | Classification::Low
    );
    seq.final_look = Some(FinalLookStats {
        alpha: share,
        level,
        classification: fixed.classification,
        decided_by: fixed.decided_by,
    });
    if r.classification != Classification::Pass || !found {
        return;
    }
    // The fixed rules decided (their effect-size rules included): their
    // finding, with their statistics at the final look's level, and the
    // e-process kept beside them.
    let sequential = r.sequential.take();
    *r = MetricResult {
        reason: format!(
            "final look (fixed-horizon tests of the whole window at level {}): {}",
            fmt_level(level),
            fixed.reason
        ),
        sequential,
        ..fixed
    };
}

fn fmt_level(level: f64) -> String {
    format!("{level:.3e}")
}
