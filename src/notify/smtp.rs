//! Shell: one email over SMTP with lettre (STARTTLS required, TLS, or none;
//! rustls with the system's roots), built from [`super::email::content`].

use std::time::Duration;

use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::Smtp;
use super::deliver::error_chain;
use super::email::templated;
use super::ledger::Pending;
use super::payload::RolloutRef;
use crate::api::notifier::{EmailTls, MessageTemplate};

pub async fn send(
    smtp: &Smtp,
    pending: &Pending,
    rollout: &RolloutRef,
    template: Option<&MessageTemplate>,
    timeout: Duration,
) -> Result<(), String> {
    let target = format!("SMTP server {}:{}", smtp.host, smtp.port);
    let c = templated(pending, rollout, template)?;
    let mut builder = Message::builder()
        .from(smtp.from.clone())
        .subject(c.subject)
        .message_id(Some(c.message_id));
    for to in &smtp.to {
        builder = builder.to(to.clone());
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(c.text, c.html))
        .map_err(|e| format!("cannot build the email: {e}"))?;
    let tls = match smtp.tls {
        EmailTls::None => Tls::None,
        EmailTls::StartTLS => {
            Tls::Required(tls_parameters(smtp).map_err(|e| format!("{target}: {e}"))?)
        }
        EmailTls::TLS => Tls::Wrapper(tls_parameters(smtp).map_err(|e| format!("{target}: {e}"))?),
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host).tls(tls);
    let mut transport = transport.port(smtp.port).timeout(Some(timeout));
    if let Some((user, password)) = &smtp.credentials {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport = transport.build();
    match transport.send(message).await {
        Ok(response) if response.is_positive() => Ok(()),
        Ok(response) => Err(format!("{target} answered {}", response.code())),
        Err(e) => Err(format!("{target}: {}", error_chain(&e))),
    }
}

/// rustls with the system's roots and the Notifier's CA, verifying the host name.
fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(pem) = &smtp.ca_pem {
        let ca = Certificate::from_pem(pem).map_err(|e| format!("the CA bundle: {e}"))?;
        builder = builder.add_root_certificate(ca);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("TLS settings: {}", error_chain(&e)))
}
