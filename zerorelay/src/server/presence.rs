//! Presence: who is in each group, by user. A user's first session in a
//! group is a join and their last a leave (not one event per tab); sessions
//! without a user count one by one, as `anonymous`.
//!
//! Presence follows group membership, which belongs to sessions: a session
//! that lost its connection stays present while it is resumable, and
//! leaves when it ends (closed by its client, ended by the host, or expired
//! after `session.ttl_ms`).
//!
//! Sessions that joined with `"presence": true` are told of changes:
//! `presence_change` frames while the group has at most
//! `presence.max_notify_members` present members, then one
//! `presence_summary` per `presence.notify_ms` with the joins and leaves
//! since the last. Notices are best effort, like replies: not sequenced,
//! not kept for a detached session (a resumed client asks again).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;

use super::{Presence, PresenceMember, Shared};
use crate::protocol::server::{PresenceChange, PresenceSummary};
use crate::protocol::ServerFrame;
use crate::session::Session;

/// One group's presence.
#[derive(Default)]
struct Group {
    /// Member sessions per user.
    users: HashMap<Arc<str>, u32>,
    /// Member sessions without a user.
    anonymous: u32,
    /// Sessions that asked to be told of changes.
    watchers: HashMap<Arc<str>, Weak<Session>>,
    /// Joins and leaves since the last summary (large groups).
    joined: u64,
    left: u64,
}

impl Group {
    fn present(&self) -> usize {
        self.users.len() + self.anonymous as usize
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.anonymous == 0 && self.watchers.is_empty()
    }

    /// Hands `frame` to every watcher but `except`, dropping watchers whose
    /// session is gone.
    fn tell(&mut self, frame: &str, except: &str) {
        self.watchers.retain(|id, w| match w.upgrade() {
            Some(s) => {
                if &**id != except {
                    s.reply(frame.to_owned());
                }
                true
            }
            None => false,
        });
    }
}

/// Presence of every group.
pub(crate) struct PresenceIndex {
    groups: DashMap<Arc<str>, Group>,
    /// Groups with joins or leaves waiting for a summary.
    pending: parking_lot::Mutex<HashSet<Arc<str>>>,
    max_notify_members: usize,
}

impl PresenceIndex {
    pub(crate) fn new(max_notify_members: usize) -> Self {
        PresenceIndex {
            groups: DashMap::new(),
            pending: parking_lot::Mutex::default(),
            max_notify_members,
        }
    }

    /// `s` became a member of `group`.
    pub(crate) fn joined(&self, group: &Arc<str>, s: &Arc<Session>, watch: bool) {
        let mut g = self.groups.entry(group.clone()).or_default();
        if watch {
            g.watchers.insert(s.id.clone(), Arc::downgrade(s));
        }
        let first = match &s.user {
            Some(u) => {
                let n = g.users.entry(u.clone()).or_insert(0);
                *n += 1;
                *n == 1
            }
            None => {
                g.anonymous += 1;
                true
            }
        };
        if first {
            self.changed(group, &mut g, s, "join");
        }
    }

    /// `s`, already a member, asks to be told of changes.
    pub(crate) fn watch(&self, group: &Arc<str>, s: &Arc<Session>) {
        let mut g = self.groups.entry(group.clone()).or_default();
        g.watchers.insert(s.id.clone(), Arc::downgrade(s));
    }

    /// `s` stopped being a member of `group`.
    pub(crate) fn left(&self, group: &str, s: &Session) {
        let Some(mut g) = self.groups.get_mut(group) else {
            return;
        };
        g.watchers.remove(&s.id);
        let last = match &s.user {
            Some(u) => match g.users.get_mut(u) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    g.users.remove(u);
                    true
                }
                None => false,
            },
            None => {
                g.anonymous = g.anonymous.saturating_sub(1);
                true
            }
        };
        if last {
            let key = g.key().clone();
            self.changed(&key, &mut g, s, "leave");
        }
        let empty = g.is_empty();
        drop(g);
        if empty {
            self.groups.remove_if(group, |_, g| g.is_empty());
        }
    }

    fn changed(&self, group: &Arc<str>, g: &mut Group, s: &Session, change: &'static str) {
        if g.watchers.is_empty() {
            return;
        }
        if g.present() > self.max_notify_members {
            match change {
                "join" => g.joined += 1,
                _ => g.left += 1,
            }
            self.pending.lock().insert(group.clone());
            return;
        }
        let frame = ServerFrame::PresenceChange(PresenceChange {
            group: group.to_string(),
            user: s.user.as_ref().map(|u| u.to_string()),
            change: change.to_owned(),
        })
        .encode();
        g.tell(&frame, &s.id);
    }

    /// Sends the summaries of groups with changes waiting.
    fn summarize(&self) {
        let pending: Vec<Arc<str>> = self.pending.lock().drain().collect();
        for group in pending {
            let Some(mut g) = self.groups.get_mut(&group) else {
                continue;
            };
            if g.joined == 0 && g.left == 0 {
                continue;
            }
            let frame = ServerFrame::PresenceSummary(PresenceSummary {
                group: group.to_string(),
                joined: std::mem::take(&mut g.joined),
                left: std::mem::take(&mut g.left),
                present: g.present() as u64,
            })
            .encode();
            g.tell(&frame, "");
        }
    }

    /// Who is in `group`.
    pub(crate) fn snapshot(&self, group: &str) -> Presence {
        let (mut members, anonymous) = match self.groups.get(group) {
            Some(g) => (
                g.users
                    .iter()
                    .map(|(u, n)| PresenceMember {
                        user: u.to_string(),
                        sessions: *n as usize,
                    })
                    .collect::<Vec<_>>(),
                g.anonymous as usize,
            ),
            None => (Vec::new(), 0),
        };
        members.sort_by(|a, b| a.user.cmp(&b.user));
        Presence {
            group: group.to_owned(),
            members,
            anonymous,
        }
    }
}

/// Sends the summaries of large groups every `presence.notify_ms`.
pub(crate) async fn summaries(shared: Arc<Shared>) {
    let every = Duration::from_millis(shared.config.presence.notify_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => shared.presence.summarize(),
            _ = super::shutting_down(&mut shutdown) => return,
        }
    }
}
