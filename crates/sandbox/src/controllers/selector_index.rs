//! The reverse of the store's label index: which objects' equality selectors
//! (Services') ask for a label pair, so "which Services select this pod" is
//! O(the pod's labels × Services sharing a pair) instead of O(Services).
//! Kept by the endpoints controller from Service events.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::ObjKey;
use super::labels::map_matches;

/// (namespace, key, value)
type Pair = (String, String, String);

#[derive(Default)]
pub(crate) struct SelectorIndex {
    by_pair: HashMap<Pair, BTreeSet<ObjKey>>,
    selectors: HashMap<ObjKey, Map<String, Value>>,
}

fn pairs<'a>(ns: &'a str, sel: &'a Map<String, Value>) -> impl Iterator<Item = Pair> + 'a {
    sel.iter().filter_map(move |(k, v)| {
        v.as_str()
            .map(|v| (ns.to_string(), k.clone(), v.to_string()))
    })
}

impl SelectorIndex {
    /// Records `key`'s selector (None: it selects nothing, or is gone).
    pub(crate) fn set(&mut self, key: ObjKey, selector: Option<&Map<String, Value>>) {
        if let Some(old) = self.selectors.remove(&key) {
            for pair in pairs(&key.0, &old) {
                if let Some(set) = self.by_pair.get_mut(&pair) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.by_pair.remove(&pair);
                    }
                }
            }
        }
        let Some(sel) = selector.filter(|s| !s.is_empty()) else {
            return;
        };
        for pair in pairs(&key.0, sel) {
            self.by_pair.entry(pair).or_default().insert(key.clone());
        }
        self.selectors.insert(key, sel.clone());
    }

    /// Appends the keys in `ns` whose whole selector matches `labels`.
    pub(crate) fn selecting(
        &self,
        ns: &str,
        labels: Option<&Map<String, Value>>,
        out: &mut Vec<ObjKey>,
    ) {
        let Some(labels) = labels else {
            return;
        };
        let mut seen = BTreeSet::new();
        for (k, v) in labels {
            let Some(v) = v.as_str() else { continue };
            let Some(keys) = self
                .by_pair
                .get(&(ns.to_string(), k.clone(), v.to_string()))
            else {
                continue;
            };
            for key in keys {
                if seen.insert(key)
                    && self
                        .selectors
                        .get(key)
                        .is_some_and(|sel| map_matches(sel, Some(labels)))
                {
                    out.push(key.clone());
                }
            }
        }
    }

    #[cfg(test)]
    fn pairs_len(&self) -> usize {
        self.by_pair.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn key(ns: &str, name: &str) -> ObjKey {
        (ns.to_string(), name.to_string())
    }

    #[test]
    fn finds_only_whole_matches_in_the_namespace_and_forgets_replaced_selectors() {
        let mut idx = SelectorIndex::default();
        idx.set(key("a", "web"), Some(&map(json!({"app": "web"}))));
        idx.set(
            key("a", "web-v2"),
            Some(&map(json!({"app": "web", "rev": "2"}))),
        );
        idx.set(key("b", "web"), Some(&map(json!({"app": "web"}))));
        let labels = map(json!({"app": "web", "rev": "1"}));
        let mut out = Vec::new();
        idx.selecting("a", Some(&labels), &mut out);
        assert_eq!(out, vec![key("a", "web")]);

        idx.set(key("a", "web"), Some(&map(json!({"app": "other"}))));
        let mut out = Vec::new();
        idx.selecting("a", Some(&labels), &mut out);
        assert!(out.is_empty(), "{out:?}");

        idx.set(key("a", "web"), None);
        idx.set(key("a", "web-v2"), None);
        idx.set(key("b", "web"), None);
        assert_eq!(idx.pairs_len(), 0);
        assert!(idx.selectors.is_empty());
    }
}
