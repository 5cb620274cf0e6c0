//! `redblack demo-app`: the demo service (configured by environment, see
//! docs/demo-app.md).

use std::io::Write;
use std::net::SocketAddr;

use redblack_demo::{DemoAppConfig, listening_line, serve_until, shutdown_signal};

use super::CliResult;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Configured by environment: PORT, DEMO_HOST, DEMO_VERSION, \
DEMO_ERROR_RATE, DEMO_LATENCY_MS, DEMO_TAIL_LATENCY_MS, DEMO_TAIL_FRACTION, \
DEMO_READY_AFTER, DEMO_FAIL_AT_START, DEMO_IGNORE_SIGTERM, DEMO_SHUTDOWN_DELAY, \
DEMO_SHUTDOWN_TIMEOUT \
(see docs/demo-app.md)."
)]
pub struct DemoAppArgs {}

pub async fn run(_args: DemoAppArgs) -> CliResult {
    init_tracing();
    let cfg = DemoAppConfig::from_env()?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(cfg.host, cfg.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", cfg.host, cfg.port))?;
    let addr = listener.local_addr()?;
    // Before the line below: whoever reads it may signal us at once (a pod
    // deleted as it starts), and SIGTERM must find its handler installed.
    let stop = shutdown_signal(cfg.ignore_sigterm);
    // Whoever started us (the sandbox's pod simulator, a test, a person) learns
    // the real port from this line when PORT=0.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", listening_line(addr))?;
    out.flush()?;
    drop(out);
    serve_until(cfg, listener, stop).await?;
    Ok(())
}

/// Logs to stderr; `RUST_LOG` filters. Ignores a subscriber set elsewhere.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people; pod logs and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
