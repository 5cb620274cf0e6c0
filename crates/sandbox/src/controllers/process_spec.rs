//! What a demo-app container asks for, read from the pod spec: which image, which
//! environment, which readiness probe. Pure, so every way a template can be wrong
//! is tested without starting anything.
//!
//! Image convention: `redblack/demo-app:<tag>` (optionally behind a registry host,
//! e.g. `ghcr.io/redblack/demo-app:v2`, and/or with an `@sha256:` digest). The tag
//! is the version: it becomes `DEMO_VERSION` unless the container's env sets one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use redblack_demo::DemoAppConfig;
use redblack_demo::config::{ENV_HOST, ENV_PORT, ENV_VERSION};

/// The repository that marks a container as "run the demo app as a process".
pub const DEMO_APP_REPOSITORY: &str = "redblack/demo-app";

/// Why a demo-app container cannot be started; shown as the container's
/// `waiting` state (`reason`, `message`), as a kubelet would.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    InvalidImageName(String),
    #[error("{0}")]
    CreateContainerConfigError(String),
    #[error("{0}")]
    RunContainerError(String),
}

impl SpecError {
    /// The kubelet's reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecError::InvalidImageName(_) => "InvalidImageName",
            SpecError::CreateContainerConfigError(_) => "CreateContainerConfigError",
            SpecError::RunContainerError(_) => "RunContainerError",
        }
    }
}

/// Is `image` of `repository` (optionally behind a registry host, with or
/// without a digest)? `Ok(None)`: another image; `Ok(Some(None))`: no tag;
/// `Err`: a tag that is not valid.
pub fn repository_tag(image: &str, repository: &str) -> Result<Option<Option<String>>, SpecError> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match without_digest[last_slash..].find(':') {
        Some(i) => (
            &without_digest[..last_slash + i],
            Some(&without_digest[last_slash + i + 1..]),
        ),
        None => (without_digest, None),
    };
    let matches = name == repository
        || name
            .strip_suffix(repository)
            .is_some_and(|host| host.ends_with('/'));
    if !matches {
        return Ok(None);
    }
    match tag {
        Some(tag) if valid_tag(tag) => Ok(Some(Some(tag.to_string()))),
        Some(tag) => Err(SpecError::InvalidImageName(format!(
            "image {image:?}: tag {tag:?} is not a valid tag (letters, digits, '_', '.', '-'; at most 128)"
        ))),
        None => Ok(Some(None)),
    }
}

/// Is `image` the demo app? `Ok(Some(tag))` if so, `Ok(None)` for any other image,
/// `Err` for the demo app's repository without a usable tag.
pub fn demo_app_tag(image: &str) -> Result<Option<String>, SpecError> {
    match repository_tag(image, DEMO_APP_REPOSITORY)? {
        None => Ok(None),
        Some(Some(tag)) => Ok(Some(tag)),
        // Kubernetes would pull `:latest`; the sandbox has no registry, and the
        // tag is the demo's version, so it insists on one.
        Some(None) => Err(SpecError::InvalidImageName(format!(
            "image {image:?} has no tag: the sandbox runs {DEMO_APP_REPOSITORY}:<tag>, \
             where the tag is the version (e.g. {DEMO_APP_REPOSITORY}:v1)"
        ))),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The container's `env`, with the demo's version defaulted from the tag.
/// `valueFrom`/`envFrom` are refused: the sandbox resolves no references.
pub fn container_env(container: &Value, tag: &str) -> Result<BTreeMap<String, String>, SpecError> {
    if container.get("envFrom").is_some_and(|v| !v.is_null()) {
        return Err(SpecError::CreateContainerConfigError(
            "envFrom is not supported by the sandbox: set env values inline".into(),
        ));
    }
    let mut env = BTreeMap::new();
    for entry in container
        .get("env")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            return Err(SpecError::CreateContainerConfigError(
                "an env entry has no name".into(),
            ));
        };
        if entry.get("valueFrom").is_some_and(|v| !v.is_null()) {
            return Err(SpecError::CreateContainerConfigError(format!(
                "env {name}: valueFrom is not supported by the sandbox: set the value inline"
            )));
        }
        let value = match entry.get("value") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(SpecError::CreateContainerConfigError(format!(
                    "env {name}: value must be a string, got {other}"
                )));
            }
        };
        env.insert(name.to_string(), value);
    }
    env.entry(ENV_VERSION.to_string())
        .or_insert_with(|| tag.to_string());
    Ok(env)
}

/// The environment the process gets: the container's, with `PORT` and
/// `DEMO_HOST` forced (every pod shares 127.0.0.1, so the sandbox picks the port,
/// and nothing may listen beyond loopback). Validated the way the app will read
/// it, so a bad value shows as `CreateContainerConfigError` instead of a crash loop.
pub fn process_env(
    container_env: &BTreeMap<String, String>,
    port: u16,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut env = container_env.clone();
    env.insert(ENV_PORT.into(), port.to_string());
    env.insert(ENV_HOST.into(), "127.0.0.1".into());
    DemoAppConfig::from_lookup(|k| env.get(k).cloned())
        .map_err(|e| SpecError::CreateContainerConfigError(e.to_string()))?;
    Ok(env)
}

/// A readiness or liveness probe, with the Kubernetes defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// `httpGet.path`; `None` for a `tcpSocket` probe (ready when listening).
    pub http_path: Option<String>,
    /// `httpGet.port` / `tcpSocket.port` as written (a number or a port name);
    /// the demo app serves everything on its one port and ignores it.
    pub port: Option<Value>,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The readiness probe is the first kind of probe the sandbox ran.
pub type ReadinessProbe = Probe;

fn seconds(
    probe: &Value,
    kind: &str,
    field: &str,
    default: u64,
    min: u64,
) -> Result<Duration, SpecError> {
    match probe.get(field) {
        None | Some(Value::Null) => Ok(Duration::from_secs(default)),
        Some(v) => match v.as_u64() {
            Some(n) if n >= min => Ok(Duration::from_secs(n)),
            _ => Err(SpecError::CreateContainerConfigError(format!(
                "{kind}.{field}={v}: must be an integer >= {min}"
            ))),
        },
    }
}

/// Reads `readinessProbe`. `Ok(None)`: no probe, so the container is Ready as
/// soon as the process listens. `exec` probes cannot run here and are refused.
pub fn readiness_probe(container: &Value) -> Result<Option<Probe>, SpecError> {
    probe(container, "readinessProbe")
}

/// Reads `livenessProbe` (the same rules as `readiness_probe`).
pub fn liveness_probe(container: &Value) -> Result<Option<Probe>, SpecError> {
    probe(container, "livenessProbe")
}

fn probe(container: &Value, kind: &str) -> Result<Option<Probe>, SpecError> {
    let Some(probe) = container.get(kind).filter(|p| !p.is_null()) else {
        return Ok(None);
    };
    let (http_path, port) = if let Some(http) = probe.get("httpGet") {
        let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
        // The path goes into a request line: nothing that could split it.
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SpecError::CreateContainerConfigError(format!(
                "{kind}.httpGet.path {path:?} must start with '/' and contain no spaces"
            )));
        }
        if http
            .get("scheme")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
        {
            return Err(SpecError::CreateContainerConfigError(format!(
                "{kind}.httpGet.scheme: the sandbox probes plain HTTP only"
            )));
        }
        (Some(path.to_string()), http.get("port").cloned())
    } else if let Some(tcp) = probe.get("tcpSocket") {
        (None, tcp.get("port").cloned())
    } else {
        return Err(SpecError::CreateContainerConfigError(format!(
            "{kind}: only httpGet and tcpSocket probes run in the sandbox"
        )));
    };
    let count = |field: &str, default: u64| -> Result<u32, SpecError> {
        let d = seconds(probe, kind, field, default, 1)?;
        Ok(u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    };
    Ok(Some(Probe {
        http_path,
        port,
        initial_delay: seconds(probe, kind, "initialDelaySeconds", 0, 0)?,
        period: seconds(probe, kind, "periodSeconds", 10, 1)?,
        timeout: seconds(probe, kind, "timeoutSeconds", 1, 1)?,
        success_threshold: count("successThreshold", 1)?,
        failure_threshold: count("failureThreshold", 3)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_convention() {
        assert_eq!(
            demo_app_tag("redblack/demo-app:v1"),
            Ok(Some("v1".to_string()))
        );
        assert_eq!(
            demo_app_tag("ghcr.io:443/redblack/demo-app:2.0-rc.1@sha256:abc"),
            Ok(Some("2.0-rc.1".to_string()))
        );
        assert_eq!(demo_app_tag("nginx:1.27"), Ok(None));
        assert_eq!(demo_app_tag("notredblack/demo-app:v1"), Ok(None));
        assert_eq!(demo_app_tag("redblack/demo-app-extra:v1"), Ok(None));
        for bad in [
            "redblack/demo-app",
            "redblack/demo-app:",
            "redblack/demo-app:-x",
        ] {
            let err = demo_app_tag(bad).unwrap_err();
            assert_eq!(err.reason(), "InvalidImageName");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn env_defaults_the_version_and_refuses_references() {
        let c = json!({"env": [{"name": "DEMO_ERROR_RATE", "value": "0.1"}, {"name": "EMPTY"}]});
        let env = container_env(&c, "v7").unwrap();
        assert_eq!(env["DEMO_VERSION"], "v7");
        assert_eq!(env["EMPTY"], "");
        let c = json!({"env": [{"name": "DEMO_VERSION", "value": "blue"}]});
        assert_eq!(container_env(&c, "v7").unwrap()["DEMO_VERSION"], "blue");
        let c = json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {}}}]});
        assert!(
            container_env(&c, "v1")
                .unwrap_err()
                .to_string()
                .contains("X")
        );
        assert!(container_env(&json!({"envFrom": [{}]}), "v1").is_err());
    }

    #[test]
    fn process_env_forces_port_and_host_and_validates() {
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "8080".to_string());
        env.insert("DEMO_HOST".to_string(), "0.0.0.0".to_string());
        let out = process_env(&env, 41000).unwrap();
        assert_eq!(out["PORT"], "41000");
        assert_eq!(out["DEMO_HOST"], "127.0.0.1");
        env.insert("DEMO_ERROR_RATE".to_string(), "lots".to_string());
        let err = process_env(&env, 41000).unwrap_err();
        assert_eq!(err.reason(), "CreateContainerConfigError");
        assert!(err.to_string().contains("DEMO_ERROR_RATE"), "{err}");
    }

    #[test]
    fn probes() {
        assert_eq!(readiness_probe(&json!({})), Ok(None));
        let p = readiness_probe(&json!({"readinessProbe": {
            "httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}}))
        .unwrap()
        .unwrap();
        assert_eq!(p.http_path.as_deref(), Some("/readyz"));
        assert_eq!(p.period, Duration::from_secs(1));
        assert_eq!(p.failure_threshold, 3);
        assert_eq!(p.timeout, Duration::from_secs(1));
        let tcp = readiness_probe(&json!({"readinessProbe": {"tcpSocket": {"port": 80}}}))
            .unwrap()
            .unwrap();
        assert_eq!(tcp.http_path, None);
        assert_eq!(tcp.port, Some(json!(80)));
        let live = liveness_probe(&json!({"livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"}, "failureThreshold": 2}}))
        .unwrap()
        .unwrap();
        assert_eq!(live.port, Some(json!("health")));
        assert_eq!(live.failure_threshold, 2);
        let err = liveness_probe(&json!({"livenessProbe": {"exec": {}}})).unwrap_err();
        assert!(err.to_string().starts_with("livenessProbe"), "{err}");
        for bad in [
            json!({"readinessProbe": {"exec": {"command": ["true"]}}}),
            json!({"readinessProbe": {"httpGet": {"path": "/a b"}}}),
            json!({"readinessProbe": {"httpGet": {"path": "/", "scheme": "HTTPS"}}}),
            json!({"readinessProbe": {"httpGet": {"path": "/"}, "periodSeconds": 0}}),
        ] {
            assert!(readiness_probe(&bad).is_err(), "{bad}");
        }
    }
}
