//! The CanaryAnalysis spec the planner creates: the user's body (`inline`, or
//! the spec of the CanaryAnalysisTemplate `templateName` names) with the
//! scopes and the window filled in. Built as JSON so that the planner does not
//! depend on the analysis controller's types; before creating it, the planner
//! only checks that the body is a CanaryAnalysis spec at all and that its
//! durations read ([`resolve`]), the API server checks the schema and the
//! analysis controller the rest (reported in the analysis' status).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::api::canary_analysis::CanaryAnalysisSpec;
use crate::api::validate::{analysis_durations, parse_duration};
use crate::api::{AnalysisSource, Rollout};

/// Field of the canary's analysis source, for messages.
pub const CANARY_FIELD: &str = "spec.strategy.redBlack.canary.analysis";
/// Field of the pre-promotion analysis source, for messages.
pub const PRE_PROMOTION_FIELD: &str = "spec.strategy.redBlack.prePromotionAnalysis";
/// Field of the post-promotion analysis source, for messages.
pub const POST_PROMOTION_FIELD: &str = "spec.strategy.redBlack.postPromotionAnalysis";

/// Why no CanaryAnalysis can be created from an analysis source: the canary
/// (or the switch, for a post-promotion analysis) waits, and the status says
/// why. Re-planned when the Rollout or the template changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisProblem {
    /// `templateName` names no CanaryAnalysisTemplate in the Rollout's namespace.
    #[error("CanaryAnalysisTemplate {name:?} not found in namespace {namespace:?}")]
    TemplateNotFound { name: String, namespace: String },
    /// The body (`what`: the inline field or the template) is not a
    /// CanaryAnalysis spec.
    #[error("{what} is not a usable CanaryAnalysis spec: {problem}")]
    Invalid { what: String, problem: String },
}

impl AnalysisProblem {
    /// The condition reason (and Event reason) it is reported with.
    pub fn reason(&self) -> &'static str {
        match self {
            AnalysisProblem::TemplateNotFound { .. } => "AnalysisTemplateNotFound",
            AnalysisProblem::Invalid { .. } => "InvalidAnalysis",
        }
    }

    /// What a human does about it.
    pub fn fix(&self) -> &'static str {
        match self {
            AnalysisProblem::TemplateNotFound { .. } => {
                "create it (or fix templateName); the rollout continues as soon as it exists"
            }
            AnalysisProblem::Invalid { .. } => {
                "fix the analysis body; the rollout continues as soon as it is usable"
            }
        }
    }
}

/// An analysis body and where it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resolved<'a> {
    /// The CanaryAnalysisTemplate, when the body is its spec.
    pub template: Option<&'a str>,
    pub body: &'a Value,
}

impl Resolved<'_> {
    /// `lifetime` of the body (the post-promotion control's time shift).
    pub fn lifetime(&self) -> Option<&str> {
        self.body.get("lifetime").and_then(Value::as_str)
    }
}

/// The body `source` names: `inline`, or the spec of the template
/// `templateName` from `templates` (the ones observed in the Rollout's
/// namespace). Checked to be a CanaryAnalysis spec once the planner's scopes
/// and start are filled in, with durations the analysis controller takes
/// ([`analysis_durations`]); with `needs_lifetime` (post-promotion: the control
/// is shifted by it) `lifetime` must be a duration. An inline body and a
/// template's are checked alike, so a mistake surfaces the same way in both.
pub fn resolve<'a>(
    rollout: &Rollout,
    templates: &'a BTreeMap<String, Value>,
    source: &'a AnalysisSource,
    field: &str,
    needs_lifetime: bool,
) -> Result<Resolved<'a>, AnalysisProblem> {
    let (resolved, what) = match (&source.template_name, &source.inline) {
        (Some(name), _) => {
            let body = templates
                .get(name)
                .ok_or_else(|| AnalysisProblem::TemplateNotFound {
                    name: name.clone(),
                    namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
                })?;
            let resolved = Resolved {
                template: Some(name.as_str()),
                body,
            };
            (resolved, format!("CanaryAnalysisTemplate {name:?}"))
        }
        (None, Some(body)) => (
            Resolved {
                template: None,
                body,
            },
            format!("{field}.inline"),
        ),
        // validate() rejects this before planning gets here.
        (None, None) => {
            return Err(AnalysisProblem::Invalid {
                what: field.to_owned(),
                problem: "neither templateName nor inline is set".to_owned(),
            });
        }
    };
    let invalid = |problem: String| AnalysisProblem::Invalid {
        what: what.clone(),
        problem,
    };
    if !resolved.body.is_object() {
        return Err(invalid("it is not an object".to_owned()));
    }
    let placeholder = || ScopeSpec {
        namespace: String::new(),
        replica_set: String::new(),
        revision: String::new(),
        role: String::new(),
        variables: BTreeMap::new(),
    };
    let filled = build(
        Some(resolved.body),
        placeholder(),
        placeholder(),
        DateTime::UNIX_EPOCH,
        None,
    );
    // The body's own path: `spec` of a template, the inline field itself.
    let body_path = match resolved.template {
        Some(_) => "spec".to_owned(),
        None => format!("{field}.inline"),
    };
    if let Err(problem) = spec_problem(filled, &body_path) {
        return Err(invalid(problem));
    }
    if let Some(err) = analysis_durations(resolved.body, "spec").into_iter().next() {
        return Err(invalid(err.to_string()));
    }
    if needs_lifetime
        && resolved
            .lifetime()
            .is_none_or(|l| parse_duration(l).is_err())
    {
        return Err(invalid(
            "lifetime is missing or not a duration; a post-promotion analysis judges the control over the same length before the switch".to_owned(),
        ));
    }
    Ok(resolved)
}

/// Reads `filled` as a CanaryAnalysis spec; an error below the top names the
/// field that does not read (`<body_path>.metrics: invalid type: string "x", expected a
/// list`), not only what was wrong.
fn spec_problem(filled: Value, body_path: &str) -> Result<CanaryAnalysisSpec, String> {
    serde_path_to_error::deserialize::<_, CanaryAnalysisSpec>(filled).map_err(|err| {
        let path = err.path().to_string();
        // serde's words for JSON's shapes.
        let inner = err
            .inner()
            .to_string()
            .replace("expected a sequence", "expected a list")
            .replace("expected a map", "expected an object");
        if path == "." {
            // At the top (a missing field): serde names the field itself.
            inner
        } else {
            format!("{body_path}.{path}: {inner}")
        }
    })
}

/// The body of the canary's analysis (`spec.strategy.redBlack.canary.analysis`).
pub fn resolve_canary<'a>(
    rollout: &Rollout,
    templates: &'a BTreeMap<String, Value>,
    source: &'a AnalysisSource,
) -> Result<Resolved<'a>, AnalysisProblem> {
    resolve(rollout, templates, source, CANARY_FIELD, false)
}

/// The body of the post-promotion analysis (`lifetime` required: it shifts
/// the control).
pub fn resolve_post_promotion<'a>(
    rollout: &Rollout,
    templates: &'a BTreeMap<String, Value>,
    source: &'a AnalysisSource,
) -> Result<Resolved<'a>, AnalysisProblem> {
    resolve(rollout, templates, source, POST_PROMOTION_FIELD, true)
}

/// The body of the pre-promotion analysis (judged like a canary's).
pub fn resolve_pre_promotion<'a>(
    rollout: &Rollout,
    templates: &'a BTreeMap<String, Value>,
    source: &'a AnalysisSource,
) -> Result<Resolved<'a>, AnalysisProblem> {
    resolve(rollout, templates, source, PRE_PROMOTION_FIELD, false)
}

/// One side of the comparison, as the CanaryAnalysis spec's `experiment` /
/// `control` objects spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeSpec {
    pub namespace: String,
    pub replica_set: String,
    /// The Rollout revision (pod-template hash of `spec.template` it came from).
    pub revision: String,
    pub role: String,
    /// Extra template variables (the user's are kept; these are added).
    pub variables: BTreeMap<String, String>,
}

/// `inline` with `experiment`, `control` and `startTime` set; `timeShift`
/// (a duration) on the control when it is judged over an earlier window.
pub fn build(
    inline: Option<&Value>,
    experiment: ScopeSpec,
    control: ScopeSpec,
    start: DateTime<Utc>,
    control_time_shift: Option<&str>,
) -> Value {
    let mut spec = inline
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, scope) in [("experiment", experiment), ("control", control)] {
        let mut object = spec
            .get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        fill_scope(&mut object, scope);
        if key == "control"
            && let Some(shift) = control_time_shift
        {
            object.insert("timeShift".to_owned(), Value::String(shift.to_owned()));
        }
        spec.insert(key.to_owned(), Value::Object(object));
    }
    spec.insert(
        "startTime".to_owned(),
        Value::String(start.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    Value::Object(spec)
}

fn fill_scope(object: &mut Map<String, Value>, scope: ScopeSpec) {
    object.insert("namespace".to_owned(), Value::String(scope.namespace));
    object.insert("replicaSet".to_owned(), Value::String(scope.replica_set));
    object.insert("revision".to_owned(), Value::String(scope.revision));
    object.insert("role".to_owned(), Value::String(scope.role));
    let mut variables = object
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, value) in scope.variables {
        variables.insert(name, Value::String(value));
    }
    if !variables.is_empty() {
        object.insert("variables".to_owned(), Value::Object(variables));
    }
}

#[cfg(test)]
mod tests {
    // The parent by its full path: tests/plan_layers.rs reads `super` as
    // the planner module (it does not see this nested module).
    use crate::rollout::plan::analysis_spec::*;

    fn rollout() -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
                "strategy": {"redBlack": {"activeService": "web"}}
            }
        }))
        .unwrap()
    }

    fn problem(source: Value, templates: &BTreeMap<String, Value>) -> String {
        let source: AnalysisSource = serde_json::from_value(source).unwrap();
        resolve_canary(&rollout(), templates, &source)
            .unwrap_err()
            .to_string()
    }

    /// A field of the wrong type is named by its path, in a template's
    /// `spec` or under the inline field.
    #[test]
    fn a_wrong_type_names_the_field() {
        let body = serde_json::json!({"interval": "1m", "lifetime": "10m", "metrics": "x"});
        let templates = BTreeMap::from([("shared".to_owned(), body.clone())]);
        assert_eq!(
            problem(serde_json::json!({"templateName": "shared"}), &templates),
            r#"CanaryAnalysisTemplate "shared" is not a usable CanaryAnalysis spec: spec.metrics: invalid type: string "x", expected a list"#
        );
        assert_eq!(
            problem(serde_json::json!({"inline": body}), &templates),
            format!(
                r#"{CANARY_FIELD}.inline is not a usable CanaryAnalysis spec: {CANARY_FIELD}.inline.metrics: invalid type: string "x", expected a list"#
            )
        );
        let nested = serde_json::json!({"interval": "1m", "lifetime": "10m",
            "metrics": [{"name": "errors", "query": 5}]});
        let message = problem(serde_json::json!({"inline": nested}), &templates);
        assert!(
            message.contains(&format!(
                "{CANARY_FIELD}.inline.metrics[0].query: invalid type"
            )),
            "{message}"
        );
    }
}
