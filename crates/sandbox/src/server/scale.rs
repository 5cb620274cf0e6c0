//! The `scale` subresource (autoscaling/v1 Scale) of ReplicaSets, Deployments and
//! custom resources that declare `subresources.scale`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::body::{self, decode_object};
use super::errors::{ApiError, ApiResult};
use super::jsonpath;
use super::respond::{json_response, with_warnings};
use super::state::{Req, Shared};
use super::write::{Part, current, patch_err, write_object};
use crate::patch::{self, PatchType};
use crate::registry::{ResourceType, ScaleSubresource};

fn scale_spec(rt: &ResourceType) -> ApiResult<&ScaleSubresource> {
    rt.scale.as_ref().ok_or_else(ApiError::no_route)
}

/// `matchLabels` and `matchExpressions` as a selector string.
fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(
                match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                    "In" => format!("{key} in ({})", values.join(",")),
                    "NotIn" => format!("{key} notin ({})", values.join(",")),
                    "Exists" => key.to_string(),
                    _ => format!("!{key}"),
                },
            );
        }
    }
    parts.join(",")
}

/// The Scale view of an object.
pub fn scale_of(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let spec = scale_spec(rt)?;
    let int = |path: &str| {
        jsonpath::get(obj, path)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let selector = if rt.schema.is_none() {
        obj.pointer("/spec/selector")
            .map(selector_string)
            .unwrap_or_default()
    } else {
        spec.label_selector_path
            .as_deref()
            .and_then(|p| jsonpath::get(obj, p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut scale_meta = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            scale_meta[f] = v.clone();
        }
    }
    let mut status = json!({"replicas": int(&spec.status_replicas_path)});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(&spec.spec_replicas_path)},
        "status": status,
    }))
}

pub fn get(st: &Shared, req: &Req) -> ApiResult<Response> {
    let cur = current(st, req)?;
    Ok(json_response(StatusCode::OK, &scale_of(&req.rt, &cur)?))
}

/// Writes the replica count of `scale` into the object.
fn write_scale(st: &Shared, req: &Req, cur: &Value, scale: &Value) -> ApiResult<Response> {
    let spec = scale_spec(&req.rt)?;
    if scale
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Scale")
    {
        return Err(ApiError::bad_request(
            "the body must be an autoscaling/v1 Scale",
        ));
    }
    if let Some(n) = scale.pointer("/metadata/name").and_then(Value::as_str)
        && !n.is_empty()
        && n != req.name()
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            req.name()
        )));
    }
    let replicas = match scale.pointer("/spec/replicas") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => n.clone(),
        Some(Value::Null) | None => serde_json::Number::from(0),
        Some(other) => {
            let errs = [crate::schema::FieldError {
                reason: "FieldValueInvalid".into(),
                field: "spec.replicas".into(),
                message: format!("Invalid value: {other}: must be greater than or equal to 0"),
            }];
            return Err(ApiError::invalid(&req.rt, req.name(), &errs));
        }
    };
    let mut next = cur.clone();
    jsonpath::set(&mut next, &spec.spec_replicas_path, Value::Number(replicas));
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        next["metadata"]["resourceVersion"] = rv.clone();
    }
    let (stored, warnings) = write_object(st, req, cur, next, Part::Main, true)?;
    Ok(with_warnings(
        json_response(StatusCode::OK, &scale_of(&req.rt, &stored)?),
        &warnings,
    ))
}

pub fn update(st: &Shared, req: &Req) -> ApiResult<Response> {
    scale_spec(&req.rt)?;
    let scale = decode_object(&req.headers, &req.body)?;
    let cur = current(st, req)?;
    write_scale(st, req, &cur, &scale)
}

pub fn patch(st: &Shared, req: &Req) -> ApiResult<Response> {
    scale_spec(&req.rt)?;
    let ct = body::content_type(&req.headers);
    let ptype = PatchType::from_content_type(ct).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got \"{ct}\")"
        ))
    })?;
    let cur = current(st, req)?;
    let scale = scale_of(&req.rt, &cur)?;
    let patched = match ptype {
        PatchType::Apply => {
            let applied: Value = serde_yaml::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let manager = req.field_manager();
            patch::server_side_apply(
                "Scale",
                None,
                Some(&scale),
                &applied,
                &manager,
                req.flag("force"),
                None,
            )
        }
        // Scale is a built-in type: strategic merge works on it even for CRs.
        other => patch::apply_patch("Scale", None, &scale, other, &req.body),
    }
    .map_err(|e| patch_err(e, &req.rt, req.name(), &req.body))?;
    write_scale(st, req, &cur, &patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin_types;

    #[test]
    fn replicaset_scale_view() {
        let rt = builtin_types()
            .into_iter()
            .find(|t| t.kind == "ReplicaSet")
            .unwrap();
        let rs = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&rt, &rs).unwrap();
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        let cm = builtin_types()
            .into_iter()
            .find(|t| t.kind == "ConfigMap")
            .unwrap();
        assert_eq!(scale_of(&cm, &rs).unwrap_err().code, 404);
    }
}
