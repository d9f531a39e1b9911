//! Duplicate suppression: the answers to a session's recent routing requests.
//!
//! A client that lost its connection before seeing `ok` re-sends the request
//! with the same id after resuming. The session remembers the answer to each
//! of its last N routing requests (`send`, `publish`, `broadcast`, `rpc`),
//! keyed on the id alone, and answers a repeat with the first answer without
//! routing again.

use std::collections::{HashMap, VecDeque};

use crate::protocol::RequestId;

/// What is remembered of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecentReply {
    /// Still being handled (an rpc in flight): the answer will come.
    Pending,
    /// The encoded answer frame.
    Done(String),
}

/// A bounded map from request id to answer, forgetting the oldest first.
#[derive(Debug)]
pub struct Recent {
    cap: usize,
    map: HashMap<RequestId, RecentReply>,
    order: VecDeque<RequestId>,
}

impl Recent {
    /// An empty memory of at most `cap` ids (allocates nothing until used).
    pub fn new(cap: usize) -> Self {
        Recent {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The remembered answer for `id`.
    pub fn get(&self, id: &RequestId) -> Option<&RecentReply> {
        self.map.get(id)
    }

    /// Remembers (or updates) the answer for `id`.
    pub fn insert(&mut self, id: RequestId, reply: RecentReply) {
        if let Some(r) = self.map.get_mut(&id) {
            *r = reply;
            return;
        }
        if self.cap == 0 {
            return;
        }
        while self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.map.insert(id, reply);
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_past_capacity() {
        let mut r = Recent::new(2);
        r.insert(RequestId::Int(1), RecentReply::Done("a".into()));
        r.insert(RequestId::Int(2), RecentReply::Done("b".into()));
        r.insert(RequestId::Int(3), RecentReply::Done("c".into()));
        assert!(r.get(&RequestId::Int(1)).is_none());
        assert_eq!(
            r.get(&RequestId::Int(3)),
            Some(&RecentReply::Done("c".into()))
        );
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn integer_and_string_ids_are_different() {
        let mut r = Recent::new(4);
        r.insert(RequestId::Int(1), RecentReply::Done("int".into()));
        assert!(r.get(&RequestId::Str("1".into())).is_none());
    }
}
