use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = redblack::cli::Cli::parse();
    redblack::cli::exit_code(redblack::cli::run(cli).await)
}
