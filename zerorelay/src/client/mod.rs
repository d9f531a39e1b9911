//! The client engine: one implementation of the client side of protocol v1,
//! shared by the Rust API and every SDK.
//!
//! - [`engine`]: the sans-IO state machine. Inputs are frames, transport
//!   events, timer ticks and user calls; outputs are frames to send, events,
//!   request completions and the next timer. No sockets, no sleeps: every
//!   edge case is a deterministic test.
//! - [`driver`]: the thin tokio driver that owns the WebSocket and runs the
//!   engine; [`Client`] is its handle.
//! - [`backoff`]: exponential backoff with full jitter.
//! - [`queue`]: the bounded offline queue.
//! - [`options`]: everything a client can be told (JSON in the bindings).
//! - [`json`]: the JSON forms of requests, events and replies the bindings use.
//!
//! # Example
//! ```no_run
//! use zerorelay::client::{Client, ClientOptions, Event};
//!
//! # async fn demo() -> Result<(), zerorelay::client::ClientError> {
//! let mut opts = ClientOptions::default();
//! opts.user = Some("alice".into());
//! let (client, mut events) = Client::connect("ws://127.0.0.1:8080/ws", opts).await?;
//! client.join("room-1").await?;
//! client.publish("room-1", &serde_json::json!({"text": "hi"})).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(m) = event {
//!         println!("{} says {}", m.from.unwrap_or_default(), m.data);
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```

pub mod backoff;
pub mod driver;
pub mod engine;
pub mod json;
pub mod options;
pub mod queue;

use serde::Serialize;

pub use driver::{Client, Events, PendingReply, Status, TokenFuture, TokenProvider};
pub use engine::{Engine, Output, Reply, Request, RequestToken, Retry, Snapshot};
pub use options::{ClientOptions, FullPolicy};

use crate::error::ErrorCode;
use crate::protocol::server::MessageFrame;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an `error` frame.
    #[error("{code}: {message}")]
    Server {
        /// The protocol error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// No answer within the request timeout.
    #[error("the request timed out")]
    Timeout,
    /// The client is closed (by the application or for good by the server).
    #[error("the client is closed")]
    Closed,
    /// The offline queue is full (or the request was dropped from it).
    #[error("the offline queue is full")]
    QueueFull,
    /// The caller cancelled the request.
    #[error("the request was cancelled")]
    Cancelled,
    /// An argument or option is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connection could not be established.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A delivered message could not be decoded (its payload is not what
    /// the decoder accepts: malformed, nested too deep, a number out of
    /// range). Only that message is affected: it counts as processed, and
    /// the messages before and after it are delivered.
    #[error("message {seq} could not be decoded: {message}")]
    Undecodable {
        /// The message's seq.
        seq: u64,
        /// What the decoder said.
        message: String,
    },
    /// The session was lost (the server could not resume it) after the
    /// request was handed to the connection and before its answer arrived:
    /// it may or may not have been delivered, and it was not sent again,
    /// because the new session would have routed it a second time (see
    /// [`Retry`]).
    #[error(
        "request {id} may or may not have been delivered: the session was lost before its answer arrived, and it was not re-sent so as not to deliver it twice"
    )]
    UnknownOutcome {
        /// The request's id (its [`RequestToken`]).
        id: u64,
    },
}

impl ClientError {
    /// A stable string code: the protocol's code for server errors, else one
    /// of `timeout`, `closed`, `queue_full`, `cancelled`, `invalid_argument`,
    /// `connection`, `undecodable`, `unknown_outcome`.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Server { code, .. } => code.as_str(),
            ClientError::Timeout => "timeout",
            ClientError::Closed => "closed",
            ClientError::QueueFull => "queue_full",
            ClientError::Cancelled => "cancelled",
            ClientError::InvalidArgument(_) => "invalid_argument",
            ClientError::Connection(_) => "connection",
            ClientError::Undecodable { .. } => "undecodable",
            ClientError::UnknownOutcome { .. } => "unknown_outcome",
        }
    }

    /// Every client-side code (beyond the protocol's), for binding tables.
    pub const CLIENT_CODES: [&'static str; 8] = [
        "timeout",
        "closed",
        "queue_full",
        "cancelled",
        "invalid_argument",
        "connection",
        "undecodable",
        "unknown_outcome",
    ];
}

impl MessageFrame {
    /// Decodes the payload. A payload `T` cannot take (for example one
    /// nested deeper than serde_json's limit of 128) is
    /// [`ClientError::Undecodable`] with this message's seq; the payload
    /// stays available as raw JSON in `data`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_str(self.data.get()).map_err(|e| ClientError::Undecodable {
            seq: self.seq,
            message: e.to_string(),
        })
    }
}

/// Something that happened, in order. Serialized as JSON with a `type` tag
/// for the bindings.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A `welcome` arrived.
    Connected {
        /// The session id.
        session: String,
        /// The user the server knows us as.
        user: Option<String>,
        /// Whether the previous session was resumed.
        resumed: bool,
        /// The session this one replaces when the server could not resume it.
        #[serde(skip_serializing_if = "Option::is_none")]
        lost_session: Option<String>,
    },
    /// The transport closed.
    Disconnected {
        /// The close code, if the server sent one.
        code: Option<u16>,
        /// Why.
        reason: String,
        /// Whether the client will reconnect.
        will_retry: bool,
    },
    /// A reconnect attempt is scheduled.
    Reconnecting {
        /// Attempt number, from 1.
        attempt: u32,
        /// Delay before it, in ms.
        delay_ms: u64,
    },
    /// A message, each exactly once and in seq order.
    Message(MessageFrame),
    /// The server dropped these messages; they will never arrive.
    Loss {
        /// First lost seq.
        from_seq: u64,
        /// Last lost seq.
        to_seq: u64,
        /// The server's reason.
        reason: String,
    },
    /// An error not tied to a request of the application.
    Error {
        /// The code.
        code: String,
        /// The message.
        message: String,
        /// The seq of the one message this error is about (code
        /// `undecodable`): that message counts as processed, and the
        /// messages before and after it are delivered as usual.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// After a session was lost, the engine joined these groups again.
    Rejoined {
        /// The groups.
        groups: Vec<String>,
    },
    /// A user joined or left a group joined with presence notices.
    PresenceChange(crate::protocol::server::PresenceChange),
    /// Joins and leaves of a large group since the last notice.
    PresenceSummary(crate::protocol::server::PresenceSummary),
    /// The client is closed for good; no more events follow.
    Closed {
        /// Why.
        reason: String,
        /// When the relay refused the last connection (an `error` frame in
        /// the handshake, or a close code that stands for one, like 4001):
        /// that protocol code, for example `unauthorized`. `None` for a
        /// transport failure, a close by the application, or a session the
        /// relay ended without refusing it (kicked, taken over, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}
