//! Where a pod's containers "run". The pod controller asks a `PodRuntime` what the
//! containers are doing and turns the answer into `status`.
//!
//! `Simulated` plays every pod by default; `process_runtime::ProcessRuntime`
//! runs a real local process for pods whose image names the demo app.
//! `pods::choose_runtime` picks one per pod.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A container as the pod spec declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    Running {
        started_at: DateTime<Utc>,
    },
    Waiting {
        reason: String,
        message: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    },
}

/// One container at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerReport {
    pub spec: ContainerSpec,
    pub ready: bool,
    pub started: bool,
    pub restart_count: u32,
    pub state: ContainerState,
    /// The previous run, for containers that restarted.
    pub last_state: Option<ContainerState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeReport {
    pub containers: Vec<ContainerReport>,
    /// When this report will next differ, if it ever will on its own.
    pub next_change: Option<Instant>,
}

pub trait PodRuntime: Send {
    /// Wall-clock time the containers started (the pod's `status.startTime`).
    fn started_at(&self) -> DateTime<Utc>;
    /// What the containers are doing at `now`.
    fn observe(&mut self, now: Instant) -> RuntimeReport;
    /// Stops the containers at once (the pod is gone, or the sandbox stops).
    /// May be called more than once; later calls must do nothing.
    fn stop(&mut self) {}
    /// Starts stopping the containers gracefully (the pod is terminating):
    /// SIGTERM now, SIGKILL at `kill_at` if they have not exited by then. A
    /// later call may only bring `kill_at` closer. Containers with nothing to
    /// drain (the simulation) stop at once.
    fn terminate(&mut self, kill_at: Instant) {
        let _ = kill_at;
        self.stop();
    }
    /// Whether every container has stopped since `terminate` or `stop`.
    fn stopped(&self) -> bool {
        true
    }
    /// The pod's IP if the runtime decides it (a process on loopback); `None`
    /// lets the pod controller hand out a fake one.
    fn pod_ip(&self) -> Option<std::net::Ipv4Addr> {
        None
    }
    /// Annotations this runtime owns on the pod, with their current values
    /// (`None`: absent). The pod controller writes them when they differ.
    fn annotations(&self) -> Vec<(&'static str, Option<String>)> {
        Vec::new()
    }
}

/// How a simulated pod behaves, from its annotations (see `pods`).
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    pub ready_after: Duration,
    pub never_ready: bool,
    pub crash: bool,
    pub fail_after: Option<Duration>,
}

/// Containers that exist only as a schedule: Running at once, Ready after
/// `ready_after`, optionally broken later or crash-looping.
pub struct Simulated {
    behaviour: Behaviour,
    containers: Vec<ContainerSpec>,
    started: Instant,
    started_wall: DateTime<Utc>,
}

/// The shortest crash-loop period, so a zero `ready_after` cannot spin.
const MIN_CRASH_PERIOD: Duration = Duration::from_millis(100);

impl Simulated {
    /// `started_wall` may lie in the past (a pod that was already running when the
    /// controller started); the schedule is then resumed from it.
    pub fn new(
        behaviour: Behaviour,
        containers: Vec<ContainerSpec>,
        started_wall: DateTime<Utc>,
    ) -> Self {
        let ago = (Utc::now() - started_wall)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let now = Instant::now();
        let started = now.checked_sub(ago).unwrap_or(now);
        Self {
            behaviour,
            containers,
            started,
            started_wall,
        }
    }

    fn wall(&self, offset: Duration) -> DateTime<Utc> {
        self.started_wall + chrono::Duration::from_std(offset).unwrap_or_default()
    }

    fn crash_loop(&self, now: Instant) -> RuntimeReport {
        let period = self.behaviour.ready_after.max(MIN_CRASH_PERIOD);
        let elapsed = now.saturating_duration_since(self.started);
        let crashes = u32::try_from(elapsed.as_nanos() / period.as_nanos()).unwrap_or(u32::MAX);
        let containers = self
            .containers
            .iter()
            .map(|spec| {
                let (state, last_state) = if crashes == 0 {
                    (
                        ContainerState::Running {
                            started_at: self.started_wall,
                        },
                        None,
                    )
                } else {
                    let finished = self.wall(period.saturating_mul(crashes));
                    (
                        ContainerState::Waiting {
                            reason: "CrashLoopBackOff".into(),
                            message: format!(
                                "back-off restarting failed container {} (simulated crash)",
                                spec.name
                            ),
                        },
                        Some(ContainerState::Terminated {
                            exit_code: 1,
                            reason: "Error".into(),
                            started_at: self.wall(period.saturating_mul(crashes - 1)),
                            finished_at: finished,
                        }),
                    )
                };
                ContainerReport {
                    spec: spec.clone(),
                    ready: false,
                    started: crashes == 0,
                    restart_count: crashes,
                    state,
                    last_state,
                }
            })
            .collect();
        let next = period.saturating_mul(crashes.saturating_add(1));
        RuntimeReport {
            containers,
            next_change: self.started.checked_add(next),
        }
    }
}

impl PodRuntime for Simulated {
    fn started_at(&self) -> DateTime<Utc> {
        self.started_wall
    }

    fn observe(&mut self, now: Instant) -> RuntimeReport {
        if self.behaviour.crash {
            return self.crash_loop(now);
        }
        let ready_at = self.started + self.behaviour.ready_after;
        let fail_at = self.behaviour.fail_after.map(|d| self.started + d);
        let ready =
            !self.behaviour.never_ready && now >= ready_at && fail_at.is_none_or(|f| now < f);
        let next_change = if !self.behaviour.never_ready && now < ready_at {
            Some(ready_at)
        } else {
            fail_at.filter(|f| now < *f)
        };
        let containers = self
            .containers
            .iter()
            .map(|spec| ContainerReport {
                spec: spec.clone(),
                ready,
                started: true,
                restart_count: 0,
                state: ContainerState::Running {
                    started_at: self.started_wall,
                },
                last_state: None,
            })
            .collect();
        RuntimeReport {
            containers,
            next_change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(b: Behaviour) -> Simulated {
        Simulated::new(
            b,
            vec![ContainerSpec {
                name: "app".into(),
                image: "demo:1".into(),
            }],
            Utc::now(),
        )
    }

    fn behaviour() -> Behaviour {
        Behaviour {
            ready_after: Duration::from_secs(2),
            never_ready: false,
            crash: false,
            fail_after: None,
        }
    }

    #[test]
    fn ready_after_delay_then_fails() {
        let mut s = sim(Behaviour {
            fail_after: Some(Duration::from_secs(5)),
            ..behaviour()
        });
        let t0 = s.started;
        let r = s.observe(t0 + Duration::from_secs(1));
        assert!(!r.containers[0].ready);
        assert_eq!(r.next_change, Some(t0 + Duration::from_secs(2)));
        let r = s.observe(t0 + Duration::from_secs(2));
        assert!(r.containers[0].ready);
        assert_eq!(r.next_change, Some(t0 + Duration::from_secs(5)));
        let r = s.observe(t0 + Duration::from_secs(6));
        assert!(!r.containers[0].ready);
        assert_eq!(r.next_change, None);
    }

    #[test]
    fn never_ready_has_no_timer() {
        let mut s = sim(Behaviour {
            never_ready: true,
            ..behaviour()
        });
        let r = s.observe(s.started + Duration::from_secs(60));
        assert!(!r.containers[0].ready && r.containers[0].started);
        assert_eq!(r.next_change, None);
    }

    #[test]
    fn crash_loop_counts_restarts() {
        let mut s = sim(Behaviour {
            crash: true,
            ..behaviour()
        });
        let t0 = s.started;
        let r = s.observe(t0 + Duration::from_secs(5));
        let c = &r.containers[0];
        assert_eq!(c.restart_count, 2);
        assert!(!c.ready);
        assert!(
            matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff")
        );
        assert_eq!(r.next_change, Some(t0 + Duration::from_secs(6)));
    }
}
