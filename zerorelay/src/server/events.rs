//! What happens to sessions, told to the host: a client was welcomed, a
//! connection ended, a session ended for good. The host subscribes with
//! [`Relay::events`](super::Relay::events); the bindings turn the stream
//! into their language's events (Node's `server.on('connect')`, Python's
//! callbacks).
//!
//! Events are built only while someone listens, so a relay without
//! subscribers pays one atomic load per connection; they are never emitted
//! per message.

use serde::Serialize;
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it misses some
/// (it is then told how many, by `RecvError::Lagged`).
pub const EVENT_CAPACITY: usize = 1024;

/// Something that happened to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostEvent {
    /// A client said `hello` and was welcomed.
    Connected {
        /// The session.
        session: String,
        /// Its user, if any.
        user: Option<String>,
        /// Whether an existing session was resumed.
        resumed: bool,
        /// The peer's address, when known.
        remote: Option<String>,
    },
    /// A connection ended. The session stays resumable unless an `ended`
    /// event follows.
    Disconnected {
        /// The session.
        session: String,
        /// Its user, if any.
        user: Option<String>,
        /// Why.
        reason: String,
    },
    /// A session ended for good: its client closed it, the host ended it, or
    /// it stayed disconnected longer than `session.ttl_ms`.
    Ended {
        /// The session.
        session: String,
        /// Its user, if any.
        user: Option<String>,
        /// Why.
        reason: String,
    },
}

/// The sending side, held by the relay.
#[derive(Debug)]
pub(crate) struct HostEvents {
    tx: broadcast::Sender<HostEvent>,
}

impl HostEvents {
    pub(crate) fn new() -> Self {
        HostEvents {
            tx: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.tx.subscribe()
    }

    /// Emits the event `make` builds, if anyone listens.
    pub(crate) fn emit(&self, make: impl FnOnce() -> HostEvent) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(make());
        }
    }
}

/// A subscription in the JSON shape every binding hands to its language:
/// batches of events, with `{"type":"lagged","missed":n}` where the
/// subscriber fell behind, ending when the relay shuts down.
pub struct HostEventStream {
    rx: broadcast::Receiver<HostEvent>,
    relay: super::Relay,
}

impl std::fmt::Debug for HostEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostEventStream").finish_non_exhaustive()
    }
}

impl HostEventStream {
    pub(crate) fn new(relay: super::Relay) -> Self {
        HostEventStream {
            rx: relay.shared.events.subscribe(),
            relay,
        }
    }

    /// Waits for events and returns up to `max` of them as a JSON array, or
    /// `None` once the relay is shutting down.
    pub async fn next_json_batch(&mut self, max: usize) -> Option<String> {
        let first = tokio::select! {
            _ = self.relay.shutdown_requested() => return None,
            r = self.rx.recv() => match r {
                Ok(e) => Ok(e),
                Err(broadcast::error::RecvError::Lagged(n)) => Err(n),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        let mut out = vec![Self::json(first)];
        while out.len() < max.max(1) {
            match self.rx.try_recv() {
                Ok(e) => out.push(Self::json(Ok(e))),
                Err(broadcast::error::TryRecvError::Lagged(n)) => out.push(Self::json(Err(n))),
                Err(_) => break,
            }
        }
        Some(serde_json::Value::Array(out).to_string())
    }

    fn json(r: Result<HostEvent, u64>) -> serde_json::Value {
        match r {
            Ok(e) => serde_json::to_value(e).expect("events are JSON"),
            Err(missed) => serde_json::json!({ "type": "lagged", "missed": missed }),
        }
    }
}
