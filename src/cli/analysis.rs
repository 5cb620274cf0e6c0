//! `redblack analysis`: runs the CanaryAnalysis controller alone (the
//! `controller` verb runs it together with the Rollout controller), until
//! SIGINT or SIGTERM, with the same shutdown grace as `controller`.

use std::path::PathBuf;
use std::time::Duration;

use super::CliResult;
use crate::analysis::controller::{AnalysisControllerConfig, run_analysis_controller};
use crate::runtime::shutdown::{self, SHUTDOWN_GRACE};
use crate::telemetry::{self, LogFormat};

#[derive(Debug, clap::Args)]
pub struct AnalysisArgs {
    /// Prometheus for analyses that do not name one in spec.prometheus.url.
    #[arg(long, env = "REDBLACK_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Watch one namespace only (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Timeout of one Prometheus request, in seconds.
    #[arg(long, default_value_t = 30)]
    pub query_timeout_seconds: u64,
    /// Attempts at reaching Prometheus (with backoff) before an analysis is put in phase Error.
    #[arg(long, default_value_t = 5)]
    pub max_source_attempts: u32,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl AnalysisArgs {
    pub fn config(&self) -> AnalysisControllerConfig {
        let mut cfg = AnalysisControllerConfig {
            default_prometheus_url: self.prometheus_url.clone(),
            namespace: self.namespace.clone(),
            query_timeout: Duration::from_secs(self.query_timeout_seconds.max(1)),
            ..AnalysisControllerConfig::default()
        };
        cfg.limits.max_source_attempts = self.max_source_attempts.max(1);
        cfg
    }
}

pub async fn run(args: AnalysisArgs) -> CliResult {
    telemetry::init(args.log_format);
    let (client, _) = crate::runtime::client::connect(args.kubeconfig.as_deref(), None).await?;
    let stop = shutdown::on_signal();
    let controller = run_analysis_controller(client, args.config(), stop.clone());
    // None: the grace ran out (logged); in-flight work is redone by the next operator.
    if let Some(result) = shutdown::within_grace(controller, stop, SHUTDOWN_GRACE).await {
        result?;
    }
    Ok(())
}
