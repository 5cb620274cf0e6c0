//! The kubelet's HTTP readiness probe, against a process on 127.0.0.1: one
//! `GET`, success for a status in 200..400 within the timeout, as Kubernetes
//! defines it. Plain HTTP/1.1 over a socket: a probe needs nothing more.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a probe failed, in the words that end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe timed out after {0:?}")]
    Timeout(Duration),
    #[error("probe failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("probe got a malformed response: {0:?}")]
    Malformed(String),
    #[error("probe got HTTP status {0}")]
    Status(u16),
}

/// Probes `GET path` on 127.0.0.1:`port`.
pub async fn http_get(port: u16, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    match tokio::time::timeout(timeout, get_status(port, path)).await {
        Err(_) => Err(ProbeError::Timeout(timeout)),
        Ok(Err(e)) => Err(e),
        Ok(Ok(status)) if (200..400).contains(&status) => Ok(status),
        Ok(Ok(status)) => Err(ProbeError::Status(status)),
    }
}

/// Probes that the process accepts connections (`tcpSocket`).
pub async fn tcp_connect(port: u16, timeout: Duration) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, TcpStream::connect((Ipv4Addr::LOCALHOST, port))).await {
        Err(_) => Err(ProbeError::Timeout(timeout)),
        Ok(r) => r.map(|_| ()).map_err(ProbeError::from),
    }
}

async fn get_status(port: u16, path: &str) -> Result<u16, ProbeError> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/sandbox\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // Only the status line matters; read until it is complete (bounded).
    let mut head = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(status))) if v.starts_with("HTTP/1.") => Ok(status),
        _ => Err(ProbeError::Malformed(line.chars().take(80).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn one_shot_server(response: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn statuses_and_garbage() {
        let ok = one_shot_server("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(
            http_get(ok, "/", Duration::from_secs(2)).await.unwrap(),
            204
        );
        let bad = one_shot_server("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert!(matches!(
            http_get(bad, "/", Duration::from_secs(2)).await,
            Err(ProbeError::Status(503))
        ));
        let junk = one_shot_server("SSH-2.0-OpenSSH\r\n").await;
        assert!(matches!(
            http_get(junk, "/", Duration::from_secs(2)).await,
            Err(ProbeError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = http_get(port, "/", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Timeout(_)), "{err}");
        drop(listener);
    }
}
