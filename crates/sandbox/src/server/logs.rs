//! `GET /api/v1/namespaces/NS/pods/NAME/log`: what `kubectl logs` reads, from
//! the process pods' output the pod controller keeps (`controllers::pod_logs`).
//!
//! Query parameters as a real API server takes them: `container` (may be left
//! out for a pod with one container), `follow`, `previous`, `tailLines`,
//! `timestamps`, `limitBytes`. `sinceSeconds`/`sinceTime` are accepted and
//! filter by the time each line was read. A simulated pod (no process) has an
//! empty log. Errors are the real server's words, status 400.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use super::state::{Req, Shared};
use super::write;
use crate::controllers::pod_logs::{ContainerLog, Line};

/// The options of one request, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
    pub since: Option<DateTime<Utc>>,
}

fn flag(value: Option<&str>, name: &str) -> ApiResult<bool> {
    match value {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value {other:?} for {name}: must be a boolean"
        ))),
    }
}

fn positive(value: Option<&str>, name: &str, min: i64) -> ApiResult<Option<i64>> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "{name}: Invalid value: {v:?}: must be greater than or equal to {min}"
            ))),
        },
    }
}

/// Reads the query (`q` looks a parameter up).
pub fn options(q: impl Fn(&str) -> Option<String>, now: DateTime<Utc>) -> ApiResult<LogOptions> {
    let since_seconds = positive(q("sinceSeconds").as_deref(), "sinceSeconds", 1)?;
    let since_time = q("sinceTime")
        .filter(|t| !t.is_empty())
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::bad_request(format!("invalid sinceTime {t:?}")))
        })
        .transpose()?;
    if since_seconds.is_some() && since_time.is_some() {
        return Err(ApiError::bad_request(
            "at most one of sinceTime or sinceSeconds may be specified",
        ));
    }
    Ok(LogOptions {
        container: q("container").filter(|c| !c.is_empty()),
        follow: flag(q("follow").as_deref(), "follow")?,
        previous: flag(q("previous").as_deref(), "previous")?,
        tail_lines: positive(q("tailLines").as_deref(), "tailLines", 0)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        timestamps: flag(q("timestamps").as_deref(), "timestamps")?,
        limit_bytes: positive(q("limitBytes").as_deref(), "limitBytes", 1)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        since: since_time.or_else(|| since_seconds.map(|s| now - chrono::Duration::seconds(s))),
    })
}

/// The container a request means: the named one, or the only one.
pub fn pick_container(pod: &Value, asked: Option<&str>) -> ApiResult<String> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let names: Vec<&str> = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let main: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match asked {
        Some(name) if names.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::bad_request(format!(
            "container {name} is not valid for pod {pod_name}"
        ))),
        None if main.len() == 1 => Ok(main[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            main.join(" ")
        ))),
    }
}

/// A container still waiting to start has no log to show (the real words).
fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    pod.pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))?
        .pointer("/state/waiting/reason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn render(line: &Line, timestamps: bool) -> String {
    if timestamps {
        format!(
            "{} {}\n",
            line.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
            line.text
        )
    } else {
        format!("{}\n", line.text)
    }
}

/// Bytes still allowed by `limitBytes`; the output is cut there.
struct Budget(Option<usize>);

impl Budget {
    fn take(&mut self, mut chunk: String) -> Option<String> {
        let Some(left) = self.0.as_mut() else {
            return Some(chunk);
        };
        if *left == 0 {
            return None;
        }
        if chunk.len() > *left {
            let mut end = *left;
            while !chunk.is_char_boundary(end) {
                end -= 1;
            }
            chunk.truncate(end);
        }
        *left -= chunk.len();
        Some(chunk)
    }
}

pub fn get(st: &Shared, req: &Req) -> ApiResult<Response> {
    let pod = write::current(st, req)?;
    let opts = options(|k| req.q(k).map(str::to_string), Utc::now())?;
    let container = pick_container(&pod, opts.container.as_deref())?;
    let pod_name = req.name();
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let log = st.logs.get(uid, &container);
    let view = log
        .as_ref()
        .and_then(|l| l.view(opts.previous, opts.tail_lines));
    if opts.previous && view.is_none() {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
        )));
    }
    if view.is_none()
        && let Some(reason) = waiting_reason(&pod, &container)
    {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {reason}"
        )));
    }
    let mut budget = Budget(opts.limit_bytes);
    let since = opts.since;
    let keep = move |l: &Line| since.is_none_or(|s| l.time >= s);
    let mut text = String::new();
    let mut last_seq = None;
    if let Some(view) = &view {
        for line in view.lines.iter().filter(|l| keep(l)) {
            text.push_str(&render(line, opts.timestamps));
        }
        last_seq = view.lines.last().map(|l| l.seq);
    }
    let head = budget.take(text).unwrap_or_default();
    let follow = match (&log, &view) {
        (Some(log), Some(view)) if opts.follow && !opts.previous && view.open => {
            Some((log.clone(), view.generation))
        }
        _ => None,
    };
    let body = match follow {
        None => Body::from(head),
        Some((log, generation)) => {
            let state = Follow {
                log: log.clone(),
                rx: log.subscribe(),
                generation,
                last_seq,
                timestamps: opts.timestamps,
                budget,
                shutdown: st.shutdown.clone(),
                done: false,
            };
            let first =
                futures::stream::once(async move { Ok::<_, Infallible>(Bytes::from(head)) });
            Body::from_stream(futures::StreamExt::chain(
                first,
                futures::stream::unfold(state, follow_step),
            ))
        }
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// A follower of one run: ends with the run (the process exited, the pod is
/// gone), with `limitBytes`, or with the sandbox.
struct Follow {
    log: Arc<ContainerLog>,
    rx: tokio::sync::watch::Receiver<u64>,
    generation: u64,
    last_seq: Option<u64>,
    timestamps: bool,
    budget: Budget,
    shutdown: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

async fn follow_step(mut f: Follow) -> Option<(Result<Bytes, Infallible>, Follow)> {
    loop {
        if f.done {
            return None;
        }
        let (lines, more) = f.log.since(f.generation, f.last_seq);
        f.done = !more;
        if let Some(last) = lines.last() {
            f.last_seq = Some(last.seq);
            let text: String = lines.iter().map(|l| render(l, f.timestamps)).collect();
            return f.budget.take(text).map(|chunk| (Ok(Bytes::from(chunk)), f));
        }
        if f.done {
            return None;
        }
        tokio::select! {
            changed = f.rx.changed() => {
                if changed.is_err() {
                    f.done = true;
                }
            }
            _ = f.shutdown.wait_for(|stopped| *stopped) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn options_parse_and_refuse() {
        let now = Utc::now();
        let o = options(
            q(&[
                ("follow", "true"),
                ("tailLines", "10"),
                ("container", "op"),
                ("sinceSeconds", "5"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && !o.previous);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(o.container.as_deref(), Some("op"));
        assert_eq!(o.since, Some(now - chrono::Duration::seconds(5)));
        for bad in [
            vec![("tailLines", "-1")],
            vec![("limitBytes", "0")],
            vec![("follow", "yes")],
            vec![("sinceSeconds", "1"), ("sinceTime", "2024-01-01T00:00:00Z")],
        ] {
            assert_eq!(options(q(&bad), now).unwrap_err().code, 400, "{bad:?}");
        }
    }

    #[test]
    fn containers_as_the_api_server_picks_them() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "op"}]}});
        assert_eq!(pick_container(&one, None).unwrap(), "op");
        assert_eq!(
            pick_container(&one, Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container(&two, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(pick_container(&two, Some("b")).unwrap(), "b");
    }

    #[test]
    fn limit_bytes_cuts_on_a_char_boundary() {
        let mut b = Budget(Some(5));
        assert_eq!(b.take("abé\n".into()).as_deref(), Some("abé\n"));
        assert_eq!(b.take("more".into()), None);
        let mut b = Budget(Some(2));
        assert_eq!(b.take("aé".into()).as_deref(), Some("a"), "é does not fit");
        let mut unlimited = Budget(None);
        assert_eq!(unlimited.take("all".into()).as_deref(), Some("all"));
    }
}
