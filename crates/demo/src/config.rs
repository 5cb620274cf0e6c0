//! Demo app configuration, read from the environment of its (simulated) pod.

use std::time::Duration;

/// Environment variable names, in one place so errors and docs agree.
pub const ENV_PORT: &str = "PORT";
pub const ENV_HOST: &str = "DEMO_HOST";
pub const ENV_VERSION: &str = "DEMO_VERSION";
pub const ENV_ERROR_RATE: &str = "DEMO_ERROR_RATE";
pub const ENV_LATENCY_MS: &str = "DEMO_LATENCY_MS";
pub const ENV_TAIL_LATENCY_MS: &str = "DEMO_TAIL_LATENCY_MS";
pub const ENV_TAIL_FRACTION: &str = "DEMO_TAIL_FRACTION";
pub const ENV_READY_AFTER: &str = "DEMO_READY_AFTER";
pub const ENV_FAIL_AT_START: &str = "DEMO_FAIL_AT_START";
pub const ENV_IGNORE_SIGTERM: &str = "DEMO_IGNORE_SIGTERM";
pub const ENV_SHUTDOWN_TIMEOUT: &str = "DEMO_SHUTDOWN_TIMEOUT";
pub const ENV_SHUTDOWN_DELAY: &str = "DEMO_SHUTDOWN_DELAY";

/// A bad environment value; the message always names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}={value:?}: {expected}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// How the demo app behaves. Every field has an env var; see docs/demo-app.md.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoAppConfig {
    /// Address to listen on (`DEMO_HOST`, default 127.0.0.1).
    pub host: std::net::IpAddr,
    /// Port (`PORT`); 0 picks a free one, which is printed.
    pub port: u16,
    /// Reported in responses and in the `version` metric label (`DEMO_VERSION`).
    pub version: String,
    /// Fraction of `/` requests answered 500 (`DEMO_ERROR_RATE`, 0..=1).
    pub error_rate: f64,
    /// Mean added latency in ms for `/` (`DEMO_LATENCY_MS`).
    pub latency_ms: f64,
    /// Latency of the slow tail in ms (`DEMO_TAIL_LATENCY_MS`).
    pub tail_latency_ms: f64,
    /// Fraction of `/` requests in the slow tail (`DEMO_TAIL_FRACTION`, 0..=1).
    pub tail_fraction: f64,
    /// `/readyz` answers 503 until this long after start (`DEMO_READY_AFTER`).
    pub ready_after: Duration,
    /// Exit 1 at start, to simulate a crashing pod (`DEMO_FAIL_AT_START`).
    pub fail_at_start: bool,
    /// Keep serving through SIGTERM, like a process that does not handle it:
    /// only the kubelet's SIGKILL ends it (`DEMO_IGNORE_SIGTERM`).
    pub ignore_sigterm: bool,
    /// After SIGTERM or Ctrl-C, how long the app keeps accepting and serving
    /// (with `/readyz` 503) before it stops accepting (`DEMO_SHUTDOWN_DELAY`):
    /// a proxy may have chosen this pod just before it was deleted, and its
    /// request must still find a listener — the `preStop` sleep of a real
    /// deployment.
    pub shutdown_delay: Duration,
    /// Once the app stops accepting, how long in-flight requests may take to
    /// finish before it gives up on them and exits 1 (`DEMO_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
}

impl Default for DemoAppConfig {
    fn default() -> Self {
        Self {
            host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            port: 8080,
            version: "v1".to_owned(),
            error_rate: 0.0,
            latency_ms: 0.0,
            tail_latency_ms: 0.0,
            tail_fraction: 0.0,
            ready_after: Duration::ZERO,
            fail_at_start: false,
            ignore_sigterm: false,
            // Far longer than the sandbox's pick-to-connect gap, far shorter
            // than the default grace period.
            shutdown_delay: Duration::from_secs(1),
            // Kubernetes' default terminationGracePeriodSeconds.
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl DemoAppConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads from any lookup, so tests need not touch the process environment
    /// (which is shared between test threads).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            host: parse_or(get(ENV_HOST), ENV_HOST, "an IP address", d.host, |v| {
                v.parse().ok()
            })?,
            port: parse_or(
                get(ENV_PORT),
                ENV_PORT,
                "a port number 0..=65535",
                d.port,
                |v| v.parse().ok(),
            )?,
            version: get(ENV_VERSION).unwrap_or(d.version),
            error_rate: fraction(get(ENV_ERROR_RATE), ENV_ERROR_RATE)?,
            latency_ms: millis(get(ENV_LATENCY_MS), ENV_LATENCY_MS)?,
            tail_latency_ms: millis(get(ENV_TAIL_LATENCY_MS), ENV_TAIL_LATENCY_MS)?,
            tail_fraction: fraction(get(ENV_TAIL_FRACTION), ENV_TAIL_FRACTION)?,
            ready_after: parse_or(
                get(ENV_READY_AFTER),
                ENV_READY_AFTER,
                "a duration such as 5s, 500ms or 2m (a bare number means seconds)",
                d.ready_after,
                parse_duration,
            )?,
            fail_at_start: parse_or(
                get(ENV_FAIL_AT_START),
                ENV_FAIL_AT_START,
                "a boolean: 1/0, true/false, yes/no",
                false,
                parse_bool,
            )?,
            ignore_sigterm: parse_or(
                get(ENV_IGNORE_SIGTERM),
                ENV_IGNORE_SIGTERM,
                "a boolean: 1/0, true/false, yes/no",
                false,
                parse_bool,
            )?,
            shutdown_delay: parse_or(
                get(ENV_SHUTDOWN_DELAY),
                ENV_SHUTDOWN_DELAY,
                "a duration such as 1s, 500ms or 0 (a bare number means seconds)",
                d.shutdown_delay,
                parse_duration,
            )?,
            shutdown_timeout: parse_or(
                get(ENV_SHUTDOWN_TIMEOUT),
                ENV_SHUTDOWN_TIMEOUT,
                "a duration such as 30s, 500ms or 2m (a bare number means seconds)",
                d.shutdown_timeout,
                parse_duration,
            )?,
        })
    }
}

fn parse_or<T>(
    raw: Option<String>,
    var: &'static str,
    expected: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(value) => parse(&value).ok_or(ConfigError {
            var,
            value,
            expected,
        }),
    }
}

fn fraction(raw: Option<String>, var: &'static str) -> Result<f64, ConfigError> {
    parse_or(raw, var, "a number between 0 and 1", 0.0, |v| {
        v.parse::<f64>().ok().filter(|f| (0.0..=1.0).contains(f))
    })
}

fn millis(raw: Option<String>, var: &'static str) -> Result<f64, ConfigError> {
    // An hour is far beyond any useful demo latency; the cap keeps
    // `Duration::from_secs_f64` away from overflow.
    parse_or(raw, var, "milliseconds between 0 and 3600000", 0.0, |v| {
        v.parse::<f64>()
            .ok()
            .filter(|f| (0.0..=3_600_000.0).contains(f))
    })
}

/// redblack's one duration grammar (`5s`, `500ms`, `2m`), or a bare number of
/// seconds up to a day (environment variables are often written that way).
fn parse_duration(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && (0.0..=86_400.0).contains(&secs))
            .then(|| Duration::from_secs_f64(secs));
    }
    redblack_duration::parse(v).ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<DemoAppConfig, ConfigError> {
        DemoAppConfig::from_lookup(|k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_when_unset_or_empty() {
        assert_eq!(cfg(&[]), Ok(DemoAppConfig::default()));
        assert_eq!(cfg(&[(ENV_ERROR_RATE, "  ")]), Ok(DemoAppConfig::default()));
    }

    #[test]
    fn parses_every_variable() {
        let c = cfg(&[
            (ENV_PORT, "0"),
            (ENV_HOST, "0.0.0.0"),
            (ENV_VERSION, "v2"),
            (ENV_ERROR_RATE, "0.25"),
            (ENV_LATENCY_MS, "12.5"),
            (ENV_TAIL_LATENCY_MS, "400"),
            (ENV_TAIL_FRACTION, "0.1"),
            (ENV_READY_AFTER, "1500ms"),
            (ENV_FAIL_AT_START, "TRUE"),
            (ENV_IGNORE_SIGTERM, "yes"),
            (ENV_SHUTDOWN_TIMEOUT, "5s"),
            (ENV_SHUTDOWN_DELAY, "250ms"),
        ])
        .unwrap();
        assert_eq!(c.shutdown_delay, Duration::from_millis(250));
        assert!(c.ignore_sigterm);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(c.port, 0);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.version, "v2");
        assert_eq!(c.error_rate, 0.25);
        assert_eq!(c.latency_ms, 12.5);
        assert_eq!(c.tail_latency_ms, 400.0);
        assert_eq!(c.tail_fraction, 0.1);
        assert_eq!(c.ready_after, Duration::from_millis(1500));
        assert!(c.fail_at_start);
        assert_eq!(
            cfg(&[(ENV_READY_AFTER, "3")]).unwrap().ready_after,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn rejects_bad_values_naming_the_variable() {
        for (var, value) in [
            (ENV_PORT, "70000"),
            (ENV_PORT, "http"),
            (ENV_HOST, "localhost:1"),
            (ENV_ERROR_RATE, "1.5"),
            (ENV_ERROR_RATE, "NaN"),
            (ENV_ERROR_RATE, "-0.1"),
            (ENV_LATENCY_MS, "-5"),
            (ENV_LATENCY_MS, "inf"),
            (ENV_TAIL_LATENCY_MS, "slow"),
            (ENV_TAIL_FRACTION, "2"),
            (ENV_READY_AFTER, "soon"),
            (ENV_READY_AFTER, "1.5s"),
            (ENV_READY_AFTER, "2 min"),
            (ENV_READY_AFTER, "-1"),
            (ENV_FAIL_AT_START, "maybe"),
            (ENV_IGNORE_SIGTERM, "sometimes"),
            (ENV_SHUTDOWN_TIMEOUT, "later"),
            (ENV_SHUTDOWN_DELAY, "-1"),
        ] {
            let err = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            let msg = err.to_string();
            assert!(msg.contains(var) && msg.contains(value), "{msg}");
        }
    }
}
