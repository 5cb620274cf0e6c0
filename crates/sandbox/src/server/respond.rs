//! Building JSON responses without copying stored objects.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Serializes to bytes; serialization of `Value`s cannot fail, so an error only
/// yields an empty object rather than a panic.
pub fn json_body<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

pub fn json_response<T: Serialize + ?Sized>(code: StatusCode, value: &T) -> Response {
    raw_json(code, json_body(value))
}

pub fn raw_json(code: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (code, Body::from(bytes)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Adds `Warning: 299 - "..."` headers, as the API server reports field warnings.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// An object as the requested version of its kind: custom resources with several
/// served versions are stored once, and (as with the `None` conversion strategy)
/// only `apiVersion` differs between versions. No copy in the usual case.
pub fn in_version<'a>(
    rt: &crate::registry::ResourceType,
    obj: &'a serde_json::Value,
) -> std::borrow::Cow<'a, serde_json::Value> {
    let wanted = rt.api_version();
    if obj.get("apiVersion").and_then(serde_json::Value::as_str) == Some(wanted.as_str()) {
        return std::borrow::Cow::Borrowed(obj);
    }
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.insert("apiVersion".into(), serde_json::Value::String(wanted));
    }
    std::borrow::Cow::Owned(copy)
}
