//! The sandbox's Kubernetes API driven by the real kube client.

mod sandbox_support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use redblack_sandbox::{FaultAction, FaultConfig, FaultRule, SandboxConfig};
use sandbox_support::{eventually, json_of, raw, start, start_with, widget_crd};
use serde_json::{Value, json};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn api_err(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rs(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }))
    .unwrap()
}

async fn install_widgets(client: &kube::Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_crud_and_error_reasons() {
    let sb = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let created = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some()
    );
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let dup = api_err(
        api.create(&PostParams::default(), &cm("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"a\" already exists");

    let missing = api_err(api.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "configmaps \"nope\" not found");

    // Optimistic concurrency: an update from a stale copy is a 409 Conflict.
    let mut fresh = api.get("a").await.unwrap();
    let stale = fresh.clone();
    fresh.data = Some(BTreeMap::from([("k".into(), "new".into())]));
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        stale.metadata.resource_version
    );
    let conflict = api_err(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "new");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(api.get("a").await.unwrap_err()).code, 404);
    let gone = api_err(api.delete("a", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(gone.code, 404);

    // A namespace that does not exist is NotFound too.
    let elsewhere: Api<ConfigMap> = Api::namespaced(sb.client().unwrap(), "nowhere");
    let err = api_err(
        elsewhere
            .create(&PostParams::default(), &cm("b", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_a_cluster_ip() {
    let sb = start().await;
    let api: Api<Service> = Api::default_namespaced(sb.client().unwrap());
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    let created = api.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    // An update that leaves the IP out keeps it.
    let mut again = api.get("web").await.unwrap();
    again.spec.as_mut().unwrap().cluster_ip = None;
    again.spec.as_mut().unwrap().cluster_ips = None;
    let kept = api
        .replace("web", &PostParams::default(), &again)
        .await
        .unwrap();
    assert_eq!(kept.spec.unwrap().cluster_ip.as_deref(), Some(ip.as_str()));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_field_selectors() {
    let sb = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    for (name, labels) in [
        ("web-1", vec![("app", "web"), ("tier", "front")]),
        ("web-2", vec![("app", "web")]),
        ("api-1", vec![("app", "api"), ("tier", "back")]),
        ("db-1", vec![("app", "db")]),
        ("plain", vec![]),
    ] {
        api.create(&PostParams::default(), &cm(name, &labels))
            .await
            .unwrap();
    }
    let names = |lp: ListParams| {
        let api = api.clone();
        async move {
            let mut n: Vec<String> = api
                .list(&lp)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.metadata.name.unwrap())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(
        names(ListParams::default().labels("app=web")).await,
        ["web-1", "web-2"]
    );
    assert_eq!(
        names(ListParams::default().labels("app==web,tier")).await,
        ["web-1"]
    );
    assert_eq!(
        names(ListParams::default().labels("app in (web, api)")).await,
        ["api-1", "web-1", "web-2"]
    );
    assert_eq!(
        names(ListParams::default().labels("app notin (web,api),app")).await,
        ["db-1"]
    );
    assert_eq!(
        names(ListParams::default().labels("app!=web")).await,
        ["api-1", "db-1", "plain"]
    );
    assert_eq!(names(ListParams::default().labels("!app")).await, ["plain"]);
    assert_eq!(
        names(ListParams::default().fields("metadata.name=db-1")).await,
        ["db-1"]
    );
    assert_eq!(
        names(
            ListParams::default()
                .labels("app=web")
                .fields("metadata.name!=web-1,metadata.namespace=default")
        )
        .await,
        ["web-2"]
    );
    assert!(
        names(ListParams::default().fields("metadata.namespace=other"))
            .await
            .is_empty()
    );

    // Dotted paths anywhere in the object, e.g. events' involvedObject.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::default_namespaced(sb.client().unwrap());
    for (name, target) in [("e1", "web"), ("e2", "db")] {
        let ev = serde_json::from_value(json!({"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": target}, "reason": "Test"})).unwrap();
        events.create(&PostParams::default(), &ev).await.unwrap();
    }
    let found = events
        .list(&ListParams::default().fields("involvedObject.name=db"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].metadata.name.as_deref(), Some("e2"));

    let bad = api_err(
        api.list(&ListParams::default().labels("app in web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(bad.code, 400);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_with_limit_and_continue() {
    let sb = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    for i in 0..25 {
        api.create(
            &PostParams::default(),
            &cm(&format!("cm-{i:02}"), &[("page", "yes")]),
        )
        .await
        .unwrap();
    }
    api.create(&PostParams::default(), &cm("other", &[]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().labels("page=yes").limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(t) => {
                assert!(page.metadata.remaining_item_count.unwrap() > 0);
                token = Some(t);
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_on_an_expired_snapshot_is_410() {
    let sb = start_with(SandboxConfig {
        watch_history: 5,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    for i in 0..4 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), &[]))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("later-{i}"), &[]))
            .await
            .unwrap();
    }
    let err = api_err(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
    let garbage = api_err(
        api.list(&ListParams::default().continue_token("%%%"))
            .await
            .unwrap_err(),
    );
    assert_eq!(garbage.code, 400);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_and_generation() {
    let sb = start().await;
    // A custom resource with a status subresource: nothing in the sandbox
    // reconciles it, so nothing else writes it during the test (Deployments
    // and ReplicaSets have controllers now).
    let api = install_widgets(&sb.client().unwrap()).await;
    let created = api
        .create(
            &PostParams::default(),
            &widget("web", json!({"replicas": 2})),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let mut with_status = created.clone();
    with_status.data["status"] = json!({"replicas": 2, "phase": "Half"});
    let after_status = api
        .replace_status("web", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    assert_eq!(after_status.data["status"]["phase"], "Half");

    // A main write changes spec (generation +1) and cannot touch status.
    let mut main = after_status.clone();
    main.data["spec"]["replicas"] = json!(4);
    main.data["status"] = json!({"replicas": 99});
    let after_main = api
        .replace("web", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(after_main.metadata.generation, Some(2));
    assert_eq!(after_main.data["spec"]["replicas"], 4);
    assert_eq!(after_main.data["status"]["replicas"], 2);

    // A write that changes nothing keeps the resourceVersion.
    let same = api.get("web").await.unwrap();
    let again = api
        .replace("web", &PostParams::default(), &same)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        same.metadata.resource_version
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_on_replicaset() {
    let sb = start().await;
    let api: Api<ReplicaSet> = Api::default_namespaced(sb.client().unwrap());
    api.create(&PostParams::default(), &rs("web", 2))
        .await
        .unwrap();
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=web")
    );
    // The sandbox's ReplicaSet controller writes this ReplicaSet's status at
    // a moment the test does not control, and each write moves the
    // resourceVersion the Scale carries; so, as `kubectl scale` does, scale
    // unconditionally: an empty resourceVersion means "whatever is current".
    let mut bigger = scale.clone();
    bigger.spec.as_mut().unwrap().replicas = Some(5);
    bigger.metadata.resource_version = None;
    let scaled = api
        .replace_scale("web", &PostParams::default(), &bigger)
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(5));
    let stored = api.get("web").await.unwrap();
    assert_eq!(stored.spec.replicas, Some(5));
    assert_eq!(stored.metadata.generation, Some(2));
    // The stale Scale (its resourceVersion predates the scale above) is now
    // a conflict.
    let err = api_err(
        api.replace_scale("web", &PostParams::default(), &scale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    // Kinds without a scale subresource have no such path.
    let cms: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    cms.create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    let (code, _, body) = raw(
        &sb.client().unwrap(),
        "GET",
        "/api/v1/namespaces/default/configmaps/c/scale",
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(json_of(&body)["reason"], "NotFound");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_registration_discovery_and_scale() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let widgets = install_widgets(&client).await;
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Widget")
        .expect("Widget is discoverable");
    assert_eq!(ar.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"),
        "{:?}",
        caps.subresources
    );
    // The built-in Gateway API kind is there as well.
    assert!(
        discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .any(|(ar, _)| ar.kind == "HTTPRoute")
    );

    widgets
        .create(
            &PostParams::default(),
            &widget("w1", json!({"replicas": 2, "color": "red"})),
        )
        .await
        .unwrap();
    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    let mut up = scale;
    up.spec.as_mut().unwrap().replicas = Some(7);
    widgets
        .replace_scale("w1", &PostParams::default(), &up)
        .await
        .unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["replicas"], 7);

    // Status subresource on a CR: status-only writes keep generation.
    let mut w = widgets.get("w1").await.unwrap();
    let generation = w.metadata.generation;
    w.data["status"] = json!({"phase": "Ready", "replicas": 7, "selector": "app=w1"});
    let after = widgets
        .replace_status("w1", &PostParams::default(), &w)
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, generation);
    assert_eq!(after.data["status"]["phase"], "Ready");
    assert_eq!(
        widgets
            .get_scale("w1")
            .await
            .unwrap()
            .status
            .unwrap()
            .selector
            .as_deref(),
        Some("app=w1")
    );

    // Deleting the CRD stops serving the kind and drops its objects.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let err = api_err(widgets.get("w1").await.unwrap_err());
    assert_eq!(err.code, 404);
    assert!(sb.registry().find("example.com", "v1", "widgets").is_none());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_crd_is_422() {
    let sb = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(sb.client().unwrap());
    let mut bad = widget_crd();
    bad["metadata"]["name"] = json!("gadgets.example.com");
    let crd: CustomResourceDefinition = serde_json::from_value(bad).unwrap();
    let err = api_err(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.unwrap().causes;
    assert!(
        causes.iter().any(|c| c.field == "metadata.name"),
        "{causes:?}"
    );
    assert!(sb.registry().find("example.com", "v1", "widgets").is_none());
    sb.shutdown().await;
}

/// Needs the real `schema::validate_and_default` (lands with the schema merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_schema_validation_and_defaulting() {
    let sb = start().await;
    let widgets = install_widgets(&sb.client().unwrap()).await;
    let created = widgets
        .create(
            &PostParams::default(),
            &widget("w1", json!({"color": "red"})),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["replicas"], 1, "default applied");

    let err = api_err(
        widgets
            .create(
                &PostParams::default(),
                &widget("w2", json!({"replicas": -1})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("Widget.example.com \"w2\" is invalid: spec.replicas"),
        "{}",
        err.message
    );
    assert!(
        err.details
            .unwrap()
            .causes
            .iter()
            .any(|c| c.field == "spec.replicas")
    );
    assert_eq!(
        api_err(widgets.get("w2").await.unwrap_err()).code,
        404,
        "nothing stored"
    );

    // Unknown fields: Strict rejects, the default (Warn) prunes.
    let client = sb.client().unwrap();
    let body = serde_json::to_vec(&widget("w3", json!({"color": "red", "foo": 1}))).unwrap();
    let (code, _, text) = raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
        Some("application/json"),
        None,
        &body,
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(
        json_of(&text)["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.foo\""),
        "{text}"
    );
    let (code, headers, text) = raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Warn",
        Some("application/json"),
        None,
        &body,
    )
    .await;
    assert_eq!(code, 201, "{text}");
    assert!(json_of(&text)["spec"].get("foo").is_none());
    assert!(
        headers
            .get("warning")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("spec.foo")
    );
    sb.shutdown().await;
}

/// Needs the real patch implementation (lands with the patch merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_and_server_side_apply() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let merged = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap()["x"], "1");
    let jp = br#"[{"op": "add", "path": "/data/y", "value": "2"}]"#;
    let (code, _, body) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        Some("application/json-patch+json"),
        None,
        jp,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body)["data"]["y"], "2");

    // Apply creates when absent, then updates; managedFields are recorded.
    let ssa = PatchParams::apply("tester");
    let applied = cms
        .patch("b", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"k": "1"}})))
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["k"], "1");
    assert!(applied.metadata.managed_fields.is_some());
    let again = cms
        .patch("b", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"k": "2"}})))
        .await
        .unwrap();
    assert_eq!(again.data.unwrap()["k"], "2");

    // Strategic merge patches are for built-ins only: 415 on a custom resource.
    let widgets = install_widgets(&client).await;
    widgets
        .create(&PostParams::default(), &widget("w", json!({"replicas": 1})))
        .await
        .unwrap();
    let err = api_err(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"replicas": 2}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 415);
    // Merge patch of the scale subresource.
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    rss.create(&PostParams::default(), &rs("web", 1))
        .await
        .unwrap();
    rss.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    assert_eq!(rss.get("web").await.unwrap().spec.replicas, Some(3));
    // Status patch.
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        widgets.get("w").await.unwrap().data["status"]["phase"],
        "Ready"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_finalizers() {
    let sb = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let mut c = cm("held", &[]);
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let still = api.get("held").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    let mut release = still;
    release.metadata.finalizers = None;
    api.replace("held", &PostParams::default(), &release)
        .await
        .unwrap();
    assert_eq!(api_err(api.get("held").await.unwrap_err()).code, 404);

    // propagationPolicy is accepted in DeleteOptions and as a query parameter.
    api.create(&PostParams::default(), &cm("x", &[]))
        .await
        .unwrap();
    api.delete("x", &DeleteParams::foreground()).await.unwrap();
    api.create(&PostParams::default(), &cm("y", &[]))
        .await
        .unwrap();
    let (code, _, _) = raw(
        &sb.client().unwrap(),
        "DELETE",
        "/api/v1/namespaces/default/configmaps/y?propagationPolicy=Orphan",
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(api_err(api.get("y").await.unwrap_err()).code, 404);

    // deletecollection honours selectors.
    for (name, group) in [("g1", "a"), ("g2", "a"), ("g3", "b")] {
        api.create(&PostParams::default(), &cm(name, &[("group", group)]))
            .await
            .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("group=a"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default().labels("group"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["g3"]);

    // Deleting a namespace deletes what is in it.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sb.client().unwrap());
    let ns = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let team: Api<ConfigMap> = Api::namespaced(sb.client().unwrap(), "team");
    team.create(&PostParams::default(), &cm("inside", &[]))
        .await
        .unwrap();
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    // As in a real cluster the namespace controller empties it after the
    // delete returns (phase Terminating meanwhile): wait for it, with a
    // deadline. (Asserting at once failed once on a loaded machine.)
    let emptied = eventually(Duration::from_secs(30), || async {
        team.get("inside")
            .await
            .is_err_and(|e| matches!(e, kube::Error::Api(ref s) if s.code == 404))
    })
    .await;
    assert!(
        emptied,
        "the ConfigMap in the deleted namespace is still there"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_and_reflector_follow_changes() {
    let sb = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    api.create(&PostParams::default(), &cm("pre", &[("w", "yes")]))
        .await
        .unwrap();
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("w=yes")),
    )
    .applied_objects()
    .boxed();
    let task = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(ev) = stream.next().await {
            ev.expect("watch event");
        }
    });
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 1);

    // The same initial state through a streaming list (sendInitialEvents).
    let (streamed, streamed_writer) = reflector::store();
    let streaming = reflector(
        streamed_writer,
        watcher(
            api.clone(),
            watcher::Config::default().labels("w=yes").streaming_lists(),
        ),
    )
    .applied_objects()
    .boxed();
    let streaming_task = tokio::spawn(async move {
        let mut stream = streaming;
        while let Some(ev) = stream.next().await {
            ev.expect("streaming watch event");
        }
    });
    tokio::time::timeout(Duration::from_secs(10), streamed.wait_until_ready())
        .await
        .expect("streaming list completes")
        .unwrap();
    assert_eq!(streamed.state().len(), 1);
    streaming_task.abort();

    api.create(&PostParams::default(), &cm("new", &[("w", "yes")]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("ignored", &[("w", "no")]))
        .await
        .unwrap();
    let mut changed = api.get("new").await.unwrap();
    changed.data = Some(BTreeMap::from([("k".into(), "changed".into())]));
    api.replace("new", &PostParams::default(), &changed)
        .await
        .unwrap();
    api.delete("pre", &DeleteParams::default()).await.unwrap();
    // Relabelling out of the selector reads as a delete to this watcher.
    let mut out = api.get("ignored").await.unwrap();
    out.metadata.labels = Some(BTreeMap::from([("w".into(), "yes".into())]));
    api.replace("ignored", &PostParams::default(), &out)
        .await
        .unwrap();

    let converged = eventually(Duration::from_secs(10), || {
        let reader = reader.clone();
        async move {
            let mut names: Vec<String> = reader
                .state()
                .iter()
                .map(|c| c.metadata.name.clone().unwrap())
                .collect();
            names.sort();
            let new_changed = reader.state().iter().any(|c| {
                c.metadata.name.as_deref() == Some("new")
                    && c.data.as_ref().is_some_and(|d| d["k"] == "changed")
            });
            names == ["ignored", "new"] && new_changed
        }
    })
    .await;
    assert!(
        converged,
        "reflector has {:?}",
        reader
            .state()
            .iter()
            .map(|c| c.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    task.abort();
    sb.shutdown().await;
}

/// Raw watch lines, read until the server ends the stream (timeoutSeconds).
/// The resourceVersion of a list of `api`: where a watch resumes.
async fn list_version(api: &Api<ConfigMap>) -> String {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

async fn raw_watch(client: &kube::Client, query: &str) -> Vec<Value> {
    let (code, _, body) = raw(
        client,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?watch=true&{query}"),
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body.lines().map(json_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_events_bookmarks_and_selector_transitions() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &cm("a", &[("sel", "in")]))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            api.create(&PostParams::default(), &cm("b", &[("sel", "in")]))
                .await
                .unwrap();
            let mut a = api.get("a").await.unwrap();
            a.metadata.labels = Some(BTreeMap::from([("sel".into(), "out".into())]));
            api.replace("a", &PostParams::default(), &a).await.unwrap();
        })
    };
    let events = raw_watch(
        &client,
        &format!(
            "resourceVersion={rv}&labelSelector=sel%3Din&allowWatchBookmarks=true&timeoutSeconds=3"
        ),
    )
    .await;
    writer.await.unwrap();
    let kinds: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ADDED".to_string(), "b".to_string()),
            ("DELETED".to_string(), "a".to_string())
        ]
    );
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark while idle");
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );

    // Resuming from a version before those changes replays them with the same
    // transitions (out of the history this time).
    let replay = raw_watch(
        &client,
        &format!("resourceVersion={rv}&labelSelector=sel%3Din&timeoutSeconds=1"),
    )
    .await;
    let replayed: Vec<(&str, &str)> = replay
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(replayed, [("ADDED", "b"), ("DELETED", "a")]);

    // Without a resourceVersion: synthetic ADDED for what exists now.
    let initial = raw_watch(&client, "timeoutSeconds=1").await;
    let names: Vec<&str> = initial
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(initial.iter().all(|e| e["type"] == "ADDED"));

    // Streaming lists: initial events end with an annotated bookmark.
    let streamed = raw_watch(&client, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1").await;
    let end = streamed
        .iter()
        .position(|e| e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true")
        .expect("end-of-initial-events bookmark");
    assert_eq!(end, 2);
    sb.shutdown().await;
}

/// A sandbox whose watch history forgets old events by one bound only: by
/// count (5 events), by age (anything older than 1 ns: compacted as soon as
/// the clock moves, no sleep needed) or by bytes (less than one ConfigMap).
fn tiny_history(bound: &str) -> SandboxConfig {
    let (events, age, bytes) = match bound {
        "count" => (5, None, None),
        "age" => (1_000_000, Some(Duration::from_nanos(1)), None),
        "bytes" => (1_000_000, None, Some(64)),
        other => panic!("no bound {other}"),
    };
    SandboxConfig {
        watch_history: events,
        watch_history_max_age: age,
        watch_history_max_bytes: bytes,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_from_an_expired_version_gets_410() {
    for bound in ["count", "age", "bytes"] {
        raw_watch_from_an_expired_version_gets_410_with(bound).await;
    }
}

async fn raw_watch_from_an_expired_version_gets_410_with(bound: &str) {
    let sb = start_with(tiny_history(bound)).await;
    let client = sb.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let rv = list_version(&api).await;
    for i in 0..8 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let events = raw_watch(&client, &format!("resourceVersion={rv}&timeoutSeconds=2")).await;
    assert_eq!(events.len(), 1, "{bound}: {events:?}");
    assert_eq!(events[0]["type"], "ERROR", "{bound}");
    assert_eq!(events[0]["object"]["code"], 410, "{bound}");
    assert_eq!(events[0]["object"]["reason"], "Expired", "{bound}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_within_the_retained_window_resumes_without_a_gap() {
    // Count 5, no age or byte bound hit: three changes after `rv` are all
    // still there, so the watch replays exactly those, in order.
    let sb = start_with(tiny_history("count")).await;
    let client = sb.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();
    let rv = list_version(&api).await;
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("after-{i}"), &[]))
            .await
            .unwrap();
    }
    let events = raw_watch(&client, &format!("resourceVersion={rv}&timeoutSeconds=1")).await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names, ["after-0", "after-1", "after-2"], "{events:?}");
    assert!(events.iter().all(|e| e["type"] == "ADDED"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_410_and_converges() {
    for bound in ["count", "age", "bytes"] {
        watcher_relists_after_410_and_converges_with(bound).await;
    }
}

async fn watcher_relists_after_410_and_converges_with(bound: &str) {
    // Watches are cut often and the history is tiny: a watcher that was away
    // while many changes happened must get 410, relist, and still converge.
    let sb = start_with(SandboxConfig {
        faults: FaultConfig {
            rules: vec![],
            watch_cut_after: Some(Duration::from_millis(300)),
        },
        ..tiny_history(bound)
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("keep-{i}"), &[]))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store();
    let mut stream = reflector(writer, watcher(api.clone(), watcher::Config::default())).boxed();
    // Drive the stream until the initial list is in.
    while reader.state().len() < 3 {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    // Stop consuming: the server cuts the watch meanwhile; then many changes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let counts = sb.request_counts();
    let lists_before = counts.get("list", "configmaps");
    for i in 0..12 {
        api.create(&PostParams::default(), &cm(&format!("new-{i}"), &[]))
            .await
            .unwrap();
    }
    api.delete("keep-0", &DeleteParams::default())
        .await
        .unwrap();
    let mut expected: Vec<String> = (1..3)
        .map(|i| format!("keep-{i}"))
        .chain((0..12).map(|i| format!("new-{i}")))
        .collect();
    expected.sort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        if names == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{bound}: reflector stuck at {names:?}"
        );
        // Errors (the 410) are part of the story; the watcher recovers by itself.
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    }
    assert!(
        counts.get("list", "configmaps") > lists_before,
        "{bound}: a relist happened"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_and_request_counts() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let counts = sb.request_counts();
    counts.reset();
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    api.list(&ListParams::default()).await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    api.get("a").await.unwrap();
    assert_eq!(counts.get("create", "configmaps"), 1);
    assert_eq!(counts.get("list", "configmaps"), 2);
    assert_eq!(counts.get("get", "configmaps"), 1);
    assert_eq!(counts.total(), 4);
    assert_eq!(counts.by_verb()["list"], 2);
    let (code, _, body) = raw(&client, "GET", "/sandbox/requests", None, None, b"").await;
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)["total"], 4);

    sb.set_faults(FaultConfig {
        rules: vec![FaultRule {
            verb: Some("list".into()),
            resource: Some("configmaps".into()),
            probability: 1.0,
            action: FaultAction::Error { code: 500 },
        }],
        watch_cut_after: None,
    });
    let err = api_err(api.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 500);
    api.get("a").await.expect("other verbs are unaffected");
    sb.set_faults(FaultConfig::default());
    api.list(&ListParams::default()).await.unwrap();

    // The same over HTTP: 429 with Retry-After (seen without kube's retry layer,
    // which would otherwise wait and retry the 429 for minutes).
    let mut no_retry = kube::Config::new(sb.url().parse().unwrap());
    no_retry.default_retry = false;
    no_retry.auth_info.token = Some(sb.admin_token().into());
    let client = kube::Client::try_from(no_retry).unwrap();
    let cfg = json!({"rules": [{"verb": "get", "resource": "configmaps", "probability": 1.0, "action": {"type": "error", "code": 429}}]});
    let (code, _, body) = raw(
        &client,
        "PUT",
        "/sandbox/faults",
        Some("application/json"),
        None,
        cfg.to_string().as_bytes(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, headers, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps/a",
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(code, 429);
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    let (code, _, _) = raw(
        &client,
        "PUT",
        "/sandbox/faults",
        Some("application/json"),
        None,
        b"{}",
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, body) = raw(
        &client,
        "PUT",
        "/sandbox/faults",
        Some("application/json"),
        None,
        b"{\"rules\": 3}",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    api.get("a").await.unwrap();
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_real_status_codes_and_stores_nothing() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let cms = "/api/v1/namespaces/default/configmaps";
    let store = sb.store();
    let count = || {
        store
            .list(
                &redblack_sandbox::registry::GroupResource::new("", "configmaps"),
                None,
            )
            .0
            .len()
    };
    let stored = count();

    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/json"),
        None,
        b"{\"metadata\": {\"name\": ",
    )
    .await;
    assert_eq!(code, 400);
    let status = json_of(&body);
    assert_eq!(
        (
            status["kind"].as_str(),
            status["status"].as_str(),
            status["reason"].as_str()
        ),
        (Some("Status"), Some("Failure"), Some("BadRequest"))
    );
    assert!(
        status["message"].as_str().unwrap().contains("JSON"),
        "{body}"
    );

    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/yaml"),
        None,
        b"metadata: [unclosed",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(json_of(&body)["message"].as_str().unwrap().contains("YAML"));

    // YAML bodies are accepted.
    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/yaml"),
        None,
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-yaml}\ndata: {a: b}\n",
    )
    .await;
    assert_eq!(code, 201, "{body}");

    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/json"),
        None,
        br#"{"metadata": {"name": "x", "namespace": "kube-system"}}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        json_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("does not match the namespace")
    );

    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/json"),
        None,
        br#"{"metadata": {"name": "Bad_Name"}}"#,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let status = json_of(&body);
    assert_eq!(status["reason"], "Invalid");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{body}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");

    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/json"),
        None,
        br#"{"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");

    let (code, _, body) = raw(
        &client,
        "POST",
        cms,
        Some("application/vnd.kubernetes.protobuf"),
        None,
        b"\x6b\x38\x73\x00",
    )
    .await;
    assert_eq!(code, 415, "{body}");

    let (code, _, body) = raw(
        &client,
        "PUT",
        &format!("{cms}/from-yaml"),
        Some("application/json"),
        None,
        br#"{"metadata": {"name": "other"}}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        json_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("does not match the name")
    );

    let (code, _, body) = raw(
        &client,
        "PUT",
        &format!("{cms}/from-yaml"),
        Some("application/json"),
        None,
        br#"{"metadata": {"name": "from-yaml", "resourceVersion": "1"}, "data": {"a": "c"}}"#,
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(json_of(&body)["reason"], "Conflict");

    let (code, _, body) = raw(
        &client,
        "GET",
        "/apis/nope.example.com/v1/namespaces/default/things",
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(json_of(&body)["reason"], "NotFound");
    let (code, _, _) = raw(&client, "GET", "/totally/unknown", None, None, b"").await;
    assert_eq!(code, 404);

    let (code, _, body) = raw(
        &client,
        "PATCH",
        &format!("{cms}/from-yaml"),
        Some("text/plain"),
        None,
        b"{}",
    )
    .await;
    assert_eq!(code, 415, "{body}");
    assert_eq!(json_of(&body)["reason"], "UnsupportedMediaType");

    let (code, _, body) = raw(
        &client,
        "POST",
        &format!("{cms}/from-yaml"),
        Some("application/json"),
        None,
        b"{}",
    )
    .await;
    assert_eq!(code, 405, "{body}");
    assert_eq!(json_of(&body)["reason"], "MethodNotAllowed");

    let (code, _, _) = raw(&client, "GET", cms, None, Some("text/html"), b"").await;
    assert_eq!(code, 406);

    // Odd shapes in built-ins are answered, never crash the handler.
    let (code, _, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/services",
        Some("application/json"),
        None,
        br#"{"metadata": {"name": "odd"}, "spec": {"ports": [5, {"port": 80}]}}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(json_of(&body)["spec"]["ports"][1]["protocol"], "TCP");

    assert_eq!(count(), stored + 1, "only the YAML configmap was stored");
    let cm = sb
        .store()
        .get(
            &redblack_sandbox::registry::GroupResource::new("", "configmaps"),
            "default",
            "from-yaml",
        )
        .unwrap();
    assert_eq!(cm["data"]["a"], "b");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_metadata_representations() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &rs("web", 3))
        .await
        .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (code, headers, body) = raw(
        &client,
        "GET",
        "/apis/apps/v1/namespaces/default/replicasets",
        None,
        Some(accept),
        b"",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let table = json_of(&body);
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Desired", "Current", "Ready", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "web");
    assert_eq!(table["rows"][0]["cells"][1], 3);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (_, _, body) = raw(
        &client,
        "GET",
        "/apis/apps/v1/namespaces/default/replicasets?includeObject=Object",
        None,
        Some(accept),
        b"",
    )
    .await;
    assert_eq!(json_of(&body)["rows"][0]["object"]["kind"], "ReplicaSet");

    let meta_accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let (_, _, body) = raw(
        &client,
        "GET",
        "/apis/apps/v1/namespaces/default/replicasets",
        None,
        Some(meta_accept),
        b"",
    )
    .await;
    let list = json_of(&body);
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert!(list["items"][0].get("spec").is_none());
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    // Discovery answers with the legacy types to an aggregated-discovery Accept.
    let (code, headers, body) = raw(
        &client,
        "GET",
        "/apis",
        None,
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ),
        b"",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(json_of(&body)["kind"], "APIGroupList");
    let (_, _, body) = raw(&client, "GET", "/version", None, None, b"").await;
    assert_eq!(json_of(&body)["major"], "1");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_validates_without_storing() {
    let sb = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = api.create(&dry, &cm("dry", &[])).await.unwrap();
    assert_eq!(answered.metadata.name.as_deref(), Some("dry"));
    assert_eq!(api_err(api.get("dry").await.unwrap_err()).code, 404);
    let invalid = api_err(api.create(&dry, &cm("Not_Valid", &[])).await.unwrap_err());
    assert_eq!(invalid.code, 422);
    sb.shutdown().await;
}

/// 10,000 objects and 200 concurrent watches: lists and event fan-out stay
/// correct (not a timing test; the bench lives elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_objects_and_two_hundred_watches() {
    let sb = start().await;
    let store = sb.store();
    let rt = sb.registry().find("", "v1", "configmaps").unwrap();
    for i in 0..10_000 {
        store
            .create(&rt, json!({"metadata": {"name": format!("cm-{i:05}"), "namespace": "default", "labels": {"bucket": (i % 10).to_string()}}}))
            .unwrap();
    }
    let client = sb.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let list = api
        .list(&ListParams::default().labels("bucket=3"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1_000);
    let rv = list.metadata.resource_version.unwrap();

    let mut watches = Vec::new();
    for i in 0..200 {
        // The server's longest watch (kube allows up to 295 s): opening 200
        // watches took over 20 s on a busy machine, and a watch the server
        // had already ended (timeout 20) never saw its event.
        let wp = kube::api::WatchParams::default()
            .labels(&format!("bucket={}", i % 10))
            .timeout(290);
        watches.push(api.watch(&wp, &rv).await.unwrap().boxed());
    }
    // One change per bucket: every watcher must see exactly its own.
    for b in 0..10 {
        api.create(
            &PostParams::default(),
            &cm(&format!("new-{b}"), &[("bucket", &b.to_string())]),
        )
        .await
        .unwrap();
    }
    let seen = futures::future::join_all(watches.into_iter().map(|mut w| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(120), w.next()).await {
                Ok(Some(Ok(kube::api::WatchEvent::Added(c)))) => return c.metadata.name.unwrap(),
                Ok(Some(Ok(kube::api::WatchEvent::Bookmark(_)))) => continue,
                other => panic!("unexpected watch result: {other:?}"),
            }
        }
    }))
    .await;
    for (i, name) in seen.iter().enumerate() {
        assert_eq!(name, &format!("new-{}", i % 10));
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_with_two_served_versions() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let mut crd = widget_crd();
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    crd["spec"]["versions"].as_array_mut().unwrap().push(v2);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let api_for = |version: &str| {
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.com", version, "Widget"),
            "widgets",
        );
        Api::<DynamicObject>::namespaced_with(client.clone(), "default", &ar)
    };
    let (v1, v2) = (api_for("v1"), api_for("v2"));
    v1.create(&PostParams::default(), &widget("w", json!({"replicas": 1})))
        .await
        .unwrap();
    let seen = v2.get("w").await.unwrap();
    assert_eq!(seen.types.unwrap().api_version, "example.com/v2");
    let listed = v2.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        listed.items[0].types.as_ref().unwrap().api_version,
        "example.com/v2"
    );
    assert_eq!(
        v1.get("w").await.unwrap().types.unwrap().api_version,
        "example.com/v1"
    );
    sb.shutdown().await;
}

/// Built-in kinds are validated as a real API server validates them, so what a
/// real cluster refuses (derived names, label syntax, selectors, containers)
/// is refused here too, with the same status shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_kinds_are_validated_like_a_real_api_server() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Service;
    let sb = start().await;
    let client = sb.client().unwrap();

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web.v2-canary"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let err = api_err(
        services
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("Service \"web.v2-canary\" is invalid: metadata.name: Invalid value"),
        "{}",
        err.message
    );

    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "labels": {"app": "x".repeat(64)}},
        "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "Matches", "values": ["web"]}]},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web"}, {"name": "web", "image": "a"}]}
            }
        }
    }))
    .unwrap();
    let err = api_err(
        replica_sets
            .create(&PostParams::default(), &rs)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let fields: Vec<String> = err
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(
        fields,
        [
            "metadata.labels",
            "spec.selector.matchExpressions[0].operator",
            "spec.template.spec.containers[0].image",
            "spec.template.spec.containers[1].name",
        ]
    );
    sb.shutdown().await;
}

fn simulated_pod(name: &str, grace: Option<i64>, finalizers: &[&str]) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {"containers": [{"name": "c", "image": "demo:1"}]},
    });
    if let Some(g) = grace {
        pod["spec"]["terminationGracePeriodSeconds"] = json!(g);
    }
    pod
}

/// Creates `pod` in `default` and waits until the scheduler bound it (only a
/// pod on a node is deleted gracefully).
async fn bound_pod(client: &kube::Client, pod: Value) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(&pod).unwrap();
    let (code, _, text) = raw(
        client,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/json"),
        None,
        &body,
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let path = format!("/api/v1/namespaces/default/pods/{name}");
    let bound = eventually(Duration::from_secs(30), || async {
        let (_, _, text) = raw(client, "GET", &path, None, None, b"").await;
        json_of(&text)["spec"]["nodeName"].is_string()
    })
    .await;
    assert!(bound, "pod {name} never bound");
    path
}

/// Graceful deletion, as a real API server does it for pods: a DELETE answers
/// 200 with the pod itself, marked with `deletionTimestamp` (now + grace) and
/// `deletionGracePeriodSeconds` (the pod's `terminationGracePeriodSeconds`,
/// default 30, or the request's); `kubectl get` shows it Terminating; the
/// kubelet stops it and deletes it for good with grace 0 (which finalizers
/// still hold); `gracePeriodSeconds: 0` removes a pod at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_terminates_it_gracefully_and_grace_0_removes_it_at_once() {
    let sb = start().await;
    let client = sb.client().unwrap();

    // Default grace (30 s), held by a finalizer so every step can be seen.
    let path = bound_pod(&client, simulated_pod("held", None, &["test/hold"])).await;
    let (code, _, text) = raw(&client, "DELETE", &path, None, None, b"").await;
    assert_eq!(code, 200, "{text}");
    let marked = json_of(&text);
    assert_eq!(
        marked["kind"], "Pod",
        "the pod itself, not a Status: {text}"
    );
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 30,
        "{text}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(
        marked["metadata"]["deletionTimestamp"].as_str().unwrap(),
    )
    .unwrap();
    let ahead = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!(
        (20..=31).contains(&ahead),
        "deletionTimestamp is now + 30 s: {ahead}"
    );
    let (_, _, table) = raw(
        &client,
        "GET",
        &path,
        None,
        Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
        b"",
    )
    .await;
    assert!(table.contains("Terminating"), "{table}");
    // The kubelet stops the containers, then its own delete (grace 0) leaves
    // the pod to its finalizer.
    let stopped = eventually(Duration::from_secs(30), || async {
        let (_, _, text) = raw(&client, "GET", &path, None, None, b"").await;
        let pod = json_of(&text);
        pod["metadata"]["deletionGracePeriodSeconds"] == 0
            && pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
            && pod["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "False")
            })
    })
    .await;
    assert!(stopped, "the kubelet never finished the held pod");
    let unhold = br#"{"metadata": {"finalizers": null}}"#;
    let (code, _, text) = raw(
        &client,
        "PATCH",
        &path,
        Some("application/merge-patch+json"),
        None,
        unhold,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (code, _, _) = raw(&client, "GET", &path, None, None, b"").await;
    assert_eq!(code, 404, "no finalizer and no grace left: gone");

    // Without a finalizer the kubelet removes it by itself; the request's grace
    // period wins over the pod's.
    let path = bound_pod(&client, simulated_pod("plain", Some(600), &[])).await;
    let body = br#"{"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 5}"#;
    let (code, _, text) = raw(
        &client,
        "DELETE",
        &path,
        Some("application/json"),
        None,
        body,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        json_of(&text)["metadata"]["deletionGracePeriodSeconds"],
        5,
        "{text}"
    );
    let gone = eventually(Duration::from_secs(30), || async {
        raw(&client, "GET", &path, None, None, b"").await.0 == 404
    })
    .await;
    assert!(gone, "the kubelet never removed the terminating pod");

    // `kubectl delete --grace-period=0 --force`: gone before the answer.
    let path = bound_pod(&client, simulated_pod("forced", Some(600), &[])).await;
    let (code, _, text) = raw(
        &client,
        "DELETE",
        &format!("{path}?gracePeriodSeconds=0"),
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        json_of(&text)["metadata"]["deletionGracePeriodSeconds"],
        0,
        "{text}"
    );
    let (code, _, _) = raw(&client, "GET", &path, None, None, b"").await;
    assert_eq!(code, 404, "grace 0 removes at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_after_the_event_ttl() {
    // A tiny TTL (kube-apiserver's `--event-ttl` is 1 h): Events of both API
    // groups disappear by themselves, the other kinds stay.
    let sb = start_with(SandboxConfig {
        event_ttl: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let client = sb.client().unwrap();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("stays", &[]))
        .await
        .unwrap();
    core.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "core-ev"},
            "involvedObject": {"kind": "ConfigMap", "name": "stays", "namespace": "default"},
            "reason": "Test", "message": "m", "type": "Normal"
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    new.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "new-ev"},
            "eventTime": "2026-12-03T00:00:00.000000Z",
            "reportingController": "test", "reportingInstance": "test",
            "action": "Test", "reason": "Test", "type": "Normal",
            "regarding": {"kind": "ConfigMap", "name": "stays", "namespace": "default"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let gone = eventually(Duration::from_secs(20), || async {
        core.get_opt("core-ev").await.unwrap().is_none()
            && new.get_opt("new-ev").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "both Events expired");
    assert!(cms.get_opt("stays").await.unwrap().is_some());
    sb.shutdown().await;
}
