//! PURE: the Rollout page — the revision tree (fleets with ready/desired,
//! role, image, ACTIVE/preview, warm until), the traffic split over the last
//! hour (as the dashboard saw it), conditions, the history of promotions,
//! rollbacks and aborts, its canary analyses, the promotion windows and recent
//! Events. Actions (when allowed) link to a confirmation page.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::ResourceExt;

use super::chart::{Series, line_chart};
use super::html::{ago, esc, score, seg, short_duration, time};
use super::model::{Fleet, Split, split};
use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{POD_TEMPLATE_HASH_LABEL, Rollout};
use crate::rollout::plan::windows::{WindowCheck, check};

/// The verbs the dashboard can perform, in button order.
pub const VERBS: [&str; 6] = ["promote", "abort", "retry", "undo", "pause", "resume"];

/// What the Rollout page is rendered from.
pub struct RolloutView<'a> {
    pub rollout: &'a Rollout,
    pub fleets: &'a [Fleet],
    pub active: Option<&'a Service>,
    pub preview: Option<&'a Service>,
    pub analyses: &'a [Arc<CanaryAnalysis>],
    pub events: &'a [Arc<K8sEvent>],
    /// (time, split) samples the dashboard recorded, oldest first.
    pub traffic: &'a [(DateTime<Utc>, Split)],
    pub actions: bool,
    pub now: DateTime<Utc>,
}

fn selected(svc: Option<&Service>) -> Option<String> {
    svc?.spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .cloned()
}

/// The traffic history as a chart: stable and canary share over the last hour.
fn traffic_chart(view: &RolloutView<'_>) -> String {
    // The last hour, or since the first sample when the dashboard has seen less.
    let hour_ago = view.now - chrono::Duration::hours(1);
    let from = view
        .traffic
        .iter()
        .map(|(t, _)| *t)
        .find(|t| *t >= hour_ago)
        .map_or(hour_ago, |first| {
            first.min(view.now - chrono::Duration::seconds(60))
        });
    let mut points: Vec<(DateTime<Utc>, Split)> = view
        .traffic
        .iter()
        .filter(|(t, _)| *t >= from)
        .copied()
        .collect();
    // The current split holds until now.
    points.push((view.now, split(view.rollout)));
    // A step line: each split holds until the next one.
    let xy = |f: fn(&Split) -> i32| -> Vec<(f64, f64)> {
        let x = |t: DateTime<Utc>| (t.max(from) - from).num_milliseconds() as f64 / 1000.0;
        let mut out = Vec::with_capacity(points.len() * 2);
        for (i, (t, s)) in points.iter().enumerate() {
            if i > 0 {
                out.push((x(*t), f64::from(f(&points[i - 1].1))));
            }
            out.push((x(*t), f64::from(f(s))));
        }
        out
    };
    let stable = Series {
        label: "stable %".into(),
        class: "b".into(),
        points: xy(|s| s.stable),
    };
    let canary = Series {
        label: "canary %".into(),
        class: "c".into(),
        points: xy(|s| s.canary),
    };
    let span = (view.now - from).num_milliseconds() as f64 / 1000.0;
    line_chart(
        &[stable, canary],
        640,
        120,
        Some((0.0, span)),
        Some((0.0, 100.0)),
    )
}

pub fn render_rollout(view: &RolloutView<'_>) -> String {
    let r = view.rollout;
    let ns = r.namespace().unwrap_or_default();
    let name = r.name_any();
    let status = r.status.clone().unwrap_or_default();
    let now = view.now;
    let mut out = String::new();
    let phase = status
        .phase
        .map_or_else(|| "-".to_owned(), |p| format!("{p:?}"));
    let _ = write!(
        out,
        "<h1>Rollout {} / {} <span class=\"{phase}\" id=\"phase\">{phase}</span>{}</h1>\
<p class=\"muted\">generation {} (observed {}) · {} replicas desired · live fleet {} ready / {} available</p>",
        esc(&ns),
        esc(&name),
        if r.spec.paused {
            " <span class=\"tag\">paused</span>"
        } else {
            ""
        },
        r.metadata.generation.unwrap_or(0),
        status.observed_generation.unwrap_or(0),
        r.spec.replicas,
        status.ready_replicas,
        status.available_replicas,
    );
    if view.actions {
        out.push_str("<p id=\"actions\">");
        for verb in VERBS {
            let _ = write!(
                out,
                "<a class=\"action\" id=\"action-{verb}\" href=\"/confirm/{}/{}/{verb}\"><button>{verb}</button></a>",
                seg(&ns),
                seg(&name)
            );
        }
        out.push_str("</p>");
    }
    if let Some(abort) = &status.abort {
        let _ = write!(
            out,
            "<p class=\"refused\">Revision {} was aborted ({:?}) {} ago; traffic stays on the stable revision.</p>",
            esc(&abort.revision),
            abort.reason,
            ago(abort.at, now)
        );
    }

    // The revision tree.
    let active = selected(view.active);
    let preview = selected(view.preview);
    let current = status.current_revision.clone();
    out.push_str("<h2>Revisions</h2><table id=\"revisions\"><thead><tr><th>Revision</th><th>Fleet</th><th>Role</th><th>Image</th><th>Ready/desired</th><th></th></tr></thead><tbody>");
    if view.fleets.is_empty() {
        out.push_str("<tr><td colspan=\"6\">No fleets yet.</td></tr>");
    }
    for f in view.fleets {
        let mut tags = Vec::new();
        if active.as_deref() == Some(f.hash.as_str())
            && f.role
                .as_deref()
                .is_none_or(|r| r != "canary" && r != "baseline")
        {
            tags.push("<span class=\"tag Healthy\">● ACTIVE</span>".to_owned());
        }
        if preview.as_deref() == Some(f.hash.as_str()) {
            tags.push("<span class=\"tag\">preview</span>".to_owned());
        }
        if current.as_deref() == Some(f.hash.as_str()) {
            tags.push("<span class=\"tag\">current</span>".to_owned());
        }
        if let Some(at) = f.scale_down_at.filter(|_| f.desired > 0) {
            tags.push(format!(
                "<span class=\"tag\">warm until {} (in {})</span>",
                time(at),
                short_duration((at - now).num_seconds().max(0))
            ));
        }
        let _ = write!(
            out,
            "<tr><td>{} <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
            if f.revision > 0 {
                f.revision.to_string()
            } else {
                "-".to_owned()
            },
            esc(&f.hash),
            esc(&f.name),
            esc(f.role.as_deref().unwrap_or("-")),
            esc(&f.images.join(", ")),
            f.ready,
            f.desired,
            tags.join(" ")
        );
    }
    out.push_str("</tbody></table>");
    let rb = &r.spec.strategy.red_black;
    let service_line =
        |role: &str, name: &str, svc: Option<&Service>, hash: Option<&String>| match (svc, hash) {
            (None, _) => format!("{role} Service {name}: not found"),
            (Some(_), None) => format!("{role} Service {name} selects every fleet of the app"),
            (Some(_), Some(h)) => format!("{role} Service {name} → {h}"),
        };
    let _ = write!(
        out,
        "<p id=\"services\">{}",
        esc(&service_line(
            "active",
            &rb.active_service,
            view.active,
            active.as_ref()
        ))
    );
    if let Some(p) = &rb.preview_service {
        let _ = write!(
            out,
            "<br>{}",
            esc(&service_line("preview", p, view.preview, preview.as_ref()))
        );
    }
    out.push_str("</p>");

    let s = split(r);
    let _ = write!(
        out,
        "<h2>Traffic <span class=\"muted\">(now: stable {} %, canary {} %, baseline {} %; last hour as this dashboard saw it)</span></h2>{}",
        s.stable,
        s.canary,
        s.baseline,
        traffic_chart(view)
    );

    if let Some(c) = &status.canary {
        let link = c.analysis_name.as_deref().map_or_else(String::new, |a| {
            format!(
                " · <a href=\"/analyses/{}/{}\">canary report {}</a>",
                seg(&ns),
                seg(a),
                esc(a)
            )
        });
        let _ = write!(
            out,
            "<h2>Canary</h2><p id=\"canary\">{} · attempt {} · score <span class=\"score\">{}</span>{link}{}</p>",
            c.phase.map_or_else(
                || "-".to_owned(),
                |p| format!("<span class=\"{p:?}\">{p:?}</span>")
            ),
            c.attempt,
            score(c.score),
            c.message
                .as_deref()
                .map(|m| format!("<br>{}", esc(m)))
                .unwrap_or_default()
        );
    }

    out.push_str("<h2>Conditions</h2><table><thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th><th>Since</th></tr></thead><tbody>");
    for c in &status.conditions {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{} ago</td></tr>",
            esc(&c.type_),
            c.status,
            esc(&c.reason),
            esc(&c.message),
            ago(c.last_transition_time, now)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>History</h2><table id=\"history\"><thead><tr><th>When</th><th>Revision</th><th>Outcome</th><th>Score</th><th>Images</th></tr></thead><tbody>");
    for h in status.history.iter().rev() {
        let _ = write!(
            out,
            "<tr><td>{} ({} ago)</td><td>{} <span class=\"muted\">{}</span></td><td class=\"{o:?}\">{o:?}</td><td>{}</td><td>{}</td></tr>",
            time(h.time),
            ago(h.time, now),
            h.revision,
            esc(&h.hash),
            score(h.score),
            esc(&h.images.join(", ")),
            o = h.outcome,
        );
    }
    out.push_str("</tbody></table>");

    if !view.analyses.is_empty() {
        out.push_str("<h2>Analyses</h2><ul>");
        for a in view.analyses {
            let st = a.status.clone().unwrap_or_default();
            let _ = write!(
                out,
                "<li><a href=\"/analyses/{}/{}\">{}</a> {} · score {}</li>",
                seg(&ns),
                seg(&a.name_any()),
                esc(&a.name_any()),
                st.phase.map_or("-", |p| p.as_str()),
                score(st.score)
            );
        }
        out.push_str("</ul>");
    }

    let windows = &r.spec.strategy.red_black.promotion_windows;
    if !windows.is_empty() {
        let next = match check(windows, now) {
            WindowCheck::Open => "a window is open now".to_owned(),
            WindowCheck::ClosedUntil(Some(at)) => format!(
                "closed; the next window opens {} (in {})",
                time(at),
                short_duration((at - now).num_seconds().max(0))
            ),
            WindowCheck::ClosedUntil(None) => {
                "closed; no valid window opens in the next 8 days".to_owned()
            }
        };
        let _ = write!(out, "<h2>Promotion windows</h2><p>{}</p><ul>", esc(&next));
        for w in windows {
            let _ = write!(
                out,
                "<li>{} {}–{} {}</li>",
                esc(&w
                    .days
                    .iter()
                    .map(|d| format!("{d:?}"))
                    .collect::<Vec<_>>()
                    .join(",")),
                esc(&w.start),
                esc(&w.end),
                esc(&w.time_zone)
            );
        }
        out.push_str("</ul>");
    }

    out.push_str("<h2>Events</h2><table id=\"events\"><thead><tr><th>When</th><th>Type</th><th>Reason</th><th>Message</th></tr></thead><tbody>");
    for e in view.events {
        let when = e
            .event_time
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| {
                e.deprecated_last_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&when),
            esc(e.type_.as_deref().unwrap_or("")),
            esc(e.reason.as_deref().unwrap_or("")),
            esc(e.note.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The Events of one Rollout, newest last, at most `limit`.
pub fn events_of(events: &[Arc<K8sEvent>], rollout: &Rollout, limit: usize) -> Vec<Arc<K8sEvent>> {
    let uid = rollout.uid();
    let mut mine: Vec<Arc<K8sEvent>> = events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.clone()) == uid && uid.is_some())
        .cloned()
        .collect();
    mine.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    let skip = mine.len().saturating_sub(limit);
    mine.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout() -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "generation": 2},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "demo:v2"}]}},
                "strategy": {"redBlack": {"activeService": "web",
                    "promotionWindows": [{"days": ["Mon"], "start": "09:00", "end": "10:00", "timeZone": "UTC"}]}}},
            "status": {"phase": "Healthy", "observedGeneration": 2, "stableRevision": "abc", "currentRevision": "abc",
                "history": [{"revision": 2, "hash": "abc", "images": ["demo:v2"], "outcome": "Promoted", "score": 91.0, "time": "2023-11-14T22:00:00Z"},
                            {"revision": 3, "hash": "def", "images": ["demo:v3"], "outcome": "Failed", "score": 20.0, "time": "2023-11-14T22:10:00Z"}],
                "conditions": [{"type": "Available", "status": "True", "reason": "FleetAvailable", "message": "3 of 3 <ready>", "lastTransitionTime": "2023-11-14T22:00:00Z"}]}
        }))
        .unwrap()
    }

    fn fleet(rev: i64, hash: &str, down: Option<DateTime<Utc>>) -> Fleet {
        Fleet {
            name: format!("web-{hash}"),
            hash: hash.into(),
            revision: rev,
            role: None,
            images: vec![format!("demo:v{rev}")],
            ready: 3,
            desired: 3,
            scale_down_at: down,
        }
    }

    fn service(hash: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: hash}}
        }))
        .unwrap()
    }

    #[test]
    fn shows_tree_history_conditions_windows_and_actions_only_when_allowed() {
        let now = DateTime::parse_from_rfc3339("2023-11-14T22:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = rollout();
        let fleets = [
            fleet(2, "abc", None),
            fleet(1, "old", Some(now + chrono::Duration::minutes(5))),
        ];
        let svc = service("abc");
        let mut view = RolloutView {
            rollout: &r,
            fleets: &fleets,
            active: Some(&svc),
            preview: None,
            analyses: &[],
            events: &[],
            traffic: &[],
            actions: false,
            now,
        };
        let html = render_rollout(&view);
        for want in [
            "Rollout shop / web",
            "<span class=\"Healthy\" id=\"phase\">Healthy</span>",
            "● ACTIVE",
            "warm until 2023-11-14 22:25:00Z (in 5m)",
            "<td class=\"Failed\">Failed</td>",
            "3 of 3 &lt;ready&gt;",
            "Promotion windows",
            "the next window opens",
            "<svg",
        ] {
            assert!(html.contains(want), "missing {want}: {html}");
        }
        // History newest first.
        assert!(html.find("demo:v3").unwrap() < html.find("Promoted").unwrap());
        assert!(!html.contains("id=\"actions\""));
        view.actions = true;
        let html = render_rollout(&view);
        assert!(
            html.contains("href=\"/confirm/shop/web/promote\""),
            "{html}"
        );
        assert!(html.contains("href=\"/confirm/shop/web/undo\""));
    }
}
