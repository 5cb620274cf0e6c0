//! API errors rendered as `metav1.Status`, with the reasons and codes of a real
//! API server so that clients (kube-rs, kubectl) react to them correctly.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::schema::FieldError;
use crate::store::StoreError;

/// One `details.causes[]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// `Status.details`: what the failure is about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
}

/// An API failure: everything needed to build a `Status` object. Details are
/// boxed so that results carrying this error stay small.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Details>>,
    /// Seconds for a `Retry-After` header (429 from fault injection).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `404` a real server gives for a path it does not serve at all.
    pub fn no_route() -> Self {
        Self::not_found("the server could not find the requested resource")
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    /// Names the object (details.kind is the resource, as for NotFound).
    pub fn with_target(mut self, rt: &ResourceType, name: &str) -> Self {
        let d = self.details_mut();
        d.name = Some(name.to_string());
        d.group = Some(rt.group.clone());
        d.kind = Some(rt.plural.clone());
        self
    }

    /// details.kind as the Kind (what Invalid errors report).
    pub fn with_kind(mut self, kind: &str) -> Self {
        self.details_mut().kind = Some(kind.to_string());
        self
    }

    pub fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        self.details_mut().causes = causes;
        self
    }

    pub fn causes(&self) -> &[Cause] {
        self.details
            .as_ref()
            .map(|d| d.causes.as_slice())
            .unwrap_or(&[])
    }

    /// 422 Invalid: `Kind.group "name" is invalid: field: message[, ...]`.
    pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        let detail = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let causes = errors
            .iter()
            .map(|e| Cause {
                reason: e.reason.clone(),
                message: e.message.clone(),
                field: e.field.clone(),
            })
            .collect();
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {detail}", qualified_kind(rt)),
        )
        .with_target(rt, name)
        .with_kind(&rt.kind)
        .with_causes(causes)
    }

    /// A store failure for an object of `rt` named `name`.
    pub fn from_store(err: StoreError, rt: &ResourceType, name: &str) -> Self {
        let base = match &err {
            StoreError::NotFound { .. } => Self::not_found(err.to_string()),
            StoreError::AlreadyExists { .. } => Self::new(409, "AlreadyExists", err.to_string()),
            StoreError::Conflict { .. } | StoreError::PreconditionFailed(_) => {
                Self::new(409, "Conflict", err.to_string())
            }
            StoreError::Gone { .. } => Self::gone(err.to_string()),
            StoreError::BadRequest(m) => Self::bad_request(m.clone()),
        };
        // A missing namespace names the namespace, not the object.
        match &err {
            StoreError::NotFound { resource, name: n } if resource == "namespaces" => {
                let mut e = base;
                let d = e.details_mut();
                d.name = Some(n.clone());
                d.kind = Some("namespaces".into());
                d.group = Some(String::new());
                e
            }
            _ => base.with_target(rt, name),
        }
    }

    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.details.is_some() || self.retry_after.is_some() {
            let d = self.details.as_deref().cloned().unwrap_or_default();
            let mut details = serde_json::Map::new();
            if let Some(n) = &d.name {
                details.insert("name".into(), json!(n));
            }
            if let Some(g) = &d.group
                && !g.is_empty()
            {
                details.insert("group".into(), json!(g));
            }
            if let Some(k) = &d.kind {
                details.insert("kind".into(), json!(k));
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), json!(causes));
            }
            if let Some(secs) = self.retry_after {
                details.insert("retryAfterSeconds".into(), json!(secs));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `Kind.group` (or just `Kind` for the core group), as messages name a kind.
pub fn qualified_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

/// `plural.group` (or just `plural`), as NotFound/AlreadyExists messages name a resource.
pub fn qualified_resource(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, super::respond::json_body(&self.to_status())).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
