//! Gates that are not Prometheus (`spec.strategy.redBlack.gates`): a Job
//! (smoke tests from a pod template) or an HTTP check, run against the new
//! revision's fleet before its canary gets traffic, before the switch, or
//! after it (while the previous fleet is kept warm).
//! Their results are recorded in `status.gates`. See docs/rollout.md, "Gates".

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DURATION_PATTERN;

/// A gate name: a DNS label short enough to be part of a Job's name.
pub const GATE_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// One gate: exactly one of `job` and `http`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.job) != has(self.http)",
    "message": "set exactly one of job and http"
}]))]
pub struct Gate {
    /// Names the gate in status, conditions and Events; part of the Job name.
    #[schemars(length(min = 1, max = 20), regex(pattern = GATE_NAME_PATTERN))]
    pub name: String,
    /// When the gate runs.
    pub at: GateAt,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpGate>,
}

/// When a gate runs. Before the switch, a gate holds traffic where it is
/// until it passes, and a failed gate aborts the revision (traffic never
/// moves to it). After the switch, a failed gate switches traffic back to the
/// previous fleet, kept warm until every `AfterSwitch` gate decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GateAt {
    /// Against the new revision's canary fleet (`${canaryService}`) once it is
    /// ready, before it gets any traffic; without a canary, as `BeforeSwitch`.
    BeforeCanary,
    /// Against the new revision's full fleet (`${previewService}`) once it is
    /// available, before the promotion (manual or automatic) may switch.
    BeforeSwitch,
    /// Against the new revision once it is live (`${activeService}`), on a
    /// promotion (not a first deploy, not a rollback): the previous fleet is
    /// kept warm until the gate decides; a failure switches traffic back to
    /// it, like a failed `postPromotionAnalysis`.
    AfterSwitch,
}

/// A Job (batch/v1) from `template`, created by the operator; it passes when
/// the Job completes and fails when the Job fails (its pods failed more than
/// `backoffLimit` times, or `activeDeadlineSeconds` passed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobGate {
    /// The Job's pod template; `${...}` in container args, command and env
    /// values are rendered (docs/rollout.md, "Gates"). `restartPolicy`
    /// defaults to `Never`. Its schema is an open object: a second full
    /// PodTemplateSpec schema would double the Rollout CRD (to over 1 MB);
    /// the API server validates the Job when the operator applies it, and a
    /// refusal is reported on the Rollout (a condition and a Warning Event
    /// quoting the API).
    #[schemars(schema_with = "open_object")]
    pub template: PodTemplateSpec,
    #[serde(default = "default_job_deadline")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: i64,
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: i32,
}

fn open_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn default_job_deadline() -> i64 {
    600
}

/// An HTTP request the operator makes itself; it passes on the first answer
/// as configured, and fails after `retries` more failed attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpGate {
    /// `${...}` are rendered, e.g. `http://${previewService}.${namespace}:8080/healthz`.
    #[schemars(length(min = 1))]
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    /// Answers that pass (default `[200]`).
    #[serde(default = "default_expect_status")]
    pub expect_status: Vec<u16>,
    /// The body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Per attempt.
    #[serde(default = "default_http_timeout")]
    #[schemars(range(min = 1, max = 30))]
    pub timeout_seconds: i32,
    /// Attempts after the first before the gate fails.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub retries: i32,
    #[serde(default = "default_retry_interval")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub retry_interval: String,
}

fn default_expect_status() -> Vec<u16> {
    vec![200]
}
fn default_http_timeout() -> i32 {
    5
}
fn default_retry_interval() -> String {
    "5s".to_owned()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "HEAD")]
    Head,
    #[serde(rename = "POST")]
    Post,
}

/// Where one gate of one revision stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GatePhase {
    Running,
    Passed,
    Failed,
}

/// The record of one gate for one revision (`status.gates`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateStatus {
    pub name: String,
    /// The pod-template hash the gate judges.
    pub revision: String,
    pub at: GateAt,
    pub phase: GatePhase,
    /// 1 for the first run; +1 per `redblack retry` (a new Job).
    #[serde(default = "one")]
    pub attempt: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Job of a Job gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// How to read the Job's logs: `kubectl logs -n NS job/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// HTTP attempts made so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub last_attempt: Option<DateTime<Utc>>,
    #[schemars(schema_with = "crate::api::conditions::date_time")]
    pub started_at: DateTime<Utc>,
    /// An `AfterSwitch` gate: the revision that was live before the switch,
    /// which traffic goes back to if the gate fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
}

fn one() -> i32 {
    1
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
