//! GET on a collection: selectors, `limit`/`continue` pagination, and the list
//! written straight from the stored `Arc<Value>`s without copying them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::accept::{IncludeObject, Representation};
use super::errors::{ApiError, ApiResult};
use super::respond::{json_response, raw_json};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::state::{Req, Shared};
use super::table;

/// Where a paginated list continues: the snapshot's resourceVersion and the key
/// of the last item served.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_token(t: &ContinueToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode_token(raw: &str) -> ApiResult<ContinueToken> {
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

pub fn selectors(req: &Req) -> ApiResult<Selectors> {
    Ok(Selectors {
        labels: LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(req.q("fieldSelector").unwrap_or(""))?,
    })
}

fn key_of(obj: &Value) -> (&str, &str) {
    let meta = obj.get("metadata");
    let get = |f: &str| {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    (get("namespace"), get("name"))
}

pub fn list(st: &Shared, req: &Req, repr: Representation) -> ApiResult<Response> {
    let sel = selectors(req)?;
    let limit: usize = match req.q("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?
            .max(0) as usize,
        _ => 0,
    };
    let token = match req.q("continue").filter(|c| !c.is_empty()) {
        Some(raw) => Some(decode_token(raw)?),
        None => None,
    };
    let gr = req.rt.group_resource();
    let (items, current_rv) = st.store.list(&gr, req.namespace());
    let list_rv = match &token {
        Some(t) => {
            // A continuation reads past the snapshot it started from; once the
            // history no longer covers that snapshot it is too old, like etcd compaction.
            if st.store.check_resumable(t.rv).is_err() {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            t.rv
        }
        None => current_rv,
    };
    let mut page: Vec<Arc<Value>> = Vec::new();
    let mut more = 0usize;
    for obj in items.into_iter() {
        if let Some(t) = &token {
            let (ns, name) = key_of(&obj);
            if (ns, name) <= (t.ns.as_str(), t.name.as_str()) {
                continue;
            }
        }
        if !sel.matches(&obj) {
            continue;
        }
        if limit > 0 && page.len() >= limit {
            more += 1;
            continue;
        }
        page.push(obj);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if more > 0
        && let Some(last) = page.last()
    {
        let (ns, name) = key_of(last);
        meta["continue"] = json!(encode_token(&ContinueToken {
            rv: list_rv,
            ns: ns.to_string(),
            name: name.to_string(),
        }));
        meta["remainingItemCount"] = json!(more);
    }
    Ok(match repr {
        Representation::Table => {
            let include = IncludeObject::from_query(req.q("includeObject"));
            json_response(StatusCode::OK, &table::table(&req.rt, &page, include, meta))
        }
        Representation::Metadata => {
            let items: Vec<Value> = page.iter().map(|o| table::partial_metadata(o)).collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": items,
                }),
            )
        }
        Representation::Full => raw_json(StatusCode::OK, full_list(&req.rt, &page, &meta)),
    })
}

/// `{"kind":"XList",...,"items":[...]}` serialized item by item from the shared objects.
fn full_list(rt: &crate::registry::ResourceType, items: &[Arc<Value>], meta: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + items.len() * 512);
    let head = json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta});
    let head = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
    // Reopen the header object to append `items`.
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, obj) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, super::respond::in_version(rt, obj).as_ref());
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = ContinueToken {
            rv: 42,
            ns: "default".into(),
            name: "cm-7".into(),
        };
        assert_eq!(decode_token(&encode_token(&t)).unwrap(), t);
        assert_eq!(decode_token("%%%").unwrap_err().code, 400);
    }
}
