//! The holes a hostile client found, each closed: input that panicked a
//! connection, readiness that was lost, closes with the wrong code, free
//! fan-out, limits counted too late, and the WebSocket protocol's own rules.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{self, Got, RawWs};
use common::{config, start, start_with, Client, Frame};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use zerorelay::auth::{Action, AuthRequest, BoxFuture};
use zerorelay::{Authenticator, Identity, ProtocolError, Relay};

/// Within this the server must answer; far below the heartbeat (60 s in
/// these tests), which is when a lost wake-up would be noticed.
const PROMPT: Duration = Duration::from_secs(3);

fn deep(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn rpc_data_no_value_can_hold_and_deep_frames_are_refused_and_the_connection_lives() {
    let s = start(config()).await;
    let mut c = Client::connect(&s, "alice").await;
    // 1e400 is valid JSON that no f64 holds; no method is registered.
    c.send_text(r#"{"type":"rpc","id":1,"method":"x","data":1e400}"#)
        .await;
    let e = c.error("bad_request").await;
    assert_eq!(e["id"], 1, "{e}");
    // Deeper than limits.max_json_depth (64): refused with the id...
    c.send_text(&format!(
        r#"{{"type":"rpc","id":2,"method":"x","data":{}}}"#,
        deep(129)
    ))
    .await;
    let e = c.error("bad_request").await;
    assert_eq!(e["id"], 2, "{e}");
    assert!(e["message"].as_str().unwrap().contains("64"), "{e}");
    c.send_text(&format!(
        r#"{{"type":"publish","id":3,"group":"g","data":{}}}"#,
        deep(64)
    ))
    .await;
    assert_eq!(c.error("bad_request").await["id"], 3);
    // ... and, far deeper than any parser's own bound, without one.
    c.send_text(&deep(30_000)).await;
    c.error("bad_frame").await;
    c.send_text(&format!(
        r#"{{"type":"ping","id":{}"#,
        "{\"a\":".repeat(10_000)
    ))
    .await;
    c.error("bad_frame").await;
    // Within the bound, everything goes through.
    c.ok(json!({"type":"join","id":4,"group":"g"})).await;
    c.send_text(&format!(
        r#"{{"type":"publish","id":5,"group":"g","data":{},"echo":true}}"#,
        deep(63)
    ))
    .await;
    let mut got = [c.recv().await, c.recv().await];
    got.sort_by_key(|f| f["type"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        (got[0]["type"].as_str(), got[1]["id"].as_u64()),
        (Some("message"), Some(5))
    );
    assert_eq!(
        c.request(json!({"type":"ping","id":6})).await,
        json!({"type":"pong","id":6})
    );
    assert!(s.relay.sessions()[0].connected);
    s.stop().await;
}

#[tokio::test]
async fn a_raised_depth_limit_lets_deep_payloads_through_and_rpc_still_refuses_what_it_cannot_hold()
{
    let mut cfg = config();
    cfg.limits.max_json_depth = 1_000;
    let s = start_with(Relay::builder(cfg).rpc("echo", |_, v| async move { Ok(v) })).await;
    let mut c = Client::connect(&s, "alice").await;
    c.ok(json!({"type":"join","id":1,"group":"g"})).await;
    c.send_text(&format!(
        r#"{{"type":"publish","id":2,"group":"g","data":{},"echo":true}}"#,
        deep(900)
    ))
    .await;
    // The answer and the echo, in either order.
    let (a, b) = (c.recv_text().await, c.recv_text().await);
    let m = if a.contains(r#""type":"message""#) {
        a
    } else {
        b
    };
    assert!(m.contains(&deep(900)), "the payload is forwarded as sent");
    // A handler gets a `Value`, which stops at 128 levels: refused, not a panic.
    c.send_text(&format!(
        r#"{{"type":"rpc","id":3,"method":"echo","data":{}}}"#,
        deep(500)
    ))
    .await;
    assert_eq!(c.error("bad_request").await["id"], 3);
    let r = c
        .request(json!({"type":"rpc","id":4,"method":"echo","data":[1]}))
        .await;
    assert_eq!(r, json!({"type":"result","id":4,"data":[1]}));
    s.stop().await;
}

/// Allows everyone (like development mode) but panics when asked about
/// group "boom", or when a refresh presents "boom".
struct Panicky;

impl Authenticator for Panicky {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        let user = request.user.map(str::to_owned);
        let boom = request.token == Some("boom");
        let never = request.token == Some("never");
        Box::pin(async move {
            assert!(!boom, "an injected authenticator panic");
            if never {
                std::future::pending::<()>().await;
            }
            Ok(Identity {
                user,
                ..Identity::default()
            })
        })
    }

    fn authorize(&self, _: &Identity, action: &Action<'_>) -> Result<(), ProtocolError> {
        if let Action::Publish { group: "boom" } = action {
            panic!("an injected authorizer panic");
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_in_a_connection_closes_it_with_1011_and_its_session_still_expires() {
    let mut cfg = config();
    cfg.session.ttl_ms = 300;
    cfg.session.max_sessions = 2;
    let s = start_with(Relay::builder(cfg).authenticator(Panicky)).await;
    // A panic while handling a frame, and one in an awaited refresh.
    for frame in [
        json!({"type":"publish","id":1,"group":"boom","data":1}),
        json!({"type":"refresh","id":1,"token":"boom"}),
    ] {
        let mut c = Client::connect(&s, "alice").await;
        let session = c.session.clone();
        c.send(frame).await;
        assert_eq!(c.closed().await.0, 1011);
        s.wait_detached(&session).await;
        s.wait_gone(&session).await;
    }
    // Nothing leaked: the session limit (2) still admits two.
    let _a = Client::connect(&s, "a").await;
    let _b = Client::connect(&s, "b").await;
    s.stop().await;
}

#[tokio::test]
async fn a_refresh_the_authenticator_never_answers_gets_internal_and_the_connection_serves_on() {
    let mut cfg = config();
    cfg.server.hello_timeout_ms = 300;
    let s = start_with(Relay::builder(cfg).authenticator(Panicky)).await;
    let mut c = Client::connect(&s, "alice").await;
    let e = c
        .request(json!({"type":"refresh","id":1,"token":"never"}))
        .await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("internal"), Some(1))
    );
    assert_eq!(
        c.request(json!({"type":"ping","id":2})).await,
        json!({"type":"pong","id":2})
    );
    s.stop().await;
}

fn patient() -> zerorelay::Config {
    let mut cfg = config();
    cfg.server.heartbeat_ms = 60_000;
    cfg.limits.max_frame_bytes = 256 << 10;
    cfg.session.outbox_bytes = 4 << 20;
    cfg
}

/// A tiny deterministic generator for split points.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn a_frame_that_arrives_in_pieces_is_answered_at_once() {
    let s = start(patient()).await;
    let (mut c, _) = RawWs::hello(s.addr, "alice").await;
    // A WebSocket ping: the first 10 bytes, a pause, the rest.
    let ping = raw::frame(true, 0, raw::OP_PING, b"0123456789abcdef", true);
    c.send_split(&ping, &[10], Duration::from_millis(100)).await;
    assert_eq!(
        c.next_within(PROMPT).await,
        Some(Got::Pong(b"0123456789abcdef".to_vec()))
    );
    // Byte by byte, with a pause after each.
    let ping = raw::frame(true, 0, raw::OP_PING, b"xy", true);
    let ones = vec![1; ping.len() - 1];
    c.send_split(&ping, &ones, Duration::from_millis(20)).await;
    assert_eq!(c.next_within(PROMPT).await, Some(Got::Pong(b"xy".to_vec())));
    // A 200 KB request in random pieces with random pauses, five times.
    let mut rng = Lcg(7);
    let payload = "z".repeat(200 << 10);
    for id in 1..=5 {
        let req =
            raw::text(&json!({"type":"publish","id":id,"group":"g","data":payload}).to_string());
        let mut sizes = Vec::new();
        let mut left = req.len() as u64;
        while left > 1 && sizes.len() < 12 {
            let n = 1 + rng.below(left.min(40_000));
            sizes.push(n as usize);
            left -= n;
        }
        let pause = Duration::from_millis(10 + rng.below(40));
        c.send_split(&req, &sizes, pause).await;
        let answer = tokio::time::timeout(PROMPT, c.json()).await;
        assert_eq!(
            answer.expect("answered at once"),
            json!({"type":"ok","id":id})
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn a_fragmented_message_in_pieces_is_answered_at_once() {
    let s = start(patient()).await;
    let (mut c, _) = RawWs::hello(s.addr, "alice").await;
    let text = json!({"type":"publish","id":1,"group":"g","data":"y".repeat(16 << 10)}).to_string();
    for round in 0..4 {
        let text = text.replace(r#""id":1"#, &format!(r#""id":{}"#, round + 1));
        let mut bytes2 = Vec::new();
        let (a, rest) = text.as_bytes().split_at(4_000);
        let (b, d) = rest.split_at(8_000);
        bytes2.extend(raw::frame(false, 0, raw::OP_TEXT, a, true));
        bytes2.extend(raw::frame(false, 0, raw::OP_CONT, b, true));
        bytes2.extend(raw::frame(true, 0, raw::OP_CONT, d, true));
        let cut = [3_000, 1_500, 9_000];
        c.send_split(&bytes2, &cut, Duration::from_millis(30)).await;
        let answer = tokio::time::timeout(PROMPT, c.json()).await;
        assert_eq!(answer.expect("answered at once")["id"], round + 1);
    }
    s.stop().await;
}

#[tokio::test]
async fn every_close_carries_the_code_of_its_real_cause_under_load() {
    let mut cfg = config();
    cfg.limits.slow_consumer_bytes = 16 << 10;
    cfg.limits.slow_consumer_ms = 50;
    cfg.session.outbox_messages = 1_000_000;
    cfg.session.outbox_bytes = 64 << 20;
    let s = start(cfg).await;
    const N: usize = 12;
    // Load: a publisher and a reader that keep a group busy throughout.
    let mut reader = Client::connect(&s, "reader").await;
    reader
        .ok(json!({"type":"join","id":1,"group":"load"}))
        .await;
    let mut slow = Vec::new();
    let mut taken = Vec::new();
    let mut kicked = Vec::new();
    for i in 0..N {
        slow.push(Client::connect(&s, &format!("slow{i}")).await);
        taken.push(Client::connect(&s, &format!("taken{i}")).await);
        kicked.push(Client::connect(&s, &format!("kicked{i}")).await);
    }
    let chunk = "s".repeat(8 << 10);
    let mut newer = Vec::new();
    let mut round = 0u64;
    // Bounded: at most 3,000 rounds.
    while (s.relay.stats().slow_consumers as usize) < N && round < 3_000 {
        round += 1;
        s.relay.publish("load", &round).unwrap();
        for i in 0..N {
            let _ = s.relay.send_to_user(&format!("slow{i}"), &chunk);
        }
        let i = round as usize;
        if i <= N {
            let victim = &taken[i - 1];
            let (c, w) = Client::resume(&s, &format!("taken{}", i - 1), &victim.session, 0).await;
            assert_eq!(w["resumed"], true);
            newer.push(c);
            assert!(s.relay.disconnect(&kicked[i - 1].session));
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(s.relay.stats().slow_consumers as usize, N);
    let mut codes = std::collections::BTreeMap::new();
    for (what, clients) in [("slow", slow), ("taken", taken), ("kicked", kicked)] {
        for mut c in clients {
            let code = loop {
                match c.next_frame().await {
                    Frame::Text(_) => continue,
                    Frame::Close(code) => break code,
                }
            };
            *codes.entry((what, code)).or_insert(0) += 1;
        }
    }
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        vec![
            (("kicked", 4005), N),
            (("slow", 4008), N),
            (("taken", 4009), N)
        ]
    );
    // The reader saw the load in order.
    for r in 1..=round {
        assert_eq!(reader.message().await["data"], r);
    }
    s.stop().await;
}

#[tokio::test]
async fn client_broadcast_is_off_by_default_and_rate_limited_when_on() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let e = a.request(json!({"type":"broadcast","id":1,"data":1})).await;
    assert_eq!(e["code"], "forbidden");
    s.stop().await;
    let mut cfg = config();
    cfg.features.client_broadcast = true;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    a.ok(json!({"type":"broadcast","id":1,"data":1})).await;
    let e = a.request(json!({"type":"broadcast","id":2,"data":2})).await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("rate_limited"), Some(2))
    );
    assert_eq!(b.message().await["data"], 1);
    b.silent(100).await;
    s.stop().await;
}

#[tokio::test]
async fn a_publish_to_a_large_group_costs_its_sender_in_proportion() {
    let mut cfg = config();
    cfg.limits.large_group = 1_000;
    cfg.limits.rate_per_sec = 1;
    cfg.limits.rate_burst = 2;
    cfg.session.max_sessions = 2_000;
    cfg.server.max_handshaking_per_ip = 2_000;
    let s = start(cfg).await;
    let mut members = Vec::new();
    for i in 0..1_100 {
        let mut m = RawWs::hello(s.addr, &format!("m{i}")).await.0;
        m.send(&raw::text(r#"{"type":"join","id":1,"group":"big"}"#))
            .await;
        members.push(m);
    }
    for m in &mut members {
        assert_eq!(m.json().await, json!({"type":"ok","id":1}));
    }
    let mut small = Client::connect(&s, "small").await;
    small
        .ok(json!({"type":"publish","id":1,"group":"few","data":1}))
        .await;
    small
        .ok(json!({"type":"publish","id":2,"group":"few","data":2}))
        .await;
    let mut big = Client::connect(&s, "big").await;
    big.ok(json!({"type":"publish","id":1,"group":"big","data":1}))
        .await;
    // 1,100 deliveries cost 1.1 frames: the burst of 2 is spent.
    let e = big
        .request(json!({"type":"publish","id":2,"group":"big","data":2}))
        .await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("rate_limited"), Some(2))
    );
    s.stop().await;
}

#[tokio::test]
async fn connections_count_against_the_cap_from_accept() {
    let mut cfg = config();
    cfg.server.max_connections = 2;
    let s = start(cfg).await;
    // Two that never finish the upgrade hold the two slots.
    let _a = RawWs::tcp(s.addr).await;
    let _b = RawWs::tcp(s.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Client::raw(&s).await;
    c.send(json!({"type":"hello","v":1,"user":"late"})).await;
    let (code, frames) = c.closed().await;
    assert_eq!(
        (code, frames[0]["code"].as_str()),
        (1013, Some("limit_exceeded"))
    );
    drop((_a, _b));
    for _ in 0..100 {
        if s.relay.stats().connections_open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ok = Client::connect(&s, "now").await;
    s.stop().await;
}

#[tokio::test]
async fn an_address_may_have_only_so_many_connections_in_their_handshake() {
    let mut cfg = config();
    cfg.server.max_handshaking_per_ip = 2;
    let s = start(cfg).await;
    let welcomed = Client::connect(&s, "done").await;
    let a = RawWs::tcp(s.addr).await;
    let mut b = RawWs::connect(s.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = RawWs::tcp(s.addr).await;
    assert!(third.ended_within(PROMPT).await, "closed at once");
    // One finishing its hello makes room; a welcomed one never counted.
    b.send(&raw::text(r#"{"type":"hello","v":1,"user":"b"}"#))
        .await;
    assert_eq!(b.json().await["type"], "welcome");
    let _c = Client::connect(&s, "c").await;
    drop((a, welcomed));
    s.stop().await;
}

#[tokio::test]
async fn a_user_may_have_only_max_per_user_sessions() {
    let mut cfg = config();
    cfg.session.max_per_user = 2;
    let s = start(cfg).await;
    let a1 = Client::connect(&s, "alice").await;
    let _a2 = Client::connect(&s, "alice").await;
    let mut c = Client::raw(&s).await;
    c.send(json!({"type":"hello","v":1,"user":"alice"})).await;
    let (code, frames) = c.closed().await;
    assert_eq!(
        (code, frames[0]["code"].as_str()),
        (1013, Some("limit_exceeded"))
    );
    // Another user is unaffected; her own resume is not a new session.
    let _b = Client::connect(&s, "bob").await;
    let session = a1.session.clone();
    a1.cut();
    s.wait_detached(&session).await;
    let (_a1, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], true);
    s.stop().await;
}

#[tokio::test]
async fn the_outbox_budget_trims_the_largest_detached_outboxes_first_with_a_gap() {
    let mut cfg = config();
    cfg.limits.max_frame_bytes = 1_024;
    cfg.session.outbox_bytes = 64 << 10;
    cfg.session.outbox_total_bytes = 64 << 10;
    let s = start(cfg).await;
    let big = Client::connect(&s, "big").await;
    let small = Client::connect(&s, "small").await;
    let mut live = Client::connect(&s, "live").await;
    let (big_s, small_s) = (big.session.clone(), small.session.clone());
    big.cut();
    small.cut();
    s.wait_detached(&big_s).await;
    s.wait_detached(&small_s).await;
    let pad = "p".repeat(1_000);
    for i in 1..=50 {
        s.relay.send_to_user("big", &json!([i, pad])).unwrap();
    }
    for i in 1..=20 {
        s.relay.send_to_user("small", &json!([i, pad])).unwrap();
    }
    for i in 1..=5 {
        s.relay.send_to_user("live", &i).unwrap();
    }
    for _ in 0..200 {
        if s.relay.stats().trimmed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let trimmed = s.relay.stats().trimmed;
    assert!(trimmed > 0 && trimmed < 50, "{trimmed}");
    assert!(s.relay.stats().outbox_bytes <= 64 << 10);
    // The largest detached outbox lost its oldest, announced with a gap...
    let (mut b, _) = Client::resume(&s, "big", &big_s, 0).await;
    let g = b.recv().await;
    assert_eq!(
        (
            g["type"].as_str(),
            g["from_seq"].as_u64(),
            g["to_seq"].as_u64()
        ),
        (Some("gap"), Some(1), Some(trimmed))
    );
    for i in trimmed + 1..=50 {
        assert_eq!(b.message().await["seq"], i);
    }
    // ... the smaller one and the attached one lost nothing.
    let (mut sm, _) = Client::resume(&s, "small", &small_s, 0).await;
    for i in 1..=20 {
        assert_eq!(sm.message().await["seq"], i);
    }
    for i in 1..=5 {
        assert_eq!(live.message().await["data"], i);
    }
    s.stop().await;
}

#[tokio::test]
async fn acks_have_their_own_budget() {
    let mut cfg = config();
    cfg.limits.rate_per_sec = 1;
    cfg.limits.rate_burst = 1;
    cfg.limits.ack_rate_per_sec = 5;
    let s = start(cfg).await;
    let mut c = Client::connect(&s, "alice").await;
    // The frame budget is spent; acks still go through, up to their own.
    c.ok(json!({"type":"join","id":1,"group":"g"})).await;
    for _ in 0..30 {
        c.ack(0).await;
    }
    let e = c.error("rate_limited").await;
    assert!(e["message"].as_str().unwrap().contains("ack"), "{e}");
    s.stop().await;
}

/// Each violation of RFC 6455 on its own connection: the server answers
/// with a close frame (1002, or 1007 for bad UTF-8), never a bare drop.
#[tokio::test]
async fn websocket_protocol_violations_get_a_close_frame_with_1002() {
    let s = start(config()).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "control frame over 125 bytes",
            raw::frame(true, 0, raw::OP_PING, &[b'p'; 126], true),
            1002,
        ),
        (
            "unmasked client frame",
            raw::frame(true, 0, raw::OP_TEXT, br#"{"type":"ping"}"#, false),
            1002,
        ),
        (
            "reserved bits",
            raw::frame(true, 4, raw::OP_TEXT, br#"{"type":"ping"}"#, true),
            1002,
        ),
        (
            "reserved opcode",
            raw::frame(true, 0, 0x3, b"x", true),
            1002,
        ),
        (
            "continuation without a start",
            raw::frame(true, 0, raw::OP_CONT, b"x", true),
            1002,
        ),
        (
            "fragmented control frame",
            raw::frame(false, 0, raw::OP_PING, b"x", true),
            1002,
        ),
        (
            "a new message inside a fragmented one",
            [
                raw::frame(false, 0, raw::OP_TEXT, b"{", true),
                raw::frame(true, 0, raw::OP_TEXT, b"{}", true),
            ]
            .concat(),
            1002,
        ),
        (
            "invalid UTF-8",
            raw::frame(true, 0, raw::OP_TEXT, &[0xff, 0xfe, b'{'], true),
            1007,
        ),
    ];
    let mut bystander = Client::connect(&s, "bystander").await;
    for (what, bytes, want) in cases {
        // Before hello, and after it.
        for greet in [false, true] {
            let mut c = if greet {
                RawWs::hello(s.addr, "mallory").await.0
            } else {
                RawWs::connect(s.addr).await
            };
            c.send(&bytes).await;
            let (code, _) = c.closed().await;
            assert_eq!(code, Some(want), "{what} (after hello: {greet})");
        }
    }
    assert_eq!(
        bystander.request(json!({"type":"ping","id":1})).await,
        json!({"type":"pong","id":1})
    );
    s.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_transport_limit_is_refused_with_1009_not_a_reset() {
    let mut cfg = config();
    cfg.limits.max_frame_bytes = 1_024;
    cfg.limits.transport_frame_factor = 1;
    let s = start(cfg).await;
    for greet in [false, true] {
        let mut c = if greet {
            RawWs::hello(s.addr, "alice").await.0
        } else {
            RawWs::connect(s.addr).await
        };
        // Still writing while the server refuses it: a server that closed
        // with this input unread would reset the connection under the
        // writes (and the reset can overtake the close frame).
        let big = raw::text(&"x".repeat(896 << 10));
        let mut sent = true;
        for piece in big.chunks(14 << 10) {
            sent &= c.try_send(piece).await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        assert!(
            sent,
            "the server reads what it refuses rather than resetting"
        );
        let (code, frames) = c.closed().await;
        assert_eq!(code, Some(1009), "after hello: {greet}");
        assert_eq!(frames[0]["code"], "too_large");
    }
    s.stop().await;
}

/// The host mounts the relay on its own server: a development-mode relay
/// refuses a client from another machine unless `server.insecure` is set.
#[tokio::test]
async fn development_mode_serves_only_this_machine_unless_insecure() {
    for insecure in [false, true] {
        let mut cfg = config();
        cfg.server.insecure = insecure;
        let relay = Relay::builder(cfg).build().unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 << 10);
        let far: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let server_ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        tokio::spawn(relay.accept_websocket(server_ws, Some(far)));
        let mut ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        ws.send(Message::text(r#"{"type":"hello","v":1,"user":"far"}"#))
            .await
            .unwrap();
        let first = match ws.next().await {
            Some(Ok(Message::Text(t))) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            other => panic!("{other:?}"),
        };
        if insecure {
            assert_eq!(first["type"], "welcome");
        } else {
            assert_eq!(first["code"], "unauthorized", "{first}");
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4001),
                other => panic!("{other:?}"),
            }
        }
        relay.shutdown().await;
    }
}

#[tokio::test]
async fn keys_never_appear_in_host_listings_or_events() {
    let s = start(config()).await;
    let mut events = s.relay.events();
    let c = Client::connect(&s, "alice").await;
    let listed = serde_json::to_string(&s.relay.sessions()).unwrap();
    assert!(!listed.contains(&c.key), "{listed}");
    let e = tokio::time::timeout(common::WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!format!("{e:?}").contains(&c.key));
    assert!(!serde_json::to_string(&e).unwrap().contains(&c.key));
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_session_or_a_user_closes_with_4006_and_ends_the_sessions() {
    let s = start(config()).await;
    let mut a1 = Client::connect(&s, "alice").await;
    let mut a2 = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    let mut carol = Client::connect(&s, "carol").await;
    let mut events = s.relay.events();
    assert_eq!(s.relay.revoke_user("alice"), 2);
    assert!(s.relay.revoke_session(&b.session));
    for c in [&mut a1, &mut a2, &mut b] {
        assert_eq!(c.closed().await.0, 4006);
    }
    // Ended, not resumable: even the right key gets a fresh session.
    let (_again, w) = Client::resume(&s, "alice", &a1.session, 0).await;
    assert_eq!(w["resumed"], false);
    let mut ended = 0;
    while ended < 3 {
        let e = tokio::time::timeout(common::WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let zerorelay::server::HostEvent::Ended { reason, .. } = e {
            assert_eq!(reason, "revoked");
            ended += 1;
        }
    }
    assert!(!s.relay.revoke_session("s_nope"));
    assert_eq!(s.relay.revoke_user("nobody"), 0);
    assert_eq!(
        carol.request(json!({"type":"ping","id":1})).await,
        json!({"type":"pong","id":1})
    );
    s.stop().await;
}
