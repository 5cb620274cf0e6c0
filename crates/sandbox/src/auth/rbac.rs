//! RBAC evaluation, as Kubernetes' RBAC authorizer does it: a request is
//! allowed when some rule of some role bound to the caller matches it, and
//! denied otherwise (there are no deny rules).
//!
//! - A ClusterRoleBinding grants its ClusterRole's rules everywhere (every
//!   namespace, the cluster scope, non-resource URLs).
//! - A RoleBinding grants its Role's or ClusterRole's rules in its own
//!   namespace only: never a request across namespaces or at cluster scope.
//! - A rule matches on verb (`*` for all), API group (`*`), resource
//!   (`*` matches every resource and subresource, `rollouts/status` one
//!   subresource, `*/scale` one subresource of every resource) and
//!   resourceNames (when given, only requests naming one of them: a create,
//!   or a list/watch without a `metadata.name` field selector, has no name,
//!   so resourceNames never grant those).
//! - Non-resource rules (`nonResourceURLs`, `*` suffix as prefix match) only
//!   count from ClusterRoleBindings.
//!
//! Built in (the real server's bootstrap policy, hard-coded here instead of
//! stored as objects): `system:masters` may do anything; authenticated users
//! may GET the discovery and OpenAPI documents and the health and version
//! endpoints (`system:discovery`, `system:public-info-viewer`); anonymous ones
//! the health and version endpoints only. Aggregated ClusterRoles are not
//! aggregated, and `escalate`/`bind` are not enforced (anyone who may write a
//! Role may grant anything).

use serde::Deserialize;
use serde_json::Value;

use super::attributes::Attributes;
use super::tokens::Identity;
use super::{AUTHENTICATED_GROUP, MASTERS_GROUP, UNAUTHENTICATED_GROUP};

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// A Role (namespace set) or ClusterRole (namespace empty).
#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    pub namespace: String,
    pub name: String,
    pub rules: Vec<PolicyRule>,
}

/// A RoleBinding (namespace set) or ClusterRoleBinding (namespace empty).
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub namespace: String,
    pub name: String,
    pub role_ref: RoleRef,
    pub subjects: Vec<Subject>,
}

/// Every RBAC object of the cluster, as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub roles: Vec<Role>,
    pub cluster_roles: Vec<Role>,
    pub role_bindings: Vec<Binding>,
    pub cluster_role_bindings: Vec<Binding>,
}

fn meta(obj: &Value, field: &str) -> String {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A stored Role or ClusterRole (objects that do not parse grant nothing).
pub fn role_of(obj: &Value) -> Role {
    let rules = obj
        .get("rules")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    Role {
        namespace: meta(obj, "namespace"),
        name: meta(obj, "name"),
        rules,
    }
}

pub fn binding_of(obj: &Value) -> Binding {
    let parse = |field: &str| obj.get(field).cloned().unwrap_or(Value::Null);
    Binding {
        namespace: meta(obj, "namespace"),
        name: meta(obj, "name"),
        role_ref: serde_json::from_value(parse("roleRef")).unwrap_or_default(),
        subjects: serde_json::from_value(parse("subjects")).unwrap_or_default(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied; `reason` is what the real authorizer appends to the message
    /// (`RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`), or empty.
    Deny {
        reason: String,
    },
}

/// Non-resource URLs every authenticated user may GET (`system:discovery`,
/// `system:public-info-viewer`).
const DISCOVERY_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/version/",
];
/// Non-resource URLs anyone may GET (`system:public-info-viewer`).
const PUBLIC_URLS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// May `who` do what `attrs` describes, under `policy`?
pub fn authorize(who: &Identity, attrs: &Attributes, policy: &Policy) -> Decision {
    if who.in_group(MASTERS_GROUP) {
        return Decision::Allow;
    }
    if let Attributes::NonResource { verb, path } = attrs {
        let bootstrap = if who.in_group(AUTHENTICATED_GROUP) {
            DISCOVERY_URLS
        } else if who.in_group(UNAUTHENTICATED_GROUP) {
            PUBLIC_URLS
        } else {
            &[]
        };
        if verb == "get" && bootstrap.iter().any(|u| url_matches(u, path)) {
            return Decision::Allow;
        }
    }
    let mut errors: Vec<String> = Vec::new();
    for binding in &policy.cluster_role_bindings {
        if !binds(binding, who) {
            continue;
        }
        if binding.role_ref.kind != "ClusterRole" {
            continue;
        }
        match find(&policy.cluster_roles, "", &binding.role_ref.name) {
            Some(role) if role.rules.iter().any(|r| rule_allows(r, attrs)) => {
                return Decision::Allow;
            }
            Some(_) => {}
            None => errors.push(not_found("clusterrole", &binding.role_ref.name)),
        }
    }
    if let Attributes::Resource { namespace, .. } = attrs
        && !namespace.is_empty()
    {
        for binding in policy
            .role_bindings
            .iter()
            .filter(|b| b.namespace == *namespace && binds(b, who))
        {
            let role = match binding.role_ref.kind.as_str() {
                "Role" => find(&policy.roles, namespace, &binding.role_ref.name)
                    .ok_or_else(|| not_found("role", &binding.role_ref.name)),
                "ClusterRole" => find(&policy.cluster_roles, "", &binding.role_ref.name)
                    .ok_or_else(|| not_found("clusterrole", &binding.role_ref.name)),
                _ => continue,
            };
            match role {
                Ok(role) if role.rules.iter().any(|r| rule_allows(r, attrs)) => {
                    return Decision::Allow;
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    Decision::Deny { reason }
}

fn not_found(kind: &str, name: &str) -> String {
    format!("{kind}.{RBAC_GROUP} \"{name}\" not found")
}

fn find<'a>(roles: &'a [Role], namespace: &str, name: &str) -> Option<&'a Role> {
    roles
        .iter()
        .find(|r| r.namespace == namespace && r.name == name)
}

/// Does one of `binding`'s subjects name `who`?
fn binds(binding: &Binding, who: &Identity) -> bool {
    binding.subjects.iter().any(|s| match s.kind.as_str() {
        "User" => s.name == who.user,
        "Group" => who.in_group(&s.name),
        "ServiceAccount" => {
            // In a RoleBinding, a ServiceAccount without a namespace is one of
            // the binding's namespace.
            let ns = if s.namespace.is_empty() {
                binding.namespace.as_str()
            } else {
                s.namespace.as_str()
            };
            !ns.is_empty() && super::tokens::service_account_user(ns, &s.name) == who.user
        }
        _ => false,
    })
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// Does `rule` allow `attrs`?
pub fn rule_allows(rule: &PolicyRule, attrs: &Attributes) -> bool {
    match attrs {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            has(&rule.verbs, verb)
                && has(&rule.api_groups, group)
                && rule.resources.iter().any(|r| {
                    r == "*"
                        || *r == combined
                        || (!subresource.is_empty() && *r == format!("*/{subresource}"))
                })
                && (rule.resource_names.is_empty() || rule.resource_names.contains(name))
        }
        Attributes::NonResource { verb, path } => {
            has(&rule.verbs, verb) && rule.non_resource_urls.iter().any(|u| url_matches(u, path))
        }
    }
}

/// `*`, the path itself, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        PolicyRule {
            verbs: s(verbs),
            api_groups: s(groups),
            resources: s(resources),
            resource_names: s(names),
            non_resource_urls: vec![],
        }
    }

    fn sa() -> Identity {
        Identity::service_account("redblack-system", "redblack")
    }

    fn subject() -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: "redblack".into(),
            namespace: "redblack-system".into(),
        }
    }

    fn cluster_policy(rules: Vec<PolicyRule>) -> Policy {
        Policy {
            cluster_roles: vec![Role {
                namespace: String::new(),
                name: "op".into(),
                rules,
            }],
            cluster_role_bindings: vec![Binding {
                namespace: String::new(),
                name: "op".into(),
                role_ref: RoleRef {
                    kind: "ClusterRole".into(),
                    name: "op".into(),
                },
                subjects: vec![subject()],
            }],
            ..Policy::default()
        }
    }

    fn allowed(policy: &Policy, who: &Identity, attrs: Attributes) -> bool {
        authorize(who, &attrs, policy) == Decision::Allow
    }

    #[test]
    fn rules_match_as_kubernetes_matches_them() {
        let a = Attributes::resource;
        // (rule, request, allowed)
        let table = [
            (
                rule(&["get"], &["apps"], &["replicasets"], &[]),
                a("get", "apps", "replicasets", "", "d", "w"),
                true,
            ),
            (
                rule(&["get"], &["apps"], &["replicasets"], &[]),
                a("list", "apps", "replicasets", "", "d", ""),
                false,
            ),
            (
                rule(&["*"], &["apps"], &["replicasets"], &[]),
                a("delete", "apps", "replicasets", "", "d", "w"),
                true,
            ),
            (
                rule(&["get"], &[""], &["replicasets"], &[]),
                a("get", "apps", "replicasets", "", "d", "w"),
                false,
            ),
            (
                rule(&["get"], &["*"], &["replicasets"], &[]),
                a("get", "apps", "replicasets", "", "d", "w"),
                true,
            ),
            // The object's rule does not grant its subresources…
            (
                rule(&["update"], &["apps"], &["replicasets"], &[]),
                a("update", "apps", "replicasets", "scale", "d", "w"),
                false,
            ),
            (
                rule(&["update"], &["apps"], &["replicasets/scale"], &[]),
                a("update", "apps", "replicasets", "scale", "d", "w"),
                true,
            ),
            (
                rule(&["update"], &["apps"], &["replicasets/scale"], &[]),
                a("update", "apps", "replicasets", "", "d", "w"),
                false,
            ),
            (
                rule(&["update"], &["apps"], &["*/scale"], &[]),
                a("update", "apps", "replicasets", "scale", "d", "w"),
                true,
            ),
            (
                rule(&["update"], &["apps"], &["*/scale"], &[]),
                a("update", "apps", "replicasets", "status", "d", "w"),
                false,
            ),
            // …but `*` grants every resource and subresource.
            (
                rule(&["update"], &["apps"], &["*"], &[]),
                a("update", "apps", "replicasets", "scale", "d", "w"),
                true,
            ),
            // resourceNames: only requests that name an object.
            (
                rule(&["get"], &[""], &["services"], &["web"]),
                a("get", "", "services", "", "d", "web"),
                true,
            ),
            (
                rule(&["get"], &[""], &["services"], &["web"]),
                a("get", "", "services", "", "d", "api"),
                false,
            ),
            (
                rule(&["list"], &[""], &["services"], &["web"]),
                a("list", "", "services", "", "d", ""),
                false,
            ),
            (
                rule(&["watch"], &[""], &["services"], &["web"]),
                a("watch", "", "services", "", "d", "web"),
                true,
            ),
            (
                rule(&["create"], &[""], &["services"], &["web"]),
                a("create", "", "services", "", "d", ""),
                false,
            ),
        ];
        for (i, (r, attrs, want)) in table.into_iter().enumerate() {
            assert_eq!(rule_allows(&r, &attrs), want, "row {i}: {r:?} {attrs:?}");
            let policy = cluster_policy(vec![r]);
            assert_eq!(
                allowed(&policy, &sa(), attrs),
                want,
                "row {i} through a binding"
            );
        }
    }

    #[test]
    fn a_role_binding_grants_in_its_namespace_only() {
        let a = Attributes::resource;
        let mut policy = cluster_policy(vec![rule(
            &["list", "get"],
            &["apps"],
            &["replicasets"],
            &[],
        )]);
        // Bound in namespace `team` instead of cluster-wide.
        let crb = policy.cluster_role_bindings.remove(0);
        policy.role_bindings.push(Binding {
            namespace: "team".into(),
            ..crb
        });
        let who = sa();
        assert!(allowed(
            &policy,
            &who,
            a("list", "apps", "replicasets", "", "team", "")
        ));
        assert!(allowed(
            &policy,
            &who,
            a("get", "apps", "replicasets", "", "team", "x")
        ));
        assert!(!allowed(
            &policy,
            &who,
            a("list", "apps", "replicasets", "", "other", "")
        ));
        assert!(
            !allowed(&policy, &who, a("list", "apps", "replicasets", "", "", "")),
            "a RoleBinding never grants the cluster scope"
        );

        // A Role of the binding's namespace, and one of another namespace.
        policy.role_bindings[0].role_ref = RoleRef {
            kind: "Role".into(),
            name: "local".into(),
        };
        policy.roles.push(Role {
            namespace: "elsewhere".into(),
            name: "local".into(),
            rules: vec![rule(&["*"], &["*"], &["*"], &[])],
        });
        assert_eq!(
            authorize(
                &who,
                &a("list", "apps", "replicasets", "", "team", ""),
                &policy
            ),
            Decision::Deny {
                reason: r#"RBAC: role.rbac.authorization.k8s.io "local" not found"#.into()
            }
        );
        policy.roles[0].namespace = "team".into();
        assert!(allowed(
            &policy,
            &who,
            a("delete", "", "pods", "", "team", "p")
        ));
    }

    #[test]
    fn a_cluster_role_binding_grants_everywhere() {
        let a = Attributes::resource;
        let policy = cluster_policy(vec![rule(&["watch"], &["redblack.io"], &["rollouts"], &[])]);
        let who = sa();
        assert!(allowed(
            &policy,
            &who,
            a("watch", "redblack.io", "rollouts", "", "", "")
        ));
        assert!(allowed(
            &policy,
            &who,
            a("watch", "redblack.io", "rollouts", "", "x", "")
        ));
        let other = Identity::service_account("redblack-system", "someone-else");
        assert!(!allowed(
            &policy,
            &other,
            a("watch", "redblack.io", "rollouts", "", "x", "")
        ));
        let mut dangling = policy.clone();
        dangling.cluster_roles.clear();
        assert_eq!(
            authorize(
                &who,
                &a("watch", "redblack.io", "rollouts", "", "x", ""),
                &dangling
            ),
            Decision::Deny {
                reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "op" not found"#.into()
            }
        );
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let a = Attributes::resource("get", "", "pods", "", "d", "p");
        let mut policy = cluster_policy(vec![rule(&["get"], &[""], &["pods"], &[])]);
        let who = sa();
        for (s, want) in [
            (
                Subject {
                    kind: "User".into(),
                    name: who.user.clone(),
                    namespace: String::new(),
                },
                true,
            ),
            (
                Subject {
                    kind: "Group".into(),
                    name: "system:serviceaccounts:redblack-system".into(),
                    namespace: String::new(),
                },
                true,
            ),
            (
                Subject {
                    kind: "Group".into(),
                    name: "system:serviceaccounts:other".into(),
                    namespace: String::new(),
                },
                false,
            ),
            (
                Subject {
                    kind: "ServiceAccount".into(),
                    name: "redblack".into(),
                    namespace: "other".into(),
                },
                false,
            ),
            // A ClusterRoleBinding's ServiceAccount needs its namespace.
            (
                Subject {
                    kind: "ServiceAccount".into(),
                    name: "redblack".into(),
                    namespace: String::new(),
                },
                false,
            ),
        ] {
            policy.cluster_role_bindings[0].subjects = vec![s.clone()];
            assert_eq!(allowed(&policy, &who, a.clone()), want, "{s:?}");
        }
        // In a RoleBinding, the binding's namespace.
        let mut crb = policy.cluster_role_bindings.remove(0);
        crb.namespace = "redblack-system".into();
        crb.subjects = vec![Subject {
            kind: "ServiceAccount".into(),
            name: "redblack".into(),
            namespace: String::new(),
        }];
        policy.role_bindings.push(crb);
        let here = Attributes::resource("get", "", "pods", "", "redblack-system", "p");
        assert!(allowed(&policy, &who, here));
    }

    #[test]
    fn non_resource_urls_and_bootstrap_roles() {
        let get = |path: &str| Attributes::NonResource {
            verb: "get".into(),
            path: path.into(),
        };
        let nobody = Policy::default();
        let who = sa();
        for path in [
            "/api",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3",
            "/healthz",
        ] {
            assert!(allowed(&nobody, &who, get(path)), "{path}");
        }
        assert!(!allowed(&nobody, &who, get("/sandbox/requests")));
        let anon = Identity::anonymous();
        assert!(allowed(&nobody, &anon, get("/version")));
        assert!(!allowed(&nobody, &anon, get("/api")));
        assert!(!allowed(
            &nobody,
            &anon,
            Attributes::resource("list", "", "pods", "", "d", "")
        ));
        assert!(allowed(
            &nobody,
            &Identity::admin(),
            get("/sandbox/requests")
        ));
        let put = Attributes::NonResource {
            verb: "put".into(),
            path: "/sandbox/faults".into(),
        };
        assert!(!allowed(&nobody, &who, put.clone()));
        let mut policy = cluster_policy(vec![PolicyRule {
            verbs: vec!["put".into()],
            non_resource_urls: vec!["/sandbox/*".into()],
            ..PolicyRule::default()
        }]);
        assert!(allowed(&policy, &who, put.clone()));
        // Non-resource rules count only from ClusterRoleBindings.
        let mut crb = policy.cluster_role_bindings.remove(0);
        crb.namespace = "redblack-system".into();
        policy.role_bindings.push(crb);
        assert!(!allowed(&policy, &who, put));
    }

    #[test]
    fn stored_objects_parse() {
        let role = role_of(&json!({"metadata": {"name": "r", "namespace": "n"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                       "resourceNames": ["p"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]}));
        assert_eq!(role.namespace, "n");
        assert_eq!(role.rules[0].resource_names, vec!["p".to_string()]);
        assert_eq!(role.rules[1].non_resource_urls, vec!["/x".to_string()]);
        let b = binding_of(&json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "Group", "name": "g"}]}));
        assert_eq!(b.role_ref.name, "r");
        assert_eq!(b.subjects[0].kind, "Group");
    }
}
