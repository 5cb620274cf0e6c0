//! Any analysis a Rollout accepts inline becomes a valid CanaryAnalysis.
//!
//! Generated inline bodies (the canary's and the post-promotion analysis')
//! whose duration fields are written every way the one grammar allows, some
//! of them replaced by a bad value, go through Rollout validation. A body
//! with a bad duration is refused, naming exactly that field. A body the
//! Rollout accepts is planned (the simulated world of `tests/common`) into the
//! CanaryAnalysis spec the operator creates, which then passes the CRD's
//! duration pattern and the analysis controller's own checks, with every
//! duration read to the millisecond as the Rollout meant it.
//!
//! The window rules that combine durations (judging must start before the
//! end, at most 1000 intervals, at most 11000 points per query) are the
//! analysis controller's alone (docs/rollout.md, "Unusable body"): the
//! generated windows keep them, so that what is tested here is the grammar.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use common::{Sim, analysis_body};
use redblack::analysis::controller::spec::{ResolvedSpec, resolve};
use redblack::api::DURATION_PATTERN;
use redblack::api::canary_analysis::{CanaryAnalysis, DURATION_FIELDS};
use redblack::api::validate::validate;

const PROMETHEUS: &str = "http://prometheus.monitoring:9090";

/// Which analysis of the Rollout the body is.
#[derive(Clone, Copy, Debug)]
enum Flow {
    Canary,
    PostPromotion,
}

impl Flow {
    fn field(self) -> &'static str {
        match self {
            Flow::Canary => "spec.strategy.redBlack.canary.analysis.inline",
            Flow::PostPromotion => "spec.strategy.redBlack.postPromotionAnalysis.inline",
        }
    }
}

/// A duration in milliseconds, written as parts in the grammar: `split[i]`
/// picks the unit of the i-th part (a part takes half of what is left in
/// that unit when `halve`), `zeros` pads the first number with leading zeros.
fn write(millis: u64, split: &[(usize, bool)], zeros: usize) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut left = millis;
    let mut out = String::new();
    for &(unit, halve) in split {
        let (name, size) = UNITS[unit % UNITS.len()];
        let mut count = left / size;
        if halve {
            count /= 2;
        }
        if count > 0 {
            out.push_str(&format!("{count}{name}"));
            left -= count * size;
        }
    }
    // What is left, in whole seconds where it can be.
    if left > 0 || out.is_empty() {
        if left.is_multiple_of(1000) {
            out.push_str(&format!("{}s", left / 1000));
        } else {
            out.push_str(&format!("{left}ms"));
        }
    }
    format!("{}{out}", "0".repeat(zeros))
}

fn written(millis: u64) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec((0usize..5, any::<bool>()), 0..5),
        0usize..3,
    )
        .prop_map(move |(split, zeros)| write(millis, &split, zeros))
}

/// Durations (ms) that make a schedule the analysis controller takes.
#[derive(Clone, Debug)]
struct Window {
    lifetime: u64,
    warmup: Option<u64>,
    interval: u64,
    step: Option<u64>,
    control_shift: Option<u64>,
    experiment_shift: Option<u64>,
    /// `earlyPass.minDuration` (at most the window; written with `mode: sequential`).
    early_pass_min: Option<u64>,
}

fn window() -> impl Strategy<Value = Window> {
    // Sub-second lifetimes (the issue's `500ms`) as well as hours.
    prop_oneof![1u64..2_000, 1_000u64..6 * 3_600_000]
        .prop_flat_map(|lifetime| (Just(lifetime), proptest::option::of(0..lifetime)))
        .prop_flat_map(|(lifetime, warmup)| {
            let judged = lifetime - warmup.unwrap_or(0);
            let least_interval = 1_000.max(judged.div_ceil(1_000));
            let least_step = 1_000.max(judged.div_ceil(11_000));
            (
                Just(lifetime),
                Just(warmup),
                least_interval..least_interval + 2 * 3_600_000,
                proptest::option::of(least_step..least_step + 600_000),
                proptest::option::of(0u64..86_400_000),
                proptest::option::of(0u64..86_400_000),
                proptest::option::of(0..=lifetime),
            )
        })
        .prop_map(
            |(
                lifetime,
                warmup,
                interval,
                step,
                control_shift,
                experiment_shift,
                early_pass_min,
            )| {
                Window {
                    lifetime,
                    warmup,
                    interval,
                    step,
                    control_shift,
                    experiment_shift,
                    early_pass_min,
                }
            },
        )
}

/// Values no duration field takes, whatever its least value.
fn bad_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("")),
        Just(json!("5")),
        Just(json!("1.5m")),
        Just(json!("-1s")),
        Just(json!("1h 30m")),
        Just(json!("2min")),
        Just(json!("1us")),
        Just(json!("PT5M")),
        Just(json!("5MS")),
        Just(json!("36501d")),
        Just(json!(30)),
    ]
}

/// A generated case: the written durations and the bad values put in their place.
#[derive(Clone, Debug)]
struct Case {
    window: Window,
    /// Per field of `DURATION_FIELDS`: how it is written (None: left out).
    written: Vec<Option<String>>,
    /// Per field: a bad value instead (None: the written one stays).
    bad: Vec<Option<Value>>,
}

fn case() -> impl Strategy<Value = Case> {
    window().prop_flat_map(|w| {
        let millis = [
            Some(w.lifetime),
            Some(w.interval),
            w.warmup,
            w.step,
            w.control_shift,
            w.experiment_shift,
            w.early_pass_min,
        ];
        let written: Vec<_> = millis
            .iter()
            .map(|m| match m {
                Some(m) => written(*m).prop_map(Some).boxed(),
                None => Just(None).boxed(),
            })
            .collect();
        let bad: Vec<_> = DURATION_FIELDS
            .iter()
            .map(|(path, _)| {
                let below_least = match path {
                    // Grammatical, but shorter than the controller takes.
                    ["interval"] => prop_oneof![Just(json!("999ms")), Just(json!("0s"))].boxed(),
                    ["step"] => prop_oneof![Just(json!("500ms")), Just(json!("0ms"))].boxed(),
                    _ => bad_value().boxed(),
                };
                prop_oneof![
                    12 => Just(None),
                    1 => bad_value().prop_map(Some),
                    1 => below_least.prop_map(Some),
                ]
            })
            .collect();
        (Just(w), written, bad).prop_map(|(window, written, bad)| Case {
            window,
            written,
            bad,
        })
    })
}

/// `analysis_body()` with the case's durations (and bad values) set.
fn body(case: &Case) -> Value {
    let mut body = analysis_body();
    for (i, (path, _)) in DURATION_FIELDS.iter().enumerate() {
        let value = match (&case.bad[i], &case.written[i]) {
            (Some(bad), _) => bad.clone(),
            (None, Some(text)) => json!(text),
            (None, None) => continue,
        };
        let (last, parents) = path.split_last().unwrap();
        let mut object = &mut body;
        for key in parents {
            object = object
                .as_object_mut()
                .unwrap()
                .entry(key.to_string())
                .or_insert_with(|| json!({}));
        }
        object[*last] = value;
    }
    // Early pass is for the sequential mode only.
    if body.get("earlyPass").is_some() {
        body["mode"] = json!("sequential");
    }
    body
}

/// A Rollout (in the simulated world, v1 live) with `body` as `flow`'s analysis.
fn sim(flow: Flow, body: Value) -> Sim {
    match flow {
        Flow::Canary => {
            let mut sim = Sim::with_canary(false, true, "Pause");
            let canary = sim.rollout.spec.strategy.red_black.canary.as_mut().unwrap();
            canary.analysis = serde_json::from_value(json!({ "inline": body })).unwrap();
            sim
        }
        Flow::PostPromotion => {
            let mut sim = Sim::steady("web:1", 3);
            sim.rollout.spec.strategy.red_black.post_promotion_analysis =
                Some(serde_json::from_value(json!({ "inline": body })).unwrap());
            sim
        }
    }
}

/// Rolls v2 out until the planner creates the flow's CanaryAnalysis; its spec
/// and the time it was created.
fn planned_analysis(mut sim: Sim) -> (Value, DateTime<Utc>) {
    sim.set_image("web:2");
    for _ in 0..10 {
        sim.make_ready();
        sim.step();
        if let Some((_, spec)) = sim.analysis_specs.first() {
            return (spec.clone(), sim.now);
        }
    }
    panic!(
        "no CanaryAnalysis was created: {:#?}",
        sim.rollout.status.as_ref().map(|s| &s.conditions)
    );
}

/// The CanaryAnalysis the operator would create from `spec` (the analysis
/// controller reads `metadata.namespace` and `creationTimestamp`).
fn canary_analysis(spec: &Value, created: DateTime<Utc>) -> CanaryAnalysis {
    serde_json::from_value(json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": "web-analysis", "namespace": "default",
                     "creationTimestamp": created.to_rfc3339()},
        "spec": spec,
    }))
    .expect("the planned spec is a CanaryAnalysis spec")
}

fn ms(millis: u64) -> TimeDelta {
    TimeDelta::milliseconds(i64::try_from(millis).unwrap())
}

/// The property, for one flow and case.
fn check(flow: Flow, case: &Case) -> Result<(), TestCaseError> {
    let sim = sim(flow, body(case));
    let errors = validate(&sim.rollout);
    let mut refused: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
    refused.sort();
    let mut expected: Vec<String> = DURATION_FIELDS
        .iter()
        .zip(&case.bad)
        .filter(|(_, bad)| bad.is_some())
        .map(|((path, _), _)| format!("{}.{}", flow.field(), path.join(".")))
        .collect();
    expected.sort();
    prop_assert_eq!(&refused, &expected, "errors: {:?}", errors);
    if !expected.is_empty() {
        for error in &errors {
            let text = error.to_string();
            prop_assert!(
                text.contains("not a duration")
                    || text.contains("shorter than 1s")
                    || text.contains("maximum of 100 years"),
                "{}",
                text
            );
        }
        return Ok(());
    }

    // Accepted: the CanaryAnalysis the planner creates is a valid one.
    let (spec, created) = planned_analysis(sim);
    let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
    for (path, _) in DURATION_FIELDS {
        if let Some(value) = path.iter().try_fold(&spec, |v, key| v.get(key)) {
            let text = value.as_str().unwrap_or_default();
            prop_assert!(
                pattern.is_match(text),
                "{}: {:?} fails the CRD pattern",
                path.join("."),
                value
            );
        }
    }
    let resolved: ResolvedSpec = match resolve(&canary_analysis(&spec, created), Some(PROMETHEUS)) {
        Ok(r) => r,
        Err(e) => return Err(TestCaseError::fail(format!("{e}\nspec: {spec:#}"))),
    };
    // ... and it means what the Rollout said, to the millisecond.
    let w = &case.window;
    let s = resolved.schedule;
    prop_assert_eq!(s.end - s.start, ms(w.lifetime));
    prop_assert_eq!(s.judged_from - s.start, ms(w.warmup.unwrap_or(0)));
    prop_assert_eq!(s.interval, ms(w.interval));
    prop_assert_eq!(
        resolved.step,
        w.step
            .map_or(Duration::from_secs(30), Duration::from_millis)
    );
    prop_assert_eq!(
        resolved.experiment_shift,
        ms(w.experiment_shift.unwrap_or(0))
    );
    let control_shift = match flow {
        // The control is the old fleet over the same length before the switch.
        Flow::PostPromotion => w.lifetime,
        Flow::Canary => w.control_shift.unwrap_or(0),
    };
    prop_assert_eq!(resolved.control_shift, ms(control_shift));
    prop_assert_eq!(resolved.early_pass_after, w.early_pass_min.map(ms));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn an_inline_canary_analysis_the_rollout_accepts_is_a_valid_canary_analysis(case in case()) {
        check(Flow::Canary, &case)?;
    }

    #[test]
    fn an_inline_post_promotion_analysis_the_rollout_accepts_is_a_valid_canary_analysis(case in case()) {
        check(Flow::PostPromotion, &case)?;
    }
}

/// The case of the issue: `lifetime: 500ms` inline after promotion.
#[test]
fn a_sub_second_post_promotion_lifetime_is_a_valid_canary_analysis() {
    let mut body = analysis_body();
    body["lifetime"] = json!("500ms");
    body["interval"] = json!("1s");
    let sim = sim(Flow::PostPromotion, body);
    assert_eq!(validate(&sim.rollout), vec![]);
    let (spec, created) = planned_analysis(sim);
    assert_eq!(spec["lifetime"], "500ms");
    assert_eq!(spec["control"]["timeShift"], "500ms");
    let resolved = resolve(&canary_analysis(&spec, created), Some(PROMETHEUS)).unwrap();
    assert_eq!(resolved.schedule.end - resolved.schedule.start, ms(500));
    assert_eq!(resolved.control_shift, ms(500));
}

/// A template's body is checked alike when it is used: a bad duration holds
/// the canary with the field and the accepted form in the message.
#[test]
fn a_template_with_a_bad_duration_is_held_naming_the_field() {
    let mut sim = Sim::with_canary(false, true, "Pause");
    sim.use_template("shared");
    let mut body = analysis_body();
    body["interval"] = json!("1.5m");
    sim.put_template("shared", body);
    sim.set_image("web:2");
    let mut message = String::new();
    for _ in 0..5 {
        sim.make_ready();
        let plan = sim.step();
        if let Some(c) = plan
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing" && c.reason == "InvalidAnalysis")
        {
            message = c.message.clone();
            break;
        }
    }
    assert!(sim.analysis_specs.is_empty());
    assert!(
        message.ends_with(&format!(
            ": CanaryAnalysisTemplate \"shared\" is not a usable CanaryAnalysis spec: spec.interval: \"1.5m\" is not a duration; write {}; fix the analysis body; the rollout continues as soon as it is usable",
            redblack_duration::FORM
        )),
        "{message}"
    );
}
