//! `hack/demo.sh` (what `make demo` runs), end to end and non-interactively:
//! the real script, the real sandbox, operator, demo-app processes, load
//! generator, Prometheus and canary analyses. Checks the story's milestones in
//! its output (v2 promoted by its canary, undo/redo, v3 reverted by its
//! canary, each told to the demo's chat by a Notifier, the failed requests
//! accounted for) and that every process the
//! script started (the pids it records, including the demo-app processes
//! behind the pods) is gone once it exits.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The script bounds each of its waits; this bounds the whole run (a busy
/// 2-core machine compiling in parallel included).
const RUN_LIMIT: Duration = Duration::from_secs(420);

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Alive = exists and is not a zombie (exited, not yet reaped by its parent).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Still one of ours: alive and running redblack or prometheus (not a
/// newcomer that reused the pid).
fn ours_alive(pid: i32) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("redblack") || c.contains("prometheus")
            })
            .unwrap_or(false)
}

fn recorded_pids(pidfile: &Path) -> Vec<(String, i32)> {
    std::fs::read_to_string(pidfile)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            Some((name.to_owned(), pid.trim().parse().ok()?))
        })
        .collect()
}

/// Kills the script's process group and every recorded process (a failed or
/// hung run must not leave anything behind either).
fn kill_everything(child: &mut Child, pidfile: &Path) {
    // The script leads its own process group (`process_group(0)`).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    for (_, pid) in recorded_pids(pidfile) {
        if ours_alive(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _ = child.wait();
}

/// `hack/demo.sh` run unattended against its own sandbox, in a process group
/// of its own (as a terminal's foreground job), stdout and stderr piped.
fn spawn_demo(root: &Path, workdir: &Path, kubeconfig: &Path, install: Install) -> Child {
    let mut command = Command::new("bash");
    match install {
        Install::Helm => command.env_remove("DEMO_INSTALL"),
        Install::Process => command.env("DEMO_INSTALL", "process"),
    };
    command
        .arg(root.join("hack/demo.sh"))
        .env("DEMO_NONINTERACTIVE", "1")
        .env("REDBLACK_BIN", env!("CARGO_BIN_EXE_redblack"))
        .env("DEMO_WORKDIR", workdir)
        .env("KUBECONFIG_FILE", kubeconfig)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start hack/demo.sh")
}

/// How the demo starts the operator (`DEMO_INSTALL`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Install {
    /// The default (`DEMO_INSTALL` unset, = helm): `helm install` of
    /// charts/redblack; the sandbox runs the operator's pods as processes.
    Helm,
    /// `DEMO_INSTALL=process`: `redblack controller` started by the script.
    Process,
}

impl Install {
    /// The name the pid file gives the operator's processes.
    fn operator(self) -> &'static str {
        match self {
            Install::Helm => "operator-pod",
            Install::Process => "operator",
        }
    }
}

/// `make demo` as it is: the operator installed with the Helm chart.
#[test]
fn make_demo_tells_the_canary_story_and_leaves_nothing_running() {
    tells_the_story(Install::Helm);
}

/// `DEMO_INSTALL=process make demo`: the operator as a plain process.
#[test]
fn make_demo_with_the_operator_as_a_process_tells_the_same_story() {
    tells_the_story(Install::Process);
}

fn tells_the_story(install: Install) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temporary directory");
    let workdir = tmp.path().join("demo");
    let kubeconfig = tmp.path().join("sandbox.kubeconfig");
    let pidfile = workdir.join("pids");

    let mut child = spawn_demo(root, &workdir, &kubeconfig, install);
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for hack/demo.sh") {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            kill_everything(&mut child, &pidfile);
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let transcript = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    let Some(status) = status else {
        panic!("hack/demo.sh still running after {RUN_LIMIT:?}; killed.\n{transcript}");
    };
    if !status.success() {
        // Whatever it left, it must not outlive the test.
        kill_everything(&mut child, &pidfile);
        panic!("hack/demo.sh failed ({status}).\n{transcript}");
    }

    // How the operator came: started by the script, or installed by the chart.
    let operator_milestones: &[&str] = match install {
        Install::Process => &["operator ready; its log:"],
        Install::Helm => &[
            "$ helm install redblack charts/redblack --namespace redblack-system --create-namespace",
            "STATUS: deployed",
            "$ kubectl -n redblack-system rollout status deployment/redblack",
            "deployment \"redblack\" successfully rolled out",
            "operator installed: 2 pods under ServiceAccount redblack, redblack-",
        ],
    };
    let mut from = 0;
    for m in operator_milestones {
        match stdout[from..].find(m) {
            Some(at) => from += at + m.len(),
            None => panic!("missing (or out of order): {m:?}\n{transcript}"),
        }
    }

    // The story, in order.
    let milestones = [
        // The dashboard, read-only, before v1: the whole story in a browser.
        "✓ Dashboard: http://127.0.0.1:",
        "Rollout web is Healthy on v1",
        "Notifier demo-chat is Ready",
        "Prometheus sees the requests: v1=",
        // v2: judged on a canary pod against a baseline pod, then promoted.
        "canary Analysing",
        "canary of v2 Passed (analysis web-",
        "Service web now selects v2",
        "$ redblack report web-",
        "Phase:       Passed",
        // The chat (a Notifier's Slack-compatible webhook) heard of it.
        ": Passed (score ",
        "💬 [Info] default/web: traffic switched to revision ",
        "traffic moved to v2:",
        "v1 fleet web-",
        // Rollbacks: no canary.
        "Service web selects v1 again",
        "Service web selects v2 again",
        "Rollout web Healthy on v2",
        "💬 [Warning] default/web: traffic switched back to revision ",
        // v3: 10% errors, judged Failed on the error rate, reverted.
        "canary Analysing",
        "canary of v3 Failed (analysis web-",
        "s after judging started (",
        "traffic back on v2 alone: Service web selects v2",
        "the full v3 fleet was never created",
        "Phase:       Failed",
        "the report names the cause: error-rate High",
        "💬 [Critical] default/web: canary of revision ",
        "failed its canary analysis; traffic is back on the stable revision",
        "Prometheus returned data for v2",
        "not one request failed before v3",
        "the only failed requests were v3's",
        "export KUBECONFIG=",
        "kubectl get rollouts,rbca",
        "Dashboard:   http://127.0.0.1:",
        "Prometheus:  http://127.0.0.1:",
    ];
    for m in milestones {
        match stdout[from..].find(m) {
            Some(at) => from += at + m.len(),
            None => panic!("missing (or out of order): {m:?}\n{transcript}"),
        }
    }
    // The old fleet was warm: all its pods ready after the switch.
    assert!(
        stdout.contains("3/3 pods ready, receiving no traffic"),
        "v1 fleet not shown warm\n{transcript}"
    );
    // Prometheus saw the canaries and their baselines answer (by role).
    for role in ["v2/canary=", "v1/baseline=", "v3/canary=", "v2/baseline="] {
        assert!(
            stdout.contains(role),
            "no {role} traffic in the progress lines\n{transcript}"
        );
    }
    // Prometheus answered with a positive count of v2 requests, and 500s
    // from v3 only (its canary), none from v1 or v2.
    let requests = |row: &str| -> Option<f64> {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(row))
            .and_then(|n| n.parse().ok())
    };
    let v2_requests = requests("version=v2 code=200 requests=")
        .unwrap_or_else(|| panic!("no v2 row in the Prometheus result\n{transcript}"));
    assert!(v2_requests > 0.0, "{transcript}");
    let v3_errors = requests("version=v3 code=500 requests=")
        .unwrap_or_else(|| panic!("no v3 500 row in the Prometheus result\n{transcript}"));
    assert!(v3_errors > 0.0, "{transcript}");
    for v in ["v1", "v2"] {
        assert!(
            !stdout.contains(&format!("version={v} code=500")),
            "{v} answered 500s\n{transcript}"
        );
    }

    // Nothing it started survives: the sandbox, Prometheus, the operator, the
    // load and the demo-app processes of the pods.
    let pids = recorded_pids(&pidfile);
    // With the chart, the operator's processes are its two pods' (started
    // by the sandbox).
    for name in ["sandbox", "prometheus", install.operator(), "load"] {
        assert!(
            pids.iter().any(|(n, _)| n == name),
            "{name} not in {}: {pids:?}\n{transcript}",
            pidfile.display()
        );
    }
    if install == Install::Helm {
        let operator_pods = pids.iter().filter(|(n, _)| n == "operator-pod").count();
        assert!(operator_pods >= 2, "two operator pods: {pids:?}");
    }
    let pod_processes = pids.iter().filter(|(n, _)| n == "demo-app").count();
    assert!(
        pod_processes >= 10,
        "expected the 10 pod processes (v1 and v2: 3 each; a canary and a baseline for v2 \
         and for v3) in the pid file, got {pids:?}"
    );
    let survivors: Vec<_> = pids.iter().filter(|(_, pid)| ours_alive(*pid)).collect();
    if !survivors.is_empty() {
        kill_everything(&mut child, &pidfile);
    }
    assert!(
        survivors.is_empty(),
        "still running after the script exited: {survivors:?}"
    );
    assert!(
        !kubeconfig.exists(),
        "the script leaves no kubeconfig to a dead sandbox behind"
    );
}

/// `make demo | tee demo.log`, then Ctrl-C: the terminal's SIGINT reaches the
/// whole foreground job, so `tee` is gone and the script's stdout is a closed
/// pipe when its cleanup starts writing. The cleanup must still stop every
/// process the script started (it used to die of SIGPIPE at its first line).
#[test]
fn ctrl_c_with_a_closed_stdout_still_stops_everything() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temporary directory");
    let workdir = tmp.path().join("demo");
    let kubeconfig = tmp.path().join("sandbox.kubeconfig");
    let pidfile = workdir.join("pids");
    let mut child = spawn_demo(root, &workdir, &kubeconfig, Install::Helm);
    let stderr = drain(child.stderr.take().expect("stderr"));

    // Read stdout (as tee would) until the fleet runs, then close it.
    let stdout = child.stdout.take().expect("stdout");
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("is Healthy on v1") {
                let _ = seen_tx.send(());
                break;
            }
        }
        seen // dropping the reader closes the pipe
    });
    let healthy = seen_rx.recv_timeout(RUN_LIMIT).is_ok();
    let seen = reader.join().unwrap_or_default();
    if !healthy {
        kill_everything(&mut child, &pidfile);
        panic!("v1 never became Healthy; stdout so far:\n{seen}");
    }

    // Ctrl-C: SIGINT to the script's process group.
    let _ = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for hack/demo.sh") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let pids = recorded_pids(&pidfile);
    let survivors: Vec<_> = pids
        .iter()
        .filter(|(_, pid)| ours_alive(*pid))
        .cloned()
        .collect();
    kill_everything(&mut child, &pidfile);
    let stderr = stderr.join().unwrap_or_default();
    let transcript = format!("--- stdout until closed:\n{seen}\n--- stderr:\n{stderr}");
    let Some(status) = status else {
        panic!("hack/demo.sh did not stop within 60 s of Ctrl-C\n{transcript}");
    };
    for name in [
        "sandbox",
        "prometheus",
        Install::Helm.operator(),
        "demo-app",
    ] {
        assert!(
            pids.iter().any(|(n, _)| n == name),
            "{name} not in {}: {pids:?}\n{transcript}",
            pidfile.display()
        );
    }
    assert!(
        survivors.is_empty(),
        "still running after Ctrl-C ({status}): {survivors:?}\n{transcript}"
    );
    // Whichever comes first ends the script: the SIGINT (exit 130) or its next
    // write to the closed pipe (SIGPIPE: bash runs the EXIT trap, then dies of
    // the signal). Both must have run the whole cleanup, as checked above.
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        status.code() == Some(130) || status.signal() == Some(13),
        "Ctrl-C before the story's end exits 130 (or SIGPIPE), not {status}\n{transcript}"
    );
    assert!(
        !kubeconfig.exists(),
        "the cleanup removes the kubeconfig it wrote\n{transcript}"
    );
}
