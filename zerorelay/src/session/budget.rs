//! The server-wide budget for outbox memory (`session.outbox_total_bytes`).
//!
//! Each session's outbox is bounded on its own; this bounds their sum, so
//! that many sessions that each stay within their own bound cannot exhaust
//! the machine. Routing counts with one atomic add per routed message (not
//! per recipient); when the sum passes the budget, the maintenance task
//! trims the largest detached outboxes first, then the largest attached
//! ones, each trimmed session getting a `gap` for what it lost.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::{Session, SessionStore};

/// What the server's outboxes hold, against the budget.
#[derive(Debug)]
pub struct OutboxBudget {
    limit: u64,
    used: AtomicI64,
    over: AtomicBool,
    trimmed: AtomicU64,
    /// Wakes the trimmer when the sum passes the budget.
    pub(crate) wake: Notify,
}

/// What one trimming pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Sessions trimmed.
    pub sessions: usize,
    /// Deliveries dropped.
    pub deliveries: u64,
    /// Bytes freed.
    pub bytes: usize,
}

impl OutboxBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        OutboxBudget {
            limit,
            used: AtomicI64::new(0),
            over: AtomicBool::new(false),
            trimmed: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes the outboxes hold now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed).max(0) as u64
    }

    /// Deliveries dropped by trimming since start.
    pub fn trimmed(&self) -> u64 {
        self.trimmed.load(Ordering::Relaxed)
    }

    /// Adds what one routed message (or ack, or removal) changed, and wakes
    /// the trimmer the first time the sum passes the budget.
    #[inline]
    pub fn add(&self, delta: i64) {
        if delta == 0 {
            return;
        }
        let now = self.used.fetch_add(delta, Ordering::Relaxed) + delta;
        if now > self.limit as i64 && !self.over.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Whether the sum is over the budget.
    pub fn is_over(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit as i64
    }

    /// Trims outboxes until the sum is at most 90% of the budget: the
    /// largest detached outboxes first, then the largest attached ones.
    pub fn trim(&self, store: &dyn SessionStore) -> Trimmed {
        let mut done = Trimmed::default();
        let target = self.limit - self.limit / 10;
        let mut excess = self.used().saturating_sub(target) as usize;
        if excess > 0 {
            let mut candidates: Vec<(bool, usize, Arc<Session>)> = Vec::new();
            store.for_each(&mut |s| {
                let st = s.lock();
                if !st.outbox.is_empty() {
                    candidates.push((st.conn.is_some(), st.outbox.bytes(), s.clone()));
                }
            });
            // Detached (false) before attached, larger before smaller.
            candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            for (_, _, s) in candidates {
                if excess == 0 {
                    break;
                }
                let (count, freed) = s.lock().outbox.trim(excess);
                if count > 0 {
                    self.used.fetch_sub(freed as i64, Ordering::Relaxed);
                    excess = excess.saturating_sub(freed);
                    done.sessions += 1;
                    done.deliveries += count;
                    done.bytes += freed;
                }
            }
            self.trimmed.fetch_add(done.deliveries, Ordering::Relaxed);
        }
        self.over.store(self.is_over(), Ordering::Relaxed);
        done
    }
}
