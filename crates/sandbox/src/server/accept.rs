//! Content negotiation: which representation a client asked for in `Accept`.
//! Protobuf is never served; clients that ask for it always offer JSON too.

use axum::http::{HeaderMap, header};

use super::errors::{ApiError, ApiResult};

/// How much of each object a Table row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Full,
    /// `meta.k8s.io/v1` Table (kubectl get).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
}

/// Picks the first media type in `Accept` the sandbox can produce.
pub fn negotiate(headers: &HeaderMap) -> ApiResult<Representation> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Representation::Full);
    };
    if accept.trim().is_empty() {
        return Ok(Representation::Full);
    }
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        let mut as_ = None;
        let mut group = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(v.trim()),
                    "g" => group = Some(v.trim()),
                    _ => {}
                }
            }
        }
        let json_like = matches!(
            base,
            "application/json" | "*/*" | "application/*" | "application/yaml"
        );
        if !json_like {
            continue;
        }
        match (as_, group) {
            (None, _) => return Ok(Representation::Full),
            (Some("Table"), Some("meta.k8s.io") | None) => return Ok(Representation::Table),
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io") | None,
            ) => return Ok(Representation::Metadata),
            // e.g. aggregated discovery (`as=APIGroupDiscoveryList`): not offered.
            _ => continue,
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, application/yaml (asked for {accept})"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(accept: &str) -> ApiResult<Representation> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        negotiate(&h)
    }

    #[test]
    fn picks_first_supported() {
        assert_eq!(
            with("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").unwrap(),
            Representation::Table
        );
        assert_eq!(
            with("application/vnd.kubernetes.protobuf,application/json").unwrap(),
            Representation::Full
        );
        assert_eq!(
            with("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json").unwrap(),
            Representation::Full
        );
        assert_eq!(
            with("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").unwrap(),
            Representation::Metadata
        );
        assert_eq!(with("text/html").unwrap_err().code, 406);
    }
}
