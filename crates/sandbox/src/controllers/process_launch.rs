//! What one start of a process pod's process runs: the program (the demo app
//! or the operator), read from the pod once (`Program::from_pod`), and made
//! concrete on every start (`Program::prepare`): free loopback ports, the
//! address flags moved to them, the ServiceAccount kubeconfig written.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::store::{Store, meta_str};

use super::operator_spec::{
    DeclaredPort, arguments, declared_ports, operator_tag, ports_to_map, resolve_port,
    rewrite_addresses, with_address_defaults,
};
use super::pod_env::{PodIps, expand, resolve_env, service_account_name};
use super::process_credentials::{ApiAccess, ensure_service_account};
use super::process_spec::{Probe, SpecError, container_env, demo_app_tag, process_env};

/// The program a process pod runs.
#[derive(Clone, Debug)]
pub(crate) enum Program {
    /// `redblack demo-app`, told its port by `PORT`.
    Demo { env: BTreeMap<String, String> },
    /// `redblack <args>` (the operator image), as its ServiceAccount. Read
    /// again at every start, as a kubelet does: a ConfigMap or ServiceAccount
    /// that appears later lets a waiting container start.
    Operator {
        pod: Value,
        container: Value,
        declared: Vec<DeclaredPort>,
    },
}

/// One start's command line and where it listens.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The demo app's one port (it serves everything there).
    pub app_port: Option<u16>,
    /// Container port → loopback port, in declaration order (the operator).
    pub ports: Vec<(u16, u16)>,
}

/// A free loopback port, found by binding port 0. Another process may take it
/// before the app binds: the app then exits with "address in use", the pod
/// shows it, and the restart picks another port.
pub(crate) fn pick_port() -> Result<u16, SpecError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| SpecError::RunContainerError(format!("no free loopback port: {e}")))
}

/// What the kubelet's downward API says of a process pod.
fn process_ips() -> PodIps {
    PodIps {
        pod_ip: Ipv4Addr::LOCALHOST.to_string(),
        host_ip: super::pods::HOST_IP.to_string(),
    }
}

/// Does this image run as a process (including one of those repositories
/// with a bad tag, which then shows why it cannot)?
pub(crate) fn is_process_image(image: &str) -> bool {
    !matches!(demo_app_tag(image), Ok(None)) || !matches!(operator_tag(image), Ok(None))
}

impl Program {
    /// Reads the program of `container` (one whose image `is_process_image`).
    pub(crate) fn from_pod(
        pod: &Value,
        container: &Value,
        image: &str,
    ) -> Result<Program, SpecError> {
        if let Some(tag) = demo_app_tag(image)? {
            let env = container_env(container, &tag)?;
            // Validated now, with any port, so a bad value never reaches a process.
            process_env(&env, 0)?;
            return Ok(Program::Demo { env });
        }
        operator_tag(image)?;
        Ok(Program::Operator {
            pod: pod.clone(),
            container: container.clone(),
            declared: declared_ports(container),
        })
    }

    /// Ports, flags and credentials for one start.
    pub(crate) fn prepare(&self, ctx: &ProcessContext) -> Result<Prepared, SpecError> {
        let store = &ctx.store;
        match self {
            Program::Demo { env } => {
                let port = pick_port()?;
                Ok(Prepared {
                    args: vec!["demo-app".into()],
                    env: process_env(env, port)?,
                    app_port: Some(port),
                    ports: Vec::new(),
                })
            }
            Program::Operator {
                pod,
                container,
                declared,
            } => {
                let (Some(api), Some(service_accounts)) = (&ctx.api, &ctx.service_accounts) else {
                    return Err(SpecError::RunContainerError(
                        "the sandbox runs no API for process pods (ControllersConfig::api), \
                         so the operator has no credentials"
                            .into(),
                    ));
                };
                let namespace = meta_str(pod, "namespace").unwrap_or("");
                let lookup = |kind: &str, name: &str| {
                    let plural = if kind == "Secret" {
                        "secrets"
                    } else {
                        "configmaps"
                    };
                    let gr = crate::registry::GroupResource::new("", plural);
                    store.get(&gr, namespace, name).map(|o| (*o).clone())
                };
                let env = resolve_env(container, pod, &process_ips(), &lookup)?;
                let args: Vec<String> = arguments(container)?
                    .iter()
                    .map(|a| expand(a, &env))
                    .collect();
                let args = with_address_defaults(&args);
                let uid = meta_str(pod, "uid").unwrap_or("");
                let sa = service_account_name(pod);
                ensure_service_account(store, service_accounts, namespace, sa)?;
                let kubeconfig = api.kubeconfig(namespace, sa, uid)?;
                let ports = ports_to_map(&args, declared)
                    .into_iter()
                    .map(|p| pick_port().map(|host| (p, host)))
                    .collect::<Result<Vec<_>, _>>()?;
                let map: BTreeMap<u16, u16> = ports.iter().copied().collect();
                let hostname = meta_str(pod, "name").unwrap_or("");
                Ok(Prepared {
                    args: rewrite_addresses(&args, &map),
                    env: operator_env(&env, &kubeconfig, hostname),
                    app_port: None,
                    ports,
                })
            }
        }
    }

    /// The loopback port a probe of this program connects to.
    pub(crate) fn probe_port(&self, probe: &Probe, prepared: &Prepared) -> Option<u16> {
        match self {
            Program::Demo { .. } => prepared.app_port,
            Program::Operator { declared, .. } => {
                let port = resolve_port(probe.port.as_ref()?, declared)?;
                prepared
                    .ports
                    .iter()
                    .find(|(c, _)| *c == port)
                    .map(|(_, h)| *h)
            }
        }
    }

    pub(crate) fn is_demo(&self) -> bool {
        matches!(self, Program::Demo { .. })
    }
}

/// The container's env, plus what a kubelet adds that the operator reads:
/// `KUBECONFIG` stands in for the mounted token, and `HOSTNAME` is the pod's.
fn operator_env(
    env: &BTreeMap<String, String>,
    kubeconfig: &Path,
    hostname: &str,
) -> BTreeMap<String, String> {
    let mut out = env.clone();
    out.entry("HOSTNAME".into())
        .or_insert_with(|| hostname.to_string());
    out.insert(
        "KUBECONFIG".into(),
        kubeconfig.to_string_lossy().into_owned(),
    );
    out
}

/// Shared handles a process pod needs from the pod controller.
#[derive(Clone)]
pub struct ProcessContext {
    pub store: Arc<Store>,
    pub logs: super::pod_logs::PodLogs,
    pub api: Option<ApiAccess>,
    /// The ServiceAccount kind (a pod's `default` one is made when missing).
    pub service_accounts: Option<crate::registry::ResourceType>,
}
