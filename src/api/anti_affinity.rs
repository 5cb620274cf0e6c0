//! `strategy.redBlack.antiAffinity` (Argo Rollouts' `blueGreen.antiAffinity`):
//! the new fleet's pods avoid the nodes of the live fleet's pods, so that a
//! node failure cannot take both the new revision and the one a rollback
//! would return to. As Argo does, the planner adds one pod anti-affinity term
//! to the pod template of the new ReplicaSet only (never to
//! `spec.template`, so the revision's hash does not change), against the
//! live revision's pods, per node (`kubernetes.io/hostname`).
//!
//! The term is recognised by its selector on the operator's hash label, so
//! `redblack undo` can take it out again ([`strip`]) and the restored
//! template hashes back to its fleet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodTemplateSpec, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::POD_TEMPLATE_HASH_LABEL;

/// The topology the term spreads over: one node.
pub const TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// Exactly one of the two, as in Argo Rollouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.requiredDuringSchedulingIgnoredDuringExecution) != has(self.preferredDuringSchedulingIgnoredDuringExecution)",
    "message": "set exactly one of requiredDuringSchedulingIgnoredDuringExecution and preferredDuringSchedulingIgnoredDuringExecution"
}]))]
pub struct AntiAffinity {
    /// A hard rule: a new pod is not scheduled on a node running a pod of the
    /// live revision (pods stay Pending when no other node fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<RequiredAntiAffinity>,
    /// A soft rule of this weight (1–100) among the scheduler's preferences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_during_scheduling_ignored_during_execution: Option<PreferredAntiAffinity>,
}

/// Takes no fields (Argo's `requiredDuringSchedulingIgnoredDuringExecution: {}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequiredAntiAffinity {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PreferredAntiAffinity {
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
}

/// Adds the term against the pods selected by `live` (the live revision's
/// `matchLabels` + hash) to `template`, keeping any affinity it has.
pub fn inject(template: &mut PodTemplateSpec, rule: &AntiAffinity, live: BTreeMap<String, String>) {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(live),
            match_expressions: None,
        }),
        topology_key: TOPOLOGY_KEY.to_owned(),
        ..PodAffinityTerm::default()
    };
    let spec = template.spec.get_or_insert_with(Default::default);
    let anti = spec
        .affinity
        .get_or_insert_with(Affinity::default)
        .pod_anti_affinity
        .get_or_insert_with(PodAntiAffinity::default);
    if rule
        .required_during_scheduling_ignored_during_execution
        .is_some()
    {
        anti.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
    } else if let Some(preferred) = &rule.preferred_during_scheduling_ignored_during_execution {
        anti.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                weight: preferred.weight,
                pod_affinity_term: term,
            });
    }
}

fn injected(term: &PodAffinityTerm) -> bool {
    term.label_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .is_some_and(|l| l.contains_key(POD_TEMPLATE_HASH_LABEL))
}

/// Removes what [`inject`] added (and the containers it created when they
/// were empty before), leaving the user's own terms.
pub fn strip(template: &mut PodTemplateSpec) {
    let Some(spec) = template.spec.as_mut() else {
        return;
    };
    let Some(affinity) = spec.affinity.as_mut() else {
        return;
    };
    if let Some(anti) = affinity.pod_anti_affinity.as_mut() {
        if let Some(terms) = anti
            .required_during_scheduling_ignored_during_execution
            .as_mut()
        {
            terms.retain(|t| !injected(t));
            if terms.is_empty() {
                anti.required_during_scheduling_ignored_during_execution = None;
            }
        }
        if let Some(terms) = anti
            .preferred_during_scheduling_ignored_during_execution
            .as_mut()
        {
            terms.retain(|t| !injected(&t.pod_affinity_term));
            if terms.is_empty() {
                anti.preferred_during_scheduling_ignored_during_execution = None;
            }
        }
        if *anti == PodAntiAffinity::default() {
            affinity.pod_anti_affinity = None;
        }
    }
    if *affinity == Affinity::default() {
        spec.affinity = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    fn live() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            (POD_TEMPLATE_HASH_LABEL.to_owned(), "h1".to_owned()),
        ])
    }

    #[test]
    fn inject_and_strip_table() {
        let required = AntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(RequiredAntiAffinity {}),
            preferred_during_scheduling_ignored_during_execution: None,
        };
        let preferred = AntiAffinity {
            required_during_scheduling_ignored_during_execution: None,
            preferred_during_scheduling_ignored_during_execution: Some(PreferredAntiAffinity {
                weight: 40,
            }),
        };
        let own_term =
            json!({"labelSelector": {"matchLabels": {"db": "x"}}, "topologyKey": "zone"});
        let selector = json!({"matchLabels": {"app": "web", POD_TEMPLATE_HASH_LABEL: "h1"}});
        let bare = json!({"spec": {"containers": [{"name": "a", "image": "a"}]}});
        let own = json!({"spec": {"containers": [{"name": "a", "image": "a"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [own_term]}}}});
        let rows = [
            (
                &bare,
                &required,
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": selector, "topologyKey": TOPOLOGY_KEY}]}}),
            ),
            (
                &bare,
                &preferred,
                json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 40, "podAffinityTerm": {"labelSelector": selector, "topologyKey": TOPOLOGY_KEY}}]}}),
            ),
            (
                &own,
                &required,
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                own_term, {"labelSelector": selector, "topologyKey": TOPOLOGY_KEY}]}}),
            ),
        ];
        for (before, rule, want) in rows {
            let mut t = template(before.clone());
            inject(&mut t, rule, live());
            assert_eq!(serde_json::to_value(&t).unwrap()["spec"]["affinity"], want);
            strip(&mut t);
            assert_eq!(t, template(before.clone()), "strip undoes inject");
        }
    }
}
