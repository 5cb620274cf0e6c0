//! Value validation of a pruned, defaulted object against its schema, with the
//! API server's causes.

use serde_json::{Map, Value};

use super::FieldError;
use super::errors::{
    duplicate, invalid, not_supported, required, too_long, too_many, type_invalid,
};
use super::format::format_ok;
use super::is_resource;
use super::path::{child, index, json_eq, render_number, type_name};

/// Validates `value` at `path` against `schema`, appending causes to `out`.
pub fn validate(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if s.get("nullable").and_then(Value::as_bool) != Some(true)
            && let Some(t) = s.get("type").and_then(Value::as_str)
        {
            out.push(type_invalid(path, "null", t));
        }
        return;
    }
    if !type_ok(s, value, path, out) {
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_eq(a, value))
    {
        out.push(not_supported(path, value, allowed));
    }
    match value {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                number(s, x, value, path, out);
            }
        }
        Value::String(text) => string(s, text, value, path, out),
        Value::Array(items) => array(s, items, value, path, out),
        Value::Object(map) => object(schema, s, map, value, path, out),
        _ => {}
    }
    combinators(s, value, path, out);
}

/// Checks `type` (and int-or-string); false stops further checks of this node.
fn type_ok(s: &Map<String, Value>, value: &Value, path: &str, out: &mut Vec<FieldError>) -> bool {
    let actual = type_name(value);
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        if is_integer(value) || value.is_string() {
            return true;
        }
        out.push(type_invalid(path, actual, "integer,string"));
        return false;
    }
    let Some(want) = s.get("type").and_then(Value::as_str) else {
        return true;
    };
    let ok = match want {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push(type_invalid(path, actual, want));
    }
    ok
}

/// JSON numbers without a fraction count as integers (`2.0` is an integer).
fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn number(s: &Map<String, Value>, x: f64, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let flag = |k: &str| s.get(k).and_then(Value::as_bool) == Some(true);
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let (bad, words) = if flag("exclusiveMinimum") {
            (x <= min, "greater than")
        } else {
            (x < min, "greater than or equal to")
        };
        if bad {
            let detail = format!("{path} in body should be {words} {}", render_number(min));
            out.push(invalid(path, value, &detail));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let (bad, words) = if flag("exclusiveMaximum") {
            (x >= max, "less than")
        } else {
            (x > max, "less than or equal to")
        };
        if bad {
            let detail = format!("{path} in body should be {words} {}", render_number(max));
            out.push(invalid(path, value, &detail));
        }
    }
    if let Some(m) = s
        .get("multipleOf")
        .and_then(Value::as_f64)
        .filter(|m| *m > 0.0)
    {
        let q = x / m;
        if (q - q.round()).abs() > 1e-9 {
            let detail = format!(
                "{path} in body should be a multiple of {}",
                render_number(m)
            );
            out.push(invalid(path, value, &detail));
        }
    }
    if let Some(f) = s.get("format").and_then(Value::as_str)
        && !format_ok(f, value)
    {
        out.push(invalid(
            path,
            value,
            &format!("{path} in body must be of type {f}: \"{x}\""),
        ));
    }
}

fn string(
    s: &Map<String, Value>,
    text: &str,
    value: &Value,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    let chars = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        out.push(too_long(path, max));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        let detail = format!("{path} in body should be at least {min} chars long");
        out.push(invalid(path, value, &detail));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        // A pattern the regex crate cannot compile is reported by check_structural.
        if let Ok(re) = regex::Regex::new(p)
            && !re.is_match(text)
        {
            out.push(invalid(
                path,
                value,
                &format!("{path} in body should match '{p}'"),
            ));
        }
    }
    if let Some(f) = s.get("format").and_then(Value::as_str)
        && !format_ok(f, value)
    {
        out.push(invalid(
            path,
            value,
            &format!("{path} in body must be of type {f}: {text:?}"),
        ));
    }
}

fn array(
    s: &Map<String, Value>,
    items: &[Value],
    value: &Value,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        let detail = format!("{path} in body should have at least {min} items");
        out.push(invalid(path, value, &detail));
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        out.push(too_many(path, items.len(), max));
    }
    if s.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)));
        if dup {
            let detail = format!("{path} in body shouldn't contain duplicates");
            out.push(invalid(path, value, &detail));
        }
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| json_eq(a, b)) {
                    out.push(duplicate(&index(path, i), a));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| -> Value {
                let mut m = Map::new();
                for k in &keys {
                    if let Some(v) = item.get(*k) {
                        m.insert((*k).to_string(), v.clone());
                    }
                }
                Value::Object(m)
            };
            let item_keys: Vec<Value> = items.iter().map(key_of).collect();
            for (i, k) in item_keys.iter().enumerate() {
                if item_keys[..i].iter().any(|b| json_eq(k, b)) {
                    out.push(duplicate(&index(path, i), k));
                }
            }
        }
        _ => {}
    }
    if let Some(item_schema) = s.get("items").filter(|i| i.is_object()) {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &index(path, i), out);
        }
    }
}

fn object(
    schema: &Value,
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    value: &Value,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    let resource = is_resource(schema, path);
    if resource && !path.is_empty() {
        // An embedded resource names its type, as the server requires.
        for k in ["apiVersion", "kind"] {
            if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                out.push(FieldError {
                    message: "Required value: must not be empty".into(),
                    ..required(&child(path, k))
                });
            }
        }
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                out.push(required(&child(path, r)));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (key, v) in map {
        if resource && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match (
            props.and_then(|p| p.get(key)),
            s.get("additionalProperties"),
        ) {
            (Some(sub), _) => validate(sub, v, &child(path, key), out),
            (None, Some(ap)) if ap.is_object() => validate(ap, v, &child(path, key), out),
            (None, Some(Value::Bool(false))) => {
                let field = child(path, key);
                let detail = format!("{field} in body is a forbidden property");
                out.push(invalid(&field, v, &detail));
            }
            _ => {}
        }
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < min
    {
        let detail = format!("{path} in body should have at least {min} properties");
        out.push(invalid(path, value, &detail));
    }
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        out.push(too_many(path, map.len(), max));
    }
}

/// `allOf`/`anyOf`/`oneOf`/`not`: value validations combined.
fn combinators(s: &Map<String, Value>, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let passes = |sub: &Value| {
        let mut errs = Vec::new();
        validate(sub, value, path, &mut errs);
        errs.is_empty()
    };
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            validate(sub, value, path, out);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(passes)
    {
        let detail = format!("{path} in body must validate at least one schema (anyOf)");
        out.push(invalid(path, value, &detail));
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        let detail = format!("{path} in body must validate one and only one schema (oneOf)");
        out.push(invalid(path, value, &detail));
    }
    if let Some(not) = s.get("not")
        && passes(not)
    {
        let detail = format!("{path} in body must not validate the schema provided");
        out.push(invalid(path, value, &detail));
    }
}
