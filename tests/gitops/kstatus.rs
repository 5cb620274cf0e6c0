//! kstatus' documented rules (sigs.k8s.io/cli-utils `pkg/kstatus`, README
//! "Statuses", "Conditions" and "The Ready Condition"), as a pure function
//! over the object's JSON: what Flux's health checks and `kstatus`-based
//! waiters compute for a custom resource without type-specific rules.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Current,
    Failed,
    Terminating,
}

/// Whether the reader also applies the `Ready` rule (True → Current,
/// False → InProgress) after the abnormal-true conditions; readers without
/// it take a resource with neither `Reconciling` nor `Stalled` as Current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    WithReady,
    WithoutReady,
}

pub fn compute(object: &Value, reading: Reading) -> Status {
    // 1. Scheduled for deletion.
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Status::Terminating;
    }
    // 2. A status of another generation: the controller has not seen the spec.
    //    (Only when both fields are present, as kstatus does.)
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if let (Some(g), Some(o)) = (generation, observed)
        && g != o
    {
        return Status::InProgress;
    }
    // 3. The abnormal-true conditions, in list order: Reconciling → InProgress,
    //    Stalled → Failed.
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is = |c: &Value, type_: &str, status: &str| c["type"] == type_ && c["status"] == status;
    for c in &conditions {
        if is(c, "Reconciling", "True") {
            return Status::InProgress;
        }
        if is(c, "Stalled", "True") {
            return Status::Failed;
        }
    }
    // 4. The Ready condition, for readers that use it.
    if reading == Reading::WithReady {
        if conditions.iter().any(|c| is(c, "Ready", "False")) {
            return Status::InProgress;
        }
        if conditions.iter().any(|c| is(c, "Ready", "True")) {
            return Status::Current;
        }
    }
    // 5. Nothing abnormal: reconciled.
    Status::Current
}

#[test]
fn the_rules_in_order() {
    use serde_json::json;
    {
        use Reading::*;
        use Status::*;
        let obj = |generation: i64, observed: i64, conditions: Value| {
            json!({"metadata": {"generation": generation},
                   "status": {"observedGeneration": observed, "conditions": conditions}})
        };
        let cond = |t: &str, s: &str| json!({"type": t, "status": s});
        let cases = [
            (
                obj(2, 1, json!([cond("Ready", "True")])),
                WithReady,
                InProgress,
            ),
            (
                obj(2, 2, json!([cond("Reconciling", "True")])),
                WithReady,
                InProgress,
            ),
            (
                obj(2, 2, json!([cond("Stalled", "True")])),
                WithoutReady,
                Failed,
            ),
            (
                obj(2, 2, json!([cond("Stalled", "False")])),
                WithoutReady,
                Current,
            ),
            (
                obj(2, 2, json!([cond("Ready", "False")])),
                WithReady,
                InProgress,
            ),
            (
                obj(2, 2, json!([cond("Ready", "False")])),
                WithoutReady,
                Current,
            ),
            (
                obj(2, 2, json!([cond("Ready", "True")])),
                WithReady,
                Current,
            ),
            (
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
                WithReady,
                Terminating,
            ),
            (json!({"metadata": {"generation": 1}}), WithReady, Current),
        ];
        for (object, reading, want) in cases {
            assert_eq!(compute(&object, reading), want, "{object} {reading:?}");
        }
    }
}
