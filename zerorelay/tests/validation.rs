//! Payload validation before routing: JSON Schemas per group pattern from
//! the configuration, and host hooks that accept, reject, rewrite or take
//! too long, once per message.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{config, start, start_with, Client};
use serde_json::json;
use serde_json::value::RawValue;
use zerorelay::config::ValidateRule;
use zerorelay::validate::{Payload, Verdict};
use zerorelay::{ErrorCode, ProtocolError, Relay};

fn schema_file(name: &str, schema: serde_json::Value) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let p = std::env::temp_dir().join(format!("zerorelay-{name}-{:x}.json", u64::from_le_bytes(b)));
    std::fs::write(&p, schema.to_string()).unwrap();
    p.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn payloads_to_matching_groups_must_satisfy_their_schema() {
    let file = schema_file(
        "chat-schema",
        json!({
            "type": "object",
            "required": ["text"],
            "properties": {"text": {"type": "string", "maxLength": 10}},
            "additionalProperties": false
        }),
    );
    let mut c = config();
    c.validate.push(ValidateRule {
        group: "chat-*".into(),
        schema_file: file.clone(),
    });
    let s = start(c).await;
    let mut alice = Client::connect(&s, "alice").await;
    let mut bob = Client::connect(&s, "bob").await;
    bob.ok(json!({"type":"join","id":1,"group":"chat-1"})).await;
    bob.ok(json!({"type":"join","id":2,"group":"other"})).await;
    let cases = [
        (json!({"text": 5}), "/text"),
        (json!({"text": "far too long for it"}), "/text"),
        (json!({"txt": "hi"}), "/"),
        (json!("hi"), "/"),
    ];
    for (i, (data, at)) in cases.into_iter().enumerate() {
        let e = alice
            .request(json!({"type":"publish","id":format!("p{i}"),"group":"chat-1","data":data}))
            .await;
        assert_eq!(e["code"], "bad_request", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains(&format!("at {at}")), "{m}");
        // Other groups are not checked.
        alice
            .ok(json!({"type":"publish","id":format!("q{i}"),"group":"other","data":data}))
            .await;
        assert_eq!(bob.message().await["group"], "other");
    }
    alice
        .ok(json!({"type":"publish","id":1,"group":"chat-1","data":{"text":"hi"}}))
        .await;
    assert_eq!(bob.message().await["data"], json!({"text":"hi"}));
    s.stop().await;
    std::fs::remove_file(file).unwrap();
}

/// Strips `<` and `>`, refuses "spam", and counts its calls.
struct Hook(Arc<AtomicUsize>);

impl zerorelay::validate::Validator for Hook {
    fn validate<'a>(&'a self, p: Payload<'a>) -> zerorelay::auth::BoxFuture<'a, Verdict> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let text = p.data.get().to_owned();
        Box::pin(async move {
            if text.contains("spam") {
                return Verdict::Reject(ProtocolError::new(ErrorCode::BadRequest, "no spam here"));
            }
            if text.contains("slow") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            if text.contains('<') {
                let clean = text.replace(['<', '>'], "");
                return Verdict::Rewrite(RawValue::from_string(clean).unwrap());
            }
            Verdict::Accept
        })
    }
}

#[tokio::test]
async fn host_hooks_accept_reject_rewrite_and_time_out_once_per_message() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut c = config();
    c.limits.validate_timeout_ms = 200;
    let s = start_with(Relay::builder(c).validator("chat-*", Hook(calls.clone()))).await;
    let mut alice = Client::connect(&s, "alice").await;
    let mut subs = Vec::new();
    for u in ["bob", "carol", "dave"] {
        let mut m = Client::connect(&s, u).await;
        m.ok(json!({"type":"join","id":1,"group":"chat-1"})).await;
        subs.push(m);
    }
    alice
        .ok(json!({"type":"publish","id":1,"group":"chat-1","data":"<b>hi</b>"}))
        .await;
    for m in &mut subs {
        assert_eq!(m.message().await["data"], "bhi/b");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "once per message, not per recipient"
    );
    let e = alice
        .request(json!({"type":"publish","id":2,"group":"chat-1","data":"spam"}))
        .await;
    assert_eq!(e["code"], "bad_request");
    assert_eq!(e["message"], "no spam here");
    let e = alice
        .request(json!({"type":"publish","id":3,"group":"chat-1","data":"slow"}))
        .await;
    assert_eq!(e["code"], "internal", "{e}");
    // The connection carries on, and its frames after the held one were
    // answered in order.
    alice
        .send(json!({"type":"publish","id":4,"group":"chat-1","data":"fine"}))
        .await;
    alice.send(json!({"type":"ping","id":5})).await;
    assert_eq!(alice.recv().await["id"], 4);
    assert_eq!(alice.recv().await["type"], "pong");
    for m in &mut subs {
        assert_eq!(m.message().await["data"], "fine");
    }
    // A re-sent request id is answered from memory, not validated again.
    let before = calls.load(Ordering::SeqCst);
    alice
        .ok(json!({"type":"publish","id":4,"group":"chat-1","data":"fine"}))
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), before);
    // Groups without hooks are not held.
    alice
        .ok(json!({"type":"publish","id":6,"group":"news","data":"<x>"}))
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), before);
    s.stop().await;
}

#[tokio::test]
async fn bad_validation_configuration_is_refused_naming_the_entry() {
    let not_schema = schema_file("bad-schema", json!({"type": 12}));
    for (file, says) in [
        ("/nonexistent/schema.json".to_owned(), "cannot read"),
        (not_schema.clone(), "not a valid JSON Schema"),
    ] {
        let mut c = config();
        c.validate.push(ValidateRule {
            group: "chat-*".into(),
            schema_file: file,
        });
        let e = Relay::builder(c)
            .build()
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("validate[0]") && e.contains(says), "{e}");
    }
    let mut c = config();
    c.validate.push(ValidateRule {
        group: "a{b}".into(),
        schema_file: not_schema.clone(),
    });
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("validate[0].group"));
    std::fs::remove_file(not_schema).unwrap();
}
