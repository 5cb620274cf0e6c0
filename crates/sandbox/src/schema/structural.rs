//! The main rules of structural schemas that a CRD's `openAPIV3Schema` must obey,
//! with paths relative to the schema (the server prefixes
//! `spec.versions[i].schema.openAPIV3Schema`).

use serde_json::Value;

use super::FieldError;
use super::errors::{forbidden, invalid, required, unsupported_keyword};

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];

pub fn check_structural(schema: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        None => out.push(FieldError {
            message: "Required value: must not be empty at the root".into(),
            ..required("type")
        }),
        Some("object") => {}
        Some(other) => out.push(invalid(
            "type",
            &Value::from(other),
            "must be object at the root",
        )),
    }
    if let Some(meta) = schema
        .pointer("/properties/metadata/properties")
        .and_then(Value::as_object)
        && meta.keys().any(|k| k != "name" && k != "generateName")
    {
        out.push(forbidden(
                "properties[metadata]",
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
    }
    node(schema, "", &mut out);
    out
}

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}.{seg}")
    }
}

fn node(s: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else {
        out.push(invalid(
            if path.is_empty() { "<root>" } else { path },
            s,
            "must be a schema object",
        ));
        return;
    };
    let flag = |k: &str| m.get(k).and_then(Value::as_bool) == Some(true);
    let ty = m.get("type").and_then(Value::as_str);
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    if let Some(t) = m.get("type") {
        match t.as_str() {
            Some(t) if TYPES.contains(&t) => {}
            _ => out.push(unsupported_keyword(&join(path, "type"), t, &TYPES)),
        }
    }
    if int_or_string && ty.is_some() {
        out.push(invalid(
            &join(path, "type"),
            m.get("type").unwrap_or(&Value::Null),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    if ty.is_none() && !int_or_string && !preserve && !path.is_empty() {
        let what = if m.contains_key("properties") || m.contains_key("additionalProperties") {
            Some("must not be empty for specified object fields")
        } else if m.contains_key("items") {
            Some("must not be empty for specified array items")
        } else if !is_value_validation(path) {
            Some("must not be empty for specified fields")
        } else {
            None
        };
        if let Some(what) = what {
            out.push(FieldError {
                message: format!("Required value: {what}"),
                ..required(&join(path, "type"))
            });
        }
    }
    if m.contains_key("properties")
        && m.get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
    {
        out.push(forbidden(
            &join(path, "additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if ty == Some("array") && !m.contains_key("items") {
        out.push(required(&join(path, "items")));
    }
    if m.contains_key("$ref") {
        out.push(forbidden(&join(path, "$ref"), "$ref is not supported"));
    }
    if flag("uniqueItems") {
        out.push(forbidden(
            &join(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(p) = m.get("pattern") {
        let ok = p.as_str().is_some_and(|p| regex::Regex::new(p).is_ok());
        if !ok {
            out.push(invalid(
                &join(path, "pattern"),
                p,
                "must be a valid regular expression",
            ));
        }
    }
    list_type(m, path, out);
    if let Some(d) = m.get("default") {
        check_default(s, d, &join(path, "default"), out);
    }
    out.extend(super::cel::compile_errors(m, path));
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            node(sub, &join(path, &format!("properties[{k}]")), out);
        }
    }
    if let Some(items) = m.get("items") {
        if items.is_array() {
            out.push(forbidden(
                &join(path, "items"),
                "items must be a schema object and not an array",
            ));
        } else {
            node(items, &join(path, "items"), out);
        }
    }
    if let Some(ap) = m.get("additionalProperties").filter(|a| a.is_object()) {
        node(ap, &join(path, "additionalProperties"), out);
    }
    for comb in ["allOf", "anyOf", "oneOf"] {
        if let Some(subs) = m.get(comb).and_then(Value::as_array) {
            for (i, sub) in subs.iter().enumerate() {
                node(sub, &join(path, &format!("{comb}[{i}]")), out);
            }
        }
    }
    if let Some(not) = m.get("not") {
        node(not, &join(path, "not"), out);
    }
}

/// Nodes inside allOf/anyOf/oneOf/not only add value validations; they need no type.
fn is_value_validation(path: &str) -> bool {
    path.split('.').any(|seg| {
        seg == "not"
            || seg.starts_with("allOf[")
            || seg.starts_with("anyOf[")
            || seg.starts_with("oneOf[")
    })
}

fn list_type(m: &serde_json::Map<String, Value>, path: &str, out: &mut Vec<FieldError>) {
    let lt = m.get("x-kubernetes-list-type");
    let keys = m.get("x-kubernetes-list-map-keys");
    if let Some(lt) = lt {
        match lt.as_str() {
            Some("atomic" | "set" | "map") => {}
            _ => out.push(unsupported_keyword(
                &join(path, "x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            )),
        }
    }
    let is_map = lt.and_then(Value::as_str) == Some("map");
    let has_keys = keys
        .and_then(Value::as_array)
        .is_some_and(|k| !k.is_empty());
    if is_map && !has_keys {
        out.push(FieldError {
            message: "Required value: must not be empty if x-kubernetes-list-type is map".into(),
            ..required(&join(path, "x-kubernetes-list-map-keys"))
        });
    }
    if !is_map && keys.is_some() {
        out.push(forbidden(
            &join(path, "x-kubernetes-list-map-keys"),
            "must not be set if x-kubernetes-list-type is not map",
        ));
    }
}

/// A default must survive pruning unchanged and validate against its own node,
/// as the server requires of CRD defaults.
fn check_default(schema: &Value, default: &Value, path: &str, out: &mut Vec<FieldError>) {
    let mut pruned_value = default.clone();
    let mut pruned = Vec::new();
    super::prune::prune(schema, &mut pruned_value, path, &mut pruned);
    for p in pruned {
        out.push(invalid(&p, &Value::Null, "must not have unknown fields"));
    }
    super::validate::validate(schema, default, path, out);
}
