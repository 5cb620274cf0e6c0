//! Per (verb, resource) request counters, so tests can assert how chatty a
//! controller is (e.g. "no relist storms"), and counters of the faults the
//! fault injection answered with, so a reliability run can say how many of
//! its requests failed on purpose.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// A shared handle on the sandbox's request counters; clones see the same counts.
#[derive(Clone, Debug, Default)]
pub struct RequestCounts {
    inner: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// Injected faults by (verb, kind), kind as in [`RequestCounts::record_fault`].
    faults: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl RequestCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        // Counters are plain integers: a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_faults(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
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
    }

    /// `{"total": N, "counts": [{"verb", "resource", "count"}], "faults":
    /// {"total": F, "counts": [{"verb", "kind", "count"}]}}` for GET /sandbox/requests.
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
        json!({
            "total": self.total(),
            "counts": counts,
            "faults": {"total": self.faults_total(), "counts": faults},
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
}
