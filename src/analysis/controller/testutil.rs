//! Fixtures for the pure modules' tests.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::canary_analysis::CanaryAnalysis;

/// `1_700_000_000 + secs` (2023-11-14T22:13:20Z + secs).
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

/// A valid analysis (start at(0), 10 intervals of 1m, two metrics) with
/// `patch` merged into its spec (JSON merge patch: null removes a field).
pub fn analysis(patch: Value) -> CanaryAnalysis {
    let mut object = json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysis",
        "metadata": {"name": "web", "namespace": "shop", "generation": 1,
                     "creationTimestamp": "2023-11-14T22:13:20Z"},
        "spec": {
            "prometheus": {"url": "http://127.0.0.1:9"},
            "control": {"replicaSet": "web-1"},
            "experiment": {"replicaSet": "web-2"},
            "startTime": "2023-11-14T22:13:20Z",
            "lifetime": "10m",
            "interval": "1m",
            "metrics": [
                {"name": "latency", "direction": "increase",
                 "query": "avg(lat{pod=~\"${podRegex}\"})"},
                {"name": "errors", "kind": "rate", "direction": "increase",
                 "numerator": "sum(increase(err_total{pod=~\"${podRegex}\"}[${interval}]))",
                 "denominator": "sum(increase(req_total{pod=~\"${podRegex}\"}[${interval}]))"}
            ]
        }
    });
    json_patch::merge(&mut object["spec"], &patch);
    serde_json::from_value(object).unwrap()
}
