//! Keeps one proxy listener per Service and per HTTPRoute: opened when the object
//! appears, closed when it goes, its port kept for the object's lifetime and
//! reported in the object's `sandbox.redblack.io/proxy-port` annotation.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backends::{httproutes, services};
use super::proxy::{Proxy, serve};
use super::{PROXY_PORT_ANNOTATION, Target};
use crate::controllers::runner::Reconciler;
use crate::controllers::{ControllerError, is_deleting, obj_key};
use crate::registry::{GroupResource, Registry};
use crate::store::{Store, StoreError, StoredEvent, UpdateTarget};

pub(crate) type Ports = Arc<Mutex<BTreeMap<Target, u16>>>;

/// An open listener; dropping it closes the port and its connections.
struct Listener {
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) struct ListenerController {
    store: Arc<Store>,
    registry: Arc<Registry>,
    proxy: Arc<Proxy>,
    listeners: HashMap<Target, Listener>,
    ports: Ports,
    write_annotations: bool,
}

impl ListenerController {
    pub(crate) fn new(
        store: Arc<Store>,
        registry: Arc<Registry>,
        proxy: Arc<Proxy>,
        ports: Ports,
    ) -> Self {
        Self {
            store,
            registry,
            proxy,
            listeners: HashMap::new(),
            ports,
            write_annotations: true,
        }
    }

    pub(crate) fn annotating(mut self, annotate: bool) -> Self {
        self.write_annotations = annotate;
        self
    }

    fn target(gr: &GroupResource, obj: &Value) -> Option<Target> {
        let (namespace, name) = obj_key(obj);
        if *gr == services() {
            Some(Target::Service { namespace, name })
        } else if *gr == httproutes() {
            Some(Target::HttpRoute { namespace, name })
        } else {
            None
        }
    }

    fn set_port(&self, target: &Target, port: Option<u16>) {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        match port {
            Some(p) => ports.insert(target.clone(), p),
            None => ports.remove(target),
        };
    }

    fn open(&mut self, target: &Target) -> Result<u16, ControllerError> {
        if let Some(l) = self.listeners.get(target) {
            return Ok(l.port);
        }
        let bind = || -> std::io::Result<(tokio::net::TcpListener, u16)> {
            let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            std_listener.set_nonblocking(true)?;
            let port = std_listener.local_addr()?.port();
            Ok((tokio::net::TcpListener::from_std(std_listener)?, port))
        };
        let (listener, port) = bind().map_err(|e| {
            ControllerError::Exhausted(format!("loopback port for the proxy of {target}: {e}"))
        })?;
        let task = tokio::spawn(serve(listener, self.proxy.clone(), target.clone()));
        tracing::info!(%target, port, "data plane listening on 127.0.0.1:{port}");
        self.listeners
            .insert(target.clone(), Listener { port, task });
        self.set_port(target, Some(port));
        Ok(port)
    }

    /// Writes the port into the object's annotations, if it is not there yet.
    fn annotate(&self, gr: &GroupResource, obj: &Value, port: u16) -> Result<(), ControllerError> {
        let wanted = port.to_string();
        let current = obj
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(PROXY_PORT_ANNOTATION))
            .and_then(Value::as_str);
        if current == Some(wanted.as_str()) {
            return Ok(());
        }
        // A kind not (or no longer) registered cannot be written; the listener
        // still works and `DataPlaneHandle` still reports the port.
        let Some(rt) = self.registry.by_group_resource(gr) else {
            return Ok(());
        };
        let mut next = obj.clone();
        if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            if let Some(map) = annotations.as_object_mut() {
                map.insert(PROXY_PORT_ANNOTATION.into(), json!(wanted));
            }
        }
        match self.store.update(&rt, next, UpdateTarget::Main) {
            // Deleted meanwhile: its event closes the listener.
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for ListenerController {
    type Key = Target;
    const NAME: &'static str = "dataplane";

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<Target>) {
        out.extend(Self::target(&event.gr, &event.object));
    }

    fn all_keys(&mut self) -> Vec<Target> {
        let mut keys: Vec<Target> = self.listeners.keys().cloned().collect();
        for gr in [services(), httproutes()] {
            let (objects, _) = self.store.list(&gr, None);
            keys.extend(objects.iter().filter_map(|o| Self::target(&gr, o)));
        }
        keys
    }

    fn reconcile(&mut self, target: &Target) -> Result<Option<Instant>, ControllerError> {
        let (gr, namespace, name) = target.parts();
        let Some(obj) = self
            .store
            .get(&gr, namespace, name)
            .filter(|o| !is_deleting(o))
        else {
            if self.listeners.remove(target).is_some() {
                tracing::info!(%target, "data plane listener closed");
            }
            self.set_port(target, None);
            return Ok(None);
        };
        let port = self.open(target)?;
        if self.write_annotations {
            self.annotate(&gr, &obj, port)?;
        }
        Ok(None)
    }
}
