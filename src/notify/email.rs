//! PURE: the email of a notification: subject, a text part and an HTML part
//! (the same content; for a verdict, the body is the canary report), and a
//! Message-ID derived from the delivery key, so a mail client or a receiver
//! can drop a repeat.

use sha2::Digest;

use super::ledger::Pending;
use super::payload::{RolloutRef, report_lines};
use super::template::{Part, render};
use super::trigger::kebab;
use crate::api::notifier::MessageTemplate;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `<hex>@redblack.notification`, from the delivery key.
    pub message_id: String,
}

pub fn content(pending: &Pending, rollout: &RolloutRef) -> EmailContent {
    let h = &pending.happening;
    let subject = format!(
        "[{:?}] {}/{}: {}",
        h.severity, rollout.namespace, rollout.name, h.summary
    );
    // (label, value) rows shared by both parts.
    let mut rows: Vec<(&str, String)> = vec![
        ("Rollout", format!("{}/{}", rollout.namespace, rollout.name)),
        ("Trigger", format!("{:?}", h.trigger)),
        ("Severity", format!("{:?}", h.severity)),
    ];
    if let Some(rev) = &h.revision {
        rows.push(("Revision", rev.clone()));
    }
    if let Some(stable) = &h.stable_revision {
        rows.push(("Live revision", stable.clone()));
    }
    if let Some(analysis) = &h.analysis {
        rows.push((
            "Analysis",
            format!("{analysis} (redblack report {analysis})"),
        ));
    }
    if let Some(message) = &h.message {
        rows.push(("Message", message.clone()));
    }
    rows.push(("At", h.at.to_rfc3339()));
    if let Some(url) = &rollout.dashboard {
        rows.push(("Dashboard", url.clone()));
    }

    let mut text = format!("{}\n\n", h.summary);
    for (label, value) in &rows {
        text.push_str(&format!("{label}: {value}\n"));
    }
    let mut html = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><table>",
        escape(&h.summary)
    );
    for (label, value) in &rows {
        let cell = if *label == "Dashboard" {
            format!("<a href=\"{0}\">{0}</a>", escape(value))
        } else {
            escape(value)
        };
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{cell}</td></tr>",
            escape(label)
        ));
    }
    html.push_str("</table>");
    if let Some(report) = &pending.report {
        text.push_str("\nCanary report\n");
        for line in report_lines(report) {
            text.push_str(&line);
            text.push('\n');
        }
        html.push_str("<h3>Canary report</h3>");
        html.push_str(&format!(
            "<p>Score <b>{}</b> ({})</p>",
            report
                .score
                .map_or("none".to_owned(), |s| format!("{s:.1}")),
            escape(report.band.as_deref().unwrap_or("no band"))
        ));
        if !report.failing_metrics.is_empty() {
            html.push_str(
                "<table border=\"1\" cellpadding=\"4\"><tr><th>Metric</th><th>Classification</th>\
                 <th>Canary</th><th>Baseline</th><th>Ratio</th><th>Reason</th></tr>",
            );
            let num = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
            for m in &report.failing_metrics {
                html.push_str(&format!(
                    "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&m.name),
                    if m.critical { " (critical)" } else { "" },
                    escape(&m.classification),
                    num(m.canary_mean),
                    num(m.baseline_mean),
                    num(m.ratio),
                    escape(&m.reason)
                ));
            }
            html.push_str("</table>");
        }
        if report.failing_omitted > 0 {
            html.push_str(&format!(
                "<p>… and {} more failing metrics</p>",
                report.failing_omitted
            ));
        }
    }
    text.push_str(&format!(
        "\n-- \nredblack {} notification, id {}\n",
        kebab(h.trigger),
        pending.key
    ));
    html.push_str(&format!(
        "<p style=\"color:#888\">redblack {} notification, id {}</p></body></html>",
        kebab(h.trigger),
        escape(&pending.key)
    ));
    let digest = hex::encode(sha2::Sha256::digest(pending.key.as_bytes()));
    EmailContent {
        subject,
        text,
        html,
        message_id: format!("<{}@redblack.notification>", &digest[..32]),
    }
}

/// [`content`] with the Notifier's templates in place of the built-in
/// subject, text and HTML (each only if it has one); `Err` names the
/// template that failed to render.
pub fn templated(
    pending: &Pending,
    rollout: &RolloutRef,
    template: Option<&MessageTemplate>,
) -> Result<EmailContent, String> {
    let mut c = content(pending, rollout);
    for (part, slot) in [
        (Part::Subject, &mut c.subject),
        (Part::Text, &mut c.text),
        (Part::Html, &mut c.html),
    ] {
        if let Some(rendered) = render(template, part, pending, rollout) {
            *slot = rendered?;
        }
    }
    Ok(c)
}

/// HTML text and attribute escaping: the one the dashboard's pages use.
pub use crate::web::dashboard::html::esc as escape;

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::api::notifier::{Severity, Trigger};
    use crate::notify::report::{FailingMetric, VerdictReport};
    use crate::notify::trigger::Happening;

    #[test]
    fn a_verdict_email_is_the_canary_report_in_both_parts() {
        let pending = Pending {
            key: "uid/canary-verdict/web-v2-1/Failed/mail".into(),
            notifier: "mail".into(),
            happening: Happening {
                trigger: Trigger::CanaryVerdict,
                severity: Severity::Critical,
                id: "canary-verdict/web-v2-1/Failed".into(),
                summary: "canary of revision v2: Failed (score 12.0)".into(),
                revision: Some("v2".into()),
                stable_revision: Some("v1".into()),
                verdict: Some("Failed".into()),
                score: Some(12.0),
                analysis: Some("web-v2-1".into()),
                message: Some("p99 <worse>".into()),
                at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
            },
            report: Some(VerdictReport {
                score: Some(12.0),
                band: Some("Fail".into()),
                message: None,
                failing_metrics: vec![FailingMetric {
                    name: "latency".into(),
                    classification: "High".into(),
                    critical: false,
                    canary_mean: Some(3.0),
                    baseline_mean: Some(1.0),
                    ratio: Some(3.0),
                    reason: "canary is higher".into(),
                }],
                failing_omitted: 0,
            }),
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
        };
        let rollout = RolloutRef {
            namespace: "shop".into(),
            name: "web".into(),
            uid: "uid".into(),
            dashboard: None,
        };
        let c = content(&pending, &rollout);
        assert_eq!(
            c.subject,
            "[Critical] shop/web: canary of revision v2: Failed (score 12.0)"
        );
        assert!(c.text.contains("Score 12.0 (Fail)"), "{}", c.text);
        assert!(
            c.text
                .contains("• latency: High (canary 3.0000, baseline 1.0000, ratio 3.0000)"),
            "{}",
            c.text
        );
        assert!(c.text.contains("Message: p99 <worse>"), "{}", c.text);
        assert!(c.html.contains("<td>p99 &lt;worse&gt;</td>"), "{}", c.html);
        assert!(
            c.html
                .contains("<tr><td>latency</td><td>High</td><td>3.0000</td><td>1.0000</td>"),
            "{}",
            c.html
        );
        assert!(!c.html.contains("<worse>"), "{}", c.html);
        assert!(c.message_id.starts_with('<') && c.message_id.ends_with("@redblack.notification>"));
        assert_eq!(
            c.message_id,
            content(&pending, &rollout).message_id,
            "stable"
        );
    }
}
