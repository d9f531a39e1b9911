//! The C ABI over the Zerorelay client engine and embedded server.
//!
//! A thin bridge: it converts arguments, calls the core, and converts
//! errors; no protocol logic lives here. See `include/zerorelay.h` (made by
//! cbindgen from these files) for the conventions every function follows.
//!
//! - this file: status codes, the last error, argument helpers, the shared
//!   runtime, version and string functions;
//! - [`client`]: the client engine;
//! - [`server`]: the embedded relay;
//! - [`calls`]: a relay's host handlers as pulled calls;
//! - [`logs`]: the core's log records, pulled.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use serde_json::value::RawValue;
use tokio::runtime::Runtime;
use zerorelay::client::ClientError;

/// The ABI version; `zr_abi_version()` returns it. A binding compiled
/// against one header checks it at load time.
pub const ZR_ABI_VERSION: u32 = 1;

/// The result of every call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum zr_status {
    /// Success.
    ZR_OK = 0,
    /// An argument was null, not UTF-8, or invalid (bad JSON, bad option).
    ZR_ERR_INVALID_ARGUMENT = 1,
    /// The client or server is closed.
    ZR_ERR_CLOSED = 2,
    /// The offline queue is full.
    ZR_ERR_QUEUE_FULL = 3,
    /// The operation timed out.
    ZR_ERR_TIMEOUT = 4,
    /// The connection could not be established.
    ZR_ERR_CONNECTION = 5,
    /// The server refused; zr_last_error_code() has the protocol code.
    ZR_ERR_SERVER = 6,
    /// An I/O error (binding a port, …).
    ZR_ERR_IO = 7,
    /// A bug: Rust panicked. The handle should be freed.
    ZR_ERR_PANIC = 8,
}

#[derive(Debug)]
struct Failure {
    status: zr_status,
    code: String,
    message: String,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: zr_status::ZR_ERR_INVALID_ARGUMENT,
            code: "invalid_argument".into(),
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let status = match &e {
            ClientError::Server { .. } => zr_status::ZR_ERR_SERVER,
            ClientError::Timeout => zr_status::ZR_ERR_TIMEOUT,
            ClientError::Closed | ClientError::Cancelled => zr_status::ZR_ERR_CLOSED,
            ClientError::QueueFull => zr_status::ZR_ERR_QUEUE_FULL,
            ClientError::InvalidArgument(_) => zr_status::ZR_ERR_INVALID_ARGUMENT,
            ClientError::Connection(_) => zr_status::ZR_ERR_CONNECTION,
            _ => zr_status::ZR_ERR_SERVER,
        };
        Failure {
            status,
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

impl From<zerorelay::Error> for Failure {
    fn from(e: zerorelay::Error) -> Self {
        let status = match &e {
            zerorelay::Error::Protocol(_) => zr_status::ZR_ERR_SERVER,
            zerorelay::Error::Config(_) => zr_status::ZR_ERR_INVALID_ARGUMENT,
            zerorelay::Error::Io(_) => zr_status::ZR_ERR_IO,
            _ => zr_status::ZR_ERR_CLOSED,
        };
        Failure {
            status,
            code: e.binding_code().to_owned(),
            message: e.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<(CString, CString)> = RefCell::new((CString::default(), CString::default()));
}

fn set_error(code: &str, message: &str) {
    let clean = |s: &str| CString::new(s.replace('\0', " ")).expect("NULs were removed");
    LAST_ERROR.with(|e| *e.borrow_mut() = (clean(code), clean(message)));
}

/// Runs an FFI body: no panic crosses the boundary, failures are recorded.
fn ffi(f: impl FnOnce() -> Result<(), Failure>) -> zr_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => zr_status::ZR_OK,
        Ok(Err(e)) => {
            set_error(&e.code, &e.message);
            e.status
        }
        Err(_) => {
            set_error("panic", "internal error: the library panicked");
            zr_status::ZR_ERR_PANIC
        }
    }
}

/// One runtime for every handle in the process.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zerorelay")
            .enable_all()
            .build()
            .expect("a Tokio runtime can be built")
    })
}

/// # Safety
/// `p` is null or a NUL-terminated string valid for the call.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is null")));
    }
    // SAFETY: non-null and, by this function's contract, NUL-terminated.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// # Safety
/// As [`str_arg`]; null gives `None`.
unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

fn json_arg(text: &str, what: &str) -> Result<Box<RawValue>, Failure> {
    RawValue::from_string(text.to_owned())
        .map_err(|e| Failure::invalid(format!("{what} is not JSON: {e}")))
}

/// # Safety
/// `out` is null or valid for a write.
unsafe fn put<T>(out: *mut T, v: T) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid("the output pointer is null"));
    }
    // SAFETY: non-null and valid for writes by contract.
    unsafe { out.write(v) };
    Ok(())
}

fn c_string(s: String) -> *mut c_char {
    // JSON never carries a raw NUL (it is escaped as \u0000), so this copy-free
    // path is the usual one.
    match CString::new(s) {
        Ok(c) => c.into_raw(),
        Err(e) => {
            let s = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\\u0000");
            CString::new(s).expect("NULs were escaped").into_raw()
        }
    }
}

/// The ABI version of the library (compare with `ZR_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn zr_abi_version() -> u32 {
    ZR_ABI_VERSION
}

/// The library's version string (static; do not free).
#[no_mangle]
pub extern "C" fn zr_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the last failed call on this thread (valid until the next
/// call on this thread; do not free).
#[no_mangle]
pub extern "C" fn zr_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().1.as_ptr())
}

/// The stable code of the last failed call on this thread: a protocol code
/// (`not_found`, `forbidden`, …) or `timeout`, `closed`, `queue_full`,
/// `cancelled`, `invalid_argument`, `connection`, `io`, `panic`.
#[no_mangle]
pub extern "C" fn zr_last_error_code() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().0.as_ptr())
}

/// Frees a string this library returned. Null is ignored.
///
/// # Safety
/// `s` is null or a string returned by this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn zr_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: by contract it came from CString::into_raw here.
        drop(unsafe { CString::from_raw(s) });
    }
}

mod calls;
mod client;
mod logs;
mod server;
pub use calls::{
    zr_server_answer, zr_server_next_calls, zr_server_pending_calls, zr_server_start_with_handlers,
};
pub use client::*;
pub use logs::{zr_log_init, zr_logs_next};
pub use server::*;
