//! Patches as a real API server applies them: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386), strategic merge patch for built-in kinds, and server-side apply
//! with field ownership (`managedFields`).
//!
//! Everything here is pure: JSON in, JSON out.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// Maps a request's Content-Type to a patch type; `None` means 415.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let base = content_type.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// A field another manager owns, reported when an apply without `force` would change it.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnershipConflict {
    pub manager: String,
    /// The field path as the API server reports it, e.g. `.spec.replicas`.
    pub field: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The patch body is malformed or cannot be applied (400/422 at the API).
    #[error("{0}")]
    Invalid(String),
    /// The patch type is not supported for this kind (415 at the API), e.g. a
    /// strategic merge patch of a custom resource.
    #[error("{0}")]
    Unsupported(String),
    /// Server-side apply found fields owned by other managers (409 at the API).
    #[error("Apply failed with {} conflict(s)", .0.len())]
    Conflict(Vec<OwnershipConflict>),
}

/// Applies a JSON, merge or strategic merge patch to `current`. `kind` selects the
/// strategic merge keys of a built-in kind; `schema` is the CRD version's
/// `openAPIV3Schema` for custom resources (None for built-ins), where strategic
/// merge is Unsupported as on a real API server.
pub fn apply_patch(
    _kind: &str,
    _schema: Option<&Value>,
    _current: &Value,
    _patch_type: PatchType,
    _body: &[u8],
) -> Result<Value, PatchError> {
    Err(PatchError::Unsupported(
        "patches are not implemented yet".into(),
    ))
}

/// Server-side apply of `applied` (the user's partial object) by `manager` onto
/// `current` (None when the object does not exist yet). Returns the merged object
/// with `metadata.managedFields` updated. `subresource` is `Some("status")` for
/// applies to the status subresource. `schema` as in [`apply_patch`]: for custom
/// resources its `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` decide how
/// lists merge; built-ins use their strategic merge keys.
pub fn server_side_apply(
    _kind: &str,
    _schema: Option<&Value>,
    _current: Option<&Value>,
    _applied: &Value,
    _manager: &str,
    _force: bool,
    _subresource: Option<&str>,
) -> Result<Value, PatchError> {
    Err(PatchError::Unsupported(
        "server-side apply is not implemented yet".into(),
    ))
}

/// Records an `Update` (create/put/non-apply patch) by `manager` in
/// `next.metadata.managedFields`: the fields that changed from `current` become
/// owned by `manager` and are taken from any other owner.
pub fn record_update(
    _current: Option<&Value>,
    _next: &mut Value,
    _manager: &str,
    _subresource: Option<&str>,
) {
}
