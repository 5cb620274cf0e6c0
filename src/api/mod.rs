//! CRD types (serde + schemars), conditions helpers, the pod-template hash and
//! spec validation. See docs/rollout.md and docs/canary-analysis.md.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod analysis_history;
pub mod analysis_template;
pub mod anti_affinity;
pub mod canary_analysis;
pub mod conditions;
pub mod endpoint;
pub mod gates;
pub mod hash;
pub mod k8s_names;
pub mod notifier;
pub mod pod_metadata;
pub mod rollout;
pub mod validate;
pub mod workload_ref;

pub use conditions::{Condition, ConditionStatus};
pub use gates::{Gate, GateAt, GatePhase, GateStatus, HttpGate, HttpMethod, JobGate};
pub use hash::{pod_template_hash, value_hash};
/// The pattern of every duration field of every CRD: the grammar of
/// [`redblack_duration::parse`], which validation reads them with.
pub use redblack_duration::PATTERN as DURATION_PATTERN;
pub use rollout::*;
pub use validate::{SpecError, validate};

/// Label on every ReplicaSet, its pods, and the active/preview Service selectors.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts.redblack.io/pod-template-hash";
/// Annotation on each ReplicaSet: its revision number (monotonic, like a Deployment's).
pub const REVISION_ANNOTATION: &str = "rollouts.redblack.io/revision";
/// Annotation on a ReplicaSet that no longer takes traffic: when it may be
/// scaled to zero (RFC 3339). Lives on the child so it survives restarts.
pub const SCALE_DOWN_AT_ANNOTATION: &str = "rollouts.redblack.io/scale-down-at";
/// Manual operations, set on the Rollout by the CLI (value `<hash>[@<nonce>]`).
pub const PROMOTE_ANNOTATION: &str = "redblack.io/promote";
pub const ABORT_ANNOTATION: &str = "redblack.io/abort";
pub const RETRY_ANNOTATION: &str = "redblack.io/retry";

/// Every CRD the operator serves, in a stable order. Other resources
/// (CanaryAnalysis, CanaryAnalysisTemplate) add themselves here.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Rollout::crd(),
        canary_analysis::crd(),
        analysis_template::crd(),
        notifier::crd(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// (kind, field path, pattern) of every patterned property of every CRD.
    fn patterns() -> Vec<(String, String, String)> {
        fn walk(node: &Value, path: &str, kind: &str, out: &mut Vec<(String, String, String)>) {
            if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
                out.push((kind.to_owned(), path.to_owned(), pattern.to_owned()));
            }
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (name, child) in props {
                    walk(child, &format!("{path}.{name}"), kind, out);
                }
            }
            if let Some(items) = node.get("items") {
                walk(items, &format!("{path}[]"), kind, out);
            }
        }
        let mut out = Vec::new();
        for crd in all_crds() {
            for version in &crd.spec.versions {
                let schema = serde_json::to_value(&version.schema).unwrap();
                walk(
                    &schema["openAPIV3Schema"],
                    "",
                    &crd.spec.names.kind,
                    &mut out,
                );
            }
        }
        out
    }

    /// One pattern for every duration field of every CRD; the CanaryAnalysis
    /// fields that carry it are the ones a Rollout's inline analyses are
    /// checked by ([`canary_analysis::DURATION_FIELDS`]); no other pattern.
    #[test]
    fn every_duration_field_carries_the_one_pattern() {
        let all = patterns();
        let mut durations: Vec<(String, String)> = all
            .iter()
            .filter(|(_, _, p)| p == DURATION_PATTERN)
            .map(|(k, f, _)| (k.clone(), f.clone()))
            .collect();
        durations.sort();
        let mut expected = vec![
            (
                "Rollout".to_owned(),
                ".spec.strategy.redBlack.abortScaleDownDelay".to_owned(),
            ),
            (
                "Rollout".to_owned(),
                ".spec.strategy.redBlack.scaleDownDelay".to_owned(),
            ),
            (
                "Rollout".to_owned(),
                ".spec.strategy.redBlack.gates[].http.retryInterval".to_owned(),
            ),
        ];
        for (path, _) in canary_analysis::DURATION_FIELDS {
            expected.push((
                "CanaryAnalysis".to_owned(),
                format!(".spec.{}", path.join(".")),
            ));
        }
        expected.sort();
        assert_eq!(durations, expected);
        let mut others: Vec<&str> = all
            .iter()
            .map(|(_, _, p)| p.as_str())
            .filter(|p| *p != DURATION_PATTERN)
            .collect();
        others.sort();
        others.dedup();
        assert_eq!(
            others,
            [
                r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                rollout::TEMPLATE_NAME_PATTERN,
                gates::GATE_NAME_PATTERN,
            ],
            "a new pattern: is it a duration?"
        );
    }
}
