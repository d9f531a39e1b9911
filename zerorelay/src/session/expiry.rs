//! Session expiry as a deadline queue: the cost follows expiries, not the
//! number of sessions.
//!
//! Every detach schedules the session's deadline (detach time plus the
//! session TTL). The TTL is one setting, so deadlines arrive in order and a
//! FIFO is a sorted queue: the expiry task sleeps until the first deadline,
//! pops what is due and checks each session under its lock (it may have
//! been resumed, or detached again later, since: then it is scheduled again
//! for its new deadline). A session is in the queue at most once, so the
//! queue holds at most one entry per detached session however often
//! sessions reconnect.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
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

    /// Schedules `session` to be checked at `deadline`, unless it is in the
    /// queue already (with an earlier deadline: the check then schedules it
    /// again if it is not yet due). A weak reference: a session that ended
    /// meanwhile is not kept alive by the queue.
    pub fn schedule(&self, session: &Arc<Session>, deadline: Instant) {
        if session.expiry_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
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
                s.expiry_scheduled.store(false, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionLimits;

    fn session(id: &str) -> Arc<Session> {
        let limits = SessionLimits {
            slow_consumer_bytes: 1 << 20,
            slow_consumer_after: Duration::from_secs(5),
            outbox_messages: 16,
            outbox_bytes: 1 << 20,
            max_groups: 16,
            recent_requests: 1_024,
        };
        Arc::new(Session::new(id.into(), None, &limits))
    }

    #[test]
    fn a_session_is_queued_once_and_again_after_it_was_taken() {
        let q = ExpiryQueue::new();
        let (a, b) = (session("a"), session("b"));
        let t0 = Instant::now();
        for i in 0..1_000 {
            q.schedule(&a, t0 + Duration::from_millis(i));
        }
        q.schedule(&b, t0 + Duration::from_millis(5));
        assert_eq!(q.len(), 2);
        let (due, next) = q.due(t0);
        assert_eq!(due.len(), 1);
        assert_eq!(&*due[0].id, "a");
        assert_eq!(next, Some(t0 + Duration::from_millis(5)));
        q.schedule(&a, t0 + Duration::from_millis(10));
        assert_eq!(q.len(), 2, "taken, so it may be queued again");
        drop(b);
        let (due, next) = q.due(t0 + Duration::from_secs(1));
        assert_eq!(due.len(), 1, "a session that is gone is skipped");
        assert_eq!(next, None);
        assert!(q.is_empty());
    }
}
