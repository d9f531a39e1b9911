//! The Node.js addon: a thin napi-rs bridge over the Zerorelay client
//! engine and the embedded relay. It converts arguments, calls the core and
//! converts errors; every protocol decision is the core's. The idiomatic
//! API (Promises, EventEmitter, async iteration, TypeScript types) is the
//! JavaScript layer in `sdk-node`.
//!
//! - [`client`]: `connect`, one method per request (the core builds the
//!   frames; payloads cross as JSON text), events pulled in batches (one
//!   Promise carries many events).
//! - [`server`]: the embedded relay, with optional JavaScript auth, RPC,
//!   `authorize` and `validate` functions.
//! - [`logs`]: the core's log records handed to a JavaScript function.
//! - [`error`]: how core errors reach JavaScript (a `code` on every error).

// napi's generated glue is unsafe code; this crate writes none of its own.
#![deny(unsafe_code)]

pub mod client;
pub mod error;
pub mod logs;
pub mod server;

use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;

/// A JavaScript function called from Rust with one JSON string that
/// resolves to a JSON string (the JavaScript layer wraps user callbacks so
/// that they never throw synchronously; the `authorize` and `validate`
/// hooks' wrappers reject when the user's function failed). Weak: it never
/// keeps the process alive.
pub type JsonCallback =
    ThreadsafeFunction<String, Promise<String>, String, napi::Status, false, true>;

/// Calls a [`JsonCallback`] and waits for its answer.
pub(crate) async fn ask(f: &JsonCallback, arg: String) -> Result<String, String> {
    let promise = f
        .call_async(arg)
        .await
        .map_err(|e| format!("calling JavaScript failed: {e}"))?;
    promise
        .await
        .map_err(|e| format!("the JavaScript callback failed: {e}"))
}

/// The addon's version (the crate's), to catch a stale build.
#[napi_derive::napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
