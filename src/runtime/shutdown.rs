//! How a long-running verb stops: on SIGINT or SIGTERM, in-flight reconciles
//! get [`SHUTDOWN_GRACE`] to finish, then the process stops anyway. Every
//! decision lives in the API, so a reconcile cut short is redone by the next
//! operator, as after a kill.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// How long in-flight reconciles may run after a shutdown signal (below
/// Kubernetes' default 30 s termination grace period, so we exit before a SIGKILL).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A shutdown trigger every part of a verb can await (controllers, HTTP servers).
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Makes `trigger` awaitable by many.
pub fn shared(trigger: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    trigger.boxed().shared()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes and process
/// supervisors send); where SIGTERM cannot be watched, on Ctrl-C alone.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl+C stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The shutdown of a controller verb: SIGINT or SIGTERM.
pub fn on_signal() -> Shutdown {
    shared(async {
        terminated().await;
        tracing::info!("shutdown requested; finishing in-flight reconciles");
    })
}

/// Runs `work` to its end, but no longer than `grace` after `shutdown`
/// resolved: `None` when the grace ran out first.
pub async fn within_grace<F: Future>(
    work: F,
    shutdown: Shutdown,
    grace: Duration,
) -> Option<F::Output> {
    let grace_over = async move {
        shutdown.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        output = work => Some(output),
        () = grace_over => {
            tracing::warn!(
                ?grace,
                "in-flight reconciles did not finish within the shutdown grace period; stopping anyway"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Paused virtual time: the runtime jumps to the next timer, so which of
    // two timers fires first depends on their deadlines, never on how busy
    // the machine is.
    use tokio::time::Instant;

    const GRACE: Duration = Duration::from_millis(50);

    #[tokio::test(start_paused = true)]
    async fn work_that_never_ends_is_cut_after_the_grace() {
        let started = Instant::now();
        let out = within_grace(std::future::pending::<()>(), shared(async {}), GRACE).await;
        assert_eq!(out, None);
        assert!(started.elapsed() >= GRACE);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn work_finishing_within_the_grace_returns_its_output() {
        let work = async {
            tokio::time::sleep(GRACE / 5).await;
            7
        };
        assert_eq!(within_grace(work, shared(async {}), GRACE).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_shutdown_the_grace_never_starts() {
        let work = async {
            tokio::time::sleep(GRACE * 3).await;
            "done"
        };
        let never = shared(std::future::pending());
        assert_eq!(within_grace(work, never, GRACE).await, Some("done"));
    }
}
