//! An Argo `Rollout` (blueGreen) → a redblack `Rollout`. Argo's defaults are
//! written out where redblack's differ (`scaleDownDelaySeconds` 30 s against
//! redblack's 30 m, `abortScaleDownDelaySeconds` 30 s against 10 m), so the
//! converted Rollout behaves as the Argo one did.

use serde_json::{Map, Value, json};

use super::{TemplateArgs, carried_metadata, seconds};

/// Spec fields with the same name and meaning in both.
const SAME_SPEC_FIELDS: &[&str] = &[
    "replicas",
    "selector",
    "template",
    "revisionHistoryLimit",
    "minReadySeconds",
    "progressDeadlineSeconds",
    "progressDeadlineAbort",
    "paused",
    "restartAt",
    // Run history limits: `successfulRunHistoryLimit` and
    // `unsuccessfulRunHistoryLimit`, with Argo's defaults (5 each).
    "analysis",
];

/// Argo's defaults for the blueGreen delays (seconds).
const ARGO_SCALE_DOWN_DELAY_SECONDS: i64 = 30;
const ARGO_ABORT_SCALE_DOWN_DELAY_SECONDS: i64 = 30;
/// redblack's largest `warmRevisions`.
const MAX_WARM_REVISIONS: i64 = 10;

/// Why each spec field redblack does not have is left out.
fn unsupported_spec_field(key: &str) -> &'static str {
    match key {
        "rollbackWindow" => {
            "not supported: a rollback to any warm or scaled-down revision is `redblack undo` and is never gated"
        }
        _ => "unknown to this converter",
    }
}

/// Records the plain `value` arguments the Rollout passes to each template.
pub(super) fn collect_args(doc: &Value, out: &mut TemplateArgs) {
    for gate in ["prePromotionAnalysis", "postPromotionAnalysis"] {
        let Some(analysis) = doc.pointer(&format!("/spec/strategy/blueGreen/{gate}")) else {
            continue;
        };
        let values: Vec<(String, String)> = array(analysis.get("args"))
            .iter()
            .filter_map(|a| {
                Some((
                    a.get("name")?.as_str()?.to_owned(),
                    a.get("value")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        for template in array(analysis.get("templates")) {
            if let Some(name) = template.get("templateName").and_then(Value::as_str) {
                out.entry(name.to_owned())
                    .or_default()
                    .extend(values.iter().cloned());
            }
        }
    }
}

fn array(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The redblack Rollout (None when there is no blueGreen strategy) and the
/// notes for every field not carried over.
pub(super) fn convert(doc: &Value) -> (Option<Value>, Vec<String>) {
    let mut notes = Vec::new();
    let empty = Map::new();
    let spec = doc.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Map::new();
    for (key, value) in spec {
        if SAME_SPEC_FIELDS.contains(&key.as_str()) {
            out.insert(key.clone(), value.clone());
        } else if key == "workloadRef" {
            if let Some(reference) = workload_ref(value, &mut notes) {
                out.insert(key.clone(), reference);
            }
        } else if key != "strategy" {
            notes.push(format!("spec.{key}: {}", unsupported_spec_field(key)));
        }
    }
    let strategy = spec.get("strategy").and_then(Value::as_object);
    if let Some(strategy) = strategy {
        for key in strategy.keys().filter(|k| *k != "blueGreen") {
            notes.push(format!(
                "spec.strategy.{key}: not supported: redblack converts blueGreen Rollouts only"
            ));
        }
    }
    let Some(blue_green) = strategy
        .and_then(|s| s.get("blueGreen"))
        .and_then(Value::as_object)
    else {
        notes.push(
            "(whole object): not converted, because it has no spec.strategy.blueGreen".to_owned(),
        );
        return (None, notes);
    };
    let red_black = red_black(blue_green, &mut notes);
    out.insert("strategy".to_owned(), json!({"redBlack": red_black}));
    let rollout = json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": carried_metadata(doc),
        "spec": Value::Object(out),
    });
    (Some(rollout), notes)
}

/// Argo's `workloadRef`, carried over when it names an apps/v1 Deployment;
/// `scaleDown: progressively` (not supported) becomes `onsuccess`, the same
/// end state (the Deployment at 0 once the Rollout is Healthy).
fn workload_ref(value: &Value, notes: &mut Vec<String>) -> Option<Value> {
    let deployment = value.get("apiVersion").and_then(Value::as_str) == Some("apps/v1")
        && value.get("kind").and_then(Value::as_str) == Some("Deployment");
    if !deployment {
        notes.push(format!(
            "spec.workloadRef: {value}: not supported: redblack references apps/v1 Deployments only"
        ));
        return None;
    }
    let mut out = value.clone();
    if value.get("scaleDown").and_then(Value::as_str) == Some("progressively") {
        out["scaleDown"] = json!("onsuccess");
        notes.push(
            "spec.workloadRef.scaleDown: progressively is not supported: written as onsuccess (the Deployment is scaled to 0 once the Rollout is Healthy, not step by step)"
                .to_owned(),
        );
    }
    Some(out)
}

fn red_black(bg: &Map<String, Value>, notes: &mut Vec<String>) -> Value {
    let mut out = Map::new();
    let path = |key: &str| format!("spec.strategy.blueGreen.{key}");
    let manual = bg.get("autoPromotionEnabled").and_then(Value::as_bool) == Some(false);
    out.insert(
        "promotion".to_owned(),
        json!(if manual { "Manual" } else { "Automatic" }),
    );
    out.insert(
        "scaleDownDelay".to_owned(),
        json!(seconds(ARGO_SCALE_DOWN_DELAY_SECONDS)),
    );
    out.insert(
        "abortScaleDownDelay".to_owned(),
        json!(seconds(ARGO_ABORT_SCALE_DOWN_DELAY_SECONDS)),
    );
    for (key, value) in bg {
        match key.as_str() {
            "activeService" | "previewService" => {
                out.insert(key.clone(), value.clone());
            }
            "autoPromotionEnabled" => {}
            "autoPromotionSeconds" if !manual => notes.push(format!(
                "{}: not carried over, because Argo only uses it with autoPromotionEnabled: false (it promotes at once otherwise)",
                path(key)
            )),
            "previewReplicaCount" if !manual => notes.push(format!(
                "{}: not carried over, because redblack uses it only with promotion: Manual (Argo's automatic promotion scales the preview up before the switch, so it only delays it)",
                path(key)
            )),
            "autoPromotionSeconds" | "previewReplicaCount" => {
                out.insert(key.clone(), value.clone());
            }
            "scaleDownDelaySeconds" => match value.as_i64() {
                Some(s) => {
                    out.insert("scaleDownDelay".to_owned(), json!(seconds(s)));
                }
                None => notes.push(format!("{}: not an integer", path(key))),
            },
            "abortScaleDownDelaySeconds" => match value.as_i64() {
                Some(0) => notes.push(format!(
                    "{}: 0 (never scale the aborted fleet down) is not supported: redblack always scales it down, after abortScaleDownDelay (set to 30s, Argo's default)",
                    path(key)
                )),
                Some(s) => {
                    out.insert("abortScaleDownDelay".to_owned(), json!(seconds(s)));
                }
                None => notes.push(format!("{}: not an integer", path(key))),
            },
            "scaleDownDelayRevisionLimit" => match value.as_i64() {
                Some(n) if n > MAX_WARM_REVISIONS => {
                    notes.push(format!(
                        "{}: {n} is more than redblack's largest warmRevisions ({MAX_WARM_REVISIONS}); set to {MAX_WARM_REVISIONS}",
                        path(key)
                    ));
                    out.insert("warmRevisions".to_owned(), json!(MAX_WARM_REVISIONS));
                }
                Some(n) => {
                    out.insert("warmRevisions".to_owned(), json!(n));
                }
                None => notes.push(format!("{}: not an integer", path(key))),
            },
            // Same shape on both sides: {templateName}; pre-promotion judges
            // the full preview fleet before the switch (docs/rollout.md, "Gates").
            "prePromotionAnalysis" | "postPromotionAnalysis" => {
                if let Some(source) = analysis(value, &path(key), notes) {
                    out.insert(key.clone(), source);
                }
            }
            // Same field names and meaning: exactly one of the two rules;
            // {labels, annotations} on the active / preview pods.
            "antiAffinity" | "activeMetadata" | "previewMetadata" => {
                out.insert(key.clone(), value.clone());
            }
            "maxUnavailable" => notes.push(format!(
                "{}: not supported: a redblack fleet is brought up beside the live one at full size and never replaced in place",
                path(key)
            )),
            _ => notes.push(format!("{}: unknown to this converter", path(key))),
        }
    }
    Value::Object(out)
}

/// Argo's `{templates: [{templateName}], args}` → redblack's `{templateName}`.
fn analysis(value: &Value, path: &str, notes: &mut Vec<String>) -> Option<Value> {
    let templates = array(value.get("templates"));
    let mut names = templates
        .iter()
        .filter_map(|t| t.get("templateName").and_then(Value::as_str));
    let Some(first) = names.next() else {
        notes.push(format!("{path}: no templates[].templateName; left out"));
        return None;
    };
    let rest: Vec<&str> = names.collect();
    if !rest.is_empty() {
        notes.push(format!(
            "{path}.templates: only the first ({first}) is used, because a redblack analysis names one template; merge the metrics of {} into it",
            rest.join(", ")
        ));
    }
    for arg in array(value.get("args")) {
        if arg.get("value").is_none() {
            let name = arg.get("name").and_then(Value::as_str).unwrap_or("?");
            notes.push(format!(
                "{path}.args[{name}]: valueFrom is not supported (redblack templates take no arguments; the fleet's pods are ${{podRegex}}, its namespace ${{namespace}})"
            ));
        }
    }
    for key in value.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !matches!(key.as_str(), "templates" | "args") {
            notes.push(format!("{path}.{key}: unknown to this converter"));
        }
    }
    Some(json!({"templateName": first}))
}
