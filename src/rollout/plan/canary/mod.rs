//! The canary gate: before the full fleet of a new revision is brought up, a
//! canary of it is judged against a fresh baseline of the stable revision.
//! `gate` decides (recording every decision in `status.canary`, so a restart
//! or a deleted CanaryAnalysis never reverses one); `actions` emits the
//! canary's fleets and its analysis. Traffic is `traffic.rs`'s business.
//! This file: names, templates and readiness of the canary's fleets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::world::World;
use crate::api::analysis_template::ANALYSIS_TEMPLATE_LABEL;
use crate::api::{
    CanaryStatus, CanaryStrategy, POD_TEMPLATE_HASH_LABEL, ROLE_LABEL, ROLLOUT_LABEL, Rollout,
    pod_template_hash,
};

mod actions;
mod gate;

pub use actions::plan;
pub(crate) use gate::gate;

pub const CANARY: &str = "canary";
pub const BASELINE: &str = "baseline";

fn rollout_name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("rollout")
}

/// `<rollout>-<hash>-canary`: the canary of revision `hash`.
pub fn canary_name(rollout: &Rollout, hash: &str) -> String {
    format!("{}-{hash}-canary", rollout_name(rollout))
}

/// `<rollout>-<stable hash>-baseline`: a fresh copy of the stable revision.
pub fn baseline_name(rollout: &Rollout, stable_hash: &str) -> String {
    format!("{}-{stable_hash}-baseline", rollout_name(rollout))
}

/// `<rollout>-<hash>-<attempt>`: the CanaryAnalysis of one attempt.
pub fn analysis_name(rollout: &Rollout, hash: &str, attempt: i32) -> String {
    format!("{}-{hash}-{attempt}", rollout_name(rollout))
}

/// `<rollout>-canary` / `<rollout>-baseline`: the Services of the roles.
pub fn role_service_name(rollout: &Rollout, role: &str) -> String {
    format!("{}-{role}", rollout_name(rollout))
}

pub fn config(rollout: &Rollout) -> Option<&CanaryStrategy> {
    rollout.spec.strategy.red_black.canary.as_ref()
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

/// The fleets a canary needs: (name, role, template source). The baseline's
/// template is the stable fleet's (None when that fleet has no template).
pub fn wanted(
    rollout: &Rollout,
    world: &World,
    canary: &CanaryStatus,
) -> Vec<(String, &'static str, Option<PodTemplateSpec>)> {
    let Some(cfg) = config(rollout) else {
        return Vec::new();
    };
    let revision = canary.revision.clone().unwrap_or_default();
    let mut out = vec![(
        canary_name(rollout, &revision),
        CANARY,
        Some(rollout.spec.template.clone()),
    )];
    if cfg.baseline
        && let Some(stable) = &canary.stable_revision
    {
        let template = world.fleets.get(stable).and_then(|f| f.template.clone());
        out.push((baseline_name(rollout, stable), BASELINE, template));
    }
    out
}

/// Canary (and baseline, when on) exist with all their pods available.
pub fn fleets_ready(rollout: &Rollout, world: &World, canary: &CanaryStatus) -> bool {
    let Some(cfg) = config(rollout) else {
        return false;
    };
    let wanted = wanted(rollout, world, canary);
    wanted.len() == 1 + usize::from(cfg.baseline)
        && wanted.iter().all(|(name, _, _)| {
            world
                .role_set(name)
                .is_some_and(|f| f.is_available(cfg.replicas))
        })
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
