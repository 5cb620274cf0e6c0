//! The writing verbs. Manual operations follow docs/rollout.md: promote, abort
//! and retry set an annotation `<hash>@<nonce>` that the operator consumes once;
//! pause/resume set `spec.paused`; undo writes an old pod template back.

use chrono::Utc;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{VerbError, rollout_err};
use crate::api::{
    ABORT_ANNOTATION, POD_TEMPLATE_HASH_LABEL, PROMOTE_ANNOTATION, RETRY_ANNOTATION,
    REVISION_ANNOTATION, Rollout, RolloutStatus, pod_template_hash,
};
use crate::rollout::observe::is_owned_by;
use crate::rollout::undo::{operation_value, template_for_undo};

/// The field manager of the CLI's writes (distinct from the operator's).
pub const CLI_FIELD_MANAGER: &str = "redblack-cli";

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(CLI_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

async fn get(api: &Api<Rollout>, ns: &str, name: &str) -> Result<Rollout, VerbError> {
    api.get(name)
        .await
        .map_err(rollout_err(ns, name, "reading"))
}

/// The status, refusing when the operator has not caught up with the spec (a
/// revision named from a stale status could be the wrong one).
fn current_status(rollout: &Rollout) -> Result<RolloutStatus, VerbError> {
    let name = rollout.name_any();
    let status = rollout.status.clone().unwrap_or_default();
    if status.current_revision.is_none() {
        return Err(VerbError::NotObserved(name));
    }
    if status.observed_generation < rollout.metadata.generation {
        return Err(VerbError::Refused(format!(
            "Rollout {name} changed (generation {}) and the operator has not processed it yet (observed {}); try again in a moment",
            rollout.metadata.generation.unwrap_or(0),
            status.observed_generation.unwrap_or(0)
        )));
    }
    Ok(status)
}

fn nonce() -> String {
    Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string()
}

async fn annotate(
    api: &Api<Rollout>,
    ns: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), VerbError> {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &params(), &Patch::Merge(&patch))
        .await
        .map_err(rollout_err(ns, name, "annotating"))?;
    Ok(())
}

/// What a verb on the current, not yet live revision says in each case.
struct OnCurrent {
    annotation: &'static str,
    when_live: &'static str,
    when_aborted: &'static str,
    done: &'static str,
}

/// Sets `what.annotation` to `<current hash>@<nonce>`, refusing when the
/// current revision is already live or aborted (messages name `{hash}` and
/// `{name}`).
async fn annotate_current(
    client: &Client,
    ns: &str,
    name: &str,
    what: OnCurrent,
) -> Result<String, VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let rollout = get(&api, ns, name).await?;
    let status = current_status(&rollout)?;
    let hash = status.current_revision.unwrap_or_default();
    let say = |text: &str| text.replace("{hash}", &hash).replace("{name}", name);
    if status.stable_revision.as_deref() == Some(hash.as_str()) {
        return Err(VerbError::Refused(say(what.when_live)));
    }
    if status.abort.as_ref().is_some_and(|a| a.revision == hash) {
        return Err(VerbError::Refused(say(what.when_aborted)));
    }
    annotate(
        &api,
        ns,
        name,
        what.annotation,
        &operation_value(&hash, &nonce()),
    )
    .await?;
    Ok(format!("rollout {ns}/{name}: {}\n", say(what.done)))
}

/// `redblack promote NAME`: approves `status.currentRevision`.
pub async fn promote(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    annotate_current(
        client,
        ns,
        name,
        OnCurrent {
            annotation: PROMOTE_ANNOTATION,
            when_live: "revision {hash} of {name} is already live; nothing to promote",
            when_aborted: "revision {hash} of {name} was aborted; run `redblack retry {name}` first",
            done: "revision {hash} approved; traffic switches as soon as its fleet is available",
        },
    )
    .await
}

/// `redblack abort NAME`: abandons the current, not yet live revision.
pub async fn abort(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    annotate_current(
        client,
        ns,
        name,
        OnCurrent {
            annotation: ABORT_ANNOTATION,
            when_live: "revision {hash} of {name} is already live; use `redblack undo {name}` to go back",
            when_aborted: "revision {hash} of {name} is already aborted",
            done: "revision {hash} aborted; traffic stays on the stable revision",
        },
    )
    .await
}

/// `redblack retry NAME`: clears an abort or a missed deadline.
pub async fn retry(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let rollout = get(&api, ns, name).await?;
    let status = current_status(&rollout)?;
    let Some(aborted) = status.abort else {
        return Err(VerbError::Refused(format!(
            "nothing to retry: the current revision of {name} is not aborted"
        )));
    };
    annotate(
        &api,
        ns,
        name,
        RETRY_ANNOTATION,
        &operation_value(&aborted.revision, &nonce()),
    )
    .await?;
    Ok(format!(
        "rollout {ns}/{name}: retrying revision {}; its fleet is brought up again and the progress deadline restarts\n",
        aborted.revision
    ))
}

async fn set_paused(client: &Client, ns: &str, name: &str, paused: bool) -> Result<(), VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let patch = json!({"spec": {"paused": paused}});
    api.patch(name, &params(), &Patch::Merge(&patch))
        .await
        .map_err(rollout_err(ns, name, "updating"))?;
    Ok(())
}

/// `redblack pause NAME`: `spec.paused = true`.
pub async fn pause(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    set_paused(client, ns, name, true).await?;
    Ok(format!(
        "rollout {ns}/{name} paused: no new fleet is brought up and traffic is not switched\n"
    ))
}

/// `redblack resume NAME`: `spec.paused = false`.
pub async fn resume(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    set_paused(client, ns, name, false).await?;
    Ok(format!("rollout {ns}/{name} resumed\n"))
}

/// `redblack restart NAME` (Argo's `kubectl argo rollouts restart`):
/// `spec.restartAt = now`; the operator recreates the live fleet's older pods
/// one at a time (docs/rollout.md, "Restart").
pub async fn restart(client: &Client, ns: &str, name: &str) -> Result<String, VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = json!({"spec": {"restartAt": at}});
    api.patch(name, &params(), &Patch::Merge(&patch))
        .await
        .map_err(rollout_err(ns, name, "updating"))?;
    Ok(format!(
        "rollout {ns}/{name} restarting: the live fleet's pods started before {at} are recreated one at a time\n"
    ))
}

/// The ReplicaSets `rollout` owns (the hash label narrows the list server-side).
pub async fn owned_replica_sets(
    client: &Client,
    ns: &str,
    rollout: &Rollout,
) -> Result<Vec<ReplicaSet>, VerbError> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(POD_TEMPLATE_HASH_LABEL))
        .await
        .map_err(|source| VerbError::Api {
            what: format!("listing the ReplicaSets of {}", rollout.name_any()),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|rs| is_owned_by(rs, rollout))
        .collect())
}

/// `redblack undo NAME [--to-revision N]`: writes revision N's pod template
/// (default: the previous revision's) into `spec.template`, with optimistic
/// concurrency (a Rollout changed meanwhile is re-read, up to 3 times).
pub async fn undo(
    client: &Client,
    ns: &str,
    name: &str,
    to_revision: Option<i64>,
) -> Result<String, VerbError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    for _ in 0..3 {
        let rollout = get(&api, ns, name).await?;
        if let Some(reference) = &rollout.spec.workload_ref {
            return Err(VerbError::Refused(format!(
                "rollout {ns}/{name} takes its template from Deployment {0} (workloadRef): undo there (kubectl rollout undo deployment/{0})",
                reference.name
            )));
        }
        let current = pod_template_hash(&rollout.spec.template);
        let owned = owned_replica_sets(client, ns, &rollout).await?;
        let mut template = template_for_undo(&owned, &current, to_revision)?;
        // activeMetadata/previewMetadata live on the ReplicaSet only.
        let rb = &rollout.spec.strategy.red_black;
        crate::api::pod_metadata::strip(
            &mut template,
            &[&rb.active_metadata, &rb.preview_metadata],
        );
        let hash = pod_template_hash(&template);
        if hash == current {
            return Err(VerbError::Refused(format!(
                "revision {} of {name} is already the current template",
                to_revision.map_or_else(|| hash.clone(), |n| n.to_string())
            )));
        }
        let revision = owned
            .iter()
            .find(|rs| rs.labels().get(POD_TEMPLATE_HASH_LABEL) == Some(&hash))
            .and_then(|rs| rs.annotations().get(REVISION_ANNOTATION).cloned())
            .unwrap_or_else(|| "?".to_owned());
        let mut updated = rollout.clone();
        updated.spec.template = template;
        updated.metadata.managed_fields = None;
        updated.status = None;
        let params = PostParams {
            field_manager: Some(CLI_FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match api.replace(name, &params, &updated).await {
            Ok(_) => {
                return Ok(format!(
                    "rollout {ns}/{name}: rolled back to revision {revision} ({hash}); traffic switches at once if its fleet is warm, else once it is available again\n"
                ));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(source) => return Err(rollout_err(ns, name, "updating")(source)),
        }
    }
    Err(VerbError::Conflict(name.to_owned()))
}
