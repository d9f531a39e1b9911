//! The offline queue: requests accepted while disconnected, in order,
//! bounded by count and bytes.

use std::collections::VecDeque;

use super::options::{FullPolicy, QueueOptions};

/// A queued item: anything with a size.
pub trait Sized_ {
    /// Bytes it counts for.
    fn size(&self) -> usize;
}

/// What `push` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    /// Queued.
    Queued,
    /// Queued, after dropping these oldest items to make room.
    Evicted(Vec<T>),
}

/// A bounded FIFO with a full policy.
#[derive(Debug)]
pub struct OfflineQueue<T> {
    items: VecDeque<T>,
    bytes: usize,
    opts: QueueOptions,
}

impl<T: Sized_> OfflineQueue<T> {
    /// An empty queue.
    pub fn new(opts: QueueOptions) -> Self {
        OfflineQueue {
            items: VecDeque::new(),
            bytes: 0,
            opts,
        }
    }

    /// Adds an item at the back, or gives it back when the queue is full and
    /// the policy is to fail fast (or the item alone is over the byte bound).
    pub fn push(&mut self, item: T) -> Result<Pushed<T>, T> {
        let size = item.size();
        if size > self.opts.max_bytes {
            return Err(item);
        }
        let fits =
            |q: &Self| q.items.len() < q.opts.max_messages && q.bytes + size <= q.opts.max_bytes;
        let mut evicted = Vec::new();
        if !fits(self) {
            match self.opts.full {
                FullPolicy::FailFast => return Err(item),
                FullPolicy::DropOldest => {
                    while !fits(self) {
                        let old = self
                            .items
                            .pop_front()
                            .expect("over a bound means non-empty");
                        self.bytes -= old.size();
                        evicted.push(old);
                    }
                }
            }
        }
        self.bytes += size;
        self.items.push_back(item);
        Ok(if evicted.is_empty() {
            Pushed::Queued
        } else {
            Pushed::Evicted(evicted)
        })
    }

    /// Takes every item, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.bytes = 0;
        self.items.drain(..)
    }

    /// Removes the first item matching `f`.
    pub fn remove(&mut self, f: impl Fn(&T) -> bool) -> Option<T> {
        let i = self.items.iter().position(f)?;
        let item = self.items.remove(i)?;
        self.bytes -= item.size();
        Some(item)
    }

    /// Items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sized_ for String {
        fn size(&self) -> usize {
            self.len()
        }
    }

    fn q(max_messages: usize, max_bytes: usize, full: FullPolicy) -> OfflineQueue<String> {
        OfflineQueue::new(QueueOptions {
            max_messages,
            max_bytes,
            full,
        })
    }

    #[test]
    fn fail_fast_gives_the_item_back_when_full() {
        let mut q = q(2, 100, FullPolicy::FailFast);
        assert_eq!(q.push("a".into()), Ok(Pushed::Queued));
        assert_eq!(q.push("b".into()), Ok(Pushed::Queued));
        assert_eq!(q.push("c".into()), Err("c".into()));
        assert_eq!(q.drain().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn drop_oldest_evicts_until_the_new_item_fits() {
        let mut q = q(10, 6, FullPolicy::DropOldest);
        q.push("aa".into()).unwrap();
        q.push("bb".into()).unwrap();
        q.push("cc".into()).unwrap();
        assert_eq!(
            q.push("dddd".into()),
            Ok(Pushed::Evicted(vec!["aa".into(), "bb".into()]))
        );
        assert_eq!(q.iter().cloned().collect::<Vec<_>>(), ["cc", "dddd"]);
        assert_eq!(q.bytes(), 6);
    }

    #[test]
    fn an_item_over_the_byte_bound_is_refused_under_any_policy() {
        let mut q = q(10, 3, FullPolicy::DropOldest);
        q.push("a".into()).unwrap();
        assert_eq!(q.push("abcd".into()), Err("abcd".into()));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn remove_takes_out_one_item() {
        let mut q = q(10, 100, FullPolicy::FailFast);
        for s in ["a", "b", "c"] {
            q.push(s.into()).unwrap();
        }
        assert_eq!(q.remove(|s| s == "b"), Some("b".into()));
        assert_eq!(q.iter().cloned().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(q.bytes(), 2);
    }
}
