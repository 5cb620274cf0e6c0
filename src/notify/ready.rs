//! PURE: the Notifier's `Ready` condition. Two things move it: the check of
//! its configuration (the Notifier controller, on every change and
//! periodically) and the outcome of deliveries (the delivery loop). A
//! configuration error wins; a configuration that checks out does not hide
//! a failing delivery; a delivery that succeeds clears either failure but a
//! configuration error.

use crate::api::ConditionStatus::{False, True};
use crate::api::conditions::{Condition, Desired, READY};

pub const INVALID_CONFIG: &str = "InvalidConfig";
pub const DELIVERY_FAILED: &str = "DeliveryFailed";

/// What was just learnt about a Notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Its configuration checked out, or not (the error names the field).
    Checked(Result<(), String>),
    Delivered,
    DeliveryFailed(String),
}

/// The Ready condition to write after `seen`, given the current one
/// (`None`: keep the current one).
pub fn next(current: Option<&Condition>, seen: &Observation) -> Option<Desired> {
    let reason = current.map(|c| c.reason.as_str());
    let desired = match seen {
        Observation::Checked(Err(e)) => Desired::new(READY, False, INVALID_CONFIG, e.clone()),
        Observation::Checked(Ok(())) => {
            if current.is_some() && reason != Some(INVALID_CONFIG) {
                return None;
            }
            Desired::new(
                READY,
                True,
                "Valid",
                "the channel is configured; no delivery failed yet",
            )
        }
        Observation::Delivered => {
            if reason == Some(INVALID_CONFIG) && current.is_some_and(|c| c.status == False) {
                return None;
            }
            Desired::new(READY, True, "Delivered", "the last delivery succeeded")
        }
        Observation::DeliveryFailed(message) => {
            if reason == Some(INVALID_CONFIG) && current.is_some_and(|c| c.status == False) {
                return None;
            }
            Desired::new(READY, False, DELIVERY_FAILED, message.clone())
        }
    };
    let same = current.is_some_and(|c| {
        c.status == desired.status && c.reason == desired.reason && c.message == desired.message
    });
    (!same).then_some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConditionStatus;

    fn cond(status: ConditionStatus, reason: &str, message: &str) -> Condition {
        Condition {
            type_: READY.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            last_transition_time: chrono::DateTime::UNIX_EPOCH,
            observed_generation: None,
        }
    }

    /// (name, current Ready, observation, expected (status, reason) or no write)
    type Row<'a> = (
        &'a str,
        Option<&'a Condition>,
        &'a Observation,
        Option<(ConditionStatus, &'a str)>,
    );

    #[test]
    fn the_table() {
        let invalid = cond(False, INVALID_CONFIG, "spec.webhook.url: bad");
        let failing = cond(False, DELIVERY_FAILED, "503");
        let delivered = cond(True, "Delivered", "the last delivery succeeded");
        let bad = Observation::Checked(Err("spec.webhook.url: bad".into()));
        let good = Observation::Checked(Ok(()));
        let fail = Observation::DeliveryFailed("503".into());
        let rows: Vec<Row> = vec![
            ("new, valid", None, &good, Some((True, "Valid"))),
            ("new, invalid", None, &bad, Some((False, INVALID_CONFIG))),
            ("invalid seen again: no write", Some(&invalid), &bad, None),
            ("fixed", Some(&invalid), &good, Some((True, "Valid"))),
            (
                "a check does not hide a failing delivery",
                Some(&failing),
                &good,
                None,
            ),
            ("a check keeps Delivered", Some(&delivered), &good, None),
            (
                "broken after deliveries",
                Some(&delivered),
                &bad,
                Some((False, INVALID_CONFIG)),
            ),
            (
                "a failure",
                Some(&delivered),
                &fail,
                Some((False, DELIVERY_FAILED)),
            ),
            ("the same failure: no write", Some(&failing), &fail, None),
            (
                "recovered",
                Some(&failing),
                &Observation::Delivered,
                Some((True, "Delivered")),
            ),
            (
                "delivered again: no write",
                Some(&delivered),
                &Observation::Delivered,
                None,
            ),
            (
                "a delivery does not hide invalid config",
                Some(&invalid),
                &Observation::Delivered,
                None,
            ),
            ("nor does a failure", Some(&invalid), &fail, None),
        ];
        for (name, current, seen, expected) in rows {
            let got = next(current, seen).map(|d| (d.status, d.reason));
            assert_eq!(got, expected.map(|(s, r)| (s, r.to_owned())), "{name}");
        }
    }
}
