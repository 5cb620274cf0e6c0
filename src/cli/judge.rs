//! `redblack judge` (placeholder until its issue lands).

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct JudgeArgs {}

pub async fn run(_args: JudgeArgs) -> CliResult {
    Err("'redblack judge' is not implemented yet".into())
}
