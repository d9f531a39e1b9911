//! The client: connect or start, typed requests and raw JSON requests,
//! cancellation, and the pulled events, replies and session id.

use std::collections::HashMap;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use zerorelay::client::json::{reply_to_json, request_from_json, write_event};
use zerorelay::client::{Client, ClientError, ClientOptions, Event, Request, Retry};
use zerorelay::protocol::Target;

use crate::{c_string, ffi, json_arg, opt_str_arg, put, runtime, str_arg, zr_status, Failure};

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

fn submit(c: &zr_client, req: Request, retry: Retry) -> Result<u64, Failure> {
    let id = c.next_request.fetch_add(1, Ordering::Relaxed);
    let pending = runtime().block_on(c.client.submit_with(req, retry))?;
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
    // SAFETY: forwarded contract.
    unsafe { submit_flagged(c, 0, out_request, req) }
}

/// The request flags the `_with` functions accept.
const ZR_KNOWN_FLAGS: u32 = ZR_RESEND;

/// Maps `_with` flags to the engine's [`Retry`]; unknown bits are refused.
fn retry_from(flags: u32) -> Result<Retry, Failure> {
    if flags & !ZR_KNOWN_FLAGS != 0 {
        return Err(Failure::invalid(format!(
            "flags {flags:#x}: unknown bits {:#x} (known: ZR_RESEND = {ZR_RESEND:#x})",
            flags & !ZR_KNOWN_FLAGS
        )));
    }
    Ok(if flags & ZR_RESEND != 0 {
        Retry::Resend
    } else {
        Retry::AtMostOnce
    })
}

/// [`submit_to`] with `_with` flags.
///
/// # Safety
/// As [`submit_to`].
unsafe fn submit_flagged(
    c: *const zr_client,
    flags: u32,
    out_request: *mut u64,
    req: impl FnOnce() -> Result<Request, Failure>,
) -> zr_status {
    ffi(|| {
        if out_request.is_null() {
            return Err(Failure::invalid("out_request is null"));
        }
        // SAFETY: forwarded contract.
        let c = unsafe { client_ref(c) }?;
        let retry = retry_from(flags)?;
        let id = submit(c, req()?, retry)?;
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

/// A flag of the `_with` request functions (publish, broadcast, send, rpc):
/// if the session is lost (the next `welcome` says `"resumed":false`) after
/// the request may have been routed, re-send it in the new session instead
/// of failing it with `unknown_outcome`. For requests that are idempotent,
/// or whose duplicate the application accepts.
pub const ZR_RESEND: u32 = 1;

/// Publishes JSON `data_json` to a group (to ourselves too when `echo`).
/// `zr_client_publish_with` with no flags.
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
    unsafe { zr_client_publish_with(c, group, data_json, echo, 0, out_request) }
}

/// `zr_client_publish` with `flags` (0 or `ZR_RESEND`; other bits are
/// refused with `ZR_ERR_INVALID_ARGUMENT`).
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_publish_with(
    c: *const zr_client,
    group: *const c_char,
    data_json: *const c_char,
    echo: bool,
    flags: u32,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_flagged(c, flags, out_request, || {
            Ok(Request::Publish {
                group: str_arg(group, "group")?.to_owned(),
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
                echo,
            })
        })
    }
}

/// Broadcasts JSON `data_json` to every session (to ourselves too when
/// `echo`). `zr_client_broadcast_with` with no flags.
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
    unsafe { zr_client_broadcast_with(c, data_json, echo, 0, out_request) }
}

/// `zr_client_broadcast` with `flags` (as `zr_client_publish_with`).
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_broadcast_with(
    c: *const zr_client,
    data_json: *const c_char,
    echo: bool,
    flags: u32,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_flagged(c, flags, out_request, || {
            Ok(Request::Broadcast {
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
                echo,
            })
        })
    }
}

/// Sends JSON `data_json` to every session of `user` (but this one).
/// `zr_client_send_to_user_with` with no flags.
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
    unsafe { zr_client_send_to_user_with(c, user, data_json, 0, out_request) }
}

/// `zr_client_send_to_user` with `flags` (as `zr_client_publish_with`).
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_send_to_user_with(
    c: *const zr_client,
    user: *const c_char,
    data_json: *const c_char,
    flags: u32,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_flagged(c, flags, out_request, || {
            Ok(Request::Send {
                target: Target::User(str_arg(user, "user")?.to_owned()),
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
            })
        })
    }
}

/// Sends JSON `data_json` to one session. `zr_client_send_to_session_with`
/// with no flags.
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
    unsafe { zr_client_send_to_session_with(c, session, data_json, 0, out_request) }
}

/// `zr_client_send_to_session` with `flags` (as `zr_client_publish_with`).
///
/// # Safety
/// As `zr_client_publish`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_send_to_session_with(
    c: *const zr_client,
    session: *const c_char,
    data_json: *const c_char,
    flags: u32,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_flagged(c, flags, out_request, || {
            Ok(Request::Send {
                target: Target::Session(str_arg(session, "session")?.to_owned()),
                data: json_arg(str_arg(data_json, "data_json")?, "data_json")?,
            })
        })
    }
}

/// Calls a host method with JSON `arg_json` (may be null); the `reply`
/// event carries the result in `data`. `zr_client_rpc_with` with no flags.
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
    unsafe { zr_client_rpc_with(c, method, arg_json, 0, out_request) }
}

/// `zr_client_rpc` with `flags` (as `zr_client_publish_with`).
///
/// # Safety
/// As `zr_client_rpc`.
#[no_mangle]
pub unsafe extern "C" fn zr_client_rpc_with(
    c: *const zr_client,
    method: *const c_char,
    arg_json: *const c_char,
    flags: u32,
    out_request: *mut u64,
) -> zr_status {
    // SAFETY: forwarded contract.
    unsafe {
        submit_flagged(c, flags, out_request, || {
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
        let id = submit(c, req, Retry::AtMostOnce)?;
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
