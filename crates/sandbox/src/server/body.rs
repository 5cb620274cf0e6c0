//! Decoding request bodies (JSON or YAML) and the checks every write makes on
//! the object it got: kind, apiVersion, namespace and name against the URL.

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use crate::registry::ResourceType;
use crate::schema::FieldError;

pub fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses a JSON or YAML body into an object; anything else is a 400.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let ct = content_type(headers);
    let base = ct.split(';').next().unwrap_or("").trim();
    if base == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(body);
    }
    // Other encodings (CBOR, ...) are never read.
    if !base.is_empty()
        && !matches!(
            base,
            "application/json" | "application/yaml" | "text/yaml" | "application/x-yaml" | "*/*"
        )
    {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got \"{ct}\")"
        )));
    }
    let yaml = base.contains("yaml");
    let value: Value = if yaml {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML request body: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(value)
}

/// Checks the body's apiVersion/kind against the URL's kind and fills them in
/// when the client left them out.
pub fn check_type(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let api_version = rt.api_version();
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
        && v != api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(rt.kind));
    }
    Ok(())
}

fn meta_mut(obj: &mut Value) -> ApiResult<&mut serde_json::Map<String, Value>> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    map.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Aligns `metadata.namespace` with the URL: filled in when empty, 400 when it
/// contradicts the URL, removed for cluster-scoped kinds.
pub fn check_namespace(rt: &ResourceType, url_ns: Option<&str>, obj: &mut Value) -> ApiResult<()> {
    let meta = meta_mut(obj)?;
    if !rt.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    match url_ns {
        Some(ns) if body_ns.is_empty() => {
            meta.insert("namespace".into(), json!(ns));
        }
        Some(ns) if body_ns != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Aligns `metadata.name` with the URL for PUT/PATCH: filled in when empty, 400
/// when different.
pub fn check_name(url_name: &str, obj: &mut Value) -> ApiResult<()> {
    let meta = meta_mut(obj)?;
    let body_name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if body_name.is_empty() {
        meta.insert("name".into(), json!(url_name));
    } else if body_name != url_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `metadata.name` (or `generateName`) must be a DNS subdomain for every kind.
pub fn validate_name(obj: &Value) -> Vec<FieldError> {
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        if generate.is_empty() {
            return vec![FieldError {
                reason: "FieldValueRequired".into(),
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            }];
        }
        // generateName gets 5 characters appended, so it only has to be a valid prefix.
        let probe = format!("{generate}a");
        if !is_dns_subdomain(&probe) {
            return vec![FieldError {
                reason: "FieldValueInvalid".into(),
                field: "metadata.generateName".into(),
                message: format!("Invalid value: \"{generate}\": {DNS1123_SUBDOMAIN_MSG}"),
            }];
        }
        return Vec::new();
    }
    if is_dns_subdomain(name) {
        Vec::new()
    } else {
        vec![FieldError {
            reason: "FieldValueInvalid".into(),
            field: "metadata.name".into(),
            message: format!("Invalid value: \"{name}\": {DNS1123_SUBDOMAIN_MSG}"),
        }]
    }
}

pub fn object_name(obj: &Value) -> &str {
    obj.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("web-1.example"));
        assert!(!is_dns_subdomain("Web"));
        assert!(!is_dns_subdomain("-web"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(""));
        assert_eq!(
            validate_name(&json!({"metadata": {"name": "Bad_Name"}}))[0].field,
            "metadata.name"
        );
        assert!(validate_name(&json!({"metadata": {"generateName": "web-"}})).is_empty());
    }

    #[test]
    fn decodes_yaml_and_rejects_garbage() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/yaml".parse().unwrap());
        assert_eq!(decode_object(&h, b"a: 1\n").unwrap()["a"], json!(1));
        assert_eq!(
            decode_object(&HeaderMap::new(), b"{nope").unwrap_err().code,
            400
        );
        assert_eq!(
            decode_object(&HeaderMap::new(), b"[1]").unwrap_err().code,
            400
        );
    }
}
