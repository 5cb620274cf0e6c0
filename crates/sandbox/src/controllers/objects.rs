//! Reading the JSON objects the controllers share: keys, owner references,
//! finalizers, pod readiness, and times.

use std::time::Duration;

use serde_json::Value;

use crate::registry::{GroupResource, Registry, ResourceType};
use crate::store::meta_str;

/// (namespace, name): how namespaced controllers key their work.
pub(crate) type ObjKey = (String, String);

pub(crate) fn obj_key(obj: &Value) -> ObjKey {
    (
        meta_str(obj, "namespace").unwrap_or("").to_string(),
        meta_str(obj, "name").unwrap_or("").to_string(),
    )
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

pub(crate) fn owner_refs(obj: &Value) -> &[Value] {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The ownerReference marked `controller: true`, if any.
pub(crate) fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_refs(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// The controller reference of `obj` when its controller is a `kind`.
pub(crate) fn controlled_by<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    controller_ref(obj).filter(|r| r.get("kind").and_then(Value::as_str) == Some(kind))
}

/// The (namespace, name) of `obj`'s controller when it is a `kind`: how a
/// controller maps an event of a dependent (a pod) to its own object's key.
pub(crate) fn controller_key(obj: &Value, kind: &str) -> Option<ObjKey> {
    let name = controlled_by(obj, kind)?.get("name")?.as_str()?;
    Some((
        meta_str(obj, "namespace").unwrap_or("").to_string(),
        name.to_string(),
    ))
}

pub(crate) fn has_finalizer(obj: &Value, name: &str) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(name)))
}

/// The kind serving `apiVersion`/`kind`, tolerating another version of the same
/// group (owner references may name any served version, as the real GC allows).
pub(crate) fn resolve_kind(
    registry: &Registry,
    api_version: &str,
    kind: &str,
) -> Option<ResourceType> {
    registry.by_kind(api_version, kind).or_else(|| {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        registry
            .all()
            .into_iter()
            .find(|t| t.group == group && t.kind == kind)
    })
}

pub(crate) fn group_resource_of(registry: &Registry, obj: &Value) -> Option<GroupResource> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    resolve_kind(registry, api_version, kind).map(|t| t.group_resource())
}

pub(crate) fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The monotonic instant matching a wall-clock time (now, if it is already past).
pub(crate) fn instant_at(t: chrono::DateTime<chrono::Utc>) -> tokio::time::Instant {
    let ahead = (t - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + ahead
}

/// A pod's `Ready` condition: whether it is True, and since when.
pub(crate) fn pod_ready(pod: &Value) -> (bool, Option<chrono::DateTime<chrono::Utc>>) {
    let cond = pod
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    match cond {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => (
            true,
            c.get("lastTransitionTime")
                .and_then(Value::as_str)
                .and_then(parse_time),
        ),
        _ => (false, None),
    }
}

pub(crate) fn pod_phase(pod: &Value) -> &str {
    pod.get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("")
}
