//! The embedded relay: start (with or without host handlers, see
//! [`crate::calls`]), host-side sends, sessions and groups, session events,
//! counters, and shutdown.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use zerorelay::{Config, Relay};

use crate::calls;
use crate::{c_string, ffi, json_arg, opt_str_arg, put, runtime, str_arg, zr_status, Failure};

/// An embedded server handle.
pub struct zr_server {
    relay: Relay,
    addr: String,
    serve: Mutex<Option<tokio::task::JoinHandle<zerorelay::Result<()>>>>,
    /// The session-event subscription, made at the first
    /// `zr_server_next_events`.
    events: tokio::sync::Mutex<Option<zerorelay::server::events::HostEventStream>>,
    /// The host handlers' calls (`zr_server_start_with_handlers`).
    pub(crate) calls: Option<Arc<calls::Calls>>,
}

/// The configuration argument of the server's start functions: JSON, or
/// null or blank for the defaults.
///
/// # Safety
/// `config_json` is null or NUL-terminated.
pub(crate) unsafe fn config_arg(config_json: *const c_char) -> Result<Config, Failure> {
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
pub(crate) unsafe fn start_server(
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
pub(crate) unsafe fn server_ref<'a>(s: *const zr_server) -> Result<&'a zr_server, Failure> {
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
