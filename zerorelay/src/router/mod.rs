//! Routing: turning one message into deliveries queued on sessions.
//!
//! A message is encoded once into a [`Delivery`] and the same shared text is
//! queued on every recipient session; each session assigns its own seq. The
//! router asks the [`SessionStore`] for recipients and holds no lock of its
//! own: a group fan-out takes the group's read lock and each recipient's
//! short session lock, one at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{ErrorCode, ProtocolError};
use crate::metrics::{Family, Kind};
use crate::protocol::Delivery;
use crate::session::{OutboxBudget, Queued, Session, SessionLimits, SessionStore};

/// Counters kept by the router (and read by the host and by metrics).
#[derive(Default)]
pub struct RouterStats {
    /// Deliveries queued on sessions, by kind.
    pub(crate) deliveries: Family<Kind, { Kind::COUNT }>,
    /// Deliveries dropped by outbox bounds (each announced with a gap).
    pub dropped: AtomicU64,
    /// Connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
}

/// Whether `s` is the excluded session (compared by identity: no string
/// comparison per recipient).
fn is(exclude: Option<&Session>, s: &Session) -> bool {
    exclude.is_some_and(|e| std::ptr::eq(e, s))
}

/// Routes deliveries to sessions.
pub struct Router {
    store: Arc<dyn SessionStore>,
    limits: SessionLimits,
    budget: Arc<OutboxBudget>,
    stats: RouterStats,
}

impl RouterStats {
    /// Deliveries of every kind.
    pub fn deliveries(&self) -> u64 {
        self.deliveries.values().map(|(_, n)| n).sum()
    }
}

impl Router {
    /// A router over a store.
    pub fn new(
        store: Arc<dyn SessionStore>,
        limits: SessionLimits,
        budget: Arc<OutboxBudget>,
    ) -> Self {
        Router {
            store,
            limits,
            budget,
            stats: RouterStats::default(),
        }
    }

    /// The server-wide outbox budget.
    pub fn budget(&self) -> &Arc<OutboxBudget> {
        &self.budget
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The session limits in force.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// The router's counters.
    pub(crate) fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// Queues `d` on one session. Returns whether it was queued (the caller
    /// counts deliveries) and adds the outbox's growth to `bytes`.
    fn queue(&self, s: &Session, d: &Delivery, bytes: &mut i64) -> bool {
        let (queued, delta) = s.queue(d, &self.limits);
        *bytes += delta;
        match queued {
            Queued::Ok => {}
            Queued::Dropped { count, first } => {
                self.stats.dropped.fetch_add(count, Ordering::Relaxed);
                // Once per session at info: a session that keeps overflowing
                // would otherwise log on every delivery.
                if first {
                    tracing::info!(
                        session = %s.id,
                        dropped = count,
                        limit = self.limits.outbox_messages,
                        "Dropped the oldest unacknowledged deliveries of a session to stay within session.outbox_messages / session.outbox_bytes; the client will get a gap frame. Later drops of this session are logged at debug level."
                    );
                } else {
                    tracing::debug!(session = %s.id, dropped = count, "Dropped more unacknowledged deliveries of a session.");
                }
            }
            Queued::SlowConsumer => {
                self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    session = %s.id,
                    bytes = self.limits.slow_consumer_bytes,
                    ms = self.limits.slow_consumer_after.as_millis() as u64,
                    "Closed a slow consumer: more than limits.slow_consumer_bytes stayed queued for it for limits.slow_consumer_ms; its session stays resumable."
                );
            }
            Queued::Ended => return false,
        }
        true
    }

    /// Counts deliveries and outbox bytes once per routed message, not
    /// once per recipient, so that a fan-out does not bounce a shared cache
    /// line per delivery.
    fn counted(&self, kind: Kind, n: usize, bytes: i64) -> usize {
        if n > 0 {
            self.stats.deliveries.add(kind, n as u64);
        }
        self.budget.add(bytes);
        n
    }

    /// Direct delivery to one session.
    pub fn to_session(&self, id: &str, d: &Delivery) -> Result<usize, ProtocolError> {
        let s = self
            .store
            .get(id)
            .filter(|s| !s.is_ended())
            .ok_or_else(|| ProtocolError::new(ErrorCode::NotFound, "no such session"))?;
        let mut bytes = 0;
        let n = usize::from(self.queue(&s, d, &mut bytes));
        Ok(self.counted(Kind::Direct, n, bytes))
    }

    /// Direct delivery to every session of `user` except `exclude`.
    /// `not_found` when the user has no session at all.
    pub fn to_user(
        &self,
        user: &str,
        exclude: Option<&Session>,
        d: &Delivery,
    ) -> Result<usize, ProtocolError> {
        let mut known = false;
        let (mut n, mut bytes) = (0, 0);
        self.store.for_user(user, &mut |s| {
            known = true;
            if !is(exclude, s) && self.queue(s, d, &mut bytes) {
                n += 1;
            }
        });
        if !known {
            return Err(ProtocolError::new(
                ErrorCode::NotFound,
                format!("user {user:?} has no session"),
            ));
        }
        Ok(self.counted(Kind::Direct, n, bytes))
    }

    /// Delivery to every member of `group` except `exclude`.
    pub fn to_group(&self, group: &str, exclude: Option<&Session>, d: &Delivery) -> usize {
        let (mut n, mut bytes) = (0, 0);
        self.store.for_members(group, &mut |s| {
            if !is(exclude, s) && self.queue(s, d, &mut bytes) {
                n += 1;
            }
        });
        self.counted(Kind::Group, n, bytes)
    }

    /// Delivery to every session except `exclude`.
    pub fn to_all(&self, exclude: Option<&Session>, d: &Delivery) -> usize {
        let (mut n, mut bytes) = (0, 0);
        self.store.for_each(&mut |s| {
            if !is(exclude, s) && self.queue(s, d, &mut bytes) {
                n += 1;
            }
        });
        self.counted(Kind::Broadcast, n, bytes)
    }
}
