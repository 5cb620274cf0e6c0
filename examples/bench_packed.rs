//! Benchmark (not a test): what a packed cache entry (`runtime::packed`) costs
//! against a deserialized one, for the objects `bench_scale` creates (a
//! Rollout with its status, its ReplicaSet as the API returns it, its Service).
//!
//!     cargo run --release --example bench_packed [-- --objects N]
//!
//! Memory: VmRSS growth while N objects of one kind are held (as a cache holds
//! them: one `Arc` each in a map), per object. Time per pack (deserialize,
//! serialize and deflate: once per watch event) and per unpack (inflate and
//! deserialize: each object a reconcile reads), median of 5 passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use redblack::api::Rollout;
use redblack::runtime::packed::Packed;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error>;

fn rss_bytes() -> Result<f64, BoxError> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: f64 = statm.split_whitespace().nth(1).ok_or("statm")?.parse()?;
    Ok(pages * 4096.0)
}

fn uid(prefix: u32, i: usize) -> String {
    format!("{prefix:08x}-2fa1-11d2-883f-{i:012}")
}

fn rollout(i: usize) -> Value {
    let name = format!("app-{i:05}");
    json!({
        "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": "default", "uid": uid(2, i),
                     "resourceVersion": format!("{}", 200_000 + i), "generation": 1,
                     "creationTimestamp": "2026-12-03T10:00:00Z"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name},
                                           "annotations": {"sandbox.redblack.io/ready-after": "200ms"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/app:v1"}]}},
                 "strategy": {"redBlack": {"activeService": name, "scaleDownDelay": "30m"}}},
        "status": {"phase": "Healthy", "observedGeneration": 1, "currentPodHash": "6d9f7c5b8",
                   "stableRS": "6d9f7c5b8", "activeSelector": "6d9f7c5b8",
                   "replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                   "conditions": [
                       {"type": "Available", "status": "True", "reason": "AvailableReplicas",
                        "message": "1 of 1 pods available", "lastTransitionTime": "2026-12-03T10:00:01Z"},
                       {"type": "Progressing", "status": "True", "reason": "RolloutHealthy",
                        "message": "revision 1 is live", "lastTransitionTime": "2026-12-03T10:00:01Z"}],
                   "history": [{"revision": 1, "hash": "6d9f7c5b8", "images": ["registry.example/app:v1"],
                                "outcome": "Promoted", "time": "2026-12-03T10:00:01Z"}]}
    })
}

fn replica_set(i: usize) -> Value {
    let name = format!("app-{i:05}");
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{name}-6d9f7c5b8"), "namespace": "default", "uid": uid(1, i),
                     "resourceVersion": format!("{}", 100_000 + i), "generation": 1,
                     "creationTimestamp": "2026-12-03T10:00:00Z",
                     "labels": {"app": name, "rollouts-pod-template-hash": "6d9f7c5b8"},
                     "annotations": {"redblack.io/revision": "1"},
                     "ownerReferences": [{"apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
                                          "name": name, "uid": uid(2, i), "controller": true,
                                          "blockOwnerDeletion": true}]},
        "spec": {"replicas": 1,
                 "selector": {"matchLabels": {"app": name, "rollouts-pod-template-hash": "6d9f7c5b8"}},
                 "template": {"metadata": {"labels": {"app": name, "rollouts-pod-template-hash": "6d9f7c5b8"},
                                           "annotations": {"sandbox.redblack.io/ready-after": "200ms"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/app:v1",
                                                       "imagePullPolicy": "IfNotPresent",
                                                       "terminationMessagePath": "/dev/termination-log",
                                                       "terminationMessagePolicy": "File", "resources": {}}],
                                       "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                                       "dnsPolicy": "ClusterFirst", "securityContext": {},
                                       "schedulerName": "default-scheduler"}}},
        "status": {"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1,
                   "availableReplicas": 1, "observedGeneration": 1}
    })
}

fn service(i: usize) -> Value {
    let name = format!("app-{i:05}");
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": uid(3, i),
                     "resourceVersion": format!("{}", 300_000 + i),
                     "creationTimestamp": "2026-12-03T10:00:00Z"},
        "spec": {"selector": {"app": name, "rollouts-pod-template-hash": "6d9f7c5b8"},
                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                 "type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}
    })
}

/// Bytes of RSS per object while `n` objects made by `make` are held; the
/// map goes to `keep` (never freed: freed memory would be reused by the next
/// measurement and hide its growth).
fn held<T: Send + Sync + 'static>(
    n: usize,
    make: impl Fn(usize) -> T,
    keep: &mut Vec<Box<dyn std::any::Any>>,
) -> Result<f64, BoxError> {
    let before = rss_bytes()?;
    let mut cache: HashMap<usize, Arc<T>> = HashMap::with_capacity(n);
    for i in 0..n {
        cache.insert(i, Arc::new(make(i)));
    }
    let after = rss_bytes()?;
    keep.push(Box::new(cache));
    Ok((after - before) / n as f64)
}

/// Median CPU-time (wall on an otherwise idle core) per call of `f` over `n` calls, 5 passes.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut passes: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..n {
                f(i);
            }
            start.elapsed().as_secs_f64() / n as f64
        })
        .collect();
    passes.sort_by(f64::total_cmp);
    passes[2]
}

/// Memory per object of kind `K`, deserialized and packed (one table row).
fn memory<K>(
    label: &str,
    n: usize,
    make: fn(usize) -> Value,
    keep: &mut Vec<Box<dyn std::any::Any>>,
) -> Result<(), BoxError>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let sample = make(0);
    let json_len = serde_json::to_vec(&sample)?.len();
    let packed: Packed<K> = serde_json::from_value(sample)?;
    let full = held(n, |i| serde_json::from_value::<K>(make(i)).ok(), keep)?;
    let small = held(
        n,
        |i| serde_json::from_value::<Packed<K>>(make(i)).ok(),
        keep,
    )?;
    println!(
        "| {label} | {json_len} | {} | {full:.0} | {small:.0} | {:.1}x |",
        packed.packed_len(),
        full / small,
    );
    Ok(())
}

/// Time per parse, pack and unpack of kind `K` (one table row).
fn timing<K>(label: &str, n: usize, make: fn(usize) -> Value)
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
{
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| serde_json::to_vec(&make(i)).unwrap_or_default())
        .collect();
    let parse = per_call(n, |i| {
        std::hint::black_box(serde_json::from_slice::<K>(&bodies[i]).ok());
    });
    let pack = per_call(n, |i| {
        std::hint::black_box(serde_json::from_slice::<Packed<K>>(&bodies[i]).ok());
    });
    let packs: Vec<Packed<K>> = bodies
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    let unpack = per_call(packs.len(), |i| {
        std::hint::black_box(packs[i].unpack().ok());
    });
    println!(
        "| {label} | {:.1} | {:.1} | {:.1} |",
        parse * 1e6,
        pack * 1e6,
        unpack * 1e6
    );
}

fn main() -> Result<(), BoxError> {
    let mut n = 10_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--objects" => n = args.next().ok_or("--objects needs a value")?.parse()?,
            "-h" | "--help" => {
                println!("bench_packed [--objects N (10000)]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    println!("bench_packed: {n} objects per kind held in maps of Arcs (as a reflector store)");
    println!(
        "| object | JSON bytes | packed bytes | RSS/object deserialized | RSS/object packed | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    // Every map is kept until the end: no measurement reuses another's memory.
    let mut keep = Vec::new();
    memory::<Rollout>("Rollout (with status)", n, rollout, &mut keep)?;
    memory::<ReplicaSet>("ReplicaSet (API defaults)", n, replica_set, &mut keep)?;
    memory::<Service>("Service", n, service, &mut keep)?;
    let m = n.min(2_000);
    println!("\nCPU per object, median of 5 passes over {m} objects:");
    println!("| object | µs parse (a deserialized cache) | µs pack (a packed cache) | µs unpack |");
    println!("|---|---|---|---|");
    timing::<Rollout>("Rollout (with status)", m, rollout);
    timing::<ReplicaSet>("ReplicaSet (API defaults)", m, replica_set);
    timing::<Service>("Service", m, service);
    drop(keep);
    Ok(())
}
