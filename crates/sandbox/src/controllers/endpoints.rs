//! Endpoints controller: for every Service with a selector, an Endpoints object of
//! the same name listing the selected pods (ready ones in `addresses`, the rest in
//! `notReadyAddresses`) with the Service's target ports resolved per pod.
//! Services without a selector are left alone, as their Endpoints are the user's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::labels::{labels_of, map_matches};
use super::operator_spec::{PORTS_ANNOTATION, parse_ports_annotation};
use super::process_runtime::PORT_ANNOTATION;
use super::runner::Reconciler;
use super::selector_index::SelectorIndex;
use super::{Builtins, ControllerError, ObjKey, is_deleting, obj_key, pod_phase, pod_ready};
use crate::store::{
    DeleteOptions, EventType, Store, StoreError, StoredEvent, UpdateTarget, meta_str,
};

/// Marks Endpoints this controller owns, as the real controller does.
const MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
const MANAGER: &str = "endpoint-controller";

pub(crate) struct EndpointsController {
    store: Arc<Store>,
    types: Builtins,
    /// Pod → the Services whose selector matched it at their last reconcile, so
    /// a pod event wakes only the Services that select it now or did before (a
    /// label change that leaves a selector). Waking every Service of the
    /// namespace on every pod event made the work O(pods × Services).
    members: HashMap<ObjKey, BTreeSet<ObjKey>>,
    /// Service → the pods recorded for it in `members`.
    selected: HashMap<ObjKey, Vec<ObjKey>>,
    /// Which Services select which labels, kept from Service events, so a pod
    /// event finds the Services selecting it without listing the namespace's
    /// Services (O(Services) per pod event at 10,000 Services).
    selectors: SelectorIndex,
}

fn selector(service: &Value) -> Option<&Map<String, Value>> {
    service
        .get("spec")?
        .get("selector")?
        .as_object()
        .filter(|s| !s.is_empty())
}

/// The container port a named targetPort refers to in this pod.
fn named_port(pod: &Value, name: &str) -> Option<i64> {
    pod.get("spec")?
        .get("containers")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("ports")?.as_array())
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("containerPort")?
        .as_i64()
}

/// An operator pod's ports moved to loopback (container port → loopback
/// port), from its `sandbox.redblack.io/ports` annotation.
fn mapped_ports(pod: &Value) -> Option<BTreeMap<u16, u16>> {
    pod.get("metadata")?
        .get("annotations")?
        .get(PORTS_ANNOTATION)?
        .as_str()
        .map(parse_ports_annotation)
}

/// A process pod (`process_runtime`) serves every port on the one it was given,
/// recorded in an annotation: `Some(None)` while it has none (not running), so
/// nothing ever points at a template port on loopback.
fn process_port(pod: &Value) -> Option<Option<i64>> {
    let ip = pod.get("status")?.get("podIP")?.as_str()?;
    if ip != "127.0.0.1" {
        return None;
    }
    Some(
        pod.get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(PORT_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<u16>().ok())
            .map(i64::from),
    )
}

/// The endpoint ports for one pod; ports whose named target the pod lacks are
/// left out for that pod (as the real controller does).
fn ports_for(service_ports: &[Value], pod: &Value) -> Vec<Value> {
    let mapped = mapped_ports(pod);
    let process = if mapped.is_some() {
        None
    } else {
        process_port(pod)
    };
    if process == Some(None) {
        return Vec::new();
    }
    service_ports
        .iter()
        .filter_map(|sp| {
            let target = match sp.get("targetPort") {
                _ if process.is_some() => return process.flatten().map(|p| (sp, p)),
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => match s.parse::<i64>() {
                    Ok(n) => Some(n),
                    Err(_) => named_port(pod, s),
                },
                _ => sp.get("port").and_then(Value::as_i64),
            }?;
            // An operator pod: the target port as moved to loopback (a port it
            // does not serve there is left out).
            match &mapped {
                Some(map) => u16::try_from(target)
                    .ok()
                    .and_then(|t| map.get(&t))
                    .map(|p| (sp, i64::from(*p))),
                None => Some((sp, target)),
            }
        })
        .map(|(sp, port)| {
            let mut p = Map::new();
            if let Some(name) = sp
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                p.insert("name".into(), json!(name));
            }
            p.insert("port".into(), json!(port));
            p.insert(
                "protocol".into(),
                sp.get("protocol").cloned().unwrap_or_else(|| json!("TCP")),
            );
            Value::Object(p)
        })
        .collect()
}

fn address(pod: &Value, ip: &str) -> Value {
    let (ns, name) = obj_key(pod);
    let mut a = json!({
        "ip": ip,
        "targetRef": {"kind": "Pod", "name": name, "namespace": ns,
                      "uid": meta_str(pod, "uid").unwrap_or("")},
    });
    if let Some(node) = pod
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        && let Some(map) = a.as_object_mut()
    {
        map.insert("nodeName".into(), json!(node));
    }
    a
}

/// One subset being assembled: addresses are (ip, address) so they sort by IP.
struct SubsetDraft {
    ports: Vec<Value>,
    ready: Vec<(String, Value)>,
    not_ready: Vec<(String, Value)>,
}

/// `subsets` for a Service over the pods of its namespace: one subset per distinct
/// port list, addresses sorted by IP, so equal inputs give equal output.
pub(crate) fn desired_subsets(service: &Value, pods: &[Arc<Value>]) -> Vec<Value> {
    let Some(sel) = selector(service) else {
        return Vec::new();
    };
    let publish_not_ready = service
        .get("spec")
        .and_then(|s| s.get("publishNotReadyAddresses"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let service_ports: Vec<Value> = service
        .get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Keyed by the port list as JSON text, which also orders the subsets.
    let mut groups: BTreeMap<String, SubsetDraft> = BTreeMap::new();
    for pod in pods {
        if is_deleting(pod)
            || matches!(pod_phase(pod), "Succeeded" | "Failed")
            || !map_matches(sel, labels_of(pod))
        {
            continue;
        }
        let Some(ip) = pod
            .get("status")
            .and_then(|s| s.get("podIP"))
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let ports = ports_for(&service_ports, pod);
        if ports.is_empty() && !service_ports.is_empty() {
            continue;
        }
        let group = groups
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| SubsetDraft {
                ports,
                ready: Vec::new(),
                not_ready: Vec::new(),
            });
        let entry = (ip.to_string(), address(pod, ip));
        if publish_not_ready || pod_ready(pod).0 {
            group.ready.push(entry);
        } else {
            group.not_ready.push(entry);
        }
    }
    groups
        .into_values()
        .map(|draft| {
            let SubsetDraft {
                ports,
                mut ready,
                mut not_ready,
            } = draft;
            ready.sort_by(|a, b| a.0.cmp(&b.0));
            not_ready.sort_by(|a, b| a.0.cmp(&b.0));
            let mut subset = Map::new();
            if !ready.is_empty() {
                subset.insert(
                    "addresses".into(),
                    Value::Array(ready.into_iter().map(|e| e.1).collect()),
                );
            }
            if !not_ready.is_empty() {
                subset.insert(
                    "notReadyAddresses".into(),
                    Value::Array(not_ready.into_iter().map(|e| e.1).collect()),
                );
            }
            if !ports.is_empty() {
                subset.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(subset)
        })
        .collect()
}

impl EndpointsController {
    pub(crate) fn new(store: Arc<Store>, types: Builtins) -> Self {
        Self {
            store,
            types,
            members: HashMap::new(),
            selected: HashMap::new(),
            selectors: SelectorIndex::default(),
        }
    }

    /// Records that `service` now selects exactly `pods`.
    fn remember(&mut self, service: &ObjKey, pods: Vec<ObjKey>) {
        for pod in self.selected.remove(service).unwrap_or_default() {
            if let Some(set) = self.members.get_mut(&pod) {
                set.remove(service);
                if set.is_empty() {
                    self.members.remove(&pod);
                }
            }
        }
        for pod in &pods {
            self.members
                .entry(pod.clone())
                .or_default()
                .insert(service.clone());
        }
        if !pods.is_empty() {
            self.selected.insert(service.clone(), pods);
        }
    }

    /// Services a pod event concerns: those selecting the pod's labels now, and
    /// those that selected it at their last reconcile.
    fn services_for_pod(&self, pod: &Value, out: &mut Vec<ObjKey>) {
        let key = obj_key(pod);
        self.selectors.selecting(&key.0, labels_of(pod), out);
        if let Some(before) = self.members.get(&key) {
            out.extend(before.iter().cloned());
        }
    }

    fn delete_endpoints(&self, ns: &str, name: &str) -> Result<(), ControllerError> {
        let gr = self.types.endpoints.group_resource();
        let Some(ep) = self.store.get(&gr, ns, name) else {
            return Ok(());
        };
        let ours = ep
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(|l| l.get(MANAGED_BY))
            .and_then(Value::as_str)
            == Some(MANAGER);
        if !ours {
            return Ok(());
        }
        let opts = DeleteOptions {
            precondition_uid: meta_str(&ep, "uid").map(String::from),
            ..Default::default()
        };
        match self.store.delete(&self.types.endpoints, ns, name, &opts) {
            Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::PreconditionFailed(_)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for EndpointsController {
    type Key = ObjKey;
    const NAME: &'static str = "endpoints";
    // Every input is a store object: events (and a full pass on lag) suffice.
    const RESYNC: bool = false;

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<ObjKey>) {
        let gr = &event.gr;
        if *gr == self.types.services.group_resource()
            || *gr == self.types.endpoints.group_resource()
        {
            if *gr == self.types.services.group_resource() {
                let deleted = event.event_type == EventType::Deleted || is_deleting(&event.object);
                self.selectors.set(
                    obj_key(&event.object),
                    selector(&event.object).filter(|_| !deleted),
                );
            }
            out.push(obj_key(&event.object));
        } else if *gr == self.types.pods.group_resource() {
            // Old labels are not in the event: `members` remembers which
            // Services selected the pod, so one that leaves a selector is
            // still removed from its Endpoints.
            self.services_for_pod(&event.object, out);
        }
    }

    fn all_keys(&mut self) -> Vec<ObjKey> {
        let (services, _) = self.store.list(&self.types.services.group_resource(), None);
        self.selectors = SelectorIndex::default();
        for svc in services.iter().filter(|s| !is_deleting(s)) {
            self.selectors.set(obj_key(svc), selector(svc));
        }
        let (endpoints, _) = self
            .store
            .list(&self.types.endpoints.group_resource(), None);
        services
            .iter()
            .chain(endpoints.iter())
            .map(|o| obj_key(o))
            .collect()
    }

    fn reconcile(&mut self, key: &ObjKey) -> Result<Option<Instant>, ControllerError> {
        let (ns, name) = key;
        let service = self
            .store
            .get(&self.types.services.group_resource(), ns, name);
        let Some(service) = service.filter(|s| !is_deleting(s)) else {
            self.remember(key, Vec::new());
            self.delete_endpoints(ns, name)?;
            return Ok(None);
        };
        let Some(sel) = selector(&service) else {
            self.remember(key, Vec::new());
            return Ok(None);
        };
        // Through the store's label index: only the pods this selector matches.
        let pods = self
            .store
            .select(&self.types.pods.group_resource(), ns, sel);
        let matching = pods
            .iter()
            .filter(|p| map_matches(sel, labels_of(p)))
            .map(|p| obj_key(p))
            .collect();
        self.remember(key, matching);
        let subsets = desired_subsets(&service, &pods);
        let mut labels = service
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        labels.insert(MANAGED_BY.into(), json!(MANAGER));
        let gr = self.types.endpoints.group_resource();
        match self.store.get(&gr, ns, name) {
            None => {
                let mut ep = json!({"metadata": {"name": name, "namespace": ns, "labels": labels}});
                if !subsets.is_empty()
                    && let Some(map) = ep.as_object_mut()
                {
                    map.insert("subsets".into(), Value::Array(subsets));
                }
                match self.store.create(&self.types.endpoints, ep) {
                    // Raced with another writer: the resulting event brings us back.
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(current) => {
                let current_subsets = current
                    .get("subsets")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let current_labels = current
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(Value::as_object);
                if current_subsets == subsets && current_labels == Some(&labels) {
                    return Ok(None);
                }
                let mut next = (*current).clone();
                if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("labels".into(), Value::Object(labels));
                }
                if let Some(map) = next.as_object_mut() {
                    if subsets.is_empty() {
                        map.remove("subsets");
                    } else {
                        map.insert("subsets".into(), Value::Array(subsets));
                    }
                }
                self.store
                    .update(&self.types.endpoints, next, UpdateTarget::Main)?;
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, app: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("u-{name}"), "labels": {"app": app}},
            "spec": {"nodeName": "sandbox", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
    }

    #[test]
    fn named_and_numeric_target_ports_and_readiness() {
        let svc = json!({"spec": {"selector": {"app": "web"}, "ports": [
            {"name": "web", "port": 80, "targetPort": "http"},
            {"name": "admin", "port": 9000, "targetPort": 9001, "protocol": "UDP"}]}});
        let pods = [
            pod("b", "10.244.0.2", true, "web"),
            pod("a", "10.244.0.1", false, "web"),
            pod("x", "10.244.0.9", true, "other"),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        assert_eq!(s["addresses"][0]["ip"], "10.244.0.2");
        assert_eq!(s["addresses"][0]["targetRef"]["name"], "b");
        assert_eq!(s["notReadyAddresses"][0]["ip"], "10.244.0.1");
        assert_eq!(
            s["ports"],
            json!([{"name": "web", "port": 8080, "protocol": "TCP"},
                                      {"name": "admin", "port": 9001, "protocol": "UDP"}])
        );
    }

    #[test]
    fn operator_pods_map_target_ports_through_their_annotation() {
        let svc = json!({"spec": {"selector": {"app": "web"}, "ports": [
            {"name": "metrics", "port": 8080, "targetPort": "http"},
            {"name": "other", "port": 9000, "targetPort": 9000}]}});
        let mut running = (*pod("op", "127.0.0.1", true, "web")).clone();
        running["metadata"]["annotations"] = json!({PORTS_ANNOTATION: "8080=41000"});
        let subsets = desired_subsets(&svc, &[Arc::new(running)]);
        assert_eq!(
            subsets[0]["ports"],
            json!([{"name": "metrics", "port": 41000, "protocol": "TCP"}]),
            "a port it does not serve on loopback is left out"
        );
        // Not running (no mapping, no port): no endpoint at all.
        let stopped = pod("op", "127.0.0.1", false, "web");
        assert!(desired_subsets(&svc, &[stopped]).is_empty());
    }

    /// A controller over a bare store, and a pod event for `pod`.
    fn controller() -> (EndpointsController, Arc<Store>, Builtins) {
        let registry = crate::registry::Registry::new();
        let types = Builtins::from_registry(&registry).unwrap();
        let store = Arc::new(Store::new(100));
        store
            .create(&types.namespaces, json!({"metadata": {"name": "d"}}))
            .unwrap();
        for (name, sel) in [("a", json!({"app": "a"})), ("b", json!({"app": "b"}))] {
            store
                .create(
                    &types.services,
                    json!({"metadata": {"name": name, "namespace": "d"},
                           "spec": {"selector": sel, "ports": [{"port": 80}]}}),
                )
                .unwrap();
        }
        store
            .create(
                &types.services,
                json!({"metadata": {"name": "external", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}),
            )
            .unwrap();
        let mut c = EndpointsController::new(store.clone(), types.clone());
        // As the runner starts it: one full pass, which also learns the selectors.
        c.all_keys();
        (c, store, types)
    }

    fn pod_event(pod: Arc<Value>, types: &Builtins) -> StoredEvent {
        StoredEvent {
            rv: 1,
            gr: types.pods.group_resource(),
            event_type: crate::store::EventType::Modified,
            object: pod,
        }
    }

    fn keys(c: &mut EndpointsController, event: &StoredEvent) -> BTreeSet<ObjKey> {
        let mut out = Vec::new();
        c.keys_for(event, &mut out);
        out.into_iter().collect()
    }

    fn key(name: &str) -> ObjKey {
        ("d".to_string(), name.to_string())
    }

    #[test]
    fn a_pod_event_wakes_only_the_services_selecting_it() {
        // Waking every Service of the namespace per pod event was O(pods ×
        // Services): minutes of CPU with 10,000 Services (bench_scale).
        let (mut c, _, types) = controller();
        let event = pod_event(pod("p", "10.244.0.1", true, "a"), &types);
        assert_eq!(keys(&mut c, &event), BTreeSet::from([key("a")]));
    }

    #[test]
    fn a_pod_leaving_a_selector_still_wakes_its_old_service() {
        let (mut c, store, types) = controller();
        store
            .create(&types.pods, (*pod("p", "10.244.0.1", true, "a")).clone())
            .unwrap();
        c.reconcile(&key("a")).unwrap();
        c.reconcile(&key("b")).unwrap();
        let ep = store
            .get(&types.endpoints.group_resource(), "d", "a")
            .unwrap();
        assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["name"], "p");

        // Relabelled: the event only carries the new labels.
        let mut next = (*store.get(&types.pods.group_resource(), "d", "p").unwrap()).clone();
        next["metadata"]["labels"] = json!({"app": "b"});
        let event = pod_event(Arc::new(next.clone()), &types);
        assert_eq!(keys(&mut c, &event), BTreeSet::from([key("a"), key("b")]));
        store.update(&types.pods, next, UpdateTarget::Main).unwrap();
        c.reconcile(&key("a")).unwrap();
        c.reconcile(&key("b")).unwrap();
        let ep = store
            .get(&types.endpoints.group_resource(), "d", "a")
            .unwrap();
        assert!(ep.get("subsets").is_none(), "{ep}");

        // Once reconciled, the old Service is no longer woken by this pod.
        assert_eq!(keys(&mut c, &event), BTreeSet::from([key("b")]));
    }

    #[test]
    fn no_selector_means_no_subsets() {
        let svc = json!({"spec": {"ports": [{"port": 80}]}});
        assert!(desired_subsets(&svc, &[pod("a", "10.244.0.1", true, "web")]).is_empty());
    }
}
