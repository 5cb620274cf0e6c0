//! `redblack dashboard` (also `kubectl redblack dashboard`): the web UI
//! (src/web/dashboard, docs/dashboard.md) with the caller's kubeconfig, so it
//! sees and does exactly what the user may. Listens on 127.0.0.1 by default
//! and prints its URL.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::CliResult;
use crate::web::dashboard::{Settings, start};

#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Address to serve on (keep it on loopback: the UI acts with your credentials).
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub listen: SocketAddr,
    /// Watch one namespace only (default: all namespaces).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Offer promote/abort/retry/undo/pause/resume buttons (each confirmed).
    #[arg(long)]
    pub allow_actions: bool,
    /// Prometheus for analyses without spec.prometheus (as the operator's --prometheus-url).
    #[arg(long, env = "REDBLACK_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Connect(#[from] crate::runtime::client::ClientError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the dashboard's server stopped")]
    Serve(#[source] std::io::Error),
}

pub async fn run(args: DashboardArgs) -> CliResult {
    let (client, _) = crate::runtime::client::connect(args.kubeconfig.as_deref(), None).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| DashboardError::Listen {
            addr: args.listen,
            source,
        })?;
    let settings = Settings {
        namespace: args.namespace,
        allow_actions: args.allow_actions,
        prometheus_url: args.prometheus_url,
    };
    let running = start(client, listener, settings)
        .await
        .map_err(DashboardError::Serve)?;
    println!("redblack dashboard: http://{}/", running.addr);
    tokio::select! {
        served = running.server => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DashboardError::Serve(e).into()),
            Err(e) => Err(DashboardError::Serve(std::io::Error::other(e)).into()),
        },
        () = crate::runtime::shutdown::terminated() => Ok(()),
    }
}
