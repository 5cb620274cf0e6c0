//! The `Rollout` custom resource (`redblack.io/v1alpha1`): the spec is shaped
//! like a Deployment's so that migrating is a `kind:` change, plus
//! `strategy.redBlack`. See docs/rollout.md for the field reference.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DURATION_PATTERN;
use super::conditions::Condition;

/// An object name (DNS-1123 subdomain) that is also a label value (≤ 63).
pub const TEMPLATE_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

/// A Deployment-shaped workload rolled out red/black: each pod template becomes
/// its own ReplicaSet, and the active Service is switched in one write.
// kube's attribute syntax repeats `type_ = ...` per column; clippy mistakes
// that for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "redblack.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "rbro",
    category = "redblack",
    category = "all",
    doc = "A Deployment-shaped workload rolled out red/black, gated by canary analysis.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Stable",
        type_ = "string",
        json_path = ".status.stableRevision"
    ),
    printcolumn(
        name = "Current",
        type_ = "string",
        json_path = ".status.currentRevision"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.template) != has(self.workloadRef)",
    "message": "set exactly one of template and workloadRef"
}, {
    "rule": "has(self.selector) || has(self.workloadRef)",
    "message": "selector is required without workloadRef"
}]))]
pub struct RolloutSpec {
    /// Pods per fleet (each revision's ReplicaSet is brought up at this size).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Selects the pods of every revision; must match `template.metadata.labels`.
    /// The active Service selects `selector.matchLabels` plus the revision hash.
    /// With `workloadRef` it may be left out: the Deployment's is used.
    #[serde(default, skip_serializing_if = "is_empty_selector")]
    pub selector: LabelSelector,
    /// The pod template; each distinct template is one revision. Left out
    /// with `workloadRef` (the Deployment's is used).
    #[serde(default, skip_serializing_if = "is_empty_template")]
    #[schemars(schema_with = "pod_template_schema")]
    pub template: PodTemplateSpec,
    /// Take the pod template (and the selector, when unset) from this
    /// Deployment instead of `template` (Argo Rollouts' `workloadRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<super::workload_ref::WorkloadRef>,
    /// How many scaled-down ReplicaSets are kept for `undo` (like a Deployment).
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: i32,
    /// Seconds a pod must be ready before it counts as available.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: i32,
    /// Seconds a new revision may take to become fully available before the
    /// rollout is marked Degraded. It goes on when its pods become ready,
    /// unless `progressDeadlineAbort` abandons it.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,
    /// Abandon a revision that misses `progressDeadlineSeconds` (Argo's name
    /// and default: false). False: it is reported Degraded while late and
    /// carries on once available; true: it is aborted until a `retry` or a
    /// new template.
    #[serde(default)]
    pub progress_deadline_abort: bool,
    /// Freezes progression: no new fleet is brought up and traffic is not switched.
    #[serde(default)]
    pub paused: bool,
    /// Recreate the live fleet's pods that started before this instant, one
    /// at a time (Argo Rollouts' `restartAt`; set by `redblack restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub restart_at: Option<DateTime<Utc>>,
    pub strategy: RolloutStrategy,
    /// Which triggers go to which Notifier (docs/notifications.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<super::notifier::NotificationSubscription>,
    /// How many finished CanaryAnalyses are kept (Argo Rollouts'
    /// `spec.analysis`): 5 Passed and 5 unsuccessful when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis_history::AnalysisHistory>,
}

/// An unset `template` (a Rollout with `workloadRef`) is left out when
/// serialised, so that the CRD's "exactly one of" rule sees it unset.
fn is_empty_template(t: &PodTemplateSpec) -> bool {
    t.metadata.is_none() && t.spec.is_none()
}

fn is_empty_selector(s: &LabelSelector) -> bool {
    s.match_labels.is_none() && s.match_expressions.is_none()
}

fn default_replicas() -> i32 {
    1
}
fn default_revision_history_limit() -> i32 {
    10
}
fn default_progress_deadline_seconds() -> i32 {
    600
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    pub red_black: RedBlackStrategy,
}

/// Red/black: bring the new fleet up beside the old one, switch, keep the old warm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.previewService) || self.previewService != self.activeService",
    "message": "previewService must differ from activeService",
    "fieldPath": ".previewService"
}]))]
pub struct RedBlackStrategy {
    /// The Service whose selector is switched to the promoted revision.
    #[schemars(length(min = 1, max = 63))]
    pub active_service: String,
    /// A Service that points at the newest revision before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub preview_service: Option<String>,
    /// Switch as soon as the new fleet is available (Automatic), or wait for
    /// `redblack promote` (Manual).
    #[serde(default)]
    pub promotion: PromotionPolicy,
    /// With `promotion: Manual`: promote automatically this many seconds after
    /// the new fleet became available and started waiting (Argo Rollouts'
    /// `autoPromotionSeconds`). A `redblack promote` before then still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub auto_promotion_seconds: Option<i32>,
    /// With `promotion: Manual`: the new fleet is brought up at this size
    /// (behind the preview Service) and scaled to `replicas` only once
    /// promoted, then switched to when fully available (Argo Rollouts'
    /// `previewReplicaCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub preview_replica_count: Option<i32>,
    /// Labels and annotations on the live fleet's pods (Argo Rollouts'
    /// `activeMetadata`): in its ReplicaSet's pod template and on its pods,
    /// never in `spec.template` (the hash does not change); moved at the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<super::pod_metadata::PodMetadata>,
    /// Labels and annotations on the pods of the new fleet while it is not
    /// live (Argo Rollouts' `previewMetadata`); removed at the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<super::pod_metadata::PodMetadata>,
    /// The new fleet's pods avoid the nodes of the live fleet's pods (Argo
    /// Rollouts' `antiAffinity`): a term added to the new ReplicaSet's pod
    /// template only, so the revision's hash does not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<super::anti_affinity::AntiAffinity>,
    /// How long the previous fleet stays at full size after the switch, so that
    /// a rollback is one selector write.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub scale_down_delay: String,
    /// How many previous revisions may stay warm at once (the newest win).
    #[serde(default = "default_warm_revisions")]
    #[schemars(range(min = 0, max = 10))]
    pub warm_revisions: i32,
    /// How long an aborted or failed fleet stays up (for debugging) before it is
    /// scaled to zero.
    #[serde(default = "default_abort_scale_down_delay")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub abort_scale_down_delay: String,
    /// Judge a small canary of the new template against a fresh baseline of the
    /// stable one before the new fleet is brought up (docs/rollout.md, "Canary").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Keep judging after the switch (new fleet against the old fleet's metrics
    /// from before the switch); a Failed verdict switches back to the warm fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<AnalysisSource>,
    /// Judge the new revision's full fleet (behind the preview Service)
    /// before the switch (Argo Rollouts' `prePromotionAnalysis`): Failed
    /// aborts it, traffic never moves; a pass lets the promotion go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<AnalysisSource>,
    /// Jobs and HTTP checks that must pass before the canary gets traffic or
    /// before the switch (docs/rollout.md, "Gates").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<super::gates::Gate>,
    /// Gateway API weights for the canary's share instead of replica counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// When promotion (the switch to a new revision) may happen. Empty = always.
    /// Rollbacks and the first deploy are never held by a window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion_windows: Vec<PromotionWindow>,
}

fn default_scale_down_delay() -> String {
    "30m".to_owned()
}
fn default_warm_revisions() -> i32 {
    1
}
fn default_abort_scale_down_delay() -> String {
    "10m".to_owned()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PromotionPolicy {
    #[default]
    Automatic,
    Manual,
}

/// A canary of the new template beside a fresh baseline of the stable one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// A fresh fleet of the stable template, as large as the canary, so that the
    /// comparison is not biased by the age of the old pods.
    #[serde(default = "default_true")]
    pub baseline: bool,
    /// Share of traffic (percent) sent to the canary, and the same again to the
    /// baseline; the stable fleet gets the rest. Needs `trafficRouting`
    /// (default 10); without it the share follows ready replica counts and this
    /// field is ignored (`status.canary.trafficPercent` shows the actual share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub traffic_percent: Option<i32>,
    pub analysis: AnalysisSource,
    /// What a Marginal score does.
    #[serde(default)]
    pub marginal: MarginalAction,
}

fn default_true() -> bool {
    true
}

/// Share of traffic for the canary (and baseline) when `trafficPercent` is unset.
pub const DEFAULT_TRAFFIC_PERCENT: i32 = 10;

/// Label on canary and baseline ReplicaSets and their pods (`canary`,
/// `baseline`); the full fleets never carry it, so it stays out of their
/// pod-template hash. The planner's Services for the roles select on it.
pub const ROLE_LABEL: &str = "rollouts.redblack.io/role";
/// Label on every CanaryAnalysis the planner creates: the Rollout's name
/// (the controller lists owned analyses by it).
pub const ROLLOUT_LABEL: &str = "rollouts.redblack.io/rollout";

/// What a Marginal score does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MarginalAction {
    /// Hold (phase Paused) for a human: `promote` accepts, `abort` reverts,
    /// `retry` judges again.
    #[default]
    Pause,
    /// As a Failed score: revert at once.
    Fail,
    /// Judge once more (a second analysis attempt); a second Marginal pauses.
    Extend,
}

/// An analysis by template name, or inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.templateName) != has(self.inline)",
    "message": "set exactly one of templateName and inline"
}]))]
pub struct AnalysisSource {
    /// A CanaryAnalysisTemplate in the Rollout's namespace whose spec is the
    /// body (read when the analysis is created; a missing one holds the
    /// canary). At most 63 characters: it is recorded in a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = TEMPLATE_NAME_PATTERN))]
    pub template_name: Option<String>,
    /// A CanaryAnalysis spec body without the scopes and `startTime`, which the
    /// planner fills in; validated by the analysis controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub inline: Option<serde_json::Value>,
}

/// The PodTemplateSpec schema with its container lists keyed by `name`
/// (`x-kubernetes-list-type: map`), as the API server treats a Pod's: a
/// server-side apply of one container's image (`redblack set image`) merges
/// into that container instead of replacing the whole list.
fn pod_template_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<PodTemplateSpec>();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let pointer = format!("/properties/spec/properties/{list}");
        if let Some(serde_json::Value::Object(node)) = schema.pointer_mut(&pointer) {
            node.insert("x-kubernetes-list-type".into(), "map".into());
            node.insert(
                "x-kubernetes-list-map-keys".into(),
                serde_json::json!(["name"]),
            );
        }
    }
    schema
}

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// How the canary's share of traffic is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// An HTTPRoute (same namespace, created by the user with its parentRefs)
    /// whose `backendRefs` the operator owns: the active Service, plus
    /// `<rollout>-canary` and `<rollout>-baseline` during a canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpRouteRef {
    /// Name of the HTTPRoute (gateway.networking.k8s.io/v1).
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Promotion allowed on `days` from `start` to `end` (local time of
/// `timeZone`). `end <= start` crosses midnight (the window belongs to the day
/// it starts on); `start == end` is the whole day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionWindow {
    /// Empty = every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// `HH:MM`, 24-hour clock.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub end: String,
    /// IANA name, e.g. `Europe/Berlin`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Coarse lifecycle state, for humans and `kubectl get`; conditions carry detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// A new revision is being brought up (or first deploy).
    Progressing,
    /// `spec.paused`, or waiting for a manual promote.
    Paused,
    /// Traffic is on the current revision and its fleet is available.
    Healthy,
    /// The progress deadline was missed, or the active Service is missing.
    Degraded,
    /// A user aborted the current revision; traffic stays on stable.
    Aborted,
    /// The spec cannot be acted on; see the InvalidSpec condition.
    InvalidSpec,
}

/// Why the current revision was abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AbortReason {
    /// `redblack abort` (annotation `redblack.io/abort`).
    User,
    /// Not available within `progressDeadlineSeconds`.
    ProgressDeadlineExceeded,
    /// The canary analysis failed (or was Marginal with `marginal: Fail`).
    AnalysisFailed,
    /// A gate failed (`status.gates` and the conditions say which); after
    /// the switch, traffic went back to the previous fleet.
    GateFailed,
    /// The pre-promotion analysis failed (`status.prePromotion`).
    PrePromotionAnalysisFailed,
    /// The post-promotion analysis failed: traffic went back to the old fleet.
    PostPromotionAnalysisFailed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbortStatus {
    /// The pod-template hash that was abandoned.
    pub revision: String,
    pub reason: AbortReason,
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub at: DateTime<Utc>,
}

/// The manual-operation annotation values already acted on (each is consumed once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationsStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Outcome {
    /// Traffic was switched to this revision.
    Promoted,
    /// Traffic was switched back to this previously promoted revision.
    RolledBack,
    /// Aborted by a user.
    Aborted,
    /// Missed its progress deadline, or failed an analysis (see `score`).
    Failed,
    /// Replaced by a newer template before it was promoted.
    Superseded,
}

/// One line of the bounded revision history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    pub revision: i64,
    pub hash: String,
    pub images: Vec<String>,
    pub outcome: Outcome,
    /// The analysis score, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub time: DateTime<Utc>,
}

/// Where the canary of `revision` is. Decisions are recorded here so that a
/// restarted operator (or a deleted CanaryAnalysis) never reverses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CanaryPhase {
    /// Canary and baseline fleets are being brought up.
    Progressing,
    /// Both are ready; traffic is (being) shared and the analysis runs.
    Analysing,
    /// Passed: the full fleet of the revision is brought up and switched to.
    Passed,
    /// A human promoted before (or despite) the verdict.
    Promoted,
    /// Marginal, held for a human (`marginal: Pause`, or a second Marginal).
    Marginal,
    /// Failed: traffic went back to stable, canary and baseline removed.
    Failed,
    /// No evidence (e.g. no traffic): held, never promoted automatically.
    Inconclusive,
    /// The analysis could not run: held, never promoted automatically.
    Error,
}

/// The state of the current canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CanaryPhase>,
    /// The CanaryAnalysis of the current attempt (`<rollout>-<revision>-<attempt>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_name: Option<String>,
    /// Pod-template hash of the revision under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Pod-template hash of the stable revision the baseline copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// 1 for the first analysis; +1 per retry or extension.
    #[serde(default)]
    pub attempt: i32,
    /// Set once `marginal: Extend` has been used for this revision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extended: bool,
    /// When traffic started for this attempt: the analysis' `startTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub analysis_start: Option<DateTime<Utc>>,
    /// The canary's actual share of traffic in percent (0 unless both fleets
    /// are ready and traffic is meant to flow).
    #[serde(default)]
    pub traffic_percent: i32,
    /// The verdict's score, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The analysis' message for a held or failed verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The API refused to create this attempt's CanaryAnalysis: the canary is
    /// held without traffic until the analysis body or the Rollout's spec
    /// changes, or a retry starts a new attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_refused: Option<AnalysisRefusal>,
}

/// A CanaryAnalysis create the API refused (a 4xx other than AlreadyExists).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRefusal {
    /// The CanaryAnalysis that could not be created.
    pub analysis_name: String,
    /// The API's message.
    pub message: String,
    /// Hash of the analysis body that was refused (a changed template or
    /// inline body is tried again).
    pub body_hash: String,
    /// The Rollout's generation the refusal was seen at (a spec change is
    /// tried again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Where a post-promotion analysis phase stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PostPromotionPhase {
    Running,
    /// Passed (or Marginal): nothing to do.
    Passed,
    /// Failed: traffic was switched back to `previousRevision`.
    Failed,
    /// Inconclusive or Error: reported, traffic stays.
    Inconclusive,
}

/// The analysis that judges a revision after it went live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostPromotionStatus {
    pub revision: String,
    /// The fleet that was live before (kept warm until the verdict).
    pub previous_revision: String,
    pub analysis_name: String,
    /// The switch: start of the judged window; the control is time-shifted
    /// to the same length before it.
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub switched_at: DateTime<Utc>,
    pub phase: PostPromotionPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The analysis that judges the new revision's full fleet before the switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrePromotionStatus {
    pub revision: String,
    pub analysis_name: String,
    /// When the fleet was found available: the analysis' `startTime`.
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub started_at: DateTime<Utc>,
    pub phase: PostPromotionPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pod-template hash of the revision the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Pod-template hash of `spec.template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The active Service's selector, as a label-selector string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// Pods of the active fleet (what the scale subresource reports).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods of the current revision.
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    /// Label selector of the active fleet, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// When the current revision started progressing (cleared while paused or
    /// waiting for promotion); the progress deadline is measured from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub progress_started_at: Option<DateTime<Utc>>,
    /// When `currentRevision` became the current revision (the template
    /// changed to it, or the first plan of the Rollout); kept while the
    /// template stays. Start of the `redblack_rollout_time_to_live_seconds`
    /// measurement (docs/metrics.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub revision_started_at: Option<DateTime<Utc>>,
    /// When the current revision started waiting for a manual promote, while
    /// `strategy.redBlack.autoPromotionSeconds` is set; the automatic promote
    /// is measured from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub awaiting_promotion_since: Option<DateTime<Utc>>,
    /// The `spec.restartAt` whose restart is complete (every pod of the live
    /// fleet started after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub restarted_at: Option<DateTime<Utc>>,
    /// Set when the current revision was abandoned; cleared by retry or a new template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortStatus>,
    /// The revision a manual promote approved (switch happens once it is available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_revision: Option<String>,
    #[serde(default, skip_serializing_if = "is_default_ops")]
    pub operations: OperationsStatus,
    /// The canary of the current revision (kept after the verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// The post-promotion analysis of the live revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion: Option<PostPromotionStatus>,
    /// The gates of the current revision (`spec.strategy.redBlack.gates`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<super::gates::GateStatus>,
    /// The pre-promotion analysis of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion: Option<PrePromotionStatus>,
    /// The score of the latest analysis verdict (canary or post-promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Newest last; bounded to `HISTORY_LIMIT` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionRecord>,
}

fn is_default_ops(ops: &OperationsStatus) -> bool {
    *ops == OperationsStatus::default()
}

/// Entries kept in `status.history`.
pub const HISTORY_LIMIT: usize = 10;

impl RolloutSpec {
    /// `strategy.redBlack.trafficRouting.httpRoute.name`, if set.
    pub fn http_route_name(&self) -> Option<&str> {
        self.strategy
            .red_black
            .traffic_routing
            .as_ref()?
            .http_route
            .as_ref()
            .map(|r| r.name.as_str())
    }
}
