//! The election's settings: the `redblack controller` flags, their
//! validation, this process's identity and the Lease's namespace. The rules
//! are pure functions of their inputs (flags, environment, files read by the
//! caller) and table-tested.

use std::time::Duration;

use super::decide::Timing;

/// The Lease's name unless `--leader-election-id` says otherwise.
pub const DEFAULT_LEASE_NAME: &str = "redblack-controller";

/// Where Kubernetes mounts the pod's namespace (in-cluster).
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Clone, clap::Args)]
pub struct ElectionArgs {
    /// Elect one leader among the replicas through a Lease; only the leader
    /// runs the controllers. `--leader-elect=false` runs them unconditionally
    /// (a single replica only).
    #[arg(
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true
    )]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, the in-cluster
    /// service account's namespace, else the kubeconfig context's).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, alias = "lease-name", default_value = DEFAULT_LEASE_NAME)]
    pub leader_election_id: String,
    /// How long a standby waits after the Lease last changed before taking it over.
    #[arg(long, default_value = "15s", value_parser = redblack_duration::parse)]
    pub lease_duration: Duration,
    /// How long the leader keeps writing without a successful renew (< --lease-duration).
    #[arg(long, default_value = "10s", value_parser = redblack_duration::parse)]
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks (< --renew-deadline).
    #[arg(long, default_value = "2s", value_parser = redblack_duration::parse)]
    pub retry_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error(
        "--renew-deadline ({renew_deadline:?}) must be shorter than --lease-duration \
         ({lease_duration:?}): the leader must stop writing before a standby may take over"
    )]
    RenewDeadlineNotBelowLeaseDuration {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "--retry-period ({retry_period:?}) must be shorter than --renew-deadline \
         ({renew_deadline:?}): the leader needs at least one renew attempt before it must stop"
    )]
    RetryPeriodNotBelowRenewDeadline {
        retry_period: Duration,
        renew_deadline: Duration,
    },
    #[error("--retry-period must be positive")]
    ZeroRetryPeriod,
    #[error(
        "--lease-duration ({0:?}) must be a whole number of seconds of at least 1s (the Lease stores seconds)"
    )]
    LeaseDurationNotWholeSeconds(Duration),
}

impl ElectionArgs {
    /// The timing, checked: retry period < renew deadline < lease duration.
    pub fn timing(&self) -> Result<Timing, TimingError> {
        validate(Timing {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        })
    }
}

/// Checks the rules between the three durations.
pub fn validate(t: Timing) -> Result<Timing, TimingError> {
    if t.retry_period.is_zero() {
        return Err(TimingError::ZeroRetryPeriod);
    }
    if t.lease_duration < Duration::from_secs(1) || t.lease_duration.subsec_nanos() != 0 {
        return Err(TimingError::LeaseDurationNotWholeSeconds(t.lease_duration));
    }
    if t.renew_deadline >= t.lease_duration {
        return Err(TimingError::RenewDeadlineNotBelowLeaseDuration {
            renew_deadline: t.renew_deadline,
            lease_duration: t.lease_duration,
        });
    }
    if t.retry_period >= t.renew_deadline {
        return Err(TimingError::RetryPeriodNotBelowRenewDeadline {
            retry_period: t.retry_period,
            renew_deadline: t.renew_deadline,
        });
    }
    Ok(t)
}

/// This process's identity in the Lease: the pod's name (`$POD_NAME`, else
/// the host name, which is the pod's name in a pod) and a random suffix, so
/// a restarted container never mistakes its predecessor's Lease for its own.
pub fn identity(pod_name: Option<&str>, hostname: Option<&str>, suffix: u32) -> String {
    let base = [pod_name, hostname]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("redblack");
    format!("{base}-{suffix:08x}")
}

/// The identity from the environment, with a fresh random suffix.
pub fn identity_from_env() -> String {
    let pod = std::env::var("POD_NAME").ok();
    let host = hostname::get().ok().and_then(|h| h.into_string().ok());
    identity(pod.as_deref(), host.as_deref(), rand::random())
}

/// The Lease's namespace: the flag, else `$POD_NAMESPACE` (the downward
/// API), else the in-cluster service account's namespace file, else the
/// kubeconfig context's.
pub fn namespace(
    flag: Option<&str>,
    pod_namespace: Option<&str>,
    service_account_file: Option<&str>,
    kubeconfig: &str,
) -> String {
    [flag, pod_namespace, service_account_file]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(kubeconfig)
        .to_owned()
}

/// [`namespace`] with the environment and the file read here.
pub fn namespace_from_env(flag: Option<&str>, kubeconfig: &str) -> String {
    let env = std::env::var("POD_NAMESPACE").ok();
    let file = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE).ok();
    namespace(flag, env.as_deref(), file.as_deref(), kubeconfig)
}

/// The User-Agent of every request of this process: the API server's audit
/// log (and the sandbox's request counters) then tell the replicas apart.
pub fn user_agent(identity: &str) -> String {
    format!("redblack/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const S: Duration = Duration::from_secs(1);

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        election: ElectionArgs,
    }

    fn parse(args: &[&str]) -> Result<ElectionArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.election)
    }

    #[test]
    fn flags_and_defaults() {
        let d = parse(&[]).unwrap();
        assert!(d.leader_elect);
        assert_eq!(d.leader_election_id, DEFAULT_LEASE_NAME);
        assert_eq!(d.leader_election_namespace, None);
        assert_eq!(
            d.timing(),
            Ok(Timing {
                lease_duration: 15 * S,
                renew_deadline: 10 * S,
                retry_period: 2 * S
            })
        );
        assert!(!parse(&["--leader-elect=false"]).unwrap().leader_elect);
        assert!(parse(&["--leader-elect"]).unwrap().leader_elect);
        assert!(parse(&["--leader-elect=true"]).unwrap().leader_elect);
        let custom = parse(&[
            "--lease-name",
            "x",
            "--lease-duration",
            "3s",
            "--renew-deadline",
            "2s",
            "--retry-period",
            "500ms",
        ])
        .unwrap();
        assert_eq!(custom.leader_election_id, "x");
        assert_eq!(custom.timing().unwrap().retry_period, S / 2);
        assert!(parse(&["--lease-duration", "soon"]).is_err());
    }

    #[test]
    fn timing_rules() {
        let t = |l: Duration, r: Duration, p: Duration| Timing {
            lease_duration: l,
            renew_deadline: r,
            retry_period: p,
        };
        let ok = t(15 * S, 10 * S, 2 * S);
        assert_eq!(validate(ok), Ok(ok));
        let cases = [
            ("renew = lease", t(10 * S, 10 * S, 2 * S)),
            ("renew > lease", t(10 * S, 12 * S, 2 * S)),
            ("retry = renew", t(15 * S, 2 * S, 2 * S)),
            ("retry > renew", t(15 * S, 2 * S, 3 * S)),
            ("zero retry", t(15 * S, 10 * S, Duration::ZERO)),
            ("sub-second lease", t(S / 2, S / 4, S / 8)),
            ("fractional lease", t(S * 3 / 2, S, S / 2)),
        ];
        for (what, timing) in cases {
            assert!(validate(timing).is_err(), "{what}");
        }
        let message = validate(t(10 * S, 10 * S, 2 * S)).unwrap_err().to_string();
        assert!(message.contains("--renew-deadline"), "{message}");
        assert!(message.contains("--lease-duration"), "{message}");
    }

    #[test]
    fn identity_prefers_the_pod_name() {
        assert_eq!(identity(Some("op-1"), Some("host"), 0xab), "op-1-000000ab");
        assert_eq!(identity(None, Some("host"), 1), "host-00000001");
        assert_eq!(identity(Some(" "), Some("host"), 1), "host-00000001");
        assert_eq!(identity(None, None, 1), "redblack-00000001");
    }

    #[test]
    fn namespace_order() {
        let cases = [
            (Some("flag"), Some("env"), Some("file\n"), "flag"),
            (None, Some("env"), Some("file\n"), "env"),
            (None, None, Some("file\n"), "file"),
            (None, Some(""), Some(""), "kube"),
            (None, None, None, "kube"),
        ];
        for (flag, env, file, expected) in cases {
            assert_eq!(namespace(flag, env, file, "kube"), expected);
        }
    }

    #[test]
    fn the_user_agent_names_the_identity() {
        assert_eq!(
            user_agent("op-1-000000ab"),
            format!("redblack/{} (op-1-000000ab)", env!("CARGO_PKG_VERSION"))
        );
    }
}
