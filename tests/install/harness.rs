//! The world of tests/install.rs: the real `redblack sandbox` binary (a
//! child process with its own kubeconfig file), the real `helm` and
//! `kubectl` (`.cache/tools/bin`, as tests/chart.rs finds them) run with that
//! kubeconfig, a `kube::Client` for reading what they did, and bounded waits
//! that print the last state they saw.

pub use crate::tools::{root, tool};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube::Client;

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Both streams, for failure messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A child process killed (SIGKILL) and reaped on drop — only our own.
pub struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redblack sandbox` as a user starts it, with a Prometheus file-SD list
/// of its pods. Its pod processes (demo-app, the operator) die with it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub sd_file: PathBuf,
    pub log: PathBuf,
    pub client: Client,
    _process: Child,
}

/// Bound on every wait for something the sandbox or a tool does quickly.
pub const SHORT: Duration = Duration::from_secs(60);

impl Sandbox {
    pub async fn start() -> Sandbox {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("sandbox.kubeconfig");
        let sd_file = dir.path().join("pods.json");
        let log = dir.path().join("sandbox.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let process = std::process::Command::new(env!("CARGO_BIN_EXE_redblack"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--pod-ready-after",
                "200ms",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--prometheus-sd-file")
            .arg(&sd_file)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("redblack sandbox starts");
        let process = Child(process);
        eventually("the sandbox is ready", SHORT, || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready at") && kubeconfig.is_file() {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await;
        let config = redblack::runtime::client::config(Some(&kubeconfig))
            .await
            .expect("the sandbox's kubeconfig");
        let client = Client::try_from(config).expect("client");
        Sandbox {
            dir,
            kubeconfig,
            sd_file,
            log,
            client,
            _process: process,
        }
    }

    /// `program args` with this sandbox's kubeconfig (and nothing else of
    /// the caller's: no KUBECONFIG, a helm home of its own), in the repo root.
    pub async fn run(&self, program: &Path, args: &[&str]) -> Ran {
        let helm_home = self.dir.path().join("helm");
        let out = tokio::process::Command::new(program)
            .args(args)
            .current_dir(root())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_DATA_HOME", helm_home.join("data"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn helm(&self, args: &[&str]) -> Ran {
        self.run(&tool("helm"), args).await
    }

    pub async fn kubectl(&self, args: &[&str]) -> Ran {
        self.run(&tool("kubectl"), args).await
    }

    /// Runs a command that must succeed; its output.
    pub async fn must(&self, program: &str, args: &[&str]) -> String {
        let ran = self.run(&tool(program), args).await;
        assert!(
            ran.ok,
            "{program} {} failed:\n{}\n--- sandbox log tail:\n{}",
            args.join(" "),
            ran.text(),
            self.log_tail()
        );
        ran.stdout
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Polls `f` until it returns `Ok`, for at most `limit`; on a timeout the
/// panic shows the last `Err`: what was observed instead.
pub async fn eventually<T, Fut>(what: &str, limit: Duration, mut f: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting until {what}; last observed:\n{last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
