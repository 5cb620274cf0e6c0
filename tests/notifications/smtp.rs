//! The SMTP server of the email test: tests/notifications/smtp_sink.py
//! (Python's aiosmtpd) on 127.0.0.1, a free port it reports itself; every
//! accepted message lands parsed as JSON in a temporary directory. The
//! process is killed (by its own pid) when the sink is dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// STARTTLS with this certificate and key (PEM), and AUTH with these credentials.
pub struct Secured<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

impl SmtpSink {
    /// Plain SMTP, no authentication.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(None)
    }

    pub fn start_with(secured: Option<Secured>) -> SmtpSink {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/notifications/smtp_sink.py"
        );
        let mut command = Command::new("python3");
        command.arg(script).arg(dir.path());
        if let Some(s) = secured {
            let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
            std::fs::write(&cert, s.cert).expect("write cert");
            std::fs::write(&key, s.key).expect("write key");
            command.arg(cert).arg(key).arg(s.user).arg(s.password);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (hack/deps.sh installs aiosmtpd)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the sink prints its port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the SMTP sink did not start (is aiosmtpd installed? hack/deps.sh): {line:?}")
        });
        SmtpSink { port, dir, child }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("read the sink's directory")
            .filter_map(|e| {
                let path = e.ok()?.path();
                let n = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, path))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("JSON"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
