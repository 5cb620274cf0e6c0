//! The store's label index: (kind, namespace, label key, label value) → names,
//! so an equality selector (a Service's, a ReplicaSet template's) finds its
//! objects in O(matches) instead of scanning the namespace. At 10,000 Services
//! and 10,000 pods in one namespace, the endpoints controller's scan was
//! 10⁸ label comparisons per resync.
//!
//! Hand-written (a few maps) because the store keeps objects as JSON and owns
//! its own locking; no crate in the lock file indexes `serde_json` values.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::registry::GroupResource;

/// (namespace, key, value)
type Posting = (String, String, String);

#[derive(Default)]
pub(crate) struct LabelIndex {
    by_label: HashMap<GroupResource, HashMap<Posting, BTreeSet<String>>>,
}

fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

impl LabelIndex {
    pub(crate) fn insert(&mut self, gr: &GroupResource, ns: &str, name: &str, obj: &Value) {
        let Some(labels) = labels(obj) else {
            return;
        };
        let kind = self.by_label.entry(gr.clone()).or_default();
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                kind.entry((ns.to_string(), k.clone(), v.to_string()))
                    .or_default()
                    .insert(name.to_string());
            }
        }
    }

    pub(crate) fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str, obj: &Value) {
        let Some(labels) = labels(obj) else {
            return;
        };
        let Some(kind) = self.by_label.get_mut(gr) else {
            return;
        };
        for (k, v) in labels {
            let Some(v) = v.as_str() else { continue };
            let posting = (ns.to_string(), k.clone(), v.to_string());
            if let Some(names) = kind.get_mut(&posting) {
                names.remove(name);
                if names.is_empty() {
                    kind.remove(&posting);
                }
            }
        }
        if kind.is_empty() {
            self.by_label.remove(gr);
        }
    }

    /// Names (sorted) of `gr` objects in `ns` that carry *some* pair of
    /// `selector` — the smallest posting list, a superset of the matches (the
    /// caller checks the whole selector). `None` for an empty selector (every
    /// object matches: the caller lists the namespace).
    pub(crate) fn candidates(
        &self,
        gr: &GroupResource,
        ns: &str,
        selector: &Map<String, Value>,
    ) -> Option<Vec<String>> {
        if selector.is_empty() {
            return None;
        }
        let kind = self.by_label.get(gr);
        let mut best: Option<&BTreeSet<String>> = None;
        for (k, v) in selector {
            // A non-string value matches nothing, as in `labels::map_matches`.
            let names = v
                .as_str()
                .and_then(|v| kind?.get(&(ns.to_string(), k.clone(), v.to_string())));
            let Some(names) = names else {
                return Some(Vec::new());
            };
            if best.is_none_or(|b| names.len() < b.len()) {
                best = Some(names);
            }
        }
        Some(
            best.map(|b| b.iter().cloned().collect())
                .unwrap_or_default(),
        )
    }

    #[cfg(test)]
    fn postings(&self) -> usize {
        self.by_label.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    fn sel(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn candidates_come_from_the_smallest_posting_and_stay_in_the_namespace() {
        let gr = GroupResource::new("", "pods");
        let mut idx = LabelIndex::default();
        idx.insert(&gr, "a", "p1", &pod(json!({"app": "x", "rev": "1"})));
        idx.insert(&gr, "a", "p2", &pod(json!({"app": "x", "rev": "2"})));
        idx.insert(&gr, "a", "p3", &pod(json!({"app": "y", "rev": "2"})));
        idx.insert(&gr, "b", "p4", &pod(json!({"app": "x", "rev": "1"})));
        let got = idx.candidates(&gr, "a", &sel(json!({"app": "x", "rev": "1"})));
        assert_eq!(got, Some(vec!["p1".to_string()]));
        let got = idx.candidates(&gr, "a", &sel(json!({"app": "x"})));
        assert_eq!(got, Some(vec!["p1".to_string(), "p2".to_string()]));
        assert_eq!(
            idx.candidates(&gr, "a", &sel(json!({"app": "z"}))),
            Some(vec![])
        );
        assert_eq!(
            idx.candidates(&gr, "a", &sel(json!({"app": 1}))),
            Some(vec![])
        );
        assert_eq!(idx.candidates(&gr, "a", &Map::new()), None);
    }

    #[test]
    fn removing_every_object_leaves_no_posting_behind() {
        let gr = GroupResource::new("", "pods");
        let mut idx = LabelIndex::default();
        let p = pod(json!({"app": "x", "rev": "1"}));
        idx.insert(&gr, "a", "p1", &p);
        assert_eq!(idx.postings(), 2);
        idx.remove(&gr, "a", "p1", &p);
        assert_eq!(idx.postings(), 0);
        assert!(idx.by_label.is_empty());
    }
}
