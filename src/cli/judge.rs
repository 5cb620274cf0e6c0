//! `redblack judge`: judge canary vs baseline samples from a file, offline.
//! Input format: docs/judge.md. Exit code 1 on any input or config error.

use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use super::CliResult;
use redblack_judge::{JudgeConfig, JudgeError, Look, MetricSamples, judge_at, render_report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Table,
}

#[derive(Debug, clap::Args)]
pub struct JudgeArgs {
    /// JSON file: {"config": {...}, "metrics": [{"name", "canary", "baseline"}]}; "-" reads stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// `mode: sequential` only: judge the file as the analysis' final look
    /// (the e-processes and, once, the fixed-horizon tests of the whole
    /// window) or as an interim look (the e-processes alone).
    #[arg(long, value_enum, default_value_t = LookArg::Final)]
    pub look: LookArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LookArg {
    Final,
    Interim,
}

impl From<LookArg> for Look {
    fn from(look: LookArg) -> Self {
        match look {
            LookArg::Final => Look::Final,
            LookArg::Interim => Look::Interim,
        }
    }
}

/// The offline judge input file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JudgeInput {
    pub config: JudgeConfig,
    pub metrics: Vec<MetricSamples>,
}

#[derive(Debug, Error)]
pub enum JudgeCliError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    // serde_json's message carries the line and column.
    #[error("{path}: invalid input: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Judge {
        path: String,
        #[source]
        source: JudgeError,
    },
    #[error("cannot encode the result as JSON")]
    Encode(#[source] serde_json::Error),
}

/// Parses and judges an input document; pure apart from the error path label.
pub fn judge_text(
    text: &str,
    path: &str,
    output: OutputFormat,
    look: LookArg,
) -> Result<String, JudgeCliError> {
    let input: JudgeInput = serde_json::from_str(text).map_err(|source| JudgeCliError::Parse {
        path: path.to_string(),
        source,
    })?;
    let result = judge_at(&input.config, &input.metrics, look.into()).map_err(|source| {
        JudgeCliError::Judge {
            path: path.to_string(),
            source,
        }
    })?;
    match output {
        OutputFormat::Table => Ok(render_report(&result)),
        OutputFormat::Json => serde_json::to_string_pretty(&result)
            .map(|s| s + "\n")
            .map_err(JudgeCliError::Encode),
    }
}

pub async fn run(args: JudgeArgs) -> CliResult {
    let path = args.input.display().to_string();
    let text = if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|source| {
            JudgeCliError::Read {
                path: path.clone(),
                source,
            }
        })?;
        s
    } else {
        tokio::fs::read_to_string(&args.input)
            .await
            .map_err(|source| JudgeCliError::Read {
                path: path.clone(),
                source,
            })?
    };
    print!("{}", judge_text(&text, &path, args.output, args.look)?);
    Ok(())
}
