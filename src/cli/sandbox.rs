//! `redblack sandbox` (placeholder until its issue lands).

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {}

pub async fn run(_args: SandboxArgs) -> CliResult {
    Err("'redblack sandbox' is not implemented yet".into())
}
