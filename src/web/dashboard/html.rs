//! PURE: HTML escaping, the page shell (inline CSS and script, built into the
//! binary: no CDN, no network at run time) and small formatting helpers the
//! page renderers share.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// Escapes text for an HTML text node or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one URL path segment (names are DNS labels, but a 404
/// page echoes whatever was asked for).
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// "42s", "5m", "3h", "2d" since `then` (or until, when `then` is later).
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    short_duration((now - then).num_seconds().abs())
}

pub fn short_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A score with one decimal, or "-".
pub fn score(s: Option<f64>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"))
}

/// What every page shows above its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chrome {
    /// The API cannot be reached (the last watch error), shown as a banner.
    pub api_error: Option<String>,
    /// The namespace the dashboard watches (None: all).
    pub scope: Option<String>,
}

/// The banner and the page's own content: what a live update replaces.
pub fn main_content(chrome: &Chrome, body: &str) -> String {
    let mut out = String::new();
    if let Some(err) = &chrome.api_error {
        let _ = write!(
            out,
            "<div class=\"banner\" id=\"api-banner\">The Kubernetes API cannot be reached; showing the last known state. ({})</div>",
            esc(err)
        );
    }
    out.push_str(body);
    out
}

/// A whole page: the shell around `main_content`.
pub fn page(title: &str, chrome: &Chrome, body: &str) -> String {
    let scope = chrome.scope.as_deref().map_or_else(
        || "all namespaces".to_owned(),
        |ns| format!("namespace {ns}"),
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · redblack</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>{CSS}</style></head>\
<body><header><a href=\"/\" class=\"brand\">redblack</a> <span class=\"muted\">{scope}</span>\
<span id=\"live\" class=\"live\">live</span></header>\
<div id=\"conn-banner\" class=\"banner\" hidden>Connection to the dashboard lost; retrying…</div>\
<main id=\"main\">{main}</main><script>{SCRIPT}</script></body></html>\n",
        title = esc(title),
        scope = esc(&scope),
        main = main_content(chrome, body),
    )
}

/// Styles: one small sheet, no web fonts.
pub const CSS: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d232a;color:#fff;padding:8px 16px}header a{color:#fff;text-decoration:none;font-weight:600}
.muted{color:#8a96a3}.live{float:right;font-size:12px;color:#7ddc8a}.live.off{color:#e0a040}
main{padding:12px 16px}h1{font-size:20px;margin:4px 0 8px}h2{font-size:16px;margin:16px 0 6px}
table{border-collapse:collapse;background:#fff;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef0f3;cursor:pointer;white-space:nowrap}td.num{text-align:right}
.banner{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin-bottom:8px}
.Pass,.Healthy,.Promoted,.Passed{color:#11813a}.Fail,.Failed,.Degraded,.Aborted,.High,.Low,.Error,.InvalidSpec,.NodataFailMetric{color:#c0262d;font-weight:600}
.Marginal,.Paused,.Nodata,.Inconclusive{color:#b26b00}.Progressing,.Analysing{color:#1f5fbf}
.tag{display:inline-block;border:1px solid #c5ccd4;border-radius:3px;padding:0 4px;margin-right:4px;font-size:12px}
.metric{background:#fff;border:1px solid #e3e6ea;margin:8px 0;padding:8px}.metric h3{margin:0 0 4px;font-size:15px}
.nums{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap}svg.chart{background:#fff;border:1px solid #e3e6ea}
.legend span{margin-right:12px}.c{color:#c0262d}.b{color:#1f5fbf}
form.inline{display:inline}button{margin-right:4px}.refused{background:#fde2e2;border:1px solid #c0262d;padding:6px 10px}
.ok{background:#e2f5e6;border:1px solid #11813a;padding:6px 10px}input[type=search]{width:260px}
"#;

/// The page's one script: live updates over server-sent events (the
/// dashboard fans its watches out; the browser never asks the API), and the
/// fleet table's sorting and filtering, kept across updates.
pub const SCRIPT: &str = r#"
(function(){
var sortCol=null,sortDir=1;
function applyTable(){
  var t=document.getElementById('fleet');if(!t)return;
  var f=document.getElementById('filter');var q=f?f.value.toLowerCase():'';
  var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
  rows.forEach(function(r){r.hidden=q!==''&&r.textContent.toLowerCase().indexOf(q)<0;});
  if(sortCol!==null){
    rows.sort(function(a,b){
      var x=a.cells[sortCol].getAttribute('data-v')||a.cells[sortCol].textContent;
      var y=b.cells[sortCol].getAttribute('data-v')||b.cells[sortCol].textContent;
      var nx=parseFloat(x),ny=parseFloat(y);
      if(!isNaN(nx)&&!isNaN(ny))return (nx-ny)*sortDir;
      return x.localeCompare(y)*sortDir;});
    rows.forEach(function(r){body.appendChild(r);});
  }
}
function wire(){
  var t=document.getElementById('fleet');
  if(t){Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
    th.onclick=function(){sortDir=(sortCol===i)?-sortDir:1;sortCol=i;applyTable();};});}
  var f=document.getElementById('filter');if(f){f.oninput=applyTable;}
  var m=document.getElementById('mfilter');
  if(m){m.onchange=function(){var v=m.value;
    Array.prototype.forEach.call(document.querySelectorAll('.metric'),function(d){
      d.hidden=v!==''&&d.getAttribute('data-class')!==v;});};m.onchange();}
  applyTable();
}
var inflight=false,again=false;
function refresh(){
  if(inflight){again=true;return;}inflight=true;
  var keepF=document.getElementById('filter'),fv=keepF?keepF.value:null;
  var keepM=document.getElementById('mfilter'),mv=keepM?keepM.value:null;
  fetch(location.pathname+location.search,{headers:{'X-Fragment':'1'}}).then(function(r){return r.text();})
  .then(function(html){
    document.getElementById('main').innerHTML=html;
    var f=document.getElementById('filter');if(f&&fv!==null)f.value=fv;
    var m=document.getElementById('mfilter');if(m&&mv!==null)m.value=mv;
    wire();document.body.setAttribute('data-updates',String((+document.body.getAttribute('data-updates')||0)+1));
  }).catch(function(){}).then(function(){inflight=false;if(again){again=false;refresh();}});
}
wire();
if(window.EventSource){
  var es=new EventSource('/events');
  var live=document.getElementById('live'),cb=document.getElementById('conn-banner');
  es.addEventListener('change',refresh);
  es.onopen=function(){live.className='live';live.textContent='live';cb.hidden=true;};
  es.onerror=function(){live.className='live off';live.textContent='reconnecting';cb.hidden=false;};
}
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        let cases = [
            ("plain", "plain"),
            ("<script>", "&lt;script&gt;"),
            ("a&b", "a&amp;b"),
            ("\"x'", "&quot;x&#39;"),
        ];
        for (input, want) in cases {
            assert_eq!(esc(input), want, "{input}");
        }
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(seg("web-1.a"), "web-1.a");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn short_durations() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (7200, "2h"),
            (200_000, "2d"),
        ] {
            assert_eq!(short_duration(secs), want);
        }
    }

    #[test]
    fn page_shows_the_api_banner_only_when_the_api_is_down() {
        let up = page("Fleet", &Chrome::default(), "<p>x</p>");
        assert!(!up.contains("id=\"api-banner\""));
        let down = Chrome {
            api_error: Some("connection refused <x>".into()),
            scope: Some("shop".into()),
        };
        let html = page("Fleet", &down, "<p>x</p>");
        assert!(html.contains("id=\"api-banner\""));
        assert!(html.contains("connection refused &lt;x&gt;"));
        assert!(html.contains("namespace shop"));
    }
}
