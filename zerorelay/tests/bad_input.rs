//! Bad input gets a precise error, never takes the server down, and never
//! affects other clients.

mod common;

use common::{config, start, Client};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// After each bad frame: the offender's connection still works, and a
/// bystander still gets its messages.
async fn still_fine(bad: &mut Client, bystander: &mut Client, n: u64) {
    assert_eq!(
        bad.request(json!({"type":"ping","id":n})).await,
        json!({"type":"pong","id":n})
    );
    bad.ok(json!({"type":"send","id":n,"to":"bystander","data":n}))
        .await;
    assert_eq!(bystander.message().await["data"], n);
}

#[tokio::test]
async fn each_malformed_frame_gets_its_error_and_the_connection_stays_open() {
    let s = start(config()).await;
    let mut bad = Client::connect(&s, "bad").await;
    let mut by = Client::connect(&s, "bystander").await;
    let long_group = "g".repeat(129);
    let cases: Vec<(String, &str, serde_json::Value)> = vec![
        ("not json".into(), "bad_frame", json!(null)),
        ("{\"type\":\"ping\"".into(), "bad_frame", json!(null)),
        ("[1,2,3]".into(), "bad_frame", json!(null)),
        ("\"hello\"".into(), "bad_frame", json!(null)),
        ("{}".into(), "bad_frame", json!(null)),
        (r#"{"type":7}"#.into(), "bad_frame", json!(null)),
        (
            r#"{"type":"teleport","id":1}"#.into(),
            "unsupported",
            json!(1),
        ),
        (
            r#"{"type":"send","id":2,"to":"bystander"}"#.into(),
            "bad_request",
            json!(2),
        ),
        (
            r#"{"type":"send","id":3,"data":1}"#.into(),
            "bad_request",
            json!(3),
        ),
        (
            r#"{"type":"send","id":4,"to":"bystander","session":"s_1","data":1}"#.into(),
            "bad_request",
            json!(4),
        ),
        (
            r#"{"type":"send","id":5,"to":5,"data":1}"#.into(),
            "bad_request",
            json!(5),
        ),
        (
            r#"{"type":"join","id":1.5,"group":"g"}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            r#"{"type":"join","id":null,"group":"g"}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            r#"{"type":"join","id":{"a":1},"group":"g"}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            format!(r#"{{"type":"join","id":"{}","group":"g"}}"#, "i".repeat(65)),
            "bad_request",
            json!(null),
        ),
        (r#"{"type":"join","id":6}"#.into(), "bad_request", json!(6)),
        (
            r#"{"type":"join","id":7,"group":""}"#.into(),
            "bad_request",
            json!(7),
        ),
        (
            r#"{"type":"join","id":8,"group":"has space"}"#.into(),
            "bad_request",
            json!(8),
        ),
        (
            r##"{"type":"join","id":9,"group":"#hash"}"##.into(),
            "bad_request",
            json!(9),
        ),
        (
            format!(r#"{{"type":"join","id":10,"group":"{long_group}"}}"#),
            "bad_request",
            json!(10),
        ),
        (
            r#"{"type":"publish","id":11,"group":"g","data":1,"echo":"yes"}"#.into(),
            "bad_request",
            json!(11),
        ),
        (
            r#"{"type":"ack","seq":-1}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            r#"{"type":"ack","seq":"3"}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            r#"{"type":"ack","seq":99}"#.into(),
            "bad_request",
            json!(null),
        ),
        (r#"{"type":"ack"}"#.into(), "bad_request", json!(null)),
        (
            r#"{"type":"rpc","method":"m"}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            r#"{"type":"rpc","id":12,"method":"no spaces"}"#.into(),
            "bad_request",
            json!(12),
        ),
        (
            r#"{"type":"refresh","id":13}"#.into(),
            "bad_request",
            json!(13),
        ),
        (
            r#"{"type":"hello","v":1}"#.into(),
            "bad_request",
            json!(null),
        ),
        (
            r#"{"type":"ping","type":"ping"}"#.into(),
            "bad_frame",
            json!(null),
        ),
    ];
    for (i, (text, code, id)) in cases.into_iter().enumerate() {
        bad.send_text(&text).await;
        let e = bad.error(code).await;
        assert_eq!(
            e.get("id").cloned().unwrap_or(json!(null)),
            id,
            "{text} -> {e}"
        );
        still_fine(&mut bad, &mut by, 100 + i as u64).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn a_binary_frame_after_hello_is_unsupported_and_the_connection_stays_open() {
    let s = start(config()).await;
    let mut bad = Client::connect(&s, "bad").await;
    let mut by = Client::connect(&s, "bystander").await;
    bad.ws.send(Message::binary(vec![0u8; 16])).await.unwrap();
    bad.error("unsupported").await;
    still_fine(&mut bad, &mut by, 1).await;
    s.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_is_too_large_and_the_connection_stays_open() {
    let mut cfg = config();
    cfg.limits.max_frame_bytes = 1024;
    let s = start(cfg).await;
    let mut bad = Client::connect(&s, "bad").await;
    let mut by = Client::connect(&s, "bystander").await;
    let big = json!({"type":"send","id":1,"to":"bystander","data":"x".repeat(2000)});
    bad.send(big).await;
    let e = bad.error("too_large").await;
    assert!(e["message"].as_str().unwrap().contains("1024"), "{e}");
    still_fine(&mut bad, &mut by, 2).await;
    by.silent(50).await;
    s.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_transport_limit_closes_with_1009() {
    let mut cfg = config();
    cfg.limits.max_frame_bytes = 1024;
    let s = start(cfg).await;
    let mut bad = Client::connect(&s, "bad").await;
    let mut by = Client::connect(&s, "bystander").await;
    bad.send_text(&"x".repeat(5000)).await;
    let (code, frames) = bad.closed().await;
    assert_eq!(code, 1009);
    assert_eq!(frames[0]["code"], "too_large");
    let mut other = Client::connect(&s, "other").await;
    other
        .ok(json!({"type":"send","id":1,"to":"bystander","data":"fine"}))
        .await;
    assert_eq!(by.message().await["data"], "fine");
    s.stop().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_the_rest_still_served() {
    let mut cfg = config();
    cfg.limits.rate_per_sec = 5;
    cfg.limits.rate_burst = 10;
    cfg.limits.abuse_strikes = 1000;
    let s = start(cfg).await;
    let mut flood = Client::connect(&s, "flood").await;
    for i in 0..30 {
        flood.send(json!({"type":"ping","id":i})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for i in 0..30 {
        let f = flood.recv().await;
        assert_eq!(f["id"], i, "every frame is answered, in order");
        match f["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(f["code"], "rate_limited");
                limited += 1;
            }
            _ => panic!("{f}"),
        }
    }
    assert!(
        (10..=12).contains(&pongs),
        "burst then refill: {pongs} pongs"
    );
    assert_eq!(pongs + limited, 30);
    s.stop().await;
}

#[tokio::test]
async fn repeated_abuse_is_closed_with_1008_and_others_are_unaffected() {
    let mut cfg = config();
    cfg.limits.abuse_strikes = 5;
    let s = start(cfg).await;
    let mut bad = Client::connect(&s, "bad").await;
    let mut by = Client::connect(&s, "bystander").await;
    for _ in 0..5 {
        bad.send_text("garbage").await;
    }
    let (code, frames) = bad.closed().await;
    assert_eq!(code, 1008);
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| f["code"] == "bad_frame"));
    s.relay.send_to_user("bystander", &"ok").unwrap();
    assert_eq!(by.message().await["data"], "ok");
    s.stop().await;
}

#[tokio::test]
async fn too_many_groups_is_limit_exceeded() {
    let mut cfg = config();
    cfg.limits.max_groups_per_session = 3;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    for g in ["a", "b", "c"] {
        a.ok(json!({"type":"join","id":g,"group":g})).await;
    }
    let e = a.request(json!({"type":"join","id":"d","group":"d"})).await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("limit_exceeded"), Some("d"))
    );
    // Re-joining a current group is still fine, and leaving makes room.
    a.ok(json!({"type":"join","id":"a2","group":"a"})).await;
    a.ok(json!({"type":"leave","id":"l","group":"b"})).await;
    a.ok(json!({"type":"join","id":"d2","group":"d"})).await;
    s.stop().await;
}

#[tokio::test]
async fn the_connection_limit_refuses_with_limit_exceeded_and_1013() {
    let mut cfg = config();
    cfg.server.max_connections = 1;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::raw(&s).await;
    let (code, frames) = b.closed().await;
    assert_eq!(
        (code, frames[0]["code"].as_str()),
        (1013, Some("limit_exceeded"))
    );
    assert_eq!(
        a.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_session_limit_refuses_with_limit_exceeded_and_1013() {
    let mut cfg = config();
    cfg.session.max_sessions = 1;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::raw(&s).await;
    b.send(json!({"type":"hello","v":1,"user":"bob"})).await;
    let (code, frames) = b.closed().await;
    assert_eq!(
        (code, frames[0]["code"].as_str()),
        (1013, Some("limit_exceeded"))
    );
    assert_eq!(
        a.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    s.stop().await;
}

#[tokio::test]
async fn acks_are_not_rate_limited() {
    let mut cfg = config();
    cfg.limits.rate_per_sec = 1;
    cfg.limits.rate_burst = 1;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    for i in 1..=50 {
        s.relay.send_to_user("alice", &i).unwrap();
    }
    for i in 1..=50 {
        assert_eq!(a.message().await["seq"], i);
        a.ack(i).await;
    }
    // All 50 acks were taken: nothing is left to redeliver.
    assert_eq!(
        a.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    assert_eq!(s.relay.sessions()[0].unacked, 0);
    s.stop().await;
}
