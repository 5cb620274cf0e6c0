//! Per (verb, resource) request counters, so tests can assert how chatty a
//! controller is (e.g. "no relist storms").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// A shared handle on the sandbox's request counters; clones see the same counts.
#[derive(Clone, Debug, Default)]
pub struct RequestCounts {
    inner: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl RequestCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        // Counters are plain integers: a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
    }

    /// `{"total": N, "counts": [{"verb", "resource", "count"}]}` for GET /sandbox/requests.
    pub fn to_json(&self) -> Value {
        let counts: Vec<Value> = self
            .snapshot()
            .into_iter()
            .map(|((verb, resource), count)| {
                json!({"verb": verb, "resource": resource, "count": count})
            })
            .collect();
        json!({"total": self.total(), "counts": counts})
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
        let shared = c.clone();
        shared.reset();
        assert_eq!(c.total(), 0);
    }
}
