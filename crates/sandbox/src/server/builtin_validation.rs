//! Validation a real API server does and a CRD schema cannot say: label and
//! annotation syntax on every object, and for the built-in kinds the sandbox
//! runs (Service, Pod, ReplicaSet, Deployment) their names, selectors and
//! containers. So a client that writes what a real cluster refuses sees the
//! same 422 here, with the same field paths and wording (k8s.io/apimachinery
//! `validation` and `apis/meta/v1/validation`, k8s.io/kubernetes
//! `pkg/apis/{core,apps}/validation`), instead of only in production.
//!
//! Not covered: resource quantities, probes, volumes, ports beyond their
//! presence, and the hundreds of other per-field rules of the real server.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::schema::FieldError;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;
const QUALIFIED_NAME_MAX: usize = 63;

/// Every error of `obj` (of `kind`, a built-in kind when `builtin`).
pub fn validate(kind: &str, builtin: bool, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata");
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        label_map(labels, "metadata.labels", &mut errs);
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for key in annotations.keys() {
            qualified_name(key, "metadata.annotations", &mut errs);
        }
    }
    if !builtin {
        return errs;
    }
    let spec = obj.get("spec");
    match kind {
        "Service" => {
            let name = meta
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !name.is_empty() && !is_dns1035_label(name) {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    name,
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
                     start with an alphabetic character, and end with an alphanumeric character \
                     (e.g. 'my-name',  or 'abc-123', regex used for validation is \
                     '[a-z]([-a-z0-9]*[a-z0-9])?')",
                ));
            }
            if let Some(selector) = spec
                .and_then(|s| s.get("selector"))
                .and_then(Value::as_object)
            {
                label_map(selector, "spec.selector", &mut errs);
            }
        }
        "Pod" => pod_spec(spec, "spec", &mut errs),
        "ReplicaSet" | "Deployment" => workload(spec, &mut errs),
        "Job" => job(spec, &mut errs),
        _ => {}
    }
    errs
}

fn workload(spec: Option<&Value>, errs: &mut Vec<FieldError>) {
    let selector = spec.and_then(|s| s.get("selector"));
    let Some(selector) = selector.filter(|s| !is_empty_selector(s)) else {
        errs.push(FieldError::required("spec.selector"));
        return;
    };
    label_selector(selector, "spec.selector", errs);
    let template = spec.and_then(|s| s.get("template"));
    let labels = template
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    match labels {
        Some(labels) => {
            label_map(labels, "spec.template.metadata.labels", errs);
            if !selects(selector, labels) {
                errs.push(FieldError {
                    reason: "FieldValueInvalid".into(),
                    field: "spec.template.metadata.labels".into(),
                    message: format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        Value::Object(labels.clone())
                    ),
                });
            }
        }
        None => errs.push(FieldError::required("spec.template.metadata.labels")),
    }
    pod_spec(
        template.and_then(|t| t.get("spec")),
        "spec.template.spec",
        errs,
    );
}

/// A Job (batch/v1): its pod template, whose `restartPolicy` must be
/// `Never` or `OnFailure` (`pkg/apis/batch/validation`), and its bounds.
fn job(spec: Option<&Value>, errs: &mut Vec<FieldError>) {
    let template_spec = spec.and_then(|s| s.pointer("/template/spec"));
    pod_spec(template_spec, "spec.template.spec", errs);
    match template_spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
    {
        Some("Never" | "OnFailure") => {}
        other => errs.push(FieldError {
            reason: "FieldValueNotSupported".into(),
            field: "spec.template.spec.restartPolicy".into(),
            message: format!(
                "Unsupported value: \"{}\": supported values: \"OnFailure\", \"Never\"",
                // The pod defaults fill in `Always` before the Job is validated.
                other.unwrap_or("Always")
            ),
        }),
    }
    for field in ["backoffLimit", "activeDeadlineSeconds"] {
        if let Some(v) = spec.and_then(|s| s.get(field))
            && !v.is_null()
        {
            let ok = v.as_i64().is_some_and(|n| {
                if field == "backoffLimit" {
                    n >= 0
                } else {
                    n > 0
                }
            });
            if !ok {
                errs.push(FieldError::invalid(
                    &format!("spec.{field}"),
                    &v.to_string(),
                    if field == "backoffLimit" {
                        "must be greater than or equal to 0"
                    } else {
                        "must be greater than 0"
                    },
                ));
            }
        }
    }
}

fn pod_spec(spec: Option<&Value>, at: &str, errs: &mut Vec<FieldError>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        Some(list) if !list.is_empty() => {}
        _ => errs.push(FieldError::required(&format!("{at}.containers"))),
    }
    let mut names = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        let Some(items) = spec.and_then(|s| s.get(list)).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in items.iter().enumerate() {
            let path = format!("{at}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(&format!("{path}.name")));
            } else if !is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    &format!("{path}.name"),
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric \
                     characters or '-', and must start and end with an alphanumeric character \
                     (e.g. 'my-name',  or '123-abc', regex used for validation is \
                     '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                ));
            } else if !names.insert(name.to_owned()) {
                errs.push(FieldError {
                    reason: "FieldValueDuplicate".into(),
                    field: format!("{path}.name"),
                    message: format!("Duplicate value: \"{name}\""),
                });
            }
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            if image.trim().is_empty() {
                errs.push(FieldError::required(&format!("{path}.image")));
            }
        }
    }
}

fn label_selector(selector: &Value, at: &str, errs: &mut Vec<FieldError>) {
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        label_map(labels, &format!("{at}.matchLabels"), errs);
    }
    let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) else {
        return;
    };
    for (i, e) in exprs.iter().enumerate() {
        let path = format!("{at}.matchExpressions[{i}]");
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        qualified_name(key, &format!("{path}.key"), errs);
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" | "NotIn" if values == 0 => {
                errs.push(FieldError::required(&format!("{path}.values")))
            }
            "Exists" | "DoesNotExist" if values > 0 => errs.push(FieldError {
                reason: "FieldValueForbidden".into(),
                field: format!("{path}.values"),
                message: "Forbidden: may not be specified when `operator` is 'Exists' or \
                          'DoesNotExist'"
                    .into(),
            }),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError {
                reason: "FieldValueInvalid".into(),
                field: format!("{path}.operator"),
                message: format!("Invalid value: \"{other}\": not a valid selector operator"),
            }),
        }
        if let Some(vals) = e.get("values").and_then(Value::as_array) {
            for (j, v) in vals.iter().enumerate() {
                label_value(
                    v.as_str().unwrap_or(""),
                    &format!("{path}.values[{j}]"),
                    errs,
                );
            }
        }
    }
}

/// Whether `selector` (matchLabels, and matchExpressions with valid operators)
/// selects `labels`.
fn selects(selector: &Value, labels: &Map<String, Value>) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| v.as_str().is_some() && get(k) == v.as_str())
        });
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match_labels
        && exprs.iter().all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => true, // reported as an invalid operator already
            }
        })
}

fn is_empty_selector(selector: &Value) -> bool {
    let empty = |k: &str| {
        selector.get(k).is_none_or(|v| {
            v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    empty("matchLabels") && empty("matchExpressions")
}

fn label_map(labels: &Map<String, Value>, at: &str, errs: &mut Vec<FieldError>) {
    for (key, value) in labels {
        qualified_name(key, at, errs);
        label_value(value.as_str().unwrap_or(""), at, errs);
    }
}

/// A label key (also an annotation key): `[prefix/]name`, the prefix a DNS
/// subdomain, the name ≤ 63 characters of `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
fn qualified_name(key: &str, at: &str, errs: &mut Vec<FieldError>) {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut problems = Vec::new();
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > DNS1123_SUBDOMAIN_MAX || !is_dns1123_subdomain(p))
    {
        problems.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character");
    }
    if name.is_empty() {
        problems.push("name part must be non-empty");
    } else if name.len() > QUALIFIED_NAME_MAX {
        problems.push("name part must be no more than 63 characters");
    } else if !is_qualified_name_part(name) {
        problems.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
    }
    for p in problems {
        errs.push(FieldError::invalid(at, key, p));
    }
}

fn label_value(value: &str, at: &str, errs: &mut Vec<FieldError>) {
    if value.len() > LABEL_VALUE_MAX {
        errs.push(FieldError::invalid(
            at,
            value,
            "must be no more than 63 characters",
        ));
    } else if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(FieldError::invalid(
            at,
            value,
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
             or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ));
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_qualified_name_part(s: &str) -> bool {
    s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn is_dns1123_label(s: &str) -> bool {
    s.len() <= DNS1123_LABEL_MAX
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= DNS1123_SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(kind: &str, obj: Value) -> Vec<String> {
        validate(kind, true, &obj)
            .into_iter()
            .map(|e| format!("{} {}", e.field, e.reason))
            .collect()
    }

    fn rs(labels: Value, selector: Value, containers: Value) -> Value {
        json!({
            "metadata": {"name": "web-1", "labels": labels},
            "spec": {
                "selector": selector,
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": containers}
                }
            }
        })
    }

    #[test]
    fn a_valid_replica_set_has_no_errors() {
        let obj = rs(
            json!({"app": "web", "redblack.io/role": "canary"}),
            json!({"matchLabels": {"app": "web"},
                   "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
            json!([{"name": "web", "image": "nginx:1"}]),
        );
        assert_eq!(fields("ReplicaSet", obj), Vec::<String>::new());
    }

    #[test]
    fn what_a_real_api_server_refuses() {
        let long = "v".repeat(64);
        let obj = rs(
            json!({"bad key!": "x", "app": long, "-x": "y"}),
            json!({"matchExpressions": [
                {"key": "app", "operator": "Contains", "values": ["web"]},
                {"key": "app", "operator": "Exists", "values": ["web"]},
                {"key": "app", "operator": "In"}
            ]}),
            json!([{"name": "web", "image": ""}, {"name": "web", "image": "a"}, {"name": "Web_1", "image": "a"}]),
        );
        assert_eq!(
            fields("ReplicaSet", obj),
            vec![
                "metadata.labels FieldValueInvalid",
                "metadata.labels FieldValueInvalid",
                "metadata.labels FieldValueInvalid",
                "spec.selector.matchExpressions[0].operator FieldValueInvalid",
                "spec.selector.matchExpressions[1].values FieldValueForbidden",
                "spec.selector.matchExpressions[2].values FieldValueRequired",
                // `In` with no values selects nothing, so not the template either.
                "spec.template.metadata.labels FieldValueInvalid",
                "spec.template.spec.containers[0].image FieldValueRequired",
                "spec.template.spec.containers[1].name FieldValueDuplicate",
                "spec.template.spec.containers[2].name FieldValueInvalid",
            ]
        );
    }

    #[test]
    fn the_selector_must_select_the_template() {
        let obj = rs(
            json!({}),
            json!({"matchLabels": {"app": "other"}}),
            json!([{"name": "web", "image": "a"}]),
        );
        assert_eq!(
            fields("ReplicaSet", obj),
            vec!["spec.template.metadata.labels FieldValueInvalid"]
        );
        let no_selector = rs(json!({}), json!({}), json!([{"name": "web", "image": "a"}]));
        assert_eq!(
            fields("Deployment", no_selector),
            vec!["spec.selector FieldValueRequired"]
        );
    }

    #[test]
    fn service_names_are_dns_1035_labels() {
        for (name, ok) in [
            ("web-canary", true),
            ("web.v2-canary", false),
            ("1web", false),
            (&*"a".repeat(63), true),
            (&*"a".repeat(64), false),
        ] {
            let errs = fields("Service", json!({"metadata": {"name": name}, "spec": {}}));
            assert_eq!(errs.is_empty(), ok, "{name}: {errs:?}");
        }
    }

    #[test]
    fn custom_resources_get_only_the_metadata_checks() {
        let obj = json!({"metadata": {"name": "x", "labels": {"a": "b c"}}, "spec": {}});
        assert_eq!(validate("Rollout", false, &obj).len(), 1);
        let fine = json!({"metadata": {"name": "x", "labels": {"example.com/a": "b"}}});
        assert!(validate("Rollout", false, &fine).is_empty());
    }
}
