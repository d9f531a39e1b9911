//! What happens on the relay, told to the host: a client was welcomed (with
//! its identity), a connection ended (with why), a session ended for good,
//! a session joined or left a group, an error was sent, and (opt-in,
//! `hooks.messages`) a client routed a message.
//!
//! Two ways to listen, both off the routing path:
//! - [`Relay::events`](super::Relay::events): a broadcast subscription
//!   (the bindings turn it into their language's events); a subscriber
//!   more than [`EVENT_CAPACITY`] events behind misses the oldest.
//! - [`EventHook`]s ([`RelayBuilder::hook`](super::RelayBuilder::hook)):
//!   each runs on a thread of its own, fed by a bounded queue
//!   (`hooks.queue`); when the queue is full the event is dropped, never
//!   waited for.
//!
//! Either way, what is dropped is counted in
//! `zerorelay_hook_events_dropped_total`. Events are built only while
//! someone listens: a relay without listeners pays one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

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
        /// The roles its credentials carry.
        roles: Vec<String>,
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
    /// A session joined a group.
    Joined {
        /// The session.
        session: String,
        /// Its user, if any.
        user: Option<String>,
        /// The group.
        group: String,
    },
    /// A session left a group (by `leave`, or because it ended).
    Left {
        /// The session.
        session: String,
        /// Its user, if any.
        user: Option<String>,
        /// The group.
        group: String,
    },
    /// A client routed a message (only with `hooks.messages`).
    Message {
        /// `direct`, `group` or `broadcast`.
        kind: String,
        /// The sending session.
        session: String,
        /// Its user, if any.
        user: Option<String>,
        /// The group, for a group message.
        group: Option<String>,
        /// The recipient user or session, for a direct message.
        to: Option<String>,
        /// Bytes of `data`.
        bytes: usize,
    },
    /// The relay sent a client an `error` frame.
    Error {
        /// The session, after `hello`.
        session: Option<String>,
        /// The error code.
        code: String,
        /// The error's message.
        message: String,
        /// The type of the frame that was refused (`invalid` when it was
        /// not a frame).
        frame_type: String,
    },
}

/// A host's event handler ([`RelayBuilder::hook`](super::RelayBuilder::hook)).
///
/// `on_event` runs on the hook's own thread, one event at a time, in the
/// order they happened; it may block (write to a database, say). Events
/// that arrive while its queue (`hooks.queue`) is full are dropped and
/// counted; the relay never waits for a hook.
pub trait EventHook: Send + Sync + 'static {
    /// Handles one event.
    fn on_event(&self, event: &HostEvent);
}

impl<F> EventHook for F
where
    F: Fn(&HostEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &HostEvent) {
        self(event)
    }
}

/// The sending side, held by the relay.
#[derive(Debug)]
pub(crate) struct HostEvents {
    tx: broadcast::Sender<HostEvent>,
    hooks: Vec<SyncSender<HostEvent>>,
    /// Whether client messages are events (`hooks.messages`).
    pub(crate) messages: bool,
    /// Events hooks and subscribers missed.
    pub(crate) dropped: AtomicU64,
}

impl HostEvents {
    /// Starts a thread per hook, each fed by a queue of `queue` events.
    pub(crate) fn new(
        hooks: Vec<std::sync::Arc<dyn EventHook>>,
        queue: usize,
        messages: bool,
    ) -> Self {
        let hooks = hooks
            .into_iter()
            .enumerate()
            .map(|(i, hook)| {
                let (tx, rx) = sync_channel::<HostEvent>(queue);
                std::thread::Builder::new()
                    .name(format!("zerorelay-hook-{i}"))
                    .spawn(move || {
                        for e in rx {
                            let call = std::panic::AssertUnwindSafe(|| hook.on_event(&e));
                            if std::panic::catch_unwind(call).is_err() {
                                tracing::error!(event = ?e, "An event hook panicked; it keeps receiving events.");
                            }
                        }
                    })
                    .expect("a hook thread can be started");
                tx
            })
            .collect();
        HostEvents {
            tx: broadcast::channel(EVENT_CAPACITY).0,
            hooks,
            messages,
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (events are built only then).
    #[inline]
    pub(crate) fn listened(&self) -> bool {
        !self.hooks.is_empty() || self.tx.receiver_count() > 0
    }

    /// Emits the event `make` builds, if anyone listens.
    pub(crate) fn emit(&self, make: impl FnOnce() -> HostEvent) {
        if !self.listened() {
            return;
        }
        let e = make();
        for h in &self.hooks {
            match h.try_send(e.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(e);
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
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.relay.shared.events.dropped.fetch_add(n, Ordering::Relaxed);
                    Err(n)
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        let mut out = vec![Self::json(first)];
        while out.len() < max.max(1) {
            match self.rx.try_recv() {
                Ok(e) => out.push(Self::json(Ok(e))),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.relay
                        .shared
                        .events
                        .dropped
                        .fetch_add(n, Ordering::Relaxed);
                    out.push(Self::json(Err(n)))
                }
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
