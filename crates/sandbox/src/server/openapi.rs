//! A minimal OpenAPI v3: per group/version, the PATCH operations with their GVK
//! and the `fieldValidation` parameter, which is what kubectl checks before it
//! trusts the server with validation. No strategic-merge content type is
//! declared, so kubectl computes client-side apply patches from its built-in types.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType};

/// `api/v1`, `apis/apps/v1`, ...: the keys of `/openapi/v3`.
fn gv_path(t: &ResourceType) -> String {
    if t.group.is_empty() {
        format!("api/{}", t.version)
    } else {
        format!("apis/{}/{}", t.group, t.version)
    }
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn patch_op(t: &ResourceType) -> Value {
    json!({
        "patch": {
            "operationId": format!("patch{}", t.kind),
            "parameters": [
                query_param("dryRun"),
                query_param("fieldManager"),
                query_param("fieldValidation"),
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
            ],
            "requestBody": {"content": {
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
            }, "required": true},
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
        }
    })
}

/// The document for one group/version (`api/v1`, `apis/apps/v1`).
pub fn gv_document(registry: &Registry, path: &str) -> Option<Value> {
    let types: Vec<ResourceType> = registry
        .all()
        .into_iter()
        .filter(|t| gv_path(t) == path)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for t in &types {
        let base = format!("/{}", gv_path(t));
        let object = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        if t.status_subresource {
            paths.insert(format!("{object}/status"), patch_op(t));
        }
        paths.insert(object, patch_op(t));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (redblack sandbox)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn hash_of(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: where each group/version document lives, with a content hash so
/// clients' caches notice new CRDs.
pub fn root(registry: &Registry) -> Value {
    let mut gvs: Vec<String> = registry.all().iter().map(gv_path).collect();
    gvs.sort();
    gvs.dedup();
    let mut paths = serde_json::Map::new();
    for gv in gvs {
        if let Some(doc) = gv_document(registry, &gv) {
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash_of(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_ops_carry_gvk_and_field_validation() {
        let reg = Registry::new();
        let root = root(&reg);
        assert!(
            root["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
        let doc = gv_document(&reg, "apis/apps/v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "ReplicaSet");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
        assert!(gv_document(&reg, "apis/nope/v1").is_none());
    }
}
