//! README.md's Install section, run exactly as written: each `###`
//! subsection (one way to install) in a sandbox of its own, each command of
//! its `sh` blocks in order, by `bash -c` from the repository root. The
//! only substitution is the environment: `KUBECONFIG` points at the
//! sandbox's kubeconfig (a user points it at their cluster), and
//! `.cache/tools/bin` (hack/deps.sh's helm v4 and kubectl 1.34) comes first
//! on `PATH`, as the README tells users to put it. Comments (`# ...`) are
//! bash's own.
//!
//! Every command must exit 0. After each `rollout status` the operator
//! holds its Lease; after the subsection, no operator pod is left.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::harness::{SHORT, Sandbox, eventually, root};

/// One way to install: a `###` heading and its commands.
#[derive(Debug, PartialEq)]
pub struct Way {
    pub heading: String,
    pub commands: Vec<String>,
}

/// The `###` subsections of `## Install` and the lines of their ```sh
/// blocks (blank lines and whole-line comments left out).
pub fn install_section(readme: &str) -> Vec<Way> {
    let mut ways: Vec<Way> = Vec::new();
    let mut in_section = false;
    let mut in_block = false;
    for line in readme.lines() {
        if in_block {
            if line.trim_start().starts_with("```") {
                in_block = false;
            } else if let Some(way) = ways.last_mut() {
                let command = line.trim();
                if !command.is_empty() && !command.starts_with('#') {
                    way.commands.push(command.to_owned());
                }
            }
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title.trim() == "Install";
        } else if in_section {
            if let Some(heading) = line.strip_prefix("### ") {
                ways.push(Way {
                    heading: heading.trim().to_owned(),
                    commands: Vec::new(),
                });
            } else if line.trim() == "```sh" {
                in_block = true;
            }
        }
    }
    ways
}

#[test]
fn the_install_section_is_read_by_subsection() {
    let text = "# x\n```sh\nnot this\n```\n## Install\nintro\n### With A\n```sh\n\
                a one   # why\n# a comment\n\na two\n```\ntext\n```yaml\nno: 1\n```\n\
                ### With B\n```sh\nb one\n```\n## Next\n### Not\n```sh\nno\n```\n";
    assert_eq!(
        install_section(text),
        vec![
            Way {
                heading: "With A".into(),
                commands: vec!["a one   # why".into(), "a two".into()]
            },
            Way {
                heading: "With B".into(),
                commands: vec!["b one".into()]
            },
        ]
    );
}

pub async fn run_install_section() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let ways = install_section(&readme);
    let headings: Vec<&str> = ways.iter().map(|w| w.heading.as_str()).collect();
    assert_eq!(
        headings,
        ["With Helm", "With kustomize"],
        "README's Install section"
    );
    for way in &ways {
        assert!(
            way.commands.iter().any(|c| c.contains("rollout status")),
            "{}: no rollout status to check",
            way.heading
        );
        let sb = Sandbox::start().await;
        let path = format!(
            "{}:{}",
            root().join(".cache/tools/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        for command in &way.commands {
            let ran = tokio::process::Command::new("bash")
                .args(["-c", command])
                .current_dir(root())
                .env("KUBECONFIG", &sb.kubeconfig)
                .env("PATH", &path)
                .env("HELM_CONFIG_HOME", sb.dir.path().join("helm/config"))
                .env("HELM_CACHE_HOME", sb.dir.path().join("helm/cache"))
                .env("HELM_DATA_HOME", sb.dir.path().join("helm/data"))
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(Duration::from_secs(240), ran)
                .await
                .unwrap_or_else(|_| {
                    panic!("{}: `{command}` still running after 240 s", way.heading)
                })
                .expect("bash runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            println!("{}: $ {command}\n{text}", way.heading);
            assert!(
                out.status.success(),
                "{}: `{command}` failed:\n{text}\n--- sandbox log:\n{}",
                way.heading,
                sb.log_tail()
            );
            if command.contains("rollout status") {
                leads(&sb).await;
            }
        }
        eventually(
            &format!("{}: no operator pod left", way.heading),
            SHORT,
            || async {
                let pods: Api<Pod> = Api::namespaced(sb.client.clone(), "redblack-system");
                let left: Vec<String> = pods
                    .list(&ListParams::default().labels("app.kubernetes.io/name=redblack"))
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| p.metadata.name)
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            },
        )
        .await;
    }
}

/// An operator pod holds the Lease.
async fn leads(sb: &Sandbox) {
    let leases: Api<Lease> = Api::namespaced(sb.client.clone(), "redblack-system");
    let pods: Api<Pod> = Api::namespaced(sb.client.clone(), "redblack-system");
    eventually("an operator pod holds the Lease", SHORT, || async {
        let holder = leases
            .get("redblack-controller")
            .await
            .map_err(|e| e.to_string())?
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        let names: Vec<String> = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=redblack"))
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        if names.iter().any(|n| holder.starts_with(&format!("{n}-"))) {
            Ok(())
        } else {
            Err(format!("holder {holder:?}, pods {names:?}"))
        }
    })
    .await;
}
