//! Defaults and validation of the RBAC kinds (rbac.authorization.k8s.io/v1),
//! with the real server's field paths and wording
//! (k8s.io/kubernetes `pkg/apis/rbac/validation`): every rule names verbs, a
//! resource rule API groups and resources, a non-resource rule only URLs (and
//! only in a ClusterRole); a binding's roleRef is complete, of a kind the
//! binding may reference, and never changes; subjects are complete.
//! Not covered: aggregation rules, and the name syntax of subjects.

use serde_json::{Value, json};

use crate::auth::rbac::RBAC_GROUP;
use crate::schema::FieldError;

fn required(field: &str, detail: &str) -> FieldError {
    let mut e = FieldError::required(field);
    if !detail.is_empty() {
        e.message = format!("Required value: {detail}");
    }
    e
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
    let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    FieldError {
        reason: "FieldValueNotSupported".into(),
        field: field.into(),
        message: format!(
            "Unsupported value: {value:?}: supported values: {}",
            supported.join(", ")
        ),
    }
}

/// Go's `%#v` of a `[]string`, as the real server shows a bad list.
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Fills in what the API server defaults: a User's or Group's subject
/// apiGroup.
pub fn default(kind: &str, obj: &mut Value) {
    if !matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
        return;
    }
    if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            let kind = str_at(s, "kind").to_string();
            if s.get("apiGroup").is_none() && matches!(kind.as_str(), "User" | "Group") {
                s["apiGroup"] = json!(RBAC_GROUP);
            }
        }
    }
}

/// Every error of an RBAC object of `kind`; `old` is the stored one on update.
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match kind {
        "Role" | "ClusterRole" => {
            let rules = obj.get("rules").and_then(Value::as_array);
            for (i, rule) in rules.into_iter().flatten().enumerate() {
                policy_rule(rule, kind == "Role", &format!("rules[{i}]"), &mut errs);
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            binding(kind, obj, &mut errs);
            if let Some(old) = old
                && old.get("roleRef") != obj.get("roleRef")
            {
                let r = obj.get("roleRef").unwrap_or(&Value::Null);
                errs.push(FieldError {
                    reason: "FieldValueInvalid".into(),
                    field: "roleRef".into(),
                    message: format!(
                        "Invalid value: rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}: cannot change roleRef",
                        str_at(r, "apiGroup"),
                        str_at(r, "kind"),
                        str_at(r, "name")
                    ),
                });
            }
        }
        _ => {}
    }
    errs
}

fn policy_rule(rule: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    if strings(rule.get("verbs")).is_empty() {
        errs.push(required(
            &format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = strings(rule.get("nonResourceURLs"));
    if !urls.is_empty() {
        let field = format!("{path}.nonResourceURLs");
        let invalid = |why: &str| FieldError {
            reason: "FieldValueInvalid".into(),
            field: field.clone(),
            message: format!("Invalid value: {}: {why}", go_strings(&urls)),
        };
        if namespaced {
            errs.push(invalid(
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|k| !strings(rule.get(*k)).is_empty())
        {
            errs.push(invalid(
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if strings(rule.get("apiGroups")).is_empty() {
        errs.push(required(
            &format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if strings(rule.get("resources")).is_empty() {
        errs.push(required(
            &format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

fn binding(kind: &str, obj: &Value, errs: &mut Vec<FieldError>) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let api_group = str_at(role_ref, "apiGroup");
    if api_group != RBAC_GROUP {
        errs.push(not_supported("roleRef.apiGroup", api_group, &[RBAC_GROUP]));
    }
    let ref_kind = str_at(role_ref, "kind");
    let kinds: &[&str] = if kind == "RoleBinding" {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&ref_kind) {
        errs.push(not_supported("roleRef.kind", ref_kind, kinds));
    }
    if str_at(role_ref, "name").is_empty() {
        errs.push(required("roleRef.name", ""));
    }
    let subjects = obj.get("subjects").and_then(Value::as_array);
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let path = format!("subjects[{i}]");
        if str_at(s, "name").is_empty() {
            errs.push(required(&format!("{path}.name"), ""));
        }
        let group = str_at(s, "apiGroup");
        match str_at(s, "kind") {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.push(not_supported(&format!("{path}.apiGroup"), group, &[""]));
                }
                if kind == "ClusterRoleBinding" && str_at(s, "namespace").is_empty() {
                    errs.push(required(&format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(not_supported(
                        &format!("{path}.apiGroup"),
                        group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(not_supported(
                &format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(kind: &str, obj: Value, old: Option<Value>) -> Vec<String> {
        let mut obj = obj;
        default(kind, &mut obj);
        validate(kind, &obj, old.as_ref())
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn rules_are_checked() {
        let ok = json!({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        assert!(messages("Role", ok, None).is_empty());
        assert_eq!(
            messages("Role", json!({"rules": [{"apiGroups": [""]}]}), None),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        assert_eq!(
            messages(
                "Role",
                json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
                None
            ),
            [
                r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs"#
            ]
        );
        assert!(
            messages(
                "ClusterRole",
                json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            messages(
                "ClusterRole",
                json!({"rules": [{"verbs": ["get"], "resources": ["pods"], "nonResourceURLs": ["/x"]}]}),
                None
            ),
            [
                r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#
            ]
        );
        assert_eq!(
            messages(
                "ClusterRole",
                json!({"rules": [{"verbs": ["get"], "resources": ["pods"]}]}),
                None
            ),
            [
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group"
            ]
        );
    }

    #[test]
    fn bindings_are_checked_and_role_ref_is_immutable() {
        let rb = |kind: &str, name: &str| {
            json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": name},
                   "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ns"},
                                {"kind": "User", "name": "alice"}]})
        };
        assert!(messages("RoleBinding", rb("Role", "r"), None).is_empty());
        assert!(messages("ClusterRoleBinding", rb("ClusterRole", "r"), None).is_empty());
        assert_eq!(
            messages("ClusterRoleBinding", rb("Role", "r"), None),
            [r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#]
        );
        assert_eq!(
            messages(
                "RoleBinding",
                json!({"subjects": [{"kind": "Robot", "name": "x"}]}),
                None
            ),
            [
                r#"roleRef.apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io""#,
                r#"roleRef.kind: Unsupported value: "": supported values: "Role", "ClusterRole""#,
                "roleRef.name: Required value",
                r#"subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
            ]
        );
        assert_eq!(
            messages(
                "ClusterRoleBinding",
                json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "r"},
                       "subjects": [{"kind": "ServiceAccount", "name": "op"}]}),
                None
            ),
            ["subjects[0].namespace: Required value"]
        );
        assert_eq!(
            messages(
                "RoleBinding",
                rb("ClusterRole", "other"),
                Some(rb("ClusterRole", "r"))
            ),
            [
                r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"other"}: cannot change roleRef"#
            ]
        );
        assert!(messages("RoleBinding", rb("Role", "r"), Some(rb("Role", "r"))).is_empty());
    }
}
