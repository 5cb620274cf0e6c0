//! `kubectl redblack VERB`: the Rollout verbs as a kubectl plugin (kubectl runs
//! any `kubectl-redblack` on the PATH for `kubectl redblack`).

use std::process::ExitCode;

use clap::Parser;
use redblack::cli::rollouts::{self, RolloutCommand};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-redblack",
    bin_name = "kubectl redblack",
    version,
    about = "Operate redblack Rollouts: list, status, promote, abort, retry, pause, resume, undo, set image, dashboard"
)]
struct Plugin {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    let plugin = Plugin::parse();
    redblack::cli::exit_code(rollouts::run(plugin.command).await)
}
