//! PURE: a Rollout's effective subscriptions: its own `spec.notifications`,
//! then every Notifier of its namespace whose `subscribe.rolloutSelector`
//! matches its labels (a namespace-wide default). A selector that does not
//! parse selects nothing (the Notifier's `Ready` says why).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::api::notifier::{NotificationSubscription, Notifier};

/// The parsed selector, or the reason it does not parse.
pub fn selector(s: &LabelSelector) -> Result<Selector, String> {
    Selector::try_from(s.clone()).map_err(|e| e.to_string())
}

/// `own` followed by the defaults of `notifiers` (those of `namespace`
/// whose selector matches `labels`).
pub fn effective<'a>(
    own: &[NotificationSubscription],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    notifiers: impl IntoIterator<Item = &'a Notifier>,
) -> Vec<NotificationSubscription> {
    let mut out = own.to_vec();
    let mut defaults: Vec<NotificationSubscription> = notifiers
        .into_iter()
        .filter(|n| n.metadata.namespace.as_deref() == Some(namespace))
        .filter_map(|n| {
            let d = n.spec.subscribe.as_ref()?;
            let matches = selector(&d.rollout_selector).is_ok_and(|s| s.matches(labels));
            matches.then(|| NotificationSubscription {
                notifier: n.metadata.name.clone().unwrap_or_default(),
                triggers: d.triggers.clone(),
                min_severity: d.min_severity,
            })
        })
        .collect();
    // Stable order whatever the cache's.
    defaults.sort_by(|a, b| a.notifier.cmp(&b.notifier));
    out.extend(defaults);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::notifier::{Severity, Trigger};
    use serde_json::json;

    fn notifier(ns: &str, name: &str, subscribe: serde_json::Value) -> Notifier {
        serde_json::from_value(json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Notifier",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"webhook": {"url": "http://x/"}, "subscribe": subscribe}
        }))
        .unwrap()
    }

    #[test]
    fn own_first_then_matching_defaults_of_the_namespace() {
        let labels: BTreeMap<String, String> = [
            ("team".to_owned(), "shop".to_owned()),
            ("tier".to_owned(), "web".to_owned()),
        ]
        .into();
        let own = vec![NotificationSubscription {
            notifier: "mine".into(),
            triggers: vec![Trigger::Promoted],
            min_severity: Severity::Info,
        }];
        let all = [
            notifier("shop", "z-everyone", json!({"rolloutSelector": {}})),
            notifier(
                "shop",
                "a-team",
                json!({"rolloutSelector": {"matchLabels": {"team": "shop"}},
                                               "minSeverity": "Critical"}),
            ),
            notifier(
                "shop",
                "other-team",
                json!({"rolloutSelector": {"matchLabels": {"team": "ops"}}}),
            ),
            notifier(
                "shop",
                "expr",
                json!({"rolloutSelector": {"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]}]},
                "triggers": ["CanaryVerdict"]}),
            ),
            notifier(
                "shop",
                "bad",
                json!({"rolloutSelector": {"matchExpressions": [
                {"key": "tier", "operator": "Sideways", "values": ["web"]}]}}),
            ),
            notifier("other-ns", "elsewhere", json!({"rolloutSelector": {}})),
        ];
        let got = effective(&own, "shop", &labels, all.iter());
        let names: Vec<&str> = got.iter().map(|s| s.notifier.as_str()).collect();
        assert_eq!(names, ["mine", "a-team", "expr", "z-everyone"]);
        assert_eq!(got[1].min_severity, Severity::Critical);
        assert_eq!(got[2].triggers, [Trigger::CanaryVerdict]);
        let without = notifier("shop", "plain", json!(null));
        assert_eq!(effective(&[], "shop", &labels, [&without]), []);
    }
}
