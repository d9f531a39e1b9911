//! Core errors as JavaScript errors. Every error the addon throws or
//! rejects with has a message of the form `[code] message`, where `code` is
//! a stable code (the protocol's error codes and the client codes of
//! `tests/vectors/codes.json`); the JavaScript layer turns it into a
//! `ZerorelayError` with that `code`. (napi's own error status cannot carry
//! it: errors of async functions must use napi's `Status`.)

use zerorelay::client::ClientError;

/// The addon's result type.
pub type Result<T> = napi::Result<T>;

/// A coded error.
pub fn coded(code: &str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("[{code}] {message}"))
}

/// An `invalid_argument` error.
pub fn invalid(message: impl std::fmt::Display) -> napi::Error {
    coded("invalid_argument", message)
}

/// A client error with its code.
pub fn client(e: ClientError) -> napi::Error {
    match &e {
        ClientError::Server { message, .. } | ClientError::InvalidArgument(message) => {
            coded(e.code(), message)
        }
        other => coded(e.code(), other),
    }
}

/// A host-side (`Relay`) error with its code.
pub fn relay(e: zerorelay::Error) -> napi::Error {
    match &e {
        zerorelay::Error::Protocol(p) => coded(e.binding_code(), &p.message),
        other => coded(e.binding_code(), other),
    }
}

/// napi failed to start a Promise (the environment is shutting down).
pub fn internal(e: napi::Error) -> napi::Error {
    coded("internal", e.reason)
}
