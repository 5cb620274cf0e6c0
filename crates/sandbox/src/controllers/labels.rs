//! Label selector matching shared by the controllers: `metav1.LabelSelector`
//! (matchLabels + matchExpressions, as ReplicaSets use) and plain equality maps
//! (as Services and pod templates use).

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    #[error("selector must be an object")]
    NotAnObject,
    #[error("invalid matchExpressions entry: {0}")]
    BadExpression(String),
}

fn label<'a>(labels: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    labels?.get(key)?.as_str()
}

/// Whether every `key: value` of `selector` is among `labels` (an empty selector
/// matches everything).
pub fn map_matches(selector: &Map<String, Value>, labels: Option<&Map<String, Value>>) -> bool {
    selector
        .iter()
        .all(|(k, v)| v.as_str().is_some_and(|v| label(labels, k) == Some(v)))
}

/// Whether a `metav1.LabelSelector` selects `labels`. Malformed selectors are an
/// error rather than "matches nothing", so callers can say why they skip an object.
pub fn selector_matches(
    selector: &Value,
    labels: Option<&Map<String, Value>>,
) -> Result<bool, SelectorError> {
    let sel = selector.as_object().ok_or(SelectorError::NotAnObject)?;
    if let Some(ml) = sel.get("matchLabels").filter(|m| !m.is_null()) {
        let ml = ml.as_object().ok_or(SelectorError::NotAnObject)?;
        if !map_matches(ml, labels) {
            return Ok(false);
        }
    }
    let exprs = match sel.get("matchExpressions") {
        None | Some(Value::Null) => return Ok(true),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(SelectorError::BadExpression(other.to_string())),
    };
    for expr in exprs {
        let bad = || SelectorError::BadExpression(expr.to_string());
        let key = expr.get("key").and_then(Value::as_str).ok_or_else(bad)?;
        let op = expr
            .get("operator")
            .and_then(Value::as_str)
            .ok_or_else(bad)?;
        let values: Vec<&str> = match expr.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(bad()),
        };
        let actual = label(labels, key);
        let ok = match op {
            "In" => actual.is_some_and(|a| values.contains(&a)),
            "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => return Err(bad()),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `metadata.labels` of an object, if it has any.
pub fn labels_of(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn match_labels_and_expressions() {
        let labels = m(json!({"app": "web", "track": "red"}));
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "track", "operator": "In", "values": ["red", "black"]},
                                 {"key": "gone", "operator": "DoesNotExist"}]});
        assert_eq!(selector_matches(&sel, Some(&labels)), Ok(true));
        let sel =
            json!({"matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["red"]}]});
        assert_eq!(selector_matches(&sel, Some(&labels)), Ok(false));
        let sel = json!({"matchExpressions": [{"key": "track", "operator": "Sideways"}]});
        assert!(selector_matches(&sel, Some(&labels)).is_err());
        assert_eq!(selector_matches(&json!({}), None), Ok(true));
        assert_eq!(
            selector_matches(&json!({"matchLabels": null}), None),
            Ok(true)
        );
        assert!(selector_matches(&json!("app=web"), None).is_err());
    }

    proptest! {
        /// A map selector matches exactly when it is a subset of the labels.
        #[test]
        fn map_selector_is_subset(labels in proptest::collection::btree_map("[a-c]", "[x-z]", 0..4),
                                  sel in proptest::collection::btree_map("[a-c]", "[x-z]", 0..3)) {
            let lm: Map<String, Value> = labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let sm: Map<String, Value> = sel.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let subset = sel.iter().all(|(k, v)| labels.get(k) == Some(v));
            prop_assert_eq!(map_matches(&sm, Some(&lm)), subset);
            let as_selector = json!({"matchLabels": Value::Object(sm)});
            prop_assert_eq!(selector_matches(&as_selector, Some(&lm)), Ok(subset));
        }
    }
}
