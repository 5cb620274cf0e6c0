//! What every handler shares, and the parsed form of one API request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{HeaderMap, Method, header};
use bytes::Bytes;

use super::counters::RequestCounts;
use super::faults::Faults;
use super::route::ObjectPath;
use crate::auth::Tokens;
use crate::registry::{Registry, ResourceType};
use crate::store::Store;

pub struct AppState {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub counts: RequestCounts,
    pub faults: Faults,
    /// The bearer tokens this sandbox issued.
    pub tokens: Arc<Tokens>,
    /// Who a request without credentials is.
    pub anonymous: crate::auth::Anonymous,
    /// What process pods wrote (`pods/log`).
    pub logs: crate::controllers::pod_logs::PodLogs,
    pub addr: SocketAddr,
    /// Flips to true when the sandbox shuts down, so long watches end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    next_cluster_ip: AtomicU32,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(
        store: Arc<Store>,
        registry: Arc<Registry>,
        faults: Faults,
        tokens: Arc<Tokens>,
        addr: SocketAddr,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            registry,
            counts: RequestCounts::default(),
            faults,
            tokens,
            anonymous: crate::auth::Anonymous::default(),
            logs: Default::default(),
            addr,
            shutdown,
            // 10.96.0.1 is the `kubernetes` Service on real clusters; start after it.
            next_cluster_ip: AtomicU32::new(10),
        }
    }

    /// The next free-looking address in 10.96.0.0/16 for a Service.
    pub fn allocate_cluster_ip(&self) -> String {
        let n = self.next_cluster_ip.fetch_add(1, Ordering::Relaxed) % 65_000 + 2;
        format!("10.96.{}.{}", n / 256, n % 256)
    }
}

/// One request to a collection, object or subresource, with its kind resolved.
pub struct Req {
    pub method: Method,
    pub path: ObjectPath,
    pub rt: ResourceType,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    pub fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| !v.is_empty())
    }

    pub fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }

    /// `fieldManager`, else the client's user agent name (as the API server does).
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.q("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}
