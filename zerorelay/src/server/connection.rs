//! One connection after its `hello`: a single task that reads frames, has
//! them answered ([`super::dispatch`]), writes the session's deliveries in
//! batches ([`super::writer`]) and keeps the heartbeat.
//!
//! One task per connection (not a reader and a writer) keeps an idle
//! connection to one small future (the greeting and the close are boxed and
//! gone once done). Answers and deliveries are encoded into the connection's
//! output buffer ([`super::frames`]) and written with one call per loop
//! turn, after every frame that was already readable has been handled and
//! the outbox drained; tungstenite reads frames, answers pings and closes.
//!
//! Whatever happens to the task, its session is released: a panic is
//! caught at the loop, logged with the frame being handled and answered
//! with 1011, and a [`Drop`] on the connection detaches the session (and
//! schedules its expiry) even when the task is torn down mid-way.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::frames::Output;
use super::limiter::{RateLimiter, Strikes};
use super::listener::{Handshaking, Upgrade};
use super::Shared;
use crate::auth::rbac::Access;
use crate::auth::Identity;
use crate::error::ErrorCode;
use crate::protocol::{close, ServerFrame};
use crate::session::{ConnLink, Session, Signal};

/// Frames already buffered that are handled before the next flush.
const MAX_READ_AHEAD: usize = 64;

/// How a connection ends.
#[derive(Debug)]
pub(super) enum End {
    /// The server closes with this code, through tungstenite.
    Close(u16, &'static str),
    /// The server closes with this code after tungstenite failed on the
    /// input (a protocol violation, an oversized frame): the close frame is
    /// written past it, and the unread input is drained briefly so that the
    /// client sees the close rather than a reset.
    Abort(u16, &'static str),
    /// The client sent a close frame with this code.
    ClientClosed(Option<u16>),
    /// The socket is gone (reset, write timeout, EOF without close).
    Gone(&'static str),
}

impl End {
    /// Why the connection ended, for the host's `disconnected` event.
    pub(super) fn reason(&self) -> String {
        match self {
            End::Close(code, reason) | End::Abort(code, reason) => format!("{reason} ({code})"),
            End::ClientClosed(Some(code)) => format!("closed by the client ({code})"),
            End::ClientClosed(None) => "closed by the client".to_owned(),
            End::Gone(why) => (*why).to_owned(),
        }
    }
}

/// How long before the expiry of credentials valid for `lifetime` the
/// `refresh_required` notice goes out: `auth.refresh_ahead_ms` (`configured`),
/// or 10% of the lifetime if that is shorter, but not less than one second
/// (or half the lifetime, for shorter ones), so that a short-lived token
/// leaves its client time to fetch the next. 0 configured: no notice.
pub(crate) fn notice_ahead(configured: Duration, lifetime: Duration) -> Duration {
    let floor = Duration::from_secs(1).min(lifetime / 2);
    configured.min((lifetime / 10).max(floor))
}

/// Runs a connection to its end.
///
/// The greeting and the close run in boxed futures of their own, so that
/// the future an idle connection keeps is only the steady-state loop.
pub(crate) fn run<S>(
    shared: Arc<Shared>,
    ws: WebSocketStream<S>,
    peer: Option<SocketAddr>,
    from: Upgrade,
    handshaking: Handshaking,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Made here, not in the async block, so that the block holds a pointer
    // rather than the stream and the arguments for its whole life.
    let greeting = Box::pin(super::handshake::greet(shared, ws, peer, from, handshaking));
    async move {
        let Some((mut conn, greeted)) = greeting.await else {
            return;
        };
        let end = match greeted {
            Ok(()) => match AssertUnwindSafe(conn.run()).catch_unwind().await {
                Ok(end) => end,
                Err(panic) => {
                    tracing::error!(
                        session = %conn.session.id,
                        frame_type = conn.frame_type,
                        panic = panic_message(&*panic),
                        "A connection task panicked; the connection is closed with 1011 and its session stays resumable. This is a bug."
                    );
                    End::Close(close::INTERNAL, "internal error")
                }
            },
            Err(e) => e,
        };
        let code = match &end {
            End::Close(c, _) | End::Abort(c, _) => Some(*c),
            End::ClientClosed(c) => Some(c.unwrap_or(1005)),
            End::Gone(_) => None,
        };
        conn.shared.metrics.closed(code);
        Box::pin(conn.finish(end)).await;
    }
}

/// The text of a panic's payload, when it has one.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A connection with its session.
pub(super) struct Conn<S> {
    pub(super) shared: Arc<Shared>,
    pub(super) ws: WebSocketStream<S>,
    pub(super) session: Arc<Session>,
    pub(super) link: Arc<ConnLink>,
    pub(super) identity: Identity,
    /// What the identity may do.
    pub(super) access: Access,
    /// Frames of every kind but acks.
    pub(super) limiter: RateLimiter,
    /// Acks, with their own budget.
    pub(super) acks: RateLimiter,
    /// Client broadcasts, with their own budget.
    pub(super) broadcasts: RateLimiter,
    pub(super) strikes: Strikes,
    pub(super) last_seen: Instant,
    /// Frames (answers, then deliveries) waiting for the next flush.
    pub(super) out: Output,
    /// The last drain took more than one message: more are likely on the way.
    pub(super) streaming: bool,
    /// tungstenite may hold output (a pong it owes, from a read) that must
    /// be written before the output buffer.
    pub(super) ws_may_hold: bool,
    /// Whether the socket may have a frame to read (see [`ReadWaker`]).
    pub(super) readable: ReadWaker,
    /// A request held until the connection's loop has awaited what it
    /// needs ([`super::held`]): the host's hooks, or the authenticator for
    /// a `refresh`.
    pub(super) held: Option<Box<super::held::HeldRequest>>,
    pub(super) rpc_in_flight: Arc<AtomicUsize>,
    pub(super) write_timeout: Duration,
    /// Writes started in this loop turn must finish by then (one clock read
    /// per turn rather than a timer per frame).
    pub(super) deadline: tokio::time::Instant,
    /// The live settings this connection last took (see [`super::live`]).
    pub(super) live: Arc<super::live::Live>,
    pub(super) live_gen: u64,
    /// The type of the frame being handled, for the log of a panic.
    pub(super) frame_type: &'static str,
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
        // One timer for the credentials: first for the `refresh_required`
        // notice, then for the expiry. Made again only when a refresh
        // changes the identity (not a timer per loop turn).
        let mut expiry: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut expiry_for = None;
        let mut noticed = false;
        loop {
            if self.identity.expires_at != expiry_for {
                expiry_for = self.identity.expires_at;
                noticed = false;
                expiry = expiry_for.map(|t| Box::pin(tokio::time::sleep(self.notice_in(t))));
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
                _ = expired => match (noticed, expiry_for) {
                    (false, Some(at)) => {
                        noticed = true;
                        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                        if let Some(timer) = &mut expiry {
                            timer.as_mut().reset(tokio::time::Instant::now() + left);
                        }
                        if left.is_zero() {
                            Err(End::Close(close::TOKEN_EXPIRED, "token expired"))
                        } else {
                            let notice = ServerFrame::RefreshRequired {
                                expires_in_ms: left.as_millis() as u64,
                            };
                            self.write(&notice.encode())
                        }
                    }
                    _ => Err(End::Close(close::TOKEN_EXPIRED, "token expired")),
                },
            };
            // Only after a read can more frames be buffered; probing the
            // socket otherwise costs tungstenite a zero-filled read buffer.
            let step = match step {
                Ok(()) if read => self.read_ahead(),
                e => e,
            };
            // A held request (a `refresh`, or a request for the host's
            // hooks) is finished before the frames after it are read.
            let step = match step {
                Ok(()) => match self.held.take() {
                    Some(held) => Box::pin(self.finish_held(*held)).await,
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
            if self.held.is_some() {
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

    /// How long until `refresh_required` is due for credentials expiring
    /// at `at` (see [`notice_ahead`]). Asked when the credentials arrive (at
    /// `welcome`, after a `refresh`), so the time left is their lifetime.
    fn notice_in(&self, at: SystemTime) -> Duration {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        left.saturating_sub(notice_ahead(
            Duration::from_millis(self.shared.config.auth.refresh_ahead_ms),
            left,
        ))
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
            Some(Err(e)) => return Err(self.on_read_error(e)),
            Some(Ok(m)) => m,
        };
        self.last_seen = Instant::now();
        match msg {
            Message::Text(t) => self.on_text(&t),
            Message::Binary(_) => {
                self.shared.metrics.frame(crate::metrics::FrameType::Binary);
                self.frame_type = "binary";
                self.reply_error(
                    None,
                    ErrorCode::Unsupported,
                    "binary frames are not supported: protocol v1 is JSON text",
                    true,
                )
            }
            Message::Close(frame) => Err(End::ClientClosed(frame.map(|f| u16::from(f.code)))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// How a read error ends the connection: a frame over the transport
    /// limit with 1009 (after a `too_large` error), a violation of RFC 6455
    /// with 1002, invalid UTF-8 in a text frame with 1007; an I/O error
    /// leaves nothing to close.
    fn on_read_error(&mut self, e: WsError) -> End {
        match e {
            WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
                let max = self.shared.config.limits.max_frame_bytes
                    * self.shared.config.limits.transport_frame_factor; // fixed at start
                let _ = self.reply_error(
                    None,
                    ErrorCode::TooLarge,
                    &format!("frame is over the transport limit of {max} bytes"),
                    false,
                );
                End::Abort(close::TOO_BIG, "frame too large")
            }
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                End::Gone("connection closed without a close frame")
            }
            WsError::Capacity(_) | WsError::Protocol(_) => {
                tracing::debug!(session = %self.session.id, error = %e, "Closed a connection that broke the WebSocket protocol.");
                End::Abort(close::PROTOCOL, "websocket protocol error")
            }
            WsError::Utf8(_) => {
                tracing::debug!(session = %self.session.id, "Closed a connection that sent a text frame that is not UTF-8.");
                End::Abort(close::INVALID_PAYLOAD, "text frame is not valid UTF-8")
            }
            e => {
                tracing::debug!(session = %self.session.id, error = %e, "A connection failed.");
                End::Gone("read error")
            }
        }
    }

    /// Releases the session when this connection is still the one attached:
    /// detaches it and schedules its expiry; a session something else
    /// detached (a slow-consumer close) is scheduled too. Returns whether
    /// it was attached.
    pub(super) fn release(&self) -> bool {
        release(&self.shared, &self.session, &self.link, true)
    }
}

/// Detaches `session` from `link` if it is still attached to it, and
/// schedules the expiry of the session it left detached (with `adopt`,
/// also of one left detached earlier by a slow-consumer close). Returns
/// whether it was attached.
fn release(shared: &Shared, session: &Arc<Session>, link: &Arc<ConnLink>, adopt: bool) -> bool {
    let (attached, detached) = {
        let mut st = session.lock();
        let attached = st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, link));
        if attached {
            st.conn = None;
            st.replies.clear();
            st.slow_since = None;
            st.detached_since = Some(Instant::now());
        }
        (attached, st.conn.is_none() && !st.ended)
    };
    if detached && (attached || adopt) {
        shared
            .expiry
            .schedule(session, Instant::now() + shared.config.session_ttl());
    }
    attached
}

impl<S> Drop for Conn<S> {
    /// A connection torn down without [`Conn::finish`] (a panic while
    /// closing, a runtime shutting down) still leaves its session detached
    /// and expiring, never attached to a connection that is gone.
    fn drop(&mut self) {
        release(&self.shared, &self.session, &self.link, false);
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
pub(super) struct ReadWaker {
    signal: Arc<Signal>,
    /// A waker for `signal`, made once.
    waker: Waker,
}

impl ReadWaker {
    pub(super) fn new() -> Self {
        let signal = Arc::new(Signal::new(true));
        ReadWaker {
            waker: Waker::from(signal.clone()),
            signal,
        }
    }

    /// The next frame, if the socket may have one.
    ///
    /// No readiness is lost: when tungstenite finds no whole frame (part of
    /// one may have arrived), the socket will wake `signal`, and the task's
    /// waker is registered on `signal` before this returns `Pending`. Taking
    /// the flag without registering (it was set) and then finding only part
    /// of a frame used to leave the rest of it unread until some other
    /// wake-up, up to a heartbeat later.
    pub(super) fn poll_frame<S>(
        &self,
        ws: &mut WebSocketStream<S>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            // Registers the task's waker when the flag is clear; takes a
            // readiness that arrived since the last poll.
            if self.signal.poll_take(cx).is_pending() {
                return Poll::Pending;
            }
            let polled = ws.poll_next_unpin(&mut Context::from_waker(&self.waker));
            if polled.is_ready() {
                self.signal.mark();
                return polled;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::notice_ahead;
    use std::time::Duration;

    #[test]
    fn the_refresh_notice_leaves_short_tokens_time_and_long_ones_the_configured_margin() {
        let s = Duration::from_secs;
        let minute = s(60);
        assert_eq!(notice_ahead(minute, s(3_600)), minute);
        assert_eq!(notice_ahead(minute, s(300)), s(30));
        assert_eq!(notice_ahead(minute, s(5)), s(1));
        assert_eq!(notice_ahead(minute, s(1)), Duration::from_millis(500));
        assert_eq!(notice_ahead(Duration::ZERO, s(3_600)), Duration::ZERO);
    }
}
