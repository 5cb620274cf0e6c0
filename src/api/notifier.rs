//! The `Notifier` custom resource (`redblack.io/v1alpha1`): where the
//! notifications of the Rollouts that subscribe to it go (a generic webhook,
//! or a Slack-compatible incoming webhook), and the Rollout's side, its
//! subscriptions (`spec.notifications`). Secrets are only ever referenced
//! (`*SecretRef`, a key of a Secret in the Notifier's namespace), never
//! written in the spec. See docs/notifications.md.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::endpoint::SecretKeyRef;

/// A channel notifications are delivered to: exactly one of `webhook`,
/// `slack` and `email`.
// kube's attribute syntax repeats `type_ = ...` per column; clippy mistakes
// that for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "redblack.io",
    version = "v1alpha1",
    kind = "Notifier",
    namespaced,
    status = "NotifierStatus",
    shortname = "rbn",
    category = "redblack",
    doc = "Where a Rollout's notifications go: a webhook or a Slack-compatible incoming webhook.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.webhook) ? 1 : 0) + (has(self.slack) ? 1 : 0) + (has(self.email) ? 1 : 0) == 1",
    "message": "set exactly one of webhook, slack and email"
}]))]
pub struct NotifierSpec {
    /// A generic webhook: a POST of the versioned JSON payload
    /// `redblack.notification/v1` (docs/notifications.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat):
    /// a POST of `{"text": ..., "blocks": [...]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackChannel>,
    /// Email over SMTP: an HTML + text message; a verdict's body is the
    /// canary report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailChannel>,
    /// Replaces the built-in message (Slack text, email subject/text/HTML)
    /// with minijinja templates; the webhook's payload is a versioned
    /// contract and never templated (docs/notifications.md, "Templates").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<MessageTemplate>,
    /// The dashboard page of a Rollout, as a minijinja template over the
    /// payload (e.g. `https://grafana.example/d/redblack?var-namespace={{
    /// rollout.namespace }}&var-rollout={{ rollout.name }}`): linked in
    /// Slack and email messages, `rollout.dashboard` in the webhook payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub dashboard_url: Option<String>,
    /// A namespace-wide default: the Rollouts of this namespace whose labels
    /// match subscribe to this Notifier without naming it (in addition to
    /// their own `spec.notifications`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<DefaultSubscription>,
}

/// Which Rollouts of the namespace subscribe by default, and to what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultSubscription {
    /// Rollouts whose labels match (`{}`: every Rollout of the namespace).
    pub rollout_selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    /// The triggers to send; empty = every trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Only notifications at least this severe (default `Info`: all).
    #[serde(default)]
    pub min_severity: Severity,
}

/// minijinja templates over the `redblack.notification/v1` payload's fields
/// (`rollout`, `event`, `report`, `id`, `notifier`). Checked by the operator:
/// a template that does not compile makes the Notifier `Ready=False` naming
/// the field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageTemplate {
    /// Email subject (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub subject: Option<String>,
    /// Slack `text` (mrkdwn) and the email's text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub text: Option<String>,
    /// The email's HTML part (values are HTML-escaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub html: Option<String>,
}

/// Email over SMTP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailChannel {
    /// The SMTP server's host name or address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Default: 587 with `StartTLS`, 465 with `TLS`, 25 with `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// How the connection is secured (default `StartTLS`, required).
    #[serde(default)]
    pub tls: EmailTls,
    /// The sender, e.g. `redblack <redblack@example.com>`.
    #[schemars(length(min = 3))]
    pub from: String,
    /// The recipients.
    #[schemars(length(min = 1, max = 50))]
    pub to: Vec<String>,
    /// SMTP authentication (PLAIN/LOGIN), only over TLS or STARTTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EmailAuth>,
    /// A PEM CA bundle to verify the server with, in addition to the
    /// system's roots (a private mail relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    #[default]
    StartTLS,
    /// TLS from the first byte (SMTPS).
    TLS,
    /// No encryption (a relay on the same host or network only; tests).
    None,
}

/// SMTP credentials, from a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailAuth {
    #[schemars(length(min = 1))]
    pub username: String,
    pub password_secret_ref: SecretKeyRef,
}

/// A generic webhook.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookChannel {
    /// `http://` or `https://` URL the payload is POSTed to. Checked by the
    /// operator (the Notifier's `Ready` condition names a bad one).
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// A key of a Secret whose value signs each body: the header
    /// `X-Redblack-Signature: sha256=<hex HMAC-SHA256(value, body)>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_ref: Option<SecretKeyRef>,
}

/// A Slack-compatible incoming webhook; its URL is a credential, so it is
/// read from a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackChannel {
    /// The key of a Secret holding the incoming webhook's URL.
    pub url_secret_ref: SecretKeyRef,
}

/// What the operator found of the Notifier.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifierStatus {
    /// `Ready`: False with reason `InvalidConfig` (the message names the
    /// field) or `DeliveryFailed` (the last delivery failed; retried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl NotifierSpec {
    /// The channel's name in metrics and payloads (`webhook`, `slack`, `email`).
    pub fn channel_name(&self) -> &'static str {
        if self.slack.is_some() {
            "slack"
        } else if self.email.is_some() {
            "email"
        } else {
            "webhook"
        }
    }
}

/// One subscription of a Rollout: these triggers go to this Notifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSubscription {
    /// A Notifier in the Rollout's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub notifier: String,
    /// The triggers to send; empty = every trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Only notifications at least this severe (default `Info`: all).
    #[serde(default)]
    pub min_severity: Severity,
}

/// What happened to a Rollout (docs/notifications.md, "Triggers").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Trigger {
    /// A new revision became current (`status.currentRevision` changed).
    RolloutStarted,
    /// A canary analysis attempt started.
    CanaryStarted,
    /// The canary analysis reached a verdict (Passed, Marginal, Failed,
    /// Inconclusive, Error).
    CanaryVerdict,
    /// Traffic was switched to a new revision.
    Promoted,
    /// Traffic was taken back from (or never given to) a revision after a
    /// verdict: a failed canary's share withdrawn, a failed gate (named in
    /// the summary), a failed pre- or post-promotion analysis.
    Reverted,
    /// The post-promotion analysis failed.
    PostPromotionFailed,
    /// Traffic went back to a previously promoted revision (`redblack undo`).
    Undo,
    /// The revision was not available within `progressDeadlineSeconds`.
    ProgressDeadlineExceeded,
    /// A person aborted the revision.
    Aborted,
    /// The revision is ready and waits for a promotion window.
    PromotionWaiting,
    /// The revision is ready and waits for `redblack promote` (Manual, or a Marginal canary).
    PausedForPromote,
}

/// How much a notification matters; subscriptions filter on it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Critical,
}

/// The CustomResourceDefinition, for `redblack crd` and tests.
pub fn crd() -> CustomResourceDefinition {
    Notifier::crd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_is_namespaced_with_status_and_one_channel_rule() {
        let crd = crd();
        assert_eq!(crd.spec.group, "redblack.io");
        assert_eq!(crd.spec.names.kind, "Notifier");
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let schema = serde_json::to_value(&version.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["x-kubernetes-validations"][0]["rule"],
            "(has(self.webhook) ? 1 : 0) + (has(self.slack) ? 1 : 0) + (has(self.email) ? 1 : 0) == 1"
        );
        let slack = &spec["properties"]["slack"]["properties"];
        assert!(slack.get("urlSecretRef").is_some(), "{slack}");
        assert!(slack.get("url").is_none(), "the Slack URL is a secret");
        let email = &spec["properties"]["email"]["properties"];
        assert!(
            email["auth"]["properties"]
                .get("passwordSecretRef")
                .is_some(),
            "{email}"
        );
        assert!(
            email["auth"]["properties"].get("password").is_none(),
            "{email}"
        );
    }

    #[test]
    fn channel_names() {
        let spec = |v: serde_json::Value| serde_json::from_value::<NotifierSpec>(v).unwrap();
        let r = serde_json::json!({"name": "s", "key": "k"});
        assert_eq!(
            spec(serde_json::json!({"webhook": {"url": "http://x/"}})).channel_name(),
            "webhook"
        );
        assert_eq!(
            spec(serde_json::json!({"slack": {"urlSecretRef": r}})).channel_name(),
            "slack"
        );
        let email = serde_json::json!({"email": {"host": "h", "from": "a@b.c", "to": ["d@e.f"]}});
        assert_eq!(spec(email).channel_name(), "email");
    }

    #[test]
    fn severities_order_and_subscriptions_default_to_everything() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        let s: NotificationSubscription =
            serde_json::from_value(serde_json::json!({"notifier": "team"})).unwrap();
        assert_eq!(s.min_severity, Severity::Info);
        assert!(s.triggers.is_empty());
    }
}
