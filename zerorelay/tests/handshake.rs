//! The hello/welcome handshake, authentication, and refusals before it.

mod common;

use std::time::{Duration, SystemTime};

use common::{config, start, start_with, Client};
use serde_json::json;
use zerorelay::auth::{AuthRequest, Authenticator, BoxFuture};
use zerorelay::{ErrorCode, Identity, ProtocolError, Relay};

#[tokio::test]
async fn welcome_names_the_session_user_and_timers() {
    let s = start(config()).await;
    let mut c = Client::raw(&s).await;
    let w = c
        .hello(json!({"type":"hello","v":1,"user":"alice","client":"test/1"}))
        .await;
    let session = w["session"].as_str().unwrap();
    assert!(
        session.starts_with("s_") && session.len() == 34,
        "{session}"
    );
    assert!(session[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    let key = w["resume_key"].as_str().unwrap();
    assert!(
        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    assert_eq!(
        w,
        json!({"type":"welcome","v":1,"session":session,"resume_key":key,"user":"alice","resumed":false,
               "heartbeat_ms":25000,"session_ttl_ms":60000,"server":concat!("zerorelay/", env!("CARGO_PKG_VERSION"))})
    );
    s.stop().await;
}

#[tokio::test]
async fn anonymous_hello_gets_a_null_user_and_distinct_sessions() {
    let s = start(config()).await;
    let mut a = Client::raw(&s).await;
    let wa = a.hello(json!({"type":"hello","v":1})).await;
    let mut b = Client::raw(&s).await;
    let wb = b.hello(json!({"type":"hello","v":1})).await;
    assert_eq!(wa["user"], json!(null));
    assert_ne!(wa["session"], wb["session"]);
    s.stop().await;
}

#[tokio::test]
async fn first_frame_other_than_hello_is_refused_with_4000() {
    let s = start(config()).await;
    let mut c = Client::raw(&s).await;
    c.send(json!({"type":"ping","id":1})).await;
    let (code, frames) = c.closed().await;
    assert_eq!(code, 4000);
    assert_eq!(frames[0]["code"], "bad_request");
    s.stop().await;
}

#[tokio::test]
async fn unsupported_version_is_refused_with_4000() {
    let s = start(config()).await;
    let mut c = Client::raw(&s).await;
    c.send(json!({"type":"hello","v":2})).await;
    let (code, frames) = c.closed().await;
    assert_eq!(code, 4000);
    assert_eq!(frames[0]["code"], "unsupported");
    s.stop().await;
}

#[tokio::test]
async fn hello_without_v_and_garbage_first_frames_are_refused() {
    let s = start(config()).await;
    for (text, code) in [
        (r#"{"type":"hello"}"#, "bad_request"),
        ("not json", "bad_frame"),
        (
            r#"{"type":"hello","v":1,"user":"no spaces"}"#,
            "bad_request",
        ),
        (
            r#"{"type":"hello","v":1,"resume":{"session":"s_x"}}"#,
            "bad_request",
        ),
    ] {
        let mut c = Client::raw(&s).await;
        c.send_text(text).await;
        let (close, frames) = c.closed().await;
        assert_eq!(close, 4000, "{text}");
        assert_eq!(frames[0]["code"], code, "{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn binary_first_frame_is_refused_with_4000() {
    let s = start(config()).await;
    let mut c = Client::raw(&s).await;
    use futures_util::SinkExt;
    c.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1u8, 2, 3,
    ]))
    .await
    .unwrap();
    let (code, frames) = c.closed().await;
    assert_eq!(code, 4000);
    assert_eq!(frames[0]["code"], "unsupported");
    s.stop().await;
}

#[tokio::test]
async fn silent_client_is_closed_with_4002_after_the_hello_timeout() {
    let mut cfg = config();
    cfg.server.hello_timeout_ms = 100;
    let s = start(cfg).await;
    let mut c = Client::raw(&s).await;
    let (code, _) = c.closed().await;
    assert_eq!(code, 4002);
    s.stop().await;
}

#[tokio::test]
async fn other_paths_are_not_upgraded() {
    let s = start(config()).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/other", s.addr))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 404),
        other => panic!("expected an HTTP 404, got {other}"),
    }
    s.stop().await;
}

fn token_config() -> zerorelay::Config {
    let mut cfg = config();
    cfg.auth.tokens.insert("t-alice".into(), "alice".into());
    cfg.auth.tokens.insert("t-bob".into(), "bob".into());
    cfg
}

#[tokio::test]
async fn static_tokens_name_the_user_and_ignore_hello_user() {
    let s = start(token_config()).await;
    let mut c = Client::raw(&s).await;
    let w = c
        .hello(json!({"type":"hello","v":1,"token":"t-alice","user":"mallory"}))
        .await;
    assert_eq!(w["user"], "alice");
    assert!(!s.relay.is_development());
    s.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_token_is_refused_with_4001() {
    let s = start(token_config()).await;
    for hello in [
        json!({"type":"hello","v":1,"user":"alice"}),
        json!({"type":"hello","v":1,"token":"nope"}),
        json!({"type":"hello","v":1,"token":7}),
    ] {
        let mut c = Client::raw(&s).await;
        c.send(hello.clone()).await;
        let (code, frames) = c.closed().await;
        if hello["token"] == 7 {
            assert_eq!(
                (code, frames[0]["code"].as_str()),
                (4000, Some("bad_request"))
            );
        } else {
            assert_eq!(
                (code, frames[0]["code"].as_str()),
                (4001, Some("unauthorized")),
                "{hello}"
            );
        }
    }
    // A refused client does not disturb an authenticated one.
    let mut ok = Client::raw(&s).await;
    ok.hello(json!({"type":"hello","v":1,"token":"t-bob"}))
        .await;
    let pong = ok.request(json!({"type":"ping","id":1})).await;
    assert_eq!(pong, json!({"type":"pong","id":1}));
    s.stop().await;
}

/// Tokens `short` (expires in 300 ms) and `long` (an hour), both for `carol`.
struct Expiring;

impl Authenticator for Expiring {
    fn authenticate<'a>(
        &'a self,
        r: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        let ttl = match r.token {
            Some("short") => Some(Duration::from_millis(300)),
            Some("long") => Some(Duration::from_secs(3600)),
            Some("other") => {
                return Box::pin(async { Ok(Identity::user("dave")) });
            }
            _ => None,
        };
        Box::pin(async move {
            let ttl =
                ttl.ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "bad token"))?;
            Ok(Identity {
                user: Some("carol".into()),
                expires_at: Some(SystemTime::now() + ttl),
                ..Identity::default()
            })
        })
    }
}

#[tokio::test]
async fn expired_token_closes_with_4003() {
    let s = start_with(Relay::builder(config()).authenticator(Expiring)).await;
    let mut c = Client::raw(&s).await;
    c.hello(json!({"type":"hello","v":1,"token":"short"})).await;
    let (code, _) = c.closed().await;
    assert_eq!(code, 4003);
    s.stop().await;
}

#[tokio::test]
async fn refresh_extends_the_token_and_refuses_another_user() {
    let s = start_with(Relay::builder(config()).authenticator(Expiring)).await;
    let mut c = Client::raw(&s).await;
    c.hello(json!({"type":"hello","v":1,"token":"short"})).await;
    let e = c
        .request(json!({"type":"refresh","id":"r0","token":"other"}))
        .await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("forbidden"), Some("r0"))
    );
    let e = c
        .request(json!({"type":"refresh","id":"r1","token":"bogus"}))
        .await;
    assert_eq!(e["code"], "unauthorized");
    c.ok(json!({"type":"refresh","id":"r2","token":"long"}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pong = c.request(json!({"type":"ping","id":"still-here"})).await;
    assert_eq!(pong, json!({"type":"pong","id":"still-here"}));
    // Frames sent right behind a refresh wait for it: answers stay in order.
    c.send(json!({"type":"refresh","id":"r3","token":"long"}))
        .await;
    c.send(json!({"type":"ping","id":"behind"})).await;
    let ok = c.recv().await;
    assert_eq!(
        (ok["type"].as_str(), ok["id"].as_str()),
        (Some("ok"), Some("r3"))
    );
    assert_eq!(c.recv().await, json!({"type":"pong","id":"behind"}));
    s.stop().await;
}
