//! The planner's input: what the shell observed of the Rollout's children
//! (only those it owns or names). Plain data, no decisions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};

/// The children the controller observed (only those it owns / names).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// ReplicaSets owned by this Rollout (labelled with the pod-template hash).
    pub replica_sets: Vec<ReplicaSet>,
    /// `spec.strategy.redBlack.activeService`, None when it does not exist.
    pub active_service: Option<Service>,
    /// `spec.strategy.redBlack.previewService`, None when unset or missing.
    pub preview_service: Option<Service>,
    /// CanaryAnalyses labelled `rollouts.redblack.io/rollout: <name>` (the
    /// planner picks the one it needs by name).
    pub analyses: Vec<AnalysisObservation>,
    /// `trafficRouting.httpRoute`, None when unset or missing.
    pub route: Option<RouteObservation>,
    /// The Services named `<rollout>-canary` / `<rollout>-baseline` that exist.
    pub role_services: Vec<Service>,
    /// The CanaryAnalysisTemplates (in the Rollout's namespace) that its
    /// analyses name in `templateName` and that exist: name -> spec (the body,
    /// as `inline` would hold it).
    pub analysis_templates: BTreeMap<String, serde_json::Value>,
    /// The API refused, in this reconcile, to create a CanaryAnalysis (a 4xx
    /// other than AlreadyExists): the shell re-plans with it, and the planner
    /// records it in `status.canary.analysisRefused`. None otherwise.
    pub refused: Option<Refusal>,
    /// The API refused, in this reconcile, to delete a CanaryAnalysis beyond
    /// the history limits: what it said. The shell re-plans with it; the
    /// planner records it in the `AnalysisPruneRefused` condition and does
    /// not try again in that plan.
    pub prune_refused: Option<String>,
    /// Pods of the live fleet, read only while a `spec.restartAt` is not
    /// done (`status.restartedAt`); empty otherwise.
    pub pods: Vec<Pod>,
    /// The API refused the last Event recorded on this Rollout: its message.
    /// None while Events are recorded.
    pub events_refused: Option<String>,
    /// Jobs of the Rollout's Job gates (labelled with the Rollout), read only
    /// while it has Job gates.
    pub jobs: Vec<JobObservation>,
    /// HTTP gate attempts made in this reconcile (`gates::http_due`).
    pub http_checks: Vec<HttpCheck>,
    /// `spec.workloadRef`'s Deployment, as the shell found it in its cache;
    /// None without a workloadRef or when the Deployment does not exist.
    pub workload: Option<WorkloadObservation>,
}

/// What the planner needs of a Job of a Job gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobObservation {
    pub name: String,
    pub phase: JobPhase,
    /// The Failed condition's reason and message (e.g. `DeadlineExceeded`).
    pub message: Option<String>,
}

/// A Job's outcome, from its Complete / Failed conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPhase {
    Running,
    Complete,
    Failed,
}

/// One attempt of an HTTP gate, made by the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    pub gate: String,
    pub revision: String,
    /// The answer was as configured.
    pub passed: bool,
    /// What was seen: `503 Service Unavailable`, `connection refused`, ...
    pub message: String,
}

/// What the planner needs of a `workloadRef` Deployment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadObservation {
    /// `spec.template`: the Rollout's pod template.
    pub template: k8s_openapi::api::core::v1::PodTemplateSpec,
    /// `spec.selector`: the Rollout's when it sets none.
    pub selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    /// `spec.replicas` (the API defaults it to 1).
    pub replicas: i32,
}

/// A CanaryAnalysis create the API refused, with the API's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub analysis: String,
    pub message: String,
}

/// A write of the operator the API refused with an error a retry of the same
/// request cannot overcome (a 4xx other than Conflict, NotFound and
/// TooManyRequests: a webhook's denial, a quota, RBAC, a validation the
/// planner did not foresee). The shell records it with
/// [`crate::rollout::plan::plan_refused_write`] and retries with backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRefusal {
    /// What was written, as the shell says it: "applying ReplicaSet web-5f7c".
    pub what: String,
    /// The HTTP status code, e.g. 403.
    pub code: u16,
    /// The API's `reason`, e.g. "Forbidden".
    pub reason: String,
    /// The API's message, verbatim.
    pub message: String,
}

/// What the planner needs of a CanaryAnalysis.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisObservation {
    pub name: String,
    pub phase: AnalysisPhase,
    pub score: Option<f64>,
    pub message: Option<String>,
    /// Its `rollouts.redblack.io/pod-template-hash` label: the revision judged.
    pub revision: Option<String>,
    /// `metadata.creationTimestamp`: the history limits keep the newest.
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// Controlled by this Rollout (owner reference): only those are pruned.
    pub owned: bool,
    /// `metadata.deletionTimestamp` is set: it is going away.
    pub deleting: bool,
}

impl AnalysisPhase {
    /// Passed, Marginal, Failed, Inconclusive or Error: the analysis is over.
    pub fn finished(self) -> bool {
        !matches!(self, AnalysisPhase::Pending | AnalysisPhase::Running)
    }
}

/// `status.phase` of a CanaryAnalysis (no status yet = Pending).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisPhase {
    Pending,
    Running,
    Passed,
    Marginal,
    Failed,
    Inconclusive,
    Error,
}

/// The backends of the HTTPRoute (the first rule's `backendRefs`; the shell
/// writes the same list into every rule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteObservation {
    pub backends: Vec<RouteBackend>,
}

/// One `backendRef`: a Service, its port, and its weight (Gateway API default 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteBackend {
    pub service: String,
    pub port: Option<i32>,
    pub weight: i32,
}
