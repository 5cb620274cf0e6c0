//! The write gate: fencing at the last point before a write leaves the
//! process. Every mutating request (POST, PUT, PATCH, DELETE) of the
//! controllers' client passes [`WriteGate::is_open`], which applies
//! [`decide::may_write`] to the monotonic clock *at that moment*; a closed
//! gate fails the request without sending it.
//!
//! Why here and not only at the top of a reconcile: a reconcile checked at
//! its start may be frozen (SIGSTOP, a stalled VM, a long GC pause of the
//! node) between that check and its writes. The gate is checked when the
//! request is built *and again* when its future is first polled (the HTTP
//! client sends nothing before that poll), and it sits *below* kube's retry
//! layer, so a write retried after a 429/503 passes it again. The clock is
//! `Instant` (CLOCK_MONOTONIC), which keeps counting while a process is
//! stopped: after SIGCONT every held write sees a stale renew and fails.
//!
//! What remains: a write that passed the gate and was handed to the HTTP
//! connection task in the microseconds before a freeze is sent after the
//! process resumes (as a write already in the kernel's socket buffer is).
//! See docs/operations.md, "What fencing guarantees".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use kube::client::Body;
use tower::BoxError;

use super::decide;

/// Shared by the elector (which records renews) and the client's layer
/// (which asks before every write).
#[derive(Debug)]
pub struct WriteGate {
    /// The origin of the stored instants (an `Instant` is not atomic).
    base: Instant,
    renew_deadline: Duration,
    /// Nanoseconds after `base` of the last successful renew's send, plus
    /// one; 0 = closed (never renewed, lost, or released).
    last_renew: AtomicU64,
    /// Writes refused, for logs and tests.
    refused: AtomicU64,
}

/// The error of a write the gate refused: this process is not (or no longer
/// provably) the leader.
#[derive(Debug, thiserror::Error)]
#[error("write not sent: this process does not hold the leader Lease (fenced)")]
pub struct Fenced;

impl WriteGate {
    pub fn new(renew_deadline: Duration) -> Arc<WriteGate> {
        Arc::new(WriteGate {
            base: Instant::now(),
            renew_deadline,
            last_renew: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// A renew sent at `sent` succeeded: writes may go out until
    /// `sent + renew_deadline`. An older renew never moves the gate back.
    pub fn renewed(&self, sent: Instant) {
        let nanos = sent.saturating_duration_since(self.base).as_nanos();
        let stored = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.last_renew.fetch_max(stored, Ordering::SeqCst);
    }

    /// No write passes from now on (leadership lost or released).
    pub fn close(&self) {
        self.last_renew.store(0, Ordering::SeqCst);
    }

    /// When the last successful renew was sent, if the gate is not closed.
    pub fn last_renew(&self) -> Option<Instant> {
        match self.last_renew.load(Ordering::SeqCst) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }

    /// May a write leave the process now?
    pub fn is_open(&self) -> bool {
        decide::may_write(self.last_renew(), self.renew_deadline, Instant::now())
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn admit(&self, method: &Method) -> bool {
        let write = matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        if !write || self.is_open() {
            return true;
        }
        self.refused.fetch_add(1, Ordering::SeqCst);
        false
    }
}

/// A tower layer putting [`WriteGate`] in front of a client stack.
#[derive(Clone)]
pub struct GateLayer(pub Arc<WriteGate>);

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
    gate: Arc<WriteGate>,
}

type Pending<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

impl<S, B> tower::Service<Request<Body>> for Gated<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>, Error = BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pending<Response<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = req.method().clone();
        if !self.gate.admit(&method) {
            tracing::warn!(%method, uri = %req.uri(), "write fenced: not the leader");
            return Box::pin(async { Err(Box::new(Fenced) as BoxError) });
        }
        let gate = self.gate.clone();
        let sent = self.inner.call(req);
        Box::pin(async move {
            // Asked again at the first poll, which is when the request is
            // actually handed to the connection: the task may have been
            // frozen since `call`.
            if !gate.admit(&method) {
                tracing::warn!(%method, "write fenced at send: not the leader");
                return Err(Box::new(Fenced) as BoxError);
            }
            sent.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_on_a_renew_and_closes_by_time_or_by_hand() {
        let gate = WriteGate::new(Duration::from_secs(3600));
        assert!(!gate.is_open(), "closed before the first renew");
        assert!(gate.admit(&Method::GET), "reads always pass");
        assert!(!gate.admit(&Method::PATCH));
        assert_eq!(gate.refused(), 1);
        let now = Instant::now();
        gate.renewed(now);
        assert!(gate.is_open());
        assert_eq!(gate.last_renew(), Some(now));
        // An older renew does not move it back.
        gate.renewed(gate.base);
        assert_eq!(gate.last_renew(), Some(now));
        gate.close();
        assert!(!gate.is_open());
        assert!(!gate.admit(&Method::DELETE));

        let short = WriteGate::new(Duration::ZERO);
        short.renewed(Instant::now());
        assert!(
            !short.is_open(),
            "a renew exactly renew_deadline ago is stale"
        );
    }
}
