//! `redblack convert`'s pure core: Argo Rollouts objects (as JSON) in, the
//! redblack equivalents and a note for every field that was not carried over
//! out. No I/O: `cli/convert.rs` reads the YAML streams and prints.
//!
//! - an Argo `Rollout` with `strategy.blueGreen` → a redblack `Rollout`
//!   (`rollout.rs`);
//! - an `AnalysisTemplate` / `ClusterAnalysisTemplate` whose metrics use the
//!   Prometheus provider → a `CanaryAnalysisTemplate` (`analysis.rs`);
//! - anything else that is not an Argo Rollouts kind (Services, ConfigMaps…)
//!   passes through unchanged, so a whole manifest converts in one go;
//! - other Argo Rollouts kinds (AnalysisRun, Experiment) are dropped with a
//!   note.
//!
//! docs/migrating-from-argo.md has the field table this implements.

mod analysis;
mod rollout;

use std::collections::BTreeMap;

use serde_json::Value;

/// The API group of Argo Rollouts' kinds.
pub const ARGO_GROUP: &str = "argoproj.io";

/// One output object and what of its source could not be carried over.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// `Kind/name` of the source object (for messages).
    pub source: String,
    /// The object to print; None when the source has no redblack equivalent.
    pub object: Option<Value>,
    /// Every field not carried over: `<path>: <why>`.
    pub notes: Vec<String>,
}

/// Argument values a Rollout passes to a template (`analysis.args` with a
/// plain `value`), by template name: the converted template has them
/// substituted, since a redblack template takes no arguments.
pub(crate) type TemplateArgs = BTreeMap<String, BTreeMap<String, String>>;

/// Converts every document, in order. Rollouts are read first so that the
/// argument values they give their templates are known when the templates
/// are converted, wherever they sit in the stream.
pub fn convert(docs: &[Value]) -> Vec<Converted> {
    let docs: Vec<&Value> = docs.iter().flat_map(list_items).collect();
    let mut args = TemplateArgs::new();
    for doc in &docs {
        if is_argo(doc, "Rollout") {
            rollout::collect_args(doc, &mut args);
        }
    }
    docs.iter()
        .map(|doc| {
            let source = describe(doc);
            if is_argo(doc, "Rollout") {
                let (object, notes) = rollout::convert(doc);
                Converted {
                    source,
                    object,
                    notes,
                }
            } else if is_argo(doc, "AnalysisTemplate") || is_argo(doc, "ClusterAnalysisTemplate") {
                let (object, notes) = analysis::convert(doc, &args);
                Converted {
                    source,
                    object: Some(object),
                    notes,
                }
            } else if group(doc) == Some(ARGO_GROUP) {
                Converted {
                    source,
                    object: None,
                    notes: vec![
                        "(whole object): not converted, because redblack has no equivalent of this kind"
                            .to_owned(),
                    ],
                }
            } else {
                Converted {
                    source,
                    object: Some((*doc).clone()),
                    notes: Vec::new(),
                }
            }
        })
        .collect()
}

/// `kind: List` (as `kubectl get -o yaml` prints) is its items.
fn list_items(doc: &Value) -> Vec<&Value> {
    match (doc.get("kind").and_then(Value::as_str), doc.get("items")) {
        (Some("List"), Some(Value::Array(items))) => items.iter().collect(),
        _ => vec![doc],
    }
}

fn group(doc: &Value) -> Option<&str> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    Some(api_version.split_once('/').map_or("", |(g, _)| g))
}

fn is_argo(doc: &Value, kind: &str) -> bool {
    group(doc) == Some(ARGO_GROUP) && doc.get("kind").and_then(Value::as_str) == Some(kind)
}

fn describe(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// The metadata a converted object keeps: name, namespace, labels, annotations
/// (without kubectl's last-applied copy of the Argo object).
pub(crate) fn carried_metadata(doc: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = doc.pointer(&format!("/metadata/{key}")) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    if let Some(Value::Object(annotations)) = out.get_mut("annotations") {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if annotations.is_empty() {
            out.remove("annotations");
        }
    }
    Value::Object(out)
}

/// Seconds as a redblack duration (`30` → `30s`).
pub(crate) fn seconds(v: i64) -> String {
    format!("{v}s")
}
