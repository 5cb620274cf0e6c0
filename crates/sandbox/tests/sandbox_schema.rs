//! CRD schema pruning, defaulting and validation of the sandbox, with the API
//! server's causes.

use proptest::prelude::*;
use redblack_sandbox::schema::{FieldError, check_structural, validate_and_default};
use serde_json::{Value, json};

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "x/v1", "kind": "T", "metadata": {"name": "t"}, "spec": spec})
}

fn root(spec_schema: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec_schema}})
}

fn errors(schema: &Value, spec: Value) -> Vec<FieldError> {
    let mut o = obj(spec);
    validate_and_default(schema, &mut o, None).errors
}

fn fe(reason: &str, field: &str, message: &str) -> FieldError {
    FieldError {
        reason: reason.into(),
        field: field.into(),
        message: message.into(),
    }
}

#[test]
fn keywords_table() {
    let prop = |s: Value| root(json!({"type": "object", "properties": {"x": s}}));
    // (schema of spec.x, value of spec.x, expected causes)
    let cases: Vec<(Value, Value, Vec<FieldError>)> = vec![
        (json!({"type": "integer"}), json!(3), vec![]),
        (json!({"type": "integer"}), json!(3.0), vec![]),
        (
            json!({"type": "integer"}),
            json!("string"),
            vec![fe(
                "FieldValueTypeInvalid",
                "spec.x",
                "Invalid value: \"string\": spec.x in body must be of type integer: \"string\"",
            )],
        ),
        (
            json!({"type": "integer"}),
            json!(1.5),
            vec![fe(
                "FieldValueTypeInvalid",
                "spec.x",
                "Invalid value: \"number\": spec.x in body must be of type integer: \"number\"",
            )],
        ),
        // A null property that is not nullable is dropped before defaulting (k8s >= 1.20) ...
        (json!({"type": "string"}), json!(null), vec![]),
        // ... but a null list item is a type error.
        (
            json!({"type": "array", "items": {"type": "string"}}),
            json!([null]),
            vec![fe(
                "FieldValueTypeInvalid",
                "spec.x[0]",
                "Invalid value: \"null\": spec.x[0] in body must be of type string: \"null\"",
            )],
        ),
        (
            json!({"type": "string", "nullable": true}),
            json!(null),
            vec![],
        ),
        (json!({"type": "boolean"}), json!(true), vec![]),
        (
            json!({"type": "integer", "minimum": 0}),
            json!(-1),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: -1: spec.x in body should be greater than or equal to 0",
            )],
        ),
        (
            json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true}),
            json!(0),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 0: spec.x in body should be greater than 0",
            )],
        ),
        (
            json!({"type": "number", "maximum": 1}),
            json!(1.5),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 1.5: spec.x in body should be less than or equal to 1",
            )],
        ),
        (
            json!({"type": "number", "maximum": 1, "exclusiveMaximum": true}),
            json!(1),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 1: spec.x in body should be less than 1",
            )],
        ),
        (
            json!({"type": "integer", "multipleOf": 5}),
            json!(12),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 12: spec.x in body should be a multiple of 5",
            )],
        ),
        (
            json!({"type": "integer", "multipleOf": 5}),
            json!(15),
            vec![],
        ),
        (
            json!({"type": "string", "enum": ["a", "b"]}),
            json!("foo"),
            vec![fe(
                "FieldValueNotSupported",
                "spec.x",
                "Unsupported value: \"foo\": supported values: \"a\", \"b\"",
            )],
        ),
        (
            json!({"type": "string", "maxLength": 3}),
            json!("ééé"),
            vec![],
        ),
        (
            json!({"type": "string", "maxLength": 3}),
            json!("abcd"),
            vec![fe(
                "FieldValueTooLong",
                "spec.x",
                "Too long: may not be longer than 3",
            )],
        ),
        (
            json!({"type": "string", "minLength": 2}),
            json!("a"),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: \"a\": spec.x in body should be at least 2 chars long",
            )],
        ),
        (
            json!({"type": "string", "pattern": "^[a-z]+$"}),
            json!("A1"),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: \"A1\": spec.x in body should match '^[a-z]+$'",
            )],
        ),
        (
            json!({"type": "array", "items": {"type": "string"}, "minItems": 1}),
            json!([]),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: []: spec.x in body should have at least 1 items",
            )],
        ),
        (
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 1}),
            json!(["a", "b"]),
            vec![fe(
                "FieldValueTooMany",
                "spec.x",
                "Too many: 2: must have at most 1 items",
            )],
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}}),
            json!([1, "two"]),
            vec![fe(
                "FieldValueTypeInvalid",
                "spec.x[1]",
                "Invalid value: \"string\": spec.x[1] in body must be of type integer: \"string\"",
            )],
        ),
        (
            json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}),
            json!(["a", "a"]),
            vec![fe(
                "FieldValueDuplicate",
                "spec.x[1]",
                "Duplicate value: \"a\"",
            )],
        ),
        (
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}}),
            json!([{"name": "a"}, {"name": "b"}, {"name": "a"}]),
            vec![fe(
                "FieldValueDuplicate",
                "spec.x[2]",
                "Duplicate value: {\"name\":\"a\"}",
            )],
        ),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1}),
            json!({"a": "1", "b": 2}),
            vec![
                fe(
                    "FieldValueTypeInvalid",
                    "spec.x.b",
                    "Invalid value: \"integer\": spec.x.b in body must be of type string: \"integer\"",
                ),
                fe(
                    "FieldValueTooMany",
                    "spec.x",
                    "Too many: 2: must have at most 1 items",
                ),
            ],
        ),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}),
            json!({}),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: {}: spec.x in body should have at least 1 properties",
            )],
        ),
        (
            json!({"type": "string", "format": "date-time"}),
            json!("2024-05-01T10:00:00Z"),
            vec![],
        ),
        (
            json!({"type": "string", "format": "date-time"}),
            json!("tomorrow"),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: \"tomorrow\": spec.x in body must be of type date-time: \"tomorrow\"",
            )],
        ),
        (
            json!({"type": "integer", "format": "int32"}),
            json!(4294967296u64),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 4294967296: spec.x in body must be of type int32: \"4294967296\"",
            )],
        ),
        (
            json!({"x-kubernetes-int-or-string": true}),
            json!(80),
            vec![],
        ),
        (
            json!({"x-kubernetes-int-or-string": true}),
            json!("25%"),
            vec![],
        ),
        (
            json!({"x-kubernetes-int-or-string": true}),
            json!(true),
            vec![fe(
                "FieldValueTypeInvalid",
                "spec.x",
                "Invalid value: \"boolean\": spec.x in body must be of type integer,string: \"boolean\"",
            )],
        ),
        (
            json!({"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]}),
            json!(5),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 5: spec.x in body must validate at least one schema (anyOf)",
            )],
        ),
        (
            json!({"type": "integer", "oneOf": [{"minimum": 0}, {"minimum": 1}]}),
            json!(5),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 5: spec.x in body must validate one and only one schema (oneOf)",
            )],
        ),
        (
            json!({"type": "integer", "not": {"minimum": 3}}),
            json!(5),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 5: spec.x in body must not validate the schema provided",
            )],
        ),
        (
            json!({"type": "integer", "allOf": [{"minimum": 3}, {"maximum": 4}]}),
            json!(5),
            vec![fe(
                "FieldValueInvalid",
                "spec.x",
                "Invalid value: 5: spec.x in body should be less than or equal to 4",
            )],
        ),
    ];
    for (i, (schema, value, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            errors(&prop(schema.clone()), json!({"x": value})),
            want,
            "case {i}: {schema}"
        );
    }
}

#[test]
fn required_and_nested_paths() {
    let schema = root(
        json!({"type": "object", "required": ["activeService"], "properties": {
        "activeService": {"type": "string"},
        "metrics": {"type": "array", "items": {"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}}}}}}),
    );
    assert_eq!(
        errors(
            &schema,
            json!({"metrics": [{"name": "a"}, {"name": "b"}, {}]})
        ),
        vec![
            fe("FieldValueRequired", "spec.activeService", "Required value"),
            fe(
                "FieldValueRequired",
                "spec.metrics[2].name",
                "Required value"
            )
        ]
    );
    // apiVersion/kind/metadata are not judged even if the schema lists them.
    let strict = json!({"type": "object", "required": ["apiVersion", "spec"],
        "properties": {"apiVersion": {"type": "integer"}, "spec": {"type": "object"}}});
    assert_eq!(errors(&strict, json!({})), vec![]);
}

#[test]
fn pruning_with_and_without_preserve_unknown_fields() {
    let schema = root(json!({"type": "object", "properties": {
        "known": {"type": "string"},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}}}));
    let mut o = obj(
        json!({"known": "k", "foo": 1, "free": {"anything": {"x": 1}},
        "labels": {"l": "v"}, "items": [{"a": "1", "b": 2}]}),
    );
    o["status"] = json!({"x": 1});
    let out = validate_and_default(&schema, &mut o, None);
    assert_eq!(out.pruned, vec!["spec.foo", "spec.items[0].b", "status"]);
    assert_eq!(out.errors, vec![]);
    assert_eq!(
        o,
        json!({"apiVersion": "x/v1", "kind": "T", "metadata": {"name": "t"},
        "spec": {"known": "k", "free": {"anything": {"x": 1}}, "labels": {"l": "v"}, "items": [{"a": "1"}]}})
    );
    // Embedded resources keep apiVersion/kind/metadata.
    let schema = root(
        json!({"type": "object", "properties": {"template": {"type": "object",
        "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}}}),
    );
    let mut o = obj(
        json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "junk": 1}}),
    );
    let out = validate_and_default(&schema, &mut o, None);
    assert_eq!(out.pruned, vec!["spec.template.junk"]);
    assert_eq!(o["spec"]["template"]["kind"], "Pod");
    let mut o = obj(json!({"template": {"metadata": {"name": "p"}}}));
    let out = validate_and_default(&schema, &mut o, None);
    assert_eq!(
        out.errors,
        vec![
            fe(
                "FieldValueRequired",
                "spec.template.apiVersion",
                "Required value: must not be empty"
            ),
            fe(
                "FieldValueRequired",
                "spec.template.kind",
                "Required value: must not be empty"
            )
        ]
    );
}

#[test]
fn defaulting_nested_and_in_items() {
    let schema = root(json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "default": 1},
        "strategy": {"type": "object", "default": {}, "properties": {
            "steps": {"type": "integer", "default": 3}}},
        "metrics": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "weight": {"type": "integer", "default": 10}}}},
        "extra": {"type": "object", "additionalProperties": {"type": "object",
            "properties": {"on": {"type": "boolean", "default": true}}}},
        "gone": {"type": "string"}}}));
    let mut o = obj(
        json!({"metrics": [{"name": "a"}, {"name": "b", "weight": 2}], "extra": {"k": {}}, "gone": null, "unknown": 1}),
    );
    let out = validate_and_default(&schema, &mut o, None);
    assert_eq!(out.errors, vec![]);
    assert_eq!(out.pruned, vec!["spec.unknown"]);
    assert_eq!(
        o["spec"],
        json!({"metrics": [{"name": "a", "weight": 10}, {"name": "b", "weight": 2}],
        "extra": {"k": {"on": true}}, "replicas": 1, "strategy": {"steps": 3}})
    );
}

#[test]
fn defaults_apply_after_pruning() {
    // A default for a field that is pruned is still applied (pruning first).
    let schema =
        root(json!({"type": "object", "properties": {"a": {"type": "string", "default": "d"}}}));
    let mut o = obj(json!({"b": "x"}));
    let out = validate_and_default(&schema, &mut o, None);
    assert_eq!(out.pruned, vec!["spec.b"]);
    assert_eq!(o["spec"], json!({"a": "d"}));
}

#[test]
fn structural_rules() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"type": "object", "properties": {"spec": {"type": "object"}}}),
            vec![],
        ),
        (json!({"properties": {}}), vec!["type"]),
        (json!({"type": "string"}), vec!["type"]),
        (
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
            vec!["properties[spec].type"],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array"}}}),
            vec!["properties[l].items"],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}}),
            vec!["properties[l].items.type"],
        ),
        (
            json!({"type": "object", "properties": {"p": {"type": "string", "x-kubernetes-int-or-string": true}}}),
            vec!["properties[p].type"],
        ),
        (
            json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true}}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {"p": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map"}}}),
            vec!["properties[l].x-kubernetes-list-map-keys"],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}}}),
            vec!["properties[l].x-kubernetes-list-type"],
        ),
        (
            json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}),
            vec!["properties[s].pattern"],
        ),
        (
            json!({"type": "object", "properties": {"o": {"type": "object", "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "string"}}}}),
            vec!["properties[o].additionalProperties"],
        ),
        (
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
            vec!["properties[metadata]"],
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "anyOf": [{"minimum": 1}]}}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "default": 0}}}),
            vec!["properties[n].default"],
        ),
        (
            json!({"type": "object", "properties": {"o": {"type": "object", "properties": {"a": {"type": "string"}},
            "default": {"a": "x", "b": 1}}}}),
            vec!["properties[o].default.b"],
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "default": 3}}}),
            vec![],
        ),
    ];
    for (i, (schema, want)) in cases.into_iter().enumerate() {
        let got: Vec<String> = check_structural(&schema)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(got, want, "case {i}: {schema}");
    }
    let root_err = &check_structural(&json!({"properties": {}}))[0];
    assert_eq!(
        root_err.message,
        "Required value: must not be empty at the root"
    );
}

fn simple_schema() -> Value {
    root(
        json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 8, "pattern": "^[a-z]+$"},
        "replicas": {"type": "integer", "minimum": 0, "maximum": 100, "default": 1},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
        "tags": {"type": "array", "maxItems": 4, "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}),
    )
}

fn arb_valid_spec() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,8}",
        prop::option::of(0i64..=100),
        prop::option::of(prop_oneof![Just("fast"), Just("slow")]),
        prop::collection::btree_set("[a-z]{1,3}", 0..4),
    )
        .prop_map(|(name, replicas, mode, tags)| {
            let mut spec = json!({"name": name, "tags": tags.into_iter().collect::<Vec<_>>()});
            if let Some(r) = replicas {
                spec["replicas"] = json!(r);
            }
            if let Some(m) = mode {
                spec["mode"] = json!(m);
            }
            spec
        })
}

fn arb_any_spec() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-200i64..200).prop_map(Value::from),
        "[a-zA-Z0-9]{0,10}".prop_map(Value::from),
    ];
    prop::collection::btree_map(
        prop_oneof![
            Just("name"),
            Just("replicas"),
            Just("mode"),
            Just("tags"),
            Just("zzz")
        ],
        leaf,
        0..5,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

proptest! {
    #[test]
    fn generated_valid_values_validate(spec in arb_valid_spec()) {
        let mut o = obj(spec);
        let out = validate_and_default(&simple_schema(), &mut o, None);
        prop_assert_eq!(out.errors, vec![]);
        prop_assert!(out.pruned.is_empty());
        prop_assert!(o["spec"]["replicas"].is_i64());
    }

    #[test]
    fn validation_and_defaulting_are_idempotent(spec in arb_any_spec()) {
        let schema = simple_schema();
        let mut once = obj(spec);
        let first = validate_and_default(&schema, &mut once, None);
        let mut twice = once.clone();
        let second = validate_and_default(&schema, &mut twice, None);
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(first.errors, second.errors);
        prop_assert!(second.pruned.is_empty());
    }
}

fn cel_schema() -> Value {
    root(json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"},
            {"rule": "!has(self.paused) || self.paused == false || has(self.reason)",
             "messageExpression": "'paused needs a reason (maxReplicas=' + string(self.maxReplicas) + ')'",
             "fieldPath": ".reason", "reason": "FieldValueRequired"},
            {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"}],
        "properties": {
            "minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
            "paused": {"type": "boolean"}, "reason": {"type": "string"}, "mode": {"type": "string", "default": "a"},
            "steps": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "weight": {"type": "integer",
                    "x-kubernetes-validations": [{"rule": "self >= 0 && self <= 100"},
                                                 {"rule": "self >= oldSelf", "message": "weight may only grow"}]}}}}}}))
}

#[test]
fn cel_rules() {
    let schema = cel_schema();
    let run = |spec: Value, old: Option<Value>| {
        let mut o = obj(spec);
        let old = old.map(obj);
        validate_and_default(&schema, &mut o, old.as_ref()).errors
    };
    assert_eq!(
        run(json!({"minReplicas": 1, "maxReplicas": 2}), None),
        vec![]
    );
    assert_eq!(
        run(json!({"minReplicas": 3, "maxReplicas": 2}), None),
        vec![fe(
            "FieldValueInvalid",
            "spec",
            "Invalid value: \"object\": minReplicas must not exceed maxReplicas"
        )]
    );
    assert_eq!(
        run(
            json!({"minReplicas": 1, "maxReplicas": 2, "paused": true}),
            None
        ),
        vec![fe(
            "FieldValueRequired",
            "spec.reason",
            "Required value: paused needs a reason (maxReplicas=2)"
        )]
    );
    assert_eq!(
        run(
            json!({"minReplicas": 1, "maxReplicas": 2, "steps": [{"name": "s", "weight": 101}]}),
            None
        ),
        vec![fe(
            "FieldValueInvalid",
            "spec.steps[0].weight",
            "Invalid value: \"integer\": failed rule: self >= 0 && self <= 100"
        )]
    );
    // Transition rules: only on update, against the correlated old value.
    let old = json!({"minReplicas": 1, "maxReplicas": 2, "mode": "a", "steps": [{"name": "x", "weight": 1}, {"name": "s", "weight": 50}]});
    assert_eq!(
        run(
            json!({"minReplicas": 1, "maxReplicas": 2, "mode": "b", "steps": [{"name": "s", "weight": 40}, {"name": "new", "weight": 0}]}),
            Some(old)
        ),
        vec![
            fe(
                "FieldValueInvalid",
                "spec",
                "Invalid value: \"object\": mode is immutable"
            ),
            fe(
                "FieldValueInvalid",
                "spec.steps[0].weight",
                "Invalid value: \"integer\": weight may only grow"
            )
        ]
    );
    // A rule that fails to compile is reported by the structural check.
    let bad = root(json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a >"}]}));
    let errs = check_structural(&bad);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].field,
        "properties[spec].x-kubernetes-validations[0].rule"
    );
}
