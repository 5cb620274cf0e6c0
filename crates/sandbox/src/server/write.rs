//! Create, update, patch (incl. server-side apply) and delete of objects and of
//! their `status`: the checks a real API server makes before anything is stored.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::body::{self, check_name, check_namespace, check_type, decode_object, object_name};
use super::builtin_validation;
use super::crd;
use super::errors::{ApiError, ApiResult, Cause};
use super::list::selectors;
use super::rbac_validation;
use super::respond::{json_response, with_warnings};
use super::state::{Req, Shared};
use super::workload_validation;
use crate::patch::{self, PatchError, PatchType};
use crate::registry::ResourceType;
use crate::schema;
use crate::store::{DeleteOptions, DeleteOutcome, Propagation, StoreError, UpdateTarget};

/// `fieldValidation`: what to do with unknown fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

fn field_validation(req: &Req) -> ApiResult<FieldValidation> {
    match req.q("fieldValidation").unwrap_or("") {
        "Strict" => Ok(FieldValidation::Strict),
        // Warn is the server default.
        "" | "Warn" => Ok(FieldValidation::Warn),
        "Ignore" => Ok(FieldValidation::Ignore),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: {other}; must be one of Ignore, Warn or Strict"
        ))),
    }
}

/// Which part of the object a write targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

impl Part {
    fn subresource(self) -> Option<&'static str> {
        match self {
            Part::Main => None,
            Part::Status => Some("status"),
        }
    }
}

/// Schema validation/defaulting of custom resources and per-kind defaults.
/// Returns the warnings to send back.
fn admit(
    st: &Shared,
    req: &Req,
    obj: &mut Value,
    old: Option<&Value>,
    creating: bool,
) -> ApiResult<Vec<String>> {
    let rt = &req.rt;
    let mut warnings = Vec::new();
    if creating {
        let errs = body::validate_name(obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(rt, object_name(obj), &errs));
        }
    }
    let builtin_apps = rt.schema.is_none() && rt.group == "apps";
    if builtin_apps {
        if let Some(e) = workload_validation::decode_error(&rt.kind, obj) {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
                kind = rt.kind,
                version = rt.version,
            ))
            .with_target(rt, object_name(obj)));
        }
        workload_validation::default(&rt.kind, obj);
    }
    let mut errs = builtin_validation::validate(&rt.kind, rt.schema.is_none(), obj);
    if builtin_apps {
        errs.extend(workload_validation::validate(&rt.kind, obj, old));
    }
    if rt.group == crate::auth::rbac::RBAC_GROUP {
        rbac_validation::default(&rt.kind, obj);
        errs.extend(rbac_validation::validate(&rt.kind, obj, old));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(rt, object_name(obj), &errs));
    }
    if let Some(schema_v) = &rt.schema {
        let fv = field_validation(req)?;
        let outcome = schema::validate_and_default(schema_v, obj, old);
        if !outcome.pruned.is_empty() {
            match fv {
                FieldValidation::Strict => {
                    let list: Vec<String> = outcome
                        .pruned
                        .iter()
                        .map(|p| format!("unknown field \"{p}\""))
                        .collect();
                    // The real server's wording, which users search for.
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = rt.kind,
                        version = rt.version,
                    ))
                    .with_target(rt, object_name(obj)));
                }
                FieldValidation::Warn => {
                    warnings.extend(
                        outcome
                            .pruned
                            .iter()
                            .map(|p| format!("unknown field \"{p}\"")),
                    );
                }
                FieldValidation::Ignore => {}
            }
        }
        if !outcome.errors.is_empty() {
            return Err(ApiError::invalid(rt, object_name(obj), &outcome.errors));
        }
    }
    defaults(st, rt, obj, creating);
    if crd::is_crd(rt) {
        crd::prepare(rt, obj, old)?;
    }
    Ok(warnings)
}

/// The defaults a real API server fills in for the built-in kinds the sandbox runs.
fn defaults(st: &Shared, rt: &ResourceType, obj: &mut Value, creating: bool) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Service") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                *spec = json!({});
            }
            if spec.get("type").is_none() {
                spec["type"] = json!("ClusterIP");
            }
            if creating
                && spec.get("type").and_then(Value::as_str) != Some("ExternalName")
                && spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                let ip = st.allocate_cluster_ip();
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            if spec.get("sessionAffinity").is_none() {
                spec["sessionAffinity"] = json!("None");
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                // Entries that are not objects are left for validation to reject.
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    if !p.contains_key("protocol") {
                        p.insert("protocol".into(), json!("TCP"));
                    }
                    if !p.contains_key("targetPort")
                        && let Some(port) = p.get("port").cloned()
                    {
                        p.insert("targetPort".into(), port);
                    }
                }
            }
        }
        // `SetDefaults_Job` and the API server's generated selector (by the
        // Job's name; the real one also adds a controller-uid label).
        ("batch", "Job") if obj.get("spec").is_some_and(Value::is_object) => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let spec = &mut obj["spec"];
            for (field, value) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
                if spec.get(field).is_none_or(Value::is_null) {
                    spec[field] = json!(value);
                }
            }
            if spec.get("completionMode").is_none() {
                spec["completionMode"] = json!("NonIndexed");
            }
            if creating && spec.get("selector").is_none_or(Value::is_null) {
                spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/job-name": name}});
                let labels = &mut spec["template"]["metadata"]["labels"];
                if !labels.is_object() {
                    *labels = json!({});
                }
                labels["batch.kubernetes.io/job-name"] = json!(name);
                labels["job-name"] = json!(name);
            }
        }
        ("apps", "ReplicaSet" | "Deployment")
            if obj.pointer("/spec/replicas").is_none()
                && obj.get("spec").is_some_and(Value::is_object) =>
        {
            obj["spec"]["replicas"] = json!(1);
        }
        ("", "Namespace") if creating => {
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "Pod") if creating && obj.pointer("/status/phase").is_none() => {
            obj["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
}

/// Fields the server allocated on create survive updates that leave them out.
fn keep_allocated(rt: &ResourceType, cur: &Value, obj: &mut Value) {
    if rt.group.is_empty() && rt.kind == "Service" {
        for field in ["clusterIP", "clusterIPs"] {
            let missing = obj
                .pointer(&format!("/spec/{field}"))
                .is_none_or(|v| v.is_null() || v == "");
            if missing
                && let Some(v) = cur.pointer(&format!("/spec/{field}")).cloned()
                && obj.get("spec").is_some_and(Value::is_object)
            {
                obj["spec"][field] = v;
            }
        }
    }
}

fn store_err<'a>(req: &'a Req, name: &str) -> impl Fn(StoreError) -> ApiError + 'a {
    let rt = &req.rt;
    let name = name.to_string();
    move |e| ApiError::from_store(e, rt, &name)
}

pub fn patch_err(err: PatchError, rt: &ResourceType, name: &str, body: &[u8]) -> ApiError {
    match err {
        PatchError::Unsupported(m) => ApiError::unsupported_media_type(m),
        PatchError::Invalid(m)
            if serde_json::from_slice::<Value>(body).is_err()
                && serde_yaml::from_slice::<Value>(body).is_err() =>
        {
            ApiError::bad_request(m)
        }
        PatchError::Invalid(m) => ApiError::new(422, "Invalid", m)
            .with_target(rt, name)
            .with_kind(&rt.kind),
        PatchError::Conflict(conflicts) => {
            let fields: Vec<String> = conflicts
                .iter()
                .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
                .collect();
            let causes = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\"", c.manager),
                    field: c.field.clone(),
                })
                .collect();
            ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} conflict{}: {}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    fields.join("\n")
                ),
            )
            .with_target(rt, name)
            .with_causes(causes)
        }
    }
}

fn respond(code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
    with_warnings(json_response(code, obj), warnings)
}

/// A deleted namespace takes its contents along (the real namespace controller
/// does this while the namespace is Terminating; here it is immediate).
fn empty_namespace(st: &Shared, namespace: &str) {
    let opts = DeleteOptions::default();
    for rt in st.registry.all().into_iter().filter(|t| t.namespaced) {
        let (items, _) = st.store.list(&rt.group_resource(), Some(namespace));
        for obj in items {
            // Already gone or held by finalizers: nothing more to do here.
            let _ = st.store.delete(&rt, namespace, object_name(&obj), &opts);
        }
    }
}

/// After a write: serve (or stop serving) what a CRD declares; empty deleted namespaces.
fn after_write(st: &Shared, rt: &ResourceType, obj: &Value) {
    if rt.group.is_empty() && rt.kind == "Namespace" {
        if st
            .store
            .get(&rt.group_resource(), "", object_name(obj))
            .is_none()
        {
            empty_namespace(st, object_name(obj));
        }
        return;
    }
    if !crd::is_crd(rt) {
        return;
    }
    let name = object_name(obj);
    if st.store.get(&rt.group_resource(), "", name).is_some() {
        crd::register(&st.registry, obj);
    } else {
        crd::unregister(&st.store, &st.registry, obj);
    }
}

/// Stores a new object that passed `admit`.
fn create_admitted(
    st: &Shared,
    req: &Req,
    mut obj: Value,
    warnings: &[String],
) -> ApiResult<Response> {
    if req.dry_run() {
        return Ok(respond(StatusCode::CREATED, &obj, warnings));
    }
    // The store stamps uid, resourceVersion, timestamps; keep what admit defaulted.
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    let name = object_name(&obj).to_string();
    let created = st
        .store
        .create(&req.rt, obj)
        .map_err(store_err(req, &name))?;
    after_write(st, &req.rt, &created);
    Ok(respond(StatusCode::CREATED, &created, warnings))
}

pub fn create(st: &Shared, req: &Req) -> ApiResult<Response> {
    let mut obj = decode_object(&req.headers, &req.body)?;
    check_type(&req.rt, &mut obj)?;
    check_namespace(&req.rt, req.namespace(), &mut obj)?;
    if req.rt.status_subresource
        && let Some(map) = obj.as_object_mut()
    {
        // Status is the controllers' to write, through the subresource.
        map.remove("status");
    }
    let warnings = admit(st, req, &mut obj, None, true)?;
    patch::record_update(None, &mut obj, &req.field_manager(), None);
    create_admitted(st, req, obj, &warnings)
}

pub fn current(st: &Shared, req: &Req) -> ApiResult<Arc<Value>> {
    st.store
        .get(
            &req.rt.group_resource(),
            req.namespace().unwrap_or(""),
            req.name(),
        )
        .ok_or_else(|| {
            ApiError::from_store(
                StoreError::NotFound {
                    resource: super::errors::qualified_resource(&req.rt),
                    name: req.name().to_string(),
                },
                &req.rt,
                req.name(),
            )
        })
}

/// Writes `obj` (the full new object) as `part` of the stored `cur`.
fn write(
    st: &Shared,
    req: &Req,
    cur: &Value,
    obj: Value,
    part: Part,
    record: bool,
) -> ApiResult<Response> {
    let (stored, warnings) = write_object(st, req, cur, obj, part, record)?;
    Ok(respond(StatusCode::OK, &stored, &warnings))
}

/// As `write`, returning the stored object (the would-be object on dry runs).
pub fn write_object(
    st: &Shared,
    req: &Req,
    cur: &Value,
    mut obj: Value,
    part: Part,
    record: bool,
) -> ApiResult<(Arc<Value>, Vec<String>)> {
    check_type(&req.rt, &mut obj)?;
    check_namespace(&req.rt, req.namespace(), &mut obj)?;
    check_name(req.name(), &mut obj)?;
    let target = match part {
        Part::Main => {
            // What a main write does to status is ignored; judge it with the stored status.
            if req.rt.status_subresource
                && let Some(map) = obj.as_object_mut()
            {
                match cur.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
            }
            UpdateTarget::Main
        }
        Part::Status => {
            // Only status changes: judge the stored object with the new status.
            let mut merged = cur.clone();
            if let Some(map) = merged.as_object_mut() {
                match obj.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
                if let Some(rv) = obj.pointer("/metadata/resourceVersion").cloned() {
                    merged["metadata"]["resourceVersion"] = rv;
                }
                if let Some(mf) = obj.pointer("/metadata/managedFields").cloned() {
                    merged["metadata"]["managedFields"] = mf;
                }
            }
            obj = merged;
            UpdateTarget::Status
        }
    };
    let warnings = admit(st, req, &mut obj, Some(cur), false)?;
    keep_allocated(&req.rt, cur, &mut obj);
    if record {
        patch::record_update(
            Some(cur),
            &mut obj,
            &req.field_manager(),
            part.subresource(),
        );
    }
    if req.dry_run() {
        return Ok((Arc::new(obj), warnings));
    }
    let stored = st
        .store
        .update(&req.rt, obj, target)
        .map_err(store_err(req, req.name()))?;
    after_write(st, &req.rt, &stored);
    Ok((stored, warnings))
}

pub fn update(st: &Shared, req: &Req, part: Part) -> ApiResult<Response> {
    let obj = decode_object(&req.headers, &req.body)?;
    let cur = current(st, req)?;
    write(st, req, &cur, obj, part, true)
}

pub fn patch(st: &Shared, req: &Req, part: Part) -> ApiResult<Response> {
    let ct = body::content_type(&req.headers);
    let Some(ptype) = PatchType::from_content_type(ct) else {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got \"{ct}\")"
        )));
    };
    if ptype == PatchType::Apply {
        return apply(st, req, part);
    }
    // A patch that does not name a resourceVersion is retried on conflicts with
    // concurrent writers, as the real server does.
    let mut attempts = 0;
    loop {
        let cur = current(st, req)?;
        let patched =
            patch::apply_patch(&req.rt.kind, req.rt.schema.as_ref(), &cur, ptype, &req.body)
                .map_err(|e| patch_err(e, &req.rt, req.name(), &req.body))?;
        let unchanged_rv = patched.pointer("/metadata/resourceVersion")
            == cur.pointer("/metadata/resourceVersion");
        match write(st, req, &cur, patched, part, true) {
            Err(e) if e.reason == "Conflict" && unchanged_rv && attempts < 5 => attempts += 1,
            other => return other,
        }
    }
}

fn apply(st: &Shared, req: &Req, part: Part) -> ApiResult<Response> {
    let manager = match req.q("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be specified",
            ));
        }
    };
    // YAML is a superset of JSON, so this reads both apply encodings.
    let mut applied: Value = serde_yaml::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    check_type(&req.rt, &mut applied)?;
    check_namespace(&req.rt, req.namespace(), &mut applied)?;
    check_name(req.name(), &mut applied)?;
    let force = req.flag("force");
    let cur = st.store.get(
        &req.rt.group_resource(),
        req.namespace().unwrap_or(""),
        req.name(),
    );
    let merged = patch::server_side_apply(
        &req.rt.kind,
        req.rt.schema.as_ref(),
        cur.as_deref(),
        &applied,
        &manager,
        force,
        part.subresource(),
    )
    .map_err(|e| patch_err(e, &req.rt, req.name(), &req.body))?;
    match cur {
        Some(cur) => write(st, req, &cur, merged, part, false),
        None if part == Part::Main => {
            let mut obj = merged;
            if req.rt.status_subresource
                && let Some(map) = obj.as_object_mut()
            {
                map.remove("status");
            }
            let warnings = admit(st, req, &mut obj, None, true)?;
            create_admitted(st, req, obj, &warnings)
        }
        None => Err(current(st, req).err().unwrap_or_else(ApiError::no_route)),
    }
}

/// DeleteOptions from the body (if any) and the query.
fn delete_options(req: &Req) -> ApiResult<DeleteOptions> {
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_object(&req.headers, &req.body)?
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.q("propagationPolicy"))
        .or_else(
            || match body.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan"),
                _ => None,
            },
        );
    let propagation = match policy {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let grace_period_seconds = match body.get("gracePeriodSeconds") {
        Some(Value::Null) | None => match req.q("gracePeriodSeconds") {
            None | Some("") => None,
            Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "gracePeriodSeconds: Invalid value: \"{raw}\": must be an integer"
                ))
            })?),
        },
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "gracePeriodSeconds: Invalid value: {v}: must be an integer"
            ))
        })?),
    };
    Ok(DeleteOptions {
        propagation,
        grace_period_seconds,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

fn success_status(rt: &ResourceType, obj: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": object_name(obj),
            "group": rt.group,
            "kind": rt.plural,
            "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        },
    })
}

fn is_pod(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Pod"
}

pub fn delete(st: &Shared, req: &Req) -> ApiResult<Response> {
    let opts = delete_options(req)?;
    let cur = current(st, req)?;
    if req.dry_run() {
        return Ok(json_response(StatusCode::OK, cur.as_ref()));
    }
    let outcome = st
        .store
        .delete(&req.rt, req.namespace().unwrap_or(""), req.name(), &opts)
        .map_err(store_err(req, req.name()))?;
    Ok(match outcome {
        // Pods answer with the object, deleted or terminating, as the real
        // pod registry does (`ReturnDeletedObject`): a graceful delete is a 200
        // with `deletionTimestamp` set.
        DeleteOutcome::Deleted(obj) | DeleteOutcome::Pending(obj) if is_pod(&req.rt) => {
            json_response(StatusCode::OK, obj.as_ref())
        }
        DeleteOutcome::Deleted(obj) => {
            after_write(st, &req.rt, &obj);
            // Custom resources answer with the object, built-ins with a Status.
            if req.rt.schema.is_some() {
                json_response(StatusCode::OK, obj.as_ref())
            } else {
                json_response(StatusCode::OK, &success_status(&req.rt, &obj))
            }
        }
        DeleteOutcome::Pending(obj) => json_response(StatusCode::ACCEPTED, obj.as_ref()),
    })
}

pub fn delete_collection(st: &Shared, req: &Req) -> ApiResult<Response> {
    let opts = delete_options(req)?;
    let sel = selectors(req)?;
    let (items, rv) = st.store.list(&req.rt.group_resource(), req.namespace());
    let mut gone = Vec::new();
    for obj in items.iter().filter(|o| sel.matches(o)) {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if req.dry_run() {
            gone.push(obj.clone());
            continue;
        }
        match st.store.delete(&req.rt, ns, object_name(obj), &opts) {
            Ok(DeleteOutcome::Deleted(o)) => {
                after_write(st, &req.rt, &o);
                gone.push(o);
            }
            Ok(DeleteOutcome::Pending(o)) => gone.push(o),
            // Deleted meanwhile by someone else: nothing left to do.
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(ApiError::from_store(e, &req.rt, object_name(obj))),
        }
    }
    let items: Vec<&Value> = gone.iter().map(|o| o.as_ref()).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": req.rt.list_kind(),
            "apiVersion": req.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
    ))
}
