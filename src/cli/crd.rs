//! `redblack crd`: every CRD as multi-document YAML, or one file per CRD.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Write one `<crd name>.yaml` per CRD into this directory instead of stdout.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("serializing CRD {name}")]
    Yaml {
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One YAML document per CRD, keyed by the file name it belongs in
/// (`<plural>.<group>.yaml`), sorted by that name.
pub fn rendered() -> Result<Vec<(String, String)>, CrdError> {
    let mut files: Vec<(String, String)> = crate::api::all_crds()
        .iter()
        .map(render)
        .collect::<Result<_, _>>()?;
    files.sort();
    Ok(files)
}

fn render(crd: &CustomResourceDefinition) -> Result<(String, String), CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let yaml = serde_yaml::to_string(crd).map_err(|source| CrdError::Yaml {
        name: name.clone(),
        source,
    })?;
    // Each file starts a YAML document, so `cat crds/*.yaml` is exactly the
    // stream `redblack crd` prints.
    Ok((format!("{name}.yaml"), format!("---\n{yaml}")))
}

/// The multi-document stream `redblack crd` prints.
pub fn multi_document(files: &[(String, String)]) -> String {
    files.iter().map(|(_, yaml)| yaml.as_str()).collect()
}

pub async fn run(args: CrdArgs) -> CliResult {
    let files = rendered()?;
    match args.out_dir {
        None => print!("{}", multi_document(&files)),
        Some(dir) => {
            for (file, yaml) in &files {
                let path = dir.join(file);
                std::fs::write(&path, yaml).map_err(|source| CrdError::Write { path, source })?;
            }
        }
    }
    Ok(())
}
