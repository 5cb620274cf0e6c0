//! A kube client whose writes pass a gate: the harness's way to kill the
//! operator *exactly* after its k-th write.
//!
//! Every mutating request (POST, PUT, PATCH, DELETE) is counted. Once the
//! gate is closed — by the budget (write k+1 is attempted) or by the harness
//! (a kill at a random time) — no further write is ever sent: the request
//! stays pending forever and the harness is notified, kills the operator and
//! starts a fresh one. A write already sent is not recalled, exactly as with a
//! SIGKILL after the bytes left the process. Background tasks the killed
//! operator may leave behind cannot write either: the gate stays closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};
use kube::client::Body;
use tokio::sync::Notify;

pub struct Gate {
    /// Writes attempted (sent or held).
    attempted: AtomicU64,
    /// Writes that may be sent; `u64::MAX` for no limit.
    budget: u64,
    closed: AtomicBool,
    tripped: Notify,
    /// Close the gate for every write after the n-th write to a Service
    /// (the n-th switch): a kill pinned to a step rather than to a count.
    after_service_writes: Option<u64>,
    service_writes: AtomicU64,
}

impl Gate {
    pub fn new(budget: Option<u64>) -> Arc<Gate> {
        Gate::with(budget, None)
    }

    /// A gate that closes right after the n-th write to a Service went out.
    pub fn after_service_writes(n: u64) -> Arc<Gate> {
        Gate::with(None, Some(n))
    }

    fn with(budget: Option<u64>, after_service_writes: Option<u64>) -> Arc<Gate> {
        Arc::new(Gate {
            attempted: AtomicU64::new(0),
            budget: budget.unwrap_or(u64::MAX),
            closed: AtomicBool::new(false),
            tripped: Notify::new(),
            after_service_writes,
            service_writes: AtomicU64::new(0),
        })
    }

    /// Writes that went out to the API server.
    pub fn sent(&self) -> u64 {
        self.attempted.load(Ordering::SeqCst).min(self.budget)
    }

    /// No write passes from now on (a kill at an arbitrary time).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Resolves once a write has been held back by the gate.
    pub async fn tripped(&self) {
        self.tripped.notified().await;
    }

    /// Whether this request may go out; counts it if it is a write.
    fn admit(&self, method: &Method, path: &str) -> bool {
        let write = matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        if !write {
            return true;
        }
        let n = self.attempted.fetch_add(1, Ordering::SeqCst) + 1;
        if self.closed.load(Ordering::SeqCst) || n > self.budget {
            self.closed.store(true, Ordering::SeqCst);
            // notify_one keeps a permit: a harness not yet waiting still sees it.
            self.tripped.notify_one();
            return false;
        }
        if path.contains("/services/")
            && Some(self.service_writes.fetch_add(1, Ordering::SeqCst) + 1)
                == self.after_service_writes
        {
            // This one goes out; nothing after it does.
            self.closed.store(true, Ordering::SeqCst);
        }
        true
    }
}

/// A client for `url` whose writes pass `gate`.
pub fn gated_client(url: &str, token: &str, namespace: &str, gate: Arc<Gate>) -> kube::Client {
    redblack_sandbox::install_crypto_provider();
    let uri: http::Uri = url.parse().expect("sandbox URL");
    let mut config = kube::Config::new(uri);
    config.default_namespace = namespace.to_owned();
    config.auth_info.token = Some(token.to_owned().into());
    kube::client::ClientBuilder::try_from(config)
        .expect("client stack")
        .with_layer(&GateLayer(gate))
        .build()
}

struct GateLayer(Arc<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gated<S>;
    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            gate: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
}

type Pending<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S> tower::Service<Request<Body>> for Gated<S>
where
    S: tower::Service<Request<Body>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pending<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if self.gate.admit(request.method(), request.uri().path()) {
            Box::pin(self.inner.call(request))
        } else {
            // Never sent, never answered: the process "died" before this write.
            Box::pin(std::future::pending())
        }
    }
}
