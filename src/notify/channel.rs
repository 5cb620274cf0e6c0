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
    if let Some(url) = &spec.dashboard_url {
        super::template::check_dashboard(url)?;
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
mod tests;
