//! The one Kubernetes Event type both planners emit ([`PlannedEvent`]) and
//! the one publisher that records them ([`EventPublisher`]), with one rule
//! for notes that are too long ([`truncate_note`]).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes Event a planner decided to record on its object; the shell
/// publishes it after the writes it describes succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub type_: EventType,
    /// PascalCase, e.g. `ScaledReplicaSet`.
    pub reason: String,
    pub message: String,
}

impl PlannedEvent {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self::new(EventType::Normal, reason, message)
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self::new(EventType::Warning, reason, message)
    }

    pub fn new(type_: EventType, reason: &str, message: impl Into<String>) -> Self {
        PlannedEvent {
            type_,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// `reportingInstance` of every Event: the pod name (`POD_NAME`, set from the
/// downward API by the chart), so Events of two replicas can be told apart.
pub fn reporting_instance() -> Option<String> {
    std::env::var("POD_NAME").ok()
}

/// The API server rejects an Event whose note exceeds 1 kB (events.k8s.io/v1).
pub const NOTE_LIMIT: usize = 1024;

/// `note` within [`NOTE_LIMIT`] bytes: a longer note is cut at a char
/// boundary and ends in `...`, so a reader sees that it was cut.
pub fn truncate_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_owned();
    }
    let mut end = NOTE_LIMIT - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

/// Records [`PlannedEvent`]s on the object they are about.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    /// The Event's `action` (what the controller was doing), e.g. `Reconcile`.
    action: &'static str,
}

impl EventPublisher {
    pub fn new(client: Client, reporter: Reporter, action: &'static str) -> Self {
        EventPublisher {
            client,
            reporter,
            action,
        }
    }

    /// Publishes `events` in order. Best effort: a failed Event is logged,
    /// never a reason to redo the writes it describes.
    pub async fn publish(&self, reference: &ObjectReference, events: &[PlannedEvent]) {
        for event in events {
            // A fresh recorder per Event: kube's recorder folds Events with the
            // same reason into one series keeping the FIRST note, which would
            // hide e.g. the second "ScaledReplicaSet" or "IntervalJudged". The
            // planners only emit transitions, so there is nothing to fold.
            let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
            let kube_event = Event {
                type_: match event.type_ {
                    EventType::Normal => KubeEventType::Normal,
                    EventType::Warning => KubeEventType::Warning,
                },
                reason: event.reason.clone(),
                note: Some(truncate_note(&event.message)),
                action: self.action.to_owned(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&kube_event, reference).await {
                tracing::warn!(reason = %event.reason, error = %e, "could not record event");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_notes_are_kept() {
        assert_eq!(truncate_note("abc"), "abc");
        let full = "a".repeat(NOTE_LIMIT);
        assert_eq!(truncate_note(&full), full);
    }

    #[test]
    fn long_notes_are_cut_at_a_char_boundary_and_marked() {
        let cut = truncate_note(&"é".repeat(800));
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with("..."));
        let cut = truncate_note(&"a".repeat(NOTE_LIMIT + 1));
        assert_eq!(cut.len(), NOTE_LIMIT);
    }
}
