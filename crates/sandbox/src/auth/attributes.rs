//! The authorization attributes of a request, derived from its method, path
//! and query the way a real API server's RequestInfo does: a resource request
//! (verb, API group, resource, subresource, namespace, name) or a non-resource
//! one (verb = the lower-cased method, and the path).

use std::collections::HashMap;

use crate::server::route::{self, Target};

/// What RBAC decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        /// Empty when the request is for the object itself.
        subresource: String,
        /// Empty for a cluster-scoped kind or a request across namespaces.
        namespace: String,
        /// Empty for a collection (create, list, watch, deletecollection).
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

impl Attributes {
    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => verb,
        }
    }

    /// A resource request's attributes (tests, and callers that know them).
    pub fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// The attributes of `method path?query`.
pub fn of_request(method: &str, path: &str, query: &HashMap<String, String>) -> Attributes {
    let object = match route::parse(path) {
        Some(Target::Object(object)) => object,
        // Discovery documents (`/api/v1`, `/apis/apps/v1`), `/version`,
        // `/openapi/...`, `/healthz` and everything else: non-resource paths.
        _ => {
            return Attributes::NonResource {
                verb: method.to_ascii_lowercase(),
                path: path.to_string(),
            };
        }
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let mut name = object.name.clone().unwrap_or_default();
    let verb = match method {
        "GET" | "HEAD" if name.is_empty() && watch => "watch",
        "GET" | "HEAD" if name.is_empty() => "list",
        "GET" | "HEAD" if watch => "watch",
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if name.is_empty() => "deletecollection",
        "DELETE" => "delete",
        other => {
            return Attributes::NonResource {
                verb: other.to_ascii_lowercase(),
                path: path.to_string(),
            };
        }
    };
    // A list or watch of one object by `metadata.name` is authorized as a
    // request for that name (so resourceNames rules can grant it).
    if name.is_empty()
        && matches!(verb, "list" | "watch")
        && let Some(single) = query
            .get("fieldSelector")
            .and_then(|s| single_name_selector(s))
    {
        name = single;
    }
    // `/api/v1/namespaces/NAME` is in namespace NAME, as the real server says.
    let namespace = match &object.namespace {
        Some(ns) => ns.clone(),
        None if object.group.is_empty() && object.plural == "namespaces" => name.clone(),
        None => String::new(),
    };
    Attributes::Resource {
        verb: verb.into(),
        group: object.group,
        resource: object.plural,
        subresource: object.subresource.unwrap_or_default(),
        namespace,
        name,
    }
}

/// `metadata.name=X` (or `==`) as the whole field selector.
fn single_name_selector(selector: &str) -> Option<String> {
    let (key, value) = selector
        .split_once("==")
        .or_else(|| selector.split_once('='))?;
    (key.trim() == "metadata.name" && !value.contains(',') && !key.ends_with('!'))
        .then(|| value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path_query: &str) -> Attributes {
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        of_request(method, path, &route::parse_query(Some(query)))
    }

    #[test]
    fn requests_become_attributes() {
        let r = Attributes::resource;
        let table = [
            (
                "GET",
                "/api/v1/namespaces/d/pods",
                r("list", "", "pods", "", "d", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=true",
                r("watch", "", "pods", "", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/d/pods/p",
                r("get", "", "pods", "", "d", "p"),
            ),
            (
                "POST",
                "/api/v1/namespaces/d/pods",
                r("create", "", "pods", "", "d", ""),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/d/replicasets/w/scale",
                r("update", "apps", "replicasets", "scale", "d", "w"),
            ),
            (
                "PATCH",
                "/apis/redblack.io/v1alpha1/namespaces/d/rollouts/w/status",
                r("patch", "redblack.io", "rollouts", "status", "d", "w"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/d/pods",
                r("deletecollection", "", "pods", "", "d", ""),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/d/pods/p",
                r("delete", "", "pods", "", "d", "p"),
            ),
            (
                "GET",
                "/api/v1/namespaces/d",
                r("get", "", "namespaces", "", "d", "d"),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                r("list", "", "namespaces", "", "", ""),
            ),
            (
                "GET",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/x",
                r(
                    "get",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                    "x",
                ),
            ),
            (
                "GET",
                "/api/v1/namespaces/d/services?fieldSelector=metadata.name%3Dweb&watch=1",
                r("watch", "", "services", "", "d", "web"),
            ),
            (
                "GET",
                "/api/v1/namespaces/d/services?fieldSelector=metadata.name%21%3Dweb",
                r("list", "", "services", "", "d", ""),
            ),
        ];
        for (method, path, want) in table {
            assert_eq!(attrs(method, path), want, "{method} {path}");
        }
        for (method, path, verb) in [
            ("GET", "/api", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/openapi/v3/apis/apps/v1", "get"),
            ("PUT", "/sandbox/faults", "put"),
            ("GET", "/version", "get"),
        ] {
            assert_eq!(
                attrs(method, path),
                Attributes::NonResource {
                    verb: verb.into(),
                    path: path.into()
                }
            );
        }
    }
}
