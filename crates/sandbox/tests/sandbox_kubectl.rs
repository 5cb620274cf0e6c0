//! The real kubectl (1.32, /usr/bin/kubectl) against an in-process sandbox.

mod sandbox_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use sandbox_support::{Kubectl, start, widget_crd};
use serde_json::{Value, json};

const APPS: &str = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

fn widget_yaml(name: &str, replicas: i64, color: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{replicas: {replicas}, color: {color}}}\n"
    )
}

fn crd_yaml() -> String {
    serde_yaml::to_string(&widget_crd()).unwrap()
}

fn widgets(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

/// Client-side apply (default flags) creates; get prints tables with CRD printer
/// columns; -o json/yaml; describe; api-resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_describe_api_resources() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let crd = k.write("crd.yaml", &crd_yaml());
    let out = k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}"
    );
    let apps = k.write("apps.yaml", APPS);
    let out = k.ok(&["apply", "-f", apps.to_str().unwrap()]).await;
    assert!(
        out.contains("replicaset.apps/web created") && out.contains("service/web created"),
        "{out}"
    );
    let w = k.write("w.yaml", &widget_yaml("w1", 3, "red"));
    let out = k.ok(&["apply", "-f", w.to_str().unwrap()]).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");

    // Status set through the API shows in the printer column.
    let client = sb.client().unwrap();
    let api = widgets(&client);
    let mut obj = api.get("w1").await.unwrap();
    obj.data["status"] = json!({"phase": "Running"});
    api.replace_status("w1", &PostParams::default(), &obj)
        .await
        .unwrap();

    let table = k.ok(&["get", "widgets"]).await;
    let header = table.lines().next().unwrap();
    for col in ["NAME", "PHASE", "REPLICAS", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("w1")).expect("w1 row");
    assert!(row.contains("Running") && row.contains('3'), "{table}");

    let rs = k.ok(&["get", "rs", "web"]).await;
    assert!(rs.lines().next().unwrap().contains("DESIRED"), "{rs}");
    let svc = k.ok(&["get", "svc", "web"]).await;
    assert!(svc.contains("10.96.") && svc.contains("80/TCP"), "{svc}");
    let short = k.ok(&["get", "wd"]).await;
    assert!(short.contains("w1"), "short names work: {short}");

    let json_out: Value =
        serde_json::from_str(&k.ok(&["get", "rs", "web", "-o", "json"]).await).unwrap();
    assert_eq!(json_out["spec"]["replicas"], 2);
    assert!(
        json_out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let yaml_out: Value =
        serde_yaml::from_str(&k.ok(&["get", "widget", "w1", "-o", "yaml"]).await).unwrap();
    assert_eq!(yaml_out["spec"]["color"], "red");
    let list: Value = serde_json::from_str(&k.ok(&["get", "rs,svc", "-o", "json"]).await).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let described = k.ok(&["describe", "rs", "web"]).await;
    assert!(
        described.contains("Name:         web") && described.contains("nginx:1.27"),
        "{described}"
    );
    let described = k.ok(&["describe", "widget", "w1"]).await;
    assert!(
        described.contains("Running") && described.contains("Color:"),
        "{described}"
    );

    let resources = k.ok(&["api-resources"]).await;
    for needle in [
        "replicasets",
        "widgets",
        "httproutes",
        "customresourcedefinitions",
    ] {
        assert!(
            resources.contains(needle),
            "{needle} missing from:\n{resources}"
        );
    }
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("widgets") && l.contains("wd") && l.contains("example.com/v1")),
        "{resources}"
    );
    sb.shutdown().await;
}

/// Applying again with a change goes through PATCH (needs the patch merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_again_and_server_side_apply() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let crd = k.write("crd.yaml", &crd_yaml());
    k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    let apps = k.write("apps.yaml", APPS);
    k.ok(&["apply", "-f", apps.to_str().unwrap()]).await;
    let w = k.write("w.yaml", &widget_yaml("w1", 3, "red"));
    k.ok(&["apply", "-f", w.to_str().unwrap()]).await;

    let changed = k.write(
        "apps2.yaml",
        &APPS
            .replace("replicas: 2", "replicas: 4")
            .replace("nginx:1.27", "nginx:1.28"),
    );
    let out = k.ok(&["apply", "-f", changed.to_str().unwrap()]).await;
    assert!(out.contains("replicaset.apps/web configured"), "{out}");
    let w2 = k.write("w2.yaml", &widget_yaml("w1", 5, "blue"));
    let out = k.ok(&["apply", "-f", w2.to_str().unwrap()]).await;
    assert!(out.contains("widget.example.com/w1 configured"), "{out}");
    let client = sb.client().unwrap();
    let rs: ReplicaSet = Api::default_namespaced(client.clone())
        .get("web")
        .await
        .unwrap();
    assert_eq!(rs.spec.replicas, Some(4));
    assert_eq!(
        widgets(&client).get("w1").await.unwrap().data["spec"]["color"],
        "blue"
    );

    let w3 = k.write("w3.yaml", &widget_yaml("w1", 6, "green"));
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            w3.to_str().unwrap(),
        ])
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            changed.to_str().unwrap(),
        ])
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    let fresh = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: b}\n",
    );
    let out = k
        .ok(&["apply", "--server-side", "-f", fresh.to_str().unwrap()])
        .await;
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let w = widgets(&client).get("w1").await.unwrap();
    assert_eq!(w.data["spec"]["color"], "green");
    let managers: Vec<Option<String>> = w
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&Some("kubectl".to_string())),
        "{managers:?}"
    );
    sb.shutdown().await;
}

/// `kubectl get -w` streams a change made through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    api.create(&PostParams::default(), &cm("first"))
        .await
        .unwrap();

    let mut child = k
        .command(&["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut created = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !lines.iter().any(|l: &String| l.starts_with("second")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no watch line for 'second': {lines:?}"
        );
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => panic!("kubectl get -w ended: {lines:?}"),
            Err(_) => {}
        }
        if !created && lines.iter().any(|l| l.starts_with("first")) {
            api.create(&PostParams::default(), &cm("second"))
                .await
                .unwrap();
            created = true;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(lines[0].starts_with("NAME"), "{lines:?}");
    sb.shutdown().await;
}

/// scale, patch --type=merge/json (need the patch merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_patch() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let apps = k.write("apps.yaml", APPS);
    k.ok(&["apply", "-f", apps.to_str().unwrap()]).await;
    let client = sb.client().unwrap();
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());

    let out = k.ok(&["scale", "rs", "web", "--replicas=3"]).await;
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(rss.get("web").await.unwrap().spec.replicas, Some(3));
    k.ok(&[
        "patch",
        "rs",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "rs",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
    ])
    .await;
    let rs = rss.get("web").await.unwrap();
    assert_eq!(rs.metadata.labels.unwrap()["patched"], "merge");
    assert_eq!(rs.spec.replicas, Some(1));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_cascades() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let apps = k.write("apps.yaml", APPS);
    k.ok(&["apply", "-f", apps.to_str().unwrap()]).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    for name in ["a", "b"] {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let out = k.ok(&["delete", "rs", "web", "--cascade=foreground"]).await;
    assert!(out.contains("replicaset.apps \"web\" deleted"), "{out}");
    let out = k.ok(&["delete", "svc", "web", "--cascade=orphan"]).await;
    assert!(out.contains("service \"web\" deleted"), "{out}");
    let out = k
        .ok(&["delete", "configmap", "a", "--cascade=background"])
        .await;
    assert!(out.contains("configmap \"a\" deleted"), "{out}");
    let gone = k.fails(&["get", "rs", "web"]).await;
    assert!(
        gone.contains("NotFound") && gone.contains("replicasets.apps \"web\" not found"),
        "{gone}"
    );
    let out = k.ok(&["get", "configmaps", "-o", "name"]).await;
    assert_eq!(out.trim(), "configmap/b");
    sb.shutdown().await;
}

/// `kubectl wait --for=condition=Ready` on a status set through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_a_condition() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let crd = k.write("crd.yaml", &crd_yaml());
    k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ])
    .await;
    let w = k.write("w.yaml", &widget_yaml("w1", 1, "red"));
    k.ok(&["apply", "-f", w.to_str().unwrap()]).await;

    let waiting = {
        let mut cmd = k.command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=20s",
        ]);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let api = widgets(&sb.client().unwrap());
    let mut obj = api.get("w1").await.unwrap();
    obj.data["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    api.replace_status("w1", &PostParams::default(), &obj)
        .await
        .unwrap();
    let out = waiting.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    sb.shutdown().await;
}

/// Bad input through kubectl: each gets the real status and a clear message;
/// nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_through_kubectl() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let raw = "/api/v1/namespaces/default/configmaps";

    let malformed = k.write("bad.json", "{\"metadata\": {\"name\": ");
    let err = k
        .fails(&["create", "--raw", raw, "-f", malformed.to_str().unwrap()])
        .await;
    assert!(err.contains("BadRequest") && err.contains("JSON"), "{err}");

    let mismatch = k.write("ns.json", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"}}"#);
    let err = k
        .fails(&["create", "--raw", raw, "-f", mismatch.to_str().unwrap()])
        .await;
    assert!(err.contains("does not match the namespace"), "{err}");

    let bad_name = k.write(
        "name.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n",
    );
    let err = k.fails(&["apply", "-f", bad_name.to_str().unwrap()]).await;
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );

    let unknown = k.write(
        "unknown.yaml",
        "apiVersion: nope.example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n",
    );
    let err = k.fails(&["apply", "-f", unknown.to_str().unwrap()]).await;
    assert!(err.contains("no matches for kind \"Gizmo\""), "{err}");
    let err = k.fails(&["get", "gizmos"]).await;
    assert!(
        err.contains("the server doesn't have a resource type \"gizmos\""),
        "{err}"
    );

    let err = k
        .fails(&[
            "get",
            "--raw",
            "/apis/example.com/v1/namespaces/default/nothing",
        ])
        .await;
    assert!(err.contains("NotFound"), "{err}");

    // A stale resourceVersion on replace is a conflict.
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap(),
    )
    .await
    .unwrap();
    let stale = k.write("stale.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, resourceVersion: \"1\"}\ndata: {a: \"2\"}\n");
    let err = k.fails(&["replace", "-f", stale.to_str().unwrap()]).await;
    assert!(
        err.contains("Conflict") || err.contains("the object has been modified"),
        "{err}"
    );
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["a"], "1");

    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["c"], "nothing else was stored");
    sb.shutdown().await;
}

/// A CR that breaks its schema (needs the schema merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violations_through_kubectl() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    let crd = k.write("crd.yaml", &crd_yaml());
    k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    let bad = k.write("bad.yaml", &widget_yaml("w1", -3, "red"));
    let err = k.fails(&["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(
        // kubectl rewrites a 422's message as `The <Kind> "<name>" is invalid: ...`.
        err.contains("The Widget \"w1\" is invalid") && err.contains("spec.replicas"),
        "{err}"
    );
    let unknown = k.write("unknown.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {replicas: 1, shape: round}\n");
    let err = k.fails(&["apply", "-f", unknown.to_str().unwrap()]).await;
    assert!(err.contains("unknown field \"spec.shape\""), "{err}");
    let out = k.ok(&["get", "widgets", "-o", "name"]).await;
    assert!(out.trim().is_empty(), "nothing stored: {out}");
    sb.shutdown().await;
}

/// Imperative creates send protobuf: namespaces, configmaps and secrets work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_create_commands() {
    let sb = start().await;
    let k = Kubectl::new(&sb);
    k.ok(&["create", "namespace", "demo"]).await;
    k.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "demo",
        "--from-literal=a=b",
    ])
    .await;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=pw=hunter2",
    ])
    .await;
    let data = k
        .ok(&[
            "get",
            "configmap",
            "cfg",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.a}",
        ])
        .await;
    assert_eq!(data, "b");
    let secret = k
        .ok(&["get", "secret", "s", "-o", "jsonpath={.data.pw}"])
        .await;
    assert_eq!(secret, "aHVudGVyMg==");
    let err = k.fails(&["create", "configmap", "Bad_Name"]).await;
    assert!(
        err.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name"),
        "{err}"
    );
    let err = k
        .fails(&["create", "deployment", "d", "--image=nginx"])
        .await;
    assert!(err.contains("send JSON or YAML"), "{err}");
    sb.shutdown().await;
}
