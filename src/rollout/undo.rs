//! Pure helpers for the CLI's manual operations, so that `redblack undo` and
//! `promote/abort/retry` write exactly what the planner expects.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, pod_template_hash};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    #[error(
        "no ReplicaSet of this Rollout has revision {0}; `kubectl get rs -l {POD_TEMPLATE_HASH_LABEL}` lists them"
    )]
    NoSuchRevision(i64),
    #[error("there is no previous revision to go back to")]
    NoPreviousRevision,
    #[error("ReplicaSet {0} has no pod template")]
    NoTemplate(String),
}

/// The annotation value for promote/abort/retry: `<hash>@<nonce>`. The nonce
/// (e.g. the current time) makes a repeated operation on the same revision a
/// new value, which the planner acts on once.
pub fn operation_value(hash: &str, nonce: &str) -> String {
    format!("{hash}@{nonce}")
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The pod template to write into `spec.template` for `undo [--to-revision N]`
/// (like `kubectl rollout undo`): revision N's, or by default the newest
/// revision other than `current_hash`. The hash label and the antiAffinity
/// term the operator added are removed, so the template hashes back to that ReplicaSet and the planner
/// reuses its fleet (an immediate switch while it is warm).
pub fn template_for_undo(
    replica_sets: &[ReplicaSet],
    current_hash: &str,
    to_revision: Option<i64>,
) -> Result<PodTemplateSpec, UndoError> {
    let rs = match to_revision {
        Some(n) => replica_sets
            .iter()
            .find(|rs| revision_of(rs) == n)
            .ok_or(UndoError::NoSuchRevision(n))?,
        None => replica_sets
            .iter()
            .filter(|rs| {
                rs.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                    != Some(&current_hash.to_owned())
            })
            .max_by_key(|rs| revision_of(rs))
            .ok_or(UndoError::NoPreviousRevision)?,
    };
    let mut template = rs
        .spec
        .template
        .clone()
        .ok_or_else(|| UndoError::NoTemplate(rs.metadata.name.clone().unwrap_or_default()))?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    // The planner's antiAffinity term is on the ReplicaSet only, not the revision.
    crate::api::anti_affinity::strip(&mut template);
    Ok(template)
}

/// True when `template` is the one a ReplicaSet was made from.
pub fn same_revision(template: &PodTemplateSpec, rs: &ReplicaSet) -> bool {
    rs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .is_some_and(|h| *h == pod_template_hash(template))
}
