//! Graceful deletion, as the real API server decides it (the pod strategy's
//! `CheckGracefulDelete` and the generic `BeforeDelete`): PURE functions of the
//! stored object, the requested grace period and the clock.
//!
//! Only pods are deleted gracefully. Deleting one that runs on a node marks it
//! (`deletionTimestamp` = now + grace, `deletionGracePeriodSeconds` = grace)
//! and leaves it to the kubelet, which stops its containers and then deletes it
//! again with a grace period of 0, which removes it. Every other kind, and a
//! pod that is not scheduled or has already finished, goes at once (or waits
//! only for its finalizers).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::registry::ResourceType;

/// What the API server defaults `spec.terminationGracePeriodSeconds` to.
pub const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;

/// What a delete request does to an object, before finalizers are considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grace {
    /// Not graceful: remove now (or mark and wait for finalizers).
    Immediate,
    /// Start (or shorten) a graceful deletion: store these two fields.
    Mark {
        deletion_timestamp: String,
        grace_seconds: i64,
    },
    /// A graceful deletion is already under way and the request does not
    /// shorten it: nothing changes.
    Pending,
}

fn is_pod(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Pod"
}

fn deletion_grace(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The grace period a first delete gives a pod: the request's, else the pod's
/// `terminationGracePeriodSeconds` (default 30); 0 for a pod no node runs
/// (unscheduled) or one that already finished; a negative value counts as 1.
pub fn pod_grace_seconds(pod: &Value, requested: Option<i64>) -> i64 {
    let spec = pod.get("spec");
    let period = requested.unwrap_or_else(|| {
        spec.and_then(|s| s.get("terminationGracePeriodSeconds"))
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_TERMINATION_GRACE_SECONDS)
    });
    let scheduled = spec
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || finished {
        0
    } else if period < 0 {
        1
    } else {
        period
    }
}

/// What a delete of `current` with `requested` grace seconds does at `now`.
pub fn before_delete(
    rt: &ResourceType,
    current: &Value,
    requested: Option<i64>,
    now: DateTime<Utc>,
) -> Grace {
    if !is_pod(rt) {
        return Grace::Immediate;
    }
    // A negative request counts as 1 second, as the API server does.
    let requested = requested.map(|p| if p < 0 { 1 } else { p });
    let deleting = current
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    if deleting {
        // Marked without a grace period (finalizers only): a delete goes ahead.
        let Some(old) = deletion_grace(current).filter(|g| *g > 0) else {
            return Grace::Immediate;
        };
        // Only a shorter grace period may be asked for.
        return match requested {
            Some(period) if period < old => {
                let since = current
                    .pointer("/metadata/deletionTimestamp")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(now, |t| t.with_timezone(&Utc));
                let at = since - chrono::Duration::seconds(old) + chrono::Duration::seconds(period);
                Grace::Mark {
                    deletion_timestamp: rfc3339(at),
                    grace_seconds: period,
                }
            }
            _ => Grace::Pending,
        };
    }
    let period = pod_grace_seconds(current, requested);
    Grace::Mark {
        deletion_timestamp: rfc3339(now + chrono::Duration::seconds(period)),
        grace_seconds: period,
    }
}

/// Whether an update that leaves a deleting object without finalizers removes
/// it: only when no grace period is running (the kubelet's final delete, not
/// its status writes, removes a terminating pod).
pub fn removed_on_update(obj: &Value) -> bool {
    deletion_grace(obj).is_none_or(|g| g == 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    fn rt(kind: &str) -> ResourceType {
        Registry::new().by_kind("v1", kind).unwrap()
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec, "status": {"phase": "Running"}})
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_pods_grace_period_comes_from_the_request_then_its_spec_then_30() {
        let on_node = json!({"nodeName": "sandbox"});
        assert_eq!(pod_grace_seconds(&pod(on_node.clone()), None), 30);
        let mut spec = on_node.clone();
        spec["terminationGracePeriodSeconds"] = json!(7);
        assert_eq!(pod_grace_seconds(&pod(spec.clone()), None), 7);
        assert_eq!(pod_grace_seconds(&pod(spec.clone()), Some(2)), 2);
        spec["terminationGracePeriodSeconds"] = json!(-4);
        assert_eq!(pod_grace_seconds(&pod(spec), None), 1);
        // Nothing runs it, or it already ended: nothing to wait for.
        assert_eq!(pod_grace_seconds(&pod(json!({})), Some(60)), 0);
        let mut done = pod(on_node);
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_grace_seconds(&done, None), 0);
    }

    #[test]
    fn only_pods_are_deleted_gracefully() {
        let now = at("2030-01-01T00:00:00Z");
        let cm = json!({"metadata": {"name": "c"}});
        assert_eq!(
            before_delete(&rt("ConfigMap"), &cm, Some(30), now),
            Grace::Immediate
        );
        let p = pod(json!({"nodeName": "sandbox"}));
        assert_eq!(
            before_delete(&rt("Pod"), &p, None, now),
            Grace::Mark {
                deletion_timestamp: "2030-01-01T00:00:30Z".into(),
                grace_seconds: 30
            }
        );
        assert_eq!(
            before_delete(&rt("Pod"), &p, Some(-3), now),
            Grace::Mark {
                deletion_timestamp: "2030-01-01T00:00:01Z".into(),
                grace_seconds: 1
            }
        );
    }

    #[test]
    fn a_terminating_pods_grace_period_may_only_get_shorter() {
        let now = at("2030-01-01T00:00:10Z");
        let mut p = pod(json!({"nodeName": "sandbox"}));
        p["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:30Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        let pods = rt("Pod");
        assert_eq!(before_delete(&pods, &p, None, now), Grace::Pending);
        assert_eq!(before_delete(&pods, &p, Some(30), now), Grace::Pending);
        assert_eq!(before_delete(&pods, &p, Some(45), now), Grace::Pending);
        // Shortened from when the deletion started (00:00:00), as the API does.
        assert_eq!(
            before_delete(&pods, &p, Some(5), now),
            Grace::Mark {
                deletion_timestamp: "2030-01-01T00:00:05Z".into(),
                grace_seconds: 5
            }
        );
        assert!(!removed_on_update(&p));
        // Marked with 0 (the kubelet is done, a finalizer holds it): deletes go ahead.
        p["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        assert_eq!(before_delete(&pods, &p, None, now), Grace::Immediate);
        assert!(removed_on_update(&p));
    }
}
