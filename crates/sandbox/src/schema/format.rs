//! The `format` values the API server checks (best effort); unknown formats pass,
//! as they do on a real server.

use serde_json::Value;

/// True when `value` satisfies `format` (or the format does not apply to it).
pub fn format_ok(format: &str, value: &Value) -> bool {
    match (format, value) {
        ("int32", Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        ("int64", Value::Number(n)) => n.is_i64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        ("date-time" | "datetime", Value::String(s)) => {
            chrono::DateTime::parse_from_rfc3339(s).is_ok()
        }
        ("date", Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        ("byte", Value::String(s)) => is_base64(s),
        ("duration", Value::String(s)) => is_go_duration(s),
        ("uuid", Value::String(s)) => uuid::Uuid::parse_str(s).is_ok(),
        _ => true,
    }
}

/// Standard base64 with padding, as Go's `strfmt.Base64` accepts.
fn is_base64(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.trim_end_matches('=').len() + 2 >= s.len()
        && s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Go's `time.ParseDuration` syntax: `[-+]?(<number><unit>)+` or `0`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 || rest[..num_len] == *"." {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        let cases = [
            ("int32", json!(5), true),
            ("int32", json!(3_000_000_000i64), false),
            ("date-time", json!("2024-01-02T03:04:05Z"), true),
            ("date-time", json!("yesterday"), false),
            ("byte", json!("aGVsbG8="), true),
            ("byte", json!("not base64!"), false),
            ("duration", json!("1h30m"), true),
            ("duration", json!("250ms"), true),
            ("duration", json!("5"), false),
            ("duration", json!("soon"), false),
            ("unknown-format", json!("x"), true),
        ];
        for (f, v, ok) in cases {
            assert_eq!(format_ok(f, &v), ok, "{f} {v}");
        }
    }
}
