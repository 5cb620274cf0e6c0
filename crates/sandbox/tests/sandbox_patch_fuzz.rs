//! Fuzzing (proptest) of what the sandbox does with a client's patch body:
//! JSON patch, JSON merge patch, strategic merge patch (with its `$patch`,
//! `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList`
//! directives) and server-side apply, on Kubernetes-shaped objects and on
//! arbitrary JSON. Whatever a client sends, the answer is a patched object or
//! a typed error (a 4xx at the API) — never a panic, which would take the API
//! server's request task down.
//!
//! Cases per property: `PROPTEST_CASES` (default 512 here; `make fuzz` runs more).

use proptest::prelude::*;
use redblack_sandbox::patch::{PatchType, apply_patch, server_side_apply};
use serde_json::{Map, Value, json};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Keys a Kubernetes object and a strategic merge patch use, so that the
/// fuzzer reaches the merge-key and directive paths, not only unknown fields.
const KEYS: &[&str] = &[
    "metadata",
    "labels",
    "annotations",
    "name",
    "spec",
    "template",
    "containers",
    "initContainers",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "value",
    "volumes",
    "selector",
    "matchLabels",
    "finalizers",
    "replicas",
    "status",
    "conditions",
    "type",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/ports",
    "$deleteFromPrimitiveList/finalizers",
    "x",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..70000).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("replace"),
            Just("delete"),
            Just("merge"),
            Just("web"),
            Just("TCP"),
            Just(""),
            Just("a/b"),
        ]
        .prop_map(|s| json!(s)),
        "[a-z$/~0-9]{0,6}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

/// A JSON patch: a list of operations with paths into the object's keys.
fn json_patch() -> impl Strategy<Value = Value> {
    let path = prop::collection::vec(
        prop_oneof![
            prop::sample::select(KEYS).prop_map(str::to_string),
            (0usize..4).prop_map(|i| i.to_string()),
            Just("-".to_string()),
            Just("~1".to_string()),
        ],
        0..4,
    )
    .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect::<String>());
    let op = (
        prop::sample::select(&["add", "remove", "replace", "move", "copy", "test", "bogus"][..]),
        path.clone(),
        path,
        value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        );
    prop::collection::vec(op, 0..5).prop_map(Value::Array)
}

/// The case the fuzzer found: the first operation moves the only element
/// over the whole document, the second fails, and json-patch's rollback of the
/// first could not be undone — it panicked ("unable to undo applied patches").
/// Now a plain error, and the stored object is untouched.
#[test]
fn a_failing_json_patch_after_a_move_of_the_root_is_an_error() {
    let current = json!([null]);
    let ops = json!([
        {"op": "move", "from": "/0", "path": ""},
        {"op": "add", "path": "/metadata", "value": null}
    ]);
    let body = serde_json::to_vec(&ops).unwrap();
    let result = apply_patch("Pod", None, &current, PatchType::Json, &body);
    assert!(result.is_err(), "{result:?}");
}

const KINDS: &[&str] = &[
    "Pod",
    "ReplicaSet",
    "Service",
    "Deployment",
    "ConfigMap",
    "Unknown",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn strategic_and_merge_patches_never_panic(
        kind in prop::sample::select(KINDS),
        current in value(),
        patch in value(),
    ) {
        let body = serde_json::to_vec(&patch).unwrap();
        for patch_type in [PatchType::Strategic, PatchType::Merge] {
            let _ = apply_patch(kind, None, &current, patch_type, &body);
        }
    }

    #[test]
    fn json_patches_never_panic(current in value(), ops in json_patch()) {
        let body = serde_json::to_vec(&ops).unwrap();
        let _ = apply_patch("Pod", None, &current, PatchType::Json, &body);
    }

    #[test]
    fn malformed_bodies_are_errors(
        kind in prop::sample::select(KINDS),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let current = json!({"metadata": {"name": "x"}});
        for patch_type in [PatchType::Json, PatchType::Merge, PatchType::Strategic] {
            if serde_json::from_slice::<Value>(&body).is_err() {
                prop_assert!(apply_patch(kind, None, &current, patch_type, &body).is_err());
            }
        }
    }

    #[test]
    fn server_side_apply_never_panics(
        kind in prop::sample::select(KINDS),
        current in prop::option::of(value()),
        applied in value(),
        force in any::<bool>(),
        status in any::<bool>(),
    ) {
        let subresource = status.then_some("status");
        let first = server_side_apply(kind, None, current.as_ref(), &applied, "fuzz-a", force, subresource);
        // A second manager applying over the result exercises ownership and conflicts.
        if let Ok(merged) = first {
            let _ = server_side_apply(kind, None, Some(&merged), &applied, "fuzz-b", force, subresource);
        }
    }
}
