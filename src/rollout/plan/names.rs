//! What the Rollout's children are called and how they are selected: every
//! name, label set and selector the planner writes. One place, so that the
//! shell (`observe.rs`), the actions and the status agree on them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::analysis_template::ANALYSIS_TEMPLATE_LABEL;
use crate::api::k8s_names::{
    DNS_LABEL_MAX, DNS1123_SUBDOMAIN_MAX, LABEL_VALUE_MAX, REPLICA_SET_NAME_MAX, fit,
    is_dns1035_label, is_dns1123_subdomain, is_label_value,
};
use crate::api::{POD_TEMPLATE_HASH_LABEL, ROLE_LABEL, ROLLOUT_LABEL, Rollout, pod_template_hash};

/// Role of the canary's fleet (label `ROLE_LABEL`, Service `<rollout>-canary`).
pub const CANARY: &str = "canary";
/// Role of the baseline fleet: a fresh copy of the stable revision.
pub const BASELINE: &str = "baseline";

/// A Rollout without a name cannot be stored; the fallback keeps this total.
fn rollout_name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("rollout")
}

// The name budget. Every name below is `<rollout><suffix>` when that is
// within its kind's limit and syntax; otherwise (only for long or, for
// Services, dotted or digit-first Rollout names) `k8s_names::fit` shortens
// the Rollout's part to `<readable prefix>-<8 hex of sha256(rollout name)>`
// and keeps the suffix whole. Limits:
// - ReplicaSets: a DNS subdomain of at most 247 characters (253 less the
//   `-xxxxx` of their pods' names);
// - CanaryAnalyses: a DNS subdomain of at most 253;
// - Services: a DNS-1035 label of at most 63;
// - label values (the Rollout label): at most 63.

/// A ReplicaSet's name: `<rollout><suffix>`, within the budget.
fn replica_set(rollout: &Rollout, suffix: &str) -> String {
    fit(
        rollout_name(rollout),
        suffix,
        REPLICA_SET_NAME_MAX,
        false,
        is_dns1123_subdomain,
    )
}

/// A CanaryAnalysis's name: `<rollout><suffix>`, within the budget.
fn analysis(rollout: &Rollout, suffix: &str) -> String {
    fit(
        rollout_name(rollout),
        suffix,
        DNS1123_SUBDOMAIN_MAX,
        false,
        is_dns1123_subdomain,
    )
}

/// `<rollout>-<hash>`: the ReplicaSet of revision `hash`.
pub fn replica_set_name(rollout: &Rollout, hash: &str) -> String {
    replica_set(rollout, &format!("-{hash}"))
}

/// `<rollout>-<hash>-canary`: the canary of revision `hash`.
pub fn canary_name(rollout: &Rollout, hash: &str) -> String {
    replica_set(rollout, &format!("-{hash}-canary"))
}

/// `<rollout>-<stable hash>-baseline`: a fresh copy of the stable revision.
pub fn baseline_name(rollout: &Rollout, stable_hash: &str) -> String {
    replica_set(rollout, &format!("-{stable_hash}-baseline"))
}

/// `<rollout>-<hash>-<attempt>`: the CanaryAnalysis of one canary attempt.
pub fn analysis_name(rollout: &Rollout, hash: &str, attempt: i32) -> String {
    analysis(rollout, &format!("-{hash}-{attempt}"))
}

/// `<rollout>-<hash>-post-<unix seconds of the switch>`: unique per promotion,
/// so a revision promoted again gets a fresh judgement.
pub fn post_promotion_analysis_name(
    rollout: &Rollout,
    hash: &str,
    switched_at: DateTime<Utc>,
) -> String {
    analysis(
        rollout,
        &format!("-{hash}-post-{}", switched_at.timestamp()),
    )
}

/// `<rollout>-<hash>-<gate>-<attempt>`: the Job of a Job gate. A label
/// value (its pods carry `job-name`), so at most 63 characters.
pub fn gate_job_name(rollout: &Rollout, hash: &str, gate: &str, attempt: i32) -> String {
    fit(
        rollout_name(rollout),
        &format!("-{hash}-{gate}-{attempt}"),
        LABEL_VALUE_MAX,
        true,
        crate::api::k8s_names::is_dns1123_label,
    )
}

/// `<rollout>-<hash>-pre-<unix seconds of its start>`: the pre-promotion
/// analysis; a retry starts a fresh one.
pub fn pre_promotion_analysis_name(
    rollout: &Rollout,
    hash: &str,
    started_at: DateTime<Utc>,
) -> String {
    analysis(rollout, &format!("-{hash}-pre-{}", started_at.timestamp()))
}

/// `<rollout>-canary` / `<rollout>-baseline`: the Services of the roles. A
/// Service name is a DNS-1035 label, so a dotted (`web.v2`), digit-first or
/// long Rollout name gets the shortened form (`web-v2-<8 hex>-canary`).
pub fn role_service_name(rollout: &Rollout, role: &str) -> String {
    fit(
        rollout_name(rollout),
        &format!("-{role}"),
        DNS_LABEL_MAX,
        true,
        is_dns1035_label,
    )
}

/// The value of `ROLLOUT_LABEL` on the Rollout's Services and analyses: its
/// name, or the shortened form for a name over 63 characters.
pub fn rollout_label_value(rollout: &Rollout) -> String {
    fit(
        rollout_name(rollout),
        "",
        LABEL_VALUE_MAX,
        false,
        is_label_value,
    )
}

/// `selector.matchLabels`: every pod of the Rollout (stable, canary and
/// baseline alike). The active Service selects this while a canary's share
/// is given by replica counts.
pub fn base_selector(rollout: &Rollout) -> BTreeMap<String, String> {
    rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
}

/// `selector.matchLabels` plus the revision hash: what a Service selects.
pub fn service_selector(rollout: &Rollout, hash: &str) -> BTreeMap<String, String> {
    let mut selector = base_selector(rollout);
    selector.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    selector
}

/// What selects the pods of a role's fleet (its ReplicaSet and its Service):
/// `matchLabels` plus the role and the role template's hash.
pub fn role_selector(rollout: &Rollout, role: &str, hash: &str) -> BTreeMap<String, String> {
    let mut selector = base_selector(rollout);
    selector.insert(ROLE_LABEL.to_owned(), role.to_owned());
    selector.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    selector
}

/// `k=v,k=v`: a label selector as `status.selector` (the scale subresource)
/// spells it.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod template of a role's fleet and the hash its pods are labelled
/// with: `base` (without our hash label) plus the role label, hashed as is.
/// The hash differs from the revision's, so no revision Service (which
/// selects `matchLabels` + revision hash) ever selects canary or baseline pods.
pub fn role_template(base: &PodTemplateSpec, role: &str) -> (PodTemplateSpec, String) {
    let mut template = base.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.remove(POD_TEMPLATE_HASH_LABEL);
    labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
    meta.labels = Some(labels.clone());
    let hash = pod_template_hash(&template);
    labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels = Some(labels);
    (template, hash)
}

/// Labels of a CanaryAnalysis the planner creates: the Rollout, the revision
/// and, when its body came from a CanaryAnalysisTemplate, the template.
pub fn analysis_labels(
    rollout: &Rollout,
    revision: &str,
    template: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (ROLLOUT_LABEL.to_owned(), rollout_label_value(rollout)),
        (POD_TEMPLATE_HASH_LABEL.to_owned(), revision.to_owned()),
    ]);
    if let Some(template) = template {
        labels.insert(ANALYSIS_TEMPLATE_LABEL.to_owned(), template.to_owned());
    }
    labels
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    // The parent by its full path: tests/plan_layers.rs reads `super` as
    // the planner module (it does not see this nested module).
    use crate::api::k8s_names::is_dns1123_subdomain;
    use crate::rollout::plan::names::*;

    fn rollout(name: &str) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
                "strategy": {"redBlack": {"activeService": "web"}}
            }
        }))
        .unwrap()
    }

    /// Every derived name of `name` (hash `hash`), by family, as today's
    /// scheme spelled it and as the budget spells it.
    fn families(name: &str, hash: &str, ts: i64) -> Vec<(&'static str, String, String)> {
        let r = rollout(name);
        let at = DateTime::from_timestamp(ts, 0).unwrap();
        vec![
            (
                "replicaSet",
                format!("{name}-{hash}"),
                replica_set_name(&r, hash),
            ),
            (
                "canary",
                format!("{name}-{hash}-canary"),
                canary_name(&r, hash),
            ),
            (
                "baseline",
                format!("{name}-{hash}-baseline"),
                baseline_name(&r, hash),
            ),
            (
                "analysis",
                format!("{name}-{hash}-3"),
                analysis_name(&r, hash, 3),
            ),
            (
                "postPromotion",
                format!("{name}-{hash}-post-{ts}"),
                post_promotion_analysis_name(&r, hash, at),
            ),
            (
                "canaryService",
                format!("{name}-canary"),
                role_service_name(&r, CANARY),
            ),
            (
                "baselineService",
                format!("{name}-baseline"),
                role_service_name(&r, BASELINE),
            ),
            ("rolloutLabel", name.to_owned(), rollout_label_value(&r)),
        ]
    }

    fn valid(family: &str, s: &str) -> bool {
        match family {
            "replicaSet" | "canary" | "baseline" => {
                s.len() <= REPLICA_SET_NAME_MAX && is_dns1123_subdomain(s)
            }
            "analysis" | "postPromotion" => is_dns1123_subdomain(s),
            "canaryService" | "baselineService" => is_dns1035_label(s),
            "rolloutLabel" => is_label_value(s),
            other => panic!("{other}"),
        }
    }

    /// A valid Rollout name: a DNS-1123 subdomain of up to 253 characters
    /// (Kubernetes limits its total length only, not each dot-separated part).
    fn rollout_names() -> impl Strategy<Value = String> {
        let part = "[a-z0-9]([-a-z0-9]{0,70}[a-z0-9])?";
        prop_oneof![
            "[a-z][-a-z0-9]{0,20}[a-z0-9]",
            proptest::collection::vec(part, 1..6).prop_map(|p| p.join(".")),
            "[a-z0-9][-a-z0-9]{180,251}[a-z0-9]",
            "[a-z0-9]{240,253}",
        ]
        .prop_filter("a DNS subdomain", |n| is_dns1123_subdomain(n))
    }

    const HASH: &str = "[bcdfghjklmnpqrstvwxz2456789]{10}";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_derived_name_is_valid_and_only_the_unfit_change(
            name in rollout_names(), hash in HASH, ts in 0i64..4_000_000_000,
        ) {
            let first = families(&name, &hash, ts);
            prop_assert_eq!(&first, &families(&name, &hash, ts), "deterministic");
            for (family, old, new) in &first {
                prop_assert!(valid(family, new), "{} {:?} -> {:?}", family, name, new);
                if valid(family, old) {
                    prop_assert_eq!(old, new, "{} of {:?} changed", family, name);
                }
            }
            // The fleets of one Rollout stay apart.
            let fleets: std::collections::BTreeSet<_> = first[..3].iter().map(|f| &f.2).collect();
            prop_assert_eq!(fleets.len(), 3);
        }

        #[test]
        fn distinct_rollouts_get_distinct_names(
            a in rollout_names(), b in rollout_names(), hash in HASH,
        ) {
            prop_assume!(a != b);
            for ((family, old_a, new_a), (_, old_b, new_b)) in
                families(&a, &hash, 1).into_iter().zip(families(&b, &hash, 1))
            {
                if old_a != old_b {
                    prop_assert_ne!(new_a, new_b, "{} of {:?} and {:?}", family, a, b);
                }
            }
        }
    }

    #[test]
    fn short_names_are_todays_and_long_ones_fit() {
        let r = rollout("web");
        assert_eq!(replica_set_name(&r, "abc"), "web-abc");
        assert_eq!(canary_name(&r, "abc"), "web-abc-canary");
        assert_eq!(role_service_name(&r, CANARY), "web-canary");
        assert_eq!(rollout_label_value(&r), "web");

        let dotted = rollout("web.v2");
        assert_eq!(replica_set_name(&dotted, "abc"), "web.v2-abc");
        let svc = role_service_name(&dotted, CANARY);
        assert!(
            svc.starts_with("web-v2-") && svc.ends_with("-canary"),
            "{svc}"
        );
        assert_eq!(svc.len(), "web-v2-".len() + 8 + "-canary".len());

        let long = "a".repeat(250);
        let r = rollout(&long);
        let rs = canary_name(&r, "bcdfghjklm");
        assert_eq!(rs.len(), REPLICA_SET_NAME_MAX);
        assert!(rs.ends_with("-bcdfghjklm-canary"), "{rs}");
        assert_eq!(rollout_label_value(&r).len(), LABEL_VALUE_MAX);
        assert_eq!(role_service_name(&r, BASELINE).len(), DNS_LABEL_MAX);
    }
}
