//! One connection: the `hello` handshake, then a single task that reads
//! frames, answers requests, writes the session's deliveries in batches, and
//! keeps the heartbeat.
//!
//! One task per connection (not a reader and a writer) keeps an idle
//! connection to one small future (the greeting and the close are boxed and
//! gone once done). Answers and deliveries are encoded into the connection's
//! output buffer ([`super::frames`]) and written with one call per loop
//! turn, after every frame that was already readable has been handled and
//! the outbox drained; tungstenite reads frames, answers pings and closes.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::frames::Output;
use super::limiter::{RateLimiter, Strikes};
use super::listener::refuse;
use super::{now_ms, HostEvent, RpcContext, Shared, SERVER_NAME};
use crate::auth::{Action, AuthRequest, Identity};
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::client::{self as wire, ClientFrame, Hello, RequestId, Target};
use crate::protocol::{close, Delivery, DeliveryKind, ServerFrame, Welcome};
use crate::session::{new_session_id, ConnLink, RecentReply, Session, Signal, Unsent};

/// Items moved from the outbox per lock; the writer loops for more.
const MAX_BATCH: usize = 256;
/// Bytes encoded per loop turn before the output is written (one frame
/// larger than this is written whole).
const MAX_TURN_BYTES: usize = 64 << 10;
/// Frames already buffered that are handled before the next flush.
const MAX_READ_AHEAD: usize = 64;
/// RPC calls one connection may have in flight.
const MAX_RPC_IN_FLIGHT: usize = 64;

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// The server closes with this code.
    Close(u16, &'static str),
    /// The client sent a close frame with this code.
    ClientClosed(Option<u16>),
    /// The socket is gone (reset, write timeout, EOF without close).
    Gone(&'static str),
}

impl End {
    /// Why the connection ended, for the host's `disconnected` event.
    fn reason(&self) -> String {
        match self {
            End::Close(code, reason) => format!("{reason} ({code})"),
            End::ClientClosed(Some(code)) => format!("closed by the client ({code})"),
            End::ClientClosed(None) => "closed by the client".to_owned(),
            End::Gone(why) => (*why).to_owned(),
        }
    }
}

/// Runs a connection to its end.
///
/// The greeting and the close run in boxed futures of their own, so that
/// the future an idle connection keeps is only the steady-state loop.
pub(crate) fn run<S>(
    shared: Arc<Shared>,
    ws: WebSocketStream<S>,
    peer: Option<SocketAddr>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Made here, not in the async block, so that the block holds a pointer
    // rather than the stream and the arguments for its whole life.
    let greeting = Box::pin(greet(shared, ws, peer));
    async move {
        let Some((mut conn, greeted)) = greeting.await else {
            return;
        };
        let end = match greeted {
            Ok(()) => conn.run().await,
            Err(e) => e,
        };
        Box::pin(conn.finish(end)).await;
    }
}

/// Reads `hello`, authenticates, opens or resumes the session and writes
/// `welcome` (with what the session already holds). `None` when the client
/// was refused.
async fn greet<S>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    peer: Option<SocketAddr>,
) -> Option<(Conn<S>, Result<(), End>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(shared.config.server.hello_timeout_ms);
    let hello = read_hello(&shared, &mut ws, deadline).await?;
    let request = AuthRequest {
        token: hello.token.as_deref(),
        user: hello.user.as_deref(),
        remote: peer,
        client: hello.client.as_deref(),
    };
    let identity = match tokio::time::timeout_at(deadline, shared.auth.authenticate(request)).await
    {
        Ok(Ok(identity)) => identity,
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "Refused a connection whose authentication failed.");
            refuse(
                &mut ws,
                Some((e.code, &e.message)),
                close::AUTH_FAILED,
                "authentication failed",
            )
            .await;
            return None;
        }
        Err(_) => {
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
    let (session, resumed) = match open_session(&shared, &identity, &hello, &link) {
        Ok(s) => s,
        Err((e, code)) => {
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
        heartbeat_ms: shared.config.server.heartbeat_ms,
        session_ttl_ms: shared.config.session.ttl_ms,
        server: SERVER_NAME.to_owned(),
    });
    tracing::debug!(?peer, session = %session.id, resumed, conn = link.id, client = hello.client.as_deref().unwrap_or(""), "A client said hello.");
    shared.events.emit(|| HostEvent::Connected {
        session: session.id.to_string(),
        user: session.user.as_ref().map(|u| u.to_string()),
        resumed,
        remote: peer.map(|p| p.to_string()),
    });
    let now = Instant::now();
    let mut conn = Conn {
        limiter: RateLimiter::new(
            shared.config.limits.rate_per_sec,
            shared.config.limits.rate_burst,
            now,
        ),
        strikes: Strikes::new(shared.config.limits.abuse_strikes, now),
        write_timeout: Duration::from_millis(shared.config.server.write_timeout_ms),
        shared,
        ws,
        session,
        link,
        identity,
        last_seen: now,
        out: Output::default(),
        refreshing: None,
        streaming: false,
        ws_may_hold: true,
        readable: ReadWaker::new(),
        rpc_in_flight: Arc::new(AtomicUsize::new(0)),
        deadline: tokio::time::Instant::now(),
    };
    conn.deadline = tokio::time::Instant::now() + conn.write_timeout;
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
    ws: &mut WebSocketStream<S>,
    deadline: tokio::time::Instant,
) -> Option<Hello>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = shared.config.limits.max_frame_bytes;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                refuse(ws, None, close::HELLO_TIMEOUT, "hello timeout").await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                if is_too_big(&e) {
                    refuse(
                        ws,
                        Some((ErrorCode::TooLarge, "frame is over the transport limit")),
                        close::TOO_BIG,
                        "frame too large",
                    )
                    .await;
                }
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
            Message::Text(t) => match wire::parse(&t) {
                Ok(ClientFrame::Hello(h)) => return Some(h),
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

fn is_too_big(e: &WsError) -> bool {
    matches!(e, WsError::Capacity(CapacityError::MessageTooLong { .. }))
}

/// Resumes the session named in `hello.resume` when it exists, is not ended
/// and belongs to the same identity; otherwise opens a new one.
fn open_session(
    shared: &Shared,
    identity: &Identity,
    hello: &Hello,
    link: &Arc<ConnLink>,
) -> Result<(Arc<Session>, bool), (ProtocolError, u16)> {
    let store = shared.router.store();
    if let Some(r) = &hello.resume {
        if let Some(s) = store.get(&r.session) {
            let owned = r
                .key
                .as_ref()
                .is_some_and(|k| s.resume_key.matches(k.expose()));
            if owned && s.user.as_deref() == identity.user.as_deref() {
                let mut st = s.lock();
                if !st.ended {
                    st.outbox.resume(r.last_seq).map_err(|m| {
                        (
                            ProtocolError::new(ErrorCode::BadRequest, m),
                            close::BAD_HELLO,
                        )
                    })?;
                    let old = st.conn.replace(link.clone());
                    st.detached_since = None;
                    st.replies.clear();
                    drop(st);
                    if let Some(old) = old {
                        tracing::debug!(session = %s.id, old = old.id, new = link.id, "A newer connection took over a session.");
                        old.request_close(close::TAKEN_OVER, "session taken over");
                    }
                    link.wake();
                    return Ok((s, true));
                }
            }
        }
    }
    let max = shared.config.session.max_sessions;
    if store.len() >= max {
        tracing::warn!(
            limit = max,
            "Refused a new session: session.max_sessions reached."
        );
        return Err((
            ProtocolError::new(
                ErrorCode::LimitExceeded,
                "the server is at its session limit",
            ),
            close::TRY_AGAIN_LATER,
        ));
    }
    let s = Arc::new(Session::new(
        new_session_id(),
        identity.user.as_deref().map(Arc::from),
        shared.router.limits(),
    ));
    {
        let mut st = s.lock();
        st.conn = Some(link.clone());
        st.detached_since = None;
    }
    store.insert(s.clone());
    Ok((s, false))
}

struct Conn<S> {
    shared: Arc<Shared>,
    ws: WebSocketStream<S>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
    identity: Identity,
    limiter: RateLimiter,
    strikes: Strikes,
    last_seen: Instant,
    /// Frames (answers, then deliveries) waiting for the next flush.
    out: Output,
    /// The last drain took more than one message: more are likely on the way.
    streaming: bool,
    /// tungstenite may hold output (a pong it owes, from a read) that must
    /// be written before the output buffer.
    ws_may_hold: bool,
    /// Whether the socket may have a frame to read (see [`ReadWaker`]).
    readable: ReadWaker,
    /// A `refresh` read and not yet answered (its id and token).
    refreshing: Option<(Option<RequestId>, String)>,
    rpc_in_flight: Arc<AtomicUsize>,
    write_timeout: Duration,
    /// Writes started in this loop turn must finish by then (one clock read
    /// per turn rather than a timer per frame).
    deadline: tokio::time::Instant,
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(&mut self) -> End {
        let hb = Duration::from_millis(self.shared.config.server.heartbeat_ms);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + hb, hb);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The shutdown signal is waited on by a future polled once, which
        // stays in the signal's waiter list and wakes this task; each turn
        // then checks the signal's version (one atomic load) rather than
        // polling the future again, which takes the waiter list's lock.
        let signal = self.shared.shutdown.subscribe();
        let mut waiter = self.shared.shutdown.subscribe();
        let mut shutdown = std::pin::pin!(super::shutting_down(&mut waiter));
        let mut shutdown_waiting = false;
        // One timer for the token's expiry, made again only when a refresh
        // moves it (not a timer per loop turn).
        let mut expiry: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut expiry_for = None;
        loop {
            if self.identity.expires_at != expiry_for {
                expiry_for = self.identity.expires_at;
                expiry = expiry_for.map(|t| {
                    let left = t.duration_since(SystemTime::now()).unwrap_or_default();
                    Box::pin(tokio::time::sleep(left))
                });
            }
            let expired = async {
                match &mut expiry {
                    Some(timer) => timer.await,
                    None => std::future::pending().await,
                }
            };
            self.deadline = tokio::time::Instant::now() + self.write_timeout;
            // Drain only when the router (or a close request) woke us: a turn
            // that only read an ack need not flush a partial batch, and a
            // wake-up that arrives meanwhile is kept as a permit.
            let mut woken = false;
            let mut read = false;
            let step: Result<(), End> = tokio::select! {
                biased;
                _ = std::future::poll_fn(|cx| {
                    if !shutdown_waiting {
                        shutdown_waiting = true;
                        return shutdown.as_mut().poll(cx);
                    }
                    if signal.has_changed().unwrap_or(true) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }) => Err(End::Close(close::GOING_AWAY, "server shutting down")),
                _ = self.link.woken() => {
                    woken = true;
                    Ok(())
                }
                msg = std::future::poll_fn(|cx| self.readable.poll_frame(&mut self.ws, cx)) => {
                    read = true;
                    self.ws_may_hold = true;
                    self.on_message(msg)
                }
                _ = heartbeat.tick() => self.on_heartbeat(hb),
                _ = expired => Err(End::Close(close::TOKEN_EXPIRED, "token expired")),
            };
            // Only after a read can more frames be buffered; probing the
            // socket otherwise costs tungstenite a zero-filled read buffer.
            let step = match step {
                Ok(()) if read => self.read_ahead(),
                e => e,
            };
            // A `refresh` waits for the authenticator; the frames after it
            // are read once it is answered.
            let step = match step {
                Ok(()) => match self.refreshing.take() {
                    Some((id, token)) => {
                        // Boxed: an authenticator's future is large and rare.
                        let r = Box::pin(self.refresh(&token)).await;
                        self.answer(id.as_ref(), r)
                    }
                    None => Ok(()),
                },
                e => e,
            };
            let step = match step {
                Ok(()) if woken => {
                    // While messages stream in, let the tasks that are routing
                    // to us run first, so that one write carries a burst; a
                    // lone message is written at once.
                    if self.streaming {
                        tokio::task::yield_now().await;
                    }
                    self.drain()
                }
                e => e,
            };
            let step = match step {
                Ok(()) => self.flush().await,
                e => e,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Handles frames that are already buffered, so that a burst of
    /// requests is answered with one flush. (Probing with a no-op waker
    /// replaces the read waker; the flag set after every frame makes the
    /// next turn register it again.)
    fn read_ahead(&mut self) -> Result<(), End> {
        for _ in 0..MAX_READ_AHEAD {
            if self.refreshing.is_some() {
                break;
            }
            match self.ws.next().now_or_never() {
                Some(msg) => {
                    self.ws_may_hold = true;
                    self.on_message(msg)?
                }
                None => break,
            }
        }
        Ok(())
    }

    fn on_heartbeat(&mut self, hb: Duration) -> Result<(), End> {
        if self.last_seen.elapsed() >= hb * 2 {
            tracing::debug!(session = %self.session.id, "Closed a connection that sent nothing for two heartbeat intervals.");
            return Err(End::Close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout"));
        }
        self.out.ping();
        Ok(())
    }

    fn on_message(&mut self, msg: Option<Result<Message, WsError>>) -> Result<(), End> {
        let msg = match msg {
            None => return Err(End::Gone("connection closed without a close frame")),
            Some(Err(e)) if is_too_big(&e) => {
                let max = self.shared.config.limits.max_frame_bytes
                    * self.shared.config.limits.transport_frame_factor;
                let _ = self.reply_error(
                    None,
                    ErrorCode::TooLarge,
                    &format!("frame is over the transport limit of {max} bytes"),
                    false,
                );
                return Err(End::Close(close::TOO_BIG, "frame too large"));
            }
            Some(Err(e)) => {
                tracing::debug!(session = %self.session.id, error = %e, "A connection failed.");
                return Err(End::Gone("read error"));
            }
            Some(Ok(m)) => m,
        };
        self.last_seen = Instant::now();
        match msg {
            Message::Text(t) => self.on_text(&t),
            Message::Binary(_) => self.reply_error(
                None,
                ErrorCode::Unsupported,
                "binary frames are not supported: protocol v1 is JSON text",
                true,
            ),
            Message::Close(frame) => Err(End::ClientClosed(frame.map(|f| u16::from(f.code)))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    fn on_text(&mut self, text: &str) -> Result<(), End> {
        let max = self.shared.config.limits.max_frame_bytes;
        if text.len() > max {
            tracing::debug!(session = %self.session.id, bytes = text.len(), "Refused a frame over limits.max_frame_bytes.");
            let m = format!(
                "frame of {} bytes is over the limit of {max} bytes",
                text.len()
            );
            return self.reply_error(None, ErrorCode::TooLarge, &m, true);
        }
        // Acks are most of what a busy reader sends: the canonical form skips
        // the general parser.
        if let Some(seq) = wire::canonical_ack(text) {
            let r = self.session.lock().outbox.ack(seq);
            return match r {
                Ok(()) => Ok(()),
                Err(m) => self.reply_error(None, ErrorCode::BadRequest, &m, true),
            };
        }
        let frame = match wire::parse(text) {
            Ok(f) => f,
            Err(e) => return self.reply_error(e.id.as_ref(), e.error.code, &e.error.message, true),
        };
        // Acks are exempt: a fast reader acknowledges in proportion to what
        // it is sent, and refusing its acks would only grow its outbox.
        let is_ack = matches!(frame, ClientFrame::Ack { .. });
        if !is_ack && !self.limiter.allow(Instant::now()) {
            tracing::debug!(session = %self.session.id, "Refused a frame over limits.rate_per_sec / limits.rate_burst.");
            let id = frame.id().cloned();
            return self.reply_error(
                id.as_ref(),
                ErrorCode::RateLimited,
                "too many frames: slow down",
                true,
            );
        }
        match frame {
            ClientFrame::Hello(_) => self.reply_error(
                None,
                ErrorCode::BadRequest,
                "hello was already received on this connection",
                true,
            ),
            ClientFrame::Ack { seq } => {
                let r = self.session.lock().outbox.ack(seq);
                match r {
                    Ok(()) => Ok(()),
                    Err(m) => self.reply_error(None, ErrorCode::BadRequest, &m, true),
                }
            }
            ClientFrame::Ping { id } => self.write(&ServerFrame::Pong { id }.encode()),
            ClientFrame::Join { id, group } => {
                let r = self.join(group);
                self.answer(id.as_ref(), r)
            }
            ClientFrame::Leave { id, group } => {
                let r = self.leave(&group);
                self.answer(id.as_ref(), r)
            }
            ClientFrame::Send { id, target, data } => self.routed(id, |c| c.send(&target, data)),
            ClientFrame::Publish {
                id,
                group,
                data,
                echo,
            } => self.routed(id, |c| c.publish(&group, data, echo)),
            ClientFrame::Broadcast { id, data, echo } => {
                self.routed(id, |c| c.broadcast(data, echo))
            }
            ClientFrame::Rpc { id, method, data } => self.rpc(id, &method, data),
            ClientFrame::Refresh { id, token } => {
                self.refreshing = Some((id, token));
                Ok(())
            }
        }
    }

    /// A routing request: answered from memory when its id was seen before,
    /// otherwise routed once and its answer remembered.
    fn routed(
        &mut self,
        id: Option<RequestId>,
        route: impl FnOnce(&Self) -> Result<(), ProtocolError>,
    ) -> Result<(), End> {
        if let Some(id) = &id {
            let seen = self.session.lock().recent.get(id).cloned();
            match seen {
                Some(RecentReply::Done(frame)) => return self.write(&frame),
                Some(RecentReply::Pending) => return Ok(()),
                None => {}
            }
        }
        let result = route(self);
        let Some(id) = id else {
            return match result {
                Ok(()) => Ok(()),
                Err(e) => self.reply_error(None, e.code, &e.message, false),
            };
        };
        let frame = match &result {
            Ok(()) => ServerFrame::ok(&id),
            Err(e) => ServerFrame::error(Some(&id), e.code, &e.message),
        }
        .encode();
        self.session
            .lock()
            .recent
            .insert(id, RecentReply::Done(frame.clone()));
        self.write(&frame)
    }

    fn authorize(&self, action: Action<'_>) -> Result<(), ProtocolError> {
        self.shared.auth.authorize(&self.identity, &action)
    }

    fn delivery(&self, kind: DeliveryKind, group: Option<&str>, data: &RawValue) -> Delivery {
        Delivery::new(
            kind,
            self.session.user.as_deref(),
            Some(&self.session.id),
            group,
            data.get(),
            now_ms(),
        )
    }

    fn send(&self, target: &Target, data: &RawValue) -> Result<(), ProtocolError> {
        if matches!(target, Target::Session(_)) && !self.shared.config.features.send_to_session {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "sending to a session id is disabled on this server",
            ));
        }
        self.authorize(Action::Send { target })?;
        let d = self.delivery(DeliveryKind::Direct, None, data);
        let router = &self.shared.router;
        match target {
            Target::User(u) => router.to_user(u, Some(&self.session), &d).map(drop),
            Target::Session(s) => router.to_session(s, &d).map(drop),
        }
    }

    fn publish(&self, group: &str, data: &RawValue, echo: bool) -> Result<(), ProtocolError> {
        self.authorize(Action::Publish { group })?;
        let d = self.delivery(DeliveryKind::Group, Some(group), data);
        let exclude = (!echo).then_some(&*self.session);
        self.shared.router.to_group(group, exclude, &d);
        Ok(())
    }

    fn broadcast(&self, data: &RawValue, echo: bool) -> Result<(), ProtocolError> {
        if !self.shared.config.features.client_broadcast {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "client broadcast is disabled on this server",
            ));
        }
        self.authorize(Action::Broadcast)?;
        let d = self.delivery(DeliveryKind::Broadcast, None, data);
        let exclude = (!echo).then_some(&*self.session);
        self.shared.router.to_all(exclude, &d);
        Ok(())
    }

    fn join(&self, group: String) -> Result<(), ProtocolError> {
        self.authorize(Action::Join { group: &group })?;
        let group: Arc<str> = group.into();
        let max = self.shared.router.limits().max_groups;
        {
            let mut st = self.session.lock();
            if st.groups.contains(&group) {
                return Ok(());
            }
            if st.groups.len() >= max {
                tracing::debug!(session = %self.session.id, limit = max, "Refused a join: limits.max_groups_per_session reached.");
                return Err(ProtocolError::new(
                    ErrorCode::LimitExceeded,
                    format!("a session may be in at most {max} groups"),
                ));
            }
            st.groups.insert(group.clone());
        }
        let store = self.shared.router.store();
        store.join(&group, &self.session);
        if self.session.is_ended() {
            // The session ended while joining: undo, so no membership dangles.
            store.leave(&group, &self.session.id);
        }
        Ok(())
    }

    fn leave(&self, group: &str) -> Result<(), ProtocolError> {
        self.session.lock().groups.remove(group);
        self.shared.router.store().leave(group, &self.session.id);
        Ok(())
    }

    async fn refresh(&mut self, token: &str) -> Result<(), ProtocolError> {
        let request = AuthRequest {
            token: Some(token),
            user: self.identity.user.as_deref(),
            remote: None,
            client: None,
        };
        let fresh = self.shared.auth.authenticate(request).await?;
        if fresh.user != self.identity.user {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "a refreshed token must be for the same user",
            ));
        }
        self.identity.expires_at = fresh.expires_at;
        Ok(())
    }

    fn rpc(&mut self, id: RequestId, method: &str, data: Option<&RawValue>) -> Result<(), End> {
        let seen = self.session.lock().recent.get(&id).cloned();
        match seen {
            Some(RecentReply::Done(frame)) => return self.write(&frame),
            Some(RecentReply::Pending) => return Ok(()),
            None => {}
        }
        let arg = match data {
            None => serde_json::Value::Null,
            Some(d) => serde_json::from_str(d.get()).expect("rpc data was parsed as JSON already"),
        };
        let ctx = RpcContext {
            session: self.session.id.to_string(),
            user: self.identity.user.clone(),
        };
        let call = self.authorize(Action::Rpc { method }).and_then(|()| {
            self.shared.rpc.call(method, ctx, arg).ok_or_else(|| {
                ProtocolError::new(ErrorCode::NotFound, format!("no rpc method {method:?}"))
            })
        });
        let fut = match call {
            Ok(fut) => fut,
            Err(e) => {
                let frame = ServerFrame::error(Some(&id), e.code, &e.message).encode();
                self.session
                    .lock()
                    .recent
                    .insert(id, RecentReply::Done(frame.clone()));
                return self.write(&frame);
            }
        };
        if self.rpc_in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_RPC_IN_FLIGHT {
            self.rpc_in_flight.fetch_sub(1, Ordering::AcqRel);
            let m =
                format!("at most {MAX_RPC_IN_FLIGHT} rpc calls may be in flight per connection");
            return self.reply_error(Some(&id), ErrorCode::LimitExceeded, &m, false);
        }
        self.session
            .lock()
            .recent
            .insert(id.clone(), RecentReply::Pending);
        let session = self.session.clone();
        let in_flight = self.rpc_in_flight.clone();
        let method = method.to_owned();
        tokio::spawn(async move {
            let frame = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(v)) => match serde_json::value::to_raw_value(&v) {
                    Ok(data) => ServerFrame::Result {
                        id: id.clone(),
                        data,
                    },
                    Err(_) => {
                        ServerFrame::error(Some(&id), ErrorCode::Internal, "the result is not JSON")
                    }
                },
                Ok(Err(e)) => ServerFrame::error(Some(&id), e.code, &e.message),
                Err(_) => {
                    tracing::error!(method, "An rpc handler panicked.");
                    ServerFrame::error(Some(&id), ErrorCode::Internal, "the rpc handler failed")
                }
            }
            .encode();
            session
                .lock()
                .recent
                .insert(id, RecentReply::Done(frame.clone()));
            session.reply(frame);
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(())
    }

    /// Answers a non-routing request: `ok` when it has an id, `error` always
    /// on failure.
    fn answer(&mut self, id: Option<&RequestId>, r: Result<(), ProtocolError>) -> Result<(), End> {
        match (r, id) {
            (Ok(()), Some(id)) => self.write(&ServerFrame::ok(id).encode()),
            (Ok(()), None) => Ok(()),
            (Err(e), id) => self.reply_error(id, e.code, &e.message, false),
        }
    }

    /// Sends an `error`. `strike` counts it as bad input towards the abuse
    /// limit, past which the connection is closed with 1008.
    fn reply_error(
        &mut self,
        id: Option<&RequestId>,
        code: ErrorCode,
        message: &str,
        strike: bool,
    ) -> Result<(), End> {
        self.write(&ServerFrame::error(id, code, message).encode())?;
        if strike && self.strikes.strike(Instant::now()) {
            tracing::info!(session = %self.session.id, limit = self.shared.config.limits.abuse_strikes, "Closed a connection for repeated abuse: limits.abuse_strikes refused frames within ten seconds.");
            return Err(End::Close(close::POLICY, "too many refused frames"));
        }
        Ok(())
    }

    /// Moves queued replies and deliveries into the output buffer, encoding
    /// them under the session's lock (no copy of the queue is made).
    fn drain(&mut self) -> Result<(), End> {
        if let Some(req) = self.link.close_requested() {
            return Err(End::Close(req.code, req.reason));
        }
        let out = &mut self.out;
        let mut st = self.session.lock();
        if !st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.link)) {
            return Err(End::Close(close::TAKEN_OVER, "session taken over"));
        }
        for r in st.replies.drain(..) {
            out.text(&r);
        }
        let mut seq_text = itoa::Buffer::new();
        let mut taken = 0;
        let more = st.outbox.send_next(MAX_BATCH, |item| {
            taken += 1;
            match item {
                Unsent::Message(seq, d) => {
                    let [a, b, c] = d.frame_parts(seq_text.format(seq));
                    out.text_parts(&[a.as_bytes(), b.as_bytes(), c.as_bytes()]);
                }
                Unsent::Gap(from_seq, to_seq) => out.text(
                    &ServerFrame::Gap {
                        from_seq,
                        to_seq,
                        reason: crate::session::outbox::GAP_REASON_OUTBOX_FULL.to_owned(),
                    }
                    .encode(),
                ),
            }
            // Large messages: write what is encoded before taking more.
            out.len() < MAX_TURN_BYTES
        });
        drop(st);
        self.streaming = taken > 1;
        if more {
            self.link.wake();
        }
        Ok(())
    }

    /// Queues a frame this connection answers with; it is written before
    /// the next deliveries, in order.
    fn write(&mut self, text: &str) -> Result<(), End> {
        self.out.text(text);
        Ok(())
    }

    /// Writes the output buffer to the socket, after anything tungstenite
    /// holds (a pong it owes), all within the turn's deadline.
    async fn flush(&mut self) -> Result<(), End> {
        let ws = &mut self.ws;
        let out = &mut self.out;
        let ws_may_hold = std::mem::take(&mut self.ws_may_hold);
        let mut write = std::pin::pin!(async {
            if ws_may_hold {
                ws.flush().await.map_err(|_| ())?;
            }
            out.write_to(ws.get_mut()).await.map_err(|_| ())
        });
        // Most writes complete at once; only one that has to wait for the
        // socket gets a timer.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        let written = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => tokio::time::timeout_at(self.deadline, write).await,
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(End::Gone("write error")),
            Err(_) => Err(End::Gone("write timeout")),
        }
    }

    /// Closes the connection as `end` says and detaches the session (ending
    /// it when the client closed cleanly).
    async fn finish(mut self, end: End) {
        self.deadline = tokio::time::Instant::now() + self.write_timeout;
        // Only a close with 1000 says the client is done with its session;
        // any other close (including one without a code) keeps it resumable.
        let clean = matches!(end, End::ClientClosed(Some(close::NORMAL)));
        match &end {
            End::Close(code, reason) => {
                // The answer that explains the close (an `error`) goes first.
                let _ = self.flush().await;
                if *code == close::GOING_AWAY {
                    // Graceful shutdown: write what is already queued first.
                    for _ in 0..64 {
                        if self.drain().is_err() || self.flush().await.is_err() {
                            break;
                        }
                        if self.session.lock().outbox.unsent() == 0 {
                            break;
                        }
                    }
                }
                let frame = CloseFrame {
                    code: CloseCode::from(*code),
                    reason: (*reason).into(),
                };
                let ws = &mut self.ws;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    ws.send(Message::Close(Some(frame))).await?;
                    while let Some(Ok(_)) = ws.next().await {}
                    Ok::<_, WsError>(())
                })
                .await;
            }
            End::ClientClosed(_) => {
                self.deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                let _ = self.flush().await;
            }
            End::Gone(_) => {}
        }
        tracing::debug!(session = %self.session.id, conn = self.link.id, ?end, "A connection ended.");
        let ttl_zero = self.shared.config.session.ttl_ms == 0;
        let end_session = {
            let mut st = self.session.lock();
            if st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.link)) {
                st.conn = None;
                st.replies.clear();
                st.detached_since = Some(Instant::now());
                clean || ttl_zero
            } else {
                false
            }
        };
        let shared = &self.shared;
        shared.events.emit(|| HostEvent::Disconnected {
            session: self.session.id.to_string(),
            user: self.session.user.as_ref().map(|u| u.to_string()),
            reason: end.reason(),
        });
        if end_session {
            super::end_session(shared, &self.session, close::NORMAL, "session closed");
        }
    }
}

/// Whether a connection's socket may have a frame to read.
///
/// tungstenite is polled for a frame only when the socket has signalled
/// readiness since the last poll (or a frame was just read, so more may be
/// buffered). A poll that finds nothing still costs tungstenite a read
/// attempt and a zero-filled buffer, which was about a fifth of the
/// instructions of a turn that only writes a delivery. The socket's read
/// readiness wakes `signal`, which wakes the task.
struct ReadWaker {
    signal: Arc<Signal>,
    /// A waker for `signal`, made once.
    waker: Waker,
}

impl ReadWaker {
    fn new() -> Self {
        let signal = Arc::new(Signal::new(true));
        ReadWaker {
            waker: Waker::from(signal.clone()),
            signal,
        }
    }

    /// The next frame, if the socket may have one.
    fn poll_frame<S>(
        &self,
        ws: &mut WebSocketStream<S>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.signal.poll_take(cx).is_pending() {
            return Poll::Pending;
        }
        let polled = ws.poll_next_unpin(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            self.signal.mark();
        }
        polled
    }
}
