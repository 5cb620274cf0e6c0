//! The Notifier's side: its configuration checked (Secrets read by name)
//! and its `Ready` condition kept ([`crate::notify::ready`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, NotifyError};
use crate::api::conditions::{self, READY};
use crate::api::notifier::Notifier;
use crate::notify::channel::{self, Channel, ConfigError};
use crate::notify::ready::{self, Observation};
use crate::notify::secrets;

pub(super) async fn resolve(ctx: &Ctx, notifier: &Notifier) -> Result<Channel, ConfigError> {
    let namespace = notifier.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    // Read every referenced key first; `resolve` is pure.
    let mut values = Vec::new();
    let refs = channel::secret_refs(&notifier.spec);
    for r in refs {
        let v = secrets::read(&api, &r).await;
        values.push((r, v));
    }
    channel::resolve(&notifier.spec, |r| {
        values
            .iter()
            .find(|(k, _)| k == r)
            .map(|(_, v)| v.clone())
            .unwrap_or(channel::SecretValue::NoSecret)
    })
}

pub(super) async fn reconcile_notifier(
    notifier: Arc<Notifier>,
    ctx: Arc<Ctx>,
) -> Result<Action, NotifyError> {
    let checked = match resolve(&ctx, &notifier).await {
        Ok(_) => Ok(()),
        Err(e) if e.transient => return Ok(Action::requeue(Duration::from_secs(5))),
        Err(e) => Err(e.to_string()),
    };
    set_ready(&ctx, &notifier, &Observation::Checked(checked)).await;
    Ok(Action::requeue(ctx.settings.recheck))
}

/// Writes the Ready condition `seen` calls for, if it changes. Best effort:
/// a failed status write is logged (the next check writes it again).
pub(super) async fn set_ready(ctx: &Ctx, notifier: &Notifier, seen: &Observation) {
    let old = notifier
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let Some(desired) = ready::next(old.iter().find(|c| c.type_ == READY), seen) else {
        return;
    };
    let generation = notifier.metadata.generation;
    let merged = conditions::merge(&old, vec![desired], generation, Utc::now());
    let patch = json!({"status": {"conditions": merged, "observedGeneration": generation}});
    let api: Api<Notifier> = Api::namespaced(
        ctx.client.clone(),
        &notifier.namespace().unwrap_or_default(),
    );
    let name = notifier.name_any();
    if let Err(source) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(error = %NotifyError::NotifierStatus { name, source }, "Ready not recorded");
    }
}
