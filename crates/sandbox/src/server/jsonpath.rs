//! The small JSONPath subset CRDs use in printer columns and scale paths:
//! `.a.b`, `.a[0].b`, `.a[*].b` (first match), `.a[?(@.type=="Ready")].status`.

use serde_json::{Map, Value};

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Any,
    Filter(String, String),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::Any);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = f.split_once("==")?;
                let v = v.trim().trim_matches('"').trim_matches('\'');
                steps.push(Step::Filter(k.trim().to_string(), v.to_string()));
            } else {
                let key = inner.trim_matches('\'').trim_matches('"');
                steps.push(Step::Field(key.to_string()));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The value at `path`, if any.
pub fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = parse(path)?;
    get_steps(obj, &steps)
}

fn get_steps<'a>(cur: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(cur);
    };
    match first {
        Step::Field(f) => get_steps(cur.get(f)?, rest),
        Step::Index(i) => get_steps(cur.get(*i)?, rest),
        Step::Any => cur.as_array()?.iter().find_map(|v| get_steps(v, rest)),
        Step::Filter(k, want) => cur
            .as_array()?
            .iter()
            .filter(|v| match v.get(k) {
                Some(Value::String(s)) => s == want,
                Some(Value::Bool(b)) => want.parse::<bool>().is_ok_and(|w| w == *b),
                Some(Value::Number(n)) => want.parse::<f64>().ok() == n.as_f64(),
                _ => false,
            })
            .find_map(|v| get_steps(v, rest)),
    }
}

/// Writes `value` at a plain dotted path (`.spec.replicas`), creating objects on the way.
pub fn set(obj: &mut Value, path: &str, value: Value) -> bool {
    let Some(steps) = parse(path) else {
        return false;
    };
    let mut cur = obj;
    for (i, step) in steps.iter().enumerate() {
        let Step::Field(f) = step else {
            return false;
        };
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return false;
        };
        if i + 1 == steps.len() {
            map.insert(f.clone(), value);
            return true;
        }
        cur = map
            .entry(f.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes() {
        let mut o = json!({"status": {"conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": "False"}
        ]}, "spec": {"replicas": 3}});
        assert_eq!(get(&o, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(
            get(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("False"))
        );
        assert_eq!(
            get(&o, ".status.conditions[0].type"),
            Some(&json!("Progressing"))
        );
        assert_eq!(get(&o, ".status.missing"), None);
        assert!(set(&mut o, ".status.scale.replicas", json!(2)));
        assert_eq!(o["status"]["scale"]["replicas"], json!(2));
    }
}
