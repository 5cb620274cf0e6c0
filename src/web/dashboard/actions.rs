//! Actions (only with `--allow-actions`): promote, abort, retry, undo, pause,
//! resume — the CLI verbs' own code, run with the caller's credentials. PURE
//! here: which verb, the cross-site checks (the per-session token and the
//! Origin), the confirmation and result pages. A refusal (RBAC, or the verb's
//! own "nothing to promote") is shown with the API's message.

use std::fmt::Write as _;

use super::html::{esc, seg};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Promote,
    Abort,
    Retry,
    Undo,
    Pause,
    Resume,
}

impl Verb {
    pub fn parse(text: &str) -> Option<Verb> {
        Some(match text {
            "promote" => Verb::Promote,
            "abort" => Verb::Abort,
            "retry" => Verb::Retry,
            "undo" => Verb::Undo,
            "pause" => Verb::Pause,
            "resume" => Verb::Resume,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Promote => "promote",
            Verb::Abort => "abort",
            Verb::Retry => "retry",
            Verb::Undo => "undo",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
        }
    }

    /// What the confirmation asks.
    fn question(self) -> &'static str {
        match self {
            Verb::Promote => {
                "Approve the current revision? Traffic switches to it once its fleet is available."
            }
            Verb::Abort => {
                "Abandon the current, not yet live revision? Traffic stays on the stable revision."
            }
            Verb::Retry => "Retry the aborted revision? Its fleet is brought up again.",
            Verb::Undo => {
                "Go back to the previous revision? Its pod template is written back into the spec."
            }
            Verb::Pause => {
                "Pause the Rollout? No new fleet is brought up and traffic is not switched."
            }
            Verb::Resume => "Resume the Rollout?",
        }
    }
}

/// Why a POST was refused before reaching the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forbidden {
    Disabled,
    Origin(Option<String>),
    Token,
}

impl Forbidden {
    pub fn message(&self) -> String {
        match self {
            Forbidden::Disabled => {
                "actions are disabled: start the dashboard with --allow-actions".into()
            }
            Forbidden::Origin(Some(o)) => format!("cross-origin request refused (Origin {o})"),
            Forbidden::Origin(None) => "request refused: no Origin header".into(),
            Forbidden::Token => "request refused: missing or wrong session token".into(),
        }
    }
}

/// Equal in time independent of where they differ (the token is a secret).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// May this POST act? `origins` are the dashboard's own (scheme://host:port).
pub fn check(
    allow_actions: bool,
    origin: Option<&str>,
    origins: &[String],
    token: Option<&str>,
    session_token: &str,
) -> Result<(), Forbidden> {
    if !allow_actions {
        return Err(Forbidden::Disabled);
    }
    match origin {
        Some(o) if origins.iter().any(|mine| mine == o) => {}
        other => return Err(Forbidden::Origin(other.map(str::to_owned))),
    }
    match token {
        Some(t) if same(t, session_token) => Ok(()),
        _ => Err(Forbidden::Token),
    }
}

/// The dashboard's own origins for a listen address (the names a browser on
/// this host may use for it).
pub fn own_origins(addr: std::net::SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        origins.push(format!("http://localhost:{port}"));
        origins.push(format!("http://127.0.0.1:{port}"));
        origins.push(format!("http://[::1]:{port}"));
    }
    origins.sort();
    origins.dedup();
    origins
}

pub fn confirm_page(ns: &str, name: &str, verb: Verb, token: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>{verb} {ns}/{name}?</h1><p>{q}</p>\
<form method=\"post\" action=\"/actions/{sns}/{sname}/{verb}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\" id=\"confirm\">Yes, {verb}</button> <a href=\"/rollouts/{sns}/{sname}\">Cancel</a></form>",
        verb = verb.as_str(),
        ns = esc(ns),
        name = esc(name),
        sns = seg(ns),
        sname = seg(name),
        q = verb.question(),
        token = esc(token),
    );
    out
}

/// The result of an action: done (the verb's own words) or refused (the
/// error chain, the API's message included).
pub fn result_page(ns: &str, name: &str, verb: Verb, result: Result<&str, &str>) -> String {
    let (class, text) = match result {
        Ok(text) => ("ok", text),
        Err(text) => ("refused", text),
    };
    format!(
        "<h1>{verb} {ns}/{name}</h1><p class=\"{class}\" id=\"result\">{}</p><p><a href=\"/rollouts/{}/{}\">Back to the Rollout</a></p>",
        esc(text.trim()),
        seg(ns),
        seg(name),
        verb = verb.as_str(),
        ns = esc(ns),
        name = esc(name),
    )
}

/// An error and its causes on one line ("x: caused by y").
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_checks() {
        let origins = own_origins("127.0.0.1:8080".parse().unwrap());
        type Case<'a> = (
            bool,
            Option<&'a str>,
            Option<&'a str>,
            Result<(), Forbidden>,
        );
        let cases: [Case; 6] = [
            (true, Some("http://127.0.0.1:8080"), Some("s3cret"), Ok(())),
            (true, Some("http://localhost:8080"), Some("s3cret"), Ok(())),
            (
                false,
                Some("http://127.0.0.1:8080"),
                Some("s3cret"),
                Err(Forbidden::Disabled),
            ),
            (
                true,
                Some("http://evil.example"),
                Some("s3cret"),
                Err(Forbidden::Origin(Some("http://evil.example".into()))),
            ),
            (true, None, Some("s3cret"), Err(Forbidden::Origin(None))),
            (
                true,
                Some("http://127.0.0.1:8080"),
                Some("s3creT"),
                Err(Forbidden::Token),
            ),
        ];
        for (allow, origin, token, want) in cases {
            assert_eq!(
                check(allow, origin, &origins, token, "s3cret"),
                want,
                "{origin:?} {token:?}"
            );
        }
        assert_eq!(
            check(
                true,
                Some("http://127.0.0.1:8080"),
                &origins,
                None,
                "s3cret"
            ),
            Err(Forbidden::Token)
        );
    }

    #[test]
    fn verbs_round_trip_and_pages_escape() {
        for v in ["promote", "abort", "retry", "undo", "pause", "resume"] {
            assert_eq!(Verb::parse(v).map(Verb::as_str), Some(v));
        }
        assert_eq!(Verb::parse("delete"), None);
        let page = confirm_page("shop", "web", Verb::Promote, "tok");
        assert!(page.contains("action=\"/actions/shop/web/promote\""));
        assert!(page.contains("name=\"token\" value=\"tok\""));
        let refused = result_page(
            "shop",
            "web",
            Verb::Abort,
            Err("forbidden: <user> cannot patch"),
        );
        assert!(refused.contains("class=\"refused\""));
        assert!(refused.contains("&lt;user&gt;"));
    }
}
