//! Shell: the dashboard's HTTP routes. Every page renders from the shared
//! caches (never an API call per browser); `X-Fragment: 1` asks for the page's
//! content alone (what the live update swaps in); `/events` is the SSE stream
//! of "something changed".

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use kube::ResourceExt;

use super::actions::{self, Verb};
use super::cache::Cache;
use super::fleet::render_fleet;
use super::html::{Chrome, esc, main_content, page};
use super::model::{by_owner, fleet_rows, fleets};
use super::report_page::render_report;
use super::rollout_page::{RolloutView, events_of, render_rollout};
use super::series::ChartCache;
use crate::api::{ROLLOUT_LABEL, Rollout};

pub struct App {
    pub cache: Arc<Cache>,
    pub client: kube::Client,
    pub charts: ChartCache,
    pub allow_actions: bool,
    pub token: String,
    pub origins: Vec<String>,
    pub scope: Option<String>,
    pub prometheus_url: Option<String>,
}

impl App {
    fn chrome(&self) -> Chrome {
        Chrome {
            api_error: self.cache.api_error(),
            scope: self.scope.clone(),
        }
    }

    fn respond(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        title: &str,
        body: &str,
    ) -> Response {
        let chrome = self.chrome();
        let html = if headers.get("x-fragment").is_some() {
            main_content(&chrome, body)
        } else {
            page(title, &chrome, body)
        };
        (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
    }

    fn not_found(&self, headers: &HeaderMap, what: &str) -> Response {
        let body = format!(
            "<h1>Not found</h1><p id=\"not-found\">{} was not found{}.</p><p><a href=\"/\">All Rollouts</a></p>",
            esc(what),
            match &self.scope {
                Some(ns) => format!(" (this dashboard watches namespace {})", esc(ns)),
                None => String::new(),
            }
        );
        self.respond(headers, StatusCode::NOT_FOUND, "Not found", &body)
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(fleet))
        .route("/rollouts/{ns}/{name}", get(rollout))
        .route("/analyses/{ns}/{name}", get(analysis))
        .route("/confirm/{ns}/{name}/{verb}", get(confirm))
        .route("/actions/{ns}/{name}/{verb}", post(act))
        .route("/events", get(events))
        .fallback(fallback)
        .with_state(app)
}

async fn fleet(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let snapshot = app.cache.fleet_snapshot();
    let now = Utc::now();
    let body = render_fleet(&fleet_rows(&snapshot, now), now);
    app.respond(&headers, StatusCode::OK, "Rollouts", &body)
}

fn find_rollout(app: &App, ns: &str, name: &str) -> Option<Arc<Rollout>> {
    app.cache
        .snapshot()
        .rollouts
        .into_iter()
        .find(|r| r.name_any() == name && r.namespace().as_deref() == Some(ns))
}

async fn rollout(
    State(app): State<Arc<App>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.cache.snapshot();
    let Some(r) = snapshot
        .rollouts
        .iter()
        .find(|r| r.name_any() == name && r.namespace().as_deref() == Some(ns.as_str()))
    else {
        return app.not_found(&headers, &format!("Rollout {ns}/{name}"));
    };
    let owned = by_owner(&snapshot.replica_sets);
    let fleets = fleets(
        owned
            .get(&r.uid().unwrap_or_default())
            .map_or(&[][..], Vec::as_slice),
    );
    let service = |svc: &str| {
        snapshot
            .services
            .iter()
            .find(|s| s.name_any() == svc && s.namespace().as_deref() == Some(ns.as_str()))
            .cloned()
    };
    let rb = &r.spec.strategy.red_black;
    let active = service(&rb.active_service);
    let preview = rb.preview_service.as_deref().and_then(service);
    let mut analyses: Vec<_> = snapshot
        .analyses
        .iter()
        .filter(|a| {
            a.namespace().as_deref() == Some(ns.as_str())
                && a.labels().get(ROLLOUT_LABEL) == Some(&name)
        })
        .cloned()
        .collect();
    analyses.sort_by_key(|a| std::cmp::Reverse(a.metadata.creation_timestamp.clone()));
    let events = events_of(&snapshot.events, r, 12);
    let traffic = app.cache.traffic(&ns, &name);
    let body = render_rollout(&RolloutView {
        rollout: r,
        fleets: &fleets,
        active: active.as_deref(),
        preview: preview.as_deref(),
        analyses: &analyses,
        events: &events,
        traffic: &traffic,
        actions: app.allow_actions,
        now: Utc::now(),
    });
    app.respond(&headers, StatusCode::OK, &format!("{ns}/{name}"), &body)
}

async fn analysis(
    State(app): State<Arc<App>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.cache.snapshot();
    let Some(ca) = super::model::analysis_of(&snapshot, &ns, &name).cloned() else {
        return app.not_found(&headers, &format!("CanaryAnalysis {ns}/{name}"));
    };
    let charts = app
        .charts
        .charts(&app.client, &ca, app.prometheus_url.as_deref(), Utc::now())
        .await;
    let body = render_report(&ca, &charts);
    app.respond(&headers, StatusCode::OK, &format!("report {name}"), &body)
}

async fn confirm(
    State(app): State<Arc<App>>,
    Path((ns, name, verb)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !app.allow_actions {
        return app.not_found(
            &headers,
            "This page (actions are disabled; start with --allow-actions)",
        );
    }
    let Some(verb) = Verb::parse(&verb) else {
        return app.not_found(&headers, &format!("Action {verb}"));
    };
    if find_rollout(&app, &ns, &name).is_none() {
        return app.not_found(&headers, &format!("Rollout {ns}/{name}"));
    }
    let body = actions::confirm_page(&ns, &name, verb, &app.token);
    app.respond(&headers, StatusCode::OK, "Confirm", &body)
}

/// The form's `token` field (a urlencoded body).
fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

async fn act(
    State(app): State<Arc<App>>,
    Path((ns, name, verb)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let token = form_token(&body);
    if let Err(why) = actions::check(
        app.allow_actions,
        origin,
        &app.origins,
        token.as_deref(),
        &app.token,
    ) {
        tracing::warn!(%ns, %name, %verb, reason = %why.message(), "action refused");
        let body = format!(
            "<h1>Refused</h1><p class=\"refused\" id=\"result\">{}</p>",
            esc(&why.message())
        );
        return app.respond(&headers, StatusCode::FORBIDDEN, "Refused", &body);
    }
    let Some(verb) = Verb::parse(&verb) else {
        return app.not_found(&headers, &format!("Action {verb}"));
    };
    let client = &app.client;
    use crate::cli::rollouts as v;
    let result = match verb {
        Verb::Promote => v::promote(client, &ns, &name).await,
        Verb::Abort => v::abort(client, &ns, &name).await,
        Verb::Retry => v::retry(client, &ns, &name).await,
        Verb::Undo => v::undo(client, &ns, &name, None).await,
        Verb::Pause => v::pause(client, &ns, &name).await,
        Verb::Resume => v::resume(client, &ns, &name).await,
    };
    let (status, body) = match &result {
        Ok(text) => {
            tracing::info!(%ns, %name, verb = verb.as_str(), "action done");
            (
                StatusCode::OK,
                actions::result_page(&ns, &name, verb, Ok(text)),
            )
        }
        Err(err) => {
            let code = match err {
                crate::cli::rollouts::VerbError::Api {
                    source: kube::Error::Api(s),
                    ..
                } => StatusCode::from_u16(s.code).unwrap_or(StatusCode::CONFLICT),
                crate::cli::rollouts::VerbError::NotFound { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            let text = actions::chain(err);
            tracing::warn!(%ns, %name, verb = verb.as_str(), error = %text, "action refused");
            (code, actions::result_page(&ns, &name, verb, Err(&text)))
        }
    };
    app.respond(&headers, status, verb.as_str(), &body)
}

async fn events(State(app): State<Arc<App>>) -> impl IntoResponse {
    let rx = app.cache.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        // Coalesce a burst (a relist is one change per object) into one event.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let version = *rx.borrow_and_update();
        Some((
            Ok::<_, Infallible>(Event::default().event("change").data(version.to_string())),
            rx,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn fallback(
    State(app): State<Arc<App>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    app.not_found(&headers, &format!("The page {}", uri.path()))
}
