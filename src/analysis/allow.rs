//! The operator's allow-list of metric endpoints: which URLs a CanaryAnalysis
//! may make the operator query. Without it, anyone allowed to create an
//! analysis could make the operator — with its network position — send
//! requests anywhere (cloud metadata, internal services).
//!
//! Pure: [`AllowList::check`] decides before any request is built.
//!
//! Matching (docs/canary-analysis.md, "Allowed endpoints"):
//! * Both the allowed prefix and the analysis URL are parsed (WHATWG URL
//!   rules, the `url` crate): the host is lower-cased, IPv4 forms such as
//!   `2130706433` normalised, IPv6 compressed, the scheme's default port made
//!   explicit, `.` and `..` path segments resolved.
//! * A URL matches a prefix when scheme, host and port are equal and the
//!   prefix's path segments are the first segments of the URL's path
//!   (whole segments: `/prom` allows `/prom/x`, not `/prometheus`; empty
//!   segments — trailing or doubled slashes — are ignored).
//! * Or, when a regex is configured, when it matches the whole normalised
//!   URL (`Url::as_str()`, e.g. `http://prom:9090/`; the default port is
//!   omitted there, as in the WHATWG serialisation).
//! * Refused whatever the list says: schemes other than http/https, URLs
//!   with user info (credentials belong in `basicAuth` Secrets, and
//!   `http://allowed@evil` is a classic disguise), query strings or fragments.
//! * The operator's default endpoint (`--prometheus-url`) is always allowed;
//!   with neither a default nor a list, every analysis URL is refused.

use regex::Regex;
use url::Url;

/// Where the admin allows endpoints: named in refusals so users know whom to ask.
pub const ALLOW_FLAG: &str = "--allowed-metric-endpoint";
pub const ALLOW_REGEX_FLAG: &str = "--allowed-metric-endpoint-regex";
pub const ALLOW_HELM_VALUE: &str = "prometheus.allowedEndpoints";

/// One allowed `scheme://host[:port][/path-prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPrefix {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: Vec<String>,
    text: String,
}

/// A configuration mistake of the admin (the operator refuses to start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    #[error("allowed metric endpoint {0:?} is not an http(s) URL prefix: {1}")]
    Prefix(String, String),
    #[error("allowed metric endpoint regex {0:?} is invalid: {1}")]
    Regex(String, String),
}

/// Why an analysis' endpoint is not queried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("metric endpoint {url:?} is not a valid URL: {message}")]
    Invalid { url: String, message: String },
    #[error("metric endpoint {url} is refused: only http and https are allowed")]
    Scheme { url: String },
    #[error(
        "metric endpoint {url} is refused: credentials in the URL are not allowed (use spec.prometheus.basicAuth with a Secret)"
    )]
    UserInfo { url: String },
    #[error("metric endpoint {url} is refused: a query string or fragment is not allowed")]
    QueryOrFragment { url: String },
    #[error(
        "metric endpoint {url} is not allowed by the operator: ask the cluster admin to allow it ({ALLOW_FLAG} / Helm value {ALLOW_HELM_VALUE})"
    )]
    NotAllowed { url: String },
}

impl Refusal {
    /// The reason of the analysis' Error.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotAllowed { .. } => "EndpointNotAllowed",
            _ => "InvalidEndpoint",
        }
    }
}

impl EndpointPrefix {
    pub fn parse(text: &str) -> Result<Self, AllowListError> {
        let bad = |m: &str| AllowListError::Prefix(text.to_owned(), m.to_owned());
        let url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("user info is not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query string or fragment is not allowed"));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
        Ok(EndpointPrefix {
            scheme: url.scheme().to_owned(),
            host,
            port: url.port_or_known_default(),
            path: segments(&url),
            text: text.trim().to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, url: &Url) -> bool {
        let path = segments(url);
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
            && path.len() >= self.path.len()
            && path.iter().zip(&self.path).all(|(a, b)| a == b)
    }
}

/// The non-empty path segments (after `url` resolved `.` and `..`).
fn segments(url: &Url) -> Vec<String> {
    url.path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The allowed prefixes and regex, plus the operator's default endpoint.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    prefixes: Vec<EndpointPrefix>,
    regex: Option<Regex>,
}

impl AllowList {
    /// `default_url` (the operator's own endpoint) is always allowed.
    pub fn new(
        prefixes: &[String],
        regex: Option<&str>,
        default_url: Option<&str>,
    ) -> Result<Self, AllowListError> {
        let mut list = prefixes
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| EndpointPrefix::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(default) = default_url.filter(|d| !d.trim().is_empty()) {
            list.push(EndpointPrefix::parse(default)?);
        }
        let regex = match regex.filter(|r| !r.is_empty()) {
            Some(r) => Some(
                Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| AllowListError::Regex(r.to_owned(), e.to_string()))?,
            ),
            None => None,
        };
        Ok(AllowList {
            prefixes: list,
            regex,
        })
    }

    /// Allows nothing (and says so in every refusal).
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.regex.is_none()
    }

    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(EndpointPrefix::as_str)
    }

    /// The parsed URL when `raw` may be queried.
    pub fn check(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw.trim()).map_err(|e| Refusal::Invalid {
            url: raw.chars().take(200).collect(),
            message: e.to_string(),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            return Err(Refusal::UserInfo {
                url: shown.to_string(),
            });
        }
        let shown = url.to_string();
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Refusal::Scheme { url: shown });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Refusal::QueryOrFragment { url: shown });
        }
        let allowed = self.prefixes.iter().any(|p| p.matches(&url))
            || self
                .regex
                .as_ref()
                .is_some_and(|r| r.is_match(url.as_str()));
        if allowed {
            Ok(url)
        } else {
            Err(Refusal::NotAllowed { url: shown })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(prefixes: &[&str]) -> AllowList {
        let owned: Vec<String> = prefixes.iter().map(|s| s.to_string()).collect();
        AllowList::new(&owned, None, None).unwrap()
    }

    #[test]
    fn prefixes_match_on_the_parsed_url() {
        // (allowed prefix, analysis URL, allowed?)
        let table = [
            ("http://prom", "http://prom", true),
            ("http://prom", "http://prom/", true),
            ("http://prom", "http://prom.evil", false),
            ("http://prom", "http://prom.evil/", false),
            ("http://prom", "http://evil/prom", false),
            // case of scheme and host
            ("http://Prom.Monitoring", "HTTP://PROM.monitoring/", true),
            // default ports, explicit or not
            ("http://prom", "http://prom:80", true),
            ("http://prom:80", "http://prom", true),
            ("https://prom", "https://prom:443/api", true),
            ("http://prom", "http://prom:9090", false),
            ("http://prom:9090", "http://prom:9091", false),
            ("http://prom", "https://prom", false),
            // trailing slashes and path prefixes, on whole segments
            ("http://prom/", "http://prom", true),
            ("http://prom/prometheus", "http://prom/prometheus/", true),
            ("http://prom/prometheus/", "http://prom/prometheus", true),
            ("http://prom/prom", "http://prom/prometheus", false),
            ("http://prom/a/b", "http://prom/a/b/c", true),
            ("http://prom/a/b", "http://prom/a", false),
            // `..` is resolved before matching
            (
                "http://prom/tenant-a",
                "http://prom/tenant-a/../tenant-b",
                false,
            ),
            (
                "http://prom/tenant-a",
                "http://prom/tenant-a/%2e%2e/tenant-b",
                false,
            ),
            (
                "http://prom/tenant-a",
                "http://prom/x/../tenant-a/api",
                true,
            ),
            // user info disguises the host
            ("http://prom", "http://prom@evil", false),
            ("http://prom", "http://user:pw@prom", false),
            // IPv6 and IPv4 forms
            ("http://[::1]:9090", "http://[0:0:0:0:0:0:0:1]:9090", true),
            ("http://[::1]:9090", "http://[::2]:9090", false),
            ("http://127.0.0.1:9090", "http://2130706433:9090", true),
            ("http://127.0.0.1:9090", "http://127.0.0.2:9090", false),
            // other schemes, queries
            ("http://prom", "file:///etc/passwd", false),
            ("http://prom", "http://prom/?x=1", false),
            ("http://prom", "http://prom/#f", false),
        ];
        for (prefix, url, allowed) in table {
            let got = list(&[prefix]).check(url);
            assert_eq!(got.is_ok(), allowed, "{prefix} vs {url}: {got:?}");
        }
    }

    #[test]
    fn the_default_endpoint_is_allowed_and_nothing_else() {
        let l = AllowList::new(&[], None, Some("http://prometheus:9090")).unwrap();
        assert!(l.check("http://prometheus:9090").is_ok());
        assert!(l.check("http://prometheus:9090/").is_ok());
        assert!(matches!(
            l.check("http://169.254.169.254/latest"),
            Err(Refusal::NotAllowed { .. })
        ));
    }

    #[test]
    fn an_empty_list_refuses_everything_with_how_to_allow() {
        let l = AllowList::new(&[], None, None).unwrap();
        assert!(l.is_empty());
        let err = l.check("http://prom:9090").unwrap_err();
        assert_eq!(err.reason(), "EndpointNotAllowed");
        let text = err.to_string();
        assert!(text.contains("http://prom:9090/"), "{text}");
        assert!(text.contains(ALLOW_FLAG), "{text}");
        assert!(text.contains(ALLOW_HELM_VALUE), "{text}");
    }

    #[test]
    fn a_regex_matches_the_whole_normalised_url() {
        let l = AllowList::new(&[], Some(r"https://[a-z-]+\.monitoring\.svc:9090/"), None).unwrap();
        assert!(l.check("https://prom-a.monitoring.svc:9090").is_ok());
        assert!(l.check("HTTPS://PROM-B.monitoring.svc:9090/").is_ok());
        // anchored: no prefix or suffix tricks
        assert!(l.check("https://prom-a.monitoring.svc:9090/x").is_err());
        assert!(l.check("https://prom-a.monitoring.svc.evil:9090/").is_err());
        assert!(l.check("http://prom-a.monitoring.svc:9090/").is_err());
    }

    #[test]
    fn user_info_is_not_echoed() {
        let err = list(&["http://prom"])
            .check("http://admin:hunter2@prom/")
            .unwrap_err();
        assert!(matches!(err, Refusal::UserInfo { .. }));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_configuration_is_refused() {
        for bad in [
            "prom:9090",
            "ftp://prom",
            "http://u:p@prom",
            "http://prom/?a=b",
        ] {
            assert!(EndpointPrefix::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowList::new(&[], Some("("), None).is_err());
    }
}
