//! `spec.workloadRef` (Argo Rollouts' field of the same name): a Rollout that
//! takes its pod template (and, when it has none, its selector) from an
//! existing Deployment in its namespace, so that a team migrates without
//! rewriting manifests. The operator resolves the template per reconcile
//! (docs/rollout.md, "workloadRef").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Deployment a Rollout takes its pod template from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.apiVersion == 'apps/v1' && self.kind == 'Deployment'",
    "message": "workloadRef must name an apps/v1 Deployment"
}, {
    "rule": "!has(self.scaleDown) || self.scaleDown != 'progressively'",
    "message": "scaleDown: progressively is not supported by redblack (use never or onsuccess)",
    "fieldPath": ".scaleDown"
}]))]
pub struct WorkloadRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// The Deployment's name, in the Rollout's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// What happens to the Deployment: `never` leaves it alone (the
    /// default); `onsuccess` scales it to 0 once the Rollout is Healthy.
    /// Argo's `progressively` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
}

/// `workloadRef.scaleDown` (Argo's lower-case values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDown {
    #[default]
    Never,
    #[serde(rename = "onsuccess")]
    OnSuccess,
    /// Refused by the CRD's validation; kept so that a stored object with it
    /// still deserialises (and is then reported invalid).
    Progressively,
}

/// The only workload kind a Rollout may reference.
pub const DEPLOYMENT_API_VERSION: &str = "apps/v1";
pub const DEPLOYMENT_KIND: &str = "Deployment";
