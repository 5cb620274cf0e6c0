//! Shell: the notifier, two kube-runtime controllers beside the Rollout
//! controller (never inside its reconcile: a slow or dead endpoint delays
//! only notifications).
//!
//! - Over Rollouts with `spec.notifications`: read the ledger ConfigMap
//!   (one GET: the authority, never a cache), advance it to the Rollout's
//!   status and write it (SSA) BEFORE any delivery; then deliver what is due,
//!   writing the ledger after each 2xx; requeue at the next retry.
//! - Over Notifiers: check the configuration (Secrets included) and keep the
//!   `Ready` condition ([`super::ready`]); re-checked every
//!   [`NotifySettings::recheck`] (Secrets are not watched).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::deliver;
use super::ledger::Backoff;
use crate::api::notifier::{Notifier, Trigger};
use crate::api::{Rollout, k8s_names};
use crate::rollout::controller::SharedRollouts;
use crate::runtime::events::EventPublisher;
use crate::runtime::packed::Packed;
use crate::runtime::run::{self, scoped_api};
use crate::runtime::watch_backoff::watch_backoff;
use crate::web::metrics::{NotificationLabels, OperatorMetrics};

mod deliveries;
mod status;

/// The `controller` label of the notifier's reconciles.
pub const NOTIFIER_CONTROLLER_NAME: &str = "notifier";
pub const REPORTING_CONTROLLER: &str = "redblack.io/notifier";
/// Label on every ledger ConfigMap.
pub const LEDGER_LABEL: &str = "redblack.io/notification-ledger";
/// Deliveries tried per reconcile; more due ones requeue at once.
const DELIVERIES_PER_RECONCILE: usize = 10;

#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// Run the notifier at all.
    pub enabled: bool,
    /// The retry schedule of a failed delivery.
    pub backoff: Backoff,
    /// Per request.
    pub timeout: Duration,
    /// Rollouts (and Notifiers) handled at once.
    pub concurrency: u16,
    /// How often a Notifier's configuration is checked again.
    pub recheck: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: true,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(10),
            concurrency: 4,
            recheck: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("reading or writing the notification ledger {name}")]
    Ledger {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of Notifier {name}")]
    NotifierStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Cache(#[from] crate::runtime::packed::UnpackError),
}

struct Ctx {
    client: Client,
    settings: NotifySettings,
    metrics: OperatorMetrics,
    events: EventPublisher,
    http: reqwest::Client,
    /// Every Notifier (for the namespace-wide default subscriptions).
    notifiers: Store<Notifier>,
    /// The last ledger failure announced per Rollout (`namespace/name`), so
    /// that a failure retried every few seconds is one Event, not one per
    /// retry; removed at the next success (bounded by the Rollouts failing).
    ledger_failures: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// The name of a Rollout's ledger ConfigMap.
pub fn ledger_name(rollout: &str) -> String {
    k8s_names::fit(
        rollout,
        "-notifications",
        253,
        false,
        k8s_names::is_dns1123_subdomain,
    )
}

/// Runs both controllers until `shutdown`: over `shared`, the Rollout
/// controller's cache, when it runs in this process (each Rollout cached
/// once), else over a Rollout watch of its own.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: NotifySettings,
    metrics: OperatorMetrics,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
    shared: Option<SharedRollouts>,
) -> Result<(), NotifyError> {
    let http = deliver::client(settings.timeout).map_err(NotifyError::Http)?;
    let reporter = Reporter {
        controller: REPORTING_CONTROLLER.into(),
        instance: crate::runtime::events::reporting_instance(),
    };
    let ns = namespace.as_deref();
    // The Notifier cache of the default subscriptions; each change of a
    // Notifier re-examines every Rollout (cheap: a Rollout nothing
    // subscribes is left at once), so that a new default subscription
    // starts its Rollouts' ledgers at once.
    let (notifiers, writer) = reflector::store();
    let (tx, rx) = futures::channel::mpsc::channel::<()>(1);
    let notifier_watch = reflector(
        writer,
        watcher(
            scoped_api::<Notifier>(&client, ns),
            watcher::Config::default(),
        )
        .backoff(watch_backoff()),
    )
    .applied_objects()
    // Spec changes only: the Notifier's own status writes (Ready) must not
    // re-examine every Rollout.
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let feed = tokio::spawn(async move {
        let mut tx = tx;
        let mut stream = std::pin::pin!(notifier_watch);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "Notifier watch");
                continue;
            }
            // Full: a re-examination is already due.
            let _ = tx.try_send(());
        }
    });
    let ctx = Arc::new(Ctx {
        notifiers: notifiers.clone(),
        events: EventPublisher::new(client.clone(), reporter, "Notify"),
        client: client.clone(),
        settings: settings.clone(),
        metrics,
        http,
        ledger_failures: Default::default(),
    });
    // Each watch backs off on its own (the run loop's trigger stream never
    // waits, runtime::run): a refused or missing resource must not spin.
    let rollouts = match shared {
        Some(shared) => Controller::for_shared_stream(shared.changes, shared.store),
        None => {
            // Packed (kept as JSON, see `Packed`), as in the Rollout
            // controller's cache.
            let (rollout_store, rollout_writer) = reflector::store::<Packed<Rollout>>();
            let rollout_events = watcher(
                scoped_api::<Packed<Rollout>>(&client, ns),
                watcher::Config::default(),
            )
            .backoff(watch_backoff())
            .reflect(rollout_writer)
            .applied_objects();
            Controller::for_stream(rollout_events, rollout_store)
        }
    }
    .reconcile_all_on(rx);
    let (status_store, status_writer) = reflector::store::<Notifier>();
    let notifier_events = watcher(
        scoped_api::<Notifier>(&client, ns),
        watcher::Config::default(),
    )
    .backoff(watch_backoff())
    .modify(|n| n.managed_fields_mut().clear())
    .reflect(status_writer)
    .applied_objects();
    let notifiers = Controller::for_stream(notifier_events, status_store);
    let concurrency = settings.concurrency.max(1);
    tokio::join!(
        run::run(
            rollouts,
            NOTIFIER_CONTROLLER_NAME,
            concurrency,
            shutdown.clone(),
            deliveries::reconcile_rollout,
            error_policy,
            ctx.clone(),
        ),
        run::run(
            notifiers,
            "notifier-status",
            concurrency,
            shutdown,
            status::reconcile_notifier,
            |_, e: &NotifyError, _| {
                tracing::warn!(error = %e, "notifier status");
                Action::requeue(Duration::from_secs(5))
            },
            ctx,
        ),
    );
    feed.abort();
    Ok(())
}

fn error_policy(rollout: Arc<Packed<Rollout>>, error: &NotifyError, _: Arc<Ctx>) -> Action {
    tracing::warn!(rollout = %rollout.name_any(), error = %error, "notifications: retrying");
    Action::requeue(Duration::from_secs(2))
}
/// The API's own message for a refusal (`<message> (403 Forbidden)`), the
/// error otherwise.
pub(super) fn api_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

fn count(metrics: &OperatorMetrics, channel: &str, trigger: Trigger, result: &str) {
    metrics
        .notifications
        .get_or_create(&NotificationLabels {
            channel: channel.to_owned(),
            trigger: format!("{trigger:?}"),
            result: result.to_owned(),
        })
        .inc();
}

/// An ObjectReference to a Notifier (for tests and Events).
pub fn notifier_reference(n: &Notifier) -> ObjectReference {
    n.object_ref(&())
}
