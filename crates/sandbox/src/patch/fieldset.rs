//! Sets of field paths in the `FieldsV1` vocabulary (`f:name`, `k:{"name":"app"}`,
//! `v:"value"`), as `metadata.managedFields` stores them, and the walks over an
//! object that server-side apply and update tracking need.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::merge_keys::{ListKind, Rules};

/// One path: FieldsV1 segments from the object root.
pub type FieldPath = Vec<String>;
/// A set of paths. A path to a list item marks the item itself (`"."` in FieldsV1).
pub type FieldSet = BTreeSet<FieldPath>;

/// Fields of the object the server owns; they are never part of a manager's set.
fn ignored(path: &[String]) -> bool {
    matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["f:apiVersion"]
            | ["f:kind"]
            | ["f:metadata", "f:name"]
            | ["f:metadata", "f:namespace"]
            | ["f:metadata", "f:uid"]
            | ["f:metadata", "f:resourceVersion"]
            | ["f:metadata", "f:generation"]
            | ["f:metadata", "f:creationTimestamp"]
            | ["f:metadata", "f:deletionTimestamp"]
            | ["f:metadata", "f:selfLink"]
            | ["f:metadata", "f:managedFields"]
            | ["f:metadata", "f:generateName"]
    )
}

/// The field names of a path, the form [`Rules::list_kind`] takes.
fn names(path: &[String]) -> Vec<&str> {
    path.iter().filter_map(|s| s.strip_prefix("f:")).collect()
}

/// The key segment of an associative list item, or None when a key is missing.
pub fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let m = item.as_object()?;
    let mut key = Map::new();
    for k in keys {
        key.insert(k.clone(), m.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(key)))
}

/// All leaf fields of `value` (and associative list items), skipping server-owned ones.
pub fn fields_of(rules: &Rules, value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(rules, value, &mut Vec::new(), &mut out);
    out
}

fn walk(rules: &Rules, value: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    if ignored(path) {
        return;
    }
    match value {
        Value::Object(m) if !m.is_empty() && !rules.map_is_atomic(&names(path)) => {
            for (k, v) in m {
                path.push(format!("f:{k}"));
                walk(rules, v, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !path.is_empty() => {
            match rules.list_kind(&names(path)) {
                ListKind::Map(keys) => {
                    let segs: Option<Vec<String>> =
                        items.iter().map(|i| item_key(i, &keys)).collect();
                    match segs {
                        Some(segs) => {
                            for (seg, item) in segs.into_iter().zip(items) {
                                path.push(seg);
                                out.insert(path.clone());
                                walk(rules, item, path, out);
                                path.pop();
                            }
                        }
                        // Items without their keys cannot be tracked one by one.
                        None => {
                            out.insert(path.clone());
                        }
                    }
                }
                ListKind::Set => {
                    for item in items {
                        path.push(format!("v:{item}"));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                ListKind::Atomic => {
                    out.insert(path.clone());
                }
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

/// The value at `path`, if the object has it.
pub fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = value;
    for seg in path {
        cur = child(cur, seg)?;
    }
    Some(cur)
}

fn child<'a>(value: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(name) = seg.strip_prefix("f:") {
        return value.as_object()?.get(name);
    }
    let items = value.as_array()?;
    items.get(item_index(items, seg)?)
}

fn item_index(items: &[Value], seg: &str) -> Option<usize> {
    if let Some(key) = seg.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().position(|i| {
            i.as_object()
                .is_some_and(|m| key.iter().all(|(k, v)| m.get(k) == Some(v)))
        });
    }
    if let Some(v) = seg.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        return items.iter().position(|i| *i == v);
    }
    seg.strip_prefix("i:")?.parse().ok()
}

/// Removes the field or list item at `path`; absent paths are fine.
pub fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = value;
    for seg in parent {
        let next = if let Some(name) = seg.strip_prefix("f:") {
            cur.as_object_mut().and_then(|m| m.get_mut(name))
        } else {
            match cur.as_array_mut() {
                Some(items) => match item_index(items, seg) {
                    Some(i) => items.get_mut(i),
                    None => None,
                },
                None => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(items) = cur.as_array_mut()
        && let Some(i) = item_index(items, last)
    {
        items.remove(i);
    }
}

/// The FieldsV1 JSON tree of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for seg in path {
            let entry = node
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            node = match entry {
                Value::Object(m) => m,
                _ => return Value::Object(Map::new()),
            };
        }
        // The path itself is a member; with children it needs an explicit ".".
        node.insert(".".into(), Value::Object(Map::new()));
    }
    sort_and_fold(&mut root);
    Value::Object(root)
}

/// Sorts keys like the API server and drops "." where the node is a plain leaf.
fn sort_and_fold(node: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(node).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, mut v) in entries {
        if let Value::Object(m) = &mut v {
            if m.len() == 1 && m.contains_key(".") {
                m.clear();
            } else {
                sort_and_fold(m);
            }
        }
        node.insert(k, v);
    }
}

/// Parses a FieldsV1 tree back into a set (unknown shapes are skipped).
pub fn from_fields_v1(tree: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = tree {
        collect(m, &mut Vec::new(), &mut out);
    }
    out
}

fn collect(node: &Map<String, Value>, path: &mut FieldPath, out: &mut FieldSet) {
    if !path.is_empty() && (node.is_empty() || node.contains_key(".")) {
        out.insert(path.clone());
    }
    for (k, v) in node {
        if k == "." {
            continue;
        }
        if let Value::Object(child) = v {
            path.push(k.clone());
            collect(child, path, out);
            path.pop();
        }
    }
}

/// A path as the API server prints it in conflicts, e.g. `.spec.containers[name="app"].image`.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(name) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(name);
        } else if let Some(key) = seg.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(key)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = seg.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// True when `prefix` is `path` or one of its ancestors.
pub fn is_prefix(prefix: &[String], path: &[String]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_shape_matches_the_api_server() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "app", "image": "i"}]}});
        let set = fields_of(&Rules::Builtin("Pod"), &obj);
        assert_eq!(
            to_fields_v1(&set),
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn remove_and_lookup_list_items() {
        let mut obj = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "x"}]},
                             "metadata": {"finalizers": ["f1", "f2"]}});
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            value_at(
                &obj,
                &p(&["f:spec", "f:containers", "k:{\"name\":\"b\"}", "f:image"])
            ),
            Some(&json!("x"))
        );
        remove_at(
            &mut obj,
            &p(&["f:spec", "f:containers", "k:{\"name\":\"a\"}"]),
        );
        remove_at(&mut obj, &p(&["f:metadata", "f:finalizers", "v:\"f1\""]));
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "b", "image": "x"}]}, "metadata": {"finalizers": ["f2"]}})
        );
        assert_eq!(
            display(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"b\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"b\"].image"
        );
    }
}
