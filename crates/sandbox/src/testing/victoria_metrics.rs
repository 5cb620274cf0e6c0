//! A real VictoriaMetrics (single node, Debian package `victoria-metrics`)
//! for tests: the second metric backend speaking the Prometheus query API.
//! Started on a free 127.0.0.1 port with the same `scrape_configs` a
//! [`super::prometheus::PrometheusProcess`] takes (file SD), killed on drop.
//!
//! Flags that make it behave like the tests' Prometheus:
//! * `-search.latencyOffset=0s`: VictoriaMetrics hides the last 30 s of
//!   samples by default (they may be incomplete); a live analysis judges
//!   seconds-long intervals ending now, so they would read as NoData.
//! * `-search.disableCache`: its response cache would serve a range query's
//!   older points from before new scrapes landed.
//! * `-promscrape.fileSDCheckInterval`: file SD is re-read every 5 minutes
//!   by default (Prometheus: the job's `refresh_interval`); pods come and go
//!   in seconds. `-promscrape.config.strictParse=false`: that job's
//!   `refresh_interval` is unknown to VictoriaMetrics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::prometheus::{HarnessError, free_port, probe_path};

/// `victoria-metrics`, overridable with `REDBLACK_VICTORIA_METRICS`.
pub fn victoria_metrics_binary() -> PathBuf {
    std::env::var_os("REDBLACK_VICTORIA_METRICS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/victoria-metrics"))
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct VictoriaMetricsOptions {
    /// YAML list of scrape jobs, placed under `scrape_configs:` verbatim.
    pub scrape_configs: Option<String>,
    pub scrape_interval: Duration,
    pub ready_timeout: Duration,
}

impl Default for VictoriaMetricsOptions {
    fn default() -> Self {
        VictoriaMetricsOptions {
            scrape_configs: None,
            scrape_interval: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A running VictoriaMetrics; killed on drop.
#[derive(Debug)]
pub struct VictoriaMetricsProcess {
    child: Child,
    url: String,
    log: PathBuf,
    _work: tempfile::TempDir,
}

impl VictoriaMetricsProcess {
    pub fn start_with(options: VictoriaMetricsOptions) -> Result<Self, HarnessError> {
        let binary = victoria_metrics_binary();
        if !binary.exists() {
            return Err(HarnessError::MissingBinary {
                binary: binary.display().to_string(),
                variable: "REDBLACK_VICTORIA_METRICS",
            });
        }
        let work = tempfile::tempdir().map_err(HarnessError::io("create a work directory"))?;
        let config = work.path().join("scrape.yml");
        let interval = format!("{}ms", options.scrape_interval.as_millis().max(1));
        let jobs = match options.scrape_configs.as_deref() {
            Some(jobs) => format!("\n{jobs}"),
            None => " []".to_owned(),
        };
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\nscrape_configs:{jobs}\n"),
        )
        .map_err(HarnessError::io("write scrape.yml"))?;
        let log = work.path().join("victoria-metrics.log");
        let log_file = std::fs::File::create(&log).map_err(HarnessError::io("create the log"))?;
        let port = free_port()?;
        let child = Command::new(&binary)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                work.path().join("data").display()
            ))
            .arg("-retentionPeriod=100y")
            .arg(format!("-promscrape.config={}", config.display()))
            .arg("-promscrape.fileSDCheckInterval=1s")
            // The shared scrape job sets file SD's `refresh_interval`,
            // which VictoriaMetrics does not know (the flag above replaces it).
            .arg("-promscrape.config.strictParse=false")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=WARN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(HarnessError::io("start victoria-metrics"))?;
        let mut process = VictoriaMetricsProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _work: work,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(HarnessError::Exited {
                    status: status.to_string(),
                    stderr_tail: process.log_tail(20),
                });
            }
            if probe_path(port, "/health", false) {
                tracing::info!(url = %process.url, "victoria-metrics ready");
                return Ok(process);
            }
            if started.elapsed() > options.ready_timeout {
                return Err(HarnessError::NotReady {
                    url: process.url.clone(),
                    waited: started.elapsed(),
                    stderr_tail: process.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Base URL of its Prometheus-compatible API, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for VictoriaMetricsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
