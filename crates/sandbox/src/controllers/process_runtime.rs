//! Process mode of the pod simulator: a pod whose container image is
//! `redblack/demo-app:<tag>` (see `process_spec`) runs as a real local process of
//! `redblack demo-app`, on a free 127.0.0.1 port; one whose image is the
//! operator's, `redblack/redblack[:tag]` (see `operator_spec`), runs `redblack
//! <args>` as its ServiceAccount (`process_credentials`), its ports moved to
//! free loopback ports (`process_launch`).
//!
//! What the pod shows (docs/live-fleet.md has the full story):
//! - `status.podIP` 127.0.0.1; the process's port and pid in the annotations
//!   `sandbox.redblack.io/port` and `sandbox.redblack.io/pid` (Kubernetes has no
//!   status field for a per-pod port; Endpoints and the data plane read these);
//!   an operator pod's port mapping in `sandbox.redblack.io/ports`.
//! - Ready after the `readinessProbe` (httpGet or tcpSocket) succeeds, or, without
//!   one, as soon as the demo app prints its `listening on` line (an operator:
//!   once started). A `livenessProbe` failing `failureThreshold` times in a row
//!   restarts the process (SIGTERM, the pod's grace period, SIGKILL).
//! - What the process writes to stdout and stderr is kept for `kubectl logs`
//!   (`pod_logs`).
//! - A pod with `restartPolicy: Never` (a Job's) runs to completion: its exit
//!   is the container's final `terminated` state and the pod's phase becomes
//!   `Succeeded` (exit 0) or `Failed`; with `OnFailure` only a non-zero exit
//!   is restarted.
//! - A process that exits is restarted, like a kubelet with `restartPolicy:
//!   Always` (what every ReplicaSet pod has): meanwhile the container is
//!   `waiting` in `CrashLoopBackOff` with the exit code and the last lines of its
//!   stderr, `lastState.terminated` holds the exit, and the delay doubles from
//!   `restart_backoff` up to `max_restart_backoff` (reset after a 10 s run).
//! - A template the sandbox cannot run (bad tag, bad env, no demo-app command
//!   configured) leaves the container `waiting` with the kubelet's reason.
//!
//! - A terminating pod's process gets SIGTERM, and SIGKILL if it is still there
//!   when the grace period ends (`terminate`, `process_stop`); it is not
//!   restarted, and its exit code ends up in the container's `terminated` state.
//!
//! No process outlives its pod or the controllers: stopping (or dropping) the
//! runtime kills the process's whole process group at once; every child is also
//! started with `kill_on_drop` and, on Linux, dies with its parent
//! (`PR_SET_PDEATHSIG`), so a sandbox killed by a signal leaves nothing behind.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use redblack_demo::parse_listening_line;

use super::operator_spec::{PORTS_ANNOTATION, ports_annotation};
use super::pod_logs::ContainerLog;
use super::pod_runtime::{
    ContainerReport, ContainerSpec, ContainerState, PodRuntime, RuntimeReport,
};
use super::process_health;
use super::process_launch::{Prepared, ProcessContext, Program, is_process_image};
use super::process_spec::{Probe, SpecError, liveness_probe, readiness_probe};
use super::process_stop::{self, KillAt, kill_group};

/// The process's port, on the pod (written by the pod controller).
pub const PORT_ANNOTATION: &str = "sandbox.redblack.io/port";
/// The process's pid, on the pod: for people and tests that want to kill it.
pub const PID_ANNOTATION: &str = "sandbox.redblack.io/pid";

/// How process pods are run (part of `ControllersConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessConfig {
    /// The `redblack` binary (`<command> demo-app` is run for demo-app pods,
    /// `<command> <args>` for operator pods). `None`: those pods stay
    /// `waiting` with reason `CreateContainerError`.
    pub command: Option<PathBuf>,
    /// Delay before the first restart of an exited process; doubles per crash.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            command: None,
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(60),
        }
    }
}

impl ProcessConfig {
    /// Runs demo-app pods with the running binary: right for the `redblack` CLI,
    /// wrong for a test binary (tests use `env!("CARGO_BIN_EXE_redblack")`).
    pub fn with_current_exe() -> Self {
        Self {
            command: std::env::current_exe().ok(),
            ..Self::default()
        }
    }
}

/// The pod controller polls process pods this often: process exits and probe
/// results happen outside the store, so no store event would wake it.
const OBSERVE_EVERY: Duration = Duration::from_millis(200);
/// Lines of stderr kept for the crash message.
const TAIL_LINES: usize = 8;
const TAIL_LINE_CHARS: usize = 300;
/// A run this long resets the restart back-off, as the kubelet does (it uses 10 min).
const STABLE_RUN: Duration = Duration::from_secs(10);
/// How long a dead process's stderr may take to drain into the tail.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// What the process container is doing, shared by the supervisor and `observe`.
#[derive(Clone, Debug)]
struct Snapshot {
    state: ContainerState,
    ready: bool,
    restart_count: u32,
    last_state: Option<ContainerState>,
    port: Option<u16>,
    /// Container port → loopback port (operator pods), while it runs.
    ports: Vec<(u16, u16)>,
    pid: Option<u32>,
    /// The process ended after `terminate` and will not be restarted.
    stopped: bool,
}

type Shared = Arc<Mutex<Snapshot>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Snapshot> {
    // Every writer leaves a whole snapshot behind, so a poisoned one is usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn waiting(reason: &str, message: String) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.into(),
        message,
    }
}

pub struct ProcessRuntime {
    containers: Vec<ContainerSpec>,
    /// Index of the container that runs as the process; any others (sidecars)
    /// are simulated as running and ready.
    process: usize,
    started_wall: DateTime<Utc>,
    shared: Shared,
    supervisor: Option<JoinHandle<()>>,
    /// When to SIGKILL a terminating process (`None`: not terminating).
    kill_at: watch::Sender<KillAt>,
    /// Where its output goes, and the pod's uid (its key there).
    log: Option<Arc<ContainerLog>>,
    uid: String,
    ctx: ProcessContext,
}

/// Everything the supervisor needs to (re)start the process.
struct Launch {
    pod: String,
    container: String,
    command: PathBuf,
    program: Program,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
    /// The pod's `terminationGracePeriodSeconds`, for a liveness restart.
    grace: Duration,
    backoff: Duration,
    max_backoff: Duration,
    kill_at: watch::Receiver<KillAt>,
    log: Arc<ContainerLog>,
    ctx: ProcessContext,
    /// The pod's `restartPolicy` (a Job's pods: `Never` or `OnFailure`).
    restart: RestartPolicy,
}

/// When an exited process is started again (the kubelet's `restartPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

fn restart_policy(pod: &Value) -> RestartPolicy {
    match pod.pointer("/spec/restartPolicy").and_then(Value::as_str) {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    }
}

/// The pod's `terminationGracePeriodSeconds` (Kubernetes' default: 30 s).
fn termination_grace(pod: &Value) -> Duration {
    pod.pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// The runtime for `pod` if one of its containers is the demo app or the
/// operator, else `None`. Must be called within a Tokio runtime (the pod
/// controller is one of its tasks).
pub fn for_pod(
    pod: &Value,
    containers: Vec<ContainerSpec>,
    cfg: &ProcessConfig,
    ctx: &ProcessContext,
) -> Option<ProcessRuntime> {
    let index = containers.iter().position(|c| is_process_image(&c.image))?;
    let container = pod
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.get(index))
        .cloned()
        .unwrap_or(Value::Null);
    let pod_name = format!(
        "{}/{}",
        crate::store::meta_str(pod, "namespace").unwrap_or(""),
        crate::store::meta_str(pod, "name").unwrap_or("")
    );
    let uid = crate::store::meta_str(pod, "uid").unwrap_or("").to_string();
    let name = containers[index].name.clone();
    let prepared =
        Program::from_pod(pod, &container, &containers[index].image).and_then(|program| {
            let readiness = readiness_probe(&container)?;
            let liveness = liveness_probe(&container)?;
            Ok((program, readiness, liveness))
        });
    let initial = |state| Snapshot {
        state,
        ready: false,
        restart_count: 0,
        last_state: None,
        port: None,
        ports: Vec::new(),
        pid: None,
        stopped: false,
    };
    let (kill_at, kill_at_rx) = watch::channel(None);
    let mut runtime = ProcessRuntime {
        containers,
        process: index,
        started_wall: Utc::now(),
        shared: Arc::new(Mutex::new(initial(waiting(
            "ContainerCreating",
            String::new(),
        )))),
        supervisor: None,
        kill_at,
        log: None,
        uid: uid.clone(),
        ctx: ctx.clone(),
    };
    let state = match (prepared, &cfg.command) {
        (Err(e), _) => waiting(e.reason(), e.to_string()),
        (Ok(_), None) => waiting(
            "CreateContainerError",
            "the sandbox was started without a demo-app command \
             (ControllersConfig::process.command, the redblack binary), so it cannot \
             run redblack/demo-app or redblack/redblack images"
                .into(),
        ),
        (Ok((program, readiness, liveness)), Some(command)) => {
            match tokio::runtime::Handle::try_current() {
                Err(_) => waiting(
                    "CreateContainerError",
                    "no async runtime to supervise the process".into(),
                ),
                Ok(handle) => {
                    let log = ctx.logs.container(&uid, &name);
                    runtime.log = Some(log.clone());
                    let launch = Launch {
                        pod: pod_name.clone(),
                        container: name,
                        command: command.clone(),
                        program,
                        readiness,
                        liveness,
                        grace: termination_grace(pod),
                        backoff: cfg.restart_backoff.max(Duration::from_millis(10)),
                        max_backoff: cfg.max_restart_backoff,
                        kill_at: kill_at_rx,
                        log,
                        ctx: ctx.clone(),
                        restart: restart_policy(pod),
                    };
                    runtime.supervisor =
                        Some(handle.spawn(supervise(launch, runtime.shared.clone())));
                    return Some(runtime);
                }
            }
        }
    };
    if let ContainerState::Waiting { reason, message } = &state {
        tracing::warn!(pod = %pod_name, %reason, %message, "process pod cannot start");
    }
    *lock(&runtime.shared) = initial(state);
    Some(runtime)
}

impl ProcessRuntime {
    /// The port the process listens on, while it runs.
    pub fn port(&self) -> Option<u16> {
        lock(&self.shared).port
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.shared).pid
    }
}

impl PodRuntime for ProcessRuntime {
    fn started_at(&self) -> DateTime<Utc> {
        self.started_wall
    }

    fn observe(&mut self, now: Instant) -> RuntimeReport {
        let snap = lock(&self.shared).clone();
        let containers = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                if i == self.process {
                    ContainerReport {
                        spec: spec.clone(),
                        ready: snap.ready,
                        started: matches!(snap.state, ContainerState::Running { .. }),
                        restart_count: snap.restart_count,
                        state: snap.state.clone(),
                        last_state: snap.last_state.clone(),
                    }
                } else {
                    ContainerReport {
                        spec: spec.clone(),
                        ready: true,
                        started: true,
                        restart_count: 0,
                        state: ContainerState::Running {
                            started_at: self.started_wall,
                        },
                        last_state: None,
                    }
                }
            })
            .collect();
        RuntimeReport {
            containers,
            // Only a supervised process changes by itself.
            next_change: self.supervisor.as_ref().map(|_| now + OBSERVE_EVERY),
        }
    }

    fn stop(&mut self) {
        let Some(supervisor) = self.supervisor.take() else {
            return;
        };
        let pid = {
            let mut snap = lock(&self.shared);
            snap.ready = false;
            snap.port = None;
            snap.ports.clear();
            snap.pid.take()
        };
        if let Some(pid) = pid {
            kill_group(pid);
        }
        // Dropping the supervisor's future drops the `Child` (kill_on_drop).
        supervisor.abort();
        // The pod is gone: so are its logs (followers see the run end) and
        // its credentials.
        if let Some(log) = self.log.take() {
            log.end_run();
        }
        self.ctx.logs.remove_pod(&self.uid);
        if let Some(api) = &self.ctx.api {
            let _ = std::fs::remove_file(api.path(&self.uid));
        }
    }

    fn terminate(&mut self, kill_at: Instant) {
        if self.supervisor.is_none() {
            return;
        }
        // The supervisor signals the process; sent first, so that its readiness
        // probe (which yields to this) cannot undo the line after.
        self.kill_at.send_if_modified(|current| {
            let earlier = current.is_none_or(|c| kill_at < c);
            if earlier {
                *current = Some(kill_at);
            }
            earlier
        });
        // Out of rotation at once.
        lock(&self.shared).ready = false;
    }

    fn stopped(&self) -> bool {
        self.supervisor.is_none() || lock(&self.shared).stopped
    }

    fn pod_ip(&self) -> Option<Ipv4Addr> {
        Some(Ipv4Addr::LOCALHOST)
    }

    fn annotations(&self) -> Vec<(&'static str, Option<String>)> {
        let snap = lock(&self.shared);
        vec![
            (PORT_ANNOTATION, snap.port.map(|p| p.to_string())),
            (PID_ANNOTATION, snap.pid.map(|p| p.to_string())),
            (
                PORTS_ANNOTATION,
                (!snap.ports.is_empty()).then(|| ports_annotation(&snap.ports)),
            ),
        ]
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Own process group (so `kill_group` reaches grandchildren, and a terminal's
/// Ctrl-C is the sandbox's to handle), and death with the parent on Linux.
fn isolate(cmd: &mut tokio::process::Command) {
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec and makes
        // only async-signal-safe system calls (prctl, getppid, _exit).
        // PDEATHSIG fires when the *thread* that forked exits: here a Tokio
        // worker, which lives as long as the runtime that runs the sandbox.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl: then no signal comes.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
}

/// How one run ended.
enum Ended {
    NotStarted(SpecError),
    Exited {
        code: i32,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        ran: Duration,
        stderr_tail: Vec<String>,
        /// Killed because its liveness probe failed (the probe's last error).
        unhealthy: Option<String>,
    },
}

/// Starts the process, restarts it when it ends, forever (until aborted).
async fn supervise(launch: Launch, shared: Shared) {
    let mut crashes_in_a_row: u32 = 0;
    loop {
        if launch.kill_at.borrow().is_some() {
            lock(&shared).stopped = true;
            return;
        }
        let ended = run_once(&launch, &shared).await;
        if launch.kill_at.borrow().is_some() {
            stopped(&launch, &shared, ended);
            return;
        }
        // Run to completion (a Job's pod): the exit is the container's final
        // `terminated` state, and the pod's phase follows (pods.rs).
        let done = match (&ended, launch.restart) {
            (Ended::Exited { .. }, RestartPolicy::Never) => true,
            (Ended::Exited { code, .. }, RestartPolicy::OnFailure) => *code == 0,
            _ => false,
        };
        if done {
            stopped(&launch, &shared, ended);
            return;
        }
        let stable = matches!(&ended, Ended::Exited { ran, .. } if *ran >= STABLE_RUN);
        crashes_in_a_row = if stable {
            1
        } else {
            crashes_in_a_row.saturating_add(1)
        };
        let delay = launch
            .backoff
            .saturating_mul(1u32 << crashes_in_a_row.saturating_sub(1).min(16))
            .min(launch.max_backoff.max(launch.backoff));
        // A container that never started is retried without counting a restart.
        let restarts = matches!(ended, Ended::Exited { .. });
        {
            let mut snap = lock(&shared);
            snap.ready = false;
            snap.port = None;
            snap.ports.clear();
            snap.pid = None;
            match ended {
                Ended::NotStarted(e) => {
                    tracing::warn!(pod = %launch.pod, reason = e.reason(), message = %e, "process did not start");
                    snap.state = waiting(e.reason(), e.to_string());
                }
                Ended::Exited {
                    code,
                    started,
                    finished,
                    stderr_tail,
                    unhealthy,
                    ..
                } => {
                    let tail = if stderr_tail.is_empty() {
                        "(stderr was empty)".to_string()
                    } else {
                        stderr_tail.join("\n")
                    };
                    let why = match &unhealthy {
                        Some(e) => format!("killed: liveness probe failed ({e}), exit code {code}"),
                        None => format!("exit code {code}"),
                    };
                    tracing::warn!(pod = %launch.pod, code, ?delay, %why, "process ended; restarting after back-off");
                    snap.state = waiting(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {delay:?} restarting failed container {}: {why}; last lines of stderr:\n{tail}",
                            launch.container
                        ),
                    );
                    snap.last_state = Some(ContainerState::Terminated {
                        exit_code: code,
                        reason: if code == 0 { "Completed" } else { "Error" }.into(),
                        started_at: started,
                        finished_at: finished,
                    });
                }
            }
        }
        // A pod that starts terminating during the back-off is not restarted.
        let mut kill_at = launch.kill_at.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = kill_at.wait_for(Option::is_some) => {}
        }
        if restarts {
            let mut snap = lock(&shared);
            snap.restart_count = snap.restart_count.saturating_add(1);
        }
    }
}

/// The last run of a terminated pod's process: its exit is the container's
/// final `terminated` state.
fn stopped(launch: &Launch, shared: &Shared, ended: Ended) {
    let mut snap = lock(shared);
    snap.ready = false;
    snap.port = None;
    snap.ports.clear();
    snap.pid = None;
    snap.stopped = true;
    if let Ended::Exited {
        code,
        started,
        finished,
        ..
    } = ended
    {
        tracing::info!(pod = %launch.pod, code, "process stopped");
        snap.state = ContainerState::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at: started,
            finished_at: finished,
        };
    }
}

/// Why the process is being stopped, if not by its own exit.
enum Stop {
    Terminating,
    Unhealthy(String),
}

async fn run_once(launch: &Launch, shared: &Shared) -> Ended {
    let prepared = match launch.program.prepare(&launch.ctx) {
        Ok(p) => p,
        Err(e) => return Ended::NotStarted(e),
    };
    let mut cmd = tokio::process::Command::new(&launch.command);
    cmd.args(&prepared.args)
        .env_clear()
        .envs(&prepared.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    isolate(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Ended::NotStarted(SpecError::RunContainerError(format!(
                "cannot start {} {}: {e}",
                launch.command.display(),
                prepared.args.join(" ")
            )));
        }
    };
    let pid = child.id();
    let started = Utc::now();
    let started_at = Instant::now();
    launch.log.start_run();
    {
        let mut snap = lock(shared);
        snap.state = ContainerState::Running {
            started_at: started,
        };
        snap.ready = false;
        snap.port = prepared.app_port;
        snap.ports = prepared.ports.clone();
        snap.pid = pid;
    }
    tracing::info!(pod = %launch.pod, ?pid, ports = ?prepared.ports, port = ?prepared.app_port, "process started");
    let (listening_tx, listening_rx) = watch::channel(false);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stdout = child.stdout.take().map(|out| {
        tokio::spawn(read_stdout(
            out,
            prepared.app_port,
            listening_tx,
            launch.log.clone(),
            launch.pod.clone(),
        ))
    });
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_tail(err, tail.clone(), launch.log.clone())));
    let mut kill_at = launch.kill_at.clone();
    let outcome = tokio::select! {
        // First, so that a readiness probe cannot mark a terminating pod ready.
        biased;
        _ = kill_at.wait_for(Option::is_some) => Err(Stop::Terminating),
        status = child.wait() => Ok(status),
        e = liveness(launch, &prepared) => Err(Stop::Unhealthy(e)),
        () = readiness(launch, &prepared, listening_rx, shared.clone()) => Ok(unreachable_wait()),
    };
    let mut unhealthy = None;
    let status = match outcome {
        Ok(status) => status,
        Err(Stop::Terminating) => {
            lock(shared).ready = false;
            process_stop::drain(&mut child, pid, &mut kill_at, &launch.pod).await
        }
        Err(Stop::Unhealthy(e)) => {
            tracing::warn!(pod = %launch.pod, error = %e, "liveness probe failed; container will be restarted");
            lock(shared).ready = false;
            unhealthy = Some(e);
            // A deletion meanwhile may only bring the SIGKILL closer.
            let (_tx, mut grace) = watch::channel(Some(Instant::now() + launch.grace));
            process_stop::drain(&mut child, pid, &mut grace, &launch.pod).await
        }
    };
    // Reaped: the pid may be reused from now on, so it must not be signalled.
    lock(shared).pid = None;
    let code = match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            tracing::warn!(pod = %launch.pod, %e, "cannot wait for the process");
            -1
        }
    };
    // The last lines may still be in the pipes; a pipe that a survivor holds
    // open is given up on after DRAIN_WAIT.
    for mut task in [stderr, stdout].into_iter().flatten() {
        if tokio::time::timeout(DRAIN_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
    launch.log.end_run();
    let stderr_tail = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    Ended::Exited {
        code,
        started,
        finished: Utc::now(),
        ran: started_at.elapsed(),
        stderr_tail,
        unhealthy,
    }
}

/// `readiness` never returns; this keeps `select!`'s arms the same type.
fn unreachable_wait() -> std::io::Result<std::process::ExitStatus> {
    Err(std::io::Error::other("readiness loop ended"))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // Shells and the kubelet report death by signal N as 128 + N.
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1)
    }
    #[cfg(not(unix))]
    status.code().unwrap_or(-1)
}

/// Sets `ready` as the kubelet would; runs until the process ends.
async fn readiness(
    launch: &Launch,
    prepared: &Prepared,
    mut listening: watch::Receiver<bool>,
    shared: Shared,
) {
    let set_ready = |ready: bool| lock(&shared).ready = ready;
    match &launch.readiness {
        // The demo app says when it listens; anything else is ready once started.
        None if launch.program.is_demo() => {
            if listening.wait_for(|l| *l).await.is_ok() {
                set_ready(true);
            }
        }
        None => set_ready(true),
        Some(probe) => {
            let port = launch.program.probe_port(probe, prepared);
            process_health::readiness(probe, port, &launch.pod, set_ready).await;
        }
    }
    std::future::pending::<()>().await;
}

/// Returns (with the last error) once the liveness probe has failed
/// `failureThreshold` times in a row; never without a probe.
async fn liveness(launch: &Launch, prepared: &Prepared) -> String {
    match &launch.liveness {
        None => std::future::pending().await,
        Some(probe) => {
            let port = launch.program.probe_port(probe, prepared);
            process_health::liveness(probe, port, &launch.pod).await
        }
    }
}

/// Drains stdout (a full pipe would block the app) into the log, and spots
/// the line the demo app prints once it listens on the port it was given.
async fn read_stdout(
    out: impl AsyncRead + Unpin,
    port: Option<u16>,
    listening: watch::Sender<bool>,
    log: Arc<ContainerLog>,
    pod: String,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push(&line);
        let Some(port) = port else { continue };
        match parse_listening_line(&line) {
            Some(addr) if addr.port() == port => {
                listening.send_replace(true);
            }
            Some(addr) => {
                tracing::warn!(%pod, %addr, port, "demo-app listens on another port than it was given");
            }
            None => {}
        }
    }
}

/// Drains stderr into the log, keeping the last `TAIL_LINES` lines for the
/// crash message.
async fn read_tail(
    err: impl AsyncRead + Unpin,
    tail: Arc<Mutex<VecDeque<String>>>,
    log: Arc<ContainerLog>,
) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push(&line);
        let line: String = line.chars().take(TAIL_LINE_CHARS).collect();
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}
