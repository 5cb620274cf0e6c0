//! Table-driven tests of template parsing/rendering, and property tests of escaping.

use super::*;
use proptest::prelude::*;

const MINUTE: Duration = Duration::from_secs(60);

fn canary() -> Scope {
    Scope::for_replica_set("shop", "api-7d9f8c6b5", "7d9f8c6b5", "canary")
}

#[test]
fn renders_the_error_rate_example() {
    let t = QueryTemplate::parse(
        r#"sum(rate(http_requests_total{namespace="${namespace}", pod=~"${podRegex}", code=~"5.."}[${interval}])) / sum(rate(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#,
    )
    .unwrap();
    assert_eq!(t.variables(), vec!["namespace", "podRegex", "interval"]);
    assert_eq!(
        t.render(&canary(), MINUTE).unwrap(),
        r#"sum(rate(http_requests_total{namespace="shop", pod=~"api-7d9f8c6b5-[a-z0-9]{5}", code=~"5.."}[60s])) / sum(rate(http_requests_total{namespace="shop", pod=~"api-7d9f8c6b5-[a-z0-9]{5}"}[60s]))"#
    );
}

#[test]
fn render_table() {
    let scope = Scope::for_replica_set("a\"b", "web.v2", "h\\1", "canary")
        .with_extra("code", "5..")
        .with_extra("path", "/api\n")
        .with_extra("tricky", "${namespace}");
    let cases: &[(&str, &str)] = &[
        // String escaping of `"`, `\` and newline.
        (r#"m{namespace="${namespace}"}"#, r#"m{namespace="a\"b"}"#),
        (r#"m{revision="${revision}"}"#, r#"m{revision="h\\1"}"#),
        (r#"m{path="${path}"}"#, r#"m{path="/api\n"}"#),
        // Single-quoted strings escape `'`, not `"`.
        (r#"m{namespace='${namespace}'}"#, r#"m{namespace='a"b'}"#),
        // Literal names in a regex matcher are regex-escaped (`.` → `\.`,
        // then `\` → `\\` for the string literal)…
        (r#"m{rs=~"${replicaSet}"}"#, r#"m{rs=~"web\\.v2"}"#),
        (r#"m{rs !~ "${replicaSet}"}"#, r#"m{rs !~ "web\\.v2"}"#),
        // …but not in an equality matcher.
        (r#"m{rs="${replicaSet}"}"#, r#"m{rs="web.v2"}"#),
        // podRegex and extras are regexes already.
        (
            r#"m{pod=~"${podRegex}"}"#,
            r#"m{pod=~"web\\.v2-[a-z0-9]{5}"}"#,
        ),
        (r#"m{code=~"${code}"}"#, r#"m{code=~"5.."}"#),
        // Variables combine with literal text inside one string.
        (r#"m{pod=~"${replicaSet}-.*"}"#, r#"m{pod=~"web\\.v2-.*"}"#),
        // `$$` is a literal `$`; a lone `$` stays.
        (r#"m{a=~"x$$"}"#, r#"m{a=~"x$"}"#),
        (r#"m{a=~"x$"}"#, r#"m{a=~"x$"}"#),
        // Subquery durations.
        (
            r#"max_over_time(m[${interval}:${interval}])"#,
            "max_over_time(m[60s:60s])",
        ),
        // Comments keep quotes from confusing the tokenizer.
        ("m # it's \"fine\"\n", "m # it's \"fine\"\n"),
        // Values are never expanded again.
        (r#"m{a="${tricky}"}"#, r#"m{a="${namespace}"}"#),
        // Template's own escapes are kept.
        (r#"m{a="q\"${role}"}"#, r#"m{a="q\"canary"}"#),
    ];
    for (template, expected) in cases {
        let rendered = QueryTemplate::parse(template)
            .and_then(|t| t.render(&scope, MINUTE))
            .unwrap_or_else(|e| panic!("{template}: {e}"));
        assert_eq!(&rendered, expected, "template {template}");
    }
}

#[test]
fn parse_error_table() {
    type Check = fn(&TemplateError) -> bool;
    let cases: &[(&str, Check, &str)] = &[
        ("  ", |e| matches!(e, TemplateError::Empty), "empty"),
        (
            "m{${namespace}=\"x\"}",
            |e| matches!(e, TemplateError::MisplacedVariable { name, position } if name == "namespace" && position.column == 3),
            "variable as a label name",
        ),
        (
            "${namespace}_total",
            |e| matches!(e, TemplateError::MisplacedVariable { .. }),
            "variable as a metric name",
        ),
        (
            "m offset ${interval}",
            |e| matches!(e, TemplateError::MisplacedVariable { .. }),
            "unquoted outside []",
        ),
        (
            "rate(m[${namespace}])",
            |e| matches!(e, TemplateError::NotADuration { name, .. } if name == "namespace"),
            "non-interval as a range",
        ),
        (
            "m{a=`${namespace}`}",
            |e| matches!(e, TemplateError::VariableInRawString { .. }),
            "raw string",
        ),
        (
            r#"m{a="${namespace"}"#,
            |e| matches!(e, TemplateError::UnterminatedVariable { .. }),
            "unterminated variable",
        ),
        (
            r#"m{a="${1x}"}"#,
            |e| matches!(e, TemplateError::InvalidVariableName { name, .. } if name == "1x"),
            "bad name",
        ),
        (
            r#"m{a="${}"}"#,
            |e| matches!(e, TemplateError::InvalidVariableName { .. }),
            "empty name",
        ),
        (
            r#"m{a="x}"#,
            |e| matches!(e, TemplateError::UnterminatedString { position } if position.column == 5),
            "unterminated string",
        ),
        (
            "m{a=\"x\ny\"}",
            |e| matches!(e, TemplateError::UnterminatedString { .. }),
            "newline in string",
        ),
        (
            "sum(m{a=\"x\"}",
            |e| matches!(e, TemplateError::Unclosed { open: '(', .. }),
            "unclosed paren",
        ),
        (
            "m{a=\"x\"}}",
            |e| matches!(e, TemplateError::UnmatchedClose { found: '}', position } if position.column == 9),
            "stray brace",
        ),
        (
            "sum(m[5m)]",
            |e| {
                matches!(
                    e,
                    TemplateError::Mismatched {
                        found: ')',
                        open: '[',
                        ..
                    }
                )
            },
            "crossed brackets",
        ),
        (
            "m\n  {a=${role}}",
            |e| matches!(e, TemplateError::MisplacedVariable { position, .. } if position.line == 2 && position.column == 6),
            "position counts lines",
        ),
    ];
    for (template, check, what) in cases {
        match QueryTemplate::parse(template) {
            Ok(_) => panic!("{what}: {template:?} was accepted"),
            Err(e) => assert!(check(&e), "{what}: unexpected error {e:?}"),
        }
    }
}

#[test]
fn render_error_table() {
    let scope = canary().with_extra("code", "5..");
    let t = |s: &str| QueryTemplate::parse(s).unwrap();

    let e = t(r#"m{a="${nope}"}"#).render(&scope, MINUTE).unwrap_err();
    assert!(matches!(&e, TemplateError::UnknownVariable { name, .. } if name == "nope"));
    let message = e.to_string();
    assert!(message.contains("${nope}") && message.contains("line 1, column 6"));
    assert!(message.contains(", code"), "lists the extras: {message}");

    let reserved = canary().with_extra("namespace", "x");
    assert!(matches!(
        t(r#"m{a="${role}"}"#).render(&reserved, MINUTE),
        Err(TemplateError::ReservedExtra { name }) if name == "namespace"
    ));

    let mut empty = canary();
    empty.namespace.clear();
    assert!(matches!(
        t(r#"m{namespace="${namespace}"}"#).render(&empty, MINUTE),
        Err(TemplateError::EmptyValue { name, .. }) if name == "namespace"
    ));

    assert!(matches!(
        t("rate(m[${interval}])").render(&scope, Duration::ZERO),
        Err(TemplateError::InvalidInterval(_))
    ));
    assert_eq!(
        t("rate(m[${interval}])")
            .render(&scope, Duration::from_millis(1500))
            .unwrap(),
        "rate(m[1500ms])"
    );
}

#[test]
fn pod_regex_matches_only_its_replica_sets_pods() {
    let re =
        |rs: &str| regex::Regex::new(&format!("^(?:{})$", pod_regex_for_replica_set(rs))).unwrap();
    let api = re("api-7d9f8c6b5");
    assert!(api.is_match("api-7d9f8c6b5-x2k9q"));
    assert!(!api.is_match("api-7d9f8c6b5-x2k9q-extra"));
    assert!(!api.is_match("api-7d9f8c6b-x2k9q"));
    assert!(!api.is_match("api-7d9f8c6b5x-x2k9q"));
    let dotted = re("web.v2");
    assert!(dotted.is_match("web.v2-abcde"));
    assert!(!dotted.is_match("webXv2-abcde"), "`.` must be literal");
    // Kubernetes truncates the generateName prefix to 58 characters.
    let long = "a".repeat(70);
    let pod = format!("{}{}", &format!("{long}-")[..58], "abcde");
    assert!(re(&long).is_match(&pod));
}

/// Decode the PromQL (Go `strconv.Unquote`) string literal starting at
/// `s[0]` (a quote); returns the decoded value and the rest after the
/// closing quote. Errors on anything Go would reject.
fn decode_literal(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let quote = chars.next().ok_or("empty")?.1;
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\n' => return Err("raw newline in literal".into()),
            c if c == quote => return Ok((out, &s[i + c.len_utf8()..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("dangling backslash")?;
                match e {
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        let code = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                        out.push(char::from_u32(code).ok_or("bad \\u")?);
                    }
                    e if e == quote => out.push(e),
                    e => return Err(format!("escape \\{e} is invalid here")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated literal".into())
}

proptest! {
    #[test]
    fn any_value_round_trips_through_a_double_quoted_literal(value in any::<String>()) {
        prop_assume!(!value.is_empty());
        let t = QueryTemplate::parse(r#"m{namespace="${namespace}"} + 1"#).unwrap();
        let scope = Scope { namespace: value.clone(), ..canary() };
        let rendered = t.render(&scope, MINUTE).unwrap();
        let rest = rendered.strip_prefix("m{namespace=").unwrap();
        let (decoded, after) = decode_literal(rest).map_err(TestCaseError::fail)?;
        prop_assert_eq!(decoded, value);
        // The literal ends exactly where the template's did: nothing leaked out.
        prop_assert_eq!(after, "} + 1");
    }

    #[test]
    fn any_value_round_trips_through_a_single_quoted_literal(value in any::<String>()) {
        prop_assume!(!value.is_empty());
        let escaped = escape_string_literal(&value, '\'');
        let literal = format!("'{escaped}'");
        let (decoded, after) = decode_literal(&literal).map_err(TestCaseError::fail)?;
        prop_assert_eq!(decoded, value);
        prop_assert_eq!(after, "");
    }

    #[test]
    fn escaped_regex_matches_exactly_the_value(value in "[ -~]{1,20}", other in "[ -~]{1,20}") {
        let re = regex::Regex::new(&format!("^(?:{})$", escape_regex(&value))).unwrap();
        prop_assert!(re.is_match(&value));
        prop_assert_eq!(re.is_match(&other), other == value);
    }
}
