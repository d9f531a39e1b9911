//! `Idempotency-Key` on the API's routing calls: a retried publish (or
//! send, or broadcast) with the same key is answered with the first
//! answer and routed once, like a re-sent request id on a connection.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Longest key accepted.
pub(crate) const MAX_KEY_LEN: usize = 255;

/// Successful answers by endpoint and key, each kept for `ttl`, at most
/// `cap` of them (the oldest go first).
pub(crate) struct Idempotency {
    inner: parking_lot::Mutex<Inner>,
    ttl: Duration,
    cap: usize,
}

#[derive(Default)]
struct Inner {
    answers: HashMap<String, Bytes>,
    order: VecDeque<(Instant, String)>,
}

impl Idempotency {
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        Idempotency {
            inner: parking_lot::Mutex::default(),
            ttl,
            cap,
        }
    }

    /// The remembered answer for `key`, or the one `route` gives, which is
    /// remembered when it is a success (`Ok`). Requests with the same key
    /// wait for each other, so that two concurrent retries route once.
    pub(crate) fn run<E>(
        &self,
        key: String,
        route: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<(Bytes, bool), E> {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.ttl && inner.order.len() <= self.cap {
                break;
            }
            let (_, old) = inner.order.pop_front().expect("front exists");
            inner.answers.remove(&old);
        }
        if let Some(b) = inner.answers.get(&key) {
            return Ok((b.clone(), true));
        }
        let answer = route()?;
        inner.answers.insert(key.clone(), answer.clone());
        inner.order.push_back((now, key));
        Ok((answer, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_routes_once_until_it_expires_or_is_pushed_out() {
        let idem = Idempotency::new(Duration::from_millis(50), 2);
        let mut routed = 0;
        let mut go = |k: &str| {
            idem.run::<()>(k.to_owned(), || {
                routed += 1;
                Ok(Bytes::from(routed.to_string()))
            })
            .unwrap()
        };
        assert_eq!(go("a"), (Bytes::from("1"), false));
        assert_eq!(go("a"), (Bytes::from("1"), true));
        go("b");
        go("c"); // three keys, room for two: "a" goes
        assert_eq!(go("a"), (Bytes::from("4"), false));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(go("a"), (Bytes::from("5"), false));
    }

    #[test]
    fn a_failure_is_not_remembered() {
        let idem = Idempotency::new(Duration::from_secs(60), 10);
        assert_eq!(idem.run("k".into(), || Err::<Bytes, _>(404)), Err(404));
        assert_eq!(
            idem.run::<u16>("k".into(), || Ok(Bytes::from("ok"))),
            Ok((Bytes::from("ok"), false))
        );
    }
}
