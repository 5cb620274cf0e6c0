//! `redblack sandbox`: run the embedded Kubernetes-compatible control plane (a
//! SIMULATOR for demos and tests) until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::CliResult;
use redblack_sandbox::watch_history::DEFAULT_MAX_BYTES;
use redblack_sandbox::{FaultConfig, Sandbox, SandboxConfig, store::DEFAULT_HISTORY};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Where to write a kubeconfig for the sandbox (kubectl --kubeconfig PATH).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// How long a simulated pod takes to become Ready.
    #[arg(long, default_value = "2s", value_parser = redblack_duration::parse)]
    pub pod_ready_after: Duration,
    /// Events kept for watches that resume from an old resourceVersion.
    #[arg(long, default_value_t = DEFAULT_HISTORY)]
    pub watch_history: usize,
    /// Events older than this are compacted (etcd compacts every 5 minutes);
    /// a watch resuming from before gets 410 Gone. 0s: no age bound.
    #[arg(long, default_value = "5m", value_parser = redblack_duration::parse)]
    pub watch_history_max_age: Duration,
    /// Estimated MiB of objects the watch history may hold. 0: no byte bound.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES / (1024 * 1024))]
    pub watch_history_max_mib: usize,
    /// Events are deleted this long after their last write (kube-apiserver's `--event-ttl`).
    #[arg(long, default_value = "1h", value_parser = redblack_duration::parse)]
    pub event_ttl: Duration,
    /// A JSON or YAML fault-injection file (rules, watchCutAfter).
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Keep a Prometheus file-SD target list of the running demo-app pods here.
    #[arg(long)]
    pub prometheus_sd_file: Option<PathBuf>,
    /// Also write a kubeconfig acting as ServiceAccount NS/NAME to PATH
    /// (`NS/NAME=PATH`, repeatable); its token authenticates once the
    /// ServiceAccount exists and may do what RBAC grants it.
    #[arg(long = "kubeconfig-for-sa", value_parser = parse_sa_kubeconfig)]
    pub kubeconfig_for_sa: Vec<SaKubeconfig>,
}

/// `--kubeconfig-for-sa NS/NAME=PATH`
#[derive(Clone, Debug, PartialEq)]
pub struct SaKubeconfig {
    pub namespace: String,
    pub name: String,
    pub path: PathBuf,
}

fn parse_sa_kubeconfig(s: &str) -> Result<SaKubeconfig, String> {
    let bad = || format!("{s:?} is not NAMESPACE/NAME=PATH");
    let (account, path) = s.split_once('=').ok_or_else(bad)?;
    let (namespace, name) = account.split_once('/').ok_or_else(bad)?;
    if namespace.is_empty() || name.is_empty() || path.is_empty() || name.contains('/') {
        return Err(bad());
    }
    Ok(SaKubeconfig {
        namespace: namespace.into(),
        name: name.into(),
        path: path.into(),
    })
}

#[derive(Debug, thiserror::Error)]
enum FaultsFileError {
    #[error("cannot read fault file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid fault file {path}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
}

fn load_faults(path: &PathBuf) -> Result<FaultConfig, FaultsFileError> {
    let raw = std::fs::read(path).map_err(|source| FaultsFileError::Read {
        path: path.clone(),
        source,
    })?;
    // YAML is a superset of JSON: one parser reads both.
    serde_yaml::from_slice(&raw).map_err(|source| FaultsFileError::Parse {
        path: path.clone(),
        source,
    })
}

pub async fn run(args: SandboxArgs) -> CliResult {
    // Another verb may have set up logging already; that one wins.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let faults = match &args.faults {
        Some(path) => load_faults(path)?,
        None => FaultConfig::default(),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        listen: args.listen,
        watch_history: args.watch_history,
        watch_history_max_age: Some(args.watch_history_max_age).filter(|d| !d.is_zero()),
        watch_history_max_bytes: Some(args.watch_history_max_mib * 1024 * 1024).filter(|b| *b > 0),
        pod_ready_after: args.pod_ready_after,
        event_ttl: args.event_ttl,
        faults,
        // Pods of the demo-app image run this very binary as `redblack demo-app`.
        process: redblack_sandbox::controllers::process_runtime::ProcessConfig::with_current_exe(),
        prometheus_sd_file: args.prometheus_sd_file.clone(),
        ..SandboxConfig::default()
    })
    .await?;
    sandbox.write_kubeconfig(&args.kubeconfig)?;
    for sa in &args.kubeconfig_for_sa {
        sandbox.write_kubeconfig_for_service_account(&sa.path, &sa.namespace, &sa.name)?;
    }
    println!(
        "redblack sandbox (a simulator, not a cluster) ready at {} (kubeconfig: {})",
        sandbox.url(),
        args.kubeconfig.display()
    );
    crate::runtime::shutdown::terminated().await;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_kubeconfigs_are_ns_name_equals_path() {
        assert_eq!(
            parse_sa_kubeconfig("redblack-system/redblack=/tmp/sa.kubeconfig"),
            Ok(SaKubeconfig {
                namespace: "redblack-system".into(),
                name: "redblack".into(),
                path: "/tmp/sa.kubeconfig".into(),
            })
        );
        for bad in ["redblack=/p", "ns/=p", "/n=p", "ns/n=", "ns/n", "a/b/c=p"] {
            assert!(parse_sa_kubeconfig(bad).is_err(), "{bad}");
        }
    }
}
