//! A metric endpoint with everything needed to query it: URL, TLS material,
//! credentials and headers, resolved from Secret references (an analysis'
//! `spec.prometheus`) or from the operator's own flags (its default endpoint).
//!
//! * [`assemble`] is PURE: spec + the Secret values it names → an
//!   [`EndpointConfig`], or an error naming the Secret and key (never a value).
//! * [`resolve`] is the thin shell: it reads each named Secret once, at query
//!   time, so rotated credentials are picked up on the next interval.
//! * Secret values live in [`SecretValue`], whose `Debug` prints nothing, so
//!   neither logs nor error chains can show them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::canary_analysis::PrometheusRef;
use crate::api::endpoint::SecretKeyRef;

/// A secret's bytes. `Debug` is redacted; `Hash`/`Eq` let the source cache
/// key on the whole configuration (a rotated token is a new client).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretValue(pub Vec<u8>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl SecretValue {
    /// As text, without the trailing newline files and `kubectl create secret --from-file` keep.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0)
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsSettings {
    pub ca_pem: Option<SecretValue>,
    pub cert_pem: Option<SecretValue>,
    pub key_pem: Option<SecretValue>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: SecretValue,
    },
    Bearer(SecretValue),
}

/// Everything a source needs; the source cache's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EndpointConfig {
    pub url: String,
    pub tls: TlsSettings,
    pub auth: Auth,
    /// (name, value); values may be secret, so they are [`SecretValue`]s.
    pub headers: Vec<(String, SecretValue)>,
}

impl EndpointConfig {
    /// A plain endpoint: the URL alone.
    pub fn plain(url: &str) -> Self {
        EndpointConfig {
            url: url.to_owned(),
            ..EndpointConfig::default()
        }
    }
}

/// Why an endpoint's settings could not be resolved. Names Secrets and keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{field}: Secret {namespace}/{name} not found")]
    SecretNotFound {
        field: String,
        namespace: String,
        name: String,
    },
    #[error("{field}: Secret {namespace}/{name} has no key {key:?}")]
    KeyMissing {
        field: String,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("{field}: cannot read Secret {namespace}/{name}: {message}")]
    Unreadable {
        field: String,
        namespace: String,
        name: String,
        message: String,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the operator's endpoint setting {flag}: cannot read {path}: {message}")]
    File {
        flag: &'static str,
        path: String,
        message: String,
    },
}

/// Every Secret reference of `spec`, with the field path that holds it.
pub fn secret_refs(spec: &PrometheusRef) -> Vec<(String, &SecretKeyRef)> {
    let mut refs = Vec::new();
    if let Some(tls) = &spec.tls {
        for (field, r) in [
            ("caSecretRef", &tls.ca_secret_ref),
            ("certSecretRef", &tls.cert_secret_ref),
            ("keySecretRef", &tls.key_secret_ref),
        ] {
            if let Some(r) = r {
                refs.push((format!("spec.prometheus.tls.{field}"), r));
            }
        }
    }
    if let Some(basic) = &spec.basic_auth {
        if let Some(r) = &basic.username_secret_ref {
            refs.push(("spec.prometheus.basicAuth.usernameSecretRef".into(), r));
        }
        refs.push((
            "spec.prometheus.basicAuth.passwordSecretRef".into(),
            &basic.password_secret_ref,
        ));
    }
    if let Some(r) = &spec.bearer_token_secret_ref {
        refs.push(("spec.prometheus.bearerTokenSecretRef".into(), r));
    }
    for (i, h) in spec.headers.iter().enumerate() {
        if let Some(r) = &h.value_secret_ref {
            refs.push((format!("spec.prometheus.headers[{i}].valueSecretRef"), r));
        }
    }
    refs
}

/// What a Secret lookup found: `None` = no such Secret.
pub type Secrets = BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>;

/// PURE: `spec` with its Secret references replaced by `secrets`' values.
pub fn assemble(
    spec: &PrometheusRef,
    namespace: &str,
    secrets: &Secrets,
) -> Result<EndpointConfig, EndpointError> {
    let value = |field: &str, r: &SecretKeyRef| -> Result<SecretValue, EndpointError> {
        let data = secrets
            .get(&r.name)
            .and_then(Option::as_ref)
            .ok_or_else(|| EndpointError::SecretNotFound {
                field: field.to_owned(),
                namespace: namespace.to_owned(),
                name: r.name.clone(),
            })?;
        data.get(&r.key)
            .map(|v| SecretValue(v.clone()))
            .ok_or_else(|| EndpointError::KeyMissing {
                field: field.to_owned(),
                namespace: namespace.to_owned(),
                name: r.name.clone(),
                key: r.key.clone(),
            })
    };
    let opt =
        |field: &str, r: &Option<SecretKeyRef>| r.as_ref().map(|r| value(field, r)).transpose();
    let tls = match &spec.tls {
        Some(t) => {
            let tls = TlsSettings {
                ca_pem: opt("spec.prometheus.tls.caSecretRef", &t.ca_secret_ref)?,
                cert_pem: opt("spec.prometheus.tls.certSecretRef", &t.cert_secret_ref)?,
                key_pem: opt("spec.prometheus.tls.keySecretRef", &t.key_secret_ref)?,
                server_name: t.server_name.clone().filter(|s| !s.is_empty()),
                insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
            };
            if tls.cert_pem.is_some() != tls.key_pem.is_some() {
                return Err(EndpointError::Invalid {
                    field: "spec.prometheus.tls".into(),
                    message: "certSecretRef and keySecretRef go together".into(),
                });
            }
            tls
        }
        None => TlsSettings::default(),
    };
    let auth = match (&spec.basic_auth, &spec.bearer_token_secret_ref) {
        (Some(_), Some(_)) => {
            return Err(EndpointError::Invalid {
                field: "spec.prometheus".into(),
                message: "set at most one of basicAuth and bearerTokenSecretRef".into(),
            });
        }
        (Some(b), None) => {
            let username = match (&b.username, &b.username_secret_ref) {
                (_, Some(r)) => value("spec.prometheus.basicAuth.usernameSecretRef", r)?.text(),
                (Some(u), None) => u.clone(),
                (None, None) => String::new(),
            };
            let password = value(
                "spec.prometheus.basicAuth.passwordSecretRef",
                &b.password_secret_ref,
            )?;
            Auth::Basic {
                username,
                password: SecretValue(password.text().into_bytes()),
            }
        }
        (None, Some(r)) => Auth::Bearer(SecretValue(
            value("spec.prometheus.bearerTokenSecretRef", r)?
                .text()
                .into_bytes(),
        )),
        (None, None) => Auth::None,
    };
    let mut headers = Vec::new();
    for (i, h) in spec.headers.iter().enumerate() {
        let field = format!("spec.prometheus.headers[{i}]");
        let v = match (&h.value, &h.value_secret_ref) {
            (Some(v), None) => SecretValue(v.clone().into_bytes()),
            (None, Some(r)) => SecretValue(
                value(&format!("{field}.valueSecretRef"), r)?
                    .text()
                    .into_bytes(),
            ),
            _ => {
                return Err(EndpointError::Invalid {
                    field,
                    message: "set exactly one of value and valueSecretRef".into(),
                });
            }
        };
        check_header(&field, &h.name, &v)?;
        headers.push((h.name.clone(), v));
    }
    Ok(EndpointConfig {
        url: spec.url.clone(),
        tls,
        auth,
        headers,
    })
}

/// Header names and values the HTTP client would refuse, refused early
/// with the field named; `Authorization` and `Host` belong to the operator.
fn check_header(field: &str, name: &str, value: &SecretValue) -> Result<(), EndpointError> {
    let invalid = |message: &str| EndpointError::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid("not a valid header name"))?;
    if matches!(
        parsed.as_str(),
        "authorization" | "host" | "content-length" | "content-type"
    ) {
        return Err(invalid(
            "this header is set by the operator (use basicAuth or bearerTokenSecretRef)",
        ));
    }
    http::HeaderValue::from_bytes(&value.0)
        .map_err(|_| invalid("the value is not a valid header value"))?;
    Ok(())
}

/// Reads the Secrets `spec` names (each once) and assembles the endpoint.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    spec: &PrometheusRef,
) -> Result<EndpointConfig, EndpointError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets = Secrets::new();
    for (field, r) in secret_refs(spec) {
        if secrets.contains_key(&r.name) {
            continue;
        }
        let found = api
            .get_opt(&r.name)
            .await
            .map_err(|e| EndpointError::Unreadable {
                field: field.clone(),
                namespace: namespace.to_owned(),
                name: r.name.clone(),
                message: match &e {
                    kube::Error::Api(s) => format!("{} ({})", s.reason, s.code),
                    other => other.to_string(),
                },
            })?;
        let data = found.map(|s| {
            let mut data: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            data
        });
        secrets.insert(r.name.clone(), data);
    }
    assemble(spec, namespace, &secrets)
}

/// The operator's default endpoint: flags and Helm values, with files for
/// the secret parts (read at query time: mounted Secrets and projected
/// tokens rotate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultEndpoint {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub basic_auth_username: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    /// `Name: value` pairs.
    pub headers: Vec<(String, String)>,
}

impl DefaultEndpoint {
    pub fn plain(url: &str) -> Self {
        DefaultEndpoint {
            url: url.to_owned(),
            ..DefaultEndpoint::default()
        }
    }

    /// Reads the files and builds the endpoint.
    pub fn load(&self) -> Result<EndpointConfig, EndpointError> {
        let read = |flag: &'static str,
                    path: &Option<PathBuf>|
         -> Result<Option<SecretValue>, EndpointError> {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .map(SecretValue)
                        .map_err(|e| EndpointError::File {
                            flag,
                            path: p.display().to_string(),
                            message: e.to_string(),
                        })
                })
                .transpose()
        };
        let tls = TlsSettings {
            ca_pem: read("--prometheus-ca-file", &self.ca_file)?,
            cert_pem: read("--prometheus-cert-file", &self.cert_file)?,
            key_pem: read("--prometheus-key-file", &self.key_file)?,
            server_name: self.server_name.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
        };
        let auth = match (
            read(
                "--prometheus-basic-auth-password-file",
                &self.basic_auth_password_file,
            )?,
            read("--prometheus-bearer-token-file", &self.bearer_token_file)?,
        ) {
            (Some(password), _) => Auth::Basic {
                username: self.basic_auth_username.clone().unwrap_or_default(),
                password: SecretValue(password.text().into_bytes()),
            },
            (None, Some(token)) => Auth::Bearer(SecretValue(token.text().into_bytes())),
            (None, None) => Auth::None,
        };
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let v = SecretValue(value.clone().into_bytes());
            check_header("--prometheus-header", name, &v)?;
            headers.push((name.clone(), v));
        }
        Ok(EndpointConfig {
            url: self.url.clone(),
            tls,
            auth,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::endpoint::{BasicAuth, EndpointHeader, EndpointTls};

    fn r(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    fn secrets() -> Secrets {
        let mut s = Secrets::new();
        s.insert(
            "prom".into(),
            Some(BTreeMap::from([
                ("password".to_string(), b"hunter2\n".to_vec()),
                ("ca.crt".to_string(), b"PEM".to_vec()),
                ("tenant".to_string(), b"team-a".to_vec()),
            ])),
        );
        s.insert("gone".into(), None);
        s
    }

    fn spec() -> PrometheusRef {
        let mut p = PrometheusRef::url("https://prom:9090");
        p.tls = Some(EndpointTls {
            ca_secret_ref: Some(r("prom", "ca.crt")),
            server_name: Some("prometheus.monitoring".into()),
            ..EndpointTls::default()
        });
        p.basic_auth = Some(BasicAuth {
            username: Some("redblack".into()),
            username_secret_ref: None,
            password_secret_ref: r("prom", "password"),
        });
        p.headers = vec![
            EndpointHeader {
                name: "X-Scope-OrgID".into(),
                value: None,
                value_secret_ref: Some(r("prom", "tenant")),
            },
            EndpointHeader {
                name: "X-Team".into(),
                value: Some("payments".into()),
                value_secret_ref: None,
            },
        ];
        p
    }

    #[test]
    fn secrets_are_resolved_and_trimmed() {
        let e = assemble(&spec(), "apps", &secrets()).unwrap();
        assert_eq!(
            e.auth,
            Auth::Basic {
                username: "redblack".into(),
                password: SecretValue(b"hunter2".to_vec())
            }
        );
        assert_eq!(e.tls.ca_pem, Some(SecretValue(b"PEM".to_vec())));
        assert_eq!(e.tls.server_name.as_deref(), Some("prometheus.monitoring"));
        assert_eq!(e.headers[0].1, SecretValue(b"team-a".to_vec()));
        assert_eq!(e.headers[1].1, SecretValue(b"payments".to_vec()));
        assert_eq!(secret_refs(&spec()).len(), 3);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let e = assemble(&spec(), "apps", &secrets()).unwrap();
        let text = format!("{e:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("team-a"),
            "{text}"
        );
    }

    #[test]
    fn missing_secrets_and_keys_are_named() {
        let mut s = spec();
        s.basic_auth.as_mut().unwrap().password_secret_ref = r("gone", "password");
        let err = assemble(&s, "apps", &secrets()).unwrap_err().to_string();
        assert_eq!(
            err,
            "spec.prometheus.basicAuth.passwordSecretRef: Secret apps/gone not found"
        );
        let mut s = spec();
        s.basic_auth.as_mut().unwrap().password_secret_ref = r("prom", "pw");
        let err = assemble(&s, "apps", &secrets()).unwrap_err().to_string();
        assert!(err.contains("has no key \"pw\""), "{err}");
        let mut s = spec();
        s.basic_auth.as_mut().unwrap().password_secret_ref = r("unlisted", "pw");
        assert!(matches!(
            assemble(&s, "apps", &secrets()),
            Err(EndpointError::SecretNotFound { .. })
        ));
    }

    #[test]
    fn headers_the_operator_owns_are_refused() {
        let mut s = spec();
        s.headers = vec![EndpointHeader {
            name: "Authorization".into(),
            value: Some("Bearer x".into()),
            value_secret_ref: None,
        }];
        let err = assemble(&s, "apps", &secrets()).unwrap_err().to_string();
        assert!(err.starts_with("spec.prometheus.headers[0]:"), "{err}");
        s.headers[0].name = "bad name".into();
        assert!(assemble(&s, "apps", &secrets()).is_err());
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let mut s = spec();
        s.tls.as_mut().unwrap().cert_secret_ref = Some(r("prom", "ca.crt"));
        assert!(matches!(
            assemble(&s, "apps", &secrets()),
            Err(EndpointError::Invalid { .. })
        ));
    }

    #[test]
    fn a_rotated_secret_is_a_different_cache_key() {
        let a = assemble(&spec(), "apps", &secrets()).unwrap();
        let mut rotated = secrets();
        if let Some(Some(data)) = rotated.get_mut("prom") {
            data.insert("password".into(), b"new".to_vec());
        }
        let b = assemble(&spec(), "apps", &rotated).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, assemble(&spec(), "apps", &secrets()).unwrap());
    }
}
