//! Watches: newline-delimited JSON events on a chunked response, from a
//! resourceVersion (out of the store's history) or from "now" with synthetic
//! ADDED events, filtered per watcher, with bookmarks and 410 on expired versions.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::accept::{IncludeObject, Representation};
use super::errors::{ApiError, ApiResult};
use super::list::selectors;
use super::selectors::Selectors;
use super::state::{Req, Shared};
use super::table;
use crate::registry::{GroupResource, ResourceType};
use crate::store::{EventType, StoredEvent, meta_str};

/// How long a watch may stay silent before a bookmark (when the client allows them).
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);
/// Events buffered per watcher before the sender waits for the client.
const CHANNEL_DEPTH: usize = 256;

/// Everything a watcher needs to filter and encode events.
struct Watcher {
    rt: ResourceType,
    gr: GroupResource,
    namespace: Option<String>,
    sel: Selectors,
    repr: Representation,
    include: IncludeObject,
    /// Keys currently matching a selector, so that objects that stop (start)
    /// matching are sent as DELETED (ADDED), as the watch cache does.
    known: HashSet<(String, String)>,
    /// Keys changed between the requested resourceVersion and now: whether they
    /// matched at that version is unknown, so their first event is sent in a
    /// form that is right either way (ADDED/MODIFIED if matching, else DELETED).
    uncertain: HashSet<(String, String)>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
}

fn key(obj: &Value) -> (String, String) {
    (
        meta_str(obj, "namespace").unwrap_or("").to_string(),
        meta_str(obj, "name").unwrap_or("").to_string(),
    )
}

impl Watcher {
    fn in_scope(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(obj, "namespace").unwrap_or("") == ns)
    }

    fn encode(&self, event_type: &str, obj: &Value) -> Bytes {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(event_type.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        // Serializing a Value into a Vec cannot fail.
        let _ = match self.repr {
            Representation::Full => {
                serde_json::to_writer(&mut out, super::respond::in_version(&self.rt, obj).as_ref())
            }
            Representation::Metadata => {
                serde_json::to_writer(&mut out, &table::partial_metadata(obj))
            }
            Representation::Table => {
                let t = table::table(&self.rt, &[Arc::new(obj.clone())], self.include, json!({}));
                serde_json::to_writer(&mut out, &t)
            }
        };
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    /// Sends one event; false when the client is gone.
    async fn send(&self, event_type: &str, obj: &Value) -> bool {
        self.tx.send(Ok(self.encode(event_type, obj))).await.is_ok()
    }

    async fn send_raw(&self, event: Value) -> bool {
        let mut bytes = serde_json::to_vec(&event).unwrap_or_default();
        bytes.push(b'\n');
        self.tx.send(Ok(Bytes::from(bytes))).await.is_ok()
    }

    async fn bookmark(&self, rv: u64, initial_end: bool) -> bool {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.send_raw(json!({
            "type": "BOOKMARK",
            "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta},
        }))
        .await
    }

    /// Filters and forwards one stored event; false when the client is gone.
    async fn process(&mut self, ev: &StoredEvent) -> bool {
        if ev.gr != self.gr || !self.in_scope(&ev.object) {
            return true;
        }
        if self.sel.is_empty() {
            return self.send(ev.event_type.as_str(), &ev.object).await;
        }
        let matches = self.sel.matches(&ev.object);
        let k = key(&ev.object);
        if self.uncertain.remove(&k) {
            let t = match ev.event_type {
                EventType::Deleted => "DELETED",
                _ if !matches => "DELETED",
                EventType::Added => "ADDED",
                EventType::Modified => "MODIFIED",
            };
            if matches && ev.event_type != EventType::Deleted {
                self.known.insert(k);
            }
            return self.send(t, &ev.object).await;
        }
        let out = match ev.event_type {
            EventType::Added if matches => {
                self.known.insert(k);
                Some("ADDED")
            }
            EventType::Added => None,
            EventType::Modified if matches => {
                if self.known.insert(k) {
                    Some("ADDED")
                } else {
                    Some("MODIFIED")
                }
            }
            EventType::Modified => self.known.remove(&k).then_some("DELETED"),
            EventType::Deleted => (self.known.remove(&k) || matches).then_some("DELETED"),
        };
        match out {
            Some(t) => self.send(t, &ev.object).await,
            None => true,
        }
    }
}

/// How a watch begins.
enum Start {
    /// Synthetic ADDED for these, then live events after `rv`.
    Initial {
        objects: Vec<Arc<Value>>,
        rv: u64,
        end_bookmark: bool,
    },
    /// Replay of stored events after the requested version, then live.
    Resume {
        backlog: Vec<Arc<StoredEvent>>,
        rv: u64,
    },
    /// The requested version is older than the history.
    Expired(String),
}

pub fn watch(st: &Shared, req: &Req, repr: Representation) -> ApiResult<Response> {
    let sel = selectors(req)?;
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = req.flag("sendInitialEvents");
    let timeout = match req.q("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds: {t}"))
        })?)),
        None => None,
    }
    // 0 means "no timeout" (the server's default), not "end at once".
    .filter(|t| !t.is_zero());
    let limit = [timeout, st.faults.watch_cut_after()]
        .into_iter()
        .flatten()
        .min();
    let gr = req.rt.group_resource();
    let rv_param = req.q("resourceVersion").unwrap_or("");
    // For a selector watch that resumes, the current objects are read BEFORE the
    // backlog: anything that changes in between is then in the backlog.
    let resuming = !(rv_param.is_empty() || rv_param == "0" || send_initial);
    let resume_list = (resuming && !sel.is_empty()).then(|| st.store.list(&gr, req.namespace()).0);
    let (start, rx) = if !resuming {
        let (objects, rv, rx) = st.store.snapshot_and_subscribe(&gr, req.namespace());
        (
            Start::Initial {
                objects,
                rv,
                end_bookmark: send_initial && bookmarks,
            },
            Some(rx),
        )
    } else {
        let rv: u64 = rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_param}")))?;
        match st.store.watch_from(rv) {
            Ok((backlog, rx)) => (Start::Resume { backlog, rv }, Some(rx)),
            Err(e) => (Start::Expired(e.to_string()), None),
        }
    };
    let (tx, body_rx) = mpsc::channel(CHANNEL_DEPTH);
    let mut watcher = Watcher {
        rt: req.rt.clone(),
        gr,
        namespace: req.namespace().map(String::from),
        sel,
        repr,
        include: IncludeObject::from_query(req.q("includeObject")),
        known: HashSet::new(),
        uncertain: HashSet::new(),
        tx,
    };
    if let Start::Resume { backlog, .. } = &start
        && !watcher.sel.is_empty()
    {
        // Objects the backlog does not touch are as they were at the requested
        // version, so what matches now matched then.
        watcher.uncertain = backlog
            .iter()
            .filter(|e| e.gr == watcher.gr && watcher.in_scope(&e.object))
            .map(|e| key(&e.object))
            .collect();
        watcher.known = resume_list
            .unwrap_or_default()
            .iter()
            .filter(|o| watcher.sel.matches(o))
            .map(|o| key(o))
            .filter(|k| !watcher.uncertain.contains(k))
            .collect();
    }
    let shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        run(watcher, start, rx, bookmarks, limit, shutdown).await;
    });
    let mut resp = (
        StatusCode::OK,
        Body::from_stream(ReceiverStream::new(body_rx)),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// A watch answered at once with one ERROR event carrying `error`'s Status
/// (a 410 `Expired`, injected), then the end of the stream.
pub fn expired(error: &ApiError) -> Response {
    let mut body = serde_json::to_vec(&json!({"type": "ERROR", "object": error.to_status()}))
        .unwrap_or_default();
    body.push(b'\n');
    super::respond::raw_json(StatusCode::OK, body)
}

async fn run(
    mut w: Watcher,
    start: Start,
    rx: Option<broadcast::Receiver<Arc<StoredEvent>>>,
    bookmarks: bool,
    limit: Option<Duration>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_rv = match start {
        Start::Expired(message) => {
            let status = ApiError::gone(message).to_status();
            let _ = w.send_raw(json!({"type": "ERROR", "object": status})).await;
            return;
        }
        Start::Initial {
            objects,
            rv,
            end_bookmark,
        } => {
            for obj in objects.iter().filter(|o| w.sel.matches(o)) {
                if !w.sel.is_empty() {
                    w.known.insert(key(obj));
                }
                if !w.send("ADDED", obj).await {
                    return;
                }
            }
            if end_bookmark && !w.bookmark(rv, true).await {
                return;
            }
            rv
        }
        Start::Resume { backlog, rv } => {
            let mut last = rv;
            for ev in &backlog {
                last = ev.rv;
                if !w.process(ev).await {
                    return;
                }
            }
            last
        }
    };
    let Some(mut rx) = rx else { return };
    let deadline = limit.map(|l| Instant::now() + l);
    let mut last_sent = Instant::now();
    let mut tick = tokio::time::interval(BOOKMARK_EVERY / 4);
    loop {
        tokio::select! {
            _ = w.tx.closed() => return,
            _ = shutdown.changed() => return,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
            _ = tick.tick(), if bookmarks => {
                if last_sent.elapsed() >= BOOKMARK_EVERY {
                    if !w.bookmark(last_rv, false).await { return; }
                    last_sent = Instant::now();
                }
            }
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if ev.rv <= last_rv { continue; }
                    last_rv = ev.rv;
                    if ev.gr == w.gr {
                        if !w.process(&ev).await { return; }
                        last_sent = Instant::now();
                    }
                }
                // A watcher this far behind is dropped; the client resumes from
                // its last resourceVersion (out of the history, or by relisting).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    tracing::debug!(resource = %w.gr.resource, "watcher lagged; ending the stream");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
