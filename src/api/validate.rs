//! Checks the schema cannot express (or cannot express cheaply enough for the
//! API server's CEL cost budget). Each error names the field and the fix.

use super::canary_analysis::DURATION_FIELDS;
use super::k8s_names::{is_dns1123_label, is_label_value, label_key_problem};
use super::rollout::{AnalysisSource, Rollout};

/// Reads a duration field (`30m`, `1h30m`, `500ms`, `1d`): the one grammar
/// of every duration, whose schema pattern is [`super::DURATION_PATTERN`].
pub use redblack_duration::parse as parse_duration;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}; {fix}")]
pub struct SpecError {
    /// JSON path from the object root, e.g. `spec.strategy.redBlack.scaleDownDelay`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl SpecError {
    fn new(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        SpecError {
            field: field.to_owned(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// `value` of `field` is not a duration of at least `min`.
    fn duration(field: &str, value: &str, min: std::time::Duration) -> Option<Self> {
        match parse_duration(value) {
            Err(redblack_duration::Error::Syntax(_)) => Some(SpecError::new(
                field,
                format!("{value:?} is not a duration"),
                format!("write {}", redblack_duration::FORM),
            )),
            Err(redblack_duration::Error::TooLong(_)) => Some(SpecError::new(
                field,
                format!("{value:?} is longer than the maximum of 100 years"),
                "use a shorter duration",
            )),
            Ok(d) if d < min => Some(SpecError::new(
                field,
                format!("{value:?} is shorter than {}s", min.as_secs()),
                format!("use at least {}s", min.as_secs()),
            )),
            Ok(_) => None,
        }
    }
}

pub fn validate(rollout: &Rollout) -> Vec<SpecError> {
    let spec = &rollout.spec;
    let rb = &spec.strategy.red_black;
    let mut errors = Vec::new();

    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    if match_labels.is_empty() {
        errors.push(SpecError::new(
            "spec.selector.matchLabels",
            "is empty",
            "set at least one label: Services select by equality only, so the active Service is built from matchLabels",
        ));
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    for (key, value) in &match_labels {
        if template_labels.get(key) != Some(value) {
            errors.push(SpecError::new(
                "spec.template.metadata.labels",
                format!("does not contain {key}={value} from spec.selector.matchLabels"),
                format!("add the label {key}: {value} to the pod template"),
            ));
        }
    }
    if match_labels.contains_key(super::POD_TEMPLATE_HASH_LABEL)
        || template_labels.contains_key(super::POD_TEMPLATE_HASH_LABEL)
    {
        errors.push(SpecError::new(
            "spec.selector.matchLabels",
            format!("uses {}", super::POD_TEMPLATE_HASH_LABEL),
            "remove it: the operator owns that label",
        ));
    }
    labels(&match_labels, "spec.selector.matchLabels", &mut errors);
    labels(
        &template_labels,
        "spec.template.metadata.labels",
        &mut errors,
    );
    match_expressions(rollout, &mut errors);
    containers(rollout, &mut errors);
    if spec.replicas < 0 {
        errors.push(SpecError::new(
            "spec.replicas",
            "is negative",
            "set 0 or more",
        ));
    }
    if spec.progress_deadline_seconds < 1 {
        errors.push(SpecError::new(
            "spec.progressDeadlineSeconds",
            "must be at least 1",
            "set it above minReadySeconds, e.g. 600",
        ));
    } else if spec.progress_deadline_seconds <= spec.min_ready_seconds {
        errors.push(SpecError::new(
            "spec.progressDeadlineSeconds",
            "is not greater than minReadySeconds, so no revision could ever make it",
            "raise progressDeadlineSeconds above minReadySeconds",
        ));
    }
    if rb.active_service.is_empty() {
        errors.push(SpecError::new(
            "spec.strategy.redBlack.activeService",
            "is empty",
            "name the Service that takes production traffic",
        ));
    }
    if rb.preview_service.as_deref() == Some(rb.active_service.as_str()) {
        errors.push(SpecError::new(
            "spec.strategy.redBlack.previewService",
            "equals activeService",
            "use a separate Service for preview, or remove previewService",
        ));
    }
    for (field, value) in [
        (
            "spec.strategy.redBlack.scaleDownDelay",
            &rb.scale_down_delay,
        ),
        (
            "spec.strategy.redBlack.abortScaleDownDelay",
            &rb.abort_scale_down_delay,
        ),
    ] {
        errors.extend(SpecError::duration(field, value, std::time::Duration::ZERO));
    }
    if !(0..=10).contains(&rb.warm_revisions) {
        errors.push(SpecError::new(
            "spec.strategy.redBlack.warmRevisions",
            "must be between 0 and 10",
            "keep 1 (the previous revision) unless you need more",
        ));
    }
    for (i, window) in rb.promotion_windows.iter().enumerate() {
        let field = format!("spec.strategy.redBlack.promotionWindows[{i}]");
        if window.time_zone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(SpecError::new(
                &format!("{field}.timeZone"),
                format!("{:?} is not an IANA time zone", window.time_zone),
                "use a name like UTC or Europe/Berlin",
            ));
        }
        for (name, value) in [("start", &window.start), ("end", &window.end)] {
            // chrono alone accepts "9:00"; the schema pattern and docs say HH:MM.
            if value.len() != 5 || chrono::NaiveTime::parse_from_str(value, "%H:%M").is_err() {
                errors.push(SpecError::new(
                    &format!("{field}.{name}"),
                    format!("{value:?} is not a time of day"),
                    "write it as HH:MM on a 24-hour clock, e.g. 09:00",
                ));
            }
        }
    }
    validate_canary(rollout, &mut errors);
    validate_gates(rollout, &mut errors);
    errors
}

/// `gates` (unique names, one kind each, durations) and `prePromotionAnalysis`.
fn validate_gates(rollout: &Rollout, errors: &mut Vec<SpecError>) {
    let rb = &rollout.spec.strategy.red_black;
    if let Some(pre) = &rb.pre_promotion_analysis {
        analysis_source(pre, "spec.strategy.redBlack.prePromotionAnalysis", errors);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, gate) in rb.gates.iter().enumerate() {
        let field = format!("spec.strategy.redBlack.gates[{i}]");
        if !seen.insert(gate.name.as_str()) {
            errors.push(SpecError::new(
                &format!("{field}.name"),
                format!("{:?} is used by another gate", gate.name),
                "give each gate its own name",
            ));
        }
        if !super::k8s_names::is_dns1123_label(&gate.name) || gate.name.len() > 20 {
            errors.push(SpecError::new(
                &format!("{field}.name"),
                format!(
                    "{:?} is not a DNS label of at most 20 characters",
                    gate.name
                ),
                "use lower-case letters, digits and '-', e.g. smoke",
            ));
        }
        match (&gate.job, &gate.http) {
            (Some(_), Some(_)) | (None, None) => errors.push(SpecError::new(
                &field,
                "needs exactly one of job and http",
                "keep one: a Job for smoke tests, http for a single check",
            )),
            (Some(job), None) => {
                if job
                    .template
                    .spec
                    .as_ref()
                    .is_none_or(|s| s.containers.is_empty())
                {
                    errors.push(SpecError::new(
                        &format!("{field}.job.template.spec.containers"),
                        "is empty",
                        "give the Job a container that runs the tests",
                    ));
                }
            }
            (None, Some(http)) => {
                errors.extend(SpecError::duration(
                    &format!("{field}.http.retryInterval"),
                    &http.retry_interval,
                    std::time::Duration::from_secs(1),
                ));
                if http.expect_status.is_empty() {
                    errors.push(SpecError::new(
                        &format!("{field}.http.expectStatus"),
                        "is empty",
                        "list the answers that pass, e.g. [200]",
                    ));
                }
            }
        }
    }
}

/// Label keys and values as the API server reads them (every ReplicaSet,
/// pod and Service the operator writes carries these).
fn labels(
    labels: &std::collections::BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<SpecError>,
) {
    for (key, value) in labels {
        if let Some(problem) = label_key_problem(key) {
            errors.push(SpecError::new(
                field,
                format!("key {key:?} is not a label key: {problem}"),
                "write keys as [prefix/]name, e.g. app or app.kubernetes.io/name",
            ));
        }
        if !is_label_value(value) {
            errors.push(SpecError::new(
                field,
                format!("value {value:?} of {key} is not a label value"),
                format!(
                    "use at most {} alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (or an empty value)",
                    super::k8s_names::LABEL_VALUE_MAX
                ),
            ));
        }
    }
}

/// `spec.selector.matchExpressions`: keys, the four operators and their values.
fn match_expressions(rollout: &Rollout, errors: &mut Vec<SpecError>) {
    let expressions = rollout
        .spec
        .selector
        .match_expressions
        .as_deref()
        .unwrap_or_default();
    for (i, e) in expressions.iter().enumerate() {
        let field = format!("spec.selector.matchExpressions[{i}]");
        if let Some(problem) = label_key_problem(&e.key) {
            errors.push(SpecError::new(
                &format!("{field}.key"),
                format!("{:?} is not a label key: {problem}", e.key),
                "write keys as [prefix/]name, e.g. app or app.kubernetes.io/name",
            ));
        }
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(SpecError::new(
                &format!("{field}.values"),
                format!("is empty, but operator {} needs values", e.operator),
                "list at least one value, or use Exists",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(SpecError::new(
                &format!("{field}.values"),
                format!("must be empty for operator {}", e.operator),
                "remove the values, or use In / NotIn",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(SpecError::new(
                &format!("{field}.operator"),
                format!("{other:?} is not a selector operator"),
                "use In, NotIn, Exists or DoesNotExist",
            )),
        }
        for value in values.iter().filter(|v| !is_label_value(v)) {
            errors.push(SpecError::new(
                &format!("{field}.values"),
                format!("{value:?} is not a label value"),
                "use at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
            ));
        }
    }
}

/// The pod template's containers and init containers: each has an image and
/// a DNS-1123 label for a name, and no two share a name.
fn containers(rollout: &Rollout, errors: &mut Vec<SpecError>) {
    let Some(pod) = rollout.spec.template.spec.as_ref() else {
        return;
    };
    let mut seen: std::collections::BTreeMap<&str, String> = Default::default();
    let lists = [
        (
            "spec.template.spec.initContainers",
            pod.init_containers.as_deref().unwrap_or_default(),
        ),
        ("spec.template.spec.containers", pod.containers.as_slice()),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let field = format!("{list}[{i}]");
            if !is_dns1123_label(&c.name) {
                errors.push(SpecError::new(
                    &format!("{field}.name"),
                    format!("{:?} is not a container name", c.name),
                    "use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
                ));
            }
            if let Some(first) = seen.get(c.name.as_str()) {
                errors.push(SpecError::new(
                    &format!("{field}.name"),
                    format!("{:?} is also the name of {first}", c.name),
                    "give every container and init container its own name",
                ));
            } else {
                seen.insert(&c.name, field.clone());
            }
            if c.image
                .as_deref()
                .is_none_or(|image| image.trim().is_empty())
            {
                errors.push(SpecError::new(
                    &format!("{field}.image"),
                    "is missing",
                    "set the container's image, e.g. registry.example/web:1.2",
                ));
            }
        }
    }
}

/// The canary, its analyses and the traffic routing.
fn validate_canary(rollout: &Rollout, errors: &mut Vec<SpecError>) {
    let rb = &rollout.spec.strategy.red_black;
    let routed = rb
        .traffic_routing
        .as_ref()
        .is_some_and(|t| t.http_route.is_some());
    if let Some(canary) = &rb.canary {
        if canary.replicas < 1 {
            errors.push(SpecError::new(
                "spec.strategy.redBlack.canary.replicas",
                "must be at least 1",
                "a canary needs pods; 1 to 3 is typical",
            ));
        }
        let max = if canary.baseline { 50 } else { 99 };
        if let Some(p) = canary.traffic_percent
            && routed
            && !(1..=max).contains(&p)
        {
            errors.push(SpecError::new(
                "spec.strategy.redBlack.canary.trafficPercent",
                format!(
                    "{p} is outside 1..={max} (the baseline gets the same share as the canary)"
                ),
                "give the canary a small share, e.g. 5 or 10",
            ));
        }
        analysis_source(
            &canary.analysis,
            "spec.strategy.redBlack.canary.analysis",
            errors,
        );
    }
    if let Some(post) = &rb.post_promotion_analysis {
        let field = "spec.strategy.redBlack.postPromotionAnalysis";
        analysis_source(post, field, errors);
        let lifetime = post
            .inline
            .as_ref()
            .and_then(|v| v.get("lifetime"))
            .filter(|v| !v.is_null());
        // A lifetime that is there but not a duration is reported with the
        // other inline durations (analysis_source).
        if post.inline.is_some() && lifetime.is_none() {
            errors.push(SpecError::new(
                &format!("{field}.inline.lifetime"),
                "is missing; the control is judged over the same length before the switch",
                "set lifetime, e.g. 30m (and keep scaleDownDelay longer)",
            ));
        }
    }
    if let Some(traffic) = &rb.traffic_routing
        && let Some(route) = &traffic.http_route
        && route.name.is_empty()
    {
        errors.push(SpecError::new(
            "spec.strategy.redBlack.trafficRouting.httpRoute.name",
            "is empty",
            "name the HTTPRoute whose backends the operator may set",
        ));
    }
}

fn analysis_source(source: &AnalysisSource, field: &str, errors: &mut Vec<SpecError>) {
    match (&source.template_name, &source.inline) {
        (Some(_), Some(_)) => errors.push(SpecError::new(
            field,
            "sets both templateName and inline",
            "keep one: templateName (a CanaryAnalysisTemplate in this namespace) or inline",
        )),
        (None, None) => errors.push(SpecError::new(
            &format!("{field}.inline"),
            "is missing",
            "set inline to a CanaryAnalysis spec (metrics, interval, lifetime; the planner fills in the scopes), or templateName to a CanaryAnalysisTemplate in this namespace",
        )),
        (Some(name), None) if !is_template_name(name) => errors.push(SpecError::new(
            &format!("{field}.templateName"),
            format!("{name:?} is not a CanaryAnalysisTemplate name of at most 63 characters"),
            "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
        )),
        _ => {}
    }
    if source.inline.as_ref().is_some_and(|v| !v.is_object()) {
        errors.push(SpecError::new(
            &format!("{field}.inline"),
            "is not an object",
            "write the CanaryAnalysis spec as a mapping",
        ));
    }
    if let Some(inline) = source.inline.as_ref().filter(|v| v.is_object()) {
        errors.extend(analysis_durations(inline, &format!("{field}.inline")));
    }
}

/// The duration fields of a CanaryAnalysis body (`field` is its path, for
/// messages), read as the analysis controller reads them, so that a body the
/// Rollout accepts (inline, or a template's when it is used) does not become
/// a CanaryAnalysis with a bad duration.
pub fn analysis_durations(body: &serde_json::Value, field: &str) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for (path, min) in DURATION_FIELDS {
        let value = path.iter().try_fold(body, |v, key| v.get(key));
        let field = format!("{field}.{}", path.join("."));
        match value {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(text)) => {
                errors.extend(SpecError::duration(&field, text, min));
            }
            Some(other) => errors.push(SpecError::new(
                &field,
                format!("{other} is not a duration string"),
                format!("write it as a string of {}", redblack_duration::FORM),
            )),
        }
    }
    errors
}

/// [`super::rollout::TEMPLATE_NAME_PATTERN`], at most 63 characters.
fn is_template_name(name: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.starts_with(edge)
        && name.ends_with(edge)
        && name.chars().all(|c| edge(c) || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout() -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
                "strategy": {"redBlack": {"activeService": "web"}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let r = rollout();
        assert_eq!(validate(&r), vec![]);
        assert_eq!(r.spec.replicas, 1);
        assert_eq!(r.spec.revision_history_limit, 10);
        assert_eq!(r.spec.progress_deadline_seconds, 600);
        assert_eq!(r.spec.strategy.red_black.scale_down_delay, "30m");
    }

    #[test]
    fn durations_of_the_schema_pattern_are_read() {
        let re = regex::Regex::new(crate::api::DURATION_PATTERN).unwrap();
        for ok in ["30s", "30m", "2h", "1h30m", "1d", "0s", "500ms"] {
            assert!(re.is_match(ok) && parse_duration(ok).is_ok(), "{ok}");
        }
        for bad in ["1.5h", "1h 30m", "2min", "-1s", "1us"] {
            assert!(!re.is_match(bad) && parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duration_errors_name_the_field_and_the_form() {
        let mut r = rollout();
        r.spec.strategy.red_black.abort_scale_down_delay = "1.5h".into();
        r.spec.strategy.red_black.scale_down_delay = "36501d".into();
        let errors: Vec<_> = validate(&r).iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            vec![
                "spec.strategy.redBlack.scaleDownDelay: \"36501d\" is longer than the maximum of 100 years; use a shorter duration",
                "spec.strategy.redBlack.abortScaleDownDelay: \"1.5h\" is not a duration; write whole numbers each followed by a unit (ms, s, m, h or d), e.g. 30s, 5m, 1h30m, 500ms or 1d",
            ]
        );
    }

    /// Every duration field of an inline analysis is read as the analysis
    /// controller reads it (grammar, type and least value).
    #[test]
    fn inline_analysis_durations_name_their_field() {
        let mut r = rollout();
        r.spec.strategy.red_black.canary = Some(
            serde_json::from_value(serde_json::json!({
                "replicas": 1,
                "analysis": {"inline": {
                    "interval": "500ms", "lifetime": "10 min", "warmup": 30, "step": "0s",
                    "control": {"timeShift": "1.5h"}, "experiment": {"timeShift": "5m"},
                    "metrics": []
                }}
            }))
            .unwrap(),
        );
        r.spec.strategy.red_black.post_promotion_analysis = Some(
            serde_json::from_value(serde_json::json!({"inline": {"interval": "1m", "lifetime": "500ms", "metrics": []}}))
                .unwrap(),
        );
        let errors: Vec<_> = validate(&r).iter().map(ToString::to_string).collect();
        let inline = "spec.strategy.redBlack.canary.analysis.inline";
        assert_eq!(
            errors,
            vec![
                format!(
                    "{inline}.lifetime: \"10 min\" is not a duration; write {}",
                    redblack_duration::FORM
                ),
                format!("{inline}.interval: \"500ms\" is shorter than 1s; use at least 1s"),
                format!(
                    "{inline}.warmup: 30 is not a duration string; write it as a string of {}",
                    redblack_duration::FORM
                ),
                format!("{inline}.step: \"0s\" is shorter than 1s; use at least 1s"),
                format!(
                    "{inline}.control.timeShift: \"1.5h\" is not a duration; write {}",
                    redblack_duration::FORM
                ),
            ]
        );
    }

    #[test]
    fn each_error_names_the_field() {
        let mut r = rollout();
        r.spec.template.metadata.as_mut().unwrap().labels = None;
        r.spec.strategy.red_black.preview_service = Some("web".into());
        r.spec.strategy.red_black.scale_down_delay = "soon".into();
        r.spec.min_ready_seconds = 700;
        let fields: Vec<_> = validate(&r).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.template.metadata.labels",
                "spec.progressDeadlineSeconds",
                "spec.strategy.redBlack.previewService",
                "spec.strategy.redBlack.scaleDownDelay",
            ]
        );
    }

    #[test]
    fn canary_errors_name_the_field_and_the_fix() {
        let mut r = rollout();
        r.spec.strategy.red_black.canary = Some(
            serde_json::from_value(serde_json::json!({
                "replicas": 0, "trafficPercent": 60,
                "analysis": {"templateName": "Shared_Analysis"}
            }))
            .unwrap(),
        );
        r.spec.strategy.red_black.traffic_routing = Some(
            serde_json::from_value(serde_json::json!({"httpRoute": {"name": "web"}})).unwrap(),
        );
        r.spec.strategy.red_black.post_promotion_analysis = Some(
            serde_json::from_value(serde_json::json!({"inline": {"interval": "1m"}})).unwrap(),
        );
        r.spec.strategy.red_black.promotion_windows = vec![
            serde_json::from_value(serde_json::json!({"start": "9:00", "end": "17:00"})).unwrap(),
        ];
        let errors = validate(&r);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.strategy.redBlack.promotionWindows[0].start",
                "spec.strategy.redBlack.canary.replicas",
                "spec.strategy.redBlack.canary.trafficPercent",
                "spec.strategy.redBlack.canary.analysis.templateName",
                "spec.strategy.redBlack.postPromotionAnalysis.inline.lifetime",
            ]
        );
        assert!(
            errors[3].to_string().contains("\"Shared_Analysis\" is not"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn a_canary_with_an_inline_analysis_is_valid() {
        let mut r = rollout();
        r.spec.strategy.red_black.canary = Some(
            serde_json::from_value(serde_json::json!({
                "replicas": 1, "trafficPercent": 50,
                "analysis": {"inline": {"interval": "1m", "lifetime": "10m", "metrics": []}}
            }))
            .unwrap(),
        );
        r.spec.strategy.red_black.traffic_routing = Some(
            serde_json::from_value(serde_json::json!({"httpRoute": {"name": "web"}})).unwrap(),
        );
        assert_eq!(validate(&r), vec![]);
        let canary = r.spec.strategy.red_black.canary.as_ref().unwrap();
        assert!(canary.baseline, "baseline defaults to on");
    }

    #[test]
    fn analyses_by_template_name() {
        let mut r = rollout();
        r.spec.strategy.red_black.canary = Some(
            serde_json::from_value(serde_json::json!({
                "replicas": 1, "analysis": {"templateName": "latency.v2"}
            }))
            .unwrap(),
        );
        // No lifetime check for a template: it is checked when it is used.
        r.spec.strategy.red_black.post_promotion_analysis =
            Some(serde_json::from_value(serde_json::json!({"templateName": "post"})).unwrap());
        assert_eq!(validate(&r), vec![]);

        let source =
            |v: serde_json::Value| -> AnalysisSource { serde_json::from_value(v).unwrap() };
        let errors = |s: AnalysisSource| {
            let mut out = Vec::new();
            analysis_source(&s, "f", &mut out);
            out.into_iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        let both = errors(source(
            serde_json::json!({"templateName": "a", "inline": {}}),
        ));
        assert_eq!(both.len(), 1);
        assert!(both[0].starts_with("f: sets both"), "{both:?}");
        let neither = errors(source(serde_json::json!({})));
        assert!(
            neither[0].starts_with("f.inline: is missing"),
            "{neither:?}"
        );
        for bad in ["", "-a", "a-", "UPPER", "a_b", "x".repeat(64).as_str()] {
            let e = errors(source(serde_json::json!({ "templateName": bad })));
            assert_eq!(e.len(), 1, "{bad:?}");
            assert!(e[0].starts_with("f.templateName"), "{e:?}");
        }
        let re = regex::Regex::new(crate::api::rollout::TEMPLATE_NAME_PATTERN).unwrap();
        for ok in ["a", "latency", "web-latency.v2", "x".repeat(63).as_str()] {
            assert!(is_template_name(ok) && re.is_match(ok), "{ok}");
        }
        for bad in ["-a", "a-", "A", "a_b", "a b"] {
            assert!(!is_template_name(bad) && !re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn containers_need_an_image_and_their_own_dns_label_name() {
        let mut r = rollout();
        r.spec.template.spec = Some(
            serde_json::from_value(serde_json::json!({
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [
                    {"name": "web", "image": "web:1"},
                    {"name": "setup", "image": " "},
                    {"name": "Side_car"},
                ]
            }))
            .unwrap(),
        );
        let errors: Vec<_> = validate(&r).iter().map(ToString::to_string).collect();
        let c = "spec.template.spec.containers";
        assert_eq!(
            errors,
            vec![
                format!(
                    "{c}[1].name: \"setup\" is also the name of spec.template.spec.initContainers[0]; give every container and init container its own name"
                ),
                format!(
                    "{c}[1].image: is missing; set the container's image, e.g. registry.example/web:1.2"
                ),
                format!(
                    "{c}[2].name: \"Side_car\" is not a container name; use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
                ),
                format!(
                    "{c}[2].image: is missing; set the container's image, e.g. registry.example/web:1.2"
                ),
            ]
        );
    }

    #[test]
    fn label_keys_values_and_selector_operators() {
        let mut r = rollout();
        let bad = [("Example.com/app", "web"), ("tier", "front end")];
        for (k, v) in bad {
            r.spec
                .selector
                .match_labels
                .as_mut()
                .unwrap()
                .insert(k.into(), v.into());
            r.spec
                .template
                .metadata
                .as_mut()
                .unwrap()
                .labels
                .as_mut()
                .unwrap()
                .insert(k.into(), v.into());
        }
        r.spec.selector.match_expressions = Some(
            serde_json::from_value(serde_json::json!([
                {"key": "app", "operator": "In", "values": ["web"]},
                {"key": "app", "operator": "Exists", "values": ["web"]},
                {"key": "app", "operator": "Equals"},
                {"key": "-app", "operator": "NotIn", "values": ["a b"]},
                {"key": "app", "operator": "DoesNotExist"},
            ]))
            .unwrap(),
        );
        let fields: Vec<_> = validate(&r).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.selector.matchLabels",
                "spec.selector.matchLabels",
                "spec.template.metadata.labels",
                "spec.template.metadata.labels",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
                "spec.selector.matchExpressions[3].key",
                "spec.selector.matchExpressions[3].values",
            ]
        );
    }
}
