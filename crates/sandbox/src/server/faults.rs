//! Fault injection: errors, timeouts, latency and cut watches on chosen requests,
//! so reliability tests can check that clients retry and resume correctly.
//!
//! The file (`--faults`) and `PUT /sandbox/faults` take the same document:
//!
//! ```yaml
//! rules:
//! - verb: list            # get, list, watch, create, update, patch, delete, deletecollection
//!   resource: configmaps  # or replicasets/scale; omit for all
//!   probability: 0.2      # default 1
//!   action: {type: error, code: 500}   # or {type: timeout}, {type: latency, millis: 300}
//! watchCutAfter: 30s      # end every watch stream after this long
//! ```
//!
//! An error with code 410 on a `watch` is answered as the API server's watch
//! cache answers a resourceVersion that is too old: HTTP 200 and one ERROR
//! event carrying a 410 `Expired` Status. Clients (kube-runtime's watcher,
//! client-go's reflector) relist on that event; a bare HTTP 410 on the watch
//! request is not what servers send, and kube-runtime would retry the same
//! resourceVersion forever.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::errors::ApiError;

/// Longest a `Timeout` fault holds a request before answering 504.
const TIMEOUT_CAP: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// Every watch stream is ended after this long (the client must resume).
    #[serde(default, with = "humantime_serde_opt")]
    pub watch_cut_after: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// get, list, watch, create, update, patch, delete, deletecollection; None = all.
    #[serde(default)]
    pub verb: Option<String>,
    /// A plural (`configmaps`) or `plural/subresource`; None = all.
    #[serde(default)]
    pub resource: Option<String>,
    /// Chance in 0..=1 that a matching request is hit.
    #[serde(default = "one")]
    pub probability: f64,
    pub action: FaultAction,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum FaultAction {
    /// Answer with this status code (500, 409, 429 with Retry-After, 410 on a
    /// watch: an expired resourceVersion, ...).
    Error { code: u16 },
    /// Hold the request (up to 60 s) and then answer 504.
    Timeout,
    /// Delay the request, then serve it normally.
    Latency { millis: u64 },
}

/// `watchCutAfter: "500ms"` in files, as humans write durations.
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        raw.map(|r| humantime::parse_duration(&r).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl FaultRule {
    fn applies(&self, verb: &str, resource: &str) -> bool {
        let plural = resource.split('/').next().unwrap_or(resource);
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self
                .resource
                .as_deref()
                .is_none_or(|r| r == resource || r == plural)
    }
}

/// What the middleware must do to a request.
pub enum Injected {
    Fail(ApiError),
    Delay(Duration),
}

impl Injected {
    /// How the request counters name this fault: the status code of an
    /// error, `timeout` or `latency`.
    pub fn kind(&self) -> String {
        match self {
            Injected::Fail(e) => e.code.to_string(),
            Injected::Delay(d) if Faults::is_timeout(*d) => "timeout".to_owned(),
            Injected::Delay(_) => "latency".to_owned(),
        }
    }
}

/// The live fault configuration, swapped at runtime.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<RwLock<FaultConfig>>,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            inner: Arc::new(RwLock::new(config)),
        }
    }

    pub fn set(&self, config: FaultConfig) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn get(&self) -> FaultConfig {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn watch_cut_after(&self) -> Option<Duration> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .watch_cut_after
    }

    /// Rolls the dice for every matching rule, first hit wins.
    pub fn decide(&self, verb: &str, resource: &str) -> Option<Injected> {
        let config = self.inner.read().unwrap_or_else(|e| e.into_inner());
        for rule in config.rules.iter().filter(|r| r.applies(verb, resource)) {
            // YAML can spell NaN; rand panics on it, so it counts as "never".
            let p = if rule.probability.is_nan() {
                0.0
            } else {
                rule.probability.clamp(0.0, 1.0)
            };
            if !rand::random_bool(p) {
                continue;
            }
            return Some(match &rule.action {
                FaultAction::Error { code } => Injected::Fail(error_for(*code)),
                FaultAction::Timeout => Injected::Delay(TIMEOUT_CAP),
                FaultAction::Latency { millis } => Injected::Delay(Duration::from_millis(*millis)),
            });
        }
        None
    }

    /// Whether a held (`Timeout`) request must end with 504 rather than be served.
    pub fn is_timeout(delay: Duration) -> bool {
        delay >= TIMEOUT_CAP
    }
}

fn error_for(code: u16) -> ApiError {
    let (reason, message) = match code {
        400 => ("BadRequest", "injected fault: bad request"),
        403 => ("Forbidden", "injected fault: forbidden"),
        409 => ("Conflict", "injected fault: conflict"),
        410 => ("Expired", "injected fault: too old resource version"),
        422 => ("Invalid", "injected fault: invalid"),
        429 => ("TooManyRequests", "injected fault: too many requests"),
        500 => ("InternalError", "injected fault: internal error"),
        503 => ("ServiceUnavailable", "injected fault: service unavailable"),
        504 => ("Timeout", "injected fault: timeout"),
        _ => ("InternalError", "injected fault"),
    };
    let mut err = ApiError::new(code, reason, message);
    if code == 429 {
        err.retry_after = Some(1);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_camel_case_yaml_and_matches_rules() {
        let cfg: FaultConfig = serde_yaml::from_str(
            "rules:\n- verb: list\n  resource: configmaps\n  probability: 1.0\n  action: {type: error, code: 429}\nwatchCutAfter: 500ms\n",
        )
        .unwrap();
        assert_eq!(cfg.watch_cut_after, Some(Duration::from_millis(500)));
        let faults = Faults::new(cfg);
        match faults.decide("list", "configmaps") {
            Some(Injected::Fail(e)) => {
                assert_eq!(e.code, 429);
                assert_eq!(e.retry_after, Some(1));
            }
            _ => panic!("expected an injected error"),
        }
        assert!(faults.decide("get", "configmaps").is_none());
        assert!(faults.decide("list", "pods").is_none());
        faults.set(FaultConfig::default());
        assert!(faults.decide("list", "configmaps").is_none());
    }

    #[test]
    fn zero_probability_never_fires() {
        let faults = Faults::new(FaultConfig {
            rules: vec![FaultRule {
                verb: None,
                resource: None,
                probability: 0.0,
                action: FaultAction::Latency { millis: 1 },
            }],
            watch_cut_after: None,
        });
        assert!((0..100).all(|_| faults.decide("get", "pods").is_none()));
    }
}
