//! The one error vocabulary of the protocol.
//!
//! Every failure a client can observe is an [`ErrorCode`]; the string form is
//! what travels in an `error` frame's `code` field and is part of protocol v1.

use std::borrow::Cow;
use std::fmt;

/// A protocol error code, as carried by `{"type":"error","code":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, or `type` missing or not a string.
    BadFrame,
    /// A field is missing or invalid.
    BadRequest,
    /// Unknown `type`, binary frame, or unsupported protocol version.
    Unsupported,
    /// Authentication failed or is missing.
    Unauthorized,
    /// The identity is not allowed to do this.
    Forbidden,
    /// No such user, session or RPC method.
    NotFound,
    /// The frame is over the size limit.
    TooLarge,
    /// Too many frames in too short a time.
    RateLimited,
    /// A configured limit (groups, sessions, connections, …) was reached.
    LimitExceeded,
    /// The server failed; the request may be retried.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of `docs/PROTOCOL.md`.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadFrame,
        ErrorCode::BadRequest,
        ErrorCode::Unsupported,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::LimitExceeded,
        ErrorCode::Internal,
    ];

    /// The wire form of the code.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses the wire form of a code.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol-level failure: a code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for people; not to be matched on.
    pub message: Cow<'static, str>,
}

impl ProtocolError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// Errors of the host-side API ([`crate::Relay`] and friends).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused with a protocol error.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O error (binding, accepting).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The relay is shutting down or has shut down.
    #[error("the relay is shut down")]
    Closed,
}

impl Error {
    /// The protocol code closest to this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Protocol(e) => e.code,
            Error::Config(_) => ErrorCode::BadRequest,
            Error::Io(_) | Error::Closed => ErrorCode::Internal,
        }
    }

    /// The stable string code the language bindings report: the protocol
    /// code of a refusal, else `invalid_argument`, `io` or `closed`.
    pub fn binding_code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code.as_str(),
            Error::Config(_) => "invalid_argument",
            Error::Io(_) => "io",
            Error::Closed => "closed",
        }
    }
}

/// Shorthand for results of the host-side API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
