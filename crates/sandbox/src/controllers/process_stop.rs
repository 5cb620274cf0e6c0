//! Stopping a pod's process as a kubelet does: SIGTERM to let it finish what it
//! is doing, SIGKILL when the grace period is over (`drain`), or SIGKILL at once
//! when the pod is gone or the sandbox stops (`kill_group`).
//!
//! Signals go to the whole process group the child leads (it is started in its
//! own group, see `process_runtime::isolate`), so nothing it started survives.

use tokio::process::Child;
use tokio::sync::watch;
use tokio::time::Instant;

/// When a terminating process is SIGKILLed; `None` while it is not terminating.
pub(crate) type KillAt = Option<Instant>;

#[cfg(unix)]
fn signal_group(pid: u32, signal: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg takes plain integers and touches no memory of ours. The
        // caller still holds the un-reaped child, so the group is still ours.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

/// SIGKILL to the process group `pid` leads.
pub(crate) fn kill_group(pid: u32) {
    #[cfg(unix)]
    signal_group(pid, libc::SIGKILL);
    #[cfg(not(unix))]
    let _ = pid;
}

/// SIGTERM to the process group `pid` leads.
fn term_group(pid: u32) {
    #[cfg(unix)]
    signal_group(pid, libc::SIGTERM);
    #[cfg(not(unix))]
    let _ = pid;
}

/// SIGTERM now, then waits for the exit until the deadline in `kill_at` (which
/// may move closer meanwhile: a shorter grace period asked for later), then
/// SIGKILL. Returns how the process ended.
pub(crate) async fn drain(
    child: &mut Child,
    pid: Option<u32>,
    kill_at: &mut watch::Receiver<KillAt>,
    pod: &str,
) -> std::io::Result<std::process::ExitStatus> {
    let Some(pid) = pid else {
        // Already reaped by tokio (it exited just now): nothing to signal.
        return child.wait().await;
    };
    tracing::info!(%pod, pid, "sending SIGTERM to the pod's process");
    term_group(pid);
    loop {
        // Copied out at once: a borrow of the channel must not be held across awaits.
        let deadline = (*kill_at.borrow_and_update()).unwrap_or_else(Instant::now);
        tokio::select! {
            status = child.wait() => return status,
            () = tokio::time::sleep_until(deadline) => break,
            changed = kill_at.changed() => {
                if changed.is_err() {
                    // The runtime is gone: it kills the group itself.
                    break;
                }
            }
        }
    }
    tracing::warn!(%pod, pid, "pod's process still running at the end of its grace period: SIGKILL");
    kill_group(pid);
    child.wait().await
}
