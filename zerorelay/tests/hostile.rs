//! The hostile-input suite: one connection sends thousands of malformed and
//! hostile frames, other connections break the protocol, loiter, steal
//! session ids and never read, while two honest clients exchange numbered
//! messages. Every honest message must arrive exactly once and in order, the
//! relay must stay up and its memory bounded. Bounded in count and time
//! (well under a minute).

mod common;

use std::time::Duration;

use common::raw::{self, Got, RawWs};
use common::{config, start, Client};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Honest messages each way.
const HONEST: u64 = 300;
/// Connections that never read.
const SILENT: usize = 5_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The hostile text frames for one connection: at least 2,000.
fn hostile_texts() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    // Random bytes as text (valid UTF-8, not JSON), deterministic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..400 {
        let len = (x % 200) as usize;
        let s: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from_u32((x % 0x2FF) as u32 + 1).unwrap_or('?')
            })
            .collect();
        v.push(s);
    }
    // Deep JSON, far past the bound; deep objects; deep in a field.
    v.push(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    v.push(format!(
        r#"{{"type":"ping","id":1,"x":{}"#,
        "{\"a\":".repeat(30_000)
    ));
    v.push(format!(
        r#"{{"type":"publish","group":"g","data":{}1{}}}"#,
        "[".repeat(65),
        "]".repeat(65)
    ));
    // Huge strings and numbers.
    v.push(format!(
        r#"{{"type":"ping","id":"{}"}}"#,
        "s".repeat(200_000)
    ));
    v.push(format!(r#"{{"type":"ack","seq":{}}}"#, "9".repeat(100_000)));
    v.push(format!(
        r#"{{"type":"rpc","id":1,"method":"m","data":1e{}}}"#,
        "9".repeat(1000)
    ));
    v.push(r#"{"type":"rpc","id":2,"method":"m","data":1e400}"#.into());
    // Ids of every JSON type.
    for id in [
        "null",
        "true",
        "false",
        "1.5",
        "-0",
        "1e3",
        "[]",
        "{}",
        "[1]",
        "{\"a\":1}",
        "99999999999999999999",
        "-99999999999999999999",
    ] {
        v.push(format!(r#"{{"type":"ping","id":{id}}}"#));
        v.push(format!(r#"{{"type":"join","id":{id},"group":"g"}}"#));
    }
    v.push(format!(r#"{{"type":"ping","id":"{}"}}"#, "i".repeat(64)));
    v.push(format!(r#"{{"type":"ping","id":"{}"}}"#, "i".repeat(65)));
    // Frames just under and just over limits.max_frame_bytes (256 KiB
    // here; over it is `too_large`, the connection stays open).
    for len in [256 << 10, (256 << 10) + 1] {
        let pad = len - r#"{"type":"ping","id":1,"p":""}"#.len();
        v.push(format!(
            r#"{{"type":"ping","id":1,"p":"{}"}}"#,
            "p".repeat(pad)
        ));
    }
    // Names at and past their limits, types and fields wrong.
    v.push(format!(
        r#"{{"type":"join","id":3,"group":"{}"}}"#,
        "g".repeat(128)
    ));
    v.push(format!(
        r#"{{"type":"join","id":4,"group":"{}"}}"#,
        "g".repeat(129)
    ));
    for t in [
        r#"{"type":"hello","v":1}"#,
        r#"{"type":"nope"}"#,
        r#"{"type":7}"#,
        r#"{"type":"send","id":5,"data":1}"#,
        r#"{"type":"send","id":6,"to":"a","session":"b","data":1}"#,
        r#"{"type":"publish","id":7,"group":"g"}"#,
        r#"{"type":"rpc","method":"m"}"#,
        r#"{"type":"ack"}"#,
        r#"{"type":"ack","seq":-1}"#,
        r#"{"type":"join","id":8,"group":"g","group":"h"}"#,
        r#"[1,2,3]"#,
        r#""text""#,
        r#"{"#,
        "",
        "\u{0}",
    ] {
        v.push(t.into());
    }
    // Acks beyond delivery and going backwards.
    for seq in [1_000_000u64, 5, 0, 3, 0, u64::MAX] {
        v.push(format!(r#"{{"type":"ack","seq":{seq}}}"#));
    }
    // Sends to nobody, to stolen and guessed session ids.
    for i in 0..200 {
        v.push(format!(
            r#"{{"type":"send","id":{},"session":"s_{:032x}","data":1}}"#,
            1_000 + i,
            i
        ));
    }
    // Up to 2,000 with membership churn.
    let mut i = 0;
    while v.len() < 2_100 {
        i += 1;
        v.push(format!(
            r#"{{"type":"join","id":{},"group":"churn-{}"}}"#,
            10_000 + i,
            i % 300
        ));
        v.push(format!(
            r#"{{"type":"leave","id":{},"group":"churn-{}"}}"#,
            20_000 + i,
            i % 7
        ));
    }
    v
}

/// Sends `n` numbered messages to `to` (direct), reading answers and what
/// arrives meanwhile; returns the data of the messages it received.
async fn honest(mut c: Client, to: &str, n: u64, expect: u64) -> Vec<Value> {
    let mut got = Vec::new();
    for i in 1..=n {
        c.send(json!({"type":"send","id":i,"to":to,"data":i})).await;
        loop {
            let f = c.recv().await;
            match f["type"].as_str() {
                Some("ok") if f["id"] == i => break,
                Some("message") => got.push(f["data"].clone()),
                _ => panic!("honest client got {f}"),
            }
        }
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    while (got.len() as u64) < expect {
        let f = c.message().await;
        got.push(f["data"].clone());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_loses_nothing_of_honest_clients_and_the_relay_stays_up() {
    let mut cfg = config();
    cfg.server.hello_timeout_ms = 1_000;
    cfg.server.max_handshaking_per_ip = 10_000;
    cfg.session.max_sessions = 20_000;
    cfg.session.max_per_user = 20_000;
    cfg.limits.abuse_strikes = 1_000_000;
    cfg.limits.rate_per_sec = 1_000_000;
    cfg.limits.rate_burst = 1_000_000;
    cfg.limits.max_frame_bytes = 256 << 10;
    cfg.limits.transport_frame_factor = 2;
    cfg.session.outbox_bytes = 1 << 20;
    let s = start(cfg).await;
    let started = tokio::time::Instant::now();

    // 5,000 connections that join a group and never read.
    let mut silent = Vec::with_capacity(SILENT);
    for i in 0..SILENT {
        let (mut c, _) = RawWs::hello(s.addr, &format!("crowd{}", i % 50)).await;
        c.send(&raw::text(r#"{"type":"join","group":"crowd"}"#))
            .await;
        silent.push(c);
    }
    let rss_before = rss_kib();

    let alice = Client::connect(&s, "alice").await;
    let bob = Client::connect(&s, "bob").await;
    let mallory = Client::connect(&s, "mallory").await;
    let victim = alice.session.clone();

    let a = tokio::spawn(honest(alice, "bob", HONEST, HONEST));
    let b = tokio::spawn(honest(bob, "alice", HONEST, HONEST));

    // The crowd gets fan-out it never reads.
    for i in 0..20 {
        s.relay
            .publish("crowd", &json!({"n": i, "pad": "c".repeat(1_000)}))
            .unwrap();
    }

    // Mallory's 2,000+ frames on one connection, read by a task of its own.
    let (mut tx, mut rx) = mallory.ws.split();
    let reader = tokio::spawn(async move {
        let mut frames = 0usize;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(3), rx.next()).await {
            if let Message::Text(_) = m {
                frames += 1;
            }
        }
        frames
    });
    let texts = hostile_texts();
    let mut sent = 0;
    for t in &texts {
        tx.send(Message::text(t.clone())).await.unwrap();
        sent += 1;
    }
    // Binary frames, a ping flood, 100,000 joins.
    for i in 0..200u32 {
        tx.send(Message::binary(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
        sent += 1;
    }
    for _ in 0..2_000 {
        tx.feed(Message::Ping(b"flood".to_vec().into()))
            .await
            .unwrap();
        sent += 1;
    }
    tx.flush().await.unwrap();
    for i in 0..100_000u32 {
        tx.feed(Message::text(format!(
            r#"{{"type":"join","group":"j{i}"}}"#
        )))
        .await
        .unwrap();
        sent += 1;
    }
    tx.flush().await.unwrap();
    assert!(sent >= 2_000);

    // Protocol breakers, each on a connection of its own: each gets its close.
    let breakers: Vec<(Vec<u8>, u16)> = vec![
        (raw::frame(true, 0, raw::OP_PING, &[0; 126], true), 1002),
        (raw::frame(true, 0, raw::OP_TEXT, b"{}", false), 1002),
        (raw::frame(true, 2, raw::OP_TEXT, b"{}", true), 1002),
        (raw::frame(true, 0, 0xB, b"", true), 1002),
        (raw::frame(true, 0, raw::OP_CONT, b"x", true), 1002),
        (raw::frame(true, 0, raw::OP_TEXT, &[0xc3, 0x28], true), 1007),
        (raw::text(&"x".repeat((512 << 10) + 1)), 1009),
    ];
    for (bytes, want) in &breakers {
        let (mut c, _) = RawWs::hello(s.addr, "breaker").await;
        c.send(bytes).await;
        assert_eq!(c.closed().await.0, Some(*want));
    }
    // Fragmentation abuse: a message in 500 continuation frames is still
    // one message; interleaved pings are allowed.
    let (mut c, _) = RawWs::hello(s.addr, "fragments").await;
    let text = json!({"type":"ping","id":"frag","p":"f".repeat(5_000)}).to_string();
    let pieces: Vec<&[u8]> = text.as_bytes().chunks(10).collect();
    let last = pieces.len() - 1;
    for (i, p) in pieces.iter().enumerate() {
        let op = if i == 0 { raw::OP_TEXT } else { raw::OP_CONT };
        c.send(&raw::frame(i == last, 0, op, p, true)).await;
        if i % 100 == 0 {
            c.send(&raw::frame(true, 0, raw::OP_PING, b"mid", true))
                .await;
        }
    }
    let mut pongs = 0;
    let answer = loop {
        match c.next().await {
            Got::Pong(_) => pongs += 1,
            Got::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(answer, json!({"type":"pong","id":"frag"}));
    assert!(pongs >= 1);

    // Resume with guessed and stolen ids: always a fresh session.
    for resume in [
        json!({"session": victim, "last_seq": 0}),
        json!({"session": victim, "key": "0".repeat(32), "last_seq": 0}),
        json!({"session": "s_00000000000000000000000000000000", "key": "k", "last_seq": 0}),
    ] {
        let mut c = RawWs::connect(s.addr).await;
        let hello = json!({"type":"hello","v":1,"user":"alice","resume":resume});
        c.send(&raw::text(&hello.to_string())).await;
        let w = c.json().await;
        assert_eq!(
            (w["resumed"].as_bool(), w["session"] != json!(victim)),
            (Some(false), true)
        );
    }

    // Slowloris: an upgrade never finished, a hello never sent. Both are
    // closed after server.hello_timeout_ms.
    let mut half = RawWs::tcp(s.addr).await;
    half.tcp
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut mute = RawWs::connect(s.addr).await;
    assert!(half.ended_within(Duration::from_secs(5)).await);
    assert_eq!(mute.closed().await.0, Some(4002));

    // The honest clients got everything, once, in order.
    let want: Vec<Value> = (1..=HONEST).map(|i| json!(i)).collect();
    assert_eq!(a.await.unwrap(), want, "alice");
    assert_eq!(b.await.unwrap(), want, "bob");

    // Mallory was answered throughout and the relay still serves.
    drop(tx);
    let answered = reader.await.unwrap();
    assert!(answered >= 1_000, "mallory got {answered} answers");
    let mut fresh = Client::connect(&s, "fresh").await;
    assert_eq!(
        fresh.request(json!({"type":"ping","id":1})).await,
        json!({"type":"pong","id":1})
    );
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 512 << 10, "RSS grew by {grown} KiB");
    drop(silent);
    s.stop().await;
    eprintln!(
        "hostile suite: {sent} hostile frames, {SILENT} silent connections, RSS +{grown} KiB, {:?}",
        started.elapsed()
    );
}
