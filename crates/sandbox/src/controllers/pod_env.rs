//! A container's environment as a kubelet builds it: `env` in order, with
//! `valueFrom.fieldRef` (the downward API), `configMapKeyRef` and
//! `secretKeyRef` resolved, and `$(VAR)` references to earlier entries
//! expanded (`$$` is a literal `$`; an unknown reference stays as written).
//! Also the `$(VAR)` expansion of `command` and `args`. Pure: the pod and a
//! lookup for ConfigMaps/Secrets come in, so every case is a table test.
//!
//! Not resolved (the container then stays `CreateContainerConfigError`, with
//! a message saying so): `resourceFieldRef` and `envFrom`.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use super::process_spec::SpecError;

/// What the downward API reads besides the pod object itself.
#[derive(Clone, Debug, PartialEq)]
pub struct PodIps {
    pub pod_ip: String,
    pub host_ip: String,
}

/// Looks up a ConfigMap or Secret (`kind`, name) in the pod's namespace.
pub type Lookup<'a> = &'a dyn Fn(&str, &str) -> Option<Value>;

fn config_error(message: String) -> SpecError {
    SpecError::CreateContainerConfigError(message)
}

/// `metadata.labels['key']` → `Some(("labels", "key"))`.
fn subscript<'a>(path: &'a str, field: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(field)?.strip_prefix("['")?;
    rest.strip_suffix("']")
}

/// The value of a `fieldRef.fieldPath`, as the kubelet resolves it.
pub fn field_ref(pod: &Value, path: &str, ips: &PodIps) -> Result<String, SpecError> {
    let meta = |k: &str| {
        pod.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let map_entry = |field: &str, key: &str| {
        pod.pointer(&format!("/metadata/{field}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(match path {
        "metadata.name" => meta("name"),
        "metadata.namespace" => meta("namespace"),
        "metadata.uid" => meta("uid"),
        "spec.nodeName" => pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        "spec.serviceAccountName" => service_account_name(pod).to_string(),
        "status.podIP" | "status.podIPs" => ips.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => ips.host_ip.clone(),
        _ => {
            if let Some(key) = subscript(path, "metadata.labels") {
                map_entry("labels", key)
            } else if let Some(key) = subscript(path, "metadata.annotations") {
                map_entry("annotations", key)
            } else {
                return Err(config_error(format!(
                    "unsupported fieldPath {path:?}: the kubelet resolves metadata.name, \
                     metadata.namespace, metadata.uid, metadata.labels['KEY'], \
                     metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, \
                     status.podIP(s), status.hostIP(s)"
                )));
            }
        }
    })
}

/// The pod's ServiceAccount: `spec.serviceAccountName`, else the deprecated
/// `spec.serviceAccount`, else `default` (as the admission plugin sets it).
pub fn service_account_name(pod: &Value) -> &str {
    ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| pod.pointer(p).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` with NAME in `env` becomes its
/// value, `$$` becomes `$`, anything else is left as written.
pub fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            out.push('$');
            rest = after_dollar;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `configMapKeyRef` / `secretKeyRef`: `Ok(None)` for a missing optional one.
fn key_ref(
    var: &str,
    reference: &Value,
    kind: &str,
    lookup: Lookup<'_>,
) -> Result<Option<String>, SpecError> {
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let key = reference.get("key").and_then(Value::as_str).unwrap_or("");
    let optional = reference.get("optional").and_then(Value::as_bool) == Some(true);
    let lower = kind.to_ascii_lowercase();
    let Some(object) = lookup(kind, name) else {
        return if optional {
            Ok(None)
        } else {
            Err(config_error(format!("{lower} {name:?} not found")))
        };
    };
    let plain = object.pointer("/data").and_then(|d| d.get(key));
    let value = match (kind, plain) {
        ("Secret", Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        (_, Some(Value::String(s))) => Some(s.clone()),
        _ => object
            .pointer("/stringData")
            .or_else(|| object.pointer("/binaryData"))
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    match value {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(config_error(format!(
            "couldn't find key {key} in {kind} {name} (env {var})"
        ))),
    }
}

/// The container's `env`, resolved and expanded, as the process gets it.
pub fn resolve_env(
    container: &Value,
    pod: &Value,
    ips: &PodIps,
    lookup: Lookup<'_>,
) -> Result<BTreeMap<String, String>, SpecError> {
    if container
        .get("envFrom")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(config_error(
            "envFrom is not supported by the sandbox: list the variables in env".into(),
        ));
    }
    let mut env = BTreeMap::new();
    for entry in container
        .get("env")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            return Err(config_error("an env entry has no name".into()));
        };
        let value = match entry.get("valueFrom").filter(|v| !v.is_null()) {
            Some(from) => {
                if let Some(field) = from.get("fieldRef") {
                    let path = field.get("fieldPath").and_then(Value::as_str).unwrap_or("");
                    Some(field_ref(pod, path, ips)?)
                } else if let Some(r) = from.get("configMapKeyRef") {
                    key_ref(name, r, "ConfigMap", lookup)?
                } else if let Some(r) = from.get("secretKeyRef") {
                    key_ref(name, r, "Secret", lookup)?
                } else {
                    return Err(config_error(format!(
                        "env {name}: only fieldRef, configMapKeyRef and secretKeyRef \
                         are resolved by the sandbox"
                    )));
                }
            }
            None => match entry.get("value") {
                None | Some(Value::Null) => Some(String::new()),
                Some(Value::String(s)) => Some(expand(s, &env)),
                Some(other) => {
                    return Err(config_error(format!(
                        "env {name}: value must be a string, got {other}"
                    )));
                }
            },
        };
        if let Some(value) = value {
            env.insert(name.to_string(), value);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ips() -> PodIps {
        PodIps {
            pod_ip: "127.0.0.1".into(),
            host_ip: "10.240.0.1".into(),
        }
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "op-1", "namespace": "redblack-system", "uid": "u-1",
                            "labels": {"app": "redblack"}, "annotations": {"a/b": "c"}},
               "spec": {"nodeName": "sandbox", "serviceAccountName": "rb"}})
    }

    fn none(_: &str, _: &str) -> Option<Value> {
        None
    }

    #[test]
    fn field_refs_as_a_kubelet_resolves_them() {
        let cases = [
            ("metadata.name", "op-1"),
            ("metadata.namespace", "redblack-system"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "redblack"),
            ("metadata.labels['missing']", ""),
            ("metadata.annotations['a/b']", "c"),
            ("spec.nodeName", "sandbox"),
            ("spec.serviceAccountName", "rb"),
            ("status.podIP", "127.0.0.1"),
            ("status.hostIP", "10.240.0.1"),
        ];
        for (path, want) in cases {
            assert_eq!(field_ref(&pod(), path, &ips()).unwrap(), want, "{path}");
        }
        for bad in ["metadata.labels", "spec.containers", ""] {
            let err = field_ref(&pod(), bad, &ips()).unwrap_err();
            assert_eq!(err.reason(), "CreateContainerConfigError", "{bad}");
        }
        assert_eq!(service_account_name(&json!({"spec": {}})), "default");
        assert_eq!(
            service_account_name(&json!({"spec": {"serviceAccount": "old"}})),
            "old"
        );
    }

    #[test]
    fn expansion() {
        let env: BTreeMap<String, String> =
            [("A".to_string(), "1".to_string())].into_iter().collect();
        for (input, want) in [
            ("$(A)", "1"),
            ("x$(A)y$(A)", "x1y1"),
            ("$$(A)", "$(A)"),
            ("$(B)", "$(B)"),
            ("$(A", "$(A"),
            ("cost $5", "cost $5"),
            ("end$", "end$"),
            ("é$(A)é", "é1é"),
        ] {
            assert_eq!(expand(input, &env), want, "{input}");
        }
    }

    #[test]
    fn env_in_order_with_references() {
        let c = json!({"env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ID", "value": "$(POD_NAME)-$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "EMPTY"},
        ]});
        let env = resolve_env(&c, &pod(), &ips(), &none).unwrap();
        assert_eq!(env["POD_NAME"], "op-1");
        assert_eq!(env["ID"], "op-1-$(LATER)", "only earlier entries expand");
        assert_eq!(env["EMPTY"], "");
    }

    #[test]
    fn config_maps_and_secrets() {
        let lookup = |kind: &str, name: &str| match (kind, name) {
            ("ConfigMap", "cm") => Some(json!({"data": {"k": "v"}})),
            ("Secret", "s") => Some(json!({"data": {"k": "c2VjcmV0"}})),
            _ => None,
        };
        let c = json!({"env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
        ]});
        let env = resolve_env(&c, &pod(), &ips(), &lookup).unwrap();
        assert_eq!(env["A"], "v");
        assert_eq!(env["B"], "secret");
        assert!(!env.contains_key("C"));
        let missing = json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]});
        let err = resolve_env(&missing, &pod(), &ips(), &lookup).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"gone\" not found");
        let no_key = json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}]});
        assert!(resolve_env(&no_key, &pod(), &ips(), &lookup).is_err());
        for bad in [
            json!({"envFrom": [{"configMapRef": {"name": "cm"}}]}),
            json!({"env": [{"name": "R", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}),
            json!({"env": [{"value": "nameless"}]}),
            json!({"env": [{"name": "N", "value": 5}]}),
        ] {
            assert!(resolve_env(&bad, &pod(), &ips(), &lookup).is_err(), "{bad}");
        }
    }
}
