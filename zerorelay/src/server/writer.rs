//! The write path of a connection: moving replies and deliveries from the
//! session into the output buffer, writing it within the write deadline,
//! and the close.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::connection::{Conn, End};
use super::HostEvent;
use crate::metrics::{monotonic_ns, LocalLatency};
use crate::protocol::{close, ServerFrame};
use crate::session::Unsent;
use std::sync::atomic::Ordering;

/// Items moved from the outbox per lock; the writer loops for more.
const MAX_BATCH: usize = 256;
/// Bytes encoded per loop turn before the output is written (one frame
/// larger than this is written whole).
const MAX_TURN_BYTES: usize = 64 << 10;
/// How long, and how many bytes, unread input is drained after a close
/// written past tungstenite, so that the client reads the close frame
/// instead of a connection reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Moves queued replies and deliveries into the output buffer, encoding
    /// them under the session's lock (no copy of the queue is made).
    pub(super) fn drain(&mut self) -> Result<(), End> {
        if let Some(req) = self.link.close_requested() {
            return Err(End::Close(req.code, req.reason));
        }
        let out = &mut self.out;
        let mut st = self.session.lock();
        if !st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.link)) {
            // Whoever detached this connection asked it to close first,
            // under this lock (`SessionState::detach`): its code is the real
            // cause (a slow consumer is not a take-over).
            let req = self.link.close_requested();
            let (code, reason) = req.map_or((close::TAKEN_OVER, "session taken over"), |r| {
                (r.code, r.reason)
            });
            return Err(End::Close(code, reason));
        }
        for r in st.replies.drain(..) {
            out.text(&r);
        }
        let mut seq_text = itoa::Buffer::new();
        let mut taken = 0;
        let metrics = &self.shared.metrics;
        // At most one clock read per drain, and none for a drain that
        // writes no delivery (only replies); latencies are added to the
        // shared histogram once, after the session's lock is released.
        let timed = metrics.on;
        let mut now = None;
        let mut latency = LocalLatency::default();
        let (mut gaps, mut resent) = (0u64, 0u64);
        let resent_up_to = st.outbox.resent_up_to();
        let more = st.outbox.send_next(MAX_BATCH, |item| {
            taken += 1;
            match item {
                Unsent::Message(seq, d) => {
                    let [a, b, c] = d.frame_parts(seq_text.format(seq));
                    out.text_parts(&[a.as_bytes(), b.as_bytes(), c.as_bytes()]);
                    if seq <= resent_up_to {
                        resent += 1;
                    } else if timed {
                        let t = *now.get_or_insert_with(monotonic_ns);
                        latency.observe(t.saturating_sub(d.born()));
                    }
                }
                Unsent::Gap(from_seq, to_seq) => {
                    gaps += 1;
                    out.text(
                        &ServerFrame::Gap {
                            from_seq,
                            to_seq,
                            reason: crate::session::outbox::GAP_REASON_OUTBOX_FULL.to_owned(),
                        }
                        .encode(),
                    )
                }
            }
            // Large messages: write what is encoded before taking more.
            out.len() < MAX_TURN_BYTES
        });
        st.writer_caught_up(self.shared.router.limits());
        drop(st);
        metrics.latency.add(&latency);
        if gaps > 0 {
            metrics.gaps.fetch_add(gaps, Ordering::Relaxed);
        }
        if resent > 0 {
            metrics.redeliveries.fetch_add(resent, Ordering::Relaxed);
        }
        self.streaming = taken > 1;
        if more {
            self.link.wake();
        }
        Ok(())
    }

    /// Queues a frame this connection answers with; it is written before
    /// the next deliveries, in order.
    pub(super) fn write(&mut self, text: &str) -> Result<(), End> {
        self.out.text(text);
        Ok(())
    }

    /// Writes the output buffer to the socket, after anything tungstenite
    /// holds (a pong it owes), all within the turn's deadline.
    pub(super) async fn flush(&mut self) -> Result<(), End> {
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
    pub(super) async fn finish(mut self, end: End) {
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
            End::Abort(code, reason) => {
                // tungstenite failed on the input: the close is written past
                // it, after the error that explains it.
                self.out.close(*code, reason);
                let _ = self.flush().await;
                linger(self.ws.get_mut()).await;
            }
            End::ClientClosed(_) => {
                self.deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                let _ = self.flush().await;
            }
            End::Gone(_) => {}
        }
        tracing::debug!(session = %self.session.id, conn = self.link.id, ?end, "A connection ended.");
        let ttl_zero = self.shared.config.session.ttl_ms == 0;
        let end_session = self.release() && (clean || ttl_zero);
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

/// Reads and discards input until the peer closes, [`LINGER`] passes or
/// [`LINGER_BYTES`] were read. Closing a socket with unread input makes
/// the kernel send a reset, which can overtake the close frame just
/// written.
pub(super) async fn linger<S: AsyncRead + Unpin>(io: &mut S) {
    let mut buf = [0u8; 2048];
    let mut read = 0usize;
    let _ = tokio::time::timeout(LINGER, async {
        while read < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}
