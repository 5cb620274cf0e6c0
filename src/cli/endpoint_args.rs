//! The metric endpoint flags shared by `redblack controller` and `redblack
//! analysis`: the allow-list, the default endpoint's TLS/auth/headers, and
//! per-endpoint concurrency and timeout. See docs/canary-analysis.md.

use std::path::PathBuf;
use std::time::Duration;

use crate::analysis::allow::AllowListError;
use crate::analysis::controller::AnalysisControllerConfig;
use crate::analysis::endpoint::DefaultEndpoint;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointArgs {
    /// A URL prefix (`scheme://host[:port][/path]`) analyses may query;
    /// repeat or comma-separate. Compared parsed: host case, default ports,
    /// `..` and whole path segments (docs/canary-analysis.md). The
    /// `--prometheus-url` endpoint is always allowed; with neither, every
    /// analysis endpoint is refused.
    #[arg(
        long = "allowed-metric-endpoint",
        env = "REDBLACK_ALLOWED_METRIC_ENDPOINTS",
        value_delimiter = ','
    )]
    pub allowed: Vec<String>,
    /// A regex the whole normalised analysis URL may match instead (anchored).
    #[arg(
        long = "allowed-metric-endpoint-regex",
        env = "REDBLACK_ALLOWED_METRIC_ENDPOINT_REGEX"
    )]
    pub allowed_regex: Option<String>,
    /// Requests in flight at once per metric endpoint.
    #[arg(long, default_value_t = crate::analysis::prometheus::DEFAULT_CONCURRENCY)]
    pub metric_endpoint_concurrency: usize,
    /// Timeout of one metric query (client side, and sent as Prometheus' `timeout`), e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub metric_query_timeout: Duration,
    /// The default endpoint's PEM CA bundle (default: the system's roots).
    #[arg(long)]
    pub prometheus_ca_file: Option<PathBuf>,
    /// The default endpoint's PEM client certificate (with --prometheus-key-file).
    #[arg(long, requires = "prometheus_key_file")]
    pub prometheus_cert_file: Option<PathBuf>,
    /// The default endpoint's PEM client key.
    #[arg(long, requires = "prometheus_cert_file")]
    pub prometheus_key_file: Option<PathBuf>,
    /// Verify the default endpoint's certificate for this name.
    #[arg(long)]
    pub prometheus_server_name: Option<String>,
    /// Do not verify the default endpoint's certificate (tests only).
    #[arg(long)]
    pub prometheus_insecure_skip_verify: bool,
    /// Basic auth user of the default endpoint (with --prometheus-basic-auth-password-file).
    #[arg(long)]
    pub prometheus_basic_auth_username: Option<String>,
    /// File holding the default endpoint's basic auth password (read at query time).
    #[arg(long, conflicts_with = "prometheus_bearer_token_file")]
    pub prometheus_basic_auth_password_file: Option<PathBuf>,
    /// File holding the default endpoint's bearer token (read at query time:
    /// projected tokens rotate).
    #[arg(long)]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// An extra header for the default endpoint, `Name: value`; repeatable.
    #[arg(long = "prometheus-header", value_parser = parse_header)]
    pub prometheus_headers: Vec<(String, String)>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    redblack_duration::parse(s).map_err(|e| e.to_string())
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not `Name: value`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

impl EndpointArgs {
    /// Writes these settings into `cfg`; an invalid allow-list fails here, at startup.
    pub fn apply(&self, cfg: &mut AnalysisControllerConfig) -> Result<(), AllowListError> {
        cfg.allowed_endpoints = self.allowed.clone();
        cfg.allowed_endpoint_regex = self.allowed_regex.clone().filter(|r| !r.is_empty());
        cfg.endpoint_concurrency = self.metric_endpoint_concurrency.max(1);
        cfg.query_timeout = self.metric_query_timeout.max(Duration::from_millis(100));
        cfg.default_endpoint = DefaultEndpoint {
            url: String::new(),
            ca_file: self.prometheus_ca_file.clone(),
            cert_file: self.prometheus_cert_file.clone(),
            key_file: self.prometheus_key_file.clone(),
            server_name: self.prometheus_server_name.clone(),
            insecure_skip_verify: self.prometheus_insecure_skip_verify,
            basic_auth_username: self.prometheus_basic_auth_username.clone(),
            basic_auth_password_file: self.prometheus_basic_auth_password_file.clone(),
            bearer_token_file: self.prometheus_bearer_token_file.clone(),
            headers: self.prometheus_headers.clone(),
        };
        let list = cfg.allow_list()?;
        if list.is_empty() {
            tracing::warn!(
                "no metric endpoint is allowed (neither --prometheus-url nor --allowed-metric-endpoint): every CanaryAnalysis will end in Error"
            );
        } else {
            tracing::info!(allowed = ?list.prefixes().collect::<Vec<_>>(), regex = ?cfg.allowed_endpoint_regex, "metric endpoint allow-list");
        }
        Ok(())
    }
}
