//! How a list merges, decided by kind + field path: the strategic merge keys of the
//! built-in kinds, or `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` of a
//! CRD schema. Both strategic merge patch and server-side apply ask this module.

use serde_json::Value;

/// How the items of one list field combine with another version of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Associative list: items are maps identified by these key fields.
    Map(Vec<String>),
    /// Set of primitives: merging is a union.
    Set,
    /// Replaced as a whole.
    Atomic,
}

/// Where the merge rules come from.
#[derive(Clone, Copy, Debug)]
pub enum Rules<'a> {
    /// A built-in kind, e.g. `Deployment`; lists are looked up in a fixed table.
    Builtin(&'a str),
    /// A custom resource's `openAPIV3Schema`.
    Schema(&'a Value),
}

impl Rules<'_> {
    /// `path` is the list field's path from the object root, field names only
    /// (list items do not add a segment), e.g. `["spec", "template", "spec", "containers"]`.
    pub fn list_kind(&self, path: &[&str]) -> ListKind {
        match self {
            Rules::Builtin(kind) => builtin_list_kind(kind, path),
            // A CRD schema does not describe metadata; it is ObjectMeta as everywhere.
            Rules::Schema(_) if path.first() == Some(&"metadata") => builtin_list_kind("", path),
            Rules::Schema(schema) => schema_list_kind(schema, path),
        }
    }
}

impl Rules<'_> {
    /// True when the map (or struct) at `path` is owned and replaced as a whole by
    /// server-side apply: `x-kubernetes-map-type: atomic` in a CRD schema; for
    /// built-ins, label selectors of workloads and a PodSpec's `nodeSelector`.
    pub fn map_is_atomic(&self, path: &[&str]) -> bool {
        match self {
            Rules::Schema(_) if path.first() == Some(&"metadata") => false,
            Rules::Schema(schema) => {
                schema_node(schema, path)
                    .and_then(|n| n.get("x-kubernetes-map-type"))
                    .and_then(Value::as_str)
                    == Some("atomic")
            }
            Rules::Builtin(kind) => {
                let workload = matches!(
                    *kind,
                    "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job"
                );
                let prefix = pod_spec_prefix(kind);
                (workload && path == ["spec", "selector"])
                    || (!prefix.is_empty()
                        && path.len() == prefix.len() + 1
                        && path.starts_with(prefix)
                        && path.last() == Some(&"nodeSelector"))
            }
        }
    }
}

/// Where a kind embeds a PodSpec. Kinds not listed have no pod spec.
fn pod_spec_prefix(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["spec"],
        "ReplicaSet"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicationController"
        | "Job" => &["spec", "template", "spec"],
        "PodTemplate" => &["template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &[],
    }
}

fn map(keys: &[&str]) -> ListKind {
    ListKind::Map(keys.iter().map(|k| k.to_string()).collect())
}

fn builtin_list_kind(kind: &str, path: &[&str]) -> ListKind {
    // Metadata lists exist in every kind, also in embedded templates' metadata.
    match path {
        [.., "metadata", "ownerReferences"] => return map(&["uid"]),
        [.., "metadata", "finalizers"] => return ListKind::Set,
        ["status", "conditions"] => return map(&["type"]),
        _ => {}
    }
    let prefix = pod_spec_prefix(kind);
    if !prefix.is_empty()
        && path.len() > prefix.len()
        && path.starts_with(prefix)
        && let Some(k) = pod_spec_list_kind(&path[prefix.len()..])
    {
        return k;
    }
    match (kind, path) {
        ("Service", ["spec", "ports"]) => map(&["port"]),
        ("Pod", ["status", "podIPs"]) => map(&["ip"]),
        // Endpoints subsets are atomic in strategic merge.
        ("Endpoints", ["subsets"]) => ListKind::Atomic,
        _ => ListKind::Atomic,
    }
}

/// Lists inside a PodSpec, `rel` relative to the PodSpec.
fn pod_spec_list_kind(rel: &[&str]) -> Option<ListKind> {
    const CONTAINERS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
    Some(match rel {
        [c] if CONTAINERS.contains(c) => map(&["name"]),
        ["volumes"] | ["imagePullSecrets"] | ["resourceClaims"] | ["schedulingGates"] => {
            map(&["name"])
        }
        ["hostAliases"] => map(&["ip"]),
        ["topologySpreadConstraints"] => map(&["topologyKey"]),
        [c, field] if CONTAINERS.contains(c) => match *field {
            "ports" => map(&["containerPort"]),
            "env" => map(&["name"]),
            "volumeMounts" => map(&["mountPath"]),
            "volumeDevices" => map(&["devicePath"]),
            _ => return None,
        },
        _ => return None,
    })
}

/// Walks the schema along `path` and reads the list annotations at its end.
fn schema_list_kind(schema: &Value, path: &[&str]) -> ListKind {
    let Some(node) = schema_node(schema, path) else {
        return ListKind::Atomic;
    };
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let keys: Vec<String> = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| {
                    ks.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                ListKind::Atomic
            } else {
                ListKind::Map(keys)
            }
        }
        Some("set") => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

/// The schema node of a field path; array schemas are stepped through into `items`
/// because list items add no path segment.
pub fn schema_node<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut node = schema;
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            // The previous segment may have been a list: step into its items.
            if let Some(items) = node.get("items") {
                node = items;
            }
        }
        node = match node.get("properties").and_then(|p| p.get(*seg)) {
            Some(n) => n,
            None => match node.get("additionalProperties") {
                Some(ap) if ap.is_object() => ap,
                _ => return None,
            },
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_table() {
        let cases: &[(&str, &[&str], ListKind)] = &[
            ("Pod", &["spec", "containers"], map(&["name"])),
            (
                "ReplicaSet",
                &["spec", "template", "spec", "containers"],
                map(&["name"]),
            ),
            (
                "Deployment",
                &["spec", "template", "spec", "initContainers"],
                map(&["name"]),
            ),
            (
                "Pod",
                &["spec", "containers", "ports"],
                map(&["containerPort"]),
            ),
            ("Pod", &["spec", "containers", "env"], map(&["name"])),
            (
                "Pod",
                &["spec", "containers", "volumeMounts"],
                map(&["mountPath"]),
            ),
            (
                "Pod",
                &["spec", "containers", "volumeDevices"],
                map(&["devicePath"]),
            ),
            ("Pod", &["spec", "containers", "args"], ListKind::Atomic),
            ("Pod", &["spec", "containers", "command"], ListKind::Atomic),
            ("Pod", &["spec", "volumes"], map(&["name"])),
            ("Pod", &["spec", "imagePullSecrets"], map(&["name"])),
            ("Pod", &["spec", "hostAliases"], map(&["ip"])),
            (
                "Pod",
                &["spec", "topologySpreadConstraints"],
                map(&["topologyKey"]),
            ),
            ("Pod", &["spec", "tolerations"], ListKind::Atomic),
            ("Pod", &["spec", "containers", "envFrom"], ListKind::Atomic),
            (
                "Pod",
                &["spec", "containers", "resizePolicy"],
                ListKind::Atomic,
            ),
            ("Pod", &["spec", "resourceClaims"], map(&["name"])),
            ("Pod", &["spec", "schedulingGates"], map(&["name"])),
            ("Pod", &["status", "podIPs"], map(&["ip"])),
            ("Service", &["spec", "ports"], map(&["port"])),
            ("ConfigMap", &["metadata", "ownerReferences"], map(&["uid"])),
            ("Namespace", &["metadata", "finalizers"], ListKind::Set),
            ("Deployment", &["status", "conditions"], map(&["type"])),
            ("Endpoints", &["subsets"], ListKind::Atomic),
            // A Service's spec.ports is not a container's ports and vice versa.
            ("Pod", &["spec", "ports"], ListKind::Atomic),
        ];
        for (kind, path, want) in cases {
            assert_eq!(
                &Rules::Builtin(kind).list_kind(path),
                want,
                "{kind} {path:?}"
            );
        }
    }

    #[test]
    fn schema_annotations() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {"tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}},
            "plain": {"type": "array", "items": {"type": "string"}}
        }}}});
        let r = Rules::Schema(&schema);
        assert_eq!(r.list_kind(&["spec", "items"]), map(&["name"]));
        assert_eq!(r.list_kind(&["spec", "items", "tags"]), ListKind::Set);
        assert_eq!(r.list_kind(&["spec", "plain"]), ListKind::Atomic);
        assert_eq!(r.list_kind(&["spec", "nope"]), ListKind::Atomic);
        assert_eq!(r.list_kind(&["metadata", "finalizers"]), ListKind::Set);
        assert_eq!(r.list_kind(&["metadata", "ownerReferences"]), map(&["uid"]));
        assert!(!r.map_is_atomic(&["spec"]));
        let atomic = json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-map-type": "atomic"}}});
        assert!(Rules::Schema(&atomic).map_is_atomic(&["spec"]));
        assert!(Rules::Builtin("Deployment").map_is_atomic(&["spec", "selector"]));
        assert!(!Rules::Builtin("Service").map_is_atomic(&["spec", "selector"]));
        assert!(Rules::Builtin("Pod").map_is_atomic(&["spec", "nodeSelector"]));
    }
}
