//! Structural defaulting: a `default` fills a missing (or non-nullable null)
//! property, then defaulting continues inside it, in items and in
//! `additionalProperties` values.

use serde_json::Value;

/// Applies defaults below `value`.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    let nullable = sub.get("nullable").and_then(Value::as_bool) == Some(true);
                    // Null in a non-nullable field is dropped, then defaulted like a
                    // missing one (as the real server does since 1.20).
                    if !nullable && map.get(key).is_some_and(Value::is_null) {
                        map.remove(key);
                    }
                    if !map.contains_key(key)
                        && let Some(d) = sub.get("default")
                    {
                        map.insert(key.clone(), d.clone());
                    }
                    if let Some(v) = map.get_mut(key) {
                        apply_defaults(sub, v);
                    }
                }
            }
            if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|s| s.is_object()) {
                for item in items.iter_mut() {
                    apply_defaults(sub, item);
                }
            }
        }
        _ => {}
    }
}
