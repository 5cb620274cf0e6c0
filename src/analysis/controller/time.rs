//! Conversions between chrono (what metric sources use) and Kubernetes `Time`
//! (jiff), at whole seconds: Kubernetes timestamps have second precision,
//! and truncating once keeps a re-read status equal to the one written.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A Kubernetes time, truncated to the second. Out-of-range instants (beyond
/// year 9999) saturate to jiff's bounds.
pub fn to_time(at: DateTime<Utc>) -> Time {
    Time(
        Timestamp::from_second(at.timestamp()).unwrap_or(if at.timestamp() < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        }),
    )
}

/// A chrono instant, truncated to the second; `None` if out of chrono's range.
pub fn from_time(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), 0)
}

/// `at` truncated to the second.
pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// `at` as RFC 3339 at second precision, for status messages.
pub fn fmt_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_second_precision() {
        let at = DateTime::from_timestamp(1_700_000_123, 456_000_000).unwrap();
        let t = to_time(at);
        assert_eq!(from_time(&t), Some(truncate(at)));
        assert_eq!(serde_json::to_value(&t).unwrap(), "2023-11-14T22:15:23Z");
    }
}
