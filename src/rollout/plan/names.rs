//! What the Rollout's children are called and how they are selected: every
//! name, label set and selector the planner writes. One place, so that the
//! shell (`observe.rs`), the actions and the status agree on them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::analysis_template::ANALYSIS_TEMPLATE_LABEL;
use crate::api::{POD_TEMPLATE_HASH_LABEL, ROLE_LABEL, ROLLOUT_LABEL, Rollout, pod_template_hash};

/// Role of the canary's fleet (label `ROLE_LABEL`, Service `<rollout>-canary`).
pub const CANARY: &str = "canary";
/// Role of the baseline fleet: a fresh copy of the stable revision.
pub const BASELINE: &str = "baseline";

/// A Rollout without a name cannot be stored; the fallback keeps this total.
fn rollout_name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("rollout")
}

/// `<rollout>-<hash>`: the ReplicaSet of revision `hash`.
pub fn replica_set_name(rollout: &Rollout, hash: &str) -> String {
    format!("{}-{hash}", rollout_name(rollout))
}

/// `<rollout>-<hash>-canary`: the canary of revision `hash`.
pub fn canary_name(rollout: &Rollout, hash: &str) -> String {
    format!("{}-{hash}-canary", rollout_name(rollout))
}

/// `<rollout>-<stable hash>-baseline`: a fresh copy of the stable revision.
pub fn baseline_name(rollout: &Rollout, stable_hash: &str) -> String {
    format!("{}-{stable_hash}-baseline", rollout_name(rollout))
}

/// `<rollout>-<hash>-<attempt>`: the CanaryAnalysis of one canary attempt.
pub fn analysis_name(rollout: &Rollout, hash: &str, attempt: i32) -> String {
    format!("{}-{hash}-{attempt}", rollout_name(rollout))
}

/// `<rollout>-<hash>-post-<unix seconds of the switch>`: unique per promotion,
/// so a revision promoted again gets a fresh judgement.
pub fn post_promotion_analysis_name(
    rollout: &Rollout,
    hash: &str,
    switched_at: DateTime<Utc>,
) -> String {
    format!(
        "{}-{hash}-post-{}",
        rollout_name(rollout),
        switched_at.timestamp()
    )
}

/// `<rollout>-canary` / `<rollout>-baseline`: the Services of the roles.
pub fn role_service_name(rollout: &Rollout, role: &str) -> String {
    format!("{}-{role}", rollout_name(rollout))
}

/// `selector.matchLabels`: every pod of the Rollout (stable, canary and
/// baseline alike). The active Service selects this while a canary's share
/// is given by replica counts.
pub fn base_selector(rollout: &Rollout) -> BTreeMap<String, String> {
    rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
}

/// `selector.matchLabels` plus the revision hash: what a Service selects.
pub fn service_selector(rollout: &Rollout, hash: &str) -> BTreeMap<String, String> {
    let mut selector = base_selector(rollout);
    selector.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    selector
}

/// What selects the pods of a role's fleet (its ReplicaSet and its Service):
/// `matchLabels` plus the role and the role template's hash.
pub fn role_selector(rollout: &Rollout, role: &str, hash: &str) -> BTreeMap<String, String> {
    let mut selector = base_selector(rollout);
    selector.insert(ROLE_LABEL.to_owned(), role.to_owned());
    selector.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    selector
}

/// `k=v,k=v`: a label selector as `status.selector` (the scale subresource)
/// spells it.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod template of a role's fleet and the hash its pods are labelled
/// with: `base` (without our hash label) plus the role label, hashed as is.
/// The hash differs from the revision's, so no revision Service (which
/// selects `matchLabels` + revision hash) ever selects canary or baseline pods.
pub fn role_template(base: &PodTemplateSpec, role: &str) -> (PodTemplateSpec, String) {
    let mut template = base.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.remove(POD_TEMPLATE_HASH_LABEL);
    labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
    meta.labels = Some(labels.clone());
    let hash = pod_template_hash(&template);
    labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels = Some(labels);
    (template, hash)
}

/// Labels of a CanaryAnalysis the planner creates: the Rollout, the revision
/// and, when its body came from a CanaryAnalysisTemplate, the template.
pub fn analysis_labels(
    rollout: &Rollout,
    revision: &str,
    template: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (ROLLOUT_LABEL.to_owned(), rollout_name(rollout).to_owned()),
        (POD_TEMPLATE_HASH_LABEL.to_owned(), revision.to_owned()),
    ]);
    if let Some(template) = template {
        labels.insert(ANALYSIS_TEMPLATE_LABEL.to_owned(), template.to_owned());
    }
    labels
}
