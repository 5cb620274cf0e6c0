//! `redblack analysis`: runs the CanaryAnalysis controller alone (the
//! `controller` verb runs it together with the Rollout controller), until
//! SIGINT or SIGTERM, with the same shutdown grace as `controller`.

use std::path::PathBuf;

use super::CliResult;
use super::endpoint_args::EndpointArgs;
use crate::analysis::allow::AllowListError;
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
    /// Attempts at reaching Prometheus (with backoff) before an analysis is put in phase Error.
    #[arg(long, default_value_t = 5)]
    pub max_source_attempts: u32,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

impl AnalysisArgs {
    pub fn config(&self) -> Result<AnalysisControllerConfig, AllowListError> {
        let mut cfg = AnalysisControllerConfig {
            default_prometheus_url: self.prometheus_url.clone(),
            namespace: self.namespace.clone(),
            ..AnalysisControllerConfig::default()
        };
        self.endpoints.apply(&mut cfg)?;
        cfg.limits.max_source_attempts = self.max_source_attempts.max(1);
        Ok(cfg)
    }
}

pub async fn run(args: AnalysisArgs) -> CliResult {
    telemetry::init(args.log_format);
    let config = args.config()?;
    let (client, _) = crate::runtime::client::connect(args.kubeconfig.as_deref(), None).await?;
    let stop = shutdown::on_signal();
    let controller = run_analysis_controller(client, config, stop.clone());
    // None: the grace ran out (logged); in-flight work is redone by the next operator.
    if let Some(result) = shutdown::within_grace(controller, stop, SHUTDOWN_GRACE).await {
        result?;
    }
    Ok(())
}
