//! Where one request goes, decided from the store at request time (so a selector
//! or weight change takes effect for the very next request): the ready process
//! pods behind a Service, and the weighted backend Services of an HTTPRoute rule.

use std::net::{IpAddr, SocketAddr};

use http::StatusCode;
use serde_json::{Map, Value};

use crate::controllers::endpoints::desired_subsets;
use crate::registry::GroupResource;
use crate::store::Store;

/// A request that cannot be routed: the status and a body saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unroutable {
    pub status: StatusCode,
    pub message: String,
}

impl Unroutable {
    fn new(status: StatusCode, message: String) -> Self {
        Self { status, message }
    }
}

/// A pod that can take a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    pub pod: String,
}

pub(crate) fn services() -> GroupResource {
    GroupResource::new("", "services")
}

pub(crate) fn pods() -> GroupResource {
    GroupResource::new("", "pods")
}

pub(crate) fn httproutes() -> GroupResource {
    GroupResource::new("gateway.networking.k8s.io", "httproutes")
}

fn selector_text(service: &Value) -> String {
    service
        .get("spec")
        .and_then(|s| s.get("selector"))
        .and_then(Value::as_object)
        .map(|sel| {
            sel.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The Service port a request uses: the one numbered `port`, else the first.
fn service_port(service: &Value, port: Option<i64>) -> Option<&Map<String, Value>> {
    let ports = service.get("spec")?.get("ports")?.as_array()?;
    let mut all = ports.iter().filter_map(Value::as_object);
    match port {
        Some(n) => all.find(|p| p.get("port").and_then(Value::as_i64) == Some(n)),
        None => all.next(),
    }
}

/// The ready pods behind `namespace/name` that run as processes, with the port
/// that Service port resolves to on each (the same answer as its Endpoints).
pub fn service_backends(
    store: &Store,
    namespace: &str,
    name: &str,
    port: Option<i64>,
) -> Result<Vec<Backend>, Unroutable> {
    let Some(service) = store.get(&services(), namespace, name) else {
        return Err(Unroutable::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service {namespace}/{name} not found"),
        ));
    };
    let selector = selector_text(&service);
    if selector.is_empty() {
        return Err(Unroutable::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "service {namespace}/{name} has no selector: the sandbox data plane routes by selector"
            ),
        ));
    }
    let Some(sport) = service_port(&service, port) else {
        return Err(Unroutable::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "service {namespace}/{name} has no port {}",
                port.map_or_else(|| "at all".to_string(), |p| p.to_string())
            ),
        ));
    };
    let port_name = sport.get("name").and_then(Value::as_str).unwrap_or("");
    let (all_pods, _) = store.list(&pods(), Some(namespace));
    let (mut backends, mut simulated, mut not_ready) = (Vec::new(), 0usize, 0usize);
    for subset in desired_subsets(&service, &all_pods) {
        let target = subset
            .get("ports")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            })
            .and_then(|p| p.get("port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        not_ready += subset
            .get("notReadyAddresses")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for address in subset
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let ip = address
                .get("ip")
                .and_then(Value::as_str)
                .and_then(|ip| ip.parse::<IpAddr>().ok());
            match (ip, target) {
                // Only loopback addresses are real processes; 10.244.x.y pods
                // exist only in the simulation and cannot answer.
                (Some(ip), Some(p)) if ip.is_loopback() => backends.push(Backend {
                    addr: SocketAddr::new(ip, p),
                    pod: address
                        .get("targetRef")
                        .and_then(|t| t.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }),
                _ => simulated += 1,
            }
        }
    }
    if backends.is_empty() {
        let mut why = format!(
            "no ready pods behind service {namespace}/{name} (selector {selector}): {not_ready} not ready"
        );
        if simulated > 0 {
            why.push_str(&format!(
                ", {simulated} ready but simulated (only redblack/demo-app:<tag> pods run as processes and can serve)"
            ));
        }
        return Err(Unroutable::new(StatusCode::SERVICE_UNAVAILABLE, why));
    }
    Ok(backends)
}

/// One `backendRefs` entry of an HTTPRoute rule that the sandbox can serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedService {
    pub service: String,
    pub port: Option<i64>,
    pub weight: u64,
}

/// Gateway API path matching: `PathPrefix` matches whole path elements.
fn path_matches(m: &Value, path: &str) -> bool {
    let Some(p) = m.get("path") else {
        return true;
    };
    let value = p.get("value").and_then(Value::as_str).unwrap_or("/");
    match p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("PathPrefix")
    {
        "Exact" => path == value,
        "PathPrefix" => {
            let prefix = value.trim_end_matches('/');
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        _ => false,
    }
}

/// The backends of the first rule (in order) whose matches accept `path`; only
/// path matches are evaluated. Refs to other kinds or namespaces are skipped.
pub fn route_backends(route: &Value, path: &str) -> Result<Vec<WeightedService>, Unroutable> {
    let namespace = crate::store::meta_str(route, "namespace").unwrap_or("");
    let rules = route
        .get("spec")
        .and_then(|s| s.get("rules"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rule = rules.iter().find(|rule| {
        match rule
            .get("matches")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
        {
            None => true,
            Some(matches) => matches.iter().any(|m| path_matches(m, path)),
        }
    });
    let Some(rule) = rule else {
        return Err(Unroutable::new(
            StatusCode::NOT_FOUND,
            format!("no rule of this HTTPRoute matches path {path}"),
        ));
    };
    let refs = rule
        .get("backendRefs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let usable: Vec<WeightedService> = refs
        .iter()
        .filter(|r| {
            r.get("kind").and_then(Value::as_str).unwrap_or("Service") == "Service"
                && r.get("group")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                && r.get("namespace")
                    .and_then(Value::as_str)
                    .is_none_or(|ns| ns == namespace)
        })
        .filter_map(|r| {
            Some(WeightedService {
                service: r.get("name")?.as_str()?.to_string(),
                port: r.get("port").and_then(Value::as_i64),
                weight: r.get("weight").and_then(Value::as_u64).unwrap_or(1),
            })
        })
        .collect();
    // The Gateway API answers 500 when a rule has no usable backend.
    if usable.iter().all(|b| b.weight == 0) {
        return Err(Unroutable::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the matching HTTPRoute rule has no backendRef with a weight above 0 \
                 (of {} refs, {} are same-namespace Services)",
                refs.len(),
                usable.len()
            ),
        ));
    }
    Ok(usable)
}

/// Weighted choice: `draw` is uniform in [0, 1).
pub fn choose_weighted(backends: &[WeightedService], draw: f64) -> Option<&WeightedService> {
    let total: u64 = backends.iter().map(|b| b.weight).sum();
    if total == 0 {
        return None;
    }
    // u64 weights are far below 2^53 in practice (Gateway API caps them at 1e6).
    let mut point = draw.clamp(0.0, 1.0) * total as f64;
    for b in backends.iter().filter(|b| b.weight > 0) {
        point -= b.weight as f64;
        if point < 0.0 {
            return Some(b);
        }
    }
    backends.iter().rev().find(|b| b.weight > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ws(name: &str, weight: u64) -> WeightedService {
        WeightedService {
            service: name.into(),
            port: None,
            weight,
        }
    }

    #[test]
    fn weighted_choice_covers_the_interval() {
        let b = [ws("a", 90), ws("zero", 0), ws("b", 10)];
        assert_eq!(choose_weighted(&b, 0.0).unwrap().service, "a");
        assert_eq!(choose_weighted(&b, 0.8999).unwrap().service, "a");
        assert_eq!(choose_weighted(&b, 0.9).unwrap().service, "b");
        assert_eq!(choose_weighted(&b, 0.99999).unwrap().service, "b");
        assert_eq!(choose_weighted(&b, 1.0).unwrap().service, "b");
        assert!(choose_weighted(&[ws("a", 0)], 0.5).is_none());
    }

    #[test]
    fn rules_match_by_path_and_skip_unusable_refs() {
        let route = json!({"metadata": {"namespace": "demo"}, "spec": {"rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
             "backendRefs": [{"name": "api", "port": 80}]},
            {"backendRefs": [
                {"name": "stable", "weight": 90},
                {"name": "canary", "weight": 10},
                {"name": "elsewhere", "namespace": "other"},
                {"name": "bucket", "kind": "Bucket", "group": "example.com"}]}]}});
        let api = route_backends(&route, "/api/x").unwrap();
        assert_eq!(api[0].service, "api");
        assert_eq!(api[0].port, Some(80));
        assert_eq!(api[0].weight, 1);
        let rest = route_backends(&route, "/apiary").unwrap();
        assert_eq!(
            rest.iter().map(|b| b.service.as_str()).collect::<Vec<_>>(),
            ["stable", "canary"]
        );
        let none = json!({"metadata": {"namespace": "demo"}, "spec": {"rules": [
            {"backendRefs": [{"name": "a", "weight": 0}]}]}});
        assert_eq!(
            route_backends(&none, "/").unwrap_err().status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let exact = json!({"spec": {"rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/only"}}], "backendRefs": [{"name": "a"}]}]}});
        assert_eq!(
            route_backends(&exact, "/other").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }
}
