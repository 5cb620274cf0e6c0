//! Label and field selectors, parsed once per request and matched against stored
//! JSON without copying it.

use serde_json::Value;

use super::errors::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Splits on commas that are not inside `( )`.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_err(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} in label selector \"{sel}\""
    ))
}

impl LabelSelector {
    pub fn parse(sel: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top_level(sel) {
            reqs.push(Self::parse_one(sel, &part)?);
        }
        Ok(Self(reqs))
    }

    fn parse_one(sel: &str, part: &str) -> ApiResult<LabelReq> {
        if let Some(key) = part.strip_prefix('!') {
            let key = key.trim();
            if !valid_key(key) {
                return Err(parse_err(sel, &format!("invalid label key \"{key}\"")));
            }
            return Ok(LabelReq::NotExists(key.to_string()));
        }
        // Set-based: `key in (a,b)` / `key notin (a,b)`.
        let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
        if words.len() == 2 {
            let rest = words[1].trim_start();
            for (op, is_in) in [("notin", false), ("in", true)] {
                if let Some(list) = rest.strip_prefix(op) {
                    let list = list.trim();
                    let inner = list
                        .strip_prefix('(')
                        .and_then(|l| l.strip_suffix(')'))
                        .ok_or_else(|| parse_err(sel, "expected a parenthesized list"))?;
                    let values: Vec<String> = inner
                        .split(',')
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                        .collect();
                    let key = words[0].to_string();
                    if !valid_key(&key) || values.iter().any(|v| !valid_value(v)) {
                        return Err(parse_err(sel, "invalid key or value"));
                    }
                    return Ok(if is_in {
                        LabelReq::In(key, values)
                    } else {
                        LabelReq::NotIn(key, values)
                    });
                }
            }
        }
        for (op, ctor) in [
            ("!=", LabelReq::NotEq as fn(String, String) -> LabelReq),
            ("==", LabelReq::Eq),
            ("=", LabelReq::Eq),
        ] {
            if let Some((k, v)) = part.split_once(op) {
                let (k, v) = (k.trim(), v.trim());
                if !valid_key(k) || !valid_value(v) {
                    return Err(parse_err(sel, &format!("invalid requirement \"{part}\"")));
                }
                return Ok(ctor(k.to_string(), v.to_string()));
            }
        }
        if !valid_key(part) {
            return Err(parse_err(sel, &format!("invalid label key \"{part}\"")));
        }
        Ok(LabelReq::Exists(part.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        })
    }
}

/// A parsed `fieldSelector`: `path=value`, `path==value`, `path!=value`, where path
/// is any dotted path into the object (`metadata.name`, `involvedObject.name`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    pub fn parse(sel: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top_level(sel) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{sel}'; can't understand '{part}'"
                )));
            };
            let path: Vec<String> = path.trim().split('.').map(String::from).collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    path.join(".")
                )));
            }
            reqs.push((path, eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `metadata.name=x` when that is all the selector says: lists can then skip
    /// the scan and look the object up directly.
    pub fn only_name(&self) -> Option<&str> {
        match self.0.as_slice() {
            [(path, true, value)]
                if path.len() == 2 && path[0] == "metadata" && path[1] == "name" =>
            {
                Some(value)
            }
            _ => None,
        }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path {
                cur = cur.and_then(|v| v.get(seg));
            }
            let have = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

/// Both selectors of one request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (web, api)"));
        assert!(!m("app notin (web,api)"));
        assert!(m("tier notin (back)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(!m("missing"));
        assert!(m(""));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c=d").is_err());
    }

    #[test]
    fn field_selectors_follow_dotted_paths() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m("metadata.name=a"));
        assert!(m("status.phase==Running,metadata.name!=b"));
        assert!(!m("status.phase!=Running"));
        assert!(m("spec.nodeName="));
        assert!(FieldSelector::parse("nonsense").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=x").unwrap().only_name(),
            Some("x")
        );
    }
}
