//! Acknowledgements, resume, duplicate suppression, expiry, take-over,
//! heartbeats, slow consumers, gaps and graceful shutdown.

mod common;

use std::time::Duration;

use common::{config, key_of, start, Client, Frame};
use serde_json::json;

#[tokio::test]
async fn resume_redelivers_unacked_messages_in_order_with_their_seqs() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    for i in 1..=5 {
        s.relay.send_to_user("alice", &i).unwrap();
    }
    for i in 1..=5 {
        assert_eq!(a.message().await["seq"], i);
    }
    a.ack(2).await;
    a.cut();
    s.wait_detached(&session).await;
    // Queued while disconnected.
    s.relay.send_to_user("alice", &6).unwrap();
    let (mut a, w) = Client::resume(&s, "alice", &session, 3).await;
    assert_eq!(
        (w["resumed"].as_bool(), w["session"].as_str()),
        (Some(true), Some(session.as_str()))
    );
    for i in 4..=6 {
        let m = a.message().await;
        assert_eq!((m["seq"].as_u64(), m["data"].as_u64()), (Some(i), Some(i)));
    }
    a.silent(100).await;
    // New deliveries continue the sequence.
    s.relay.send_to_user("alice", &7).unwrap();
    assert_eq!(a.message().await["seq"], 7);
    s.stop().await;
}

#[tokio::test]
async fn resume_keeps_group_memberships() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    a.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let session = a.session.clone();
    a.cut();
    s.wait_detached(&session).await;
    assert_eq!(s.relay.publish("g", &"while away").unwrap(), 1);
    let (mut a, _) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(a.message().await["data"], "while away");
    s.relay.publish("g", &"back").unwrap();
    assert_eq!(a.message().await["data"], "back");
    s.stop().await;
}

#[tokio::test]
async fn a_resent_request_id_after_resume_is_not_routed_twice() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    b.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let session = a.session.clone();
    // The publish is routed, but pretend the ok was lost with the connection.
    a.send(json!({"type":"publish","id":"p-1","group":"g","data":"once"}))
        .await;
    assert_eq!(b.message().await["data"], "once");
    a.cut();
    s.wait_detached(&session).await;
    let (mut a, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], true);
    a.ok(json!({"type":"publish","id":"p-1","group":"g","data":"once"}))
        .await;
    // Same id, different content: still the first answer, still not routed.
    a.ok(json!({"type":"send","id":"p-1","to":"bob","data":"other"}))
        .await;
    b.silent(200).await;
    // A failed request is remembered with its error too.
    let e1 = a
        .request(json!({"type":"send","id":"s-1","to":"nobody","data":1}))
        .await;
    let e2 = a
        .request(json!({"type":"send","id":"s-1","to":"bob","data":1}))
        .await;
    assert_eq!(e1, e2);
    b.silent(100).await;
    s.stop().await;
}

#[tokio::test]
async fn at_least_1024_recent_ids_are_remembered() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    for i in 0..1024 {
        a.send(json!({"type":"send","id":i,"to":"bob","data":i}))
            .await;
    }
    for i in 0..1024 {
        assert_eq!(a.recv().await, json!({"type":"ok","id":i}));
        assert_eq!(b.message().await["data"], i);
    }
    a.ok(json!({"type":"send","id":0,"to":"bob","data":"dup"}))
        .await;
    b.silent(200).await;
    s.stop().await;
}

#[tokio::test]
async fn an_expired_session_cannot_be_resumed() {
    let mut cfg = config();
    cfg.session.ttl_ms = 150;
    let s = start(cfg).await;
    let a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    a.cut();
    s.wait_gone(&session).await;
    let (mut a, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], false);
    assert_ne!(w["session"], json!(session));
    a.silent(50).await;
    s.stop().await;
}

#[tokio::test]
async fn another_users_session_is_not_resumed() {
    let s = start(config()).await;
    let a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    a.cut();
    s.wait_detached(&session).await;
    let (_m, w) = Client::resume(&s, "mallory", &session, 0).await;
    assert_eq!(w["resumed"], false);
    assert_ne!(w["session"], json!(session));
    s.stop().await;
}

#[tokio::test]
async fn a_receiver_cannot_take_over_the_senders_session_without_its_key() {
    let s = start(config()).await;
    let mut alice = Client::connect(&s, "alice").await;
    let mut bob = Client::connect(&s, "bob").await;
    alice
        .ok(json!({"type":"send","id":1,"to":"bob","data":"hi"}))
        .await;
    let m = bob.message().await;
    let stolen = m["from_session"].as_str().unwrap().to_owned();
    assert_eq!(stolen, alice.session);
    // The session id is public; without the key (missing, wrong, or bob's
    // own), even as the same user, a resume gets a fresh session.
    let wrong = [
        json!({"session":stolen,"last_seq":0}),
        json!({"session":stolen,"key":"00000000000000000000000000000000","last_seq":0}),
        json!({"session":stolen,"key":bob.key,"last_seq":0}),
        json!({"session":stolen,"key":&alice.key[..31],"last_seq":0}),
    ];
    for resume in wrong {
        for user in ["alice", "bob"] {
            let mut m = Client::raw(&s).await;
            let w = m
                .hello(json!({"type":"hello","v":1,"user":user,"resume":resume}))
                .await;
            assert_eq!(w["type"], "welcome", "{w}");
            assert_eq!(w["resumed"], false, "{resume}");
            assert_ne!(w["session"], json!(stolen));
            assert_ne!(w["resume_key"], json!(alice.key));
            m.close().await;
        }
    }
    // Alice was never disturbed, and her session still works.
    alice.silent(100).await;
    bob.ok(json!({"type":"send","id":2,"to":"alice","data":"still here"}))
        .await;
    assert_eq!(alice.message().await["data"], "still here");
    s.stop().await;
}

#[tokio::test]
async fn a_resumed_session_keeps_its_key() {
    let s = start(config()).await;
    let a = Client::connect(&s, "alice").await;
    let (session, key) = (a.session.clone(), a.key.clone());
    a.cut();
    s.wait_detached(&session).await;
    let (b, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(
        (w["resumed"].as_bool(), w["resume_key"].as_str()),
        (Some(true), Some(&*key))
    );
    b.cut();
    s.wait_detached(&session).await;
    let (_c, w) = Client::resume_with_key(&s, "alice", &session, &key, 0).await;
    assert_eq!(w["resumed"], true);
    s.stop().await;
}

#[tokio::test]
async fn resume_ahead_of_the_session_is_refused_with_4000() {
    let s = start(config()).await;
    let a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    a.cut();
    s.wait_detached(&session).await;
    let mut c = Client::raw(&s).await;
    let key = key_of(&session);
    c.send(json!({"type":"hello","v":1,"user":"alice","resume":{"session":session,"key":key,"last_seq":9}}))
        .await;
    let (code, frames) = c.closed().await;
    assert_eq!(
        (code, frames[0]["code"].as_str()),
        (4000, Some("bad_request"))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_clean_close_ends_the_session_at_once() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    a.ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    s.wait_gone(&session).await;
    let (_a, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], false);
    s.stop().await;
}

#[tokio::test]
async fn a_close_with_another_code_keeps_the_session_resumable() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    a.ws.close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "tab hidden".into(),
    }))
    .await
    .unwrap();
    s.wait_detached(&session).await;
    let (_a, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], true);
    // A close without any code is not a clean end either.
    let b = Client::connect(&s, "bob").await;
    let session = b.session.clone();
    b.close().await;
    s.wait_detached(&session).await;
    let (_b, w) = Client::resume(&s, "bob", &session, 0).await;
    assert_eq!(w["resumed"], true);
    s.stop().await;
}

#[tokio::test]
async fn a_newer_connection_takes_over_the_session_and_the_old_gets_4009() {
    let s = start(config()).await;
    let mut old = Client::connect(&s, "alice").await;
    let session = old.session.clone();
    s.relay.send_to_user("alice", &1).unwrap();
    assert_eq!(old.message().await["seq"], 1);
    let (mut new, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], true);
    assert_eq!(old.closed().await.0, 4009);
    assert_eq!(
        new.message().await["seq"],
        1,
        "unacked message is redelivered"
    );
    s.relay.send_to_user("alice", &2).unwrap();
    assert_eq!(new.message().await["seq"], 2);
    let info = s.relay.sessions();
    assert_eq!(info.len(), 1);
    assert!(
        info[0].connected,
        "the old connection's end must not detach the new one"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed_with_4004() {
    let mut cfg = config();
    cfg.server.heartbeat_ms = 100;
    let s = start(cfg).await;
    let mut quiet = Client::connect(&s, "quiet").await;
    let session = quiet.session.clone();
    // Not reading means not answering pings: the server must give up.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(quiet.closed().await.0, 4004);
    s.wait_detached(&session).await;
    // The session stays resumable.
    let (_c, w) = Client::resume(&s, "quiet", &session, 0).await;
    assert_eq!(w["resumed"], true);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let mut cfg = config();
    cfg.server.heartbeat_ms = 50;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alive").await;
    // `silent` keeps reading, so tungstenite answers each ping.
    a.silent(400).await;
    assert_eq!(
        a.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    s.stop().await;
}

/// A client that stops reading: its socket fills, its writer blocks, and the
/// bytes queued for it stay over `limits.slow_consumer_bytes`.
#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_loses_nothing_on_resume() {
    let mut cfg = config();
    cfg.limits.slow_consumer_bytes = 64 << 10;
    cfg.limits.slow_consumer_ms = 200;
    cfg.session.outbox_messages = 100_000;
    cfg.session.outbox_bytes = 256 << 20;
    let s = start(cfg).await;
    let mut slow = Client::connect(&s, "slow").await;
    let mut other = Client::connect(&s, "other").await;
    let session = slow.session.clone();
    other.ok(json!({"type":"join","id":1,"group":"feed"})).await;
    let chunk = "x".repeat(16 << 10);
    let mut sent = 0u64;
    // Bounded: until the close, at most 4,000 messages (64 MB).
    while s.relay.stats().slow_consumers == 0 && sent < 4_000 {
        sent += 1;
        s.relay.send_to_user("slow", &json!([sent, chunk])).unwrap();
        if sent % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(s.relay.stats().slow_consumers, 1, "closed after {sent}");
    // Other clients are unaffected.
    s.relay.publish("feed", &"still here").unwrap();
    assert_eq!(other.message().await["data"], "still here");
    // What the slow reader finds in its socket ends with the 4008 close.
    let mut last = 0;
    let code = loop {
        match slow.next_frame().await {
            Frame::Text(m) => last = m["seq"].as_u64().unwrap(),
            Frame::Close(code) => break code,
        }
    };
    assert_eq!(code, 4008);
    s.wait_detached(&session).await;
    let (mut slow, w) = Client::resume(&s, "slow", &session, last).await;
    assert_eq!(w["resumed"], true);
    for i in last + 1..=sent {
        let m = slow.message().await;
        assert_eq!(
            (m["seq"].as_u64(), m["data"][0].as_u64()),
            (Some(i), Some(i))
        );
    }
    s.stop().await;
}

/// A publisher may send `limits.rate_burst` frames at once; members that
/// read as fast as they can get every message and are never closed.
#[tokio::test]
async fn a_publish_burst_does_not_close_members_that_keep_reading() {
    let s = start(config()).await;
    let mut members = Vec::new();
    for i in 0..3 {
        let mut m = Client::connect(&s, &format!("m{i}")).await;
        m.ok(json!({"type":"join","id":1,"group":"burst"})).await;
        members.push(m);
    }
    let mut publisher = Client::connect(&s, "publisher").await;
    for run in 0..3u64 {
        let frames: Vec<String> = (0..2_000)
            .map(|i| json!({"type":"publish","group":"burst","data":[run, i]}).to_string())
            .collect();
        publisher.send_all(&frames).await;
        for m in &mut members {
            for i in 0..2_000u64 {
                let f = m.message().await;
                assert_eq!(f["data"], json!([run, i]), "run {run}");
                assert_eq!(f["seq"], run * 2_000 + i + 1);
            }
            m.ack(run * 2_000 + 2_000).await;
        }
        // The rate budget refills before the next burst.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
    }
    assert_eq!(s.relay.stats().slow_consumers, 0);
    for m in &mut members {
        m.silent(50).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn dropped_messages_are_announced_with_a_gap_before_later_ones() {
    let mut cfg = config();
    cfg.session.outbox_messages = 4;
    let s = start(cfg).await;
    let a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    a.cut();
    s.wait_detached(&session).await;
    for i in 1..=10 {
        s.relay.send_to_user("alice", &i).unwrap();
    }
    assert_eq!(s.relay.stats().dropped, 6);
    let (mut a, _) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(
        a.recv().await,
        json!({"type":"gap","from_seq":1,"to_seq":6,"reason":"outbox_full"})
    );
    for i in 7..=10 {
        assert_eq!(a.message().await["seq"], i);
    }
    // An ack past the gap covers it: resuming again shows no gap.
    a.ack(10).await;
    a.cut();
    s.wait_detached(&session).await;
    let (mut a, _) = Client::resume(&s, "alice", &session, 10).await;
    a.silent(100).await;
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_delivers_queued_messages_then_closes_with_1001() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    a.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let relay = s.relay.clone();
    let addr = s.addr;
    for i in 0..100 {
        relay.publish("g", &i).unwrap();
    }
    let stop = tokio::spawn(s.stop());
    let (code, frames) = a.closed().await;
    assert_eq!(code, 1001);
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    stop.await.unwrap();
    // Nothing listens any more.
    assert!(tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .is_err());
}

#[tokio::test]
async fn resuming_with_a_backlog_larger_than_the_slow_consumer_bound_is_not_a_slow_consumer() {
    let mut cfg = config();
    cfg.limits.slow_consumer_bytes = 1 << 10;
    cfg.limits.slow_consumer_ms = 1_000;
    let s = start(cfg).await;
    let a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    a.cut();
    s.wait_detached(&session).await;
    for i in 1..=100 {
        s.relay.send_to_user("alice", &i).unwrap();
    }
    let (mut a, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], true);
    // New messages arrive while the backlog is being written.
    for i in 101..=110 {
        s.relay.send_to_user("alice", &i).unwrap();
    }
    for i in 1..=110 {
        assert_eq!(a.message().await["seq"], i);
    }
    assert_eq!(s.relay.stats().slow_consumers, 0);
    s.stop().await;
}
