//! The HTTP side of the data plane: each request to a listener is routed (see
//! `backends`) and forwarded to one pod process; failures become plain-text
//! answers that say what is missing, never a hang.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::RngExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::Target;
use super::backends::{self, Backend, Unroutable};
use crate::store::Store;

/// Names the pod that answered, for people and tests.
pub const POD_HEADER: &str = "x-sandbox-pod";

pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

pub(crate) struct Proxy {
    store: Arc<Store>,
    client: Client<HttpConnector, Incoming>,
    timeout: Duration,
}

/// Connection-level headers a proxy must not forward (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn text(status: StatusCode, message: String) -> Response<ProxyBody> {
    tracing::debug!(%status, %message, "data plane answered itself");
    let mut response = Response::new(
        Full::new(Bytes::from(message + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Proxy {
    pub(crate) fn new(store: Arc<Store>, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // Pods come and go; do not keep idle connections to dead ports long.
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        Self {
            store,
            client,
            timeout,
        }
    }

    /// The pod for this request, chosen at random among the ready ones.
    fn pick(&self, target: &Target, path: &str) -> Result<Backend, Unroutable> {
        let mut rng = rand::rng();
        let (namespace, service, port) = match target {
            Target::Service { namespace, name } => (namespace, name.clone(), None),
            Target::HttpRoute { namespace, name } => {
                let Some(route) = self.store.get(&backends::httproutes(), namespace, name) else {
                    return Err(Unroutable {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        message: format!("httproute {namespace}/{name} not found"),
                    });
                };
                let refs = backends::route_backends(&route, path)?;
                let chosen =
                    backends::choose_weighted(&refs, rng.random::<f64>()).ok_or_else(|| {
                        Unroutable {
                            status: StatusCode::INTERNAL_SERVER_ERROR,
                            message: "no backendRef with a weight above 0".into(),
                        }
                    })?;
                (namespace, chosen.service.clone(), chosen.port)
            }
        };
        let ready = backends::service_backends(&self.store, namespace, &service, port)?;
        let i = rng.random_range(0..ready.len());
        Ok(ready[i].clone())
    }

    async fn handle(&self, target: &Target, req: Request<Incoming>) -> Response<ProxyBody> {
        let backend = match self.pick(target, req.uri().path()) {
            Ok(b) => b,
            Err(u) => return text(u.status, u.message),
        };
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        parts.uri = match format!("http://{}{path}", backend.addr).parse::<Uri>() {
            Ok(uri) => uri,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request path: {e}")),
        };
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(host) = HeaderValue::from_str(&backend.addr.to_string()) {
            parts.headers.insert(header::HOST, host);
        }
        let request = Request::from_parts(parts, body);
        let sent = tokio::time::timeout(self.timeout, self.client.request(request)).await;
        let mut response = match sent {
            Ok(Ok(response)) => response.map(|b| b.boxed()),
            Ok(Err(e)) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("pod {} at {} failed: {e}", backend.pod, backend.addr),
                );
            }
            Err(_) => {
                return text(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "pod {} at {} did not answer within {:?}",
                        backend.pod, backend.addr, self.timeout
                    ),
                );
            }
        };
        strip_hop_by_hop(response.headers_mut());
        if let Ok(pod) = HeaderValue::from_str(&backend.pod) {
            response.headers_mut().insert(POD_HEADER, pod);
        }
        response
    }
}

/// Accepts connections for `target` until the task is aborted; dropping the
/// task drops the `JoinSet`, which aborts every open connection with it.
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<Proxy>, target: Target) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let proxy = proxy.clone();
                    let target = target.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let proxy = proxy.clone();
                            let target = target.clone();
                            async move { Ok::<_, Infallible>(proxy.handle(&target, req).await) }
                        });
                        if let Err(e) = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%e, "data plane connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%target, %e, "data plane accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
