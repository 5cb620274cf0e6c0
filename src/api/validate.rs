//! Checks the schema cannot express (or cannot express cheaply enough for the
//! API server's CEL cost budget). Each error names the field and the fix.

use std::time::Duration;

use super::rollout::Rollout;

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
}

/// Parses a duration field (`30m`, `1h30m`, `90s`).
pub fn parse_duration(value: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(value)
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
        if let Err(err) = parse_duration(value) {
            errors.push(SpecError::new(
                field,
                format!("{value:?} is not a duration ({err})"),
                "write it like 30s, 10m or 2h",
            ));
        }
    }
    if !(0..=10).contains(&rb.warm_revisions) {
        errors.push(SpecError::new(
            "spec.strategy.redBlack.warmRevisions",
            "must be between 0 and 10",
            "keep 1 (the previous revision) unless you need more",
        ));
    }
    for (i, window) in rb.promotion_windows.iter().enumerate() {
        if window.time_zone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(SpecError::new(
                &format!("spec.strategy.redBlack.promotionWindows[{i}].timeZone"),
                format!("{:?} is not an IANA time zone", window.time_zone),
                "use a name like UTC or Europe/Berlin",
            ));
        }
    }
    errors
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
    fn durations_humantime_reads() {
        for ok in ["30s", "30m", "2h", "1h30m", "1d", "0s"] {
            assert!(parse_duration(ok).is_ok(), "{ok}");
        }
        let re = regex::Regex::new(crate::api::rollout::DURATION_PATTERN).unwrap();
        for ok in ["30s", "1h30m", "500ms"] {
            assert!(re.is_match(ok) && parse_duration(ok).is_ok(), "{ok}");
        }
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
}
