//! PURE: a Notifier's minijinja templates (`spec.template`): checked (each
//! compiles, or an error naming the field and the line) and rendered over
//! the webhook payload's fields, so a template sees exactly what the
//! documented payload says. Rendering is bounded: fuel for loops, and the
//! output cut at [`OUTPUT_LIMIT`]. `html` auto-escapes values; `subject` and
//! `text` do not (Slack mrkdwn and plain text).

use minijinja::{Environment, UndefinedBehavior, Value};

use super::channel::ConfigError;
use super::ledger::Pending;
use super::payload::{RolloutRef, bounded, payload_value};
use crate::api::notifier::MessageTemplate;

/// Output bytes kept of one rendering.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// minijinja's fuel: bounds the work of one rendering (loops, filters).
const FUEL: u64 = 200_000;

/// Which template: its field and the name minijinja escapes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    fn field(self) -> &'static str {
        match self {
            Part::Subject => "spec.template.subject",
            Part::Text => "spec.template.text",
            Part::Html => "spec.template.html",
        }
    }
    /// The `.html` suffix turns minijinja's HTML auto-escaping on.
    fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Text => "text.txt",
            Part::Html => "body.html",
        }
    }
    pub fn of(self, t: &MessageTemplate) -> Option<&str> {
        match self {
            Part::Subject => t.subject.as_deref(),
            Part::Text => t.text.as_deref(),
            Part::Html => t.html.as_deref(),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // A misspelt field (or one a trigger does not set, like `report`)
    // renders empty rather than failing every delivery; the check still
    // refuses what does not compile.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
}

/// Every template of `t` compiles.
pub fn check(t: &MessageTemplate) -> Result<(), ConfigError> {
    let env = environment();
    for part in [Part::Subject, Part::Text, Part::Html] {
        if let Some(src) = part.of(t) {
            env.template_from_named_str(part.name(), src)
                .map_err(|e| ConfigError {
                    field: part.field().to_owned(),
                    message: bounded(&error_text(&e), 512),
                    transient: false,
                })?;
        }
    }
    Ok(())
}

/// `spec.dashboardUrl` rendered for `pending`: an absolute http(s) URL, or
/// why not (naming the field).
pub fn dashboard(url: &str, pending: &Pending, rollout: &RolloutRef) -> Result<String, String> {
    const FIELD: &str = "spec.dashboardUrl";
    let env = environment();
    let context = Value::from(minijinja::value::Serde(payload_value(pending, rollout)));
    let out = env
        .template_from_named_str("dashboard.txt", url)
        .and_then(|t| t.render(context))
        .map_err(|e| format!("{FIELD}: {}", bounded(&error_text(&e), 512)))?;
    let out = out.trim();
    match url::Url::parse(out) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u.to_string()),
        _ => Err(format!(
            "{FIELD}: {:?} is not an http(s) URL",
            bounded(out, 256)
        )),
    }
}

/// `spec.dashboardUrl` compiles.
pub fn check_dashboard(url: &str) -> Result<(), ConfigError> {
    environment()
        .template_from_named_str("dashboard.txt", url)
        .map(|_| ())
        .map_err(|e| ConfigError {
            field: "spec.dashboardUrl".to_owned(),
            message: bounded(&error_text(&e), 512),
            transient: false,
        })
}

/// `part` of `t` rendered for `pending` (`None`: no such template, use the
/// built-in message).
pub fn render(
    t: Option<&MessageTemplate>,
    part: Part,
    pending: &Pending,
    rollout: &RolloutRef,
) -> Option<Result<String, String>> {
    let src = part.of(t?)?;
    let env = environment();
    let context = Value::from(minijinja::value::Serde(payload_value(pending, rollout)));
    let rendered = env
        .template_from_named_str(part.name(), src)
        .and_then(|tmpl| tmpl.render(context))
        .map(|out| {
            let out = bounded(&out, OUTPUT_LIMIT);
            if part == Part::Subject {
                // One header line.
                out.split_whitespace().collect::<Vec<_>>().join(" ")
            } else {
                out
            }
        })
        .map_err(|e| format!("{}: {}", part.field(), bounded(&error_text(&e), 512)));
    Some(rendered)
}

/// `<kind>: <detail> (line <n>)`, e.g. "syntax error: unexpected end of
/// input, expected end of variable block (line 1)".
fn error_text(e: &minijinja::Error) -> String {
    let mut text = e.kind().to_string();
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::api::notifier::{Severity, Trigger};
    use crate::notify::trigger::Happening;

    fn pending() -> Pending {
        Pending {
            key: "uid/promoted/v2/t/team".into(),
            notifier: "team".into(),
            happening: Happening {
                trigger: Trigger::Promoted,
                severity: Severity::Info,
                id: "promoted/v2/t".into(),
                summary: "traffic switched to revision v2".into(),
                revision: Some("v2".into()),
                stable_revision: Some("v2".into()),
                verdict: None,
                score: None,
                analysis: None,
                message: Some("<b>bold</b>".into()),
                at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
            },
            report: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
        }
    }

    fn rollout() -> RolloutRef {
        RolloutRef {
            namespace: "shop".into(),
            name: "web".into(),
            uid: "uid".into(),
            dashboard: None,
        }
    }

    fn t(subject: Option<&str>, text: Option<&str>, html: Option<&str>) -> MessageTemplate {
        MessageTemplate {
            subject: subject.map(str::to_owned),
            text: text.map(str::to_owned),
            html: html.map(str::to_owned),
        }
    }

    #[test]
    fn check_names_the_field_of_a_template_that_does_not_compile() {
        assert!(check(&t(Some("{{ event.trigger }}"), Some("ok"), None)).is_ok());
        let rows = [
            (
                t(Some("{{ event.trigger"), None, None),
                "spec.template.subject",
            ),
            (t(None, Some("{% if %}"), None), "spec.template.text"),
            (
                t(None, None, Some("{% for x in y %}")),
                "spec.template.html",
            ),
        ];
        for (template, field) in rows {
            let e = check(&template).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains("syntax error"), "{e}");
            assert!(e.message.contains("line 1"), "{e}");
        }
    }

    #[test]
    fn render_sees_the_payload_and_escapes_only_html() {
        let template = t(
            Some("{{ rollout.name }}:\n {{ event.trigger }}"),
            Some("{{ event.summary }} {{ event.message }} {{ nope.missing }}"),
            Some("<p>{{ event.message }}</p>"),
        );
        let r = |part| {
            render(Some(&template), part, &pending(), &rollout())
                .unwrap()
                .unwrap()
        };
        assert_eq!(r(Part::Subject), "web: Promoted");
        assert_eq!(
            r(Part::Text),
            "traffic switched to revision v2 <b>bold</b> "
        );
        assert_eq!(r(Part::Html), "<p>&lt;b&gt;bold&lt;&#x2f;b&gt;</p>");
        assert!(render(None, Part::Text, &pending(), &rollout()).is_none());
        assert!(
            render(
                Some(&t(None, None, None)),
                Part::Text,
                &pending(),
                &rollout()
            )
            .is_none()
        );
    }

    #[test]
    fn the_dashboard_url_is_rendered_and_must_be_http() {
        let url = "https://grafana.example/d/rb?var-ns={{ rollout.namespace }}&var-rollout={{ rollout.name }}";
        assert_eq!(
            dashboard(url, &pending(), &rollout()).unwrap(),
            "https://grafana.example/d/rb?var-ns=shop&var-rollout=web"
        );
        let e = dashboard("{{ rollout.name }}", &pending(), &rollout()).unwrap_err();
        assert_eq!(e, "spec.dashboardUrl: \"web\" is not an http(s) URL");
        assert!(check_dashboard("https://x/{{ oops").is_err());
        assert!(check_dashboard(url).is_ok());
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let template = t(
            None,
            Some(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            ),
            None,
        );
        let out = render(Some(&template), Part::Text, &pending(), &rollout()).unwrap();
        let e = out.unwrap_err();
        assert!(e.starts_with("spec.template.text: "), "{e}");
    }
}
