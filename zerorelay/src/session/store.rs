//! The registry of sessions, users and group memberships.
//!
//! [`SessionStore`] is the seam for scale-out: the router only ever asks the
//! store "which sessions are these" and never keeps an index of its own. The
//! in-memory [`MemoryStore`] serves a single node with sharded maps (no global
//! lock on the routing path). A Redis-backed store (a later issue) keeps the
//! same local registry for the sessions attached to its node and mirrors
//! session records, memberships and outboxes to Redis, so that a session can
//! resume on any node and a publish reaches members on every node.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::RwLock;

use super::Session;

/// Where sessions and their memberships live.
///
/// Methods are synchronous and cheap: they are called on the routing path.
/// Callbacks are invoked without any session lock held, but possibly with a
/// store-internal read lock held: they must not call back into the store.
pub trait SessionStore: Send + Sync + 'static {
    /// Registers a new session.
    fn insert(&self, session: Arc<Session>);
    /// The session with this id.
    fn get(&self, id: &str) -> Option<Arc<Session>>;
    /// Unregisters a session, from its user's sessions and every group.
    fn remove(&self, session: &Session) -> bool;
    /// Calls `f` for every session of `user`.
    fn for_user(&self, user: &str, f: &mut dyn FnMut(&Arc<Session>));
    /// Calls `f` for every session.
    fn for_each(&self, f: &mut dyn FnMut(&Arc<Session>));
    /// Number of sessions (live or resumable).
    fn len(&self) -> usize;
    /// Whether there are no sessions.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Adds a session to a group. Returns whether it was not a member before.
    fn join(&self, group: &Arc<str>, session: &Arc<Session>) -> bool;
    /// Removes a session from a group. Returns whether it was a member.
    fn leave(&self, group: &str, session_id: &str) -> bool;
    /// Calls `f` for every member of `group`.
    fn for_members(&self, group: &str, f: &mut dyn FnMut(&Arc<Session>));
    /// Every non-empty group and its member count.
    fn groups(&self) -> Vec<(String, usize)>;
}

type Members = Arc<RwLock<HashMap<Arc<str>, Arc<Session>>>>;

/// The single-node, in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    sessions: DashMap<Arc<str>, Arc<Session>>,
    /// Each user's sessions, by session id (removal is O(1) however many
    /// sessions one user has).
    users: DashMap<Arc<str>, HashMap<Arc<str>, Arc<Session>>>,
    groups: DashMap<Arc<str>, Members>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn members(&self, group: &str) -> Option<Members> {
        self.groups.get(group).map(|m| m.value().clone())
    }
}

impl SessionStore for MemoryStore {
    fn insert(&self, session: Arc<Session>) {
        if let Some(user) = &session.user {
            self.users
                .entry(user.clone())
                .or_default()
                .insert(session.id.clone(), session.clone());
        }
        self.sessions.insert(session.id.clone(), session);
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.value().clone())
    }

    fn remove(&self, session: &Session) -> bool {
        let removed = self.sessions.remove(&*session.id).is_some();
        if let Some(user) = &session.user {
            self.users.remove_if_mut(user, |_, sessions| {
                sessions.remove(&*session.id);
                sessions.is_empty()
            });
        }
        let groups: Vec<Arc<str>> = session.lock().groups.drain().collect();
        for g in groups {
            self.leave(&g, &session.id);
        }
        removed
    }

    fn for_user(&self, user: &str, f: &mut dyn FnMut(&Arc<Session>)) {
        // Copied out, so that `f` runs without the map's shard lock.
        let list: Vec<Arc<Session>> = match self.users.get(user) {
            Some(l) => l.value().values().cloned().collect(),
            None => return,
        };
        for s in &list {
            f(s);
        }
    }

    fn for_each(&self, f: &mut dyn FnMut(&Arc<Session>)) {
        for s in self.sessions.iter() {
            f(s.value());
        }
    }

    fn len(&self) -> usize {
        self.sessions.len()
    }

    fn join(&self, group: &Arc<str>, session: &Arc<Session>) -> bool {
        // Insert while holding the map entry, so that a concurrent `leave`
        // cannot remove the group between lookup and insert.
        let entry = self.groups.entry(group.clone()).or_default();
        let added = entry
            .value()
            .write()
            .insert(session.id.clone(), session.clone())
            .is_none();
        added
    }

    fn leave(&self, group: &str, session_id: &str) -> bool {
        let Some(members) = self.members(group) else {
            return false;
        };
        let (was, now_empty) = {
            let mut m = members.write();
            let was = m.remove(session_id).is_some();
            (was, m.is_empty())
        };
        if now_empty {
            // Re-check under the map's entry lock: a join may have raced in.
            self.groups.remove_if(group, |_, m| {
                Arc::ptr_eq(m, &members) && m.read().is_empty()
            });
        }
        was
    }

    fn for_members(&self, group: &str, f: &mut dyn FnMut(&Arc<Session>)) {
        let Some(members) = self.members(group) else {
            return;
        };
        let m = members.read();
        for s in m.values() {
            f(s);
        }
    }

    fn groups(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .groups
            .iter()
            .map(|e| (e.key().to_string(), e.value().read().len()))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionLimits;

    fn limits() -> SessionLimits {
        SessionLimits {
            slow_consumer_bytes: 1 << 20,
            slow_consumer_after: std::time::Duration::from_secs(5),
            outbox_messages: 16,
            outbox_bytes: 1 << 20,
            max_groups: 16,
            recent_requests: 1_024,
        }
    }

    #[test]
    fn many_sessions_of_one_user_are_indexed_and_removed_one_by_one() {
        let store = MemoryStore::new();
        let user: Arc<str> = "alice".into();
        let sessions: Vec<Arc<Session>> = (0..12_000)
            .map(|i| {
                let s = Arc::new(Session::new(
                    format!("s_{i}").into(),
                    Some(user.clone()),
                    &limits(),
                ));
                store.insert(s.clone());
                s
            })
            .collect();
        let count = |store: &MemoryStore| {
            let mut n = 0;
            store.for_user("alice", &mut |_| n += 1);
            n
        };
        assert_eq!(count(&store), 12_000);
        // Removing one leaves exactly the others.
        assert!(store.remove(&sessions[5_000]));
        assert_eq!(count(&store), 11_999);
        let mut left = Vec::new();
        store.for_user("alice", &mut |s| left.push(s.id.clone()));
        assert!(!left.iter().any(|id| &**id == "s_5000"));
        for s in &sessions {
            store.remove(s);
        }
        assert_eq!(count(&store), 0);
        assert!(store.users.is_empty(), "an empty user entry is dropped");
        assert!(store.is_empty());
    }
}
