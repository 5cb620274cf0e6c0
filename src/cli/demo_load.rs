//! `redblack demo-load`: steady, paced, bounded traffic to one URL.

use std::time::Duration;

use redblack_demo::{LoadConfig, run_load};

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct DemoLoadArgs {
    /// URL to GET, e.g. http://127.0.0.1:8080/ or a sandbox Service proxy URL.
    #[arg(long)]
    pub target: String,
    /// Requests per second.
    #[arg(long, default_value_t = 50.0)]
    pub rps: f64,
    /// How long to send (e.g. 30s, 5m).
    #[arg(long, default_value = "30s", value_parser = redblack_duration::parse)]
    pub duration: Duration,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = redblack_duration::parse)]
    pub timeout: Duration,
}

pub async fn run(args: DemoLoadArgs) -> CliResult {
    super::demo_app::init_tracing();
    let cfg = LoadConfig {
        target: args.target,
        rps: args.rps,
        duration: args.duration,
        concurrency: args.concurrency,
        timeout: args.timeout,
    };
    let stats = run_load(cfg, |s| println!("{s}")).await?;
    let failed = stats.http_errors() + stats.transport_errors;
    println!(
        "done: {} requests, {} ok, {} failed ({:.2}%)",
        stats.completed(),
        stats.ok,
        failed,
        100.0 * failed as f64 / stats.completed().max(1) as f64
    );
    Ok(())
}
