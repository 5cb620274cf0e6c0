//! Pruning of fields the schema does not declare, as the apiextensions server
//! does before defaulting (honouring `x-kubernetes-preserve-unknown-fields`).

use serde_json::Value;

use super::path::{child, index};
use super::{is_resource, preserves_unknown};

/// Removes undeclared fields below `value`; pruned paths are added to `pruned`.
pub fn prune(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keep_unknown = preserves_unknown(schema)
                || matches!(additional, Some(Value::Bool(true)))
                || additional.is_some_and(Value::is_object);
            let resource = is_resource(schema, path);
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                // apiVersion/kind/metadata of a resource are the server's business.
                if resource && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(&key))
                    .or_else(|| additional.filter(|a| a.is_object()));
                match (sub, map.get_mut(&key)) {
                    (Some(sub), Some(v)) => prune(sub, v, &child(path, &key), pruned),
                    (None, Some(_)) if !keep_unknown => {
                        map.remove(&key);
                        pruned.push(child(path, &key));
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &index(path, i), pruned);
                }
            }
        }
        _ => {}
    }
}
