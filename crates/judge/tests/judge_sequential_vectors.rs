//! The sequential mode's e-processes against reference vectors computed by an
//! independent Python implementation of docs/judge.md ("Sequential mode") —
//! crates/judge/gen_sequential_vectors.py: the ln e-value path of rate and
//! continuous metrics step by step, and the whole judge's α, threshold,
//! crossing step and path.

use redblack_judge::sequential::{counts, non_inferior, paired};
use redblack_judge::{Classification, DecidedBy, JudgeConfig, JudgeMode, MetricSamples, judge};
use serde::Deserialize;
use std::cell::Cell;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountsCase {
    name: String,
    /// (canary events, canary exposure, baseline events, baseline exposure) per step.
    steps: Vec<[f64; 4]>,
    rho0: f64,
    higher: bool,
    log_e: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairedCase {
    name: String,
    pairs: Vec<Option<(f64, f64)>>,
    side: String,
    tail_quantiles: Vec<f64>,
    log_e: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expected {
    name: String,
    alpha: f64,
    threshold: f64,
    steps: usize,
    crossed_at_step: Option<usize>,
    /// None where effect sizes, not only the e-process, decide the label.
    classification: Option<Classification>,
    log_path: Vec<f64>,
}

#[derive(Deserialize)]
struct JudgeCase {
    name: String,
    config: JudgeConfig,
    samples: Vec<MetricSamples>,
    expected: Vec<Expected>,
}

/// Early pass, continuous metrics: the sign bet against "worse by the margin".
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NonInferiorCase {
    name: String,
    pairs: Vec<Option<(f64, f64)>>,
    side: String,
    margin: f64,
    log_e: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    counts: Vec<CountsCase>,
    paired: Vec<PairedCase>,
    judge: Vec<JudgeCase>,
    non_inferior: Vec<NonInferiorCase>,
}

fn load() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sequential_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors file");
    serde_json::from_str(&text).expect("vectors parse")
}

thread_local! {
    static WORST: Cell<f64> = const { Cell::new(0.0) };
}

/// Relative difference of two ln e-values, absolute below 1 in magnitude
/// (an absolute error ε in ln e is a relative error ε in e).
fn difference(a: f64, b: f64) -> f64 {
    if a == b {
        return 0.0;
    }
    (a - b).abs() / a.abs().max(b.abs()).max(1.0)
}

fn assert_path(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: path length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = difference(*g, *w);
        WORST.with(|worst| worst.set(worst.get().max(d)));
        assert!(
            d <= 1e-9,
            "{name}: step {}: ln e {g} vs reference {w} (difference {d:e})",
            i + 1
        );
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

#[test]
fn rate_e_values_match_the_reference() {
    let cases = load().counts;
    assert!(cases.len() >= 80, "too few vectors: {}", cases.len());
    for c in &cases {
        let steps: Vec<counts::StepCounts> = c
            .steps
            .iter()
            .map(|s| counts::StepCounts {
                canary_events: s[0],
                canary_exposure: s[1],
                baseline_events: s[2],
                baseline_exposure: s[3],
            })
            .collect();
        assert_path(
            &c.name,
            &counts::log_e_path(&steps, c.rho0, c.higher),
            &c.log_e,
        );
    }
    eprintln!(
        "{} rate paths: max difference {:e}",
        cases.len(),
        WORST.with(Cell::get)
    );
}

#[test]
fn early_pass_e_values_match_the_reference() {
    let cases = load().non_inferior;
    assert!(cases.len() >= 40, "too few vectors: {}", cases.len());
    for c in &cases {
        let side = match c.side.as_str() {
            "higher" => paired::Side::Higher,
            "lower" => paired::Side::Lower,
            other => panic!("{}: side {other}", c.name),
        };
        assert_path(
            &c.name,
            &non_inferior::log_e_path(&c.pairs, c.margin, side),
            &c.log_e,
        );
    }
    eprintln!(
        "{} early-pass paths: max difference {:e}",
        cases.len(),
        WORST.with(Cell::get)
    );
}

#[test]
fn continuous_e_values_match_the_reference() {
    let cases = load().paired;
    assert!(cases.len() >= 100, "too few vectors: {}", cases.len());
    for c in &cases {
        let side = match c.side.as_str() {
            "higher" => paired::Side::Higher,
            "lower" => paired::Side::Lower,
            other => panic!("{}: side {other}", c.name),
        };
        assert_path(
            &c.name,
            &paired::log_e_path(&c.pairs, side, &c.tail_quantiles),
            &c.log_e,
        );
    }
    eprintln!(
        "{} continuous paths: max difference {:e}",
        cases.len(),
        WORST.with(Cell::get)
    );
}

#[test]
fn the_whole_judge_reports_the_reference_alpha_threshold_and_crossing() {
    let cases = load().judge;
    assert!(cases.len() >= 10, "too few vectors: {}", cases.len());
    let mut crossings = 0;
    for c in &cases {
        assert_eq!(c.config.mode, JudgeMode::Sequential, "{}", c.name);
        let r = judge(&c.config, &c.samples).expect("judged");
        for want in &c.expected {
            let name = format!("{} / {}", c.name, want.name);
            let m = r
                .metrics
                .iter()
                .find(|m| m.name == want.name)
                .unwrap_or_else(|| panic!("{name}: no result"));
            let s = m
                .sequential
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no sequential stats ({:?})", m.decided_by));
            assert!(
                close(s.alpha, want.alpha, 1e-12),
                "{name}: alpha {} vs {}",
                s.alpha,
                want.alpha
            );
            assert!(
                close(s.threshold, want.threshold, 1e-12),
                "{name}: threshold {} vs {}",
                s.threshold,
                want.threshold
            );
            assert_eq!(s.steps, want.steps, "{name}: steps");
            assert_eq!(
                s.crossed_at_step, want.crossed_at_step,
                "{name}: crossing step"
            );
            crossings += usize::from(want.crossed_at_step.is_some());
            assert_eq!(s.path_every, 1, "{name}");
            let log_path: Vec<f64> = s.path.iter().map(|e| e.ln()).collect();
            assert_path(&name, &log_path, &want.log_path);
            assert_eq!(m.decided_by, DecidedBy::Sequential, "{name}");
            if let Some(label) = want.classification {
                assert_eq!(m.classification, label, "{name}: classification");
            }
        }
    }
    assert!(crossings >= 5, "too few crossings: {crossings}");
    eprintln!(
        "{} whole-judge cases ({crossings} crossings): max path difference {:e}",
        cases.len(),
        WORST.with(Cell::get)
    );
}
