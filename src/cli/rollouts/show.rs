//! `redblack list` and `redblack status NAME [--watch]`.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::ops::owned_replica_sets;
use super::{VerbError, rollout_err};
use crate::api::{
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout, SCALE_DOWN_AT_ANNOTATION,
    pod_template_hash,
};
use crate::runtime::watch_backoff::watch_backoff;

fn age(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(created) = created else {
        return "-".to_owned();
    };
    let secs = (now - created).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn created_at(rollout: &Rollout) -> Option<DateTime<Utc>> {
    let ts = rollout.metadata.creation_timestamp.as_ref()?;
    DateTime::from_timestamp(ts.0.as_second(), 0)
}

fn short<T: std::fmt::Debug>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:?}"))
}

/// `redblack list`: a table like `kubectl get rbro`.
pub async fn list(client: &Client, ns: &str) -> Result<String, VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|source| VerbError::Api {
            what: format!("listing Rollouts in {ns}"),
            source,
        })?
        .items;
    items.sort_by_key(|r| r.name_any());
    if items.is_empty() {
        return Ok(format!("No Rollouts in namespace {ns}.\n"));
    }
    let now = Utc::now();
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            [
                r.name_any(),
                r.spec.replicas.to_string(),
                s.ready_replicas.to_string(),
                short(s.phase),
                s.stable_revision.unwrap_or_else(|| "-".into()),
                s.current_revision.unwrap_or_else(|| "-".into()),
                age(created_at(r), now),
            ]
        })
        .collect();
    Ok(table(
        &[
            "NAME", "DESIRED", "READY", "PHASE", "STABLE", "CURRENT", "AGE",
        ],
        &rows,
    ))
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn selected_hash(svc: &Service) -> Option<String> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .cloned()
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn service_line(role: &str, name: &str, svc: Option<&Service>, rs: &[ReplicaSet]) -> String {
    match svc {
        None => format!("{role} Service {name}: NOT FOUND"),
        Some(svc) => match selected_hash(svc) {
            None => {
                format!("{role} Service {name} → no revision pinned yet (selects by base labels)")
            }
            Some(hash) => {
                let rev = rs
                    .iter()
                    .find(|r| r.labels().get(POD_TEMPLATE_HASH_LABEL) == Some(&hash))
                    .map(revision_of);
                match rev {
                    Some(n) => format!("{role} Service {name} → revision {n} ({hash})"),
                    None => {
                        format!("{role} Service {name} → {hash} (not a ReplicaSet of this Rollout)")
                    }
                }
            }
        },
    }
}

/// The status tree, from already-fetched objects (pure; tests use it directly).
pub fn render_status(
    rollout: &Rollout,
    replica_sets: &[ReplicaSet],
    active: Option<&Service>,
    preview: Option<&Service>,
    events: &[K8sEvent],
) -> String {
    let mut out = String::new();
    let status = rollout.status.clone().unwrap_or_default();
    let rb = &rollout.spec.strategy.red_black;
    let ns = rollout.namespace().unwrap_or_default();
    let _ = writeln!(
        out,
        "Rollout {ns}/{}    phase: {}    generation {} (observed {})",
        rollout.name_any(),
        short(status.phase),
        rollout.metadata.generation.unwrap_or(0),
        status.observed_generation.unwrap_or(0),
    );
    let _ = writeln!(
        out,
        "  replicas {} desired · live fleet {} ready / {} available · {} pods of the current revision{}",
        rollout.spec.replicas,
        status.ready_replicas,
        status.available_replicas,
        status.updated_replicas,
        if rollout.spec.paused {
            " · PAUSED"
        } else {
            ""
        },
    );
    let _ = writeln!(
        out,
        "  {}",
        service_line("active", &rb.active_service, active, replica_sets)
    );
    if let Some(p) = &rb.preview_service {
        let _ = writeln!(
            out,
            "  {}",
            service_line("preview", p, preview, replica_sets)
        );
    }
    if let Some(abort) = &status.abort {
        let _ = writeln!(
            out,
            "  aborted: {} ({:?}) at {}",
            abort.revision,
            abort.reason,
            abort.at.to_rfc3339()
        );
    }

    // With workloadRef the template is the Deployment's: the operator's word.
    let current = match &rollout.spec.workload_ref {
        Some(_) => status.current_revision.clone().unwrap_or_default(),
        None => pod_template_hash(&rollout.spec.template),
    };
    let active_hash = active.and_then(selected_hash);
    let preview_hash = preview.and_then(selected_hash);
    let mut sorted: Vec<&ReplicaSet> = replica_sets.iter().collect();
    sorted.sort_by_key(|rs| std::cmp::Reverse(revision_of(rs)));
    let _ = writeln!(out, "Revisions");
    if sorted.is_empty() {
        let _ = writeln!(out, "  (no ReplicaSets yet)");
    }
    for (i, rs) in sorted.iter().enumerate() {
        let branch = if i + 1 == sorted.len() {
            "└─"
        } else {
            "├─"
        };
        let hash = rs
            .labels()
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        let st = rs.status.clone().unwrap_or_default();
        let images = rs
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .map(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let mut tags = Vec::new();
        if active_hash.as_deref() == Some(hash.as_str()) {
            tags.push("● ACTIVE".to_owned());
        }
        if preview_hash.as_deref() == Some(hash.as_str()) {
            tags.push("preview".to_owned());
        }
        if hash == current {
            tags.push("current".to_owned());
        }
        if let Some(at) = rs.annotations().get(SCALE_DOWN_AT_ANNOTATION) {
            tags.push(format!("scale-down at {at}"));
        }
        let _ = writeln!(
            out,
            "  {branch} revision {:<3} {:<28} {}/{} ready ({} desired)   {images}   {}",
            revision_of(rs),
            rs.name_any(),
            st.ready_replicas.unwrap_or(0),
            st.replicas,
            rs.spec.replicas.unwrap_or(0),
            tags.join(" · "),
        );
    }

    let _ = writeln!(out, "Conditions");
    for c in &status.conditions {
        let _ = writeln!(
            out,
            "  {:<22} {:<7} {:<28} {}",
            c.type_,
            format!("{:?}", c.status),
            c.reason,
            c.message.replace('\n', "; ")
        );
    }
    if !status.history.is_empty() {
        let _ = writeln!(out, "History");
        for h in status.history.iter().rev().take(5) {
            let _ = writeln!(
                out,
                "  {}  revision {:<3} {:<12} {:?}  {}",
                h.time.to_rfc3339(),
                h.revision,
                h.hash,
                h.outcome,
                h.images.join(",")
            );
        }
    }
    if !events.is_empty() {
        let _ = writeln!(out, "Events (newest last)");
        for e in events {
            let time = e
                .event_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {time}  {:<7} {:<22} {}",
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.note.clone().unwrap_or_default()
            );
        }
    }
    out
}

/// The Rollout's newest Events (events.k8s.io), oldest first.
async fn recent_events(client: &Client, ns: &str, rollout: &Rollout) -> Vec<K8sEvent> {
    let api: Api<K8sEvent> = Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    let uid = rollout.uid();
    let mut events: Vec<K8sEvent> = list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.clone()) == uid)
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    let skip = events.len().saturating_sub(8);
    events.split_off(skip)
}

/// `redblack status NAME`
pub async fn status(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let rollout = api
        .get(name)
        .await
        .map_err(rollout_err(ns, name, "reading"))?;
    let replica_sets = owned_replica_sets(client, ns, &rollout).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let rb = &rollout.spec.strategy.red_black;
    let get_svc = |n: String| {
        let services = services.clone();
        async move { services.get_opt(&n).await.ok().flatten() }
    };
    let active = get_svc(rb.active_service.clone()).await;
    let preview = match &rb.preview_service {
        Some(p) => get_svc(p.clone()).await,
        None => None,
    };
    let events = recent_events(client, ns, &rollout).await;
    Ok(render_status(
        &rollout,
        &replica_sets,
        active.as_ref(),
        preview.as_ref(),
        &events,
    ))
}

/// `redblack status NAME --watch`: reprints the tree whenever the Rollout or a
/// ReplicaSet changes, until Ctrl+C.
pub async fn watch_status(client: &Client, ns: &str, name: &str) -> Result<(), VerbError> {
    let rollouts = watcher(
        Api::<Rollout>::namespaced(client.clone(), ns),
        watcher::Config::default(),
    )
    // Backoff: an unreachable API server is retried with a growing delay,
    // not in a loop that keeps a core busy.
    .backoff(watch_backoff())
    .map(|_| ());
    let replica_sets = watcher(
        Api::<ReplicaSet>::namespaced(client.clone(), ns),
        watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL),
    )
    .backoff(watch_backoff())
    .map(|_| ());
    let mut changes = futures::stream::select(rollouts, replica_sets).boxed();
    let mut last = String::new();
    loop {
        let out = status(client, ns, name).await?;
        if out != last {
            println!("{}", "─".repeat(72));
            print!("{out}");
            last = out;
        }
        tokio::select! {
            _ = changes.next() => {
                // Coalesce a burst of events into one redraw.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
