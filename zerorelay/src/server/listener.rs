//! Accepting connections: TCP, the WebSocket upgrade on `/ws`, the
//! connection cap (counted from accept), the per-address bound on
//! connections still in their handshake, and draining on shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use futures_util::{FutureExt, SinkExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::frames::Output;
use super::prefixed::Prefixed;
use super::{connection, Shared};
use crate::error::{ErrorCode, Result};
use crate::http::Surface;
use crate::metrics::HandshakeFailure;
use crate::protocol::{close, ServerFrame, WS_PATH};

/// Accepts until shutdown, then drains: until the open connections have
/// closed (at most `server.shutdown_grace_ms` plus the write timeout) it
/// still accepts, answering HTTP (`/readyz` says 503, so that load
/// balancers stop sending) and refusing WebSockets with 1001. Refuses
/// development mode on a non-loopback address (see
/// [`crate::Config::check_exposure`]).
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) -> Result<()> {
    let addr = listener.local_addr()?;
    shared.config.check_exposure(addr, shared.development)?;
    let surface = if shared.config.admin.listen.is_some() {
        Surface::WebSocketOnly
    } else {
        Surface::All
    };
    tracing::info!(%addr, path = WS_PATH, development = shared.development, "The relay is listening.");
    shared.set_listening(true);
    if shared.config.alerts.url.is_some() {
        tokio::spawn(crate::alerts::watch(shared.clone(), addr.to_string()));
    }
    accept(&shared, &listener, |tcp, peer| {
        tokio::spawn(handle_tcp(shared.clone(), tcp, peer, surface));
    })
    .await;
    shared.set_listening(false);
    drop(listener);
    tracing::info!("The relay stopped accepting connections.");
    Ok(())
}

/// Serves the HTTP surface alone (`[admin] listen`), with the same
/// draining as [`serve`].
pub(crate) async fn serve_admin(shared: Arc<Shared>, listener: TcpListener) -> Result<()> {
    let addr = listener.local_addr()?;
    *shared.admin_bound.lock() = Some(addr);
    tracing::info!(%addr, "The HTTP surface (health, metrics, API) is listening.");
    accept(&shared, &listener, |tcp, peer| {
        let _ = tcp.set_nodelay(true);
        let guard = shared.track();
        let shared = shared.clone();
        tokio::spawn(async move {
            crate::http::serve_connection(shared, tcp, peer, Surface::All).await;
            drop(guard);
        });
    })
    .await;
    Ok(())
}

/// Accepts until shutdown, then while the relay drains.
async fn accept(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    mut start: impl FnMut(TcpStream, SocketAddr),
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut drain_until = None;
    loop {
        let until = drain_until;
        let draining = async {
            match until {
                None => super::shutting_down(&mut shutdown).await,
                // Polled, only while shutting down.
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        tokio::select! {
            _ = draining => {
                let now = tokio::time::Instant::now();
                match drain_until {
                    None => {
                        let c = &shared.config.server;
                        drain_until = Some(now + Duration::from_millis(c.shutdown_grace_ms + c.write_timeout_ms));
                    }
                    Some(t) if now >= t || shared.active() == 0 => break,
                    Some(_) => {}
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => start(tcp, peer),
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "Failed to accept a connection; retrying in 100 ms.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// A TCP connection after the TLS handshake (when `[tls]` is set).
type TlsTcp = tokio_rustls::server::TlsStream<TcpStream>;

/// Upgrades a TCP connection (after TLS, when configured) and runs it. A
/// plain function, so that the future a connection keeps holds neither the
/// socket it was given nor the (large, short-lived) upgrade, which is boxed.
fn handle_tcp(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    surface: Surface,
) -> impl Future<Output = ()> + Send {
    let _ = tcp.set_nodelay(true);
    let guard = shared.track();
    // Counted from accept: a connection that never finishes its upgrade
    // holds a slot and a place among its address's handshakes.
    let slot = shared.connections.clone().try_acquire_owned().ok();
    let handshaking = Handshaking::enter(&shared, peer.ip());
    let upgrade = handshaking
        .as_ref()
        .map(|_| Box::pin(upgrade(shared.clone(), tcp, peer, surface, slot)));
    async move {
        let (Some(upgrade), Some(handshaking)) = (upgrade, handshaking) else {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::AddressLimit);
            tracing::debug!(%peer, limit = shared.config.server.max_handshaking_per_ip, "Closed a connection: its address has server.max_handshaking_per_ip connections in their handshake.");
            return;
        };
        // The upgraded stream is matched inside a block that ends before
        // the connection runs: a moved-from local still holds its place in
        // a future's state until its scope ends, and a TLS stream is large.
        let conn: Either<_, Pin<Box<dyn Future<Output = ()> + Send>>> = {
            let Some((ws, from, slot)) = upgrade.await else {
                return;
            };
            match ws {
                Either::Left(ws) => {
                    Either::Left(run(shared, ws, Some(peer), from, guard, slot, handshaking))
                }
                Either::Right(ws) => Either::Right(Box::pin(run(
                    shared,
                    ws,
                    Some(peer),
                    from,
                    guard,
                    slot,
                    handshaking,
                ))),
            }
        };
        conn.await
    }
}

/// TLS (when configured), then the request: a WebSocket upgrade on `/ws`
/// within `server.hello_timeout_ms`, or anything else for the HTTP surface
/// (served here, after which the connection is done: `None`).
async fn upgrade(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    surface: Surface,
    mut slot: Option<OwnedSemaphorePermit>,
) -> Option<(
    Either<WebSocketStream<Prefixed<TcpStream>>, WebSocketStream<Prefixed<TlsTcp>>>,
    Upgrade,
    Option<OwnedSemaphorePermit>,
)> {
    let timeout = Duration::from_millis(shared.config.server.hello_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    let from = Arc::new(parking_lot::Mutex::new(Upgrade::default()));
    let ws = match &shared.tls {
        None => {
            let io = route(&shared, tcp, peer, surface, deadline, &mut slot).await?;
            let check = checker(shared.clone(), from.clone());
            tokio::time::timeout_at(
                deadline,
                tokio_tungstenite::accept_hdr_async_with_config(io, check, Some(shared.ws_config)),
            )
            .await
            .map(|r| r.map(Either::Left))
        }
        // Boxed: the TLS handshake's future is large, and a plain
        // connection's upgrade should not carry room for it.
        Some(tls) => {
            let acceptor = tls.acceptor.clone();
            let shared = shared.clone();
            let from = from.clone();
            let slot = &mut slot;
            let upgraded = Box::pin(async move {
                let tls = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        shared.metrics.handshake_failures.inc(HandshakeFailure::Tls);
                        tracing::debug!(%peer, error = %e, "Dropped a connection whose TLS handshake failed.");
                        return None;
                    }
                    Err(_) => {
                        shared
                            .metrics
                            .handshake_failures
                            .inc(HandshakeFailure::UpgradeTimeout);
                        tracing::debug!(%peer, "Dropped a connection that did not finish its TLS handshake in time.");
                        return None;
                    }
                };
                let io = route(&shared, tls, peer, surface, deadline, slot).await?;
                let check = checker(shared.clone(), from);
                let ws = tokio::time::timeout_at(
                    deadline,
                    tokio_tungstenite::accept_hdr_async_with_config(
                        io,
                        check,
                        Some(shared.ws_config),
                    ),
                )
                .await;
                Some(ws.map(|r| r.map(Either::Right)))
            });
            upgraded.await?
        }
    };
    match ws {
        Ok(Ok(ws)) => {
            let from = std::mem::take(&mut *from.lock());
            Some((ws, from, slot))
        }
        Ok(Err(e)) => {
            let why = from
                .lock()
                .refused
                .unwrap_or(HandshakeFailure::NotWebsocket);
            shared.metrics.handshake_failures.inc(why);
            tracing::debug!(%peer, error = %e, "Refused a connection that is not a WebSocket upgrade on /ws.");
            None
        }
        Err(_) => {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::UpgradeTimeout);
            tracing::debug!(%peer, "Dropped a connection that did not finish the WebSocket upgrade in time.");
            None
        }
    }
}

/// Reads the start of the first request: `GET /ws` is returned for the
/// WebSocket upgrade (with the bytes read put back in front); anything
/// else is served as HTTP here (giving up the connection `slot`: HTTP
/// clients do not count against `server.max_connections`, only their
/// address's handshakes), and `None` returned.
async fn route<S>(
    shared: &Arc<Shared>,
    mut io: S,
    peer: SocketAddr,
    surface: Surface,
    deadline: tokio::time::Instant,
    slot: &mut Option<OwnedSemaphorePermit>,
) -> Option<Prefixed<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head = match tokio::time::timeout_at(deadline, Prefixed::read_head(&mut io)).await {
        Ok(Ok(head)) => head,
        Ok(Err(_)) => return None,
        Err(_) => {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::UpgradeTimeout);
            return None;
        }
    };
    let io = Prefixed::new(head, io);
    if io.is_websocket_path() {
        return Some(io);
    }
    drop(slot.take());
    crate::http::serve_connection(shared.clone(), io, peer, surface).await;
    None
}

/// What the upgrade request carried that the handshake needs.
#[derive(Debug, Default)]
pub(crate) struct Upgrade {
    /// `Authorization: Bearer …`, else `?token=…` (browsers cannot set
    /// headers on a WebSocket). `hello.token` beats both.
    pub(crate) token: Option<String>,
    /// Why the upgrade request was refused, for the metrics.
    pub(crate) refused: Option<HandshakeFailure>,
}

/// The upgrade request's checks: the path is [`WS_PATH`] (else 404), the
/// `Origin`, when present, is in `server.allowed_origins` (else 403); and
/// its token is kept for the handshake.
fn checker(
    shared: Arc<Shared>,
    into: Arc<parking_lot::Mutex<Upgrade>>,
) -> impl FnOnce(&Request, Response) -> std::result::Result<Response, ErrorResponse> + Unpin {
    #[allow(
        clippy::result_large_err,
        reason = "the signature is tungstenite's callback"
    )]
    move |req: &Request, resp: Response| {
        if req.uri().path() != WS_PATH {
            return Err(http_error(
                StatusCode::NOT_FOUND,
                format!("not found: the relay answers on {WS_PATH}\n"),
            ));
        }
        let allowed = &shared.config.server.allowed_origins;
        if !allowed.is_empty() {
            if let Some(origin) = req.headers().get("origin") {
                let origin = origin.to_str().unwrap_or("");
                if !origin_allowed(allowed, origin) {
                    tracing::debug!(
                        origin,
                        "Refused an upgrade from an origin not in server.allowed_origins."
                    );
                    into.lock().refused = Some(HandshakeFailure::Origin);
                    return Err(http_error(
                        StatusCode::FORBIDDEN,
                        "forbidden: this origin may not connect (server.allowed_origins)\n".into(),
                    ));
                }
            }
        }
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            })
            .filter(|t| !t.is_empty());
        let query = req.uri().query().and_then(query_token);
        into.lock().token = bearer.or(query);
        Ok(resp)
    }
}

fn http_error(status: StatusCode, body: String) -> ErrorResponse {
    let mut e = ErrorResponse::new(Some(body));
    *e.status_mut() = status;
    e
}

/// Whether `origin` matches an entry of `server.allowed_origins` (exactly,
/// or as a pattern with `*`), ignoring ASCII case.
pub(crate) fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|a| {
        crate::auth::rbac::Pattern::parse(&a.to_ascii_lowercase())
            .is_ok_and(|p| p.matches(("", &origin), None))
    })
}

/// `token=` from a query string, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("token="))?;
    percent_decode(raw)
}

/// A query string value, percent-decoded (`+` is a space); `None` when
/// empty or not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().filter(|t| !t.is_empty())
}

/// Runs a WebSocket the host accepted. A plain function, like the rest of
/// the path, so that the returned future does not hold the stream.
pub(crate) fn run_accepted<S>(
    shared: Arc<Shared>,
    ws: WebSocketStream<S>,
    peer: Option<SocketAddr>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guard = shared.track();
    let slot = shared.connections.clone().try_acquire_owned().ok();
    let handshaking = match peer {
        Some(p) => Handshaking::enter(&shared, p.ip()),
        None => Some(Handshaking(None)),
    };
    let work = match handshaking {
        Some(h) => Either::Left(run(shared, ws, peer, Upgrade::default(), guard, slot, h)),
        None => Either::Right(async move {
            tracing::debug!(?peer, "Closed a connection: its address has server.max_handshaking_per_ip connections in their handshake.");
            drop((ws, guard));
        }),
    };
    work
}

/// Admits an upgraded connection (or refuses it: shutting down, at
/// `server.max_connections` (`slot` is `None`), or development mode and a
/// client from another machine) and runs it. A plain function, so that the
/// future a connection keeps does not also hold the stream it was given.
fn run<S>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    peer: Option<SocketAddr>,
    from: Upgrade,
    guard: super::TaskGuard,
    slot: Option<OwnedSemaphorePermit>,
    handshaking: Handshaking,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let exposed = shared.development
        && !shared.config.server.insecure
        && peer.is_some_and(|p| !p.ip().is_loopback());
    let admitted = if shared.is_shutting_down() {
        shared
            .metrics
            .handshake_failures
            .inc(HandshakeFailure::ShuttingDown);
        Err((None, close::GOING_AWAY, "server shutting down"))
    } else if exposed {
        shared
            .metrics
            .handshake_failures
            .inc(HandshakeFailure::RemoteDevelopment);
        tracing::warn!(?peer, "Refused a client from another machine: development mode (no authentication) serves loopback clients only unless server.insecure is set.");
        Err((
            Some((
                ErrorCode::Unauthorized,
                "this relay runs without authentication and serves only its own machine",
            )),
            close::AUTH_FAILED,
            "development mode",
        ))
    } else {
        slot.ok_or_else(|| {
            shared
                .metrics
                .handshake_failures
                .inc(HandshakeFailure::ConnectionLimit);
            tracing::warn!(
                limit = shared.config.server.max_connections,
                "Refused a connection: server.max_connections reached."
            );
            (
                Some((
                    ErrorCode::LimitExceeded,
                    "the server is at its connection limit",
                )),
                close::TRY_AGAIN_LATER,
                "connection limit",
            )
        })
    };
    let work = match admitted {
        Ok(permit) => Either::Left(
            connection::run(shared, ws, peer, from, handshaking).map(move |()| drop(permit)),
        ),
        Err((error, code, reason)) => Either::Right(Box::pin(async move {
            refuse(&mut ws, error, code, reason).await;
        })),
    };
    work.map(move |()| drop(guard))
}

/// A connection's place among the connections of its address that are
/// between accept and `welcome`; `None` inside for connections whose
/// address is unknown. Dropping it leaves.
pub(crate) struct Handshaking(Option<(Arc<Shared>, IpAddr)>);

impl Handshaking {
    /// Enters, or `None` when the address is at
    /// `server.max_handshaking_per_ip`.
    fn enter(shared: &Arc<Shared>, ip: IpAddr) -> Option<Handshaking> {
        let max = shared.config.server.max_handshaking_per_ip;
        let mut n = shared.handshaking.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Handshaking(Some((shared.clone(), ip))))
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        if let Some((shared, ip)) = self.0.take() {
            shared.handshaking.remove_if_mut(&ip, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

/// Sends an optional `error` frame and a close frame, then gives the client a
/// moment to answer the close.
pub(crate) async fn refuse<S>(
    ws: &mut WebSocketStream<S>,
    error: Option<(ErrorCode, &str)>,
    code: u16,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let work = async {
        if let Some((code, message)) = error {
            let frame = ServerFrame::error(None, code, message).encode();
            ws.feed(Message::text(frame)).await?;
        }
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        })))
        .await?;
        // Read until the client's close (or an error) so that the close
        // handshake completes and the client sees our code.
        use futures_util::StreamExt;
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), work).await;
}

/// Like [`refuse`], after tungstenite failed on the input (a protocol
/// violation, a frame over the transport limit): the frames are written
/// past it, then unread input is drained briefly so that the client reads
/// the close rather than a reset.
pub(crate) async fn refuse_raw<S>(
    ws: &mut WebSocketStream<S>,
    error: Option<(ErrorCode, &str)>,
    code: u16,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Output::default();
    if let Some((code, message)) = error {
        out.text(&ServerFrame::error(None, code, message).encode());
    }
    out.close(code, reason);
    let io = ws.get_mut();
    let _ = tokio::time::timeout(Duration::from_secs(2), out.write_to(io)).await;
    super::writer::linger(io).await;
}
