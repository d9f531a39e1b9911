//! Sessions: identity, group memberships, the outbox of unacknowledged
//! deliveries, and the memory of recent request ids.
//!
//! A session outlives its connections. While a connection is attached, the
//! connection's writer drains the session's outbox; when the connection drops,
//! the outbox keeps collecting (within its bounds) until the session is
//! resumed or expires.
//!
//! Everything here is plain state behind one short per-session lock: no I/O,
//! no `await`. The [`store`] module holds the registry of sessions.

pub mod budget;
pub mod expiry;
pub mod outbox;
pub mod recent;
pub mod resume;

pub mod store;

use std::collections::HashSet;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

pub use budget::OutboxBudget;
pub use expiry::ExpiryQueue;
pub use outbox::{Outbox, Unsent};
pub use recent::{Recent, RecentReply};
pub use store::{MemoryStore, SessionStore};

/// Bytes of entropy in a session id (128 bits).
const SESSION_ID_BYTES: usize = 16;

/// Makes a new session id: `s_` followed by 32 hex digits from the operating
/// system's cryptographic random source.
pub fn new_session_id() -> Arc<str> {
    let mut b = [0u8; SESSION_ID_BYTES];
    getrandom::fill(&mut b).expect("the operating system's random source is available");
    let mut s = String::with_capacity(2 + 2 * SESSION_ID_BYTES);
    s.push_str("s_");
    for x in b {
        s.push(char::from_digit(u32::from(x >> 4), 16).expect("a nibble is a hex digit"));
        s.push(char::from_digit(u32::from(x & 15), 16).expect("a nibble is a hex digit"));
    }
    s.into()
}

/// Why a connection is being closed by the server side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// WebSocket close code (see [`crate::protocol::close`]).
    pub code: u16,
    /// Close reason text.
    pub reason: &'static str,
}

/// A flag that wakes the one task that waits on it: set by anyone, taken by
/// that task. What a `Notify` does for a single waiter, without its lock
/// and waiter list. As a [`Wake`], it can be the waker a socket wakes.
#[derive(Debug)]
pub(crate) struct Signal {
    set: AtomicBool,
    task: AtomicWaker,
}

impl Signal {
    pub(crate) fn new(set: bool) -> Self {
        Signal {
            set: AtomicBool::new(set),
            task: AtomicWaker::new(),
        }
    }

    /// Sets the flag and wakes the waiting task.
    #[inline]
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.task.wake();
    }

    /// Sets the flag without a wake-up: for the waiting task itself, which
    /// takes it on its next look.
    #[inline]
    pub(crate) fn mark(&self) {
        self.set.store(true, Ordering::Release);
    }

    /// Whether the flag is set.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Ready, clearing the flag, if it is set; otherwise the task is woken
    /// when it is.
    #[inline]
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.task.register(cx.waker());
        // A set between the check and the registration found no waker.
        if self.set.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.set();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set();
    }
}

/// The link between a session and the connection currently attached to it.
///
/// The router notifies it when deliveries are queued and asks it to close
/// (slow consumer, take-over, host disconnect); the connection's task reacts.
/// One task waits on a link, so it is a [`Signal`]: a fan-out wakes every
/// recipient's link once per message.
#[derive(Debug)]
pub struct ConnLink {
    /// A process-unique connection number, for logs and to tell connections apart.
    pub id: u64,
    woken: Signal,
    close: OnceLock<CloseRequest>,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl ConnLink {
    /// A new link with a fresh connection number.
    pub fn new() -> Arc<Self> {
        Arc::new(ConnLink {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            woken: Signal::new(false),
            close: OnceLock::new(),
        })
    }

    /// Wakes the connection's writer. A wake-up while it is busy is kept
    /// for its next wait.
    pub fn wake(&self) {
        // A load first: until the writer runs, later fan-outs find the flag
        // set and skip the store and the wake-up. No wake-up is lost: the
        // router queues under the session's lock and the writer drains under
        // it after clearing the flag, so a fan-out that sees the flag set
        // either queued before that drain or saw a newer wake-up's flag.
        if !self.woken.is_set() {
            self.woken.set();
        }
    }

    /// Waits until woken (at once if woken since the last wait). Only the
    /// connection's own task waits.
    pub async fn woken(&self) {
        poll_fn(|cx| self.woken.poll_take(cx)).await;
    }

    /// Asks the connection to close; the first request wins.
    pub fn request_close(&self, code: u16, reason: &'static str) {
        let _ = self.close.set(CloseRequest { code, reason });
        // Always set (not skipped when already set, as `wake` may be): the
        // connection's next take of the flag must see the request.
        self.woken.set();
    }

    /// The pending close request, if any.
    pub fn close_requested(&self) -> Option<CloseRequest> {
        self.close.get().cloned()
    }
}

/// The limits that bound one session's memory.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Bytes queued for the attached connection and not yet handed to its
    /// writer above which the connection is judged slow ...
    pub slow_consumer_bytes: usize,
    /// ... when they stay above it this long.
    pub slow_consumer_after: Duration,
    /// Unacknowledged deliveries kept for redelivery.
    pub outbox_messages: usize,
    /// Bytes of unacknowledged deliveries kept for redelivery.
    pub outbox_bytes: usize,
    /// Groups one session may be in.
    pub max_groups: usize,
    /// Request ids remembered for duplicate suppression.
    pub recent_requests: usize,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    /// The session id.
    pub id: Arc<str>,
    /// The user, or `None` for an anonymous development session.
    pub user: Option<Arc<str>>,
    /// The secret a client presents to resume this session (never logged,
    /// never listed; see [`resume`]).
    pub resume_key: crate::protocol::ResumeKey,
    /// When the session was created.
    pub created: Instant,
    /// Whether the session has an entry in the expiry queue.
    expiry_scheduled: AtomicBool,
    state: Mutex<SessionState>,
}

/// The mutable part of a session, behind the session's lock.
#[derive(Debug)]
pub struct SessionState {
    /// Groups this session is in.
    pub groups: HashSet<Arc<str>>,
    /// Deliveries, seq numbers and acknowledgements.
    pub outbox: Outbox,
    /// Encoded control frames (`ok`, `error`, `pong`, `result`) for the
    /// attached connection.
    pub replies: std::collections::VecDeque<String>,
    /// Recent routing request ids and their answers.
    pub recent: Recent,
    /// The attached connection.
    pub conn: Option<Arc<ConnLink>>,
    /// When the last connection went away, for expiry.
    pub detached_since: Option<Instant>,
    /// Since when the attached connection's unsent bytes have been over
    /// [`SessionLimits::slow_consumer_bytes`].
    pub slow_since: Option<Instant>,
    /// Set once the session has ended (closed cleanly, expired, kicked).
    pub ended: bool,
}

/// What happened when a delivery was queued on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued; the attached connection (if any) was woken.
    Ok,
    /// Queued, and the oldest unacknowledged deliveries were dropped to make
    /// room; `first` when these are the session's first drops.
    Dropped {
        /// How many were dropped now.
        count: u64,
        /// Whether the session had never dropped before.
        first: bool,
    },
    /// The attached connection fell too far behind and was detached.
    SlowConsumer,
    /// The session has ended; nothing was queued.
    Ended,
}

impl SessionState {
    /// Detaches the attached connection, if any, asking it to close with
    /// `code` first: under the session's lock, so that the connection's next
    /// look at the session finds the close request and never mistakes the
    /// detach for a take-over. Returns the detached connection.
    pub fn detach(&mut self, code: u16, reason: &'static str) -> Option<Arc<ConnLink>> {
        let conn = self.conn.take()?;
        conn.request_close(code, reason);
        self.detached_since = Some(Instant::now());
        self.slow_since = None;
        self.replies.clear();
        Some(conn)
    }

    /// Whether the attached connection is a slow consumer: the bytes queued
    /// for it and not yet handed to its writer have stayed over
    /// `slow_consumer_bytes` for `slow_consumer_after`. A reader that keeps
    /// up drains a burst within a few loop turns, however many messages it
    /// holds, and is never judged slow; a reader that stops reading blocks
    /// its writer, whose queue then stays full.
    fn is_slow(&mut self, limits: &SessionLimits) -> bool {
        if self.outbox.unsent_bytes() <= limits.slow_consumer_bytes {
            self.slow_since = None;
            return false;
        }
        let now = Instant::now();
        let since = *self.slow_since.get_or_insert(now);
        now.saturating_duration_since(since) >= limits.slow_consumer_after
    }

    /// Called by the writer after it took what it could: a queue back under
    /// the bound restarts the slow-consumer clock.
    pub fn writer_caught_up(&mut self, limits: &SessionLimits) {
        if self.outbox.unsent_bytes() <= limits.slow_consumer_bytes {
            self.slow_since = None;
        }
    }
}

impl Session {
    /// A new, detached session.
    pub fn new(id: Arc<str>, user: Option<Arc<str>>, limits: &SessionLimits) -> Self {
        Session {
            id,
            user,
            resume_key: crate::protocol::ResumeKey::generate(),
            created: Instant::now(),
            expiry_scheduled: AtomicBool::new(false),
            state: Mutex::new(SessionState {
                groups: HashSet::new(),
                outbox: Outbox::new(),
                replies: std::collections::VecDeque::new(),
                recent: Recent::new(limits.recent_requests),
                conn: None,
                detached_since: Some(Instant::now()),
                slow_since: None,
                ended: false,
            }),
        }
    }

    /// Locks the session state. Never hold it across an `.await` or while
    /// taking a group lock.
    pub fn lock(&self) -> parking_lot::MutexGuard<'_, SessionState> {
        self.state.lock()
    }

    /// Queues a delivery: assigns its seq, bounds the outbox, and wakes or
    /// detaches the attached connection. Also returns how the outbox's
    /// bytes changed, for the server-wide budget.
    pub fn queue(&self, d: &crate::protocol::Delivery, limits: &SessionLimits) -> (Queued, i64) {
        let mut st = self.state.lock();
        if st.ended {
            return (Queued::Ended, 0);
        }
        let before = st.outbox.bytes();
        // The writer takes everything unsent when it runs (and wakes itself
        // for more), so only the first of a burst needs to wake it.
        let idle = st.outbox.unsent() == 0;
        let dropped = st
            .outbox
            .push(d.clone(), limits.outbox_messages, limits.outbox_bytes);
        let delta = st.outbox.bytes() as i64 - before as i64;
        if st.conn.is_some() {
            if st.is_slow(limits) {
                st.detach(crate::protocol::close::SLOW_CONSUMER, "slow consumer");
                return (Queued::SlowConsumer, delta);
            }
            if idle {
                st.conn.as_ref().expect("checked").wake();
            }
        }
        let queued = if dropped > 0 {
            Queued::Dropped {
                count: dropped,
                first: st.outbox.dropped_total() == dropped,
            }
        } else {
            Queued::Ok
        };
        (queued, delta)
    }

    /// Queues an encoded control frame (an rpc `result`, say) for whichever
    /// connection is attached now; dropped when none is (the client re-sends
    /// the request after resuming and gets the remembered answer).
    pub fn reply(&self, frame: String) {
        let mut st = self.state.lock();
        if let Some(conn) = st.conn.clone() {
            st.replies.push_back(frame);
            drop(st);
            conn.wake();
        }
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.state.lock().ended
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake, Waker};

    use futures_util::FutureExt;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_wake_is_kept_until_the_next_wait_and_wakes_coalesce() {
        let link = ConnLink::new();
        assert!(link.woken().now_or_never().is_none(), "not woken yet");
        link.wake();
        link.wake();
        assert!(link.woken().now_or_never().is_some(), "kept for the wait");
        assert!(
            link.woken().now_or_never().is_none(),
            "two wakes before a wait are one"
        );
    }

    #[test]
    fn a_waiting_task_is_woken_once_per_burst() {
        let link = ConnLink::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut wait = Box::pin(link.woken());
        assert!(wait
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        link.wake();
        link.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(wait
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
    }

    #[test]
    fn a_signal_as_a_waker_sets_its_flag_and_wakes_the_task() {
        let signal = Arc::new(Signal::new(false));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let mut cx = Context::from_waker(&task);
        assert!(signal.poll_take(&mut cx).is_pending());
        Waker::from(signal.clone()).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(signal.poll_take(&mut cx).is_ready());
        signal.mark();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "mark does not wake");
        assert!(signal.poll_take(&mut cx).is_ready(), "but is taken");
        assert!(signal.poll_take(&mut cx).is_pending());
    }

    #[test]
    fn the_first_close_request_wins_and_wakes() {
        let link = ConnLink::new();
        assert_eq!(link.close_requested(), None);
        link.request_close(4001, "first");
        link.request_close(4002, "second");
        assert_eq!(
            link.close_requested(),
            Some(CloseRequest {
                code: 4001,
                reason: "first"
            })
        );
        assert!(link.woken().now_or_never().is_some());
    }
}
