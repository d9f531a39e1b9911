//! Session expiry as a deadline queue: the cost follows expiries, not the
//! number of sessions.
//!
//! Every detach schedules the session's deadline (detach time plus the
//! session TTL). The TTL is one setting, so deadlines arrive in order and a
//! FIFO is a sorted queue: the expiry task sleeps until the first deadline,
//! pops what is due and checks each session under its lock (it may have
//! been resumed, or detached again later, since).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Session;

/// Sessions waiting for their expiry deadline.
#[derive(Debug, Default)]
pub struct ExpiryQueue {
    queue: Mutex<VecDeque<(Instant, Weak<Session>)>>,
    added: Notify,
}

impl ExpiryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `session` to be checked at `deadline`. A weak reference:
    /// a session that ended meanwhile is not kept alive by the queue.
    pub fn schedule(&self, session: &Arc<Session>, deadline: Instant) {
        let was_empty = {
            let mut q = self.queue.lock();
            q.push_back((deadline, Arc::downgrade(session)));
            q.len() == 1
        };
        if was_empty {
            self.added.notify_one();
        }
    }

    /// Entries scheduled and not yet taken.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the sessions whose deadline is at or before `now` (still
    /// alive), and the next deadline after them.
    pub fn due(&self, now: Instant) -> (Vec<Arc<Session>>, Option<Instant>) {
        let mut due = Vec::new();
        let mut q = self.queue.lock();
        while let Some((at, _)) = q.front() {
            if *at > now {
                return (due, Some(*at));
            }
            let (_, s) = q.pop_front().expect("front exists");
            if let Some(s) = s.upgrade() {
                due.push(s);
            }
        }
        (due, None)
    }

    /// Waits until something is scheduled into an empty queue, or `max`.
    pub async fn wait_for_more(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.added.notified()).await;
    }
}
