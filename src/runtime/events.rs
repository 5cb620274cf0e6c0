//! The one Kubernetes Event type both planners emit ([`PlannedEvent`]) and
//! the one publisher that records them ([`EventPublisher`]), with one rule
//! for notes that are too long ([`truncate_note`]) and one for names
//! ([`event_name`]).
//!
//! The publisher writes `events.k8s.io/v1` Events itself rather than through
//! kube's `Recorder`: the Recorder names an Event `<object>.<16 hex>`, which
//! the API refuses for objects whose names are longer than 236 characters
//! (valid Rollout names go to 253), so their Events were lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::events::Reporter;
use kube::{Api, Client};

use crate::api::k8s_names::{DNS1123_SUBDOMAIN_MAX, fit, is_dns1123_subdomain};

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

/// The operator's own Pod (`POD_NAME`, `POD_NAMESPACE`, set by the chart), on
/// which it records what it cannot record on a Rollout (e.g. that it may not
/// watch Rollouts at all).
pub fn operator_reference() -> Option<ObjectReference> {
    let name = std::env::var("POD_NAME").ok()?;
    let namespace = std::env::var("POD_NAMESPACE").ok()?;
    Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name),
        namespace: Some(namespace),
        ..ObjectReference::default()
    })
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
    /// Objects whose last Event the API refused (`namespace/name` → the
    /// API's message), so a planner can say so where it still can: the
    /// status.
    refused: Arc<Mutex<HashMap<String, String>>>,
}

fn key(reference: &ObjectReference) -> String {
    format!(
        "{}/{}",
        reference.namespace.as_deref().unwrap_or(""),
        reference.name.as_deref().unwrap_or("")
    )
}

impl EventPublisher {
    pub fn new(client: Client, reporter: Reporter, action: &'static str) -> Self {
        EventPublisher {
            client,
            reporter,
            action,
            refused: Arc::default(),
        }
    }

    /// The API's message if it refused (4xx) the last Event recorded on `reference`.
    pub fn refusal(&self, reference: &ObjectReference) -> Option<String> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(&key(reference)).cloned()
    }

    /// Records `events` on `reference`, in order. Best effort: an Event the
    /// API refuses is logged and the others are still recorded (an Event
    /// describes writes that already happened; it must never undo them).
    pub async fn publish(&self, reference: &ObjectReference, events: &[PlannedEvent]) {
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        for event in events {
            let body = self.event(reference, namespace, event);
            let outcome = api.create(&PostParams::default(), &body).await;
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Ok(_) => {
                    refused.remove(&key(reference));
                }
                Err(e) => {
                    tracing::warn!(reason = %event.reason, error = %e, "could not record event");
                    if let kube::Error::Api(status) = &e
                        && (400..500).contains(&status.code)
                        && status.code != 429
                    {
                        refused.insert(key(reference), status.message.clone());
                    }
                }
            }
        }
    }

    fn event(
        &self,
        reference: &ObjectReference,
        namespace: &str,
        event: &PlannedEvent,
    ) -> K8sEvent {
        let now = k8s_openapi::jiff::Timestamp::now();
        let object = reference
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        let nanos = now.as_nanosecond();
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(event_name(object, nanos)),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            action: Some(self.action.to_owned()),
            reason: Some(event.reason.clone()),
            note: Some(truncate_note(&event.message)),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
        }
    }
}

/// `<object>.<nanoseconds in hex>` as kubectl and kube name Events, with the
/// object's part shortened (deterministically, with a hash) so the whole is a
/// DNS subdomain of at most 253 characters for every valid object name.
pub fn event_name(object: &str, nanos: i128) -> String {
    let stamp = format!("{nanos:x}");
    let room = DNS1123_SUBDOMAIN_MAX - 1 - stamp.len();
    format!(
        "{}.{stamp}",
        fit(object, "", room, false, is_dns1123_subdomain)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_fit_for_every_object_name_length() {
        let nanos = i128::from(i64::MAX);
        assert_eq!(event_name("web", 255), "web.ff");
        for len in [1, 63, 200, 236, 237, 240, 253] {
            let object = "a".repeat(len);
            let name = event_name(&object, nanos);
            assert!(name.len() <= 253, "{len}: {}", name.len());
            assert!(is_dns1123_subdomain(&name), "{name}");
            assert_eq!(name, event_name(&object, nanos), "deterministic");
        }
        // Dotted names stay dotted subdomains.
        let dotted = format!("{}.v2", "w".repeat(249));
        assert!(is_dns1123_subdomain(&event_name(&dotted, nanos)));
        // Distinct long names keep distinct prefixes.
        let (a, b) = ("a".repeat(250) + "x", "a".repeat(250) + "y");
        assert_ne!(event_name(&a, nanos), event_name(&b, nanos));
    }

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
