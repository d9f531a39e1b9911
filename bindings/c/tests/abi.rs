//! The C ABI called from Rust, for the cases a C program checks less easily.

use std::ffi::{CStr, CString};
use std::ptr::null_mut;

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

/// Starts an embedded server with `config` and returns it with its URL.
unsafe fn server(config: &str) -> (*mut zr_server, CString) {
    let mut server = null_mut();
    assert_eq!(
        unsafe { zr_server_start(s(config).as_ptr(), &mut server) },
        zr_status::ZR_OK
    );
    let mut addr = null_mut();
    assert_eq!(
        unsafe { zr_server_address(server, &mut addr) },
        zr_status::ZR_OK
    );
    let url = s(&format!("ws://{}/ws", unsafe { take(addr) }.unwrap()));
    (server, url)
}

fn last_code() -> String {
    unsafe { CStr::from_ptr(zr_last_error_code()) }
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn after_close_the_event_stream_ends() {
    unsafe {
        let (server, url) = server(r#"{"server":{"listen":"127.0.0.1:0"}}"#);
        let mut c = null_mut();
        assert_eq!(
            zr_client_connect(url.as_ptr(), s(r#"{"user":"a"}"#).as_ptr(), &mut c),
            zr_status::ZR_OK
        );
        let mut id = 0;
        let mut c2 = null_mut();
        assert_eq!(
            zr_client_connect(url.as_ptr(), s(r#"{"user":"b"}"#).as_ptr(), &mut c2),
            zr_status::ZR_OK
        );
        assert_eq!(
            zr_client_submit(c2, s(r#"{"type":"join","group":"room"}"#).as_ptr(), &mut id),
            zr_status::ZR_OK
        );
        assert_eq!(
            zr_client_submit(
                c,
                s(r#"{"type":"publish","group":"room","data":1}"#).as_ptr(),
                &mut id
            ),
            zr_status::ZR_OK
        );
        assert_eq!(
            zr_client_submit(
                c,
                s(r#"{"type":"send","to":"ghost","data":1}"#).as_ptr(),
                &mut id
            ),
            zr_status::ZR_OK
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(zr_client_close(c), zr_status::ZR_OK);
        let mut seen = vec![];
        let mut end = zr_status::ZR_OK;
        for _ in 0..100 {
            let mut e = null_mut();
            end = zr_client_next_event(c, 20, &mut e);
            if end != zr_status::ZR_OK {
                break;
            }
            if let Some(e) = take(e) {
                seen.push(e);
            }
        }
        assert_eq!(end, zr_status::ZR_ERR_CLOSED, "{seen:?}");
        assert_eq!(last_code(), "closed");
        assert!(
            seen.iter().any(|e| e.contains(r#""type":"closed""#)),
            "{seen:?}"
        );
        zr_client_free(c);
        zr_server_free(server);
    }
}

#[test]
fn cancel_reports_a_cancelled_reply_and_the_request_is_not_sent() {
    unsafe {
        // A client that never connects: requests wait in the offline queue.
        let mut c = null_mut();
        let opts = s(r#"{"user":"a","reconnect":{"base_ms":1000,"cap_ms":1000}}"#);
        assert_eq!(
            zr_client_start(s("ws://127.0.0.1:9/ws").as_ptr(), opts.as_ptr(), &mut c),
            zr_status::ZR_OK
        );
        let mut id = 0u64;
        assert_eq!(
            zr_client_submit(c, s(r#"{"type":"join","group":"g"}"#).as_ptr(), &mut id),
            zr_status::ZR_OK
        );
        assert_eq!(zr_client_cancel(c, id), zr_status::ZR_OK);
        let mut found = false;
        for _ in 0..50 {
            let mut batch = null_mut();
            assert_eq!(
                zr_client_next_events(c, 20, 16, &mut batch),
                zr_status::ZR_OK
            );
            if let Some(b) = take(batch) {
                let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                found |= v.as_array().unwrap().iter().any(|e| {
                    e["type"] == "reply" && e["request"] == id && e["error"]["code"] == "cancelled"
                });
            }
            if found {
                break;
            }
        }
        assert!(found);
        zr_client_free(c);
    }
}

#[test]
fn null_and_invalid_arguments_are_refused_without_crashing() {
    unsafe {
        let mut c = null_mut();
        assert_eq!(
            zr_client_connect(std::ptr::null(), std::ptr::null(), &mut c),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_code(), "invalid_argument");
        assert_eq!(
            zr_client_connect(
                s("ws://127.0.0.1:9/ws").as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        let bad = [0xffu8, 0];
        assert_eq!(
            zr_client_connect(bad.as_ptr().cast(), std::ptr::null(), &mut c),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        let mut out = null_mut();
        assert_eq!(
            zr_client_next_event(std::ptr::null(), 0, &mut out),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        let mut server = null_mut();
        assert_eq!(
            zr_server_start(
                s(r#"{"limits":{"max_frame_bytes":1}}"#).as_ptr(),
                &mut server
            ),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert!(CStr::from_ptr(zr_last_error())
            .to_str()
            .unwrap()
            .contains("limits.max_frame_bytes"));
        assert_eq!(
            zr_server_start(s(r#"{"server":{"nope":1}}"#).as_ptr(), &mut server),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        zr_client_free(std::ptr::null_mut());
        zr_server_free(std::ptr::null_mut());
        zr_string_free(std::ptr::null_mut());
    }
}

#[test]
fn a_token_provider_is_asked_through_pulled_events() {
    unsafe {
        let (server, url) =
            server(r#"{"server":{"listen":"127.0.0.1:0"},"auth":{"tokens":{"t-1":"alice"}}}"#);
        let mut c = null_mut();
        assert_eq!(
            zr_client_start_with_token_provider(url.as_ptr(), std::ptr::null(), &mut c),
            zr_status::ZR_OK
        );
        // Answering when nothing was asked is refused.
        let mut asked = 0;
        let mut connected = false;
        for _ in 0..100 {
            let mut batch = null_mut();
            assert_eq!(
                zr_client_next_events(c, 50, 16, &mut batch),
                zr_status::ZR_OK
            );
            let Some(b) = take(batch) else { continue };
            let events: Vec<serde_json::Value> = serde_json::from_str(&b).unwrap();
            for e in events {
                if e["type"] == "token_needed" {
                    asked += 1;
                    assert_eq!(
                        zr_client_set_token(c, s("t-1").as_ptr(), 0, std::ptr::null()),
                        zr_status::ZR_OK
                    );
                }
                if e["type"] == "connected" {
                    connected = true;
                    assert_eq!(e["user"], "alice");
                }
            }
            if connected {
                break;
            }
        }
        assert!(connected);
        assert_eq!(asked, 1);
        assert_eq!(
            zr_client_set_token(c, s("t-1").as_ptr(), 0, std::ptr::null()),
            zr_status::ZR_ERR_INVALID_ARGUMENT,
            "nothing is being asked for"
        );
        zr_client_free(c);
        zr_server_free(server);
    }
}

#[test]
fn binary_batches_carry_messages_as_records_and_the_rest_as_json() {
    unsafe {
        let (server, url) = server(r#"{"server":{"listen":"127.0.0.1:0"}}"#);
        let mut c = null_mut();
        assert_eq!(
            zr_client_connect(url.as_ptr(), s(r#"{"user":"bob"}"#).as_ptr(), &mut c),
            zr_status::ZR_OK
        );
        let mut id = 0;
        assert_eq!(
            zr_client_join(c, s("room").as_ptr(), &mut id),
            zr_status::ZR_OK
        );
        let mut records: Vec<(u8, Vec<u8>)> = vec![];
        let mut published = false;
        for _ in 0..100 {
            let (mut p, mut n) = (null_mut(), 0usize);
            assert_eq!(
                zr_client_next_batch(c, 50, 64, &mut p, &mut n),
                zr_status::ZR_OK
            );
            if !p.is_null() {
                let mut b = std::slice::from_raw_parts(p, n);
                while !b.is_empty() {
                    let len = u32::from_le_bytes(b[1..5].try_into().unwrap()) as usize;
                    records.push((b[0], b[5..5 + len].to_vec()));
                    b = &b[5 + len..];
                }
                zr_bytes_free(p, n);
            }
            let joined = records
                .iter()
                .any(|(t, r)| *t == 2 && String::from_utf8_lossy(r).contains(r#""type":"reply""#));
            if joined && !published {
                let mut count = 0;
                assert_eq!(
                    zr_server_publish(
                        server,
                        s("room").as_ptr(),
                        s(r#"{"n":7}"#).as_ptr(),
                        &mut count
                    ),
                    zr_status::ZR_OK
                );
                assert_eq!(count, 1);
                published = true;
            }
            if records.iter().any(|(t, _)| *t == 1) {
                break;
            }
        }
        let (_, m) = records
            .iter()
            .find(|(t, _)| *t == 1)
            .expect("a message record");
        assert_eq!(u64::from_le_bytes(m[0..8].try_into().unwrap()), 1, "seq");
        assert!(
            u64::from_le_bytes(m[8..16].try_into().unwrap()) > 1_600_000_000_000,
            "ts"
        );
        assert_eq!(m[16], 1, "group kind");
        // from and from_session are null for the host; group is "room".
        assert_eq!(&m[17..21], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(u16::from_le_bytes(m[21..23].try_into().unwrap()), 4);
        assert_eq!(&m[23..27], b"room");
        assert_eq!(u32::from_le_bytes(m[27..31].try_into().unwrap()), 7);
        assert_eq!(&m[31..38], br#"{"n":7}"#);
        assert!(records
            .iter()
            .any(|(t, r)| *t == 2 && String::from_utf8_lossy(r).contains(r#""type":"connected""#)));
        let (mut p, mut n) = (null_mut(), 0usize);
        assert_eq!(
            zr_client_next_batch(c, 0, 8, std::ptr::null_mut(), &mut n),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            zr_client_next_batch(c, 0, 8, &mut p, std::ptr::null_mut()),
            zr_status::ZR_ERR_INVALID_ARGUMENT
        );
        zr_bytes_free(std::ptr::null_mut(), 0);
        zr_client_free(c);
        zr_server_free(server);
    }
}

#[test]
fn split_replies_are_pulled_apart_from_events_and_end_after_them() {
    unsafe {
        let (server, url) = server(r#"{"server":{"listen":"127.0.0.1:0"}}"#);
        let mut c = null_mut();
        assert_eq!(
            zr_client_connect(url.as_ptr(), s(r#"{"user":"a"}"#).as_ptr(), &mut c),
            zr_status::ZR_OK
        );
        let mut session = null_mut();
        assert_eq!(zr_client_session(c, &mut session), zr_status::ZR_OK);
        let session = take(session).expect("connected");
        assert!(session.starts_with("s_"), "{session}");
        assert_eq!(zr_client_split_replies(c), zr_status::ZR_OK);
        let mut id = 0;
        assert_eq!(
            zr_client_join(c, s("room").as_ptr(), &mut id),
            zr_status::ZR_OK
        );
        let mut count = 0;
        let mut got = None;
        for _ in 0..100 {
            let mut out = null_mut();
            assert_eq!(
                zr_client_next_replies(c, 100, 16, &mut out),
                zr_status::ZR_OK
            );
            if let Some(b) = take(out) {
                got = Some(b);
                break;
            }
        }
        let got: serde_json::Value = serde_json::from_str(&got.expect("a reply")).unwrap();
        assert_eq!(got[0]["request"], id);
        assert_eq!(got[0]["ok"], true);
        assert_eq!(
            zr_server_publish(server, s("room").as_ptr(), s("1").as_ptr(), &mut count),
            zr_status::ZR_OK
        );
        // The event pulls carry events only, and end with `closed`.
        assert_eq!(zr_client_close(c), zr_status::ZR_OK);
        let mut end = zr_status::ZR_OK;
        let mut seen = String::new();
        for _ in 0..200 {
            let mut out = null_mut();
            end = zr_client_next_events(c, 20, 64, &mut out);
            if end != zr_status::ZR_OK {
                break;
            }
            if let Some(b) = take(out) {
                seen.push_str(&b);
            }
        }
        assert_eq!(end, zr_status::ZR_ERR_CLOSED);
        assert!(!seen.contains(r#""type":"reply""#), "{seen}");
        assert!(seen.contains(r#""type":"closed""#), "{seen}");
        let mut session = null_mut();
        assert_eq!(zr_client_session(c, &mut session), zr_status::ZR_OK);
        assert!(session.is_null(), "no session once closed");
        // Replies end once the events have (bounded: a minute's timeout
        // would show as a hang).
        let mut out = null_mut();
        assert_eq!(
            zr_client_next_replies(c, 60_000, 16, &mut out),
            zr_status::ZR_ERR_CLOSED
        );
        zr_client_free(c);
        zr_server_free(server);
    }
}
