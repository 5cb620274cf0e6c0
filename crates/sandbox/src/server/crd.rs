//! CustomResourceDefinitions: checking them, turning their served versions into
//! registry entries, their status conditions, and the built-in Gateway API
//! `HTTPRoute` CRD the sandbox installs at start.

use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use crate::registry::{GroupResource, PrinterColumn, Registry, ResourceType, ScaleSubresource};
use crate::schema::{self, FieldError};
use crate::store::{Store, now_rfc3339};

pub const CRD_GROUP: &str = "apiextensions.k8s.io";

pub fn is_crd(rt: &ResourceType) -> bool {
    rt.group == CRD_GROUP && rt.plural == "customresourcedefinitions"
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Places a schema error at its position inside the CRD.
fn schema_field(i: usize, field: &str) -> String {
    let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
    if let Some(rest) = field.strip_prefix("spec.versions[") {
        let after = rest.split_once(']').map(|(_, r)| r).unwrap_or("");
        return format!("spec.versions[{i}]{after}");
    }
    if field.is_empty() || field == "openAPIV3Schema" {
        return base;
    }
    if let Some(rest) = field.strip_prefix("openAPIV3Schema") {
        return format!("spec.versions[{i}].schema.openAPIV3Schema{rest}");
    }
    format!("{base}.{field}")
}

/// The kinds a CRD serves, or the field errors that make it invalid.
pub fn served_types(crd: &Value) -> Result<Vec<ResourceType>, Vec<FieldError>> {
    let mut errs = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    let scope = s(crd, "/spec/scope");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group"));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural"));
    }
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind"));
    }
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push(FieldError {
            reason: "FieldValueNotSupported".into(),
            field: "spec.scope".into(),
            message: format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        });
    }
    let name = s(crd, "/metadata/name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &storage.to_string(),
            "must have exactly one version marked as storage version",
        ));
    }
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let mut types = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = s(v, "/name");
        if vname.is_empty() {
            errs.push(FieldError::required(&format!("spec.versions[{i}].name")));
        }
        let Some(schema_v) = v.pointer("/schema/openAPIV3Schema") else {
            errs.push(FieldError::required(&format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
            continue;
        };
        for e in schema::check_structural(schema_v) {
            errs.push(FieldError {
                field: schema_field(i, &e.field),
                ..e
            });
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let scale = v.pointer("/subresources/scale").map(|sc| ScaleSubresource {
            spec_replicas_path: s(sc, "/specReplicasPath").to_string(),
            status_replicas_path: s(sc, "/statusReplicasPath").to_string(),
            label_selector_path: sc
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(String::from),
        });
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: s(c, "/name").to_string(),
                        type_: s(c, "/type").to_string(),
                        json_path: s(c, "/jsonPath").to_string(),
                        description: s(c, "/description").to_string(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        types.push(ResourceType {
            group: group.to_string(),
            version: vname.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            namespaced: scope == "Namespaced",
            short_names: strings(crd, "/spec/names/shortNames"),
            categories: strings(crd, "/spec/names/categories"),
            status_subresource: v.pointer("/subresources/status").is_some(),
            scale,
            schema: Some(schema_v.clone()),
            printer_columns,
        });
    }
    if errs.is_empty() {
        Ok(types)
    } else {
        Err(errs)
    }
}

/// Checks a CRD about to be written and fills its status (names accepted, established).
pub fn prepare(rt: &ResourceType, crd: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    served_types(crd).map_err(|errs| ApiError::invalid(rt, s(crd, "/metadata/name"), &errs))?;
    let mut names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let kind = s(crd, "/spec/names/kind").to_string();
    if s(&names, "/singular").is_empty() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if s(&names, "/listKind").is_empty() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let storage: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // Keep the transition time of conditions that were already true.
    let since = old
        .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(now_rfc3339);
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "acceptedNames": names,
        "storedVersions": storage,
    });
    Ok(())
}

/// Serves what a stored CRD declares (replacing what an older revision declared).
pub fn register(registry: &Registry, crd: &Value) {
    let Ok(types) = served_types(crd) else {
        return;
    };
    registry.unregister(s(crd, "/spec/group"), s(crd, "/spec/names/plural"));
    for t in types {
        tracing::info!(group = %t.group, version = %t.version, kind = %t.kind, "registered custom resource");
        registry.register(t);
    }
}

/// A deleted CRD takes its kind and every object of it along.
pub fn unregister(store: &Store, registry: &Registry, crd: &Value) {
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    registry.unregister(group, plural);
    store.drop_kind(&GroupResource::new(group, plural));
    tracing::info!(%group, %plural, "unregistered custom resource");
}

/// Gateway API `HTTPRoute` (gateway.networking.k8s.io/v1), reduced to the fields
/// the sandbox's data plane and redblack's traffic routing use.
pub fn httproute_crd() -> Value {
    let string = json!({"type": "string"});
    let port = json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535});
    let parent_ref = json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "group": string, "kind": string, "namespace": string, "name": string,
            "sectionName": string, "port": port,
        },
    });
    let backend_ref = json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "group": string, "kind": string, "namespace": string, "name": string,
            "port": port,
            "weight": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000000, "default": 1},
        },
    });
    let header_match = json!({
        "type": "object",
        "required": ["name", "value"],
        "properties": {"type": string, "name": string, "value": string},
    });
    let route_match = json!({
        "type": "object",
        "properties": {
            "path": {"type": "object", "properties": {
                "type": {"type": "string", "enum": ["Exact", "PathPrefix", "RegularExpression"], "default": "PathPrefix"},
                "value": {"type": "string", "default": "/"},
            }},
            "headers": {"type": "array", "items": header_match},
            "queryParams": {"type": "array", "items": header_match},
            "method": string,
        },
    });
    let filter = json!({
        "type": "object",
        "required": ["type"],
        "properties": {"type": string},
        "x-kubernetes-preserve-unknown-fields": true,
    });
    let schema = json!({
        "type": "object",
        "properties": {
            "apiVersion": string,
            "kind": string,
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "parentRefs": {"type": "array", "items": parent_ref},
                    "hostnames": {"type": "array", "items": string},
                    "rules": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "name": string,
                            "matches": {"type": "array", "items": route_match},
                            "filters": {"type": "array", "items": filter},
                            "backendRefs": {"type": "array", "items": backend_ref},
                        },
                    }},
                },
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io",
                     "annotations": {"redblack.io/sandbox": "reduced Gateway API schema"}},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute",
                      "listKind": "HTTPRouteList", "categories": ["gateway-api"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn httproute_crd_serves_one_kind() {
        let types = served_types(&httproute_crd()).unwrap();
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].kind, "HTTPRoute");
        assert!(types[0].status_subresource);
        assert_eq!(types[0].printer_columns.len(), 2);
    }

    #[test]
    fn wrong_name_and_missing_fields_are_reported() {
        let mut crd = httproute_crd();
        crd["metadata"]["name"] = json!("routes.example.com");
        crd["spec"]["scope"] = json!("Galaxy");
        let errs = served_types(&crd).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"metadata.name"), "{fields:?}");
        assert!(fields.contains(&"spec.scope"), "{fields:?}");
        assert_eq!(
            schema_field(2, "properties[spec].type"),
            "spec.versions[2].schema.openAPIV3Schema.properties[spec].type"
        );
        assert_eq!(
            schema_field(1, "spec.versions[0].schema.openAPIV3Schema.type"),
            "spec.versions[1].schema.openAPIV3Schema.type"
        );
    }
}
