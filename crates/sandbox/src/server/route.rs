//! Parsing of API paths (`/api/v1/...`, `/apis/{group}/{version}/...`) into what
//! the handlers dispatch on, and the verb each request counts as.

use axum::http::Method;

/// What an API path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`: the APIResourceList.
    Resources { group: String, version: String },
    /// A collection, an object or a subresource of one.
    Object(ObjectPath),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Splits an API path; `None` when it is not one the API serves.
pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api"] => Some(Target::CoreVersions),
        ["apis"] => Some(Target::Groups),
        ["apis", group] => Some(Target::Group(group.to_string())),
        ["api", version] => Some(Target::Resources {
            group: String::new(),
            version: version.to_string(),
        }),
        ["apis", group, version] => Some(Target::Resources {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["api", version, rest @ ..] => object_path("", version, rest).map(Target::Object),
        ["apis", group, version, rest @ ..] => {
            object_path(group, version, rest).map(Target::Object)
        }
        _ => None,
    }
}

fn object_path(group: &str, version: &str, rest: &[&str]) -> Option<ObjectPath> {
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    // `namespaces/{ns}/{plural}...` is namespaced; `namespaces/{name}[/status]` is
    // the Namespace object itself.
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() && (*plural == "status" || *plural == "finalize") =>
        {
            let _ = tail;
            return Some(ObjectPath {
                group: String::new(),
                version: version.to_string(),
                namespace: None,
                plural: "namespaces".into(),
                name: Some(ns.to_string()),
                subresource: Some(plural.to_string()),
            });
        }
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.to_string()), None),
        [plural, name, sub] => (plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(ObjectPath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name,
        subresource,
    })
}

/// The verb a request counts as, the way audit logs and RBAC name it.
pub fn verb(method: &Method, path: &ObjectPath, watch: bool) -> &'static str {
    match *method {
        Method::GET if path.name.is_none() && watch => "watch",
        Method::GET if path.name.is_none() => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if path.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_and_cluster_paths() {
        let Some(Target::Object(p)) = parse("/api/v1/namespaces/default/pods/web/status") else {
            panic!("not an object path");
        };
        assert_eq!(p.namespace.as_deref(), Some("default"));
        assert_eq!(p.plural, "pods");
        assert_eq!(p.name.as_deref(), Some("web"));
        assert_eq!(p.subresource.as_deref(), Some("status"));

        let Some(Target::Object(p)) = parse("/api/v1/namespaces/default") else {
            panic!("not an object path");
        };
        assert_eq!(p.namespace, None);
        assert_eq!(p.plural, "namespaces");
        assert_eq!(p.name.as_deref(), Some("default"));

        let Some(Target::Object(p)) = parse("/api/v1/namespaces/x/status") else {
            panic!("not an object path");
        };
        assert_eq!(
            (p.plural.as_str(), p.subresource.as_deref()),
            ("namespaces", Some("status"))
        );

        let Some(Target::Object(p)) = parse("/apis/apps/v1/replicasets") else {
            panic!("not an object path");
        };
        assert_eq!((p.group.as_str(), p.name), ("apps", None));
        assert_eq!(parse("/apis/apps/v1/a/b/c/d"), None);
        assert_eq!(parse("/nope"), None);
    }
}

/// Parses a query string (`a=b&c=d%3De`), decoding `+` and percent escapes.
pub fn parse_query(raw: Option<&str>) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode_component(k), decode_component(v));
    }
    out
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn decodes_escapes() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "");
        assert_eq!(
            parse_query(Some("a=%")).get("a").map(String::as_str),
            Some("%")
        );
        assert_eq!(
            parse_query(Some("a=%4")).get("a").map(String::as_str),
            Some("%4")
        );
    }
}
