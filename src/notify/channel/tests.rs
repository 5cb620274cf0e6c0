//! Table tests of [`super::resolve`] and [`super::secret_refs`].
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
        dashboard_url: None,
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
        dashboard_url: None,
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
        dashboard_url: None,
        slack: Some(SlackChannel {
            url_secret_ref: SecretKeyRef {
                name: "locked".into(),
                key: "k".into(),
            },
        }),
    };
    assert!(resolve(&locked, secrets).unwrap_err().transient);
}
