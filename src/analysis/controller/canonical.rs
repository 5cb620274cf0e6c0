//! The status as it compares after a round trip through the API, so that a
//! reconcile writes only when something really changed. PURE.

use crate::api::canary_analysis::CanaryAnalysisStatus;

/// The status as it compares after a round trip through the API: empty
/// objects (what server-side apply may leave of a removed nested object) are
/// dropped, so they equal an absent field.
pub fn canonical(status: Option<&CanaryAnalysisStatus>) -> serde_json::Value {
    fn prune(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, child| !prune(child));
                map.is_empty()
            }
            serde_json::Value::Array(items) => {
                for item in items.iter_mut() {
                    prune(item);
                }
                false
            }
            serde_json::Value::Null => true,
            _ => false,
        }
    }
    let mut value = serde_json::to_value(status).unwrap_or(serde_json::Value::Null);
    prune(&mut value);
    value
}
