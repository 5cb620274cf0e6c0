//! Patches as a real API server applies them: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386), strategic merge patch for built-in kinds, and server-side apply
//! with field ownership (`managedFields`).
//!
//! Everything here is pure: JSON in, JSON out.

mod apply;
pub mod fieldset;
pub mod managed_fields;
pub mod merge_keys;
mod strategic;

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
    kind: &str,
    schema: Option<&Value>,
    current: &Value,
    patch_type: PatchType,
    body: &[u8],
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| PatchError::Invalid(format!("error decoding json patch: {e}")))?;
            // On a copy that is thrown away on error, so no rollback is needed:
            // json-patch's rolling-back `patch` panics when its undo of a
            // failed `move` fails (found by tests/sandbox_patch_fuzz.rs).
            let mut doc = current.clone();
            json_patch::patch_unsafe(&mut doc, &ops.0)
                .map_err(|e| PatchError::Invalid(format!("json patch failed: {e}")))?;
            Ok(doc)
        }
        PatchType::Merge => {
            let patch = parse_object(body, "merge patch")?;
            let mut doc = current.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        PatchType::Strategic => {
            if schema.is_some() {
                return Err(PatchError::Unsupported(
                    "strategic merge patch is not supported for custom resources; use a JSON \
                     merge patch (application/merge-patch+json), a JSON patch \
                     (application/json-patch+json) or server-side apply"
                        .into(),
                ));
            }
            let patch = parse_object(body, "strategic merge patch")?;
            strategic::strategic_merge(kind, current, &patch)
        }
        PatchType::Apply => Err(PatchError::Invalid(
            "apply patches go through server_side_apply".into(),
        )),
    }
}

fn parse_object(body: &[u8], what: &str) -> Result<Value, PatchError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::Invalid(format!("error decoding {what}: {e}")))?;
    if !v.is_object() {
        return Err(PatchError::Invalid(format!(
            "{what} must be a JSON object, got: {v}"
        )));
    }
    Ok(v)
}

/// Server-side apply of `applied` (the user's partial object) by `manager` onto
/// `current` (None when the object does not exist yet). Returns the merged object
/// with `metadata.managedFields` updated. `subresource` is `Some("status")` for
/// applies to the status subresource. `schema` as in [`apply_patch`]: for custom
/// resources its `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` decide how
/// lists merge; built-ins use their strategic merge keys.
pub fn server_side_apply(
    kind: &str,
    schema: Option<&Value>,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
) -> Result<Value, PatchError> {
    apply::server_side_apply(kind, schema, current, applied, manager, force, subresource)
}

/// Records an `Update` (create/put/non-apply patch) by `manager` in
/// `next.metadata.managedFields`: the fields that changed from `current` become
/// owned by `manager` and are taken from any other owner.
pub fn record_update(
    current: Option<&Value>,
    next: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let kind = next
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    record_update_for(&kind, None, current, next, manager, subresource)
}

/// [`record_update`] with the list rules of a custom resource: `schema` as in
/// [`apply_patch`], so that Update entries track `x-kubernetes-list-type: map`
/// items by key like Apply entries do (without it, a custom resource's lists are
/// tracked as atomic values).
pub fn record_update_for(
    kind: &str,
    schema: Option<&Value>,
    current: Option<&Value>,
    next: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let rules = match schema {
        Some(s) => merge_keys::Rules::Schema(s),
        None => merge_keys::Rules::Builtin(kind),
    };
    managed_fields::record_update(&rules, current, next, manager, subresource)
}

/// The API server's text for apply conflicts, e.g. `Apply failed with 1 conflict:
/// conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`; with
/// several, one `conflicts with "<manager>" using <apiVersion>:` line per manager
/// (sorted) followed by `- <field>` lines. `api_version` is the object's
/// (conflicts do not carry one).
pub fn conflict_message(conflicts: &[OwnershipConflict], api_version: &str) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: {}: {}",
            conflict_cause_message(c, api_version),
            c.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with \"{m}\" using {api_version}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The message of one conflict's `StatusCause` (type `FieldManagerConflict`,
/// field = [`OwnershipConflict::field`]): `conflict with "<manager>" using <apiVersion>`.
pub fn conflict_cause_message(conflict: &OwnershipConflict, api_version: &str) -> String {
    format!("conflict with \"{}\" using {api_version}", conflict.manager)
}
