//! Fuzzing of PromQL template parsing and rendering: arbitrary template text
//! (built from the characters that matter: `$`, `{`, `}`, quotes,
//! backslashes, variable names) and arbitrary scope values never panic; a
//! template that parses renders or fails with a typed error, and every value
//! substituted inside a string literal stays inside it. `make test` runs 256
//! cases, `make fuzz` 20,000 (PROPTEST_CASES).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use redblack::analysis::query::{QueryTemplate, Scope};

/// Template text: fragments that exercise the tokenizer's every state.
fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("${".to_owned()),
        Just("}".to_owned()),
        Just("$".to_owned()),
        Just("{".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("`".to_owned()),
        Just("\\".to_owned()),
        Just("${namespace}".to_owned()),
        Just("${podRegex}".to_owned()),
        Just("${interval}".to_owned()),
        Just("${replicaSet}".to_owned()),
        Just("${extra1}".to_owned()),
        Just("=~".to_owned()),
        "[a-z_]{1,8}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

fn scope() -> impl Strategy<Value = Scope> {
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", any::<String>(), 0..3),
    )
        .prop_map(
            |(namespace, revision, role, replica_set, pod_regex, extra)| Scope {
                namespace,
                revision,
                role,
                replica_set,
                pod_regex,
                extra: extra.into_iter().collect::<BTreeMap<_, _>>(),
            },
        )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Parse and render never panic, whatever the text, the scope and the interval.
    #[test]
    fn any_template_and_scope_parse_and_render_without_panic(
        text in template(),
        scope in scope(),
        millis in prop_oneof![Just(0u64), 1u64..10_000_000, Just(u64::MAX / 1_000_000)],
    ) {
        if let Ok(t) = QueryTemplate::parse(&text) {
            let _ = t.render(&scope, Duration::from_millis(millis));
        }
    }

    /// A value substituted inside a double-quoted label matcher never closes
    /// the literal: what follows the template's literal is still there, once.
    #[test]
    fn a_value_in_a_literal_never_escapes_it(value in any::<String>(), replica_set in any::<String>()) {
        let t = QueryTemplate::parse(r#"up{namespace="${namespace}", rs="${replicaSet}"} > 0"#).unwrap();
        let scope = Scope {
            namespace: value,
            revision: "r".into(),
            role: "canary".into(),
            replica_set,
            pod_regex: ".*".into(),
            extra: BTreeMap::new(),
        };
        if let Ok(rendered) = t.render(&scope, Duration::from_secs(60)) {
            prop_assert!(rendered.starts_with("up{namespace=\""), "{}", rendered);
            prop_assert!(rendered.ends_with("\"} > 0"), "{}", rendered);
        }
    }
}
