//! Shell: one delivery, one POST. A 2xx is the only success; everything else
//! (another status, a timeout, a refused connection) is a failure the
//! ledger retries. Redirects are not followed (a webhook that moved must be
//! reconfigured, not chased).

use std::time::Duration;

use super::channel::Channel;
use super::ledger::Pending;
use super::payload::{self, DELIVERY_HEADER, RolloutRef, SIGNATURE_HEADER};
use super::template::{Part, render};
use crate::api::notifier::MessageTemplate;

/// The one HTTP client of the notifier: system roots for `https://`, a
/// timeout on every request, no redirects.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let endpoint = crate::analysis::endpoint::EndpointConfig::plain("https://notifications");
    crate::analysis::http_client::build(&endpoint, timeout).map_err(|e| e.to_string())
}

/// POSTs `pending` to `channel`; `Err` says why it did not arrive (never
/// quoting a Slack URL, which is a credential).
pub async fn deliver(
    http: &reqwest::Client,
    channel: &Channel,
    pending: &Pending,
    rollout: &RolloutRef,
    template: Option<&MessageTemplate>,
    dashboard_url: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let mut with_link;
    let mut rollout = rollout;
    if let Some(url) = dashboard_url {
        with_link = rollout.clone();
        with_link.dashboard = Some(super::template::dashboard(url, pending, rollout)?);
        rollout = &with_link;
    }
    let (url, body, signature) = match channel {
        Channel::Email(smtp) => {
            return super::smtp::send(smtp, pending, rollout, template, timeout).await;
        }
        Channel::Webhook {
            url,
            signing_secret,
        } => {
            let body = payload::webhook_body(pending, rollout);
            let signature = signing_secret
                .as_ref()
                .map(|s| payload::signature(s, &body));
            (url, body, signature)
        }
        Channel::Slack { url } => {
            let body = match render(template, Part::Text, pending, rollout) {
                Some(text) => payload::slack_templated(pending, &text?),
                None => payload::slack_body(pending, rollout),
            };
            (url, body, None)
        }
    };
    let mut request = http
        .post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, &pending.key)
        .body(body);
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let target = match channel {
        Channel::Slack { url } => format!("the Slack webhook at {}", url.host_str().unwrap_or("?")),
        _ => url.to_string(),
    };
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("{target} answered {}", response.status())),
        Err(e) if e.is_timeout() => Err(format!("{target} did not answer in time")),
        Err(e) => Err(format!("{target}: {}", error_chain(&e))),
    }
}

/// The error and its sources, e.g. "error sending request: connection refused".
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors print their source themselves: say it once.
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    // A reqwest error may print the URL; a Slack URL is a secret.
    payload::bounded(&redact_urls(&text), 300)
}

/// Replaces every `http(s)://...` in `text` by `<url>`.
fn redact_urls(text: &str) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains("http://") || word.contains("https://") {
            out.push_str("<url>");
        } else {
            out.push_str(word);
        }
    }
    out
}
