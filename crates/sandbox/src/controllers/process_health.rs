//! The kubelet's probe loops for a process: readiness (Ready after
//! `successThreshold` successes, not Ready after `failureThreshold` failures)
//! and liveness (give up after `failureThreshold` failures in a row), each
//! every `periodSeconds` after `initialDelaySeconds`. One probe is
//! `process_probe`'s; `port` is the loopback port the probe's port maps to
//! (`None`: the container has no such port, and every probe fails).

use serde_json::Value;

use super::process_probe;
use super::process_spec::Probe;

/// One probe on 127.0.0.1:`port`.
pub(crate) async fn probe_once(probe: &Probe, port: Option<u16>) -> Result<(), String> {
    let Some(port) = port else {
        return Err(format!(
            "port {} is not a port of the container",
            probe
                .port
                .as_ref()
                .map_or("(none)".into(), Value::to_string)
        ));
    };
    let result = match &probe.http_path {
        Some(path) => process_probe::http_get(port, path, probe.timeout)
            .await
            .map(|_| ()),
        None => process_probe::tcp_connect(port, probe.timeout).await,
    };
    result.map_err(|e| e.to_string())
}

/// Calls `set_ready` on every change of readiness; never returns.
pub(crate) async fn readiness(
    probe: &Probe,
    port: Option<u16>,
    pod: &str,
    set_ready: impl Fn(bool),
) {
    tokio::time::sleep(probe.initial_delay).await;
    let (mut successes, mut failures, mut ready) = (0u32, 0u32, false);
    loop {
        match probe_once(probe, port).await {
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
                tracing::debug!(%pod, %e, failures, "readiness probe failed");
                if ready && failures >= probe.failure_threshold {
                    ready = false;
                    set_ready(false);
                }
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}

/// Returns the last error once the probe has failed `failureThreshold`
/// times in a row.
pub(crate) async fn liveness(probe: &Probe, port: Option<u16>, pod: &str) -> String {
    tokio::time::sleep(probe.initial_delay).await;
    let mut failures = 0u32;
    loop {
        match probe_once(probe, port).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(%pod, %e, failures, "liveness probe failed");
                if failures >= probe.failure_threshold {
                    return e;
                }
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn probe(path: &str) -> Probe {
        Probe {
            http_path: Some(path.into()),
            port: Some(serde_json::json!("health")),
            initial_delay: Duration::ZERO,
            period: Duration::from_millis(10),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }

    /// Answers each request with the next status of `statuses` (the last repeats).
    async fn server(statuses: Vec<u16>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut i = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let status = statuses[i.min(statuses.len() - 1)];
                i += 1;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status} X\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn liveness_gives_up_after_the_threshold_in_a_row() {
        // One failure between successes resets the count: 3 in a row at the end.
        let port = server(vec![500, 200, 500, 500, 200, 500, 500, 500]).await;
        let err = liveness(&probe("/healthz"), Some(port), "p").await;
        assert!(err.contains("500"), "{err}");
        let err = liveness(&probe("/healthz"), None, "p").await;
        assert_eq!(err, "port \"health\" is not a port of the container");
    }

    #[tokio::test]
    async fn readiness_turns_on_and_off_with_the_thresholds() {
        let port = server(vec![503, 200, 503, 503, 503]).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let p = probe("/readyz");
        let run = readiness(&p, Some(port), "p", move |r| record.lock().unwrap().push(r));
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::pin!(run);
            loop {
                tokio::select! {
                    () = &mut run => unreachable!("readiness never returns"),
                    () = tokio::time::sleep(Duration::from_millis(20)) => {
                        if seen.lock().unwrap().len() == 2 { break; }
                    }
                }
            }
        })
        .await
        .expect("Ready, then not Ready");
        assert_eq!(*seen.lock().unwrap(), [true, false]);
    }
}
