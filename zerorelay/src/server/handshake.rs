//! The `hello` handshake: wait for `hello`, authenticate, open or resume the
//! session ([`crate::session::resume`]) and write `welcome` with what the
//! session already holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::connection::{Conn, End, ReadWaker};
use super::frames::Output;
use super::limiter::{RateLimiter, Strikes};
use super::listener::{refuse, refuse_raw, Handshaking, Upgrade};
use super::{HostEvent, Shared, SERVER_NAME};
use crate::auth::rbac::Access;
use crate::auth::AuthRequest;
use crate::error::ErrorCode;
use crate::metrics::{AuthFailure, FrameType, HandshakeFailure};
use crate::protocol::client::{self as wire, ClientFrame, Hello};
use crate::protocol::{close, ServerFrame, Welcome};
use crate::session::resume::{open_or_resume, SessionCaps};
use crate::session::ConnLink;

/// Reads `hello`, authenticates, opens or resumes the session and writes
/// `welcome` (with what the session already holds). `None` when the client
/// was refused. The connection stops counting among its address's
/// handshakes once the client is welcomed or refused.
pub(super) async fn greet<S>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    peer: Option<SocketAddr>,
    from: Upgrade,
    handshaking: Handshaking,
) -> Option<(Conn<S>, Result<(), End>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(shared.config.server.hello_timeout_ms);
    let (live, live_gen) = shared.live.snapshot();
    let hello = read_hello(&shared, &live.limits, &mut ws, deadline).await?;
    // Token sources, first found wins: `hello.token`, then the upgrade
    // request's `Authorization: Bearer`, then its `?token=`.
    let request = AuthRequest {
        token: hello.token.as_deref().or(from.token.as_deref()),
        user: hello.user.as_deref(),
        remote: peer,
        client: hello.client.as_deref(),
    };
    let identity = match tokio::time::timeout_at(deadline, live.auth.authenticate(request)).await {
        Ok(Ok(identity)) => identity,
        Ok(Err(e)) => {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::Auth);
            shared.metrics.auth_failures.inc(auth_failure(e.code));
            super::dispatch::report_error(&shared, None, e.code, &e.message, "hello");
            tracing::debug!(?peer, error = %e, "Refused a connection whose authentication failed.");
            // The authenticator failing (its backend down) is not the
            // client's fault: 1011, which a client retries.
            let (code, reason) = match e.code {
                ErrorCode::Internal => (close::INTERNAL, "authentication unavailable"),
                _ => (close::AUTH_FAILED, "authentication failed"),
            };
            refuse(&mut ws, Some((e.code, &e.message)), code, reason).await;
            return None;
        }
        Err(_) => {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::Auth);
            shared.metrics.auth_failures.inc(AuthFailure::Timeout);
            super::dispatch::report_error(
                &shared,
                None,
                ErrorCode::Internal,
                "authentication did not finish in time",
                "hello",
            );
            tracing::warn!(?peer, "Closed a connection whose authentication did not finish within server.hello_timeout_ms.");
            refuse(
                &mut ws,
                Some((ErrorCode::Internal, "authentication did not finish in time")),
                close::INTERNAL,
                "authentication timeout",
            )
            .await;
            return None;
        }
    };
    let link = ConnLink::new();
    let c = &shared.config;
    let caps = SessionCaps {
        max_sessions: c.session.max_sessions,
        max_per_user: c.session.max_per_user,
    };
    let opened = open_or_resume(
        &**shared.router.store(),
        shared.router.limits(),
        shared.router.budget(),
        caps,
        identity.user.as_deref(),
        hello.resume.as_ref(),
        &link,
    );
    let (session, resumed) = match opened {
        Ok(s) => s,
        Err((e, code)) => {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::SessionRefused);
            shared.metrics.errors.inc(e.code);
            refuse(&mut ws, Some((e.code, &e.message)), code, "session refused").await;
            return None;
        }
    };
    let welcome = ServerFrame::Welcome(Welcome {
        v: crate::protocol::VERSION,
        session: session.id.to_string(),
        resume_key: Some(session.resume_key.clone()),
        user: session.user.as_ref().map(|u| u.to_string()),
        resumed,
        heartbeat_ms: c.server.heartbeat_ms,
        session_ttl_ms: c.session.ttl_ms,
        server: SERVER_NAME.to_owned(),
    });
    tracing::debug!(?peer, session = %session.id, resumed, conn = link.id, client = hello.client.as_deref().unwrap_or(""), "A client said hello.");
    shared.events.emit(|| HostEvent::Connected {
        session: session.id.to_string(),
        user: session.user.as_ref().map(|u| u.to_string()),
        resumed,
        remote: peer.map(|p| p.to_string()),
        roles: identity.roles.iter().map(|r| r.to_string()).collect(),
    });
    let m = &shared.metrics;
    m.opened.fetch_add(1, Ordering::Relaxed);
    m.connected.fetch_add(1, Ordering::Relaxed);
    if resumed {
        m.resumes.fetch_add(1, Ordering::Relaxed);
    }
    let now = Instant::now();
    let l = &live.limits;
    let write_timeout = Duration::from_millis(c.server.write_timeout_ms);
    let access = Access::new(&shared.policy, &identity);
    let mut conn = Conn {
        limiter: RateLimiter::new(l.rate_per_sec, l.rate_burst, now),
        acks: RateLimiter::new(
            l.ack_rate_per_sec,
            l.ack_rate_per_sec.saturating_mul(2),
            now,
        ),
        broadcasts: RateLimiter::new(l.broadcast_per_sec, l.broadcast_per_sec, now),
        strikes: Strikes::new(l.abuse_strikes, now),
        write_timeout,
        ws,
        session,
        link,
        identity,
        access,
        last_seen: now,
        out: Output::default(),
        held: None,
        streaming: false,
        ws_may_hold: true,
        readable: ReadWaker::new(),
        rpc_in_flight: Arc::new(AtomicUsize::new(0)),
        deadline: tokio::time::Instant::now() + write_timeout,
        frame_type: "hello",
        live_gen,
        live,
        shared,
    };
    drop(handshaking);
    let _ = conn.write(&welcome.encode());
    let greeted = match conn.drain() {
        Ok(()) => conn.flush().await,
        e => e,
    };
    Some((conn, greeted))
}

/// Waits for the first frame, which must be a valid `hello`.
async fn read_hello<S>(
    shared: &Shared,
    limits: &crate::config::LimitsConfig,
    ws: &mut WebSocketStream<S>,
    deadline: tokio::time::Instant,
) -> Option<Hello>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = limits.max_frame_bytes;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                shared
                    .metrics
                    .handshake_failures
                    .inc(HandshakeFailure::HelloTimeout);
                refuse(ws, None, close::HELLO_TIMEOUT, "hello timeout").await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                let (code, reason, error) = match e {
                    WsError::Capacity(CapacityError::MessageTooLong { .. }) => (
                        close::TOO_BIG,
                        "frame too large",
                        Some((ErrorCode::TooLarge, "frame is over the transport limit")),
                    ),
                    WsError::Capacity(_) | WsError::Protocol(_) => {
                        (close::PROTOCOL, "websocket protocol error", None)
                    }
                    WsError::Utf8(_) => (
                        close::INVALID_PAYLOAD,
                        "text frame is not valid UTF-8",
                        None,
                    ),
                    _ => return None,
                };
                shared
                    .metrics
                    .handshake_failures
                    .inc(HandshakeFailure::BadHello);
                if let Some((c, m)) = error {
                    super::dispatch::report_error(shared, None, c, m, "hello");
                }
                refuse_raw(ws, error, code, reason).await;
                return None;
            }
            Ok(Some(Ok(m))) => m,
        };
        let refusal: (ErrorCode, String) = match msg {
            Message::Text(t) if t.len() > max => (
                ErrorCode::TooLarge,
                format!(
                    "frame of {} bytes is over the limit of {max} bytes",
                    t.len()
                ),
            ),
            Message::Text(t) => match wire::parse_bounded(&t, limits.max_json_depth) {
                Ok(ClientFrame::Hello(h)) => {
                    shared.metrics.frame(FrameType::Hello);
                    return Some(h);
                }
                Ok(other) => (
                    ErrorCode::BadRequest,
                    format!("the first frame must be hello, not {}", other.type_name()),
                ),
                Err(e) => (e.error.code, e.error.message.into_owned()),
            },
            Message::Binary(_) => (
                ErrorCode::Unsupported,
                "binary frames are not supported: protocol v1 is JSON text".to_owned(),
            ),
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        shared
            .metrics
            .handshake_failures
            .inc(HandshakeFailure::BadHello);
        super::dispatch::report_error(shared, None, refusal.0, &refusal.1, "hello");
        refuse(
            ws,
            Some((refusal.0, &refusal.1)),
            close::BAD_HELLO,
            "bad hello",
        )
        .await;
        return None;
    }
}

/// The metrics reason of a failed authentication.
pub(super) fn auth_failure(code: ErrorCode) -> AuthFailure {
    match code {
        ErrorCode::Forbidden => AuthFailure::Forbidden,
        ErrorCode::Internal => AuthFailure::Backend,
        _ => AuthFailure::Invalid,
    }
}
