//! The `redblack` command line: one module per verb.

use clap::{Parser, Subcommand};

pub mod analysis;
pub mod controller;
pub mod convert;
pub mod crd;
pub mod dashboard;
#[cfg(feature = "sandbox")]
pub mod demo_app;
#[cfg(feature = "sandbox")]
pub mod demo_load;
pub mod endpoint_args;
pub mod judge;
pub mod report;
pub mod rollouts;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod smoke;

/// What every verb returns; the binary prints the error chain and exits 1.
pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(
    name = "redblack",
    version,
    about = "Red/black rollouts gated by automated canary analysis"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: the Rollout and CanaryAnalysis controllers, /healthz, /readyz and /metrics.
    Controller(controller::ControllerArgs),
    #[cfg(feature = "sandbox")]
    /// Run the embedded Kubernetes-compatible control plane (a SIMULATOR for demos and tests).
    Sandbox(sandbox::SandboxArgs),
    /// Print every CustomResourceDefinition as multi-document YAML.
    Crd(crd::CrdArgs),
    /// Judge canary vs baseline samples from a file, offline.
    Judge(judge::JudgeArgs),
    /// Convert Argo Rollouts manifests (blueGreen Rollouts, Prometheus AnalysisTemplates) to redblack's.
    Convert(convert::ConvertArgs),
    /// Print a CanaryAnalysis as a canary report (score, intervals, every metric's numbers).
    Report(report::ReportArgs),
    /// Run the CanaryAnalysis controller alone.
    Analysis(analysis::AnalysisArgs),
    #[cfg(feature = "sandbox")]
    /// Run the demo HTTP service (behaviour set by DEMO_* environment variables).
    DemoApp(demo_app::DemoAppArgs),
    #[cfg(feature = "sandbox")]
    /// Send steady, paced, bounded HTTP traffic to a URL and report progress.
    DemoLoad(demo_load::DemoLoadArgs),
    /// Smoke tests: send N requests to a URL, print a summary, exit 1 on more than --max-errors failures.
    Smoke(smoke::SmokeArgs),
    #[command(flatten)]
    Rollout(rollouts::RolloutCommand),
    /// The Rollout verbs again under Argo's prefix: `redblack rollouts set image …`
    /// as `kubectl argo rollouts set image …`, for scripts being migrated.
    Rollouts {
        #[command(subcommand)]
        command: rollouts::RolloutCommand,
    },
}

pub async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Controller(args) => controller::run(args).await,
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Crd(args) => crd::run(args).await,
        Command::Judge(args) => judge::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Convert(args) => convert::run(args).await,
        Command::Analysis(args) => analysis::run(args).await,
        #[cfg(feature = "sandbox")]
        Command::DemoApp(args) => demo_app::run(args).await,
        #[cfg(feature = "sandbox")]
        Command::DemoLoad(args) => demo_load::run(args).await,
        Command::Smoke(args) => smoke::run(args).await,
        Command::Rollout(command) | Command::Rollouts { command } => rollouts::run(command).await,
    }
}

/// Prints the error chain of a failed verb on stderr; exit code 1 on failure.
pub fn exit_code(result: CliResult) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
