//! `metadata.managedFields` entries: reading and writing them in the API server's
//! format, and recording which fields an `Update` (create, put, non-apply patch)
//! changed.

use serde_json::{Map, Value, json};

use super::fieldset::{FieldSet, fields_of, from_fields_v1, to_fields_v1, value_at};
use super::merge_keys::Rules;

/// One managedFields entry, its field set parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    pub fn same_owner(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), to_fields_v1(&self.fields));
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }
}

/// The entries stored in `obj`; malformed entries are skipped.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(Entry {
                manager: s("manager").unwrap_or_default(),
                operation: s("operation")?,
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time"),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

/// Stores `entries` in `obj`, dropping empty ones (and the field when none remain).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// RFC 3339 with seconds, as managedFields times are.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sets the entry of (manager, operation, subresource) to `fields`, touching its
/// time only when its set changes.
pub fn set_entry(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
    api_version: &str,
    fields: FieldSet,
) {
    match entries
        .iter_mut()
        .find(|e| e.same_owner(manager, operation, subresource))
    {
        Some(e) => {
            if e.fields != fields || e.api_version != api_version {
                e.fields = fields;
                e.api_version = api_version.to_string();
                e.time = Some(now());
            }
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: Some(now()),
            subresource: subresource.map(str::to_string),
            fields,
        }),
    }
}

/// See [`super::record_update_for`].
pub fn record_update(
    rules: &Rules,
    current: Option<&Value>,
    next: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let next_fields = fields_of(rules, next);
    let changed: FieldSet = next_fields
        .iter()
        .filter(|p| {
            let before = current.and_then(|c| value_at(c, p));
            // A list item changes hands only when it appears; edits inside it are
            // tracked by its own fields.
            if p.last().is_some_and(|s| !s.starts_with("f:")) {
                before.is_none()
            } else {
                before != value_at(next, p)
            }
        })
        .cloned()
        .collect();
    // As on the API server: a request without managedFields (or with `[]`) keeps
    // the stored ones; a non-empty list replaces them, so `[{}]` clears them.
    let sent_some = next
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty());
    let mut entries = if sent_some {
        read_entries(next)
    } else {
        current.map(read_entries).unwrap_or_default()
    };
    for e in entries.iter_mut() {
        // Others lose what this update changed; everyone loses what no longer exists.
        if !e.same_owner(manager, "Update", subresource) {
            e.fields.retain(|p| !changed.contains(p));
        }
        e.fields.retain(|p| value_at(next, p).is_some());
    }
    let mut mine = entries
        .iter()
        .find(|e| e.same_owner(manager, "Update", subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    mine.extend(changed);
    let api_version = next
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !mine.is_empty() {
        set_entry(
            &mut entries,
            manager,
            "Update",
            subresource,
            &api_version,
            mine,
        );
    }
    write_entries(next, &entries);
}
