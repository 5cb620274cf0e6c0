//! The one way every verb builds a Kubernetes client: `--kubeconfig` when
//! given, else kube's inference (KUBECONFIG, ~/.kube/config, in-cluster), like
//! kubectl.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no usable kubeconfig or in-cluster configuration")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
}

/// A client, and the namespace to use: `namespace` when given, else the
/// kubeconfig context's.
pub async fn connect(
    kubeconfig: Option<&Path>,
    namespace: Option<&str>,
) -> Result<(Client, String), ClientError> {
    let config = config(kubeconfig).await?;
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(ClientError::Client)?;
    Ok((client, namespace))
}

/// The client configuration `connect` builds its client from (for a verb
/// that builds its own stack, e.g. the controller's write-gated client).
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config, ClientError> {
    install_crypto_provider();
    match kubeconfig {
        Some(path) => {
            let err = |source| ClientError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(err)
        }
        None => Config::infer().await.map_err(ClientError::Infer),
    }
}

/// kube builds a rustls connector even for plain http; with both rustls
/// providers compiled into the binary (other dependencies enable aws-lc-rs)
/// rustls cannot pick one by itself, so choose ring, kube's default. Idempotent.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
