//! A host application that embeds Zerorelay.
//!
//! The host owns the HTTP server (hyper here; axum handlers look the same,
//! since axum's `Request` is hyper's): it serves its own routes (`/healthz`,
//! `/sessions`), mounts the relay's HTTP surface (`/readyz`, `/metrics`,
//! `/api/…`) with [`Relay::handle_http`], and hands WebSocket upgrades on
//! `/ws` to the relay with [`Relay::accept_upgraded`]. It also talks to the relay from the host side:
//! it registers an RPC method and publishes a tick to the `clock` group.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use zerorelay::{Config, Relay};

/// Builds the relay with the host's RPC methods.
pub fn relay(config: Config) -> zerorelay::Result<Relay> {
    Relay::builder(config)
        .rpc("time", |_ctx, _arg| async move {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            Ok(json!({ "unix_ms": ms }))
        })
        .build()
}

/// Serves HTTP on `listener` until `relay` shuts down.
pub async fn serve_http(relay: Relay, listener: tokio::net::TcpListener) {
    let mut shutdown = std::pin::pin!(wait_for_shutdown(relay.clone()));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let relay = relay.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(relay.clone(), peer, req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

async fn wait_for_shutdown(relay: Relay) {
    // The host decides when to stop; here, when the relay is shut down.
    while !relay.is_shut_down() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn route(
    relay: Relay,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/ws" => upgrade(relay, peer, req),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/sessions" => {
            let body = serde_json::to_string(&relay.sessions()).expect("sessions are JSON");
            text(StatusCode::OK, &body)
        }
        // The relay's own surface: readiness, Prometheus metrics, the API.
        p if p == "/readyz" || p == "/metrics" || p.starts_with("/api/") => {
            relay.handle_http(req, Some(peer)).await
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Completes the WebSocket handshake and hands the upgraded stream to the relay.
fn upgrade(relay: Relay, peer: SocketAddr, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let key = match req.headers().get(SEC_WEBSOCKET_KEY) {
        Some(k) if req.headers().get(UPGRADE).is_some() => k.clone(),
        _ => return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n"),
    };
    let accept = zerorelay::server::websocket_accept_key(key.as_bytes());
    tokio::spawn(async move {
        match hyper::upgrade::on(&mut req).await {
            Ok(upgraded) => {
                relay
                    .accept_upgraded(TokioIo::new(upgraded), Some(peer))
                    .await
            }
            Err(e) => tracing::warn!(error = %e, "The WebSocket upgrade failed."),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    resp
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r
}

/// Publishes the time to the `clock` group every `period`, until shutdown.
pub async fn publish_ticks(relay: Relay, period: Duration) {
    let mut n: u64 = 0;
    while !relay.is_shut_down() {
        n += 1;
        if let Err(e) = relay.publish("clock", &json!({ "tick": n })) {
            tracing::warn!(error = %e, "Failed to publish a tick.");
        }
        tokio::time::sleep(period).await;
    }
}
