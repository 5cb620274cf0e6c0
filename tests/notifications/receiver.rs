//! A webhook receiver the test starts on 127.0.0.1 (a real axum server):
//! records every request it acknowledges with a 200, and answers 503
//! instead while told it is down.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)?.to_str().ok().map(str::to_owned)
    }
}

#[derive(Default)]
struct Inner {
    down: bool,
    received: Vec<Received>,
    refused: u32,
    /// While set, requests wait (unanswered) until it is cleared: a slow endpoint.
    held: Option<tokio::sync::watch::Receiver<bool>>,
    in_flight: u32,
}

pub struct Receiver {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, inner, task }
    }

    /// While down, every request is answered 503 and not recorded.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// Holds every request unanswered until the returned sender sends `true`.
    pub fn hold(&self) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.inner.lock().unwrap().held = Some(rx);
        tx
    }

    /// Requests waiting for an answer.
    pub fn in_flight(&self) -> u32 {
        self.inner.lock().unwrap().in_flight
    }

    /// The requests acknowledged (200) so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Those to `path`.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Requests answered 503.
    pub fn refused(&self) -> u32 {
        self.inner.lock().unwrap().refused
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let held = inner.lock().unwrap().held.clone();
    if let Some(mut released) = held {
        inner.lock().unwrap().in_flight += 1;
        let _ = released.wait_for(|r| *r).await;
        inner.lock().unwrap().in_flight -= 1;
    }
    let mut inner = inner.lock().unwrap();
    if inner.down {
        inner.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    inner.received.push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::OK
}
