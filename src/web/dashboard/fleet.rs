//! PURE: the fleet page — one row per Rollout (phase, live and in-progress
//! revisions, traffic split, last canary score, warm fleets with their
//! scale-down countdown, the next promotion window, age). Sorting and
//! filtering happen in the browser over `data-v` sort keys.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{esc, seg, short_duration};
use super::model::{Fleet, FleetRow};
use crate::rollout::plan::windows::WindowCheck;

fn revision_cell(fleet: Option<&Fleet>, hash: Option<&str>) -> String {
    match (fleet, hash) {
        (Some(f), _) => format!(
            "<td data-v=\"{}\">{} <span class=\"muted\">{}</span><br><span class=\"muted\">{}</span></td>",
            f.revision,
            f.revision,
            esc(&f.hash),
            esc(&f.images.join(", "))
        ),
        (None, Some(h)) => format!(
            "<td data-v=\"0\"><span class=\"muted\">{}</span></td>",
            esc(h)
        ),
        (None, None) => "<td data-v=\"0\">-</td>".to_owned(),
    }
}

fn window_text(window: WindowCheck, now: DateTime<Utc>) -> (String, i64) {
    match window {
        WindowCheck::Open => ("open".to_owned(), 0),
        WindowCheck::ClosedUntil(Some(at)) => {
            let secs = (at - now).num_seconds().max(0);
            (format!("opens in {}", short_duration(secs)), secs)
        }
        WindowCheck::ClosedUntil(None) => ("closed (no valid window)".to_owned(), i64::MAX),
    }
}

/// The fleet page's content.
pub fn render_fleet(rows: &[FleetRow], now: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(600 * rows.len() + 1024);
    let _ = write!(
        out,
        "<h1>Rollouts <span class=\"muted\">({})</span></h1>\
<p><input type=\"search\" id=\"filter\" placeholder=\"filter: name, phase, image…\" autocomplete=\"off\"></p>",
        rows.len()
    );
    if rows.is_empty() {
        out.push_str("<p id=\"empty\">No Rollouts.</p>");
    }
    out.push_str(
        "<table id=\"fleet\"><thead><tr><th>Namespace</th><th>Rollout</th><th>Phase</th>\
<th>Live revision</th><th>In progress</th><th>Traffic stable/canary/baseline</th>\
<th>Canary score</th><th>Warm fleets</th><th>Next window</th><th>Age</th></tr></thead><tbody>",
    );
    for row in rows {
        let link = format!("/rollouts/{}/{}", seg(&row.namespace), seg(&row.name));
        let score = match (&row.score, &row.analysis) {
            (Some(s), Some(a)) => {
                let (ns, name) = a.split_once('/').unwrap_or(("", a));
                format!(
                    "<a href=\"/analyses/{}/{}\" class=\"score\">{s:.1}</a>",
                    seg(ns),
                    seg(name)
                )
            }
            (Some(s), None) => format!("<span class=\"score\">{s:.1}</span>"),
            (None, Some(a)) => {
                let (ns, name) = a.split_once('/').unwrap_or(("", a));
                format!(
                    "<a href=\"/analyses/{}/{}\" class=\"score\">-</a>",
                    seg(ns),
                    seg(name)
                )
            }
            (None, None) => "-".to_owned(),
        };
        let band = row
            .band
            .as_deref()
            .map(|b| format!(" <span class=\"{b}\">{b}</span>", b = esc(b)))
            .unwrap_or_default();
        let warm: Vec<String> = row
            .warm
            .iter()
            .map(|f| {
                let left = f
                    .scale_down_at
                    .map(|at| short_duration((at - now).num_seconds().max(0)))
                    .unwrap_or_default();
                format!(
                    "rev {} ({}/{}) scale-down in {left}",
                    f.revision, f.ready, f.desired
                )
            })
            .collect();
        let (window, window_key) = window_text(row.window, now);
        let phase = if row.paused {
            format!(
                "<span class=\"{p}\">{p}</span> <span class=\"tag\">paused</span>",
                p = esc(&row.phase)
            )
        } else {
            format!("<span class=\"{p}\">{p}</span>", p = esc(&row.phase))
        };
        let _ = write!(
            out,
            "<tr data-name=\"{ns}/{name}\"><td>{ns}</td><td><a href=\"{link}\">{name}</a></td><td>{phase}</td>{live}{progress}\
<td data-v=\"{st}\">{st} / {ca} / {ba}</td><td data-v=\"{sv}\">{score}{band}</td><td>{warm}</td>\
<td data-v=\"{window_key}\">{window}</td><td data-v=\"{age}\">{age_text}</td></tr>",
            ns = esc(&row.namespace),
            name = esc(&row.name),
            live = revision_cell(row.live.as_ref(), None),
            progress = revision_cell(row.in_progress.as_ref(), row.in_progress_hash.as_deref()),
            st = row.split.stable,
            ca = row.split.canary,
            ba = row.split.baseline,
            sv = row.score.map_or(-1.0, |s| s),
            warm = esc(&warm.join("; ")),
            age = row.age_secs,
            age_text = short_duration(row.age_secs),
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::dashboard::model::Split;

    fn row(name: &str) -> FleetRow {
        FleetRow {
            namespace: "shop".into(),
            name: name.into(),
            phase: "Healthy".into(),
            paused: false,
            live: Some(Fleet {
                name: format!("{name}-abc"),
                hash: "abc".into(),
                revision: 2,
                role: None,
                images: vec!["demo:v2".into()],
                ready: 3,
                desired: 3,
                scale_down_at: None,
            }),
            in_progress: None,
            in_progress_hash: None,
            split: Split {
                stable: 100,
                canary: 0,
                baseline: 0,
            },
            score: None,
            band: None,
            analysis: None,
            warm: vec![],
            window: WindowCheck::Open,
            age_secs: 300,
        }
    }

    #[test]
    fn rows_show_revision_image_split_score_and_window() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut canarying = row("cart");
        canarying.phase = "Progressing".into();
        canarying.in_progress_hash = Some("def".into());
        canarying.split = Split {
            stable: 80,
            canary: 10,
            baseline: 10,
        };
        canarying.score = Some(42.5);
        canarying.band = Some("Fail".into());
        canarying.analysis = Some("shop/cart-3-1".into());
        canarying.window = WindowCheck::ClosedUntil(Some(now + chrono::Duration::hours(3)));
        canarying.warm = vec![Fleet {
            scale_down_at: Some(now + chrono::Duration::seconds(90)),
            revision: 1,
            ..row("x").live.unwrap()
        }];
        let html = render_fleet(&[row("web"), canarying], now);
        let cases = [
            "<h1>Rollouts <span class=\"muted\">(2)</span>",
            "<a href=\"/rollouts/shop/web\">web</a>",
            "demo:v2",
            "80 / 10 / 10",
            "<a href=\"/analyses/shop/cart-3-1\" class=\"score\">42.5</a>",
            "<span class=\"Fail\">Fail</span>",
            "opens in 3h",
            "rev 1 (3/3) scale-down in 90s",
            "<span class=\"muted\">def</span>",
            "100 / 0 / 0",
        ];
        for want in cases {
            assert!(html.contains(want), "missing {want}: {html}");
        }
    }

    #[test]
    fn escapes_names_and_says_when_empty() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(render_fleet(&[], now).contains("No Rollouts."));
        let mut r = row("a<b");
        r.paused = true;
        let html = render_fleet(&[r], now);
        assert!(html.contains("a&lt;b") && !html.contains("a<b"));
        assert!(html.contains("<span class=\"tag\">paused</span>"));
    }
}
