//! Liveness and readiness. Live as soon as the process serves HTTP; ready once the
//! controllers have synced their caches, so a rolling update of the operator does
//! not send traffic (or leadership) to an instance that knows nothing yet;
//! under leader election a standby is ready too (see [`Readiness`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::leader::Role;

/// What `/readyz` answers. Without leader election the process is ready
/// once its caches have synced. Under election (docs/operations.md, "High
/// availability"): the leader once its caches have synced, a standby as long
/// as its last look found the Lease held by another (it could take over) — a standby
/// must be Ready, or a rolling update of a 2-replica Deployment with a
/// PodDisruptionBudget would never finish; a replica that lost the Lease is
/// not ready (it is about to exit).
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    election: AtomicU8,
}

// The `election` states.
const UNELECTED: u8 = 0;
const STANDBY: u8 = 1;
const STANDBY_BLIND: u8 = 2;
const LEADER: u8 = 3;
const LOST: u8 = 4;

impl Readiness {
    /// The caches have (not) synced.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The role in the election, as it changes.
    pub fn set_role(&self, role: Role) {
        let state = match role {
            Role::Standby { healthy: true } => STANDBY,
            Role::Standby { healthy: false } => STANDBY_BLIND,
            Role::Leader => LEADER,
            Role::Lost | Role::Released => LOST,
        };
        self.election.store(state, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.status().0
    }

    /// Ready or not, and the word `/readyz` says it with.
    pub fn status(&self) -> (bool, &'static str) {
        let synced = self.ready.load(Ordering::Relaxed);
        match (self.election.load(Ordering::Relaxed), synced) {
            (UNELECTED, true) => (true, "ok"),
            (LEADER, true) => (true, "ok: leader"),
            (UNELECTED | LEADER, false) => (false, "caches not synced yet"),
            (STANDBY, _) => (true, "ok: standby"),
            (STANDBY_BLIND, _) => (false, "standby: cannot read the leader Lease"),
            _ => (false, "leadership lost; stopping"),
        }
    }
}

pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> (StatusCode, &'static str) {
    match readiness.status() {
        (true, word) => (StatusCode::OK, word),
        (false, word) => (StatusCode::SERVICE_UNAVAILABLE, word),
    }
}

/// Serves `router` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_by_role_and_caches() {
        let r = Readiness::default();
        assert!(!r.is_ready(), "no election, caches not synced");
        r.set_ready(true);
        assert_eq!(r.status(), (true, "ok"));
        let cases = [
            (Role::Standby { healthy: true }, false, true),
            (Role::Standby { healthy: false }, false, false),
            (Role::Leader, false, false),
            (Role::Leader, true, true),
            (Role::Lost, true, false),
            (Role::Released, true, false),
        ];
        for (role, synced, ready) in cases {
            r.set_role(role);
            r.set_ready(synced);
            assert_eq!(r.is_ready(), ready, "{role:?}, synced {synced}");
        }
    }
}
