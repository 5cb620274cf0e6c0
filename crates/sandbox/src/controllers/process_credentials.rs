//! A process pod's ServiceAccount credentials, as a kubelet mounts a token:
//! the sandbox writes a kubeconfig for `system:serviceaccount:NS:NAME` (the
//! pod's `spec.serviceAccountName`, default `default`) to a file of its own
//! and the process gets `KUBECONFIG` pointing at it.
//!
//! A ServiceAccount that does not exist keeps the container from starting,
//! with the message a real API server's ServiceAccount admission plugin gives
//! when it refuses such a pod (the sandbox admits it, and its kubelet refuses
//! to start it instead, retrying with back-off until the ServiceAccount
//! appears; see docs/sandbox.md).

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Tokens;
use crate::auth::tokens::service_account_user;
use crate::kubeconfig::{kubeconfig_yaml, write_kubeconfig};
use crate::registry::GroupResource;
use crate::store::Store;

use super::process_spec::SpecError;

/// How process pods reach the sandbox's API: its URL, the tokens it issues,
/// and a private directory for the per-pod kubeconfig files.
#[derive(Clone, Debug)]
pub struct ApiAccess {
    pub server_url: String,
    pub tokens: Arc<Tokens>,
    pub dir: PathBuf,
}

/// The admission plugin's words for a pod whose ServiceAccount is missing.
pub fn missing_service_account(namespace: &str, name: &str) -> String {
    format!(
        "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
    )
}

impl ApiAccess {
    /// The kubeconfig file of pod `uid`, acting as ServiceAccount
    /// `namespace/name` (written again on every start: the same content).
    pub fn kubeconfig(
        &self,
        store: &Store,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<PathBuf, SpecError> {
        let sa = GroupResource::new("", "serviceaccounts");
        if store.get(&sa, namespace, name).is_none() {
            return Err(SpecError::CreateContainerConfigError(
                missing_service_account(namespace, name),
            ));
        }
        let token = self.tokens.service_account_token(namespace, name);
        let yaml = kubeconfig_yaml(
            &self.server_url,
            &service_account_user(namespace, name),
            &token,
            namespace,
        );
        let path = self.path(uid);
        write_kubeconfig(&path, &yaml).map_err(|e| {
            SpecError::RunContainerError(format!(
                "cannot write the ServiceAccount kubeconfig {}: {e}",
                path.display()
            ))
        })?;
        Ok(path)
    }

    /// Where pod `uid`'s kubeconfig is (a uid is a UUID: safe as a file name).
    pub fn path(&self, uid: &str) -> PathBuf {
        let safe: String = uid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.kubeconfig"))
    }
}
