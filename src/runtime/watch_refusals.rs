//! Watches the API refuses (403 Forbidden, e.g. a ClusterRole without `list`
//! or `watch` on a kind). kube's watcher retries such a failure with backoff
//! for ever and the controller's caches never sync, so without this the only
//! trace would be a log line: each watch records its last refusal here (and
//! clears it once it lists again), and the controller turns it into a
//! condition and an Event the user sees.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::runtime::watcher;

/// The current refusal of each watch, by what it watches (`replicasets.apps`).
#[derive(Clone, Debug, Default)]
pub struct WatchRefusals(Arc<Mutex<BTreeMap<&'static str, String>>>);

/// The API's message when `error` is a 403; None for anything else
/// (transient failures are retried quietly by the watcher).
pub fn forbidden_message(error: &watcher::Error) -> Option<String> {
    let source = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        watcher::Error::WatchError(status) if status.code == 403 => {
            return Some(status.message.clone());
        }
        _ => return None,
    };
    match source {
        kube::Error::Api(status) if status.code == 403 => Some(status.message.clone()),
        _ => None,
    }
}

impl WatchRefusals {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `error` for the watch of `what` when it is a refusal; returns
    /// the message when it is new (so a caller can announce it once).
    pub fn failed(&self, what: &'static str, error: &watcher::Error) -> Option<String> {
        let message = forbidden_message(error)?;
        let previous = self.lock().insert(what, message.clone());
        (previous.as_deref() != Some(message.as_str())).then_some(message)
    }

    /// The watch of `what` works (again).
    pub fn succeeded(&self, what: &'static str) {
        self.lock().remove(what);
    }

    /// One current refusal (the first by name), if any.
    pub fn first(&self) -> Option<(&'static str, String)> {
        self.lock().iter().next().map(|(w, m)| (*w, m.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, message: &str) -> watcher::Error {
        let status = Status::failure(message, "Forbidden").with_code(code);
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn only_refusals_are_recorded_and_announced_once() {
        let r = WatchRefusals::default();
        assert_eq!(r.failed("pods", &api_error(500, "boom")), None);
        assert_eq!(r.first(), None);
        assert_eq!(
            r.failed("pods", &api_error(403, "pods is forbidden")),
            Some("pods is forbidden".into())
        );
        assert_eq!(r.failed("pods", &api_error(403, "pods is forbidden")), None);
        assert_eq!(r.first(), Some(("pods", "pods is forbidden".into())));
        r.succeeded("pods");
        assert_eq!(r.first(), None);
    }
}
