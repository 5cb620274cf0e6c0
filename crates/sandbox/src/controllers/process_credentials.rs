//! A process pod's ServiceAccount credentials, as a kubelet mounts a token:
//! the sandbox writes a kubeconfig for `system:serviceaccount:NS:NAME` (the
//! pod's `spec.serviceAccountName`, default `default`) to a file of its own
//! and the process gets `KUBECONFIG` pointing at it.
//!
//! Every real namespace has a `default` ServiceAccount (made by the
//! ServiceAccount controller, which the sandbox does not run): here it is
//! made when a pod first needs it.
//!
//! Any other ServiceAccount that does not exist keeps the container from starting,
//! with the message a real API server's ServiceAccount admission plugin gives
//! when it refuses such a pod (the sandbox admits it, and its kubelet refuses
//! to start it instead, retrying with back-off until the ServiceAccount
//! appears; see docs/sandbox.md).

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Tokens;
use crate::auth::tokens::service_account_user;
use crate::kubeconfig::{kubeconfig_yaml, write_kubeconfig};
use crate::registry::ResourceType;
use crate::store::{Store, StoreError};

use super::process_spec::SpecError;

/// How process pods reach the sandbox's API: its URL, the tokens it issues,
/// and a private directory for the per-pod kubeconfig files.
#[derive(Clone, Debug)]
pub struct ApiAccess {
    pub server_url: String,
    pub tokens: Arc<Tokens>,
    pub dir: PathBuf,
}

/// The name every namespace's own ServiceAccount has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Makes sure ServiceAccount `namespace/name` exists: `default` is made if
/// missing (as the ServiceAccount controller would have), any other missing
/// one is the admission plugin's refusal.
pub fn ensure_service_account(
    store: &Store,
    service_accounts: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<(), SpecError> {
    if store
        .get(&service_accounts.group_resource(), namespace, name)
        .is_some()
    {
        return Ok(());
    }
    if name != DEFAULT_SERVICE_ACCOUNT {
        return Err(SpecError::CreateContainerConfigError(
            missing_service_account(namespace, name),
        ));
    }
    let sa = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    });
    match store.create(service_accounts, sa) {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(SpecError::CreateContainerConfigError(format!(
            "{}: {e}",
            missing_service_account(namespace, name)
        ))),
    }
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
    /// The ServiceAccount must exist (`ensure_service_account`).
    pub fn kubeconfig(&self, namespace: &str, name: &str, uid: &str) -> Result<PathBuf, SpecError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn default_is_made_others_are_refused_and_the_kubeconfig_is_the_accounts() {
        let registry = Registry::new();
        let sa_type = registry.by_kind("v1", "ServiceAccount").unwrap();
        let ns_type = registry.by_kind("v1", "Namespace").unwrap();
        let store = Store::new(100);
        store
            .create(&ns_type, serde_json::json!({"metadata": {"name": "ns"}}))
            .unwrap();

        let err = ensure_service_account(&store, &sa_type, "ns", "op").unwrap_err();
        assert_eq!(err.reason(), "CreateContainerConfigError");
        assert_eq!(
            err.to_string(),
            r#"error looking up service account ns/op: serviceaccount "op" not found"#
        );
        ensure_service_account(&store, &sa_type, "ns", DEFAULT_SERVICE_ACCOUNT).unwrap();
        let gr = sa_type.group_resource();
        assert!(store.get(&gr, "ns", "default").is_some(), "made on demand");
        ensure_service_account(&store, &sa_type, "ns", DEFAULT_SERVICE_ACCOUNT).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let tokens = Arc::new(Tokens::new());
        let api = ApiAccess {
            server_url: "http://127.0.0.1:1".into(),
            tokens: tokens.clone(),
            dir: dir.path().to_path_buf(),
        };
        let path = api.kubeconfig("ns", "default", "u/1").unwrap();
        assert_eq!(path, dir.path().join("u_1.kubeconfig"));
        let yaml = std::fs::read_to_string(&path).unwrap();
        let token = tokens.service_account_token("ns", "default");
        assert!(yaml.contains(&format!("token: {token}")), "{yaml}");
        assert!(
            yaml.contains("'system:serviceaccount:ns:default'"),
            "{yaml}"
        );
    }
}
