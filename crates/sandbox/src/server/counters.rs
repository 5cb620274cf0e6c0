//! Per (verb, resource) request counters, so tests can assert how chatty a
//! controller is (e.g. "no relist storms"), and counters of the faults the
//! fault injection answered with, so a reliability run can say how many of
//! its requests failed on purpose. Requests are also counted per client
//! (its `User-Agent`), so a test can prove one process wrote nothing (the
//! operator names its process in its user agent: `redblack/VERSION (IDENTITY)`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// A shared handle on the sandbox's request counters; clones see the same counts.
#[derive(Clone, Debug, Default)]
pub struct RequestCounts {
    inner: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// Injected faults by (verb, kind), kind as in [`RequestCounts::record_fault`].
    faults: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// Requests by (user agent, verb, resource).
    clients: Arc<Mutex<ClientCounts>>,
}

/// Requests by (user agent, verb, resource).
type ClientCounts = BTreeMap<(String, String, String), u64>;

/// The verbs that change something (the others read: get, list, watch).
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl RequestCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        // Counters are plain integers: a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_faults(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String, String), u64>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request of the client with this user agent (`""` when it sent none).
    pub fn record_client(&self, user_agent: &str, verb: &str, resource: &str) {
        *self
            .lock_clients()
            .entry((
                user_agent.to_string(),
                verb.to_string(),
                resource.to_string(),
            ))
            .or_insert(0) += 1;
    }

    /// (verb, resource) counts of the clients whose user agent contains `agent`.
    pub fn by_client(&self, agent: &str) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for ((ua, verb, resource), n) in self.lock_clients().iter() {
            if ua.contains(agent) {
                *out.entry((verb.clone(), resource.clone())).or_insert(0) += n;
            }
        }
        out
    }

    /// Writes (any of [`WRITE_VERBS`]) of the clients whose user agent contains `agent`.
    pub fn writes_by_client(&self, agent: &str) -> u64 {
        self.by_client(agent)
            .iter()
            .filter(|((verb, _), _)| WRITE_VERBS.contains(&verb.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// One injected fault on a `verb` request; `kind` names what was done
    /// (`"500"`, `"429"`, `"410"` … for errors, `"timeout"`, `"latency"`).
    pub fn record_fault(&self, verb: &str, kind: &str) {
        *self
            .lock_faults()
            .entry((verb.to_string(), kind.to_string()))
            .or_insert(0) += 1;
    }

    /// Injected faults by kind over all verbs (`"500" -> 12`, `"timeout" -> 1`).
    pub fn faults_by_kind(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((_, kind), n) in self.lock_faults().iter() {
            *out.entry(kind.clone()).or_insert(0) += n;
        }
        out
    }

    /// Injected faults by verb over all kinds.
    pub fn faults_by_verb(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((verb, _), n) in self.lock_faults().iter() {
            *out.entry(verb.clone()).or_insert(0) += n;
        }
        out
    }

    /// Every injected fault (latency included).
    pub fn faults_total(&self) -> u64 {
        self.lock_faults().values().sum()
    }

    pub fn record(&self, verb: &str, resource: &str) {
        *self
            .lock()
            .entry((verb.to_string(), resource.to_string()))
            .or_insert(0) += 1;
    }

    /// Requests with this verb on this resource (`pods`, `replicasets/scale`, ...).
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.lock()
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Totals per verb over all resources.
    pub fn by_verb(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((verb, _), n) in self.lock().iter() {
            *out.entry(verb.clone()).or_insert(0) += n;
        }
        out
    }

    /// A copy of every (verb, resource) count.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.lock().clone()
    }

    pub fn reset(&self) {
        self.lock().clear();
        self.lock_faults().clear();
        self.lock_clients().clear();
    }

    /// `{"total": N, "counts": [{"verb", "resource", "count"}], "faults":
    /// {"total": F, "counts": [{"verb", "kind", "count"}]}, "clients":
    /// [{"userAgent", "verb", "resource", "count"}]}` for GET /sandbox/requests.
    pub fn to_json(&self) -> Value {
        let counts: Vec<Value> = self
            .snapshot()
            .into_iter()
            .map(|((verb, resource), count)| {
                json!({"verb": verb, "resource": resource, "count": count})
            })
            .collect();
        let faults: Vec<Value> = self
            .lock_faults()
            .iter()
            .map(|((verb, kind), count)| json!({"verb": verb, "kind": kind, "count": count}))
            .collect();
        let clients: Vec<Value> = self
            .lock_clients()
            .iter()
            .map(|((ua, verb, resource), count)| {
                json!({"userAgent": ua, "verb": verb, "resource": resource, "count": count})
            })
            .collect();
        json!({
            "total": self.total(),
            "counts": counts,
            "faults": {"total": self.faults_total(), "counts": faults},
            "clients": clients,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_totals_and_resets() {
        let c = RequestCounts::default();
        c.record("list", "pods");
        c.record("list", "pods");
        c.record("get", "configmaps");
        assert_eq!(c.get("list", "pods"), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.by_verb().get("list"), Some(&2));
        c.record_fault("list", "500");
        c.record_fault("get", "500");
        c.record_fault("get", "timeout");
        assert_eq!(c.faults_total(), 3);
        assert_eq!(c.faults_by_kind().get("500"), Some(&2));
        assert_eq!(c.faults_by_verb().get("get"), Some(&2));
        assert_eq!(c.to_json()["faults"]["total"], 3);
        let shared = c.clone();
        shared.reset();
        assert_eq!(c.total(), 0);
        assert_eq!(c.faults_total(), 0);
    }

    #[test]
    fn counts_per_client() {
        let c = RequestCounts::default();
        c.record_client("redblack/0.1.0 (op-a-1)", "patch", "services");
        c.record_client("redblack/0.1.0 (op-a-1)", "get", "leases");
        c.record_client("redblack/0.1.0 (op-a-1)", "deletecollection", "pods");
        c.record_client("redblack/0.1.0 (op-b-2)", "update", "leases");
        c.record_client("", "create", "pods");
        assert_eq!(c.writes_by_client("(op-a-"), 2);
        assert_eq!(c.writes_by_client("(op-b-"), 1);
        assert_eq!(c.writes_by_client("(op-c-"), 0);
        assert_eq!(
            c.by_client("(op-a-")
                .get(&("get".to_string(), "leases".to_string())),
            Some(&1)
        );
        assert_eq!(c.to_json()["clients"].as_array().map(Vec::len), Some(5));
        c.reset();
        assert_eq!(c.writes_by_client(""), 0);
    }
}
