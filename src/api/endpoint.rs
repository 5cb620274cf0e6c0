//! How a CanaryAnalysis reaches its metric endpoint: TLS, authentication and
//! extra headers. Every secret is a reference to a key of a Secret in the
//! analysis' namespace — never inline — read by the operator at query time
//! (named after Prometheus Operator's SafeTLSConfig / SecretKeySelector).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the analysis' namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The key in the Secret's `data`.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// TLS towards the endpoint (an `https://` URL).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTls {
    /// PEM CA bundle to verify the server with. Default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// PEM client certificate (chain), with `keySecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeyRef>,
    /// PEM private key of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
    /// Verify the server's certificate for this name instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Do not verify the server's certificate at all (sets the analysis'
    /// `InsecureEndpoint` condition). For tests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.username) && has(self.usernameSecretRef))", "message": "set at most one of username and usernameSecretRef"}
]))]
pub struct BasicAuth {
    /// The user name, when it is not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user name, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretKeyRef>,
    /// The password, from a Secret.
    pub password_secret_ref: SecretKeyRef,
}

/// An extra request header, e.g. `X-Scope-OrgID` for Mimir/Cortex tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.valueSecretRef)", "message": "set exactly one of value and valueSecretRef"}
]))]
pub struct EndpointHeader {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_secret_ref: Option<SecretKeyRef>,
}
