//! `redblack crd` (placeholder until its issue lands).

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct CrdArgs {}

pub async fn run(_args: CrdArgs) -> CliResult {
    Err("'redblack crd' is not implemented yet".into())
}
