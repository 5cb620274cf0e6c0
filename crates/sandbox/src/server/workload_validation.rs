//! What the real API server does to Deployments and ReplicaSets beyond their
//! selector and template (`builtin_validation`): the defaults of
//! `apps/v1.SetDefaults_Deployment`, and the checks of
//! `pkg/apis/apps/validation` that matter to a controller — replicas not
//! negative, a rolling update's bounds (`maxSurge` and `maxUnavailable` not
//! both 0), the strategy type, and a selector that never changes.

use serde_json::{Value, json};

use crate::schema::FieldError;

/// `SetDefaults_Deployment` (replicas is defaulted with the ReplicaSet's in `write`).
pub fn default(kind: &str, obj: &mut Value) {
    if kind != "Deployment" {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        let ty = strategy
            .entry("type")
            .or_insert_with(|| json!("RollingUpdate"));
        if ty == "RollingUpdate" {
            let ru = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(ru) = ru.as_object_mut() {
                for field in ["maxUnavailable", "maxSurge"] {
                    if ru.get(field).is_none_or(Value::is_null) {
                        ru.insert(field.into(), json!("25%"));
                    }
                }
            }
        }
    }
    spec.entry("revisionHistoryLimit")
        .or_insert_with(|| json!(10));
    spec.entry("progressDeadlineSeconds")
        .or_insert_with(|| json!(600));
}

fn invalid(field: &str, value: &Value, why: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid".into(),
        field: field.into(),
        message: format!("Invalid value: {value}: {why}"),
    }
}

/// The number an int-or-percent stands for (`getIntOrPercentValue`), or the
/// error `ValidatePositiveIntOrPercent` gives.
fn int_or_percent(v: &Value, at: &str, errs: &mut Vec<FieldError>) -> Option<(i64, bool)> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(n) if n >= 0 => Some((n, false)),
            _ => {
                errs.push(invalid(at, v, "must be greater than or equal to 0"));
                None
            }
        },
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits.and_then(|d| d.parse().ok()) {
                Some(p) => Some((p, true)),
                None => {
                    errs.push(invalid(
                        at,
                        v,
                        "a valid percent string must be a numeric string followed by an ending \
                         '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    ));
                    None
                }
            }
        }
        _ => None,
    }
}

fn strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(strategy) = spec.get("strategy") else {
        return;
    };
    let ty = strategy.get("type").and_then(Value::as_str).unwrap_or("");
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match ty {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError {
                    reason: "FieldValueForbidden".into(),
                    field: "spec.strategy.rollingUpdate".into(),
                    message: "Forbidden: may not be specified when strategy `type` is 'Recreate'"
                        .into(),
                });
            }
        }
        "RollingUpdate" => {
            let Some(ru) = ru else {
                errs.push(FieldError::required("spec.strategy.rollingUpdate"));
                return;
            };
            let at = "spec.strategy.rollingUpdate";
            let unavailable = ru.get("maxUnavailable").unwrap_or(&Value::Null);
            let surge = ru.get("maxSurge").unwrap_or(&Value::Null);
            let u = int_or_percent(unavailable, &format!("{at}.maxUnavailable"), errs);
            let s = int_or_percent(surge, &format!("{at}.maxSurge"), errs);
            if u.is_some_and(|(n, _)| n == 0) && s.is_some_and(|(n, _)| n == 0) {
                errs.push(invalid(
                    &format!("{at}.maxUnavailable"),
                    unavailable,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if let Some((n, true)) = u
                && n > 100
            {
                errs.push(invalid(
                    &format!("{at}.maxUnavailable"),
                    unavailable,
                    "must not be greater than 100%",
                ));
            }
        }
        other => errs.push(FieldError {
            reason: "FieldValueNotSupported".into(),
            field: "spec.strategy.type".into(),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"Recreate\", \"RollingUpdate\""
            ),
        }),
    }
}

/// Every error of a Deployment or ReplicaSet `obj` (replacing `old`, if any).
/// What the API server's JSON decoding refuses before any defaulting or
/// validation: an `int32` field of a Deployment's or ReplicaSet's spec
/// holding something else (a chart without a values schema rendering
/// `replicas: two`). Go's `encoding/json` wording; the caller adds the
/// `<Kind> in version "v1" cannot be handled as a <Kind>: ` prefix.
pub fn decode_error(kind: &str, obj: &Value) -> Option<String> {
    let fields: &[&str] = match kind {
        "Deployment" => &[
            "replicas",
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
        ],
        "ReplicaSet" => &["replicas", "minReadySeconds"],
        _ => return None,
    };
    let spec = obj.get("spec")?;
    fields.iter().find_map(|field| {
        let what = match spec.get(*field)? {
            Value::Null => return None,
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
                return None;
            }
            Value::Number(n) => format!("number {n}"),
            Value::String(_) => "string".to_owned(),
            Value::Bool(_) => "bool".to_owned(),
            Value::Array(_) => "array".to_owned(),
            Value::Object(_) => "object".to_owned(),
        };
        Some(format!(
            "json: cannot unmarshal {what} into Go struct field {kind}Spec.spec.{field} of type int32"
        ))
    })
}

pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !matches!(kind, "Deployment" | "ReplicaSet") {
        return errs;
    }
    let Some(spec) = obj.get("spec") else {
        return errs;
    };
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        if let Some(v) = spec.get(field)
            && v.as_i64().is_some_and(|n| n < 0)
        {
            errs.push(invalid(
                &format!("spec.{field}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    if kind == "Deployment" {
        strategy(spec, &mut errs);
    }
    if let Some(old) = old {
        let selector = spec.get("selector").unwrap_or(&Value::Null);
        if old.pointer("/spec/selector").unwrap_or(&Value::Null) != selector {
            errs.push(invalid("spec.selector", selector, "field is immutable"));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(strategy: Value) -> Value {
        json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "strategy": strategy,
               "selector": {"matchLabels": {"app": "a"}}}})
    }

    fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
        validate("Deployment", obj, old)
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn defaults_are_the_api_servers() {
        let mut d = json!({"spec": {"template": {}}});
        default("Deployment", &mut d);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        default("Deployment", &mut r);
        assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn what_a_real_api_server_refuses() {
        let cases = [
            (
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
                vec![
                    "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
                ],
            ),
            (
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}}),
                vec![
                    "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
                ],
            ),
            (
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "5", "maxUnavailable": "150%"}}),
                vec![
                    "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"5\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
                ],
            ),
            (
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": -1, "maxUnavailable": 1}}),
                vec![
                    "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
                ],
            ),
            (
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
                vec![
                    "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
                ],
            ),
            (
                json!({"type": "Sideways"}),
                vec![
                    "spec.strategy.type: Unsupported value: \"Sideways\": supported values: \"Recreate\", \"RollingUpdate\"",
                ],
            ),
            (
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}),
                vec![],
            ),
            (json!({"type": "Recreate"}), vec![]),
        ];
        for (strategy, want) in cases {
            assert_eq!(
                messages(&deployment(strategy.clone()), None),
                want,
                "{strategy}"
            );
        }
    }

    #[test]
    fn decoding_refuses_what_is_not_an_int32() {
        let with =
            |kind: &str, field: &str, v: Value| decode_error(kind, &json!({"spec": {field: v}}));
        let cases = [
            ("Deployment", "replicas", json!("two"), Some("string")),
            ("Deployment", "replicas", json!(1.5), Some("number 1.5")),
            ("Deployment", "replicas", json!(true), Some("bool")),
            (
                "Deployment",
                "progressDeadlineSeconds",
                json!([1]),
                Some("array"),
            ),
            (
                "Deployment",
                "revisionHistoryLimit",
                json!({}),
                Some("object"),
            ),
            (
                "Deployment",
                "replicas",
                json!(5_000_000_000i64),
                Some("number 5000000000"),
            ),
            ("ReplicaSet", "minReadySeconds", json!("10"), Some("string")),
            ("Deployment", "replicas", json!(2), None),
            ("Deployment", "replicas", Value::Null, None),
            ("ReplicaSet", "progressDeadlineSeconds", json!("x"), None),
            ("Pod", "replicas", json!("two"), None),
        ];
        for (kind, field, v, what) in cases {
            let want = what.map(|w| {
                format!("json: cannot unmarshal {w} into Go struct field {kind}Spec.spec.{field} of type int32")
            });
            assert_eq!(with(kind, field, v.clone()), want, "{kind} {field}={v}");
        }
    }

    #[test]
    fn the_selector_is_immutable() {
        let old = deployment(json!({"type": "Recreate"}));
        let mut new = old.clone();
        assert!(messages(&new, Some(&old)).is_empty());
        new["spec"]["selector"] = json!({"matchLabels": {"app": "b"}});
        assert_eq!(
            messages(&new, Some(&old)),
            vec![
                r#"spec.selector: Invalid value: {"matchLabels":{"app":"b"}}: field is immutable"#
            ]
        );
    }
}
