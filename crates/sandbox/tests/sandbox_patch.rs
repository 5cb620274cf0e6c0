//! Patches and server-side apply of the sandbox, against the behaviour of a real
//! API server (kubectl's patches, SSA ownership, managedFields format).

use proptest::prelude::*;
use redblack_sandbox::patch::{
    OwnershipConflict, PatchError, PatchType, apply_patch, conflict_message, record_update,
    record_update_for, server_side_apply,
};
use serde_json::{Value, json};

fn smp(kind: &str, current: Value, patch: Value) -> Value {
    apply_patch(
        kind,
        None,
        &current,
        PatchType::Strategic,
        patch.to_string().as_bytes(),
    )
    .expect("strategic merge")
}

fn rs(containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
           "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
}

#[test]
fn json_patch_ops_and_errors() {
    let cur = json!({"metadata": {"labels": {"a": "1"}}});
    let ok = apply_patch(
        "ConfigMap",
        None,
        &cur,
        PatchType::Json,
        br#"[{"op":"test","path":"/metadata/labels/a","value":"1"},{"op":"add","path":"/metadata/labels/b","value":"2"}]"#,
    )
    .unwrap();
    assert_eq!(ok, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));

    for body in [
        &br#"[{"op":"test","path":"/metadata/labels/a","value":"2"}]"#[..],
        br#"[{"op":"remove","path":"/nope/x"}]"#,
        br#"{"op":"add"}"#,
        b"not json",
    ] {
        match apply_patch("ConfigMap", None, &cur, PatchType::Json, body) {
            Err(PatchError::Invalid(msg)) => assert!(!msg.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn merge_patch_rfc7386() {
    let cur = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
    let out = apply_patch(
        "X",
        None,
        &cur,
        PatchType::Merge,
        br#"{"a":{"b":null,"d":3},"l":[3]}"#,
    )
    .unwrap();
    assert_eq!(out, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    assert!(matches!(
        apply_patch("X", None, &cur, PatchType::Merge, b"[1]"),
        Err(PatchError::Invalid(_))
    ));
}

#[test]
fn strategic_on_custom_resource_is_unsupported() {
    let schema = json!({"type": "object"});
    match apply_patch(
        "Rollout",
        Some(&schema),
        &json!({}),
        PatchType::Strategic,
        b"{}",
    ) {
        Err(PatchError::Unsupported(m)) => {
            assert!(m.starts_with("strategic merge patch is not supported for custom resources"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn strategic_merge_keys_table() {
    // (kind, current, patch, expected)
    let cases = vec![
        // containers by name, within a ReplicaSet's template
        (
            "ReplicaSet",
            rs(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}),
            rs(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])),
        ),
        // container ports by containerPort, env by name, volumeMounts by mountPath
        (
            "Pod",
            json!({"spec": {"containers": [{"name": "c",
                "ports": [{"containerPort": 80, "name": "http"}],
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"mountPath": "/x", "name": "v"}],
                "args": ["a", "b"]}]}}),
            json!({"spec": {"containers": [{"name": "c",
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9090}],
                "env": [{"name": "B", "value": "2"}],
                "volumeMounts": [{"mountPath": "/x", "readOnly": true}],
                "args": ["c"]}]}}),
            json!({"spec": {"containers": [{"name": "c",
                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 9090}],
                // New items come first, as on the API server.
                "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                "volumeMounts": [{"mountPath": "/x", "name": "v", "readOnly": true}],
                "args": ["c"]}]}}),
        ),
        // volumes, imagePullSecrets by name; hostAliases by ip; tolerations replace
        (
            "Pod",
            json!({"spec": {"volumes": [{"name": "v1", "emptyDir": {}}],
                "imagePullSecrets": [{"name": "s1"}], "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}],
                "tolerations": [{"key": "k1"}], "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}]}}),
            json!({"spec": {"volumes": [{"name": "v2", "emptyDir": {}}],
                "imagePullSecrets": [{"name": "s2"}], "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}],
                "tolerations": [{"key": "k2"}], "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}}),
            json!({"spec": {"volumes": [{"name": "v2", "emptyDir": {}}, {"name": "v1", "emptyDir": {}}],
                "imagePullSecrets": [{"name": "s2"}, {"name": "s1"}], "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}],
                "tolerations": [{"key": "k2"}], "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}}),
        ),
        // Service ports by port; ownerReferences by uid; finalizers merge as a set
        (
            "Service",
            json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]},
                   "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "2", "name": "y"}]},
                   "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "name": "x"}]},
                   "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
        ),
        // status.conditions by type
        (
            "Deployment",
            json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
        ),
        // Endpoints subsets are atomic
        (
            "Endpoints",
            json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]}),
            json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
            json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
        ),
        // null deletes, maps merge
        (
            "ConfigMap",
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"y": "2"}}),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"x": "1", "y": "2"}}),
        ),
    ];
    for (i, (kind, cur, patch, want)) in cases.into_iter().enumerate() {
        assert_eq!(smp(kind, cur, patch), want, "case {i}");
    }
}

#[test]
fn strategic_directives_table() {
    let pod = |containers: Value| json!({"spec": {"containers": containers}});
    let cases = vec![
        // $patch: delete of a list item by key
        (
            pod(json!([{"name": "a"}, {"name": "b"}])),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
            pod(json!([{"name": "b"}])),
        ),
        // $patch: replace as a list item replaces the list
        (
            pod(json!([{"name": "a"}, {"name": "b"}])),
            json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
            pod(json!([{"name": "c"}])),
        ),
        // $patch: replace in a map replaces the map
        (
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"b": "2", "$patch": "replace"}}}),
            json!({"metadata": {"labels": {"b": "2"}}}),
        ),
        // $patch: delete in a map empties it (as kubectl/the API server do)
        (
            json!({"metadata": {"labels": {"a": "1"}, "name": "x"}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"labels": {}, "name": "x"}}),
        ),
        // $patch: merge is the default
        (
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"b": "2", "$patch": "merge"}}}),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        ),
        // $retainKeys clears keys not listed
        (
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
        // $deleteFromPrimitiveList
        (
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        // $setElementOrder orders merged items and is never stored
        (
            pod(json!([{"name": "a"}, {"name": "b"}])),
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                            "containers": [{"name": "c"}]}}),
            pod(json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])),
        ),
    ];
    for (i, (cur, patch, want)) in cases.into_iter().enumerate() {
        assert_eq!(smp("Pod", cur, patch), want, "case {i}");
    }
}

#[test]
fn kubectl_client_side_apply_patch_on_replicaset() {
    // What `kubectl apply` sends after a config change: the new last-applied
    // annotation, $setElementOrder, and only the changed fields.
    let cur = rs(
        json!([{"name": "app", "image": "app:1", "env": [{"name": "X", "value": "1"}]},
                        {"name": "sidecar", "image": "side:1"}]),
    );
    let last = r#"{"apiVersion":"apps/v1","kind":"ReplicaSet"}"#;
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "app:2",
                            "$setElementOrder/env": [{"name": "X"}]}]}}}});
    let out = smp("ReplicaSet", cur, patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:2", "env": [{"name": "X", "value": "1"}]},
               {"name": "sidecar", "image": "side:1"}])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        json!(last)
    );
    assert!(!out.to_string().contains('$'), "directives leaked: {out}");
}

#[test]
fn kubectl_scale_patch() {
    let out = smp(
        "ReplicaSet",
        rs(json!([])),
        json!({"spec": {"replicas": 3}}),
    );
    assert_eq!(out["spec"]["replicas"], json!(3));
}

/// RFC 7386 merge patch that turns `a` into `b`.
fn merge_diff(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            let mut out = serde_json::Map::new();
            for k in am.keys() {
                if !bm.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            for (k, bv) in bm {
                match am.get(k) {
                    Some(av) if av == bv => {}
                    Some(av) => {
                        out.insert(k.clone(), merge_diff(av, bv));
                    }
                    None => {
                        out.insert(k.clone(), bv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", arb_json(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #[test]
    fn merge_patch_of_diff_gives_target(a in arb_object(), b in arb_object()) {
        let patch = merge_diff(&a, &b);
        let out = apply_patch("X", None, &a, PatchType::Merge, patch.to_string().as_bytes()).unwrap();
        prop_assert_eq!(out, b);
    }

    #[test]
    fn strategic_patch_of_diff_gives_target_for_plain_maps(a in arb_object(), b in arb_object()) {
        // Without merge keys, strategic merge of maps equals RFC 7386.
        let patch = merge_diff(&a, &b);
        let out = apply_patch("ConfigMap", None, &a, PatchType::Strategic, patch.to_string().as_bytes()).unwrap();
        prop_assert_eq!(out, b);
    }
}

// ---- server-side apply ----

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
}

fn ssa(cur: Option<&Value>, cfg: &Value, manager: &str, force: bool) -> Result<Value, PatchError> {
    server_side_apply(
        cfg["kind"].as_str().unwrap_or("ConfigMap"),
        None,
        cur,
        cfg,
        manager,
        force,
        None,
    )
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ssa_create_records_managed_fields_in_real_format() {
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}},
                     "spec": {"containers": [{"name": "app", "image": "i"}]}});
    let out = server_side_apply("Pod", None, None, &cfg, "kubectl", false, None).unwrap();
    let mf = &out["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl");
    assert_eq!(mf["operation"], "Apply");
    assert_eq!(mf["apiVersion"], "v1");
    assert_eq!(mf["fieldsType"], "FieldsV1");
    assert!(mf["time"].as_str().unwrap().ends_with('Z'));
    assert!(mf.get("subresource").is_none());
    assert_eq!(
        mf["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:app": {}}},
               "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
    );
    assert_eq!(out["spec"], cfg["spec"]);
}

#[test]
fn ssa_requires_identity_fields() {
    for cfg in [
        json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
        json!({"apiVersion": "v1", "metadata": {"name": "c"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}}),
    ] {
        assert!(
            matches!(
                server_side_apply("ConfigMap", None, None, &cfg, "m", false, None),
                Err(PatchError::Invalid(_))
            ),
            "{cfg}"
        );
    }
}

#[test]
fn ssa_same_config_twice_is_a_noop() {
    let cfg = cm(json!({"a": "1"}));
    let once = ssa(None, &cfg, "m", false).unwrap();
    let twice = ssa(Some(&once), &cfg, "m", false).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn ssa_two_managers_keep_both_and_removal_removes() {
    let a1 = ssa(None, &cm(json!({"a": "1", "x": "1"})), "A", false).unwrap();
    let b = ssa(Some(&a1), &cm(json!({"b": "2"})), "B", false).unwrap();
    assert_eq!(b["data"], json!({"a": "1", "x": "1", "b": "2"}));
    assert_eq!(
        managers(&b),
        vec![("A".into(), "Apply".into()), ("B".into(), "Apply".into())]
    );
    // A drops x from its config: x goes away, B's field stays.
    let a2 = ssa(Some(&b), &cm(json!({"a": "1"})), "A", false).unwrap();
    assert_eq!(a2["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn ssa_removing_a_label_deletes_it() {
    let with = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}});
    let without = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}});
    let one = ssa(None, &with, "kubectl", false).unwrap();
    let two = ssa(Some(&one), &without, "kubectl", false).unwrap();
    assert_eq!(two["metadata"]["labels"], json!({"a": "1"}));
}

#[test]
fn ssa_shared_field_survives_one_owner_leaving() {
    let a = ssa(None, &cm(json!({"s": "v"})), "A", false).unwrap();
    let b = ssa(Some(&a), &cm(json!({"s": "v"})), "B", false).unwrap();
    let a2 = ssa(Some(&b), &cm(json!({})), "A", false).unwrap();
    assert_eq!(a2["data"]["s"], "v");
}

#[test]
fn ssa_conflict_and_force() {
    let deploy = |replicas: i64| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": replicas}});
    let mut live = deploy(1);
    live["metadata"]["managedFields"] = json!([]);
    let base = deploy(1);
    let mut created = base.clone();
    record_update(None, &mut created, "kubectl-client-side-apply", None);
    let err = server_side_apply(
        "Deployment",
        None,
        Some(&created),
        &deploy(3),
        "kubectl",
        false,
        None,
    )
    .unwrap_err();
    let want = vec![OwnershipConflict {
        manager: "kubectl-client-side-apply".into(),
        field: ".spec.replicas".into(),
    }];
    assert_eq!(err, PatchError::Conflict(want.clone()));
    assert_eq!(
        conflict_message(&want, "apps/v1"),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    // Same value: shared, no conflict.
    let shared = server_side_apply(
        "Deployment",
        None,
        Some(&created),
        &deploy(1),
        "kubectl",
        false,
        None,
    )
    .unwrap();
    assert_eq!(managers(&shared).len(), 2);
    // Forced: the field changes hands.
    let forced = server_side_apply(
        "Deployment",
        None,
        Some(&created),
        &deploy(3),
        "kubectl",
        true,
        None,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(managers(&forced), vec![("kubectl".into(), "Apply".into())]);
}

#[test]
fn ssa_merges_containers_by_name_and_crd_lists_by_schema() {
    let pod = |c: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": c}});
    let a = server_side_apply(
        "Pod",
        None,
        None,
        &pod(json!([{"name": "app", "image": "a"}])),
        "A",
        false,
        None,
    )
    .unwrap();
    let b = server_side_apply(
        "Pod",
        None,
        Some(&a),
        &pod(json!([{"name": "side", "image": "s"}])),
        "B",
        false,
        None,
    )
    .unwrap();
    assert_eq!(
        b["spec"]["containers"],
        json!([{"name": "app", "image": "a"}, {"name": "side", "image": "s"}])
    );

    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object"}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}}}}}});
    let cr = |spec: Value| json!({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": spec});
    let a = server_side_apply(
        "Thing",
        Some(&schema),
        None,
        &cr(json!({"items": [{"name": "a", "v": 1}], "tags": ["x"], "args": ["1"]})),
        "A",
        false,
        None,
    )
    .unwrap();
    let b = server_side_apply(
        "Thing",
        Some(&schema),
        Some(&a),
        &cr(json!({"items": [{"name": "b", "v": 2}], "tags": ["y"]})),
        "B",
        false,
        None,
    )
    .unwrap();
    assert_eq!(
        b["spec"],
        json!({"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "tags": ["x", "y"], "args": ["1"]})
    );
    // Atomic list owned by A: B changing it conflicts.
    let err = server_side_apply(
        "Thing",
        Some(&schema),
        Some(&b),
        &cr(json!({"args": ["2"]})),
        "B",
        false,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::Conflict(c) if c[0].field == ".spec.args"));
}

#[test]
fn ssa_server_fields_and_status() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "u1", "resourceVersion": "5", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "data": {"a": "1"}, "status": {"phase": "old"}});
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "evil", "resourceVersion": "1", "managedFields": [{"manager": "x"}]},
        "data": {"a": "2"}, "status": {"phase": "new"}});
    let out = server_side_apply("ConfigMap", None, Some(&live), &cfg, "m", true, None).unwrap();
    assert_eq!(out["metadata"]["uid"], "u1");
    assert_eq!(out["metadata"]["resourceVersion"], "5");
    assert_eq!(out["status"]["phase"], "old");
    assert_eq!(out["data"]["a"], "2");
    let st = server_side_apply(
        "ConfigMap",
        None,
        Some(&out),
        &cfg,
        "m",
        // status.phase still belongs to "before-first-apply"; controllers force.
        true,
        Some("status"),
    )
    .unwrap();
    assert_eq!(st["status"]["phase"], "new");
    assert_eq!(st["data"]["a"], "2");
    let entry = st["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "status")
        .unwrap()
        .clone();
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
}

#[test]
fn record_update_moves_ownership_and_drops_empty_entries() {
    let a = ssa(None, &cm(json!({"a": "1"})), "A", false).unwrap();
    let mut next = a.clone();
    next["data"]["a"] = json!("2");
    record_update(Some(&a), &mut next, "editor", None);
    assert_eq!(managers(&next), vec![("editor".into(), "Update".into())]);
    assert_eq!(
        next["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    // A later apply by A of the old value now conflicts with the editor.
    let err = ssa(Some(&next), &cm(json!({"a": "1"})), "A", false).unwrap_err();
    assert!(matches!(err, PatchError::Conflict(c) if c[0].manager == "editor"));
}

proptest! {
    #[test]
    fn ssa_is_idempotent_and_keeps_other_managers(
        a in prop::collection::btree_map("[a-e]", "[x-z]", 0..4),
        b in prop::collection::btree_map("[f-j]", "[x-z]", 0..4),
    ) {
        let cfg_a = cm(json!(a));
        let cfg_b = cm(json!(b));
        let one = ssa(None, &cfg_a, "A", false).unwrap();
        let two = ssa(Some(&one), &cfg_b, "B", false).unwrap();
        let again = ssa(Some(&two), &cfg_b, "B", false).unwrap();
        prop_assert_eq!(&two, &again);
        for (k, v) in a.iter().chain(b.iter()) {
            prop_assert_eq!(&two["data"][k], &json!(v));
        }
    }
}

#[test]
fn record_update_on_create_and_item_edits() {
    let mut created = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"},
        "spec": {"containers": [{"name": "app", "image": "a:1"}]}});
    record_update(None, &mut created, "kubectl-create", None);
    let e = &created["metadata"]["managedFields"][0];
    assert_eq!(e["operation"], "Update");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
    );

    // A controller changing only the image takes the image, not the item.
    let mut next = created.clone();
    next["spec"]["containers"][0]["image"] = json!("a:2");
    next["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    record_update(Some(&created), &mut next, "controller", None);
    let mf = next["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 2);
    assert_eq!(
        mf[0]["fieldsV1"],
        json!({"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}}}}})
    );
    assert_eq!(mf[1]["manager"], "controller");
    assert_eq!(
        mf[1]["fieldsV1"],
        json!({"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}})
    );
    // An update that changes nothing adds no entry.
    let mut same = next.clone();
    record_update(Some(&next), &mut same, "idle", None);
    assert_eq!(same, next);
}

#[test]
fn conflict_message_with_several_conflicts() {
    let c = |m: &str, f: &str| OwnershipConflict {
        manager: m.into(),
        field: f.into(),
    };
    assert_eq!(
        conflict_message(
            &[
                c("b", ".spec.replicas"),
                c("a", ".data.x"),
                c("b", ".spec.paused")
            ],
            "apps/v1"
        ),
        "Apply failed with 3 conflicts: conflicts with \"a\" using apps/v1:\n- .data.x\nconflicts with \"b\" using apps/v1:\n- .spec.replicas\n- .spec.paused"
    );
}

/// Differential test against real kubectl: `kubectl patch --local --type strategic`
/// runs the API server's strategic merge code; the fixture holds its outputs
/// (see tests/fixtures/gen_sandbox_smp_kubectl.py).
#[test]
fn strategic_merge_matches_kubectl() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/sandbox_smp_kubectl.json")).unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let got = smp(
            case["kind"].as_str().unwrap(),
            case["original"].clone(),
            case["patch"].clone(),
        );
        assert_eq!(got, case["kubectl"], "{}", case["name"]);
    }
}

#[test]
fn record_update_managed_fields_from_the_request() {
    let a = ssa(None, &cm(json!({"a": "1"})), "A", false).unwrap();
    // `[]` keeps the stored entries.
    let mut kept = a.clone();
    kept["metadata"]["managedFields"] = json!([]);
    record_update(Some(&a), &mut kept, "editor", None);
    assert_eq!(managers(&kept), vec![("A".into(), "Apply".into())]);
    // `[{}]` clears them; the update itself changed nothing, so none remain.
    let mut cleared = a.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&a), &mut cleared, "editor", None);
    assert!(cleared["metadata"].get("managedFields").is_none());
}

fn arb_containers() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        "[a-c]",
        (
            "[x-z]:[1-3]",
            prop::collection::btree_map("[A-C]", "[0-2]", 0..3),
        ),
        0..3,
    )
    .prop_map(|m| {
        Value::Array(
            m.into_iter()
                .map(|(name, (image, env))| {
                    let env: Vec<Value> = env
                        .into_iter()
                        .map(|(n, v)| json!({"name": n, "value": v}))
                        .collect();
                    json!({"name": name, "image": image, "env": env})
                })
                .collect(),
        )
    })
}

fn pod_with(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

proptest! {
    #[test]
    fn strategic_patch_is_idempotent(live in arb_containers(), patch in arb_containers()) {
        let patch = json!({"spec": {"containers": patch}});
        let once = smp("Pod", pod_with(live), patch.clone());
        let twice = smp("Pod", once.clone(), patch);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn ssa_of_containers_twice_is_a_noop_and_keeps_every_container(
        a in arb_containers(),
        b in arb_containers(),
    ) {
        let one = server_side_apply("Pod", None, None, &pod_with(a.clone()), "A", false, None).unwrap();
        let again = server_side_apply("Pod", None, Some(&one), &pod_with(a.clone()), "A", false, None).unwrap();
        prop_assert_eq!(&one, &again);
        // B applies its own containers; where they overlap with A's a conflict is
        // allowed, otherwise every container of both is present.
        if let Ok(both) = server_side_apply("Pod", None, Some(&one), &pod_with(b.clone()), "B", false, None) {
            let names: Vec<&Value> = both["spec"]["containers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
            for c in a.as_array().unwrap().iter().chain(b.as_array().unwrap()) {
                prop_assert!(names.contains(&&c["name"]));
            }
        }
    }
}

#[test]
fn ssa_atomic_maps_are_owned_and_replaced_whole() {
    let d = |sel: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": sel}}})
    };
    let one = server_side_apply(
        "Deployment",
        None,
        None,
        &d(json!({"a": "1", "b": "2"})),
        "A",
        false,
        None,
    )
    .unwrap();
    assert_eq!(
        one["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:selector": {}}})
    );
    let two = server_side_apply(
        "Deployment",
        None,
        Some(&one),
        &d(json!({"a": "1"})),
        "A",
        false,
        None,
    )
    .unwrap();
    assert_eq!(two["spec"]["selector"], json!({"matchLabels": {"a": "1"}}));
}

#[test]
fn record_update_for_custom_resource_tracks_map_lists_by_key() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "steps": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object"}}}}}});
    let cr = |w: i64| {
        json!({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t"},
        "spec": {"steps": [{"name": "a", "weight": w}]}})
    };
    let applied =
        server_side_apply("Thing", Some(&schema), None, &cr(1), "A", false, None).unwrap();
    let mut next = applied.clone();
    next["spec"]["steps"][0]["weight"] = json!(2);
    record_update_for(
        "Thing",
        Some(&schema),
        Some(&applied),
        &mut next,
        "ctl",
        None,
    );
    let mf = next["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(
        mf[1]["fieldsV1"],
        json!({"f:spec": {"f:steps": {"k:{\"name\":\"a\"}": {"f:weight": {}}}}})
    );
    // A re-applying its old weight now conflicts with the controller.
    let err = server_side_apply(
        "Thing",
        Some(&schema),
        Some(&next),
        &cr(1),
        "A",
        false,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::Conflict(c) if c[0].manager == "ctl" && c[0].field == ".spec.steps[name=\"a\"].weight")
    );
}

#[test]
fn ssa_on_unmanaged_object_attributes_it_to_before_first_apply() {
    let live = cm(json!({"a": "1", "b": "2"}));
    let err = ssa(Some(&live), &cm(json!({"a": "9"})), "kubectl", false).unwrap_err();
    assert_eq!(
        err,
        PatchError::Conflict(vec![OwnershipConflict {
            manager: "before-first-apply".into(),
            field: ".data.a".into()
        }])
    );
    let same = ssa(Some(&live), &cm(json!({"a": "1"})), "kubectl", false).unwrap();
    assert_eq!(
        managers(&same),
        vec![
            ("before-first-apply".into(), "Update".into()),
            ("kubectl".into(), "Apply".into())
        ]
    );
    assert_eq!(same["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn ssa_list_order_follows_the_configuration() {
    let pod = |names: &[&str]| {
        let c: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "image": n}))
            .collect();
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": c}})
    };
    let names = |o: &Value| -> Vec<String> {
        o["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let a = server_side_apply("Pod", None, None, &pod(&["a", "b", "c"]), "A", false, None).unwrap();
    let re = server_side_apply(
        "Pod",
        None,
        Some(&a),
        &pod(&["c", "a", "b"]),
        "A",
        false,
        None,
    )
    .unwrap();
    assert_eq!(names(&re), ["c", "a", "b"]);
    // Items only another manager applied keep their place.
    let x = server_side_apply("Pod", None, Some(&a), &pod(&["x"]), "X", false, None).unwrap();
    assert_eq!(names(&x), ["a", "b", "c", "x"]);
    let b = server_side_apply(
        "Pod",
        None,
        Some(&x),
        &pod(&["c", "b", "a"]),
        "A",
        false,
        None,
    )
    .unwrap();
    // structured-merge-diff walks the live list: "x" comes out once the walk has
    // passed the shared "c" it followed.
    assert_eq!(names(&b), ["c", "x", "b", "a"]);
}

#[test]
fn set_element_order_after_its_field_in_the_patch() {
    let cur = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let patch = r#"{"spec":{"containers":[{"name":"a","image":"x"}],"$setElementOrder/containers":[{"name":"b"},{"name":"a"}]}}"#;
    let out = apply_patch("Pod", None, &cur, PatchType::Strategic, patch.as_bytes()).unwrap();
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "b"}, {"name": "a", "image": "x"}]}})
    );
}
