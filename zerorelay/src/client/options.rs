//! Client options. Every binding passes these as JSON, so they deserialize
//! with the same names in every language; unknown keys are errors.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::Backoff;

/// What happens when a request is made while the offline queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Refuse the new request with `queue_full`.
    #[default]
    FailFast,
    /// Drop the oldest queued request (it fails with `queue_full`) and queue
    /// the new one.
    DropOldest,
}

/// Reconnection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectOptions {
    /// Whether to reconnect at all.
    pub enabled: bool,
    /// Ceiling of the first delay, in ms.
    pub base_ms: u64,
    /// Largest delay ceiling, in ms.
    pub cap_ms: u64,
    /// Give up after this many consecutive failed attempts (`null`: never).
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            enabled: true,
            base_ms: 250,
            cap_ms: 30_000,
            max_attempts: None,
        }
    }
}

/// Acknowledgement batching. Every ack is a frame the server must read and
/// process (a few microseconds of its CPU), so the count decides what acks
/// cost a fast stream and the interval what they cost a slow one (see
/// `docs/BENCHMARKS.md`). Unacknowledged messages stay in the server's
/// outbox and are sent again after a resume (and de-duplicated here), so the
/// two also bound what a resume re-sends: 256 messages or one second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AckOptions {
    /// Send an ack once this many messages are unacknowledged…
    pub batch: u32,
    /// …or this long after the first unacknowledged one, in ms.
    pub interval_ms: u64,
}

impl Default for AckOptions {
    fn default() -> Self {
        AckOptions {
            batch: 256,
            interval_ms: 1000,
        }
    }
}

/// The offline queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueOptions {
    /// Requests held while disconnected.
    pub max_messages: usize,
    /// Bytes of requests held while disconnected.
    pub max_bytes: usize,
    /// What to do when full.
    pub full: FullPolicy,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_messages: 1_000,
            max_bytes: 1 << 20,
            full: FullPolicy::FailFast,
        }
    }
}

/// The longest duration any option may give, in ms (one day).
pub const MAX_DURATION_MS: u64 = 86_400_000;

/// Everything a client can be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientOptions {
    /// The token sent in `hello` (and re-sent on every reconnect). A token
    /// provider, where a binding offers one, takes precedence.
    pub token: Option<String>,
    /// The user name, honoured by servers in development mode only.
    pub user: Option<String>,
    /// The `client` string sent in `hello`.
    pub client_name: String,
    /// Extra HTTP headers on the WebSocket upgrade request.
    pub headers: BTreeMap<String, String>,
    /// Reconnection.
    pub reconnect: ReconnectOptions,
    /// Acknowledgements.
    pub ack: AckOptions,
    /// The offline queue.
    pub queue: QueueOptions,
    /// How long a request waits for its answer once sent, in ms.
    pub request_timeout_ms: u64,
    /// How long to wait for the transport and `welcome`, in ms.
    pub connect_timeout_ms: u64,
    /// Ask the token provider for a new token this long before the current
    /// one expires, in ms.
    pub refresh_margin_ms: u64,
    /// A PEM file with extra trusted CA certificates for `wss://` (on top of
    /// the system's roots).
    pub ca_file: Option<String>,
    /// Persist the offline queue and the resume state to this file, so that
    /// a process restarted while offline loses nothing it had accepted.
    pub persist_path: Option<String>,
    /// Seed for reconnect jitter (tests); random when absent.
    pub seed: Option<u64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            user: None,
            client_name: concat!("zerorelay-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
            headers: BTreeMap::new(),
            reconnect: ReconnectOptions::default(),
            ack: AckOptions::default(),
            queue: QueueOptions::default(),
            request_timeout_ms: 10_000,
            connect_timeout_ms: 10_000,
            refresh_margin_ms: 30_000,
            ca_file: None,
            persist_path: None,
            seed: None,
        }
    }
}

impl ClientOptions {
    /// Parses options from JSON (what the bindings pass); errors name the key.
    pub fn from_json(json: &str) -> Result<Self, super::ClientError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let o: Self = serde_json::from_str(json)
            .map_err(|e| super::ClientError::InvalidArgument(format!("options: {e}")))?;
        o.validate()?;
        Ok(o)
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), super::ClientError> {
        let bad = |m: &str| Err(super::ClientError::InvalidArgument(m.to_owned()));
        if self.reconnect.base_ms == 0 || self.reconnect.cap_ms < self.reconnect.base_ms {
            return bad("options: reconnect.base_ms must be > 0 and <= reconnect.cap_ms");
        }
        if self.ack.batch == 0 {
            return bad("options: ack.batch must be > 0");
        }
        if self.queue.max_messages == 0 || self.queue.max_bytes == 0 {
            return bad("options: queue.max_messages and queue.max_bytes must be > 0");
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("options: request_timeout_ms and connect_timeout_ms must be > 0");
        }
        // Upper bounds: a duration past them would overflow `Instant +
        // Duration` in the driver, and no real deployment wants them.
        let day = MAX_DURATION_MS;
        for (key, v) in [
            ("reconnect.base_ms", self.reconnect.base_ms),
            ("reconnect.cap_ms", self.reconnect.cap_ms),
            ("ack.interval_ms", self.ack.interval_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("refresh_margin_ms", self.refresh_margin_ms),
        ] {
            if v > day {
                return Err(super::ClientError::InvalidArgument(format!(
                    "options: {key} must be at most {day} (one day), got {v}"
                )));
            }
        }
        if self.ack.batch > 1_000_000 {
            return bad("options: ack.batch must be at most 1000000");
        }
        if self.queue.max_messages > 10_000_000 || self.queue.max_bytes > 1 << 34 {
            return bad(
                "options: queue.max_messages must be at most 10000000 and queue.max_bytes at most 17179869184 (16 GiB)",
            );
        }
        if let Some(u) = &self.user {
            crate::protocol::names::validate("user", u).map_err(|e| {
                super::ClientError::InvalidArgument(format!("options: {}", e.message))
            })?;
        }
        Ok(())
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.reconnect.base_ms),
            cap: Duration::from_millis(self.reconnect.cap_ms),
        }
    }
}
