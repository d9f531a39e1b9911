//! Host handlers through the C ABI: calls pulled with
//! `zr_server_next_calls`, answered with `zr_server_answer`.

use std::ffi::{CStr, CString};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use serde_json::Value;
use zerorelay_c::*;

fn s(v: &str) -> CString {
    CString::new(v).unwrap()
}

unsafe fn take(p: *mut std::ffi::c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let v = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    unsafe { zr_string_free(p) };
    Some(v)
}

fn last_code() -> String {
    unsafe { CStr::from_ptr(zr_last_error_code()) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// A relay with handlers, and a client connected to it as `alice`.
unsafe fn setup(config: &str, handlers: &str) -> (*mut zr_server, *mut zr_client) {
    let mut server = null_mut();
    assert_eq!(
        unsafe {
            zr_server_start_with_handlers(s(config).as_ptr(), s(handlers).as_ptr(), &mut server)
        },
        zr_status::ZR_OK
    );
    let mut addr = null_mut();
    assert_eq!(
        unsafe { zr_server_address(server, &mut addr) },
        zr_status::ZR_OK
    );
    let url = s(&format!("ws://{}/ws", unsafe { take(addr) }.unwrap()));
    let mut c = null_mut();
    assert_eq!(
        unsafe { zr_client_connect(url.as_ptr(), s(r#"{"user":"alice"}"#).as_ptr(), &mut c) },
        zr_status::ZR_OK
    );
    (server, c)
}

/// Pulls calls until one of `kind` comes (bounded).
unsafe fn next_call(server: *mut zr_server, kind: &str) -> Value {
    for _ in 0..100 {
        let mut out = null_mut();
        assert_eq!(
            unsafe { zr_server_next_calls(server, 100, 16, &mut out) },
            zr_status::ZR_OK
        );
        if let Some(batch) = unsafe { take(out) } {
            let calls: Vec<Value> = serde_json::from_str(&batch).unwrap();
            assert_eq!(calls.len(), 1, "one call at a time here: {batch}");
            assert_eq!(calls[0]["kind"], kind, "{batch}");
            return calls[0].clone();
        }
    }
    panic!("no {kind} call");
}

/// Pulls the client's events until the reply to `request` (bounded).
unsafe fn reply(c: *mut zr_client, request: u64) -> Value {
    for _ in 0..100 {
        let mut out = null_mut();
        assert_eq!(
            unsafe { zr_client_next_events(c, 100, 64, &mut out) },
            zr_status::ZR_OK
        );
        let Some(batch) = (unsafe { take(out) }) else {
            continue;
        };
        let events: Vec<Value> = serde_json::from_str(&batch).unwrap();
        if let Some(r) = events
            .into_iter()
            .find(|e| e["type"] == "reply" && e["request"] == request)
        {
            return r;
        }
    }
    panic!("no reply to {request}");
}

unsafe fn answer(server: *mut zr_server, call: &Value, json: &str) -> zr_status {
    unsafe { zr_server_answer(server, call["id"].as_u64().unwrap(), s(json).as_ptr()) }
}

unsafe fn pending(server: *mut zr_server) -> u64 {
    let mut n = u64::MAX;
    assert_eq!(
        unsafe { zr_server_pending_calls(server, &mut n) },
        zr_status::ZR_OK
    );
    n
}

#[test]
fn a_call_is_pulled_answered_and_its_answer_reaches_the_client() {
    unsafe {
        let (server, c) = setup(
            r#"{"server":{"listen":"127.0.0.1:0"}}"#,
            r#"{"authorize":true,"rpc":["echo"]}"#,
        );
        let mut id = 0;
        assert_eq!(
            zr_client_rpc(c, s("echo").as_ptr(), s(r#"{"n":1}"#).as_ptr(), &mut id),
            zr_status::ZR_OK
        );
        let asked = next_call(server, "authorize");
        assert_eq!(asked["call"]["action"], "rpc");
        assert_eq!(asked["call"]["resource"], "echo");
        assert_eq!(asked["call"]["user"], "alice");
        assert_eq!(
            answer(server, &asked, r#"{"allow":true}"#),
            zr_status::ZR_OK
        );
        let call = next_call(server, "rpc");
        assert_eq!(call["call"]["method"], "echo");
        assert_eq!(call["call"]["user"], "alice");
        assert_eq!(call["call"]["data"]["n"], 1);
        assert_eq!(pending(server), 1);
        // Not JSON: refused, and the call still waits.
        assert_eq!(
            answer(server, &call, "{nope"),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_code(), "invalid_argument");
        assert_eq!(pending(server), 1);
        assert_eq!(
            answer(server, &call, r#"{"ok":{"echo":1}}"#),
            zr_status::ZR_OK
        );
        let r = reply(c, id);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["data"]["echo"], 1, "{r}");
        assert_eq!(pending(server), 0);
        // An answer for a call answered already is refused precisely.
        assert_eq!(
            answer(server, &call, r#"{"ok":2}"#),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_code(), "unknown_call");
        // A handler's failure is internal for the client.
        assert_eq!(
            zr_client_rpc(c, s("echo").as_ptr(), std::ptr::null(), &mut id),
            zr_status::ZR_OK
        );
        let asked = next_call(server, "authorize");
        assert_eq!(
            answer(server, &asked, r#"{"allow":true}"#),
            zr_status::ZR_OK
        );
        let call = next_call(server, "rpc");
        assert_eq!(
            answer(server, &call, r#"{"failed":"boom"}"#),
            zr_status::ZR_OK
        );
        assert_eq!(reply(c, id)["error"]["code"], "internal");
        zr_client_free(c);
        zr_server_free(server);
    }
}

#[test]
fn unknown_and_expired_calls_are_refused_with_unknown_call() {
    unsafe {
        let (server, c) = setup(
            r#"{"server":{"listen":"127.0.0.1:0"},"limits":{"authorize_timeout_ms":100}}"#,
            r#"{"authorize":true}"#,
        );
        assert_eq!(
            zr_server_answer(server, 987_654, s("{}").as_ptr()),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_code(), "unknown_call");
        assert!(CStr::from_ptr(zr_last_error())
            .to_str()
            .unwrap()
            .contains("no call 987654"));
        // Pulled, never answered: the relay gives up after
        // limits.authorize_timeout_ms, the client gets internal.
        let mut id = 0;
        assert_eq!(
            zr_client_join(c, s("room").as_ptr(), &mut id),
            zr_status::ZR_OK
        );
        let call = next_call(server, "authorize");
        assert_eq!(reply(c, id)["error"]["code"], "internal");
        // The host is told, the table is empty, a late answer is refused.
        let cancelled = next_call(server, "cancelled");
        assert_eq!(cancelled["id"], call["id"]);
        assert_eq!(pending(server), 0);
        assert_eq!(
            answer(server, &call, r#"{"allow":true}"#),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_code(), "unknown_call");
        zr_client_free(c);
        zr_server_free(server);
    }
}

#[test]
fn stopping_fails_pending_calls_and_wakes_the_puller() {
    unsafe {
        let (server, c) = setup(
            r#"{"server":{"listen":"127.0.0.1:0"}}"#,
            r#"{"rpc":["slow"]}"#,
        );
        let mut id = 0;
        assert_eq!(
            zr_client_rpc(c, s("slow").as_ptr(), std::ptr::null(), &mut id),
            zr_status::ZR_OK
        );
        let call = next_call(server, "rpc");
        assert_eq!(pending(server), 1);
        // A puller blocked for a minute wakes when the server stops.
        let addr = server as usize;
        let puller = std::thread::spawn(move || {
            let mut out = null_mut();
            let started = Instant::now();
            let st = zr_server_next_calls(addr as *const zr_server, 60_000, 16, &mut out);
            (st, started.elapsed())
        });
        // Let it block (if it has not yet, it finds the server stopped).
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(zr_server_stop(server), zr_status::ZR_OK);
        let (st, waited) = puller.join().unwrap();
        assert_eq!(st, zr_status::ZR_ERR_CLOSED);
        assert!(waited < Duration::from_secs(50), "woken, not timed out");
        assert_eq!(pending(server), 0);
        assert_eq!(
            answer(server, &call, r#"{"ok":1}"#),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_code(), "unknown_call");
        zr_client_free(c);
        zr_server_free(server);
    }
}

#[test]
fn bad_handler_descriptions_and_servers_without_handlers_are_refused() {
    unsafe {
        let mut server = null_mut();
        for bad in [
            r#"{"rpc":"echo"}"#,
            r#"{"nope":true}"#,
            r#"{"queue":0}"#,
            "not json",
        ] {
            assert_eq!(
                zr_server_start_with_handlers(std::ptr::null(), s(bad).as_ptr(), &mut server),
                zr_status::ZR_ERR_INVALID_ARGUMENT,
                "{bad}"
            );
        }
        assert_eq!(
            zr_server_start(
                s(r#"{"server":{"listen":"127.0.0.1:0"}}"#).as_ptr(),
                &mut server
            ),
            zr_status::ZR_OK
        );
        let mut out = null_mut();
        assert_eq!(
            zr_server_next_calls(server, 0, 1, &mut out),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            zr_server_answer(server, 1, s("{}").as_ptr()),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(pending(server), 0);
        let mut stats = null_mut();
        assert_eq!(zr_server_stats(server, &mut stats), zr_status::ZR_OK);
        let stats: Value = serde_json::from_str(&take(stats).unwrap()).unwrap();
        assert_eq!(stats["connections_open"], 0);
        assert_eq!(
            zr_server_next_calls(std::ptr::null(), 0, 1, &mut out),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        zr_server_free(server);
    }
}
