//! The HTTP surface beside `/ws`: `GET /healthz`, `GET /readyz`,
//! `GET /metrics` and the server API under `/api/` ([`api`]).
//!
//! The relay's listener reads the first bytes of each connection: a
//! `GET /ws` goes to the WebSocket upgrade as before, anything else to
//! hyper, which serves these paths (with `[admin] listen`, on their own
//! address, and the WebSocket listener answers only `/ws`). A host that
//! runs its own hyper or axum server mounts the same handlers with
//! [`crate::Relay::handle_http`].

pub mod api;
mod idempotency;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) use idempotency::Idempotency;

use crate::error::ErrorCode;
use crate::metrics::exposition::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use crate::metrics::Endpoint;
use crate::server::Shared;

/// The body of every response of the HTTP surface.
pub type Body = Full<Bytes>;

/// What a listener serves besides `/ws`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// Health, metrics and the API.
    All,
    /// Nothing: `[admin] listen` serves them elsewhere.
    WebSocketOnly,
    /// Health, metrics and the API, mounted by a host on its own server
    /// ([`crate::Relay::handle_http`]), which accepts the WebSockets: ready
    /// does not wait for the relay's own listener.
    Mounted,
}

/// Serves HTTP/1.1 requests on one connection until the client closes it,
/// it stays idle for `server.hello_timeout_ms`, or the relay shuts down
/// (an open connection finishes its request; one accepted while the relay
/// drains is answered once, so that `/readyz` can say 503).
pub(crate) async fn serve_connection<I>(
    shared: Arc<Shared>,
    io: I,
    peer: SocketAddr,
    surface: Surface,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let draining = shared.is_shutting_down();
    let handler = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = handler.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req, Some(peer), surface).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(shared.config.server.hello_timeout_ms))
        .max_buf_size(64 << 10)
        .keep_alive(!draining)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = crate::server::shutting_down(&mut shutdown), if !draining => None,
    };
    let r = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(Duration::from_secs(5), conn)
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "An HTTP connection ended with an error.");
    }
}

/// Answers one request of the HTTP surface.
pub(crate) async fn handle<B>(
    shared: &Arc<Shared>,
    req: Request<B>,
    peer: Option<SocketAddr>,
    surface: Surface,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let endpoint = endpoint(req.uri().path());
    let resp = match surface {
        Surface::WebSocketOnly => not_found(req.uri().path(), shared),
        Surface::All | Surface::Mounted => route(shared, req, peer, endpoint, surface).await,
    };
    shared.metrics.http(endpoint, resp.status().as_u16());
    resp
}

fn endpoint(path: &str) -> Endpoint {
    match path {
        "/metrics" => Endpoint::Metrics,
        "/healthz" => Endpoint::Healthz,
        "/readyz" => Endpoint::Readyz,
        "/api/publish" => Endpoint::Publish,
        "/api/send" => Endpoint::Send,
        "/api/broadcast" => Endpoint::Broadcast,
        "/api/disconnect" => Endpoint::Disconnect,
        "/api/revoke" => Endpoint::Revoke,
        "/api/sessions" => Endpoint::Sessions,
        "/api/groups" => Endpoint::Groups,
        "/api/presence" => Endpoint::Presence,
        "/api/stats" => Endpoint::Stats,
        _ => Endpoint::Other,
    }
}

async fn route<B>(
    shared: &Arc<Shared>,
    req: Request<B>,
    peer: Option<SocketAddr>,
    endpoint: Endpoint,
    surface: Surface,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let get = [Method::GET, Method::HEAD];
    match endpoint {
        Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics if !get.contains(req.method()) => {
            method_not_allowed("GET")
        }
        Endpoint::Healthz => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Endpoint::Readyz => match readiness(shared, surface != Surface::Mounted) {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            Err(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "not_ready", "reason": reason}),
            ),
        },
        Endpoint::Metrics if !shared.config.metrics.enabled => not_found("/metrics", shared),
        Endpoint::Metrics => {
            let openmetrics = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            let text = crate::metrics::exposition::encode(shared, openmetrics);
            let mut r = Response::new(Full::new(Bytes::from(text)));
            let ct = if openmetrics {
                OPENMETRICS_TEXT
            } else {
                PROMETHEUS_TEXT
            };
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            r
        }
        Endpoint::Other => not_found(req.uri().path(), shared),
        _ => api::serve(shared, req, peer, endpoint).await,
    }
}

/// Why the relay is not ready for new connections, if it is not.
/// `own_listener`: the relay accepts its connections itself (not a host).
pub(crate) fn readiness(shared: &Shared, own_listener: bool) -> Result<(), &'static str> {
    if shared.is_shutting_down() {
        return Err("shutting down");
    }
    if own_listener && !shared.is_listening() {
        return Err("not listening yet");
    }
    if shared.connections.available_permits() == 0 {
        return Err("at server.max_connections");
    }
    Ok(())
}

pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_vec(body).expect("answers are JSON");
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An error answer: `{"code":…,"message":…}` with the protocol's codes.
pub(crate) fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"code": code.as_str(), "message": message}),
    )
}

fn not_found(path: &str, shared: &Shared) -> Response<Body> {
    let m = if path == crate::protocol::WS_PATH {
        "/ws takes a WebSocket upgrade, as the first request of a connection".to_owned()
    } else if shared.config.admin.listen.is_some() {
        format!("no such path: {path} (health, metrics and the API are on admin.listen)")
    } else {
        format!("no such path: {path}")
    };
    error(StatusCode::NOT_FOUND, ErrorCode::NotFound, &m)
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        &format!("this path takes {allow}"),
    );
    r.headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    r
}
