//! Demo mode of the pod simulator: a pod whose container image is
//! `redblack/demo-app:<tag>` (see `process_spec`) runs as a real local process of
//! `redblack demo-app`, on a free 127.0.0.1 port.
//!
//! What the pod shows (docs/live-fleet.md has the full story):
//! - `status.podIP` 127.0.0.1; the process's port and pid in the annotations
//!   `sandbox.redblack.io/port` and `sandbox.redblack.io/pid` (Kubernetes has no
//!   status field for a per-pod port; Endpoints and the data plane read these).
//! - Ready after the `readinessProbe` (httpGet or tcpSocket) succeeds, or, without
//!   one, as soon as the process prints its `listening on` line.
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

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, TcpListener};
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

use super::pod_runtime::{
    ContainerReport, ContainerSpec, ContainerState, PodRuntime, RuntimeReport,
};
use super::process_probe;
use super::process_spec::{
    ReadinessProbe, container_env, demo_app_tag, process_env, readiness_probe,
};
use super::process_stop::{self, KillAt, kill_group};

/// The process's port, on the pod (written by the pod controller).
pub const PORT_ANNOTATION: &str = "sandbox.redblack.io/port";
/// The process's pid, on the pod: for people and tests that want to kill it.
pub const PID_ANNOTATION: &str = "sandbox.redblack.io/pid";

/// How process pods are run (part of `ControllersConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessConfig {
    /// The `redblack` binary (`<command> demo-app` is run). `None`: demo-app
    /// pods stay `waiting` with reason `CreateContainerError`.
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
}

/// Everything the supervisor needs to (re)start the process.
struct Launch {
    pod: String,
    container: String,
    command: PathBuf,
    env: BTreeMap<String, String>,
    probe: Option<ReadinessProbe>,
    backoff: Duration,
    max_backoff: Duration,
    kill_at: watch::Receiver<KillAt>,
}

/// The runtime for `pod` if one of its containers is the demo app, else `None`.
/// Must be called within a Tokio runtime (the pod controller is one of its tasks).
pub fn for_pod(
    pod: &Value,
    containers: Vec<ContainerSpec>,
    cfg: &ProcessConfig,
) -> Option<ProcessRuntime> {
    let (index, tag) =
        containers
            .iter()
            .enumerate()
            .find_map(|(i, c)| match demo_app_tag(&c.image) {
                Ok(None) => None,
                Ok(Some(tag)) => Some((i, Ok(tag))),
                Err(e) => Some((i, Err(e))),
            })?;
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
    let name = containers[index].name.clone();
    let prepared = tag.and_then(|tag| {
        let env = container_env(&container, &tag)?;
        // Validated now, with any port, so a bad value never reaches a process.
        process_env(&env, 0)?;
        let probe = readiness_probe(&container)?;
        Ok((env, probe))
    });
    let initial = |state| Snapshot {
        state,
        ready: false,
        restart_count: 0,
        last_state: None,
        port: None,
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
    };
    let state = match (prepared, &cfg.command) {
        (Err(e), _) => waiting(e.reason(), e.to_string()),
        (Ok(_), None) => waiting(
            "CreateContainerError",
            "the sandbox was started without a demo-app command \
             (ControllersConfig::process.command), so it cannot run redblack/demo-app images"
                .into(),
        ),
        (Ok((env, probe)), Some(command)) => match tokio::runtime::Handle::try_current() {
            Err(_) => waiting(
                "CreateContainerError",
                "no async runtime to supervise the process".into(),
            ),
            Ok(handle) => {
                let launch = Launch {
                    pod: pod_name.clone(),
                    container: name,
                    command: command.clone(),
                    env,
                    probe,
                    backoff: cfg.restart_backoff.max(Duration::from_millis(10)),
                    max_backoff: cfg.max_restart_backoff,
                    kill_at: kill_at_rx,
                };
                runtime.supervisor = Some(handle.spawn(supervise(launch, runtime.shared.clone())));
                return Some(runtime);
            }
        },
    };
    if let ContainerState::Waiting { reason, message } = &state {
        tracing::warn!(pod = %pod_name, %reason, %message, "demo-app pod cannot start");
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
            snap.pid.take()
        };
        if let Some(pid) = pid {
            kill_group(pid);
        }
        // Dropping the supervisor's future drops the `Child` (kill_on_drop).
        supervisor.abort();
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

/// A free loopback port, found by binding port 0. Another process may take it
/// before the app binds: the app then exits with "address in use", the pod
/// shows it, and the restart picks another port.
fn pick_port() -> std::io::Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()
        .map(|a| a.port())
}

/// How one run ended.
enum Ended {
    NotStarted(String),
    Exited {
        code: i32,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        ran: Duration,
        stderr_tail: Vec<String>,
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
        {
            let mut snap = lock(&shared);
            snap.ready = false;
            snap.port = None;
            snap.pid = None;
            match ended {
                Ended::NotStarted(message) => {
                    tracing::warn!(pod = %launch.pod, %message, "demo-app process did not start");
                    snap.state = waiting("RunContainerError", message);
                }
                Ended::Exited {
                    code,
                    started,
                    finished,
                    stderr_tail,
                    ..
                } => {
                    let tail = if stderr_tail.is_empty() {
                        "(stderr was empty)".to_string()
                    } else {
                        stderr_tail.join("\n")
                    };
                    tracing::warn!(pod = %launch.pod, code, ?delay, "demo-app process exited; restarting after back-off");
                    snap.state = waiting(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {delay:?} restarting failed container {}: exit code {code}; last lines of stderr:\n{tail}",
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
        let mut snap = lock(&shared);
        snap.restart_count = snap.restart_count.saturating_add(1);
    }
}

/// The last run of a terminated pod's process: its exit is the container's
/// final `terminated` state.
fn stopped(launch: &Launch, shared: &Shared, ended: Ended) {
    let mut snap = lock(shared);
    snap.ready = false;
    snap.port = None;
    snap.pid = None;
    snap.stopped = true;
    if let Ended::Exited {
        code,
        started,
        finished,
        ..
    } = ended
    {
        tracing::info!(pod = %launch.pod, code, "demo-app process stopped");
        snap.state = ContainerState::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at: started,
            finished_at: finished,
        };
    }
}

async fn run_once(launch: &Launch, shared: &Shared) -> Ended {
    let port = match pick_port() {
        Ok(p) => p,
        Err(e) => return Ended::NotStarted(format!("no free loopback port: {e}")),
    };
    let env = match process_env(&launch.env, port) {
        Ok(env) => env,
        Err(e) => return Ended::NotStarted(e.to_string()),
    };
    let mut cmd = tokio::process::Command::new(&launch.command);
    cmd.arg("demo-app")
        .env_clear()
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    isolate(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Ended::NotStarted(format!(
                "cannot start {} demo-app: {e}",
                launch.command.display()
            ));
        }
    };
    let pid = child.id();
    let started = Utc::now();
    let started_at = Instant::now();
    {
        let mut snap = lock(shared);
        snap.state = ContainerState::Running {
            started_at: started,
        };
        snap.ready = false;
        snap.port = Some(port);
        snap.pid = pid;
    }
    tracing::info!(pod = %launch.pod, ?pid, port, "demo-app process started");
    let (listening_tx, listening_rx) = watch::channel(false);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(read_stdout(out, port, listening_tx, launch.pod.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_tail(err, tail.clone())));
    let mut kill_at = launch.kill_at.clone();
    let exited = tokio::select! {
        // First, so that a readiness probe cannot mark a terminating pod ready.
        biased;
        _ = kill_at.wait_for(Option::is_some) => None,
        status = child.wait() => Some(status),
        () = readiness(launch, port, listening_rx, shared.clone()) => Some(unreachable_wait()),
    };
    let status = match exited {
        Some(status) => status,
        None => {
            lock(shared).ready = false;
            process_stop::drain(&mut child, pid, &mut kill_at, &launch.pod).await
        }
    };
    // Reaped: the pid may be reused from now on, so it must not be signalled.
    lock(shared).pid = None;
    let code = match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            tracing::warn!(pod = %launch.pod, %e, "cannot wait for the demo-app process");
            -1
        }
    };
    if let Some(task) = stderr {
        let _ = tokio::time::timeout(DRAIN_WAIT, task).await;
    }
    if let Some(task) = stdout {
        task.abort();
    }
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
    port: u16,
    mut listening: watch::Receiver<bool>,
    shared: Shared,
) {
    let set_ready = |ready: bool| lock(&shared).ready = ready;
    match &launch.probe {
        None => {
            if listening.wait_for(|l| *l).await.is_ok() {
                set_ready(true);
            }
        }
        Some(probe) => {
            tokio::time::sleep(probe.initial_delay).await;
            let (mut successes, mut failures, mut ready) = (0u32, 0u32, false);
            loop {
                let result = match &probe.http_path {
                    Some(path) => process_probe::http_get(port, path, probe.timeout)
                        .await
                        .map(|_| ()),
                    None => process_probe::tcp_connect(port, probe.timeout).await,
                };
                match result {
                    Ok(()) => {
                        successes = successes.saturating_add(1);
                        failures = 0;
                        if !ready && successes >= probe.success_threshold {
                            ready = true;
                            set_ready(true);
                        }
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        successes = 0;
                        tracing::debug!(pod = %launch.pod, %e, failures, "readiness probe failed");
                        if ready && failures >= probe.failure_threshold {
                            ready = false;
                            set_ready(false);
                        }
                    }
                }
                tokio::time::sleep(probe.period).await;
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Drains stdout (a full pipe would block the app) and spots the line the app
/// prints once it listens on the port it was given.
async fn read_stdout(
    out: impl AsyncRead + Unpin,
    port: u16,
    listening: watch::Sender<bool>,
    pod: String,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match parse_listening_line(&line) {
            Some(addr) if addr.port() == port => {
                listening.send_replace(true);
            }
            Some(addr) => {
                tracing::warn!(%pod, %addr, port, "demo-app listens on another port than it was given");
            }
            None => tracing::debug!(%pod, %line, "demo-app stdout"),
        }
    }
}

/// Keeps the last `TAIL_LINES` lines of stderr.
async fn read_tail(err: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line: String = line.chars().take(TAIL_LINE_CHARS).collect();
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}
