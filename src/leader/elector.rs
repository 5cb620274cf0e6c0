//! The election's I/O loop, thin around [`super::decide`]: read the Lease,
//! ask the pure decision, write it with the observed resourceVersion (the
//! API's optimistic concurrency makes two acquisitions of one version
//! impossible), and publish the role. The leader renews every retry period;
//! the write gate is opened by each successful renew and closes by itself
//! when renews stop.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::decide::{self, Candidate, Leading, Observation, Record, Timing};
use super::gate::WriteGate;

/// What this process is in the election; published on a watch channel for
/// readiness, the `redblack_leader` gauge and `run_controller`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading; `healthy` while its last look at the Lease succeeded
    /// and found it held by another (it could take over).
    Standby { healthy: bool },
    /// Holds the Lease; the gate is open while renews succeed.
    Leader,
    /// Was leader and could not renew within the renew deadline (or the
    /// Lease was taken or deleted): the gate is closed for good.
    Lost,
    /// Stopped on request (shutdown); the Lease was handed back if held.
    Released,
}

/// Everything the election needs. `api` must be a client *without* the
/// write gate: the renew itself must pass while the gate is still open.
pub struct Election {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub timing: Timing,
    pub gate: Arc<WriteGate>,
}

/// A running election.
pub struct Elector {
    role: watch::Receiver<Role>,
    release: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Elector {
    pub fn start(election: Election) -> Elector {
        let (tx, rx) = watch::channel(Role::Standby { healthy: false });
        let (release_tx, release_rx) = oneshot::channel();
        let task = tokio::spawn(run(election, tx, release_rx));
        Elector {
            role: rx,
            release: Mutex::new(Some(release_tx)),
            task: Mutex::new(Some(task)),
        }
    }

    /// The role as it changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Waits until this process leads (`true`) or the election ended (`false`).
    pub async fn leading(&self) -> bool {
        let mut rx = self.role.clone();
        let role = rx
            .wait_for(|r| !matches!(r, Role::Standby { .. }))
            .await
            .map(|r| *r);
        matches!(role, Ok(Role::Leader))
    }

    /// Resolves once leadership is lost (never while leading).
    pub async fn lost(&self) {
        let mut rx = self.role.clone();
        // An Err means the loop ended without a word: treat it as lost.
        let _ = rx
            .wait_for(|r| matches!(r, Role::Lost | Role::Released))
            .await;
    }

    /// Stops the loop and hands the Lease back if held (gate closed first),
    /// so a standby takes over at once instead of after a lease duration.
    /// Call it only once nothing of this process writes any more.
    pub async fn release(&self) {
        if let Some(tx) = lock(&self.release).take() {
            let _ = tx.send(());
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values: a poisoned lock still holds valid data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Elector {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// The record of a Lease as decisions read it.
pub fn record(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        lease_duration_seconds: spec.lease_duration_seconds,
        transitions: spec.lease_transitions,
    }
}

/// The spec this process writes when it takes the Lease (`acquire`) or
/// renews it. The wall-clock times are for people and other tools;
/// decisions never read them.
pub fn spec_for(
    previous: Option<&LeaseSpec>,
    me: &str,
    timing: &Timing,
    transitions: i32,
    acquire: bool,
    now: MicroTime,
) -> LeaseSpec {
    let previous = previous.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(seconds(timing)),
        acquire_time: if acquire {
            Some(now.clone())
        } else {
            previous.acquire_time.or_else(|| Some(now.clone()))
        },
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..previous
    }
}

fn seconds(timing: &Timing) -> i32 {
    i32::try_from(timing.lease_duration.as_secs()).unwrap_or(i32::MAX)
}

fn wall_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

async fn run(election: Election, role: watch::Sender<Role>, mut release: oneshot::Receiver<()>) {
    let Election {
        api,
        name,
        identity,
        timing,
        gate,
    } = election;
    let me = identity.as_str();
    let mut observed: Option<Observation> = None;
    let mut next = tokio::time::Instant::now();
    tracing::info!(lease = %name, identity = me, "leader election started; standing by");

    // Standby: look every retry period until the decision says acquire and
    // the write wins.
    let mut held: Lease = loop {
        tokio::select! {
            _ = &mut release => {
                role.send_replace(Role::Released);
                return;
            }
            () = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + timing.retry_period;
        let current = match api.get_opt(&name).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "cannot read the leader Lease");
                role.send_replace(Role::Standby { healthy: false });
                continue;
            }
        };
        observed = current.as_ref().map(|lease| {
            decide::observe(
                observed.as_ref(),
                record(lease),
                lease.metadata.resource_version.clone().unwrap_or_default(),
                Instant::now(),
            )
        });
        let sent = Instant::now();
        let attempt = match decide::candidate(observed.as_ref(), me, &timing, sent) {
            Candidate::Wait { until } => {
                // Ready as a standby only while another holds the Lease: a
                // process about to acquire it is not ready before its caches
                // have synced (scripts read /readyz as "the operator works").
                role.send_replace(Role::Standby { healthy: true });
                next = next.min(tokio::time::Instant::from_std(until));
                continue;
            }
            Candidate::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec_for(None, me, &timing, 0, true, wall_now())),
                };
                api.create(&PostParams::default(), &lease).await
            }
            Candidate::Acquire { transitions } => {
                let Some(mut lease) = current else { continue };
                lease.spec = Some(spec_for(
                    lease.spec.as_ref(),
                    me,
                    &timing,
                    transitions,
                    true,
                    wall_now(),
                ));
                api.replace(&name, &PostParams::default(), &lease).await
            }
        };
        match attempt {
            Ok(lease) => {
                gate.renewed(sent);
                break lease;
            }
            // Another candidate was first (409): look again at once.
            Err(e) if is_status(&e, 409) => next = tokio::time::Instant::now(),
            Err(e) => tracing::warn!(lease = %name, error = %e, "cannot take the leader Lease"),
        }
    };
    tracing::info!(
        lease = %name,
        identity = me,
        transitions = held.spec.as_ref().and_then(|s| s.lease_transitions),
        "acquired the leader Lease; leading"
    );
    role.send_replace(Role::Leader);

    // Leading: renew every retry period; stop at the renew deadline.
    loop {
        tokio::select! {
            _ = &mut release => {
                gate.close();
                release_lease(&api, &name, held, me).await;
                role.send_replace(Role::Released);
                return;
            }
            () = tokio::time::sleep(timing.retry_period) => {}
        }
        let Some(last) = gate.last_renew() else {
            break;
        };
        let sent = Instant::now();
        let deadline = match decide::leading(last, &timing, sent) {
            Leading::Stop => break,
            Leading::Renew { deadline } => deadline,
        };
        let mut renewed = held.clone();
        let transitions = held
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        renewed.spec = Some(spec_for(
            held.spec.as_ref(),
            me,
            &timing,
            transitions,
            false,
            wall_now(),
        ));
        let params = PostParams::default();
        let write = api.replace(&name, &params, &renewed);
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), write).await {
            Ok(Ok(lease)) => {
                gate.renewed(sent);
                held = lease;
            }
            // The Lease changed under us or is gone: whoever did it may act
            // now, so stop writing at once rather than at the deadline.
            Ok(Err(e)) if is_status(&e, 409) || is_status(&e, 404) => {
                match api.get_opt(&name).await {
                    Ok(Some(lease)) if record(&lease).holder() == Some(me) => held = lease,
                    _ => {
                        tracing::warn!(lease = %name, error = %e, "the leader Lease was taken or deleted");
                        break;
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %name, error = %e, "renewing the leader Lease failed")
            }
            Err(_) => tracing::warn!(lease = %name, "renewing the leader Lease timed out"),
        }
    }
    gate.close();
    tracing::error!(
        lease = %name,
        identity = me,
        "lost the leader Lease (not renewed within the renew deadline); stopped writing"
    );
    role.send_replace(Role::Lost);
}

/// Hands the Lease back: holder cleared, so a standby acquires it at its
/// next look. Best effort: a failure only means the standby waits a lease
/// duration.
async fn release_lease(api: &Api<Lease>, name: &str, mut held: Lease, me: &str) {
    let Some(spec) = held.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(wall_now());
    match api.replace(name, &PostParams::default(), &held).await {
        Ok(_) => tracing::info!(lease = %name, "released the leader Lease"),
        Err(e) => tracing::warn!(lease = %name, error = %e, "cannot release the leader Lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: i64) -> MicroTime {
        MicroTime(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn specs_written_on_acquire_and_renew() {
        let timing = Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        let before = LeaseSpec {
            holder_identity: Some("b-1".into()),
            lease_duration_seconds: Some(60),
            acquire_time: Some(at(100)),
            renew_time: Some(at(150)),
            lease_transitions: Some(4),
            ..LeaseSpec::default()
        };
        let taken = spec_for(Some(&before), "a-1", &timing, 5, true, at(200));
        assert_eq!(taken.holder_identity.as_deref(), Some("a-1"));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.acquire_time, Some(at(200)));
        assert_eq!(taken.renew_time, Some(at(200)));
        assert_eq!(taken.lease_transitions, Some(5));
        let renewed = spec_for(Some(&taken), "a-1", &timing, 5, false, at(202));
        assert_eq!(renewed.acquire_time, Some(at(200)), "kept on renew");
        assert_eq!(renewed.renew_time, Some(at(202)));
        assert_eq!(renewed.lease_transitions, Some(5));
        // A renew of a record with fields missing fills them in.
        let sparse = spec_for(Some(&LeaseSpec::default()), "a-1", &timing, 0, false, at(9));
        assert_eq!(sparse.acquire_time, Some(at(9)));
        assert_eq!(sparse.lease_duration_seconds, Some(15));
        let created = spec_for(None, "a-1", &timing, 0, true, at(1));
        assert_eq!(created.lease_transitions, Some(0));
    }

    #[test]
    fn records_read_missing_fields_as_none() {
        let lease = Lease::default();
        assert_eq!(record(&lease), Record::default());
    }
}
