//! PURE: the bodies the channels send, and the webhook's signature.
//!
//! - Webhook: the versioned JSON payload `redblack.notification/v1`
//!   (docs/notifications.md documents every field); with a signing secret,
//!   the header [`SIGNATURE_HEADER`] is `sha256=<hex HMAC-SHA256(secret, body)>`
//!   over the exact bytes sent.
//! - Slack-compatible: `{"text": ..., "blocks": [...]}`. `text` is complete
//!   on its own (Mattermost and Rocket.Chat show it and ignore `blocks`);
//!   Slack shows the blocks and uses `text` for notifications.

use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};

use super::ledger::Pending;
use super::report::VerdictReport;
use super::trigger::{Happening, kebab};

/// `apiVersion` of the webhook payload.
pub const PAYLOAD_VERSION: &str = "redblack.notification/v1";
/// The delivery key: the same on every attempt of one notification.
pub const DELIVERY_HEADER: &str = "X-Redblack-Delivery";
/// `sha256=<hex>`: HMAC-SHA256 of the body with the signing secret.
pub const SIGNATURE_HEADER: &str = "X-Redblack-Signature";

/// The Rollout a notification is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RolloutRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Its dashboard page, when the Notifier has `dashboardUrl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
}

/// The webhook payload (`redblack.notification/v1`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The delivery key (also in [`DELIVERY_HEADER`]): receivers drop repeats by it.
    pub id: &'a str,
    pub notifier: &'a str,
    pub rollout: &'a RolloutRef,
    pub event: &'a Happening,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<&'a VerdictReport>,
}

/// The webhook body of `pending`.
pub fn webhook_body(pending: &Pending, rollout: &RolloutRef) -> Vec<u8> {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_vec(&payload(pending, rollout)).unwrap_or_default()
}

/// The payload as a JSON value (what templates see).
pub fn payload_value(pending: &Pending, rollout: &RolloutRef) -> Value {
    serde_json::to_value(payload(pending, rollout)).unwrap_or(Value::Null)
}

fn payload<'a>(pending: &'a Pending, rollout: &'a RolloutRef) -> WebhookPayload<'a> {
    WebhookPayload {
        api_version: PAYLOAD_VERSION,
        kind: "Notification",
        id: &pending.key,
        notifier: &pending.notifier,
        rollout,
        event: &pending.happening,
        report: pending.report.as_ref(),
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Slack-compatible body of `pending`: `text` (the `text` template's
/// output when the Notifier has one) and one section block of it.
pub fn slack_templated(pending: &Pending, text: &str) -> Vec<u8> {
    let body = json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": bounded(text, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&format!("id {}", pending.key))}]}
        ]
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The Slack-compatible body of `pending`, built in.
pub fn slack_body(pending: &Pending, rollout: &RolloutRef) -> Vec<u8> {
    let h = &pending.happening;
    let title = format!(
        "[{:?}] {}/{}: {}",
        h.severity, rollout.namespace, rollout.name, h.summary
    );
    let mut text = title.clone();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": bounded(&format!("redblack: {}", kebab(h.trigger).replace('-', " ")), 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&title)}}),
    ];
    let mut fields = vec![
        field("Trigger", &format!("{:?}", h.trigger)),
        field("Severity", &format!("{:?}", h.severity)),
    ];
    if let Some(rev) = &h.revision {
        fields.push(field("Revision", rev));
    }
    if let Some(analysis) = &h.analysis {
        fields.push(field("Analysis", analysis));
    }
    blocks.push(json!({"type": "section", "fields": fields}));
    if let Some(url) = &rollout.dashboard {
        text.push_str(&format!("\nDashboard: {url}"));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{}|Dashboard>", escape(url))}}));
    }
    if let Some(message) = &h.message {
        text.push_str(&format!("\n{message}"));
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(message)}}));
    }
    if let Some(report) = &pending.report {
        let lines = report_lines(report);
        if !lines.is_empty() {
            text.push('\n');
            text.push_str(&lines.join("\n"));
            let body = lines
                .iter()
                .map(|l| escape(l))
                .collect::<Vec<_>>()
                .join("\n");
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": bounded(&body, 3000)}}));
        }
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&format!("id {}", pending.key))}]}));
    let body: Value = json!({"text": text, "blocks": blocks});
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The canary report as lines: the score and band, then one line per failing metric.
pub fn report_lines(report: &VerdictReport) -> Vec<String> {
    let mut lines = Vec::new();
    if report.score.is_some() || report.band.is_some() {
        lines.push(format!(
            "Score {} ({})",
            report
                .score
                .map_or("none".to_owned(), |s| format!("{s:.1}")),
            report.band.as_deref().unwrap_or("no band")
        ));
    }
    let num = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    for m in &report.failing_metrics {
        lines.push(format!(
            "• {}{}: {} (canary {}, baseline {}, ratio {}) {}",
            m.name,
            if m.critical { " [critical]" } else { "" },
            m.classification,
            num(m.canary_mean),
            num(m.baseline_mean),
            num(m.ratio),
            m.reason
        ));
    }
    if report.failing_omitted > 0 {
        lines.push(format!(
            "… and {} more failing metrics",
            report.failing_omitted
        ));
    }
    lines
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(value))})
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` (a `<` would start a link).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` cut to at most `max` bytes on a character boundary, `…` marking a cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests;
