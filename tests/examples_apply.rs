//! Every manifest the docs point people at is accepted by an API server as
//! strict as a real one (schemas and CEL rules of our CRDs), so an example
//! cannot rot silently when an API type changes: `kubectl apply
//! --dry-run=server` of each file under examples/ and deploy/examples/.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::Env;

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            manifests(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_manifest_is_accepted_by_the_api_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    manifests(&root.join("examples"), &mut files);
    manifests(&root.join("deploy/examples"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("smoke-gate/rollout.yaml")),
        "the smoke-gate example is among {files:?}"
    );
    let env = Env::start(Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    env.sandbox.write_kubeconfig(&kubeconfig).unwrap();
    for file in &files {
        let out = match tokio::process::Command::new("kubectl")
            .arg("apply")
            .arg("--dry-run=server")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("-f")
            .arg(file)
            .env_remove("KUBECONFIG")
            .output()
            .await
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("kubectl is not installed; skipping the examples test");
                return;
            }
            Err(e) => panic!("kubectl: {e}"),
        };
        assert!(
            out.status.success(),
            "{} refused: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("(server dry run)"),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
