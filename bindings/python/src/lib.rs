//! The Python binding over the Zerorelay client engine and embedded
//! server: the native module `zerorelay._native`, wrapped by the
//! `zerorelay` package (`sdk-python/`).
//!
//! A thin bridge: it converts arguments, calls the core and converts
//! errors; no protocol logic lives here.
//!
//! - [`client`]: `_native.Client` (typed requests with JSON payloads,
//!   events in batches).
//! - [`server`]: `_native.Server` (the embedded relay, Python callbacks and
//!   hooks).
//! - [`error`]: core errors to the package's exception classes and back.
//! - [`runtime`]: the binding's Tokio runtime and the asyncio bridge.
//! - [`logs`]: `tracing` to Python's `logging`.

use pyo3::prelude::*;
use serde_json::value::RawValue;

pub mod client;
pub mod error;
pub mod logs;
pub mod runtime;
pub mod server;

/// A payload handed over as JSON text, checked to be JSON (`InvalidArgument`
/// naming `what` otherwise) and kept as that text.
pub(crate) fn json_arg(text: String, what: &str) -> PyResult<Box<RawValue>> {
    RawValue::from_string(text).map_err(|e| error::invalid(format!("{what} is not JSON: {e}")))
}

/// Closes nothing itself; tells the Rust side that the interpreter is
/// exiting, so that no Rust thread calls into Python any more. The package
/// calls it from `atexit`, after closing its clients and servers.
#[pyfunction]
fn at_exit(py: Python<'_>) {
    runtime::set_exiting(py);
}

/// Client codes beyond the protocol's (`timeout`, `closed`, …).
#[pyfunction]
fn client_codes() -> Vec<&'static str> {
    zerorelay::client::ClientError::CLIENT_CODES.to_vec()
}

/// An event batch's events as `(type, seq, text)`, nothing decoded: for a
/// batch `json` cannot decode whole (one payload nested too deep for it).
#[pyfunction]
fn split_events(batch: &str) -> PyResult<Vec<(String, Option<u64>, String)>> {
    zerorelay::client::json::split_event_array(batch)
        .map(|v| {
            v.into_iter()
                .map(|e| (e.ty, e.seq, e.text.to_owned()))
                .collect()
        })
        .map_err(error::client)
}

/// The protocol's error codes, in the order of docs/PROTOCOL.md.
#[pyfunction]
fn protocol_codes() -> Vec<&'static str> {
    zerorelay::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logs::install(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<client::Client>()?;
    m.add_class::<server::Server>()?;
    m.add_class::<server::ServerEvents>()?;
    m.add_function(wrap_pyfunction!(error::register_errors, m)?)?;
    m.add_function(wrap_pyfunction!(logs::reset_log_cache, m)?)?;
    m.add_function(wrap_pyfunction!(at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(client_codes, m)?)?;
    m.add_function(wrap_pyfunction!(protocol_codes, m)?)?;
    m.add_function(wrap_pyfunction!(split_events, m)?)?;
    Ok(())
}
