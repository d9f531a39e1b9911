//! The one place where core errors become Python exceptions, and Python
//! exceptions (from host callbacks) become protocol errors.
//!
//! The exception classes are defined in Python (`zerorelay/errors.py`, one
//! per code, under `ZerorelayError`) and registered here at import with
//! [`register`]; every error raised by the binding is an instance of the
//! class for its stable code, built as `cls(message, code)`.

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use zerorelay::client::ClientError;
use zerorelay::error::{ErrorCode, ProtocolError};

struct Classes {
    by_code: Py<PyDict>,
    base: Py<PyAny>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

/// Registers the exception classes: `by_code` maps each code to its class,
/// `base` is raised for a code without one. Only the first call counts.
#[pyfunction]
pub fn register_errors(py: Python<'_>, by_code: Py<PyDict>, base: Py<PyAny>) {
    let _ = CLASSES.set(py, Classes { by_code, base });
}

/// An exception for a stable code and message.
pub fn coded(code: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let Some(classes) = CLASSES.get(py) else {
            return PyRuntimeError::new_err(format!("{code}: {message}"));
        };
        let cls = match classes.by_code.bind(py).get_item(code) {
            Ok(Some(cls)) => cls,
            _ => classes.base.bind(py).clone(),
        };
        match cls.call1((message.as_str(), code)) {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        }
    })
}

/// A client error as its exception.
pub fn client(e: ClientError) -> PyErr {
    let message = match &e {
        ClientError::Server { message, .. } => message.clone(),
        other => other.to_string(),
    };
    coded(e.code(), message)
}

/// A host-side (server) error as its exception, by the core's binding
/// code; a failure to bind a port is Python's own `OSError`.
pub fn server(e: zerorelay::Error) -> PyErr {
    match &e {
        zerorelay::Error::Io(io) => PyOSError::new_err(io.to_string()),
        zerorelay::Error::Protocol(p) => coded(e.binding_code(), p.message.to_string()),
        _ => coded(e.binding_code(), e.to_string()),
    }
}

/// An invalid argument.
pub fn invalid(message: impl Into<String>) -> PyErr {
    coded("invalid_argument", message)
}

/// The client or server was made in another process (before a `fork`).
pub fn forked() -> PyErr {
    coded(
        "closed",
        "this object was created in another process (before a fork); create a new one",
    )
}

/// What a host callback's exception means for the client: its `code`
/// attribute when that is a protocol code (a handler raised
/// `zerorelay.NotFound`, say), else `internal`.
pub fn to_protocol(py: Python<'_>, e: &PyErr) -> ProtocolError {
    let value = e.value(py);
    let code = value
        .getattr("code")
        .ok()
        .and_then(|c| c.extract::<String>().ok())
        .and_then(|c| ErrorCode::parse(&c));
    match code {
        Some(code) => ProtocolError::new(code, value.to_string()),
        None => {
            tracing::warn!(target: "zerorelay::python", error = %e, "A Python rpc handler raised an exception.");
            ProtocolError::new(ErrorCode::Internal, "the rpc handler failed")
        }
    }
}
