//! Fuzzing (proptest) of what users write: Rollouts and CanaryAnalyses
//! mutated at random paths (a value replaced by another of any type, a field
//! removed, an object or list where a scalar was), then — when the API's
//! types accept the result — validated and planned. Whatever a user applies,
//! the operator answers with a plan, a status or a typed error, never a panic
//! (a panic would stop that object's reconciles for good).
//!
//! Cases per property: `PROPTEST_CASES` (default 256 here; `make fuzz` runs
//! 20,000, docs/reliability.md).

mod common;

use chrono::Duration;
use proptest::prelude::*;
use redblack::analysis::controller::{bounds::Limits, plan as analysis_plan, spec};
use redblack::api::canary_analysis::CanaryAnalysis;
use redblack::api::{Rollout, validate};
use redblack::rollout::plan;
use serde_json::{Value, json};

use common::Sim;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Every JSON pointer in `v` (objects and arrays included), document order.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

/// Values a user might put anywhere: edge numbers, odd strings (durations,
/// quantities, label syntax, PromQL), and small structures.
fn wild() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64),
            Just(0),
            Just(1),
            Just(100),
            Just(2_147_483_648),
        ]
        .prop_map(|n| json!(n)),
        prop_oneof![Just(-0.5f64), Just(1e308), Just(0.0), Just(101.5)].prop_map(|f| json!(f)),
        prop_oneof![
            Just(""),
            Just("0s"),
            Just("500ms"),
            Just("99999999999999h"),
            Just("1d1d1d"),
            Just("-1m"),
            Just("${podRegex}"),
            Just("${nope}"),
            Just("sum(rate(x[${interval}]))"),
            Just("100%"),
            Just("Mon-Fri"),
            Just("25:00-26:00"),
            Just("Europe/Nowhere"),
            Just("a.b.c"),
            Just("UPPER_case"),
            Just("é"),
        ]
        .prop_map(|s| json!(s)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,8}", inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change at one place of the document.
#[derive(Clone, Debug)]
enum Mutation {
    /// Any value, of any type (mostly refused by the types: the serde paths).
    Replace(Value),
    /// A value of the same JSON type (mostly accepted: the validation and
    /// planning paths).
    Retype(Value),
    Remove,
}

/// Values of each JSON type that stress validation and planning.
fn same_type(original: &Value, seed: &Value) -> Value {
    const STRINGS: &[&str] = &[
        "",
        "0s",
        "500ms",
        "99999999999999h",
        "-1m",
        "1d",
        "${podRegex}",
        "${nope}",
        "{{",
        "100%",
        "Mon-Fri",
        "25:00-26:00",
        "Europe/Nowhere",
        "a.b.c",
        "UPPER",
        "é",
        "web-canary",
        "-",
        "x/y",
        "In",
        "Exists",
        "Bogus",
    ];
    const NUMBERS: &[i64] = &[
        i64::MIN,
        -1,
        0,
        1,
        3,
        100,
        101,
        65536,
        2_147_483_648,
        i64::MAX,
    ];
    let pick = seed.to_string().len();
    match original {
        Value::String(_) => json!(STRINGS[pick % STRINGS.len()]),
        Value::Number(n) if n.is_f64() => json!([-0.5, 0.0, 50.5, 1e308][pick % 4]),
        Value::Number(_) => json!(NUMBERS[pick % NUMBERS.len()]),
        Value::Bool(b) => json!(!b),
        Value::Array(a) => match pick % 3 {
            0 => json!([]),
            1 => Value::Array(a.iter().chain(a.iter()).cloned().collect()), // duplicates
            _ => Value::Array(a.iter().rev().cloned().collect()),
        },
        Value::Object(_) if pick.is_multiple_of(2) => json!({}),
        other => other.clone(),
    }
}

/// Up to 4 mutations, each at a place picked by index among the document's
/// pointers at that moment.
fn mutations() -> impl Strategy<Value = Vec<(prop::sample::Index, Mutation)>> {
    let mutation = prop_oneof![
        2 => wild().prop_map(Mutation::Replace),
        6 => wild().prop_map(Mutation::Retype),
        1 => Just(Mutation::Remove),
    ];
    prop::collection::vec((any::<prop::sample::Index>(), mutation), 1..5)
}

fn mutate(mut doc: Value, muts: &[(prop::sample::Index, Mutation)]) -> Value {
    for (index, mutation) in muts {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        if all.is_empty() {
            break;
        }
        let at = index.get(&all).clone();
        match mutation {
            Mutation::Replace(v) => {
                if let Some(slot) = doc.pointer_mut(&at) {
                    *slot = v.clone();
                }
            }
            Mutation::Retype(seed) => {
                if let Some(slot) = doc.pointer_mut(&at) {
                    *slot = same_type(slot, seed);
                }
            }
            Mutation::Remove => {
                let (parent, key) = at.rsplit_once('/').unwrap_or(("", &at));
                let key = key.replace("~1", "/").replace("~0", "~");
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < a.len()
                        {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    doc
}

/// A Rollout in the middle of a canary with a baseline, an HTTPRoute, an
/// inline analysis and a marginal policy, and the world it observes.
fn canary_world() -> Sim {
    let mut sim = Sim::with_canary(true, true, "Pause");
    sim.settle();
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_rollout_the_types_accept_is_validated_and_planned_without_panic(
        muts in mutations(),
        advance in 0i64..4000,
    ) {
        let sim = canary_world();
        let doc = mutate(serde_json::to_value(&sim.rollout).unwrap(), &muts);
        if let Ok(rollout) = serde_json::from_value::<Rollout>(doc) {
            let _ = validate(&rollout);
            let first = plan(&rollout, &sim.observed, sim.now + Duration::seconds(advance));
            // The plan's own status fed back in (as the API would store it)
            // must plan again without panic too.
            let mut next = rollout.clone();
            next.status = Some(first.status.clone());
            let _ = plan(&next, &sim.observed, sim.now + Duration::seconds(advance + 1));
        }
    }

    #[test]
    fn any_canary_analysis_the_types_accept_is_resolved_and_planned_without_panic(
        muts in mutations(),
        after in 0i64..100_000,
    ) {
        let base = json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "CanaryAnalysis",
            "metadata": {"name": "web", "namespace": "shop", "generation": 1,
                         "creationTimestamp": "2023-11-14T22:13:20Z"},
            "spec": {
                "prometheus": {"url": "http://127.0.0.1:9"},
                "control": {"replicaSet": "web-1", "timeShift": "10m"},
                "experiment": {"replicaSet": "web-2"},
                "startTime": "2023-11-14T22:13:20Z",
                "lifetime": "10m",
                "interval": "1m",
                "warmup": "1m",
                "scoreThresholds": {"marginal": 50, "pass": 75},
                "groups": [{"name": "latency", "weight": 60}, {"name": "errors", "weight": 40}],
                "metrics": [
                    {"name": "latency", "group": "latency", "direction": "increase",
                     "query": "avg(lat{pod=~\"${podRegex}\"})",
                     "effectSize": {"allowedIncrease": 1.1}, "critical": true},
                    {"name": "errors", "group": "errors", "kind": "rate", "direction": "increase",
                     "numerator": "sum(increase(err_total{pod=~\"${podRegex}\"}[${interval}]))",
                     "denominator": "sum(increase(req_total{pod=~\"${podRegex}\"}[${interval}]))"}
                ]
            }
        });
        let doc = mutate(base, &muts);
        if let Ok(ca) = serde_json::from_value::<CanaryAnalysis>(doc) {
            let _ = spec::resolve(&ca, None);
            let now = chrono::DateTime::parse_from_rfc3339("2023-11-14T22:13:20Z")
                .unwrap()
                .with_timezone(&chrono::Utc)
                + Duration::seconds(after);
            let _ = analysis_plan::plan(&ca, now, None, Limits::default());
        }
    }
}
