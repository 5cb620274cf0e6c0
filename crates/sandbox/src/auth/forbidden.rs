//! The 401 and 403 answers, worded as a real API server words them, so that
//! what a user reads (and searches for) is the same as on a cluster.

use super::attributes::Attributes;
use crate::server::errors::{ApiError, Details};

/// `User "U" cannot VERB resource "R[/SUB]" in API group "G" in the namespace "N"`
/// (or `at the cluster scope`), or `User "U" cannot VERB path "P"`.
pub fn forbidden_message(user: &str, attrs: &Attributes) -> String {
    match attrs {
        Attributes::NonResource { verb, path } => {
            format!("User {user:?} cannot {verb} path {path:?}")
        }
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            ..
        } => {
            let resource = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {namespace:?}")
            };
            format!(
                "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
            )
        }
    }
}

/// 403 Forbidden, as `metav1.Status`: `replicasets.apps "web-1" is forbidden: …`
/// (no name for a collection; `forbidden: …` for a path). `reason` is the
/// authorizer's, appended after a colon when not empty.
pub fn forbidden(user: &str, attrs: &Attributes, reason: &str) -> ApiError {
    let mut cause = forbidden_message(user, attrs);
    if !reason.is_empty() {
        cause = format!("{cause}: {reason}");
    }
    match attrs {
        Attributes::NonResource { .. } => {
            let mut e = ApiError::new(403, "Forbidden", format!("forbidden: {cause}"));
            e.details = Some(Box::default());
            e
        }
        Attributes::Resource {
            group,
            resource,
            name,
            ..
        } => {
            let qualified = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            let message = if name.is_empty() {
                format!("{qualified} is forbidden: {cause}")
            } else {
                format!("{qualified} {name:?} is forbidden: {cause}")
            };
            let mut e = ApiError::new(403, "Forbidden", message);
            e.details = Some(Box::new(Details {
                name: (!name.is_empty()).then(|| name.clone()),
                group: Some(group.clone()),
                kind: Some(resource.clone()),
                causes: Vec::new(),
            }));
            e
        }
    }
}

/// 401 Unauthorized: a token the server does not know.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_worded_as_the_real_server_words_them() {
        let sa = "system:serviceaccount:redblack-system:redblack";
        let scale =
            Attributes::resource("update", "apps", "replicasets", "scale", "default", "web-1");
        assert_eq!(
            forbidden(sa, &scale, "").message,
            r#"replicasets.apps "web-1" is forbidden: User "system:serviceaccount:redblack-system:redblack" cannot update resource "replicasets/scale" in API group "apps" in the namespace "default""#
        );
        let list = Attributes::resource("list", "apps", "replicasets", "", "", "");
        assert_eq!(
            forbidden(sa, &list, "").message,
            r#"replicasets.apps is forbidden: User "system:serviceaccount:redblack-system:redblack" cannot list resource "replicasets" in API group "apps" at the cluster scope"#
        );
        let pods = Attributes::resource("create", "", "pods", "", "d", "");
        let e = forbidden(
            "u",
            &pods,
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#,
        );
        assert_eq!(
            e.message,
            r#"pods is forbidden: User "u" cannot create resource "pods" in API group "" in the namespace "d": RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#
        );
        let status = e.to_status();
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        assert_eq!(status["details"]["kind"], "pods");
        let path = Attributes::NonResource {
            verb: "get".into(),
            path: "/api".into(),
        };
        assert_eq!(
            forbidden("system:anonymous", &path, "").message,
            r#"forbidden: User "system:anonymous" cannot get path "/api""#
        );
        assert_eq!(unauthorized().to_status()["reason"], "Unauthorized");
    }
}
