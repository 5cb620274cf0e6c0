//! Strategic merge patch of built-in kinds, as kubectl (`apply`, `patch`, `scale`,
//! `edit`) and controllers send it: maps merge recursively, `null` deletes, lists
//! with a merge key merge by key, other lists are replaced, plus the directives
//! `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`, `$setElementOrder/<f>`.

use serde_json::{Map, Value};

use super::PatchError;
use super::merge_keys::{ListKind, Rules};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge `patch` to `original` for the built-in `kind`.
pub fn strategic_merge(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    let orig = original.as_object().cloned().unwrap_or_default();
    let rules = Rules::Builtin(kind);
    match merge_map(&rules, &mut Vec::new(), orig, patch)? {
        Some(m) => Ok(Value::Object(m)),
        None => Err(PatchError::Invalid(
            "$patch: delete of the whole object is not allowed".into(),
        )),
    }
}

/// Merges `patch` into `orig`; None means the map is deleted (`$patch: delete`).
fn merge_map(
    rules: &Rules,
    path: &mut Vec<String>,
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(PATCH) {
        Some(Value::String(d)) if d == "replace" => {
            // Replace: the patch (minus directives) is the new map.
            return merge_map(rules, path, Map::new(), &without(patch, PATCH));
        }
        // The API server empties a map on `$patch: delete` (it keeps the key);
        // list items with it are removed by merge_list before getting here.
        Some(Value::String(d)) if d == "delete" && path.is_empty() => return Ok(None),
        Some(Value::String(d)) if d == "delete" => return Ok(Some(Map::new())),
        Some(Value::String(d)) if d == "merge" => {}
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "Unknown patch type: {other} in map at {}",
                dotted(path)
            )));
        }
        None => {}
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys = retain.as_array().ok_or_else(|| {
            PatchError::Invalid(format!("$retainKeys must be a list at {}", dotted(path)))
        })?;
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    // $setElementOrder lists, each with the field's list before the patch, taken
    // up front: the directive may come after its field in the patch.
    let mut orders: Vec<(&str, &Vec<Value>, Vec<Value>)> = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER) {
            let order = value.as_array().ok_or_else(|| {
                PatchError::Invalid(format!("{key} must be a list at {}", dotted(path)))
            })?;
            let before = match orig.get(field) {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            orders.push((field, order, before));
        }
    }
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE) {
            let drop = value.as_array().ok_or_else(|| {
                PatchError::Invalid(format!("{key} must be a list at {}", dotted(path)))
            })?;
            if let Some(Value::Array(items)) = orig.get_mut(field) {
                items.retain(|item| !drop.contains(item));
            }
            continue;
        }
        if key.starts_with(SET_ORDER) {
            continue;
        }
        if value.is_null() {
            orig.shift_remove(key);
            continue;
        }
        path.push(key.clone());
        let merged = merge_value(rules, path, orig.get_mut(key).map(std::mem::take), value)?;
        path.pop();
        match merged {
            // In place, so that the map keeps its key order.
            Some(v) => {
                orig.insert(key.clone(), v);
            }
            None => {
                orig.shift_remove(key);
            }
        }
    }
    for (field, order, before) in orders {
        path.push(field.to_string());
        let kind = rules.list_kind(&as_strs(path));
        path.pop();
        if let Some(Value::Array(items)) = orig.get_mut(field) {
            let merged = std::mem::take(items);
            *items = normalize_order(merged, order, &before, &kind);
        }
    }
    Ok(Some(orig))
}

/// A list with a merge key, as the API server's `mergeSlice`: items carrying
/// `$patch` are special (`delete` removes the live item with that key, `replace`
/// makes the other patch items the whole list), the rest merge by key, and the
/// result is ordered by [`normalize_order`].
fn merge_keyed_list(
    rules: &Rules,
    path: &mut Vec<String>,
    mut out: Vec<Value>,
    patch: &[Value],
    keys: &[String],
) -> Result<Vec<Value>, PatchError> {
    let mut replace = false;
    let mut plain: Vec<&Map<String, Value>> = Vec::new();
    for item in patch {
        let Some(pm) = item.as_object() else {
            return Err(PatchError::Invalid(format!(
                "list {} with merge key {} has a non-map item: {item}",
                dotted(path),
                keys.join(",")
            )));
        };
        match pm.get(PATCH) {
            None => {
                if !keys.iter().any(|k| pm.contains_key(k)) {
                    return Err(no_merge_key(item, keys));
                }
                plain.push(pm);
            }
            Some(Value::String(d)) if d == "delete" => {
                if !keys.iter().any(|k| pm.contains_key(k)) {
                    return Err(no_merge_key(item, keys));
                }
                out.retain(|o| !same_key(o, pm, keys));
            }
            Some(Value::String(d)) if d == "replace" => replace = true,
            Some(Value::String(d)) if d == "merge" => {
                return Err(PatchError::Invalid(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            Some(other) => {
                return Err(PatchError::Invalid(format!(
                    "Unknown patch type: {other} in list {}",
                    dotted(path)
                )));
            }
        }
    }
    if replace {
        let mut replaced = Vec::new();
        for pm in plain {
            if let Some(m) = merge_map(rules, path, Map::new(), pm)? {
                replaced.push(Value::Object(m));
            }
        }
        return Ok(replaced);
    }
    let before = out.clone();
    for pm in &plain {
        let merged = match out.iter().position(|o| same_key(o, pm, keys)) {
            Some(i) => {
                let o = match std::mem::take(&mut out[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                (Some(i), merge_map(rules, path, o, pm)?)
            }
            None => (None, merge_map(rules, path, Map::new(), pm)?),
        };
        match merged {
            (Some(i), Some(m)) => out[i] = Value::Object(m),
            (Some(i), None) => {
                out.remove(i);
            }
            (None, Some(m)) => out.push(Value::Object(m)),
            (None, None) => {}
        }
    }
    let order: Vec<Value> = plain
        .into_iter()
        .map(|m| Value::Object(m.clone()))
        .collect();
    Ok(normalize_order(
        out,
        &order,
        &before,
        &ListKind::Map(keys.to_vec()),
    ))
}

fn no_merge_key(item: &Value, keys: &[String]) -> PatchError {
    PatchError::Invalid(format!(
        "map: {item} does not contain declared merge key: {}",
        keys.join(",")
    ))
}

fn merge_value(
    rules: &Rules,
    path: &mut Vec<String>,
    orig: Option<Value>,
    patch: &Value,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Object(p) => {
            let o = match orig {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            Ok(merge_map(rules, path, o, p)?.map(Value::Object))
        }
        Value::Array(p) => {
            let o = match orig {
                Some(Value::Array(o)) => o,
                _ => Vec::new(),
            };
            merge_list(rules, path, o, p).map(|l| Some(Value::Array(l)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    rules: &Rules,
    path: &mut Vec<String>,
    orig: Vec<Value>,
    patch: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let kind = rules.list_kind(&as_strs(path));
    if let ListKind::Map(keys) = &kind {
        return merge_keyed_list(rules, path, orig, patch, keys);
    }
    // `{"$patch": "replace"}` as a list item replaces the whole list.
    let replace = patch.iter().any(|item| is_directive(item, "replace"));
    let orig = if replace { Vec::new() } else { orig };
    let before = orig.clone();
    let patch: Vec<&Value> = patch
        .iter()
        .filter(|item| !is_directive(item, "replace"))
        .collect();
    match kind {
        ListKind::Map(_) => Ok(orig),
        ListKind::Set => {
            let mut out = orig;
            for item in &patch {
                if !out.contains(item) {
                    out.push((*item).clone());
                }
            }
            if replace {
                return Ok(out);
            }
            let order: Vec<Value> = patch.iter().map(|i| (*i).clone()).collect();
            Ok(normalize_order(out, &order, &before, &ListKind::Set))
        }
        ListKind::Atomic => {
            // Replaced, but directives inside items must never be stored.
            let mut out = Vec::new();
            for item in patch {
                match item {
                    Value::Object(m) => {
                        if let Some(m) = merge_map(rules, path, Map::new(), m)? {
                            out.push(Value::Object(m));
                        }
                    }
                    other => out.push(other.clone()),
                }
            }
            Ok(out)
        }
    }
}

/// Orders a merged list as the API server does (`normalizeElementOrder`): items
/// named by `order` (the patch's items, or its `$setElementOrder`) in that order,
/// items only on the server in their old order, and the two interleaved so that a
/// server-only item stays before a patch item it preceded in `before`.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    before: &[Value],
    kind: &ListKind,
) -> Vec<Value> {
    let pos = |list: &[Value], item: &Value| -> Option<usize> {
        list.iter().position(|o| match (kind, o.as_object()) {
            (ListKind::Map(keys), Some(om)) => same_key(item, om, keys),
            _ => o == item,
        })
    };
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|i| pos(order, i).is_some());
    patch_items.sort_by_key(|i| pos(order, i));
    server_only.sort_by_key(|i| pos(before, i).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
            (Some(l), Some(r)) => {
                matches!((pos(before, l), pos(before, r)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn same_key(item: &Value, patch_item: &Map<String, Value>, keys: &[String]) -> bool {
    let Some(im) = item.as_object() else {
        return false;
    };
    keys.iter()
        .filter(|k| patch_item.contains_key(*k))
        .all(|k| im.get(k) == patch_item.get(k))
        && keys.iter().any(|k| patch_item.contains_key(k))
}

fn is_directive(item: &Value, directive: &str) -> bool {
    item.as_object()
        .is_some_and(|m| m.len() == 1 && m.get(PATCH).and_then(Value::as_str) == Some(directive))
}

fn without(m: &Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut m = m.clone();
    m.remove(key);
    m
}

fn as_strs(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        "the root".into()
    } else {
        path.join(".")
    }
}
