//! Installing redblack the way users do, into the real `redblack sandbox`
//! binary, with the real `helm` (v4) and `kubectl` (issue 17):
//!
//! - `helm install rb charts/redblack -n redblack-system --create-namespace
//!   --set image.tag=… --set prometheus.url=…` (a real Prometheus scraping
//!   the sandbox's pods): the operator Deployment rolls out (`kubectl rollout
//!   status` exits 0), its pods run `redblack controller` as processes under
//!   the chart's ServiceAccount (their credentials are refused what the
//!   chart's RBAC does not grant), one takes the Lease, `kubectl logs` shows
//!   it. The demo app's bad v2 is reverted by its canary; v3's canary is held
//!   (its template is not there yet) while `helm upgrade --set …` rolls the
//!   operator Deployment (every old operator pod and process gone, a new pod
//!   leads), then the template arrives and the new operator judges v3's
//!   canary, passes and promotes it. `helm uninstall` removes every object
//!   of the release and the operator processes; the CRDs stay.
//! - The same with `kubectl apply --server-side -k deploy/`, an overlay
//!   re-applied for the upgrade, and `kubectl delete -k deploy/ --ignore-not-found` (which
//!   deletes the CRDs too: they are in the kustomization).
//! - Bad input answered as a real cluster and helm answer it: the chart
//!   installed twice, a values typo (the chart's values.schema.json; and
//!   without it, the API server's decoding error), a namespace that does
//!   not exist.
//! - The README's Install section, run exactly as written.
//!
//! Every wait is bounded and prints the last state it saw.

#[path = "install/app.rs"]
mod app;
#[path = "install/flow.rs"]
mod flow;
#[path = "install/harness.rs"]
mod harness;
#[path = "install/method.rs"]
mod method;
#[path = "install/readme.rs"]
mod readme;
mod tools;

use harness::Sandbox;
use method::{Method, RELEASE_NS};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_upgrade_uninstall_runs_the_operator_in_the_sandbox() {
    flow::install_roll_out_upgrade_uninstall(Method::Helm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_apply_k_deploy_runs_the_operator_in_the_sandbox() {
    flow::install_roll_out_upgrade_uninstall(Method::Kustomize).await;
}

/// Asserts that `ran` failed with `expected` in its output.
fn refused(what: &str, ran: &harness::Ran, expected: &str) {
    assert!(!ran.ok, "{what} succeeded:\n{}", ran.text());
    assert!(
        ran.stderr.contains(expected),
        "{what}: expected {expected:?} in:\n{}",
        ran.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_as_a_real_cluster_refuses_it() {
    let sb = Sandbox::start().await;
    let install = |extra: &'static [&'static str]| {
        let sb = &sb;
        async move {
            let mut args = vec!["install", "rb", "charts/redblack"];
            args.extend_from_slice(extra);
            sb.helm(&args).await
        }
    };

    // A namespace that does not exist, without --create-namespace: the API
    // server refuses helm's first write (its release record, a Secret).
    let ran = install(&["-n", "nowhere"]).await;
    refused(
        "installing into a missing namespace",
        &ran,
        "Error: INSTALLATION FAILED: create: failed to create: namespaces \"nowhere\" not found",
    );

    // Values typos: helm checks them against the chart's values.schema.json
    // before it sends anything.
    let ran = install(&[
        "-n",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "replicaCount=two",
    ])
    .await;
    refused(
        "replicaCount=two",
        &ran,
        "at '/replicaCount': got string, want integer",
    );
    refused(
        "replicaCount=two",
        &ran,
        "values don't meet the specifications of the schema(s) in the following chart(s):\nredblack:",
    );
    let ran = install(&[
        "-n",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "replicaCont=2",
    ])
    .await;
    refused(
        "a misspelled key",
        &ran,
        "at '': additional properties 'replicaCont' not allowed",
    );
    let ran = install(&[
        "-n",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "leaderElection.leaseDuration=15sec",
    ])
    .await;
    refused(
        "a duration without a unit",
        &ran,
        "at '/leaderElection/leaseDuration': '15sec' does not match pattern",
    );
    // Nothing was sent: not even the namespace exists.
    let ns = sb.kubectl(&["get", "namespace", RELEASE_NS]).await;
    refused(
        "the namespace after refused installs",
        &ns,
        "namespaces \"redblack-system\" not found",
    );

    // The chart installed twice under one release name.
    let first = install(&["-n", RELEASE_NS, "--create-namespace"]).await;
    assert!(first.ok, "{}", first.text());
    let ran = install(&["-n", RELEASE_NS, "--create-namespace"]).await;
    refused(
        "the same release installed twice",
        &ran,
        "Error: INSTALLATION FAILED: release name check failed: cannot reuse a name that is still in use",
    );
    // The first release is untouched: one revision, deployed.
    let list = sb
        .must("helm", &["list", "-n", RELEASE_NS, "-o", "json"])
        .await;
    let releases: serde_json::Value = serde_json::from_str(&list).expect("helm list json");
    assert_eq!(releases.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(releases[0]["name"], "rb", "{list}");
    assert_eq!(releases[0]["revision"], "1", "{list}");
    assert_eq!(releases[0]["status"], "deployed", "{list}");

    // A chart without a values schema renders `replicas: two`: the API
    // server's decoding refuses the Deployment, as a real one does.
    let copy = sb.dir.path().join("chart-without-schema");
    copy_dir(&harness::root().join("charts/redblack"), &copy);
    std::fs::remove_file(copy.join("values.schema.json")).expect("the schema");
    let ran = sb
        .helm(&[
            "install",
            "noschema",
            copy.to_str().expect("utf-8"),
            "-n",
            RELEASE_NS,
            "--skip-crds",
            "--set",
            "replicaCount=two",
        ])
        .await;
    refused(
        "replicas: two without a schema",
        &ran,
        "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal \
         string into Go struct field DeploymentSpec.spec.replicas of type int32",
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_install_section_works_as_written() {
    readme::run_install_section().await;
}
