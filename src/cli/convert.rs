//! `redblack convert -f FILE...`: Argo Rollouts manifests (YAML streams, `-`
//! for stdin) → redblack manifests on stdout, each preceded by comments
//! naming what was not carried over; the same notes on stderr. The work is
//! `crate::convert` (pure); this reads and prints.

use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use super::CliResult;
use crate::convert::{Converted, convert};

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// A YAML file (one or more documents); `-` reads stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("reading {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: document {index} is not YAML: {source}")]
    Yaml {
        file: String,
        index: usize,
        source: serde_yaml::Error,
    },
    #[error("printing {what}: {source}")]
    Print {
        what: String,
        source: serde_yaml::Error,
    },
}

/// Every non-empty document of a YAML stream, as JSON values.
pub fn parse_stream(file: &str, text: &str) -> Result<Vec<Value>, ConvertError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|source| ConvertError::Yaml {
            file: file.to_owned(),
            index,
            source,
        })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The printed stream: each object as a YAML document, its notes as comments above it.
pub fn render(converted: &[Converted]) -> Result<String, ConvertError> {
    let mut out = String::new();
    for item in converted {
        let mut doc = String::new();
        for note in &item.notes {
            doc.push_str(&format!("# redblack convert: {}: {note}\n", item.source));
        }
        match &item.object {
            Some(object) => {
                doc.push_str(&serde_yaml::to_string(object).map_err(|source| {
                    ConvertError::Print {
                        what: item.source.clone(),
                        source,
                    }
                })?);
                out.push_str("---\n");
                out.push_str(&doc);
            }
            // Comments only: kept in the stream so the reader sees what went.
            None => out.push_str(&doc),
        }
    }
    Ok(out)
}

pub async fn run(args: ConvertArgs) -> CliResult {
    let mut docs = Vec::new();
    for file in &args.files {
        let read_err = |source| ConvertError::Read {
            file: file.clone(),
            source,
        };
        let text = if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(read_err)?;
            text
        } else {
            std::fs::read_to_string(file).map_err(read_err)?
        };
        docs.extend(parse_stream(file, &text)?);
    }
    let converted = convert(&docs);
    print!("{}", render(&converted)?);
    for item in &converted {
        for note in &item.notes {
            eprintln!("{}: {note}", item.source);
        }
    }
    Ok(())
}
