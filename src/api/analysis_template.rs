//! The `CanaryAnalysisTemplate` custom resource (`redblack.io/v1alpha1`): one
//! analysis body shared by many Rollouts of a namespace, which name it in
//! `analysis.templateName` instead of writing `analysis.inline`.
//!
//! A template is read only when the planner creates a CanaryAnalysis from it
//! (its spec is copied into the analysis, which records the template's name in
//! the label [`ANALYSIS_TEMPLATE_LABEL`]); editing or deleting a template never
//! changes an analysis that already exists. See docs/rollout.md, "Analysis".
//!
//! Why `spec` is an object with `x-kubernetes-preserve-unknown-fields` (like
//! `inline`) and not a typed struct: a template and an inline body are then
//! one thing with one validation path. The planner checks the body when it is
//! about to create an analysis from it (a body that is not a CanaryAnalysis
//! spec holds the canary, with a reason naming the template), the API server
//! checks the created CanaryAnalysis against its schema, and the analysis
//! controller checks queries and window. A typed copy of `CanaryAnalysisSpec`
//! with optional scopes would reject some mistakes at `kubectl apply` time,
//! but it would be a second schema to keep in step with CanaryAnalysis for
//! ever, and `inline` would still not have it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label on a CanaryAnalysis created from a template: the template's name
/// (`kubectl get rbca -l rollouts.redblack.io/analysis-template=<name>`).
pub const ANALYSIS_TEMPLATE_LABEL: &str = "rollouts.redblack.io/analysis-template";

/// The body of an analysis, exactly what `analysis.inline` of a Rollout holds:
/// a CanaryAnalysis spec without the scopes' `replicaSet`/`revision` and
/// without `startTime`, which the planner fills in. Checked when an analysis
/// is created from it (see the Rollout's status for problems).
// The lint mistakes repeated `printcolumn(type_ = ...)` for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "redblack.io",
    version = "v1alpha1",
    kind = "CanaryAnalysisTemplate",
    namespaced,
    shortname = "rbcat",
    category = "redblack",
    doc = "A CanaryAnalysis body shared by Rollouts (analysis.templateName), without scopes or startTime.",
    printcolumn(name = "Lifetime", type_ = "string", json_path = ".spec.lifetime"),
    printcolumn(name = "Interval", type_ = "string", json_path = ".spec.interval"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[schemars(transform = preserve_unknown_object)]
pub struct CanaryAnalysisTemplateSpec {
    /// The fields of the body (`interval`, `lifetime`, `metrics`, ...).
    #[serde(flatten)]
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// Keeps the description, replaces the rest: any object, kept as written.
fn preserve_unknown_object(schema: &mut schemars::Schema) {
    let description = schema.get("description").cloned();
    *schema = schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    });
    if let Some(description) = description {
        schema.insert("description".to_owned(), description);
    }
}

impl CanaryAnalysisTemplate {
    /// The body as the planner reads it (`inline`'s shape).
    pub fn body(&self) -> serde_json::Value {
        serde_json::Value::Object(self.spec.body.clone())
    }
}

/// The CustomResourceDefinition, for `redblack crd` and tests.
pub fn crd() -> CustomResourceDefinition {
    CanaryAnalysisTemplate::crd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_has_names_and_an_open_spec() {
        let crd = crd();
        assert_eq!(crd.spec.group, "redblack.io");
        assert_eq!(crd.spec.names.kind, "CanaryAnalysisTemplate");
        assert_eq!(crd.spec.names.plural, "canaryanalysistemplates");
        assert_eq!(crd.spec.names.short_names, Some(vec!["rbcat".to_owned()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["redblack".to_owned()]));
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.is_none(), "no status");
        let schema = serde_json::to_value(&version.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["type"], "object", "{spec}");
        assert_eq!(spec["x-kubernetes-preserve-unknown-fields"], true, "{spec}");
        assert!(spec.get("properties").is_none(), "{spec}");
    }

    #[test]
    fn the_body_round_trips_as_written() {
        let body = serde_json::json!({
            "interval": "5m", "lifetime": "30m",
            "experiment": {"variables": {"app": "web"}},
            "metrics": [{"name": "errors", "query": "q"}]
        });
        let t: CanaryAnalysisTemplate = serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysisTemplate",
            "metadata": {"name": "latency", "namespace": "web"},
            "spec": body.clone()
        }))
        .unwrap();
        assert_eq!(t.body(), body);
        assert_eq!(serde_json::to_value(&t).unwrap()["spec"], body);
    }

    /// deploy/examples/analysis-template.yaml is a usable analysis: the body
    /// plus the scopes passes the analysis controller's checks.
    #[test]
    fn the_example_passes_the_analysis_controllers_checks() {
        use crate::api::canary_analysis::{AnalysisScope, CanaryAnalysis, spec_for_canary};
        let t: CanaryAnalysisTemplate =
            serde_yaml::from_str(include_str!("../../deploy/examples/analysis-template.yaml"))
                .unwrap();
        assert_eq!(t.metadata.name.as_deref(), Some("web-latency-errors"));
        let spec = spec_for_canary(
            &t.body(),
            &AnalysisScope::replica_set("web-aaa-baseline", "aaa"),
            &AnalysisScope::replica_set("web-bbb-canary", "bbb"),
        )
        .unwrap();
        let mut ca = CanaryAnalysis::new("web-bbb-1", spec);
        ca.metadata.namespace = Some("default".to_owned());
        ca.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T12:00:00Z".parse().unwrap(),
            ));
        let resolved =
            crate::analysis::controller::spec::resolve(&ca, Some("http://prometheus:9090"));
        assert!(resolved.is_ok(), "{:?}", resolved.err());
    }
}
