//! The C ABI over the Zerorelay client engine and embedded server.
//!
//! A thin bridge: it converts arguments, calls the core, and converts
//! errors; no protocol logic lives here. See `include/zerorelay.h` (made by
//! cbindgen from this file) for the conventions every function follows.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use zerorelay::client::json::{reply_to_json, request_from_json, write_event};
use zerorelay::client::{Client, ClientError, ClientOptions, Event, Request};
use zerorelay::protocol::Target;
use zerorelay::{Config, Relay};

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
mod logs;
pub use calls::{
    zr_server_answer, zr_server_next_calls, zr_server_pending_calls, zr_server_start_with_handlers,
};
pub use logs::{zr_log_init, zr_logs_next};

/// Capacity of a client's pulled-event queue.
const EVENT_QUEUE: usize = 8192;

/// A client handle.
pub struct zr_client {
    client: Client,
    /// The engine's events.
    events: tokio::sync::Mutex<zerorelay::client::Events>,
    /// Set once the engine's events have ended (the client closed).
    ended: AtomicBool,
    /// Woken when `ended` is set.
    ended_notify: tokio::sync::Notify,
    /// Replies to submitted requests, and `token_needed` events.
    replies_rx: tokio::sync::Mutex<mpsc::Receiver<String>>,
    replies: mpsc::Sender<String>,
    /// Set by `zr_client_split_replies`: the event pulls leave replies to
    /// `zr_client_next_replies`.
    split: AtomicBool,
    next_request: AtomicU64,
    /// Requests whose reply is not sent yet. Whoever removes an entry (the
    /// reply task, or `zr_client_cancel`) sends the one reply for it.
    pending: Arc<Mutex<HashMap<u64, tokio::task::AbortHandle>>>,
    tokens: Option<Arc<TokenSlot>>,
}

/// A token and how long it is valid, or why there is none.
type TokenAnswer = Result<(String, Option<Duration>), String>;

/// A token provider across the ABI: the engine's request becomes a pulled
/// `{"type":"token_needed"}` event, and `zr_client_set_token` answers it.
#[derive(Default)]
struct TokenSlot {
    waiting: Mutex<Option<tokio::sync::oneshot::Sender<TokenAnswer>>>,
    notify: Mutex<Option<mpsc::Sender<String>>>,
}

impl TokenSlot {
    fn provider(self: &Arc<Self>) -> zerorelay::client::TokenProvider {
        let slot = self.clone();
        Arc::new(move || {
            let slot = slot.clone();
            Box::pin(async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                *slot.waiting.lock().expect("not poisoned") = Some(tx);
                let notify = slot.notify.lock().expect("not poisoned").clone();
                if let Some(n) = notify {
                    let _ = n.send(r#"{"type":"token_needed"}"#.to_owned()).await;
                }
                rx.await
                    .unwrap_or_else(|_| Err("the client was freed".into()))
            })
        })
    }
}

fn new_client(
    client: Client,
    events: zerorelay::client::Events,
    tokens: Option<Arc<TokenSlot>>,
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<String>,
) -> Box<zr_client> {
    Box::new(zr_client {
        client,
        events: tokio::sync::Mutex::new(events),
        ended: AtomicBool::new(false),
        ended_notify: tokio::sync::Notify::new(),
        replies_rx: tokio::sync::Mutex::new(rx),
        replies: tx,
        split: AtomicBool::new(false),
        next_request: AtomicU64::new(1),
        pending: Arc::new(Mutex::new(HashMap::new())),
        tokens,
    })
}

fn options(json: Option<&str>) -> Result<ClientOptions, Failure> {
    Ok(ClientOptions::from_json(json.unwrap_or(""))?)
}

/// Connects and waits for the first welcome (see the client options'
/// `connect_timeout_ms`). `options_json` may be null.
///
/// # Safety
/// Strings are NUL-terminated or null; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_client_connect(
    url: *const c_char,
    options_json: *const c_char,
    out: *mut *mut zr_client,
) -> zr_status {
    ffi(|| {
        if out.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        // SAFETY: forwarded contract.
        let url = unsafe { str_arg(url, "url") }?;
        // SAFETY: forwarded contract.
        let opts = options(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        let (client, events) = runtime().block_on(Client::connect(url, opts))?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        // SAFETY: forwarded contract.
        unsafe { put(out, Box::into_raw(new_client(client, events, None, tx, rx))) }
    })
}

/// Starts a client that connects in the background; requests made before
/// it is connected wait in the offline queue.
///
/// # Safety
/// As `zr_client_connect`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_start(
    url: *const c_char,
    options_json: *const c_char,
    out: *mut *mut zr_client,
) -> zr_status {
    ffi(|| {
        if out.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        // SAFETY: forwarded contract.
        let url = unsafe { str_arg(url, "url") }?;
        // SAFETY: forwarded contract.
        let opts = options(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        start(url, opts, false, out)
    })
}

/// Like `zr_client_start`, with a token provider: before every connection
/// attempt and before the token expires, a `{"type":"token_needed"}` event
/// is delivered; answer it with `zr_client_set_token`.
///
/// # Safety
/// As `zr_client_connect`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_start_with_token_provider(
    url: *const c_char,
    options_json: *const c_char,
    out: *mut *mut zr_client,
) -> zr_status {
    ffi(|| {
        if out.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        // SAFETY: forwarded contract.
        let url = unsafe { str_arg(url, "url") }?;
        // SAFETY: forwarded contract.
        let opts = options(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        start(url, opts, true, out)
    })
}

fn start(
    url: &str,
    opts: ClientOptions,
    with_tokens: bool,
    out: *mut *mut zr_client,
) -> Result<(), Failure> {
    let _rt = runtime().enter();
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let slot = with_tokens.then(|| {
        let slot = Arc::new(TokenSlot::default());
        *slot.notify.lock().expect("not poisoned") = Some(tx.clone());
        slot
    });
    let (client, events) = Client::start(url, opts, slot.as_ref().map(TokenSlot::provider))?;
    // SAFETY: the caller checked `out`.
    unsafe { put(out, Box::into_raw(new_client(client, events, slot, tx, rx))) }
}

/// Answers a `token_needed` event: `token` valid for `valid_ms` (0: no
/// expiry), or, when `error` is not null, the provider's failure (the
/// connection attempt then counts as failed and is retried).
///
/// # Safety
/// `c` is a live handle; `token` and `error` are null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn zr_client_set_token(
    c: *const zr_client,
    token: *const c_char,
    valid_ms: u64,
    error: *const c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let slot = c
            .tokens
            .as_ref()
            .ok_or_else(|| Failure::invalid("this client has no token provider"))?;
        // SAFETY: forwarded contract.
        let answer = match unsafe { opt_str_arg(error, "error") }? {
            Some(e) => Err(e.to_owned()),
            None => {
                // SAFETY: forwarded contract.
                let t = unsafe { str_arg(token, "token") }?.to_owned();
                Ok((t, (valid_ms > 0).then(|| Duration::from_millis(valid_ms))))
            }
        };
        let waiting = slot.waiting.lock().expect("not poisoned").take();
        match waiting {
            Some(tx) => {
                let _ = tx.send(answer);
                Ok(())
            }
            None => Err(Failure::invalid("no token was asked for")),
        }
    })
}

/// # Safety
/// `c` is null or a live handle.
unsafe fn client_ref<'a>(c: *const zr_client) -> Result<&'a zr_client, Failure> {
    // SAFETY: null or live by contract.
    unsafe { c.as_ref() }.ok_or_else(|| Failure::invalid("client is null"))
}

fn submit(c: &zr_client, req: Request) -> Result<u64, Failure> {
    let id = c.next_request.fetch_add(1, Ordering::Relaxed);
    let pending = runtime().block_on(c.client.submit(req))?;
    let replies = c.replies.clone();
    let map = c.pending.clone();
    // Held until the entry is in: the task cannot look before it is.
    let mut guard = c.pending.lock().expect("not poisoned");
    let task = runtime().spawn(async move {
        let r = pending.await;
        // Exactly one reply per request: the task sends it only if
        // zr_client_cancel did not take the entry (and send `cancelled`).
        let ours = map.lock().expect("not poisoned").remove(&id).is_some();
        if ours {
            let _ = replies.send(reply_to_json(id, &r)).await;
        }
    });
    guard.insert(id, task.abort_handle());
    Ok(id)
}

/// # Safety
/// `c` is a live handle, `out_request` valid for a write.
unsafe fn submit_to(
    c: *const zr_client,
    out_request: *mut u64,
    req: impl FnOnce() -> Result<Request, Failure>,
) -> zr_status {
    ffi(|| {
        if out_request.is_null() {
            return Err(Failure::invalid("out_request is null"));
        }
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let id = submit(c, req()?)?;
        // SAFETY: forwarded contract.
        unsafe { put(out_request, id) }
    })
}

/// Joins a group (re-joined automatically if the session is lost). The
/// answer arrives as a `reply` event for the number written to `out_request`.
///
/// # Safety
/// `c` is a live handle; `group` is NUL-terminated; `out_request` is valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_client_join(
    c: *const zr_client,
    group: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Join {
                group: str_arg(group, "group")?.to_owned(),
                presence: false,
            })
        })
    }
}

/// Joins a group and asks for presence notices: events
/// `{"type":"presence_change","group","user","change"}` and, in large
/// groups, `{"type":"presence_summary","group","joined","left","present"}`.
///
/// # Safety
/// As `zr_client_join`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_join_with_presence(
    c: *const zr_client,
    group: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Join {
                group: str_arg(group, "group")?.to_owned(),
                presence: true,
            })
        })
    }
}

/// Asks who is in a group. The `reply` event's `data` is
/// `{"group","members":[{"user","sessions"}],"anonymous"}`.
///
/// # Safety
/// As `zr_client_join`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_presence(
    c: *const zr_client,
    group: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Presence {
                group: str_arg(group, "group")?.to_owned(),
            })
        })
    }
}

/// Leaves a group.
///
/// # Safety
/// As `zr_client_join`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_leave(
    c: *const zr_client,
    group: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Leave {
                group: str_arg(group, "group")?.to_owned(),
            })
        })
    }
}

/// Publishes JSON `data_json` to a group (to ourselves too when `echo`).
///
/// # Safety
/// As `zr_client_join`; `data_json` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn zr_client_publish(
    c: *const zr_client,
    group: *const c_char,
    data_json: *const c_char,
    echo: bool,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Publish {
                group: str_arg(group, "group")?.to_owned(),
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
                echo,
            })
        })
    }
}

/// Broadcasts JSON `data_json` to every session (to ourselves too when `echo`).
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_broadcast(
    c: *const zr_client,
    data_json: *const c_char,
    echo: bool,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Broadcast {
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
                echo,
            })
        })
    }
}

/// Sends JSON `data_json` to every session of `user` (but this one).
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_send_to_user(
    c: *const zr_client,
    user: *const c_char,
    data_json: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Send {
                target: Target::User(str_arg(user, "user")?.to_owned()),
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
            })
        })
    }
}

/// Sends JSON `data_json` to one session.
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_send_to_session(
    c: *const zr_client,
    session: *const c_char,
    data_json: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Send {
                target: Target::Session(str_arg(session, "session")?.to_owned()),
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
            })
        })
    }
}

/// Calls a host method with JSON `arg_json` (may be null); the `reply`
/// event carries the result in `data`.
///
/// # Safety
/// As `zr_client_publish`; `arg_json` may be null.
#[no_mangle]
pub unsafe extern "C" fn zr_client_rpc(
    c: *const zr_client,
    method: *const c_char,
    arg_json: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_to(c, out_request, || {
            Ok(Request::Rpc {
                method: str_arg(method, "method")?.to_owned(),
                data: opt_str_arg(arg_json, "arg_json")?
                    .map(|a| json_arg(a, "arg_json"))
                    .transpose()?,
            })
        })
    }
}

/// Submits a request (a client frame without `id`, e.g.
/// `{"type":"publish","group":"g","data":1}`). Its answer arrives as an
/// event `{"type":"reply","request":N,…}` with the number written to
/// `out_request`. Requests from one thread keep their order.
///
/// # Safety
/// `c` is a live handle; `request_json` is a NUL-terminated string;
/// `out_request` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_client_submit(
    c: *const zr_client,
    request_json: *const c_char,
    out_request: *mut u64,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        // SAFETY: forwarded contract.
        let req = request_from_json(unsafe { str_arg(request_json, "request_json") }?)?;
        let id = submit(c, req)?;
        // SAFETY: forwarded contract.
        unsafe { put(out_request, id) }
    })
}

/// Stops waiting for a request: a queued request is not sent. Every
/// request gets exactly one reply event: a request cancelled before its
/// answer came gets one with error code `cancelled`; one whose answer was
/// already on its way gets that answer, and cancelling it does nothing.
///
/// # Safety
/// `c` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn zr_client_cancel(c: *const zr_client, request: u64) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let task = c.pending.lock().expect("not poisoned").remove(&request);
        if let Some(task) = task {
            task.abort();
            let replies = c.replies.clone();
            let reply = reply_to_json(request, &Err(ClientError::Cancelled));
            // Not try_send: a full queue must not lose the one reply.
            runtime().spawn(async move {
                let _ = replies.send(reply).await;
            });
        }
        Ok(())
    })
}

/// From this call on, the event pulls (`zr_client_next_event`,
/// `zr_client_next_events`, `zr_client_next_batch`) return the client's
/// events only, and replies and `token_needed` events are pulled with
/// `zr_client_next_replies`. Then replies never wait behind events the
/// caller has not pulled yet (a binding can stop pulling messages while
/// its application does not read them, and still get its replies).
///
/// # Safety
/// `c` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn zr_client_split_replies(c: *const zr_client) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        unsafe { client_ref(c) }?
            .split
            .store(true, Ordering::SeqCst);
        Ok(())
    })
}

/// Waits up to `timeout_ms` for replies and `token_needed` events and
/// writes up to `max` of them as a JSON array to `out_json` (null when none
/// came in time). Fails with ZR_ERR_CLOSED once the client's events have
/// ended (the `closed` event was pulled) and every reply was read. See
/// `zr_client_split_replies`.
///
/// # Safety
/// `c` is a live handle; `out_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_client_next_replies(
    c: *const zr_client,
    timeout_ms: u32,
    max: u32,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        if out_json.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let max = max.max(1) as usize;
        let replies = runtime().block_on(async {
            let mut rx = c.replies_rx.lock().await;
            let mut replies = Vec::new();
            let deadline = tokio::time::Instant::now() + ms(timeout_ms);
            loop {
                let ended = c.ended_notify.notified();
                tokio::pin!(ended);
                // Registered before looking, so an end in between wakes it.
                ended.as_mut().enable();
                if c.ended.load(Ordering::SeqCst) && rx.is_empty() {
                    return Err(Failure::from(ClientError::Closed));
                }
                tokio::select! {
                    _ = rx.recv_many(&mut replies, max) => return Ok(replies),
                    _ = &mut ended => {}
                    _ = tokio::time::sleep_until(deadline) => return Ok(replies),
                }
            }
        })?;
        let v = if replies.is_empty() {
            std::ptr::null_mut()
        } else {
            c_string(format!("[{}]", replies.join(",")))
        };
        // SAFETY: forwarded contract.
        unsafe { put(out_json, v) }
    })
}

/// Writes the client's session id to `out` (free it with
/// `zr_string_free`), or null while it is not connected (connecting,
/// reconnecting, or closed). After a resume it is the same id; after a
/// lost session, the new one.
///
/// # Safety
/// `c` is a live handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_client_session(
    c: *const zr_client,
    out: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let v = match c.client.status() {
            zerorelay::client::Status::Connected(session) => c_string(session),
            _ => std::ptr::null_mut(),
        };
        // SAFETY: forwarded contract.
        unsafe { put(out, v) }
    })
}

fn ms(timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(timeout_ms))
}

/// Waits up to `timeout_ms` for the next event and writes its JSON to
/// `out_json`, or null when none came in time. After the `closed` event the
/// call fails with ZR_ERR_CLOSED once every event was read.
///
/// # Safety
/// `c` is a live handle; `out_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_client_next_event(
    c: *const zr_client,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let mut s = String::new();
        let v = if pull(c, timeout_ms, 1, &mut s, "")? == 0 {
            std::ptr::null_mut()
        } else {
            c_string(s)
        };
        // SAFETY: forwarded contract.
        unsafe { put(out_json, v) }
    })
}

/// Like `zr_client_next_event`, but returns up to `max` events at once as a
/// JSON array (null when none came in time), so that a high message rate
/// costs one boundary crossing per batch.
///
/// # Safety
/// As `zr_client_next_event`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_next_events(
    c: *const zr_client,
    timeout_ms: u32,
    max: u32,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let mut s = String::from("[");
        let v = if pull(c, timeout_ms, max.max(1) as usize, &mut s, ",")? == 0 {
            std::ptr::null_mut()
        } else {
            s.push(']');
            c_string(s)
        };
        // SAFETY: forwarded contract.
        unsafe { put(out_json, v) }
    })
}

/// Waits up to `timeout_ms` for events or (unless replies are split off)
/// replies, then takes up to `max` of whatever is ready.
fn collect(
    c: &zr_client,
    timeout_ms: u32,
    max: usize,
) -> Result<(Vec<Event>, Vec<String>), Failure> {
    runtime().block_on(async {
        let mut ev = c.events.lock().await;
        // Locked after the events, as everywhere.
        let mut rx = if c.split.load(Ordering::SeqCst) {
            None
        } else {
            Some(c.replies_rx.lock().await)
        };
        let mut events: Vec<Event> = Vec::new();
        let mut replies: Vec<String> = Vec::new();
        let no_replies = |rx: &Option<tokio::sync::MutexGuard<'_, mpsc::Receiver<String>>>| {
            rx.as_ref().is_none_or(|r| r.is_empty())
        };
        let mut ended = c.ended.load(Ordering::SeqCst);
        if ended && no_replies(&rx) {
            return Err(Failure::from(ClientError::Closed));
        }
        tokio::select! {
            n = ev.recv_many(&mut events, max), if !ended => {
                if n == 0 {
                    ended = true;
                    c.ended.store(true, Ordering::SeqCst);
                    c.ended_notify.notify_waiters();
                }
            }
            _ = async { rx.as_mut().expect("guarded").recv_many(&mut replies, max).await }, if rx.is_some() => {}
            _ = tokio::time::sleep(ms(timeout_ms)) => {}
        }
        while events.len() + replies.len() < max && !ended {
            match ev.try_recv() {
                Some(e) => events.push(e),
                None => break,
            }
        }
        if let Some(rx) = rx.as_mut() {
            while events.len() + replies.len() < max {
                match rx.try_recv() {
                    Ok(r) => replies.push(r),
                    Err(_) => break,
                }
            }
        }
        if events.is_empty() && replies.is_empty() && ended && no_replies(&rx) {
            return Err(Failure::from(ClientError::Closed));
        }
        Ok((events, replies))
    })
}

/// Takes events like `collect` and appends them as JSON objects to `out`,
/// separated by `sep`. Returns how many were taken.
fn pull(
    c: &zr_client,
    timeout_ms: u32,
    max: usize,
    out: &mut String,
    sep: &str,
) -> Result<usize, Failure> {
    let (events, replies) = collect(c, timeout_ms, max)?;
    let mut first = true;
    for e in &events {
        if !first {
            out.push_str(sep);
        }
        first = false;
        write_event(e, out);
    }
    for r in &replies {
        if !first {
            out.push_str(sep);
        }
        first = false;
        out.push_str(r);
    }
    Ok(events.len() + replies.len())
}

/// Record tags of `zr_client_next_batch`.
const BATCH_MESSAGE: u8 = 1;
const BATCH_JSON: u8 = 2;
/// A length that stands for JSON `null`.
const BATCH_NULL: u16 = u16::MAX;

fn put_str16(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(&BATCH_NULL.to_le_bytes()),
        Some(s) => {
            // Names and session ids are at most 128 bytes by grammar.
            let s = &s.as_bytes()[..s.len().min(usize::from(BATCH_NULL) - 1)];
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s);
        }
    }
}

/// Encodes events for `zr_client_next_batch`: messages as binary records,
/// everything else as JSON records.
fn encode_batch(events: &[Event], replies: &[String]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(events.len() * 160 + replies.iter().map(|r| r.len() + 5).sum::<usize>());
    let mut json = String::new();
    for e in events {
        match e {
            Event::Message(m) => {
                out.push(BATCH_MESSAGE);
                let len_at = out.len();
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&m.seq.to_le_bytes());
                out.extend_from_slice(&m.ts.to_le_bytes());
                out.push(match m.kind {
                    zerorelay::protocol::DeliveryKind::Direct => 0,
                    zerorelay::protocol::DeliveryKind::Group => 1,
                    zerorelay::protocol::DeliveryKind::Broadcast => 2,
                });
                put_str16(&mut out, m.from.as_deref());
                put_str16(&mut out, m.from_session.as_deref());
                put_str16(&mut out, m.group.as_deref());
                let data = m.data.get().as_bytes();
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
                let len = (out.len() - len_at - 4) as u32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            other => {
                json.clear();
                write_event(other, &mut json);
                out.push(BATCH_JSON);
                out.extend_from_slice(&(json.len() as u32).to_le_bytes());
                out.extend_from_slice(json.as_bytes());
            }
        }
    }
    for r in replies {
        out.push(BATCH_JSON);
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r.as_bytes());
    }
    out
}

/// Like `zr_client_next_events`, in a compact binary form for bindings that
/// decode many messages per second. The buffer is a sequence of records,
/// all integers little-endian: a tag byte, a u32 record length, then
///
/// - tag 1, a message: u64 seq, u64 ts, u8 kind (0 direct, 1 group,
///   2 broadcast), then `from`, `from_session` and `group` each as a u16
///   length and UTF-8 bytes (length 0xFFFF: null), then u32 length and the
///   payload's JSON text;
/// - tag 2, any other event or reply: its JSON text.
///
/// `*out` is null (and `*out_len` 0) when nothing came in time; free the
/// buffer with `zr_bytes_free`.
///
/// # Safety
/// `c` is a live handle; `out` and `out_len` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zr_client_next_batch(
    c: *const zr_client,
    timeout_ms: u32,
    max: u32,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> zr_status {
    ffi(|| {
        if out.is_null() || out_len.is_null() {
            return Err(Failure::invalid("the output pointers are null"));
        }
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let (events, replies) = collect(c, timeout_ms, max.max(1) as usize)?;
        let (ptr, len) = if events.is_empty() && replies.is_empty() {
            (std::ptr::null_mut(), 0)
        } else {
            let bytes = encode_batch(&events, &replies).into_boxed_slice();
            let len = bytes.len();
            (Box::into_raw(bytes).cast::<u8>(), len)
        };
        // SAFETY: both checked non-null above; valid for writes by contract.
        unsafe {
            out.write(ptr);
            out_len.write(len);
        }
        Ok(())
    })
}

/// Frees a buffer returned by `zr_client_next_batch`. Null is ignored.
///
/// # Safety
/// `p` and `len` are exactly what `zr_client_next_batch` returned, not
/// freed before.
#[no_mangle]
pub unsafe extern "C" fn zr_bytes_free(p: *mut u8, len: usize) {
    if !p.is_null() {
        // SAFETY: by contract it is the boxed slice of `len` bytes made above.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) });
    }
}

/// Closes the client cleanly (its session ends on the server) and waits
/// until it has. The remaining events, ending with `closed`, can still be
/// pulled.
///
/// # Safety
/// `c` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn zr_client_close(c: *const zr_client) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        runtime().block_on(c.client.close());
        Ok(())
    })
}

/// Closes the client if needed and frees the handle. Null is ignored.
///
/// # Safety
/// `c` is null or a live handle that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zr_client_free(c: *mut zr_client) {
    if c.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: by contract it came from Box::into_raw here and is not shared.
        let c = unsafe { Box::from_raw(c) };
        runtime().block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.client.close()).await;
        });
        for (_, t) in c.pending.lock().expect("not poisoned").drain() {
            t.abort();
        }
    }));
}

/// An embedded server handle.
pub struct zr_server {
    relay: Relay,
    addr: String,
    serve: Mutex<Option<tokio::task::JoinHandle<zerorelay::Result<()>>>>,
    /// The session-event subscription, made at the first
    /// `zr_server_next_events`.
    events: tokio::sync::Mutex<Option<zerorelay::server::events::HostEventStream>>,
    /// The host handlers' calls (`zr_server_start_with_handlers`).
    calls: Option<Arc<calls::Calls>>,
}

/// The configuration argument of the server's start functions: JSON, or
/// null or blank for the defaults.
///
/// # Safety
/// `config_json` is null or NUL-terminated.
unsafe fn config_arg(config_json: *const c_char) -> Result<Config, Failure> {
    // SAFETY: forwarded contract.
    match unsafe { opt_str_arg(config_json, "config_json") }? {
        None => Ok(Config::default()),
        Some(j) if j.trim().is_empty() => Ok(Config::default()),
        Some(j) => serde_json::from_str(j).map_err(|e| Failure::invalid(format!("config: {e}"))),
    }
}

/// Builds the relay, binds and serves it, and writes the handle to `out`.
///
/// # Safety
/// `out` is valid for a write.
unsafe fn start_server(
    builder: zerorelay::RelayBuilder,
    calls: Option<Arc<calls::Calls>>,
    out: *mut *mut zr_server,
) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid("the output pointer is null"));
    }
    let (relay, addr, serve) = runtime().block_on(async {
        let relay = builder.build()?;
        let (bound, serve) = relay.spawn().await?;
        Ok::<_, zerorelay::Error>((relay, bound.to_string(), serve))
    })?;
    let s = Box::new(zr_server {
        relay,
        addr,
        serve: Mutex::new(Some(serve)),
        events: tokio::sync::Mutex::new(None),
        calls,
    });
    // SAFETY: forwarded contract.
    unsafe { put(out, Box::into_raw(s)) }
}

/// Starts a relay from a configuration (JSON with the same sections and
/// keys as the TOML file; null for the defaults) on `server.listen` (use
/// port 0 for an ephemeral port).
///
/// # Safety
/// `config_json` is null or NUL-terminated; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_start(
    config_json: *const c_char,
    out: *mut *mut zr_server,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let config = unsafe { config_arg(config_json) }?;
        let _rt = runtime().enter();
        // SAFETY: forwarded contract.
        unsafe { start_server(Relay::builder(config), None, out) }
    })
}

/// # Safety
/// `s` is null or a live handle.
unsafe fn server_ref<'a>(s: *const zr_server) -> Result<&'a zr_server, Failure> {
    // SAFETY: null or live by contract.
    unsafe { s.as_ref() }.ok_or_else(|| Failure::invalid("server is null"))
}

/// The bound address, `host:port`.
///
/// # Safety
/// `s` is a live handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_address(
    s: *const zr_server,
    out: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        // SAFETY: forwarded contract.
        unsafe { put(out, c_string(s.addr.clone())) }
    })
}

/// Publishes JSON `data_json` to a group; writes the number of sessions
/// reached to `out_count` (may be null).
///
/// # Safety
/// `s` is a live handle; strings are NUL-terminated; `out_count` is null or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_publish(
    s: *const zr_server,
    group: *const c_char,
    data_json: *const c_char,
    out_count: *mut u64,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, group, data) = unsafe {
            (
                server_ref(s)?,
                str_arg(group, "group")?,
                str_arg(data_json, "data_json")?,
            )
        };
        let n = s.relay.publish(group, &json_arg(data, "data_json")?)?;
        write_count(out_count, n)
    })
}

/// Sends JSON `data_json` to every session of a user (`not_found` when
/// none); writes the number of sessions reached to `out_count` (may be null).
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_send_to_user(
    s: *const zr_server,
    user: *const c_char,
    data_json: *const c_char,
    out_count: *mut u64,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, user, data) = unsafe {
            (
                server_ref(s)?,
                str_arg(user, "user")?,
                str_arg(data_json, "data_json")?,
            )
        };
        let n = s.relay.send_to_user(user, &json_arg(data, "data_json")?)?;
        write_count(out_count, n)
    })
}

/// Sends JSON `data_json` to one session (`not_found` when it does not exist).
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_send_to_session(
    s: *const zr_server,
    session: *const c_char,
    data_json: *const c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, session, data) = unsafe {
            (
                server_ref(s)?,
                str_arg(session, "session")?,
                str_arg(data_json, "data_json")?,
            )
        };
        s.relay
            .send_to_session(session, &json_arg(data, "data_json")?)?;
        Ok(())
    })
}

/// Broadcasts JSON `data_json` to every session; writes the number reached
/// to `out_count` (may be null).
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_broadcast(
    s: *const zr_server,
    data_json: *const c_char,
    out_count: *mut u64,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, data) = unsafe { (server_ref(s)?, str_arg(data_json, "data_json")?) };
        let n = s.relay.broadcast(&json_arg(data, "data_json")?)?;
        write_count(out_count, n)
    })
}

fn write_count(out: *mut u64, n: usize) -> Result<(), Failure> {
    if !out.is_null() {
        // SAFETY: non-null and valid for a write by the caller's contract.
        unsafe { out.write(n as u64) };
    }
    Ok(())
}

/// Calls `f` with the relay and a session id argument, and writes its
/// answer to `out` (may be null): the shape of every per-session call.
///
/// # Safety
/// As `zr_server_publish`; `out` is null or valid for a write.
unsafe fn on_session(
    s: *const zr_server,
    session: *const c_char,
    out: *mut bool,
    f: impl FnOnce(&zerorelay::Relay, &str) -> bool,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, session) = unsafe { (server_ref(s)?, str_arg(session, "session")?) };
        let answer = f(&s.relay, session);
        if !out.is_null() {
            // SAFETY: non-null and valid by contract.
            unsafe { out.write(answer) };
        }
        Ok(())
    })
}

/// Ends a session (its client gets close code 4005 and cannot resume).
/// `out_existed` (may be null) tells whether it existed.
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_disconnect(
    s: *const zr_server,
    session: *const c_char,
    out_existed: *mut bool,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe { on_session(s, session, out_existed, |relay, id| relay.disconnect(id)) }
}

/// Revokes a session (its client gets close code 4006 and cannot resume).
/// `out_existed` (may be null) tells whether it existed.
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_revoke_session(
    s: *const zr_server,
    session: *const c_char,
    out_existed: *mut bool,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        on_session(s, session, out_existed, |relay, id| {
            relay.revoke_session(id)
        })
    }
}

/// Revokes every session of a user (close 4006, sessions ended).
/// `out_sessions` (may be null) receives how many were ended.
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_revoke_user(
    s: *const zr_server,
    user: *const c_char,
    out_sessions: *mut u64,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, user) = unsafe { (server_ref(s)?, str_arg(user, "user")?) };
        write_count(out_sessions, s.relay.revoke_user(user))
    })
}

/// Drops a session's connection as a network failure would (the client
/// reconnects and resumes). `out_existed` (may be null) tells whether a
/// connection was attached.
///
/// # Safety
/// As `zr_server_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_drop_connection(
    s: *const zr_server,
    session: *const c_char,
    out_existed: *mut bool,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        on_session(s, session, out_existed, |relay, id| {
            relay.drop_connection(id)
        })
    }
}

/// The sessions as a JSON array of `{id,user,connected,groups,last_seq,unacked}`.
///
/// # Safety
/// `s` is a live handle; `out_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_sessions(
    s: *const zr_server,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        let j = serde_json::to_string(&s.relay.sessions()).expect("sessions are JSON");
        // SAFETY: forwarded contract.
        unsafe { put(out_json, c_string(j)) }
    })
}

/// The groups as a JSON array of `{name,members}`.
///
/// # Safety
/// As `zr_server_sessions`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_groups(
    s: *const zr_server,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        let j = serde_json::to_string(&s.relay.groups()).expect("groups are JSON");
        // SAFETY: forwarded contract.
        unsafe { put(out_json, c_string(j)) }
    })
}

/// Who is in `group`, as a JSON object `{group, members: [{user,
/// sessions}], anonymous}`; ZR_ERR_BAD_REQUEST for a name outside the
/// grammar.
///
/// # Safety
/// As `zr_server_sessions`; `group` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn zr_server_presence(
    s: *const zr_server,
    group: *const c_char,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        // SAFETY: forwarded contract.
        let group = unsafe { str_arg(group, "group") }?;
        let p = s.relay.presence(group)?;
        let j = serde_json::to_string(&p).expect("presence is JSON");
        // SAFETY: forwarded contract.
        unsafe { put(out_json, c_string(j)) }
    })
}

/// Waits up to `timeout_ms` for what happens to sessions and writes up to
/// `max` events as a JSON array to `out_json` (null when none came in
/// time): `{"type":"connected","session","user","resumed","remote"}`,
/// `{"type":"disconnected","session","user","reason"}`,
/// `{"type":"ended","session","user","reason"}`, and
/// `{"type":"lagged","missed":n}` where the reader fell more than 1,024
/// events behind. The subscription starts at the first call. Fails with
/// ZR_ERR_CLOSED once the server is shutting down.
///
/// # Safety
/// `s` is a live handle; `out_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_next_events(
    s: *const zr_server,
    timeout_ms: u32,
    max: u32,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        let got = runtime().block_on(async {
            let mut slot = s.events.lock().await;
            let stream = slot.get_or_insert_with(|| s.relay.event_stream());
            let wait = std::time::Duration::from_millis(u64::from(timeout_ms));
            tokio::time::timeout(wait, stream.next_json_batch(max.max(1) as usize)).await
        });
        let v = match got {
            Ok(Some(batch)) => c_string(batch),
            Ok(None) => return Err(zerorelay::Error::Closed.into()),
            Err(_) => std::ptr::null_mut(),
        };
        // SAFETY: forwarded contract.
        unsafe { put(out_json, v) }
    })
}

/// The relay's counters as a JSON object: `{connections_accepted,
/// connections_open, sessions, deliveries, dropped, slow_consumers,
/// trimmed, outbox_bytes}`.
///
/// # Safety
/// As `zr_server_sessions`.
#[no_mangle]
pub unsafe extern "C" fn zr_server_stats(
    s: *const zr_server,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        let j = serde_json::to_string(&s.relay.stats()).expect("stats are JSON");
        // SAFETY: forwarded contract.
        unsafe { put(out_json, c_string(j)) }
    })
}

/// Graceful shutdown: fails every pending handler call (and wakes
/// `zr_server_next_calls`), stops accepting, closes clients with 1001,
/// waits.
///
/// # Safety
/// `s` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn zr_server_stop(s: *const zr_server) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        // First, so that no connection's shutdown waits on a handler.
        if let Some(calls) = &s.calls {
            calls.close();
        }
        let serve = s.serve.lock().expect("not poisoned").take();
        runtime().block_on(async {
            s.relay.shutdown().await;
            if let Some(t) = serve {
                let _ = t.await;
            }
        });
        Ok(())
    })
}

/// Stops the server if needed and frees the handle. Null is ignored.
///
/// # Safety
/// `s` is null or a live handle that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zr_server_free(s: *mut zr_server) {
    if s.is_null() {
        return;
    }
    // SAFETY: forwarded contract.
    let _ = unsafe { zr_server_stop(s) };
    // SAFETY: by contract it came from Box::into_raw here and is not shared.
    drop(unsafe { Box::from_raw(s) });
}
