//! The CanaryAnalysis spec the planner creates: the user's inline body with the
//! scopes and the window filled in. Built as JSON so that the planner does not
//! depend on the analysis controller's types (the analysis controller
//! validates the result and reports problems in the analysis' status).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// One side of the comparison, as the CanaryAnalysis spec's `experiment` /
/// `control` objects spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeSpec {
    pub namespace: String,
    pub replica_set: String,
    /// The Rollout revision (pod-template hash of `spec.template` it came from).
    pub revision: String,
    pub role: String,
    /// Extra template variables (the user's are kept; these are added).
    pub variables: BTreeMap<String, String>,
}

/// `inline` with `experiment`, `control` and `startTime` set; `timeShift`
/// (a duration) on the control when it is judged over an earlier window.
pub fn build(
    inline: Option<&Value>,
    experiment: ScopeSpec,
    control: ScopeSpec,
    start: DateTime<Utc>,
    control_time_shift: Option<&str>,
) -> Value {
    let mut spec = inline
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, scope) in [("experiment", experiment), ("control", control)] {
        let mut object = spec
            .get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        fill_scope(&mut object, scope);
        if key == "control"
            && let Some(shift) = control_time_shift
        {
            object.insert("timeShift".to_owned(), Value::String(shift.to_owned()));
        }
        spec.insert(key.to_owned(), Value::Object(object));
    }
    spec.insert(
        "startTime".to_owned(),
        Value::String(start.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    Value::Object(spec)
}

fn fill_scope(object: &mut Map<String, Value>, scope: ScopeSpec) {
    object.insert("namespace".to_owned(), Value::String(scope.namespace));
    object.insert("replicaSet".to_owned(), Value::String(scope.replica_set));
    object.insert("revision".to_owned(), Value::String(scope.revision));
    object.insert("role".to_owned(), Value::String(scope.role));
    let mut variables = object
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, value) in scope.variables {
        variables.insert(name, Value::String(value));
    }
    if !variables.is_empty() {
        object.insert("variables".to_owned(), Value::Object(variables));
    }
}
