//! What a plan collects while it runs: actions, Events and wake-up timers.
//! Decisions produce [`Events`] as values; only the steps of `plan()` append
//! them (and actions) to the [`Builder`], so the order of the output is the
//! order of the steps.

use chrono::{DateTime, Utc};

use super::action::Action;

// One Event type for both controllers; the runtime publishes it.
pub use crate::runtime::events::{EventType, PlannedEvent};

/// Events in the order they were decided.
#[derive(Debug, Default)]
pub(crate) struct Events(Vec<PlannedEvent>);

impl Events {
    pub(crate) fn normal(&mut self, reason: &str, message: impl Into<String>) {
        self.push(EventType::Normal, reason, message.into());
    }
    pub(crate) fn warning(&mut self, reason: &str, message: impl Into<String>) {
        self.push(EventType::Warning, reason, message.into());
    }
    fn push(&mut self, type_: EventType, reason: &str, message: String) {
        self.0.push(PlannedEvent::new(type_, reason, message));
    }
    /// Appends `other` after the events already here.
    pub(crate) fn append(&mut self, other: Events) {
        self.0.extend(other.0);
    }
    /// An Event with `reason` was decided already in this plan.
    pub(crate) fn has_reason(&self, reason: &str) -> bool {
        self.0.iter().any(|e| e.reason == reason)
    }
    pub(crate) fn into_vec(self) -> Vec<PlannedEvent> {
        self.0
    }
}

/// Collects actions, events and timers while planning.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub(crate) actions: Vec<Action>,
    pub(crate) events: Events,
    /// Instants at which the plan must be made again (the earliest future one
    /// becomes `Plan::requeue_after`).
    pub(crate) wakeups: Vec<DateTime<Utc>>,
}

impl Builder {
    pub(crate) fn normal(&mut self, reason: &str, message: impl Into<String>) {
        self.events.normal(reason, message);
    }
    pub(crate) fn warning(&mut self, reason: &str, message: impl Into<String>) {
        self.events.warning(reason, message);
    }
    /// Scales a ReplicaSet and says so.
    pub(crate) fn scale(&mut self, name: &str, from: i32, to: i32) {
        self.actions.push(Action::ScaleReplicaSet {
            name: name.to_owned(),
            replicas: to,
        });
        self.normal(
            "ScaledReplicaSet",
            format!("scaled ReplicaSet {name} from {from} to {to}"),
        );
    }
}
