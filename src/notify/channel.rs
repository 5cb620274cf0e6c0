//! PURE: a Notifier's spec and the Secret values it references, checked and
//! resolved into what a delivery needs. Every problem names the field
//! (`spec.webhook.url`, `spec.slack.urlSecretRef`, ...) for the Notifier's
//! `Ready` condition. The Secret reads are the shell's ([`super::secrets`]).

use lettre::message::Mailbox;
use url::Url;

use crate::api::endpoint::SecretKeyRef;
use crate::api::notifier::{EmailChannel, EmailTls, NotifierSpec};

/// A checked channel.
#[derive(Clone, PartialEq, Eq)]
pub enum Channel {
    Webhook {
        url: Url,
        signing_secret: Option<Vec<u8>>,
    },
    Slack {
        url: Url,
    },
    Email(Box<Smtp>),
}

/// A checked SMTP channel.
#[derive(Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: EmailTls,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// (user name, password).
    pub credentials: Option<(String, String)>,
    /// Extra trust anchors (PEM), from `caSecretRef`.
    pub ca_pem: Option<Vec<u8>>,
}

// The Slack URL and the signing secret are credentials: never in logs.
impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Webhook {
                url,
                signing_secret,
            } => f
                .debug_struct("Webhook")
                .field("url", &url.as_str())
                .field("signed", &signing_secret.is_some())
                .finish(),
            Channel::Slack { .. } => f.write_str("Slack { url: <secret> }"),
            Channel::Email(smtp) => f
                .debug_struct("Email")
                .field("server", &format!("{}:{}", smtp.host, smtp.port))
                .field("tls", &smtp.tls)
                .field("to", &smtp.to.len())
                .field("auth", &smtp.credentials.is_some())
                .finish(),
        }
    }
}

/// What reading one Secret key gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretValue {
    Found(Vec<u8>),
    NoSecret,
    NoKey,
    /// The read failed (RBAC, the API down): the message.
    Unreadable(String),
}

/// Why a Notifier cannot deliver, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
    /// A read that may work later (not the user's mistake).
    pub transient: bool,
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        message: message.into(),
        transient: false,
    }
}

/// Every Secret key `spec` references: what the shell reads before
/// [`resolve`] (one list, so a new reference cannot be forgotten there).
pub fn secret_refs(spec: &NotifierSpec) -> Vec<SecretKeyRef> {
    let mut refs = Vec::new();
    if let Some(w) = &spec.webhook {
        refs.extend(w.signing_secret_ref.clone());
    }
    if let Some(s) = &spec.slack {
        refs.push(s.url_secret_ref.clone());
    }
    if let Some(e) = &spec.email {
        refs.extend(e.auth.as_ref().map(|a| a.password_secret_ref.clone()));
        refs.extend(e.ca_secret_ref.clone());
    }
    refs
}

/// Checks `spec` with the Secret values `secret` returns.
pub fn resolve(
    spec: &NotifierSpec,
    secret: impl Fn(&SecretKeyRef) -> SecretValue,
) -> Result<Channel, ConfigError> {
    if let Some(t) = &spec.template {
        super::template::check(t)?;
    }
    if let Some(d) = &spec.subscribe {
        super::subscriptions::selector(&d.rollout_selector)
            .map_err(|e| err("spec.subscribe.rolloutSelector", e))?;
    }
    let read = |field: &str, r: &SecretKeyRef| -> Result<Vec<u8>, ConfigError> {
        match secret(r) {
            SecretValue::Found(v) if !v.is_empty() => Ok(v),
            SecretValue::Found(_) => Err(err(
                field,
                format!("key {:?} of Secret {} is empty", r.key, r.name),
            )),
            SecretValue::NoSecret => Err(err(field, format!("Secret {} not found", r.name))),
            SecretValue::NoKey => Err(err(
                field,
                format!("Secret {} has no key {:?}", r.name, r.key),
            )),
            SecretValue::Unreadable(m) => Err(ConfigError {
                transient: true,
                ..err(field, format!("cannot read Secret {}: {m}", r.name))
            }),
        }
    };
    match (&spec.webhook, &spec.slack, &spec.email) {
        (None, None, Some(e)) => {
            let credentials = match &e.auth {
                Some(auth) => {
                    let field = "spec.email.auth.passwordSecretRef";
                    let raw = read(field, &auth.password_secret_ref)?;
                    let password = String::from_utf8(raw)
                        .map_err(|_| err(field, "the Secret's value is not UTF-8 text"))?;
                    Some((
                        auth.username.clone(),
                        password.trim_end_matches('\n').to_owned(),
                    ))
                }
                None => None,
            };
            let ca_pem = match &e.ca_secret_ref {
                Some(r) => Some(read("spec.email.caSecretRef", r)?),
                None => None,
            };
            email(e, credentials, ca_pem)
        }
        (Some(w), None, None) => {
            let url = check_url("spec.webhook.url", &w.url, true)?;
            let signing_secret = match &w.signing_secret_ref {
                Some(r) => Some(read("spec.webhook.signingSecretRef", r)?),
                None => None,
            };
            Ok(Channel::Webhook {
                url,
                signing_secret,
            })
        }
        (None, Some(s), None) => {
            let field = "spec.slack.urlSecretRef";
            let raw = read(field, &s.url_secret_ref)?;
            let text = String::from_utf8(raw)
                .map_err(|_| err(field, "the Secret's value is not UTF-8 text"))?;
            // Never quote the value: it is a credential.
            let url = check_url(field, text.trim(), false)?;
            Ok(Channel::Slack { url })
        }
        _ => Err(err("spec", "set exactly one of webhook, slack and email")),
    }
}

fn email(
    e: &EmailChannel,
    credentials: Option<(String, String)>,
    ca_pem: Option<Vec<u8>>,
) -> Result<Channel, ConfigError> {
    let host = e.host.trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
        return Err(err(
            "spec.email.host",
            format!("{:?} is not a host name or address", e.host),
        ));
    }
    if let Some(pem) = &ca_pem
        && lettre::transport::smtp::client::Certificate::from_pem(pem).is_err()
    {
        return Err(err("spec.email.caSecretRef", "not a PEM certificate"));
    }
    if credentials.is_some() && e.tls == EmailTls::None {
        return Err(err(
            "spec.email.auth",
            "credentials are never sent without TLS: set tls to StartTLS or TLS",
        ));
    }
    let mailbox = |field: String, text: &str| -> Result<Mailbox, ConfigError> {
        text.parse::<Mailbox>()
            .map_err(|e| err(&field, format!("{text:?} is not an email address ({e})")))
    };
    let from = mailbox("spec.email.from".to_owned(), &e.from)?;
    let to =
        e.to.iter()
            .enumerate()
            .map(|(i, t)| mailbox(format!("spec.email.to[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
    if to.is_empty() {
        return Err(err("spec.email.to", "at least one recipient"));
    }
    let port = e.port.unwrap_or(match e.tls {
        EmailTls::StartTLS => 587,
        EmailTls::TLS => 465,
        EmailTls::None => 25,
    });
    Ok(Channel::Email(Box::new(Smtp {
        host: host.to_owned(),
        port,
        tls: e.tls,
        from,
        to,
        credentials,
        ca_pem,
    })))
}

/// An absolute `http://` or `https://` URL with a host. `quote`: the value
/// may appear in the message (not a secret).
fn check_url(field: &str, raw: &str, quote: bool) -> Result<Url, ConfigError> {
    let shown = if quote {
        format!("{raw:?} ")
    } else {
        String::new()
    };
    let url =
        Url::parse(raw).map_err(|e| err(field, format!("{shown}is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(
            field,
            format!("{shown}must be an http:// or https:// URL"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err(field, format!("{shown}has no host")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::notifier::{SlackChannel, WebhookChannel};

    fn webhook(url: &str, secret: Option<(&str, &str)>) -> NotifierSpec {
        NotifierSpec {
            webhook: Some(WebhookChannel {
                url: url.into(),
                signing_secret_ref: secret.map(|(n, k)| SecretKeyRef {
                    name: n.into(),
                    key: k.into(),
                }),
            }),
            slack: None,
            email: None,
            template: None,
            subscribe: None,
        }
    }

    fn mail(tls: EmailTls, to: &[&str], auth: Option<(&str, &str)>) -> NotifierSpec {
        NotifierSpec {
            email: Some(EmailChannel {
                host: "smtp.example".into(),
                port: None,
                tls,
                from: "redblack <rb@example.com>".into(),
                to: to.iter().map(|t| (*t).to_owned()).collect(),
                ca_secret_ref: None,
                auth: auth.map(|(n, k)| crate::api::notifier::EmailAuth {
                    username: "rb".into(),
                    password_secret_ref: SecretKeyRef {
                        name: n.into(),
                        key: k.into(),
                    },
                }),
            }),
            ..NotifierSpec::default()
        }
    }

    fn secrets(r: &SecretKeyRef) -> SecretValue {
        match (r.name.as_str(), r.key.as_str()) {
            ("hooks", "signing") => SecretValue::Found(b"s3cret".to_vec()),
            ("hooks", "slack") => SecretValue::Found(b" https://hooks.example/T/B/X \n".to_vec()),
            ("hooks", "bad") => SecretValue::Found(b"hooks.example/no-scheme".to_vec()),
            ("hooks", "empty") => SecretValue::Found(vec![]),
            ("hooks", _) => SecretValue::NoKey,
            ("locked", _) => SecretValue::Unreadable("forbidden".into()),
            _ => SecretValue::NoSecret,
        }
    }

    /// Every `*SecretRef` anywhere in a spec is listed by `secret_refs`:
    /// found by walking the spec's JSON, so a new one cannot be missed.
    #[test]
    fn secret_refs_lists_every_reference() {
        fn walk(v: &serde_json::Value, out: &mut Vec<SecretKeyRef>) {
            if let Some(o) = v.as_object() {
                for (k, child) in o {
                    if k.ends_with("SecretRef") {
                        out.push(serde_json::from_value(child.clone()).unwrap());
                    } else {
                        walk(child, out);
                    }
                }
            }
        }
        let r = |k: &str| SecretKeyRef {
            name: "s".into(),
            key: k.into(),
        };
        let specs = [
            webhook("http://h/", Some(("s", "signing"))),
            webhook("http://h/", None),
            NotifierSpec {
                slack: Some(SlackChannel {
                    url_secret_ref: r("url"),
                }),
                ..NotifierSpec::default()
            },
            NotifierSpec {
                email: Some(EmailChannel {
                    host: "h".into(),
                    port: None,
                    tls: EmailTls::StartTLS,
                    from: "a@b.c".into(),
                    to: vec!["d@e.f".into()],
                    auth: Some(crate::api::notifier::EmailAuth {
                        username: "u".into(),
                        password_secret_ref: r("password"),
                    }),
                    ca_secret_ref: Some(r("ca")),
                }),
                ..NotifierSpec::default()
            },
        ];
        for spec in specs {
            let mut expected = Vec::new();
            walk(&serde_json::to_value(&spec).unwrap(), &mut expected);
            let mut got = secret_refs(&spec);
            let key = |r: &SecretKeyRef| r.key.clone();
            expected.sort_by_key(key);
            got.sort_by_key(key);
            assert_eq!(got, expected, "{spec:?}");
        }
    }

    #[test]
    fn the_table() {
        let slack = |key: &str| NotifierSpec {
            webhook: None,
            email: None,
            template: None,
            subscribe: None,
            slack: Some(SlackChannel {
                url_secret_ref: SecretKeyRef {
                    name: "hooks".into(),
                    key: key.into(),
                },
            }),
        };
        let ok: Vec<(NotifierSpec, &str)> = vec![
            (
                webhook("http://127.0.0.1:9/hook", None),
                "Webhook { url: \"http://127.0.0.1:9/hook\", signed: false }",
            ),
            (
                webhook("https://x.example/h", Some(("hooks", "signing"))),
                "Webhook { url: \"https://x.example/h\", signed: true }",
            ),
            (slack("slack"), "Slack { url: <secret> }"),
            (
                mail(
                    EmailTls::StartTLS,
                    &["team@example.com"],
                    Some(("hooks", "signing")),
                ),
                "Email { server: \"smtp.example:587\", tls: StartTLS, to: 1, auth: true }",
            ),
            (
                mail(
                    EmailTls::None,
                    &["a@example.com", "B <b@example.com>"],
                    None,
                ),
                "Email { server: \"smtp.example:25\", tls: None, to: 2, auth: false }",
            ),
            (
                mail(EmailTls::TLS, &["a@example.com"], None),
                "Email { server: \"smtp.example:465\", tls: TLS, to: 1, auth: false }",
            ),
        ];
        for (spec, debug) in ok {
            assert_eq!(format!("{:?}", resolve(&spec, secrets).unwrap()), debug);
        }
        let bad: Vec<(NotifierSpec, &str, &str)> = vec![
            (
                webhook("not a url", None),
                "spec.webhook.url",
                "\"not a url\" is not a valid URL",
            ),
            (
                webhook("ftp://x.example/", None),
                "spec.webhook.url",
                "must be an http:// or https:// URL",
            ),
            (
                webhook("http://h/", Some(("hooks", "nope"))),
                "spec.webhook.signingSecretRef",
                "Secret hooks has no key \"nope\"",
            ),
            (
                webhook("http://h/", Some(("gone", "k"))),
                "spec.webhook.signingSecretRef",
                "Secret gone not found",
            ),
            (
                webhook("http://h/", Some(("hooks", "empty"))),
                "spec.webhook.signingSecretRef",
                "is empty",
            ),
            (
                slack("nope"),
                "spec.slack.urlSecretRef",
                "Secret hooks has no key \"nope\"",
            ),
            (
                slack("bad"),
                "spec.slack.urlSecretRef",
                "is not a valid URL",
            ),
            (NotifierSpec::default(), "spec", "set exactly one"),
            (
                mail(EmailTls::StartTLS, &["not an address"], None),
                "spec.email.to[0]",
                "is not an email address",
            ),
            (
                mail(
                    EmailTls::None,
                    &["a@example.com"],
                    Some(("hooks", "signing")),
                ),
                "spec.email.auth",
                "never sent without TLS",
            ),
            (
                mail(
                    EmailTls::StartTLS,
                    &["a@example.com"],
                    Some(("hooks", "nope")),
                ),
                "spec.email.auth.passwordSecretRef",
                "no key",
            ),
        ];
        for (spec, field, message) in bad {
            let e = resolve(&spec, secrets).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(message), "{e}");
            assert!(!e.transient);
            assert!(
                !e.to_string().contains("no-scheme"),
                "a Slack URL is never quoted: {e}"
            );
        }
        let locked = NotifierSpec {
            webhook: None,
            email: None,
            template: None,
            subscribe: None,
            slack: Some(SlackChannel {
                url_secret_ref: SecretKeyRef {
                    name: "locked".into(),
                    key: "k".into(),
                },
            }),
        };
        assert!(resolve(&locked, secrets).unwrap_err().transient);
    }
}
