//! The planner's output vocabulary: the declarative changes the shell executes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;

use super::observed::RouteBackend;
use crate::api::Rollout;

/// A declarative, idempotent change. Executed in order; the shell stops at the
/// first failure and re-plans (every action is safe to repeat).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create (or apply) the ReplicaSet of a revision. Owner reference and
    /// namespace come from the Rollout (see `Action::replica_set`).
    EnsureReplicaSet {
        name: String,
        hash: String,
        revision: i64,
        replicas: i32,
        min_ready_seconds: i32,
        selector: LabelSelector,
        /// The pod template with the pod-template-hash label added.
        template: Box<PodTemplateSpec>,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
    ScaleReplicaSet {
        name: String,
        replicas: i32,
    },
    /// Set and remove annotations (a merge patch: removed keys become null).
    AnnotateReplicaSet {
        name: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    DeleteReplicaSet {
        name: String,
    },
    /// Merge-patch the labels and annotations (None removes a key) of the
    /// pods `selector` selects, then of the ReplicaSet's pod template
    /// (activeMetadata / previewMetadata; the template last, so a failure
    /// part-way is retried by the next plan).
    SetPodMetadata {
        name: String,
        selector: BTreeMap<String, String>,
        labels: crate::api::pod_metadata::MapChange,
        annotations: crate::api::pod_metadata::MapChange,
    },
    /// Set `spec.replicas` of the `workloadRef` Deployment (scaleDown:
    /// onsuccess scales it to 0 once the Rollout is Healthy).
    ScaleDeployment {
        name: String,
        replicas: i32,
    },
    /// Delete one pod of the live fleet (a restart); its ReplicaSet recreates it.
    DeletePod {
        name: String,
    },
    /// Replace the Service's selector with `selector` in ONE write. `hash` is
    /// the revision it selects; without `trafficRouting`, a canary's share is
    /// given by a selector of `matchLabels` only (stable + canary + baseline
    /// pods), and then `hash` names the stable revision.
    SwitchService {
        service: String,
        hash: String,
        selector: BTreeMap<String, String>,
    },
    /// Create or update (apply) a Service of one role (`<rollout>-canary`,
    /// `<rollout>-baseline`), owned by the Rollout, for HTTPRoute backends.
    /// `ports` are copied from the active Service.
    EnsureRoleService {
        name: String,
        role: String,
        selector: BTreeMap<String, String>,
        ports: Vec<ServicePort>,
    },
    /// Replace `backendRefs` of every rule of the HTTPRoute `route` with
    /// `backends` (weights sum to 100) in ONE write.
    SetRouteWeights {
        route: String,
        backends: Vec<RouteBackend>,
    },
    /// Create a CanaryAnalysis (owned by the Rollout, labelled with `labels`)
    /// if none of that name exists. Never updated: a judgement is a record
    /// (`redblack report <name>`), deleted only once finished and beyond the
    /// history limits (`DeleteCanaryAnalysis`).
    EnsureCanaryAnalysis {
        name: String,
        labels: BTreeMap<String, String>,
        spec: serde_json::Value,
    },
    /// Delete a finished CanaryAnalysis beyond `spec.analysis`'s history
    /// limits (`analysis_history.rs` says which are never deleted).
    DeleteCanaryAnalysis {
        name: String,
    },
    /// Create (apply) the Job of a Job gate; never updated once it exists
    /// (a Job's template is immutable), never deleted by the planner (its
    /// logs are the gate's evidence; the Rollout's deletion collects it).
    EnsureJob {
        name: String,
        job: Box<k8s_openapi::api::batch::v1::Job>,
    },
}

impl Action {
    /// The full ReplicaSet an `EnsureReplicaSet` describes, owned by `rollout`
    /// (controller owner reference, so garbage collection follows the Rollout).
    pub fn replica_set(&self, rollout: &Rollout) -> Option<ReplicaSet> {
        let Action::EnsureReplicaSet {
            name,
            replicas,
            min_ready_seconds,
            selector,
            template,
            labels,
            annotations,
            ..
        } = self
        else {
            return None;
        };
        let owner: Option<OwnerReference> = rollout.controller_owner_ref(&());
        Some(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: rollout.metadata.namespace.clone(),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                owner_references: owner.map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(*replicas),
                min_ready_seconds: Some(*min_ready_seconds),
                selector: selector.clone(),
                template: Some((**template).clone()),
            },
            status: None,
        })
    }

    /// True for actions that change where traffic goes (a Service's selector
    /// or the route's weights). Role Services do not count: they only carry
    /// traffic through the route's weights.
    pub fn touches_traffic(&self) -> bool {
        matches!(
            self,
            Action::SwitchService { .. } | Action::SetRouteWeights { .. }
        )
    }
}
