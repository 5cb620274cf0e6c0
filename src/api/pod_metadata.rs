//! `strategy.redBlack.activeMetadata` / `previewMetadata` (Argo Rollouts'
//! blue-green fields): labels and annotations on the pods of the live fleet
//! and of the fleet waiting behind the preview Service — for routing rules,
//! dashboards, log pipelines. As in Argo they are "ephemeral": written into
//! the ReplicaSet's pod template and onto its existing pods, never into
//! `spec.template`, so the revision's hash does not change, and moved at the
//! switch (the new live fleet gets the active metadata, the fleet leaving
//! traffic loses it).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Labels and annotations for one role's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PodMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A merge patch of one map: `Some(value)` sets a key, `None` removes it.
pub type MapChange = BTreeMap<String, Option<String>>;

/// The change that makes `current` carry `wanted` and none of the other
/// `managed` keys (the keys of both roles' metadata). Empty when it does.
pub fn diff<'a>(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
    managed: impl IntoIterator<Item = &'a String>,
) -> MapChange {
    let mut change = MapChange::new();
    for key in managed {
        if !wanted.contains_key(key) && current.contains_key(key) {
            change.insert(key.clone(), None);
        }
    }
    for (key, value) in wanted {
        if current.get(key) != Some(value) {
            change.insert(key.clone(), Some(value.clone()));
        }
    }
    change
}

/// Applies a change to a map (what the API server's merge patch does).
pub fn apply(map: &mut BTreeMap<String, String>, change: &MapChange) {
    for (key, value) in change {
        match value {
            Some(v) => {
                map.insert(key.clone(), v.clone());
            }
            None => {
                map.remove(key);
            }
        }
    }
}

/// Removes the keys of both roles' metadata from a ReplicaSet's pod template
/// (for `redblack undo`: the restored template hashes back to its fleet).
pub fn strip(
    template: &mut k8s_openapi::api::core::v1::PodTemplateSpec,
    roles: &[&Option<PodMetadata>],
) {
    let Some(meta) = template.metadata.as_mut() else {
        return;
    };
    for role in roles.iter().copied().flatten() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.retain(|k, _| !role.labels.contains_key(k));
        }
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.retain(|k, _| !role.annotations.contains_key(k));
            if annotations.is_empty() {
                meta.annotations = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn diff_table() {
        let managed = ["role".to_owned(), "tier".to_owned()];
        // (current, wanted, expected change)
        type Row = (
            BTreeMap<String, String>,
            BTreeMap<String, String>,
            MapChange,
        );
        let rows: [Row; 4] = [
            (
                map(&[("app", "web")]),
                map(&[("role", "active")]),
                MapChange::from([("role".to_owned(), Some("active".to_owned()))]),
            ),
            (
                map(&[("app", "web"), ("role", "preview")]),
                map(&[("role", "active")]),
                MapChange::from([("role".to_owned(), Some("active".to_owned()))]),
            ),
            (
                map(&[("app", "web"), ("role", "active"), ("tier", "x")]),
                map(&[]),
                MapChange::from([("role".to_owned(), None), ("tier".to_owned(), None)]),
            ),
            (
                map(&[("app", "web"), ("role", "active")]),
                map(&[("role", "active")]),
                MapChange::new(),
            ),
        ];
        for (current, wanted, want) in rows {
            let got = diff(&current, &wanted, &managed);
            assert_eq!(got, want, "{current:?} -> {wanted:?}");
            let mut after = current.clone();
            apply(&mut after, &got);
            assert!(
                diff(&after, &wanted, &managed).is_empty(),
                "applying it converges"
            );
            assert_eq!(after.get("app"), current.get("app"), "unmanaged keys stay");
        }
    }
}
