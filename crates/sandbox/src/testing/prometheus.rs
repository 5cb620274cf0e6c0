//! A real Prometheus server for tests: started on a free 127.0.0.1 port over
//! a (possibly backfilled) data directory, with an optional scrape config,
//! and killed when dropped — also when the test panics, since unwinding runs
//! `Drop`.
//!
//! ```no_run
//! use redblack_sandbox::testing::prometheus::{backfill, OpenMetricsSeries, PrometheusProcess};
//! let data = tempfile::tempdir().unwrap();
//! let series: Vec<OpenMetricsSeries> = Vec::new(); // … fill with samples
//! backfill(&series, data.path()).unwrap();
//! let prometheus = PrometheusProcess::start(Some(data.path()), None).unwrap();
//! println!("{}", prometheus.url());
//! ```
//!
//! `start` is synchronous (a plain TCP readiness probe) so it works from
//! both sync tests and `#[tokio::test]`s.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use super::openmetrics::{
    MetricKind, OpenMetricsSeries, backfill, backfill_openmetrics_text, render_openmetrics,
};

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{binary} not found: install its Debian package, e.g. `prometheus` or `victoria-metrics` (or set {variable})"
    )]
    MissingBinary {
        binary: String,
        variable: &'static str,
    },
    #[error("invalid series: {0}")]
    InvalidSeries(String),
    #[error("promtool failed ({status}):\n{stderr}")]
    Promtool { status: String, stderr: String },
    #[error("prometheus exited during startup ({status}); last log lines:\n{stderr_tail}")]
    Exited { status: String, stderr_tail: String },
    #[error("prometheus at {url} not ready after {waited:?}; last log lines:\n{stderr_tail}")]
    NotReady {
        url: String,
        waited: Duration,
        stderr_tail: String,
    },
}

impl HarnessError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> HarnessError {
        move |source| HarnessError::Io { context, source }
    }
}

/// How to run the server. `Default` suits backfilled data of any age.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// TSDB directory (e.g. one `backfill` wrote); a temporary one if `None`.
    pub data_dir: Option<PathBuf>,
    /// YAML list of scrape jobs, placed under `scrape_configs:` verbatim
    /// (e.g. from [`file_sd_scrape_config`]); no scraping if `None`.
    pub scrape_configs: Option<String>,
    /// Global scrape and evaluation interval (scrape timeout = the same).
    pub scrape_interval: Duration,
    /// `--storage.tsdb.retention.time`: long, so backfilled blocks far in
    /// the past are not deleted at startup.
    pub retention: String,
    /// `--query.lookback-delta`; Prometheus's default (5m) if `None`.
    pub lookback_delta: Option<Duration>,
    /// Bound on the wait for `/-/ready`.
    pub ready_timeout: Duration,
    /// `--web.config.file` contents (TLS, basic auth). With it the URL is
    /// `https://` when `tls_server_config` is in it, and readiness is only
    /// "the port answers HTTP" (a plain request to a TLS port gets a 400):
    /// the caller, which holds the credentials, waits for real readiness.
    pub web_config: Option<String>,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            data_dir: None,
            scrape_configs: None,
            scrape_interval: Duration::from_secs(1),
            retention: "100y".to_owned(),
            lookback_delta: None,
            // Generous: the machine is shared with parallel compiles.
            ready_timeout: Duration::from_secs(30),
            web_config: None,
        }
    }
}

/// `prometheus`, overridable with `REDBLACK_PROMETHEUS`.
pub fn prometheus_binary() -> PathBuf {
    std::env::var_os("REDBLACK_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"))
}

/// A running Prometheus; killed on drop.
#[derive(Debug)]
pub struct PrometheusProcess {
    child: Child,
    port: u16,
    /// Ready when the port answers any HTTP status (a web config is in use).
    any_answer: bool,
    url: String,
    data_dir: PathBuf,
    log: PathBuf,
    /// Holds the config, the log and (unless given) the data directory.
    work: tempfile::TempDir,
}

/// Attempts at picking a free port: another process may take the port
/// between our probe and Prometheus's bind.
const PORT_ATTEMPTS: u32 = 3;

impl PrometheusProcess {
    /// Start over `data_dir` (temporary if `None`) with the given scrape jobs.
    pub fn start(
        data_dir: Option<&Path>,
        scrape_config: Option<&str>,
    ) -> Result<Self, HarnessError> {
        Self::start_with(PrometheusOptions {
            data_dir: data_dir.map(Path::to_path_buf),
            scrape_configs: scrape_config.map(str::to_owned),
            ..PrometheusOptions::default()
        })
    }

    pub fn start_with(options: PrometheusOptions) -> Result<Self, HarnessError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&options) {
                Err(HarnessError::Exited { stderr_tail, .. })
                    if attempt < PORT_ATTEMPTS
                        && stderr_tail.contains("address already in use") =>
                {
                    tracing::warn!(attempt, "prometheus port taken, retrying on another");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(options: &PrometheusOptions) -> Result<Self, HarnessError> {
        let work = tempfile::tempdir().map_err(HarnessError::io("create a work directory"))?;
        let data_dir = match &options.data_dir {
            Some(dir) => dir.clone(),
            None => work.path().join("data"),
        };
        let config = work.path().join("prometheus.yml");
        std::fs::write(&config, config_text(options))
            .map_err(HarnessError::io("write prometheus.yml"))?;
        let log = work.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).map_err(HarnessError::io("create the log"))?;
        let port = free_port()?;
        let mut command = Command::new(prometheus_binary());
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!(
                "--storage.tsdb.retention.time={}",
                options.retention
            ))
            // No lockfile flag: Prometheus 2.x creates none unless asked
            // (`--storage.tsdb.use-lockfile`), so a killed test leaves no
            // stale lock behind.
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: nobody drains a pipe, and a full pipe
            // would block Prometheus's logging.
            .stderr(log_file);
        if let Some(web) = &options.web_config {
            let path = work.path().join("web.yml");
            std::fs::write(&path, web).map_err(HarnessError::io("write web.yml"))?;
            command.arg(format!("--web.config.file={}", path.display()));
        }
        if let Some(lookback) = options.lookback_delta {
            command.arg(format!("--query.lookback-delta={}ms", lookback.as_millis()));
        }
        let child = command
            .spawn()
            .map_err(HarnessError::io("start prometheus"))?;
        let tls = options
            .web_config
            .as_deref()
            .is_some_and(|w| w.contains("tls_server_config"));
        let scheme = if tls { "https" } else { "http" };
        let mut process = PrometheusProcess {
            child,
            port,
            any_answer: options.web_config.is_some(),
            url: format!("{scheme}://127.0.0.1:{port}"),
            data_dir,
            log,
            work,
        };
        process.wait_ready(options.ready_timeout)?;
        tracing::info!(url = %process.url, "prometheus ready");
        Ok(process)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Exited {
                    status: status.to_string(),
                    stderr_tail: self.log_tail(20),
                });
            }
            if probe_ready(self.port, self.any_answer) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(HarnessError::NotReady {
                    url: self.url.clone(),
                    waited: started.elapsed(),
                    stderr_tail: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id, e.g. to check that it is gone after drop.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A temporary directory that lives as long as the process: a place
    /// for file_sd target files.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// The last `lines` lines Prometheus logged, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        // Errors here mean the process is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn yaml_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

fn config_text(options: &PrometheusOptions) -> String {
    let interval = yaml_duration(options.scrape_interval);
    // A block sequence may follow its key on the next line; an empty list
    // must be written inline.
    let jobs = match options.scrape_configs.as_deref() {
        Some(jobs) => format!("\n{jobs}"),
        None => " []".to_owned(),
    };
    format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nscrape_configs:{jobs}\n"
    )
}

pub(crate) fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(HarnessError::io("find a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(HarnessError::io("find a free port"))
}

/// `GET /-/ready` over plain TCP; true on HTTP 200 (or any status, with `any_answer`).
fn probe_ready(port: u16, any_answer: bool) -> bool {
    probe_path(port, "/-/ready", any_answer)
}

/// `GET path` over plain TCP; true on HTTP 200 (or any status, with `any_answer`).
pub(crate) fn probe_path(port: u16, path: &str, any_answer: bool) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let head = String::from_utf8_lossy(&head[..read]);
    head.starts_with("HTTP/1.") && (any_answer || head.get(9..12) == Some("200"))
}

/// One scrape job reading its targets from `targets_file` (JSON, written
/// with [`write_file_sd_targets`]); the file is watched, so rewriting it
/// changes the targets without a restart.
pub fn file_sd_scrape_config(job_name: &str, targets_file: &Path) -> String {
    // JSON strings are valid YAML scalars, which quotes any name or path.
    let job = serde_json::Value::from(job_name);
    let file = serde_json::Value::from(targets_file.display().to_string());
    format!(
        "- job_name: {job}\n  file_sd_configs:\n  - files: [{file}]\n    refresh_interval: 1s\n"
    )
}

/// A target group of a file_sd file: `host:port`s and the labels they get
/// (e.g. `namespace`, `pod`, and pod labels as Kubernetes relabelling
/// would name them).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileSdGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Replace the file_sd file atomically (write + rename), so Prometheus
/// never reads a half-written file.
pub fn write_file_sd_targets(
    targets_file: &Path,
    groups: &[FileSdGroup],
) -> Result<(), HarnessError> {
    let json = serde_json::to_vec_pretty(groups)
        .map_err(|e| HarnessError::InvalidSeries(format!("file_sd targets: {e}")))?;
    let mut temporary = targets_file.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, json).map_err(HarnessError::io("write the file_sd file"))?;
    std::fs::rename(&temporary, targets_file).map_err(HarnessError::io("replace the file_sd file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A killed and reaped process has no /proc entry.
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn killed_on_drop_even_when_the_test_panics() {
        let pid = std::sync::Mutex::new(None);
        let outcome = std::panic::catch_unwind(|| {
            let prometheus = PrometheusProcess::start(None, None).unwrap();
            assert!(probe_ready(prometheus.port(), false));
            *pid.lock().unwrap() = Some(prometheus.pid());
            panic!("test failure while Prometheus runs");
        });
        assert!(outcome.is_err());
        let pid = pid.lock().unwrap().expect("Prometheus had started");
        assert!(!alive(pid), "prometheus {pid} still running after drop");
    }

    #[test]
    fn a_bad_config_fails_fast_with_prometheus_own_words() {
        let started = Instant::now();
        let err = PrometheusProcess::start(None, Some("- job_name: [not, a, name]\n")).unwrap_err();
        let HarnessError::Exited { stderr_tail, .. } = &err else {
            panic!("expected Exited, got {err:?}");
        };
        assert!(stderr_tail.contains("config"), "{stderr_tail}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn promtool_failure_reports_its_stderr() {
        let data = tempfile::tempdir().unwrap();
        let err =
            backfill_openmetrics_text("this is not OpenMetrics\n# EOF\n", data.path()).unwrap_err();
        let HarnessError::Promtool { stderr, .. } = &err else {
            panic!("expected Promtool, got {err:?}");
        };
        assert!(!stderr.trim().is_empty(), "{err}");
    }
}
