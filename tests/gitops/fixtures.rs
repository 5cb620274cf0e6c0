//! The recorded objects under `tests/data/gitops/<kind>/<scenario>.json`:
//! written by the generator (`generate.rs`), read by the health tests.

use std::path::PathBuf;

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rollout,
    CanaryAnalysis,
}

impl Kind {
    fn dir(self) -> PathBuf {
        let sub = match self {
            Kind::Rollout => "rollout",
            Kind::CanaryAnalysis => "canaryanalysis",
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/gitops")
            .join(sub)
    }
}

/// Writes one fixture (pretty JSON, one trailing newline).
pub fn save(kind: Kind, scenario: &str, object: &Value) {
    let dir = kind.dir();
    std::fs::create_dir_all(&dir).expect("fixture directory");
    let mut text = serde_json::to_string_pretty(object).expect("fixture JSON");
    text.push('\n');
    // Write then rename: a test reading the fixtures meanwhile sees the old
    // file or the new one, never half of one.
    let path = dir.join(format!("{scenario}.json"));
    let part = dir.join(format!("{scenario}.json.part"));
    std::fs::write(&part, text).expect("fixture written");
    std::fs::rename(&part, &path).expect("fixture renamed");
}

/// Every fixture of `kind`, by scenario name, sorted.
pub fn load(kind: Kind) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(kind.dir())
        .expect("fixture directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("UTF-8 file name")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            (name, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
