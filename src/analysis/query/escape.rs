//! Escaping of values substituted into PromQL, and the pod regex of a ReplicaSet.
//!
//! Two layers, applied in this order when needed:
//! 1. RE2 escaping (only for literal names placed in a `=~`/`!~` matcher, and
//!    for the ReplicaSet name inside `podRegex`), so `.` in a name matches `.`;
//! 2. PromQL string-literal escaping (always), so a value can never end the
//!    string it sits in. PromQL decodes strings with Go's `strconv.Unquote`
//!    rules, so we emit only escapes Go understands.

/// Kubernetes' `SimpleNameGenerator` appends 5 random characters to a
/// `generateName` prefix and truncates the prefix so the name fits in 63
/// characters (`maxGeneratedNameLength = 63 - 5`). A ReplicaSet's pods are
/// generated from the prefix `<rs-name>-`, so long names are cut here too.
const MAX_GENERATED_NAME_PREFIX: usize = 58;

/// Characters with a meaning in RE2 (Go's `regexp/syntax`), which Prometheus uses.
const RE2_META: &str = r"\.+*?()|[]{}^$";

/// Escape `value` so that RE2 matches it literally.
pub fn escape_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if RE2_META.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escape `value` for the inside of a PromQL string literal delimited by
/// `quote` (`"` or `'`). The result, put between two `quote`s, decodes back
/// to exactly `value`.
///
/// Newlines must be escaped because PromQL rejects a raw newline inside a
/// quoted string; other control characters are escaped as `\uXXXX` so the
/// query stays printable in logs and status messages.
pub fn escape_string_literal(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The RE2 regex matching the names of the pods of ReplicaSet `replica_set`:
/// `<rs>-` followed by the 5-character random suffix. No `^`/`$`: Prometheus
/// anchors label-matcher regexes at both ends already.
///
/// Caveat (inherited from Kubernetes' naming): when `<rs>-` is longer than
/// 58 characters, pod names only keep its first 58 characters, so another
/// ReplicaSet sharing that 58-character prefix would match too.
pub fn pod_regex_for_replica_set(replica_set: &str) -> String {
    let prefix: String = format!("{replica_set}-")
        .chars()
        .take(MAX_GENERATED_NAME_PREFIX)
        .collect();
    format!("{}[a-z0-9]{{5}}", escape_regex(&prefix))
}

/// Format a duration the way PromQL accepts it in a range selector.
/// Whole seconds render as `Ns`, anything finer as `Nms`; PromQL has no unit
/// below milliseconds, so sub-millisecond remainders are dropped.
pub fn promql_duration(duration: std::time::Duration) -> Option<String> {
    let millis = duration.as_millis();
    if millis == 0 {
        return None;
    }
    if millis.is_multiple_of(1000) {
        Some(format!("{}s", millis / 1000))
    } else {
        Some(format!("{millis}ms"))
    }
}
