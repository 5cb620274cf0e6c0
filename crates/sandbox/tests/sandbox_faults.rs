//! Fault injection that reliability runs lean on: a forced 410 on watches
//! (delivered as the watch cache delivers it) and the counters of injected
//! faults.

mod sandbox_support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use redblack_sandbox::{FaultAction, FaultConfig, FaultRule, SandboxConfig};
use sandbox_support::{json_of, raw, start, start_with};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn rule(verb: &str, probability: f64, action: FaultAction) -> FaultRule {
    FaultRule {
        verb: Some(verb.into()),
        resource: Some("configmaps".into()),
        probability,
        action,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_fault_on_a_watch_is_an_expired_error_event_and_is_counted() {
    let sb = start().await;
    let client = sb.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let counts = sb.request_counts();
    counts.reset();
    sb.set_faults(FaultConfig {
        rules: vec![rule("watch", 1.0, FaultAction::Error { code: 410 })],
        watch_cut_after: None,
    });
    let (code, _, body) = raw(
        &client,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
        None,
        None,
        b"",
    )
    .await;
    // Not an HTTP 410: the stream is 200 and its one event says Expired.
    assert_eq!(code, 200, "{body}");
    let events: Vec<_> = body.lines().map(json_of).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    // Other verbs are untouched; the fault is counted by kind and verb.
    api.get("a").await.unwrap();
    assert_eq!(counts.faults_by_kind().get("410"), Some(&1));
    assert_eq!(counts.faults_by_verb().get("watch"), Some(&1));
    assert_eq!(counts.faults_total(), 1);
    let (_, _, body) = raw(&client, "GET", "/sandbox/requests", None, None, b"").await;
    assert_eq!(json_of(&body)["faults"]["total"], 1, "{body}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_converges_through_forced_410s_cut_watches_and_failing_lists() {
    // Half of the watches expire at once, the rest are cut after 200 ms, and
    // a fifth of the lists fail: the reflector must relist and still end up
    // holding exactly what the server holds.
    let sb = start_with(SandboxConfig {
        faults: FaultConfig {
            rules: vec![
                rule("watch", 0.5, FaultAction::Error { code: 410 }),
                rule("list", 0.2, FaultAction::Error { code: 503 }),
            ],
            watch_cut_after: Some(Duration::from_millis(200)),
        },
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let (reader, writer) = reflector::store();
    // With the backoff a real controller uses: without it a failing watch is
    // retried in a loop that never yields once the server is gone (a
    // refused loopback connect is ready at once), so the aborted driver below
    // never stops and the runtime's shutdown waits for it for ever (a hang
    // found by running this test 4 at a time beside two CPU burners).
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default()).default_backoff(),
    );
    // Errors are part of the story: the watcher recovers by itself.
    let driver = tokio::spawn(stream.for_each(|_| async {}));
    let counts = sb.request_counts();
    let mut expected = Vec::new();
    for i in 0..20 {
        let name = format!("c{i:02}");
        api.create(&PostParams::default(), &cm(&name))
            .await
            .unwrap();
        expected.push(name);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        names.sort();
        // Enough faults must have hit for the run to mean something.
        if names == expected && counts.faults_by_kind().get("410").copied().unwrap_or(0) >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector stuck at {names:?}; faults {:?}",
            counts.faults_by_kind()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counts.get("list", "configmaps") >= 2, "a relist happened");
    driver.abort();
    // Stopped for sure before the server goes away.
    let _ = driver.await;
    sb.shutdown().await;
}
