//! `x-kubernetes-validations`: CEL rules evaluated with the cel-interpreter crate.
//! `self` is the value at the rule's schema node; transition rules (those that
//! mention `oldSelf`) run only on updates where the old value at that node exists
//! (object properties, `additionalProperties` values and `map` list items by key
//! correlate; other list items do not, as on a real server).
//!
//! Differences from the real server (cel-interpreter implements standard CEL, not
//! the Kubernetes libraries): no Kubernetes extension functions (`quantity`,
//! `url`, `ip`, `cidr`, `isSorted`, `sum`, list `indexOf`, `format`, regex `find`);
//! strings with `format: date-time`/`duration` stay strings (the server types them
//! as timestamp/duration); `optionalOldSelf` is ignored; no cost budget; property
//! names that are CEL keywords are not escaped; `string()` does not take bools.
//! Rules run only when the object passed the schema's other validations.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::{Context, Program, Value as Cel};
use serde_json::Value;

use super::FieldError;
use super::errors::{forbidden, required};
use super::path::{child, index, json_eq, render, type_name};

/// Evaluates all rules below `schema` for `value` (and the correlated `old`).
pub fn check_rules(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            check_rule(schema, rule, value, old, path, out);
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                let sub = props.and_then(|p| p.get(key)).or(additional);
                if let Some(sub) = sub {
                    let old_v = old.and_then(|o| o.get(key));
                    check_rules(sub, v, old_v, &child(path, key), out);
                }
            }
        }
        Value::Array(items) => {
            let Some(sub) = schema.get("items").filter(|i| i.is_object()) else {
                return;
            };
            let keys: Option<Vec<&str>> =
                (schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map")).then(
                    || {
                        schema
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|k| k.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default()
                    },
                );
            for (i, item) in items.iter().enumerate() {
                let old_item = match (&keys, old.and_then(Value::as_array)) {
                    (Some(keys), Some(olds)) => olds.iter().find(|o| {
                        keys.iter().all(|k| match (o.get(*k), item.get(*k)) {
                            (Some(a), Some(b)) => json_eq(a, b),
                            _ => false,
                        })
                    }),
                    _ => None,
                };
                check_rules(sub, item, old_item, &index(path, i), out);
            }
        }
        _ => {}
    }
}

fn check_rule(
    schema: &Value,
    rule: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    let Some(source) = rule.get("rule").and_then(Value::as_str) else {
        return;
    };
    let shown_type = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_else(|| type_name(value));
    let field = match rule.get("fieldPath").and_then(Value::as_str) {
        Some(fp) if !fp.is_empty() => field_with(path, fp),
        _ => path.to_string(),
    };
    let program = match compile(source) {
        Ok(p) => p,
        Err(e) => {
            out.push(invalid_typed(
                &field,
                shown_type,
                &format!("compilation failed: {e}"),
            ));
            return;
        }
    };
    let transition = program.references().has_variable("oldSelf");
    if transition && old.is_none() {
        return;
    }
    let mut ctx = Context::default();
    ctx.add_variable_from_value("self", to_cel(value));
    if let Some(o) = old.filter(|_| transition) {
        ctx.add_variable_from_value("oldSelf", to_cel(o));
    }
    let message = match execute(&program, &ctx) {
        Ok(Cel::Bool(true)) => return,
        Ok(Cel::Bool(false)) => failure_message(rule, source, &ctx),
        Ok(_) => format!("{source}: rule did not evaluate to a bool"),
        Err(e) => format!("{source}: evaluation error: {e}"),
    };
    let cause = match rule.get("reason").and_then(Value::as_str) {
        Some("FieldValueForbidden") => forbidden(&field, &message),
        Some("FieldValueRequired") => FieldError {
            message: format!("Required value: {message}"),
            ..required(&field)
        },
        Some("FieldValueDuplicate") => FieldError {
            reason: "FieldValueDuplicate".into(),
            field: field.clone(),
            message: format!(
                "Duplicate value: {}: {message}",
                render(&Value::from(shown_type))
            ),
        },
        _ => invalid_typed(&field, shown_type, &message),
    };
    out.push(cause);
}

/// `messageExpression` if it yields a non-empty string, else `message`, else the
/// server's `failed rule: <rule>`.
fn failure_message(rule: &Value, source: &str, ctx: &Context) -> String {
    if let Some(expr) = rule.get("messageExpression").and_then(Value::as_str)
        && let Ok(program) = compile(expr)
        && let Ok(Cel::String(s)) = execute(&program, ctx)
        && !s.trim().is_empty()
    {
        return s.to_string();
    }
    match rule.get("message").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!("failed rule: {source}"),
    }
}

/// Like the server, CEL failures show the schema type as the "value".
fn invalid_typed(field: &str, shown_type: &str, message: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid".into(),
        field: field.to_string(),
        message: format!("Invalid value: \"{shown_type}\": {message}"),
    }
}

/// `spec` + `.minReplicas` → `spec.minReplicas`; `['a.b']` stays bracketed.
fn field_with(path: &str, field_path: &str) -> String {
    let rel = field_path.strip_prefix('.').unwrap_or(field_path);
    if path.is_empty() {
        rel.to_string()
    } else if rel.starts_with('[') {
        format!("{path}{rel}")
    } else {
        format!("{path}.{rel}")
    }
}

/// JSON → CEL: integers stay `int` (not `uint`) so they compare with literals.
fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Cel::Int(i),
            (None, Some(u), _) => Cel::UInt(u),
            (_, _, Some(f)) => Cel::Float(f),
            _ => Cel::Null,
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<String, Cel> = m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Cel::from(map)
        }
    }
}

/// Compile errors of the rules in a schema node, for check_structural.
pub fn compile_errors(node: &serde_json::Map<String, Value>, path: &str) -> Vec<FieldError> {
    let Some(rules) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = |f: &str| {
            let base = format!("x-kubernetes-validations[{i}].{f}");
            if path.is_empty() {
                base
            } else {
                format!("{path}.{base}")
            }
        };
        match rule.get("rule").and_then(Value::as_str) {
            None => out.push(required(&at("rule"))),
            Some(src) => {
                if let Err(e) = compile(src) {
                    out.push(super::errors::invalid(
                        &at("rule"),
                        &Value::from(src),
                        &format!("compilation failed: {e}"),
                    ));
                }
            }
        }
        if let Some(expr) = rule.get("messageExpression").and_then(Value::as_str)
            && let Err(e) = compile(expr)
        {
            out.push(super::errors::invalid(
                &at("messageExpression"),
                &Value::from(expr),
                &format!("compilation failed: {e}"),
            ));
        }
    }
    out
}

/// Compiles a rule. The ANTLR-generated parser panics on some malformed input
/// (e.g. `self.a >`), and rules are user input: the panic becomes an error.
fn compile(source: &str) -> Result<Program, String> {
    match std::panic::catch_unwind(|| Program::compile(source)) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("syntax error in {source:?}")),
    }
}

/// Runs a program; an interpreter panic becomes an evaluation error.
fn execute(program: &Program, ctx: &Context) -> Result<Cel, String> {
    let run = std::panic::AssertUnwindSafe(|| program.execute(ctx));
    match std::panic::catch_unwind(run) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("the CEL interpreter failed on this rule".into()),
    }
}
