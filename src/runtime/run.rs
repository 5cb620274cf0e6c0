//! The run loop of every controller: kube-runtime's `Controller` with the
//! given concurrency, stopping gracefully when the shutdown resolves, every
//! reconcile result logged the same way.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::{StreamExt, TryFuture};
use kube::runtime::controller::{self, Action, Controller};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::watch_backoff::TriggerBackoff;

/// The API of `K` in `namespace`, or in all namespaces (`None`): the scope
/// every watch of a controller shares.
pub fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs `controller` until `shutdown` resolves and the reconciles in flight
/// finish (bounded by the caller, see [`super::shutdown::within_grace`]).
///
/// Every watch merged into `controller` must back off on its own
/// ([`super::watch_backoff::watch_backoff`]): the merged trigger stream does
/// not ([`TriggerBackoff`], which says why).
pub async fn run<K, Ctx, Fut>(
    controller: Controller<K>,
    name: &'static str,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action,
    context: Arc<Ctx>,
) where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Debug + Unpin + Eq + Hash + Clone,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    tracing::info!(controller = name, concurrency, "controller started");
    controller
        .with_config(controller::Config::default().concurrency(concurrency))
        .trigger_backoff(TriggerBackoff)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            match result {
                Ok((object, _)) => tracing::debug!(controller = name, %object, "reconciled"),
                Err(controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(controller = name, %object, "reconcile of a deleted object skipped")
                }
                // The error itself was logged by the controller's error policy.
                Err(error) => tracing::debug!(controller = name, %error, "reconcile failed"),
            }
            futures::future::ready(())
        })
        .await;
    tracing::info!(controller = name, "controller stopped");
}
