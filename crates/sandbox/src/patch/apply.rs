//! Server-side apply: merges an apply configuration into the live object with field
//! ownership. A simplified structured-merge-diff: leaf fields and associative list
//! items are tracked per manager; lists merge by the rules of [`Rules`].

use serde_json::{Map, Value, json};

use super::fieldset::{
    FieldPath, FieldSet, display, fields_of, is_prefix, item_key, remove_at, value_at,
};
use super::managed_fields::{Entry, now, read_entries, set_entry, write_entries};
use super::merge_keys::{ListKind, Rules};
use super::{OwnershipConflict, PatchError};

/// Metadata the server owns; an apply configuration never sets them.
const SERVER_METADATA: [&str; 7] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
];

pub fn server_side_apply(
    kind: &str,
    schema: Option<&Value>,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
) -> Result<Value, PatchError> {
    let api_version = check_config(kind, applied)?;
    if manager.is_empty() {
        return Err(PatchError::Invalid(
            "PATCH, application/apply-patch+yaml requires fieldManager parameter".into(),
        ));
    }
    let rules = match schema {
        Some(s) => Rules::Schema(s),
        None => Rules::Builtin(kind),
    };
    let config = effective_config(applied, subresource);
    let live = current.cloned().unwrap_or_else(|| json!({}));
    let config_set = fields_of(&rules, &config);
    let mut entries: Vec<Entry> = current.map(read_entries).unwrap_or_default();
    if let Some(cur) = current
        && entries.is_empty()
    {
        // Like the API server: an object nobody manages yet is first attributed
        // to "before-first-apply", so an apply that changes its values conflicts.
        let fields = fields_of(&rules, cur);
        if !fields.is_empty() {
            entries.push(Entry {
                manager: "before-first-apply".into(),
                operation: "Update".into(),
                api_version: cur
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(&api_version)
                    .to_string(),
                time: Some(now()),
                subresource: None,
                fields,
            });
        }
    }
    let prev: FieldSet = entries
        .iter()
        .find(|e| e.same_owner(manager, "Apply", subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut merged = merge(&rules, &mut Vec::new(), live.clone(), &config);

    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.same_owner(manager, "Apply", subresource) {
            continue;
        }
        for p in e.fields.intersection(&config_set) {
            // List items are identified by their key, so owning one is no conflict;
            // only a leaf whose value would change is.
            let is_item = p.last().is_some_and(|s| !s.starts_with("f:"));
            if !is_item && value_at(&live, p) != value_at(&merged, p) {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(PatchError::Conflict(
                conflicts
                    .iter()
                    .map(|(i, p)| OwnershipConflict {
                        manager: entries[*i].manager.clone(),
                        field: display(p),
                    })
                    .collect(),
            ));
        }
        // Forced: the conflicting fields change hands; agreeing co-owners stay.
        for (i, p) in &conflicts {
            entries[*i].fields.remove(p);
        }
    }

    // Fields this manager applied before and no longer does go away unless
    // someone else still owns them (or something below them).
    let mut removed: Vec<&FieldPath> = prev.difference(&config_set).collect();
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in removed {
        if config_set.iter().any(|c| is_prefix(p, c)) {
            continue;
        }
        let owned_elsewhere = entries.iter().any(|e| {
            !e.same_owner(manager, "Apply", subresource) && e.fields.iter().any(|f| is_prefix(p, f))
        });
        if !owned_elsewhere {
            remove_at(&mut merged, p);
            prune_emptied_parents(&mut merged, p, &config_set);
        }
    }

    set_entry(
        &mut entries,
        manager,
        "Apply",
        subresource,
        &api_version,
        config_set,
    );
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(&merged, p).is_some());
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// After `removed` went, its parent maps that are left empty and that the
/// configuration no longer names go too. The real field sets also record the
/// maps a manager applied (`f:rollingUpdate: {.: {}}`), so a manager that
/// stops applying `strategy.rollingUpdate` removes the map itself, not only
/// its fields (a Deployment switching to `Recreate` must not keep an empty
/// `rollingUpdate`); this store records leaves only, hence the walk up.
fn prune_emptied_parents(merged: &mut Value, removed: &[String], config: &FieldSet) {
    let mut parent = removed;
    while let Some((_, up)) = parent.split_last() {
        parent = up;
        if parent.is_empty() || !parent.last().is_some_and(|s| s.starts_with("f:")) {
            return;
        }
        let empty_map = value_at(merged, parent)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty);
        if !empty_map || config.iter().any(|c| is_prefix(parent, c)) {
            return;
        }
        remove_at(merged, parent);
    }
}

/// Checks the fields every apply configuration needs; returns its apiVersion.
fn check_config(kind: &str, applied: &Value) -> Result<String, PatchError> {
    let Some(obj) = applied.as_object() else {
        return Err(PatchError::Invalid(
            "apply configuration must be an object".into(),
        ));
    };
    let field = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let api_version = field("apiVersion").ok_or_else(|| {
        PatchError::Invalid(
            "invalid object type: apiVersion must be set in an apply configuration".into(),
        )
    })?;
    let applied_kind = field("kind").ok_or_else(|| {
        PatchError::Invalid(
            "invalid object type: kind must be set in an apply configuration".into(),
        )
    })?;
    if applied_kind != kind {
        return Err(PatchError::Invalid(format!(
            "the kind of the apply configuration ({applied_kind}) does not match the resource's kind ({kind})"
        )));
    }
    let has_name = applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        return Err(PatchError::Invalid(
            "metadata.name: Required value: name is required in an apply configuration".into(),
        ));
    }
    Ok(api_version.to_string())
}

/// The part of the configuration the applier may set: server-owned metadata and
/// nulls dropped; `status` only through the status subresource, and there only it.
fn effective_config(applied: &Value, subresource: Option<&str>) -> Value {
    let mut config = strip_nulls(applied);
    let Some(obj) = config.as_object_mut() else {
        return config;
    };
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        for k in SERVER_METADATA {
            meta.remove(k);
        }
    }
    if subresource == Some("status") {
        let mut only = Map::new();
        for k in ["apiVersion", "kind"] {
            if let Some(v) = obj.get(k) {
                only.insert(k.into(), v.clone());
            }
        }
        let mut meta = Map::new();
        for k in ["name", "namespace"] {
            if let Some(v) = obj.get("metadata").and_then(|m| m.get(k)) {
                meta.insert(k.into(), v.clone());
            }
        }
        only.insert("metadata".into(), Value::Object(meta));
        if let Some(s) = obj.get("status") {
            only.insert("status".into(), s.clone());
        }
        return Value::Object(only);
    }
    obj.remove("status");
    config
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges `config` into `live`: maps field by field, lists by their kind.
fn merge<'p>(rules: &Rules, path: &mut Vec<&'p str>, live: Value, config: &'p Value) -> Value {
    match (live, config) {
        (Value::Object(_), Value::Object(_)) if rules.map_is_atomic(path) => config.clone(),
        (Value::Object(mut l), Value::Object(c)) => {
            for (k, v) in c {
                path.push(k);
                // Taken in place so that the live object keeps its key order.
                let old = l.get_mut(k).map(std::mem::take).unwrap_or(Value::Null);
                let merged = merge(rules, path, old, v);
                path.pop();
                l.insert(k.clone(), merged);
            }
            Value::Object(l)
        }
        (Value::Array(l), Value::Array(c)) => match rules.list_kind(path) {
            ListKind::Map(keys) => merge_assoc(rules, path, l, c, &keys),
            ListKind::Set => {
                let mut out = l;
                for item in c {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListKind::Atomic => config.clone(),
        },
        (_, c) => c.clone(),
    }
}

fn merge_assoc<'p>(
    rules: &Rules,
    path: &mut Vec<&'p str>,
    live: Vec<Value>,
    config: &'p [Value],
    keys: &[String],
) -> Value {
    let Some(config_keys) = config
        .iter()
        .map(|i| item_key(i, keys))
        .collect::<Option<Vec<String>>>()
    else {
        // Items without their keys cannot be matched: treat the list as atomic.
        return Value::Array(config.to_vec());
    };
    // The order structured-merge-diff produces: live-only items stay where they
    // are, items of the configuration come in its order, shared ones merged.
    let live_keys: Vec<Option<String>> = live.iter().map(|l| item_key(l, keys)).collect();
    let in_config = |k: &Option<String>| k.as_ref().is_some_and(|k| config_keys.contains(k));
    let mut shared = config_keys
        .iter()
        .filter(|k| live_keys.iter().any(|l| l.as_ref() == Some(*k)))
        .peekable();
    let mut live: Vec<Option<Value>> = live.into_iter().map(Some).collect();
    let take_live = |k: &String, live: &mut Vec<Option<Value>>| -> Value {
        live_keys
            .iter()
            .position(|l| l.as_ref() == Some(k))
            .and_then(|i| live[i].take())
            .unwrap_or(Value::Null)
    };
    let mut done: Vec<&String> = Vec::new();
    let mut out = Vec::with_capacity(live.len() + config.len());
    let (mut li, mut ri) = (0, 0);
    while li < live_keys.len() || ri < config.len() {
        if li < live_keys.len() && ri < config.len() {
            if live_keys[li].as_ref() == Some(&config_keys[ri]) {
                let old = take_live(&config_keys[ri], &mut live);
                out.push(merge(rules, path, old, &config[ri]));
                done.push(&config_keys[ri]);
                if shared.peek() == Some(&&config_keys[ri]) {
                    shared.next();
                }
                li += 1;
                ri += 1;
                continue;
            }
            let waiting_for_other = shared
                .peek()
                .is_some_and(|s| live_keys[li].as_ref() != Some(*s));
            if in_config(&live_keys[li]) && waiting_for_other {
                li += 1;
                continue;
            }
        }
        if li < live_keys.len() {
            if !in_config(&live_keys[li]) {
                if let Some(v) = live[li].take() {
                    out.push(v);
                }
                li += 1;
                continue;
            }
            if live_keys[li].as_ref().is_some_and(|k| done.contains(&k)) || ri >= config.len() {
                li += 1;
                continue;
            }
        }
        if ri < config.len() {
            let old = take_live(&config_keys[ri], &mut live);
            out.push(merge(rules, path, old, &config[ri]));
            done.push(&config_keys[ri]);
            if shared.peek() == Some(&&config_keys[ri]) {
                shared.next();
            }
            ri += 1;
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Helm switching a Deployment from RollingUpdate to Recreate: the map it
    /// no longer applies goes with its fields; maps still applied stay.
    #[test]
    fn a_map_no_longer_applied_goes_with_its_fields() {
        let deployment = |strategy: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
                   "spec": {"replicas": 2, "strategy": strategy}})
        };
        let first = deployment(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        );
        let live =
            server_side_apply("Deployment", None, None, &first, "helm", false, None).unwrap();
        let mut second = deployment(json!({"type": "Recreate"}));
        second["metadata"].as_object_mut().unwrap().remove("labels");
        let out = server_side_apply(
            "Deployment",
            None,
            Some(&live),
            &second,
            "helm",
            false,
            None,
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert!(out["metadata"].get("labels").is_none(), "{out}");
        assert_eq!(out["spec"]["replicas"], 2);
    }
}
