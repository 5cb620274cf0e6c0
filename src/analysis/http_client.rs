//! The HTTP client of one metric endpoint, built from its [`EndpointConfig`]:
//! our own rustls `ClientConfig` (the ring provider, as kube's) with the
//! endpoint's CA or the system's roots, a client certificate, a server name
//! override; credentials and headers as default headers, marked sensitive.
//!
//! Redirects are not followed: a redirect could lead the operator to an
//! endpoint the allow-list refuses.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::endpoint::{Auth, EndpointConfig};

/// Why no client could be built (bad PEM, bad header…). Names the part, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// A client for `endpoint` whose every request times out after `timeout`.
pub fn build(endpoint: &EndpointConfig, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let tls = tls_config(endpoint)?;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers(endpoint)?)
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| ClientError(format!("cannot build the HTTP client: {e}")))
}

fn headers(endpoint: &EndpointConfig) -> Result<HeaderMap, ClientError> {
    let mut map = HeaderMap::new();
    let sensitive = |text: String, what: &str| -> Result<HeaderValue, ClientError> {
        let mut v = HeaderValue::from_str(&text)
            .map_err(|_| ClientError(format!("{what} is not a valid header value")))?;
        v.set_sensitive(true);
        Ok(v)
    };
    match &endpoint.auth {
        Auth::None => {}
        Auth::Basic { username, password } => {
            use base64::Engine as _;
            let raw = format!("{username}:{}", password.text());
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            map.insert(
                http::header::AUTHORIZATION,
                sensitive(format!("Basic {encoded}"), "the basic auth credential")?,
            );
        }
        Auth::Bearer(token) => {
            map.insert(
                http::header::AUTHORIZATION,
                sensitive(format!("Bearer {}", token.text()), "the bearer token")?,
            );
        }
    }
    for (name, value) in &endpoint.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ClientError(format!("header {name:?}: not a valid name")))?;
        let mut v = HeaderValue::from_bytes(&value.0)
            .map_err(|_| ClientError(format!("header {name}: not a valid value")))?;
        v.set_sensitive(true);
        map.append(name, v);
    }
    Ok(map)
}

fn tls_config(endpoint: &EndpointConfig) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = &endpoint.tls;
    let mut roots = RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(&pem.0)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError(format!("tls CA bundle: not PEM certificates ({e})")))?;
            if certs.is_empty() {
                return Err(ClientError(
                    "tls CA bundle: no PEM certificate in it".into(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ClientError(format!("tls CA bundle: {e}")))?;
            }
        }
        None if endpoint.url.starts_with("https:") && !tls.insecure_skip_verify => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
        // Plain http: no roots needed (the config is required but unused).
        None => {}
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError(format!("tls: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(FixedCertVerdict {
            provider: provider.clone(),
            accept: true,
        })
    } else if roots.is_empty() {
        // An https endpoint without any root (no CA given, none on the
        // system): every handshake fails, with rustls' own message.
        Arc::new(FixedCertVerdict {
            provider: provider.clone(),
            accept: false,
        })
    } else {
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| ClientError(format!("tls: {e}")))?;
        match &tls.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|_| {
                    ClientError(format!("tls serverName {name:?} is not a DNS name or IP"))
                })?;
                Arc::new(Renamed {
                    inner: webpki,
                    name,
                })
            }
            None => webpki,
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert_pem, &tls.key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&cert.0)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError(format!("tls client certificate: not PEM ({e})")))?;
            let key = PrivateKeyDer::from_pem_slice(&key.0)
                .map_err(|e| ClientError(format!("tls client key: not a PEM private key ({e})")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError(format!("tls client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Verifies the server's certificate for a configured name (`serverName`)
/// instead of the URL's host; everything else is webpki's.
#[derive(Debug)]
struct Renamed {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Renamed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A fixed answer on the server certificate: `accept` for
/// `insecureSkipVerify` (any certificate), refuse for a configuration with no
/// trust anchor at all. The handshake's signatures are still checked, so the
/// peer holds the key it presents.
#[derive(Debug)]
struct FixedCertVerdict {
    provider: Arc<CryptoProvider>,
    accept: bool,
}

impl ServerCertVerifier for FixedCertVerdict {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.accept {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
