//! CRD types (serde + schemars), conditions helpers, the pod-template hash and
//! spec validation. See DESIGN.md §1 and docs/rollout.md.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod analysis_template;
pub mod canary_analysis;
pub mod conditions;
pub mod hash;
pub mod rollout;
pub mod validate;

pub use conditions::{Condition, ConditionStatus};
pub use hash::pod_template_hash;
pub use rollout::*;
pub use validate::{SpecError, validate};

/// Label on every ReplicaSet, its pods, and the active/preview Service selectors.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts.redblack.io/pod-template-hash";
/// Annotation on each ReplicaSet: its revision number (monotonic, like a Deployment's).
pub const REVISION_ANNOTATION: &str = "rollouts.redblack.io/revision";
/// Annotation on a ReplicaSet that no longer takes traffic: when it may be
/// scaled to zero (RFC 3339). Lives on the child so it survives restarts.
pub const SCALE_DOWN_AT_ANNOTATION: &str = "rollouts.redblack.io/scale-down-at";
/// Manual operations, set on the Rollout by the CLI (value `<hash>[@<nonce>]`).
pub const PROMOTE_ANNOTATION: &str = "redblack.io/promote";
pub const ABORT_ANNOTATION: &str = "redblack.io/abort";
pub const RETRY_ANNOTATION: &str = "redblack.io/retry";

/// Every CRD the operator serves, in a stable order. Other resources
/// (CanaryAnalysis, CanaryAnalysisTemplate) add themselves here.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Rollout::crd(),
        canary_analysis::crd(),
        analysis_template::crd(),
    ]
}
