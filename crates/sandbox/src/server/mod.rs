//! The sandbox's Kubernetes HTTP API: routing, discovery, OpenAPI, CRUD, watch,
//! subresources, tables, fault injection and request counters. One module per
//! purpose; this one wires them into an axum router.

pub mod accept;
pub mod authz;
pub mod body;
pub mod builtin_validation;
pub mod counters;
pub mod crd;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod jsonpath;
pub mod list;
pub mod logs;
pub mod openapi;
pub mod protobuf;
pub mod rbac_validation;
pub mod respond;
pub mod route;
pub mod scale;
pub mod selectors;
pub mod state;
pub mod table;
pub mod watch;
pub mod workload_validation;
pub mod write;

use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;

pub use counters::RequestCounts;
pub use faults::{FaultAction, FaultConfig, FaultRule};
pub use state::{AppState, Shared};

use accept::Representation;
use errors::{ApiError, ApiResult};
use faults::{Faults, Injected};
use respond::json_response;
use route::{ObjectPath, Target};
use state::Req;
use write::Part;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .route("/livez", get(ok))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*path}", get(openapi_gv))
        .route(
            "/sandbox/requests",
            get(requests_get).delete(requests_reset),
        )
        .route("/sandbox/faults", get(faults_get).put(faults_put))
        .fallback(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authz::authorize,
        ))
        .layer(middleware::from_fn(log_requests))
        .with_state(state)
}

/// One debug line per request (watches are timed up to their first byte).
async fn log_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn version() -> Response {
    json_response(StatusCode::OK, &discovery::version())
}

async fn ok() -> &'static str {
    "ok"
}

/// An empty OpenAPI v2 document (a zero-length protobuf message is a valid, empty
/// one). kubectl consults v2 only for kinds that no v3 document knows; with an
/// empty schema it skips client-side validation and reports such kinds as the
/// real server does ("no matches for kind").
async fn openapi_v2() -> Response {
    let mut resp = (StatusCode::OK, Bytes::new()).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

async fn openapi_root(State(st): State<Shared>) -> Response {
    json_response(StatusCode::OK, &openapi::root(&st.registry))
}

async fn openapi_gv(State(st): State<Shared>, Path(path): Path<String>) -> Response {
    match openapi::gv_document(&st.registry, path.trim_matches('/')) {
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => ApiError::no_route().into_response(),
    }
}

async fn requests_get(State(st): State<Shared>) -> Response {
    json_response(StatusCode::OK, &st.counts.to_json())
}

async fn requests_reset(State(st): State<Shared>) -> Response {
    st.counts.reset();
    json_response(StatusCode::OK, &json!({"total": 0, "counts": []}))
}

async fn faults_get(State(st): State<Shared>) -> Response {
    json_response(StatusCode::OK, &st.faults.get())
}

async fn faults_put(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Result<FaultConfig, String> = if body::content_type(&headers).contains("yaml") {
        serde_yaml::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    };
    match parsed {
        Ok(cfg) => {
            tracing::info!(rules = cfg.rules.len(), "fault injection configured");
            st.faults.set(cfg.clone());
            json_response(StatusCode::OK, &cfg)
        }
        Err(e) => {
            ApiError::bad_request(format!("invalid fault configuration: {e}")).into_response()
        }
    }
}

async fn api(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use futures::FutureExt;
    // A bug in a handler (or in patch/schema code it calls) must answer 500 and
    // keep the server up, not drop the connection.
    let outcome = std::panic::AssertUnwindSafe(dispatch(&st, method, &uri, headers, body))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(path = %uri.path(), "request handler panicked");
            Err(ApiError::internal(
                "internal error: the request handler panicked",
            ))
        });
    match outcome {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(path = %uri.path(), code = e.code, reason = e.reason, message = %e.message, "request failed");
            e.into_response()
        }
    }
}

async fn dispatch(
    st: &Shared,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let target = route::parse(uri.path()).ok_or_else(ApiError::no_route)?;
    let discovery_doc = match target {
        Target::Object(path) => {
            let query = route::parse_query(uri.query());
            return object(st, method, path, query, headers, body).await;
        }
        Target::CoreVersions => Some(discovery::core_versions(&st.addr.to_string())),
        Target::Groups => Some(discovery::group_list(&st.registry)),
        Target::Group(g) => discovery::group(&st.registry, &g),
        Target::Resources { group, version } => {
            discovery::resource_list(&st.registry, &group, &version)
        }
    };
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        )));
    }
    let doc = discovery_doc.ok_or_else(ApiError::no_route)?;
    Ok(json_response(StatusCode::OK, &doc))
}

async fn object(
    st: &Shared,
    method: Method,
    path: ObjectPath,
    query: std::collections::HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let rt = st
        .registry
        .find(&path.group, &path.version, &path.plural)
        .ok_or_else(ApiError::no_route)?;
    if (!rt.namespaced && path.namespace.is_some())
        || (rt.namespaced && path.name.is_some() && path.namespace.is_none())
    {
        return Err(ApiError::no_route());
    }
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = route::verb(&method, &path, watch);
    let resource = match &path.subresource {
        Some(sub) => format!("{}/{sub}", rt.plural),
        None => rt.plural.clone(),
    };
    st.counts.record(verb, &resource);
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    st.counts.record_client(agent, verb, &resource);
    let injected = st.faults.decide(verb, &resource);
    if let Some(fault) = &injected {
        st.counts.record_fault(verb, &fault.kind());
    }
    match injected {
        // As the watch cache says it: an ERROR event in a 200 stream (faults.rs).
        Some(Injected::Fail(e)) if watch && e.code == 410 => return Ok(watch::expired(&e)),
        Some(Injected::Fail(e)) => return Err(e),
        Some(Injected::Delay(d)) => {
            tokio::time::sleep(d).await;
            if Faults::is_timeout(d) {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    "injected fault: the request timed out",
                ));
            }
        }
        None => {}
    }
    let req = Req {
        method,
        path,
        rt,
        query,
        headers,
        body,
    };
    let named = req.path.name.is_some();
    match (req.path.subresource.as_deref(), &req.method) {
        (None, &Method::GET) if !named => {
            let repr = accept::negotiate(&req.headers)?;
            if watch {
                watch::watch(st, &req, repr)
            } else {
                list::list(st, &req, repr)
            }
        }
        (None | Some("status"), &Method::GET) if named => get_one(st, &req),
        (None, &Method::POST) if !named => write::create(st, &req),
        (None, &Method::PUT) if named => write::update(st, &req, Part::Main),
        (None, &Method::PATCH) if named => write::patch(st, &req, Part::Main),
        (None, &Method::DELETE) if named => write::delete(st, &req),
        (None, &Method::DELETE) => write::delete_collection(st, &req),
        (Some("status"), &Method::PUT) if req.rt.status_subresource => {
            write::update(st, &req, Part::Status)
        }
        (Some("status"), &Method::PATCH) if req.rt.status_subresource => {
            write::patch(st, &req, Part::Status)
        }
        (Some("scale"), &Method::GET) => scale::get(st, &req),
        (Some("scale"), &Method::PUT) => scale::update(st, &req),
        (Some("scale"), &Method::PATCH) => scale::patch(st, &req),
        (Some("log"), &Method::GET)
            if named && req.rt.group.is_empty() && req.rt.plural == "pods" =>
        {
            logs::get(st, &req)
        }
        (Some(_), _) if !named => Err(ApiError::no_route()),
        (Some(sub), _) if !matches!(sub, "status" | "scale" | "log") => Err(ApiError::no_route()),
        (Some("log"), _) if req.rt.plural != "pods" => Err(ApiError::no_route()),
        (Some("status"), _) if !req.rt.status_subresource => Err(ApiError::no_route()),
        (_, m) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

fn get_one(st: &Shared, req: &Req) -> ApiResult<Response> {
    let repr = accept::negotiate(&req.headers)?;
    let obj = write::current(st, req)?;
    Ok(match repr {
        Representation::Full => {
            json_response(StatusCode::OK, respond::in_version(&req.rt, &obj).as_ref())
        }
        Representation::Metadata => json_response(StatusCode::OK, &table::partial_metadata(&obj)),
        Representation::Table => {
            let include = accept::IncludeObject::from_query(req.q("includeObject"));
            let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or_default()});
            json_response(
                StatusCode::OK,
                &table::table(&req.rt, &[obj], include, meta),
            )
        }
    })
}
