//! Host handlers across the C ABI as pulled calls.
//!
//! Rust never calls into the host. When the relay asks a handler (the auth
//! callback, the authorizer, an RPC method, a validation hook), the call is
//! queued here as JSON and the relay awaits a oneshot; the host pulls calls
//! with `zr_server_next_calls` and answers each with `zr_server_answer`.
//!
//! - Bounded: at most `queue` calls wait to be pulled; past that a call
//!   fails at once (the handler counts as failed).
//! - Nothing leaks: every call is removed from the table when it is
//!   answered, or when the relay stops waiting for it (its timeout passed,
//!   its connection went away): a guard owned by the relay's future removes
//!   it when that future is dropped. A call the host had already pulled is
//!   then reported as `{"id":N,"kind":"cancelled"}`, so that the host can
//!   stop working on it.
//! - Stopping the server fails every call and wakes the puller.
//!
//! What each call shows and what it may answer is the core's contract
//! ([`zerorelay::auth::callback`], [`zerorelay::auth::hooks`]); this module
//! only carries JSON.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_char;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::{oneshot, Notify};
use zerorelay::auth::callback::{Answer, Callback, Decide};
use zerorelay::auth::hooks::{JsonAuthorizer, JsonFn, JsonValidator};
use zerorelay::auth::BoxFuture;
use zerorelay::server::{RpcContext, RpcResult};
use zerorelay::{ErrorCode, ProtocolError, RelayBuilder};

use crate::server::{config_arg, server_ref, start_server, zr_server};
use crate::{c_string, ffi, opt_str_arg, put, runtime, str_arg, zr_status, Failure};

/// What a host handler answered: its JSON text, or why it failed.
type Answered = Result<String, String>;

/// Which handlers a server has, from `zr_server_start_with_handlers`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// The auth callback decides who connects.
    #[serde(default)]
    auth: bool,
    /// The authorizer is asked about every request the roles allow.
    #[serde(default)]
    authorize: bool,
    /// RPC method names.
    #[serde(default)]
    rpc: Vec<String>,
    /// Group patterns with a validation hook, in order.
    #[serde(default)]
    validate: Vec<String>,
    /// How long the auth callback may take.
    #[serde(default)]
    auth_timeout_ms: Option<u64>,
    /// How many calls may wait to be pulled.
    #[serde(default)]
    queue: Option<usize>,
}

/// Calls waiting to be pulled, by default.
const DEFAULT_QUEUE: usize = 1024;

/// The calls of one server: queued, pulled, answered.
pub(crate) struct Calls {
    state: Mutex<State>,
    /// Woken when there is something to pull, or the server stops.
    ready: Notify,
    capacity: usize,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Calls not pulled yet: their id and record.
    queued: VecDeque<(u64, String)>,
    /// Every call not answered yet.
    waiting: HashMap<u64, Waiting>,
    /// Pulled calls the relay stopped waiting for, to report.
    cancelled: Vec<u64>,
    closed: bool,
}

struct Waiting {
    answer: oneshot::Sender<Answered>,
    pulled: bool,
}

/// Removes a call from the table when the relay stops waiting for it.
struct Pending {
    calls: Arc<Calls>,
    id: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut s = self.calls.state.lock().expect("not poisoned");
        let Some(w) = s.waiting.remove(&self.id) else {
            return;
        };
        if w.pulled {
            s.cancelled.push(self.id);
            drop(s);
            self.calls.ready.notify_waiters();
        } else {
            s.queued.retain(|(id, _)| *id != self.id);
        }
    }
}

impl Calls {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Calls {
            state: Mutex::default(),
            ready: Notify::new(),
            capacity,
        })
    }

    /// Queues a call of `kind` (with `extra` fields, JSON members ending in
    /// a comma) and waits for its answer.
    fn ask(
        self: &Arc<Self>,
        kind: &'static str,
        extra: String,
        call: String,
    ) -> BoxFuture<'static, Answered> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = self.state.lock().expect("not poisoned");
            if s.closed {
                return Box::pin(async { Err("the server is stopping".to_owned()) });
            }
            if s.queued.len() >= self.capacity {
                let n = self.capacity;
                return Box::pin(async move {
                    Err(format!(
                        "{n} calls are waiting for the host to pull them (the handlers' queue is full)"
                    ))
                });
            }
            s.next_id += 1;
            let id = s.next_id;
            let record = format!(r#"{{"id":{id},"kind":"{kind}",{extra}"call":{call}}}"#);
            s.queued.push_back((id, record));
            s.waiting.insert(
                id,
                Waiting {
                    answer: tx,
                    pulled: false,
                },
            );
            id
        };
        self.ready.notify_waiters();
        let guard = Pending {
            calls: self.clone(),
            id,
        };
        Box::pin(async move {
            let r = rx.await;
            drop(guard);
            r.unwrap_or_else(|_| Err("the server is stopping".to_owned()))
        })
    }

    /// Takes up to `max` records: cancellations first, then calls.
    fn take(&self, max: usize) -> Result<Vec<String>, Failure> {
        let mut s = self.state.lock().expect("not poisoned");
        let mut out = Vec::new();
        while out.len() < max {
            let Some(id) = s.cancelled.pop() else { break };
            out.push(format!(r#"{{"id":{id},"kind":"cancelled"}}"#));
        }
        while out.len() < max {
            let Some((id, record)) = s.queued.pop_front() else {
                break;
            };
            if let Some(w) = s.waiting.get_mut(&id) {
                w.pulled = true;
            }
            out.push(record);
        }
        if out.is_empty() && s.closed {
            return Err(zerorelay::Error::Closed.into());
        }
        Ok(out)
    }

    /// Waits up to `timeout` for records.
    async fn next(&self, timeout: Duration, max: usize) -> Result<Vec<String>, Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let woken = self.ready.notified();
            tokio::pin!(woken);
            // Registered before looking, so a call queued in between wakes it.
            woken.as_mut().enable();
            let got = self.take(max)?;
            if !got.is_empty() {
                return Ok(got);
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(got),
            }
        }
    }

    /// Hands the host's answer to the waiting call.
    fn answer(&self, id: u64, answer: Answered) -> Result<(), Failure> {
        let w = self.state.lock().expect("not poisoned").waiting.remove(&id);
        match w {
            Some(w) => {
                // The relay may have stopped waiting a moment ago; the
                // answer is then dropped, as a late one is.
                let _ = w.answer.send(answer);
                Ok(())
            }
            None => Err(Failure {
                status: zr_status::ZR_ERR_INVALID_ARGUMENT,
                code: "unknown_call".into(),
                message: format!(
                    "no call {id} is waiting for an answer (it was answered, it timed out, \
                     the server stopped, or it never existed)"
                ),
            }),
        }
    }

    /// Fails every call and wakes the puller; later calls fail at once.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut s = self.state.lock().expect("not poisoned");
            s.closed = true;
            s.queued.clear();
            s.cancelled.clear();
            std::mem::take(&mut s.waiting)
        };
        for (_, w) in waiting {
            let _ = w.answer.send(Err("the server is stopping".to_owned()));
        }
        self.ready.notify_waiters();
    }

    /// Calls not answered yet (pulled or not).
    fn pending(&self) -> usize {
        self.state.lock().expect("not poisoned").waiting.len()
    }
}

/// A call's answer for the relay: the host's JSON, or `{"failed":"why"}`
/// when the handler failed.
fn parse_answer(text: &str) -> Result<Answered, Failure> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Failed {
        failed: String,
    }
    RawValue::from_string(text.to_owned())
        .map_err(|e| Failure::invalid(format!("answer_json is not JSON: {e}")))?;
    Ok(match serde_json::from_str::<Failed>(text) {
        Ok(f) => Err(f.failed),
        Err(_) => Ok(text.to_owned()),
    })
}

/// The auth callback as the core's [`Decide`]: the credentials in, the
/// answer `{"allow":{"user","expires_in_ms","roles","groups","claims"}}`
/// or `{"allow":null}` (refused) out.
fn decide(calls: Arc<Calls>) -> Decide {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reply {
        allow: Option<Answer>,
    }
    Arc::new(move |credentials| {
        let call = serde_json::to_string(&credentials).expect("credentials are JSON");
        let asked = calls.ask("auth", String::new(), call);
        Box::pin(async move {
            let text = asked.await?;
            let r: Reply = serde_json::from_str(&text)
                .map_err(|e| format!("the auth handler answered {text:?}: {e}"))?;
            Ok(r.allow)
        })
    })
}

/// A hook of `kind` as the core's [`JsonFn`].
fn json_fn(calls: Arc<Calls>, kind: &'static str, extra: String) -> JsonFn {
    Arc::new(move |call| calls.ask(kind, extra.clone(), call))
}

/// An RPC method: `{"method","session","user","data"}` in,
/// `{"ok":result}` or `{"error":{"code","message"}}` out.
async fn call_rpc(
    calls: Arc<Calls>,
    method: String,
    ctx: RpcContext,
    data: serde_json::Value,
) -> RpcResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reply {
        #[serde(default)]
        ok: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<RpcError>,
    }
    #[derive(serde::Deserialize)]
    struct RpcError {
        code: String,
        message: String,
    }
    let call = serde_json::json!({
        "method": method,
        "session": ctx.session,
        "user": ctx.user,
        "data": data,
    });
    let failed = |why: String| {
        tracing::warn!(method = %method, error = %why, "An RPC handler failed; the call fails with internal.");
        ProtocolError::new(ErrorCode::Internal, "the rpc handler failed")
    };
    // The relay bounds the call (`limits.rpc_timeout_ms`): when it gives
    // up, this future is dropped and the call is cancelled.
    let text = calls
        .ask("rpc", String::new(), call.to_string())
        .await
        .map_err(failed)?;
    let r: Reply =
        serde_json::from_str(&text).map_err(|e| failed(format!("it answered {text:?}: {e}")))?;
    match r.error {
        Some(e) => Err(ProtocolError::new(
            ErrorCode::parse(&e.code).unwrap_or(ErrorCode::Internal),
            e.message,
        )),
        None => Ok(r.ok.unwrap_or(serde_json::Value::Null)),
    }
}

/// Adds the handlers `spec_json` names to `builder`; returns the call
/// table they share.
fn with_handlers(
    mut builder: RelayBuilder,
    spec_json: &str,
) -> Result<(RelayBuilder, Arc<Calls>), Failure> {
    let spec: Spec = if spec_json.trim().is_empty() {
        Spec::default()
    } else {
        serde_json::from_str(spec_json)
            .map_err(|e| Failure::invalid(format!("handlers_json: {e}")))?
    };
    let queue = spec.queue.unwrap_or(DEFAULT_QUEUE);
    if queue == 0 {
        return Err(Failure::invalid("handlers_json: queue must be at least 1"));
    }
    let calls = Calls::new(queue);
    if spec.auth {
        let mut auth = Callback::new(decide(calls.clone()));
        if let Some(ms) = spec.auth_timeout_ms {
            auth = auth.timeout(Duration::from_millis(ms));
        }
        builder = builder.authenticator(auth);
    }
    if spec.authorize {
        builder = builder.authorizer(JsonAuthorizer(json_fn(
            calls.clone(),
            "authorize",
            String::new(),
        )));
    }
    for method in spec.rpc {
        let calls = calls.clone();
        let name = method.clone();
        builder = builder.rpc(method, move |ctx, data| {
            call_rpc(calls.clone(), name.clone(), ctx, data)
        });
    }
    for pattern in spec.validate {
        let extra = format!(
            r#""pattern":{},"#,
            serde_json::to_string(&pattern).expect("a string is JSON")
        );
        let hook = JsonValidator(json_fn(calls.clone(), "validate", extra));
        builder = builder.validator(pattern, hook);
    }
    Ok((builder, calls))
}

/// Like `zr_server_start`, with host handlers, described by
/// `handlers_json` (null or empty: none):
///
/// `{"auth":true, "authorize":true, "rpc":["method",…],
///   "validate":["chat-*",…], "auth_timeout_ms":10000, "queue":1024}`
///
/// Each time the relay asks a handler, a call is queued for
/// `zr_server_next_calls`; answer it with `zr_server_answer`. A call that
/// is not answered in time fails as the relay decides: the auth callback
/// after `auth_timeout_ms` (10 s by default; the connection is refused with
/// `unauthorized`), the authorizer after `limits.authorize_timeout_ms` and
/// a validation hook after `limits.validate_timeout_ms` (the request fails
/// with `internal`), an RPC handler after `limits.rpc_timeout_ms` (30 s by
/// default; `internal`). At most `queue` calls (1,024 by default) wait to
/// be pulled; past that a call fails at once as a failed handler does.
///
/// # Safety
/// `config_json` and `handlers_json` are null or NUL-terminated; `out` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_start_with_handlers(
    config_json: *const c_char,
    handlers_json: *const c_char,
    out: *mut *mut zr_server,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let config = unsafe { config_arg(config_json) }?;
        // SAFETY: forwarded contract.
        let spec = unsafe { opt_str_arg(handlers_json, "handlers_json") }?.unwrap_or("");
        let _rt = runtime().enter();
        let (builder, calls) = with_handlers(zerorelay::Relay::builder(config), spec)?;
        // SAFETY: forwarded contract.
        unsafe { start_server(builder, Some(calls), out) }
    })
}

/// Waits up to `timeout_ms` for calls to handlers and writes up to `max` of
/// them as a JSON array to `out_json` (null when none came in time). Each
/// is `{"id":N,"kind":K,"call":{…}}`:
///
/// - `auth`: `call` is `{"token","user","remote","client"}`; answer
///   `{"allow":{"user":…,"expires_in_ms":…,"roles":[…],"groups":[…],
///   "claims":{…}}}` (every field optional; no user: anonymous) or
///   `{"allow":null}` to refuse.
/// - `authorize`: `call` is `{"action","resource","user","roles","claims"}`;
///   answer `{"allow":true}` or `{"allow":false,"message":"…"}`.
/// - `rpc`: `call` is `{"method","session","user","data"}`; answer
///   `{"ok":<result>}` or `{"error":{"code":"forbidden","message":"…"}}`.
/// - `validate` (with `"pattern"`, the group pattern it was registered
///   for): `call` is `{"group","data","user","session","claims"}`; answer
///   `{"accept":true}`, `{"reject":{"code","message"}}` or
///   `{"rewrite":<payload>}`.
/// - `cancelled` (no `call`): the relay stopped waiting for call N (its
///   timeout passed or its connection went away); an answer now fails with
///   `unknown_call`.
///
/// Any call may be answered `{"failed":"why"}`: the handler failed (logged;
/// `unauthorized` for auth, `internal` otherwise). Fails with ZR_ERR_CLOSED
/// once the server is stopping, and ZR_ERR_INVALID_ARGUMENT on a server
/// started without handlers.
///
/// # Safety
/// `s` is a live handle; `out_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_next_calls(
    s: *const zr_server,
    timeout_ms: u32,
    max: u32,
    out_json: *mut *mut c_char,
) -> zr_status {
    ffi(|| {
        if out_json.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        // SAFETY: forwarded contract.
        let calls = calls_of(unsafe { server_ref(s) }?)?;
        let wait = Duration::from_millis(u64::from(timeout_ms));
        let got = runtime().block_on(calls.next(wait, max.max(1) as usize))?;
        let v = if got.is_empty() {
            std::ptr::null_mut()
        } else {
            c_string(format!("[{}]", got.join(",")))
        };
        // SAFETY: forwarded contract.
        unsafe { put(out_json, v) }
    })
}

/// Answers call `id` with JSON `answer_json` (see `zr_server_next_calls`).
/// Fails with ZR_ERR_INVALID_ARGUMENT and code `unknown_call` when no call
/// `id` is waiting (answered already, timed out, cancelled, or the server
/// stopped), and with code `invalid_argument` when `answer_json` is not
/// JSON (the call then still waits).
///
/// # Safety
/// `s` is a live handle; `answer_json` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn zr_server_answer(
    s: *const zr_server,
    id: u64,
    answer_json: *const c_char,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (s, text) = unsafe { (server_ref(s)?, str_arg(answer_json, "answer_json")?) };
        let calls = calls_of(s)?;
        calls.answer(id, parse_answer(text)?)
    })
}

/// Writes to `out_count` how many handler calls are not answered yet
/// (queued or pulled): 0 once every call was answered or given up on.
///
/// # Safety
/// `s` is a live handle; `out_count` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_server_pending_calls(
    s: *const zr_server,
    out_count: *mut u64,
) -> zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { server_ref(s) }?;
        let n = s.calls.as_ref().map_or(0, |c| c.pending());
        // SAFETY: forwarded contract.
        unsafe { put(out_count, n as u64) }
    })
}

fn calls_of(s: &zr_server) -> Result<&Arc<Calls>, Failure> {
    s.calls
        .as_ref()
        .ok_or_else(|| Failure::invalid("this server was started without handlers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_dropped_before_it_is_pulled_leaves_nothing_behind() {
        let calls = Calls::new(2);
        let asked = calls.ask("rpc", String::new(), "{}".into());
        assert_eq!(calls.pending(), 1);
        drop(asked);
        assert_eq!(calls.pending(), 0);
        assert!(calls.take(10).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_fails_the_call_at_once() {
        let calls = Calls::new(1);
        let _first = calls.ask("rpc", String::new(), "{}".into());
        let second = calls.ask("rpc", String::new(), "{}".into()).await;
        assert!(second.unwrap_err().contains("queue is full"));
        assert_eq!(calls.pending(), 1);
    }

    #[test]
    fn answers_are_json_or_a_failure() {
        assert_eq!(parse_answer(r#"{"ok":1}"#).unwrap().unwrap(), r#"{"ok":1}"#);
        assert_eq!(
            parse_answer(r#"{"failed":"boom"}"#).unwrap().unwrap_err(),
            "boom"
        );
        assert!(parse_answer("{nope").is_err());
    }
}
