//! Direct, group and broadcast routing, RPC, and the request/reply rules.

mod common;

use common::{config, start, start_with, Client};
use serde_json::{json, Value};
use zerorelay::{ErrorCode, ProtocolError, Relay};

#[tokio::test]
async fn send_to_user_reaches_every_session_of_the_user_but_the_senders_own() {
    let s = start(config()).await;
    let mut a1 = Client::connect(&s, "alice").await;
    let mut a2 = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    b.ok(json!({"type":"send","id":1,"to":"alice","data":{"hi":"alice"}}))
        .await;
    for a in [&mut a1, &mut a2] {
        let m = a.message().await;
        assert_eq!(m["kind"], "direct");
        assert_eq!(m["from"], "bob");
        assert_eq!(m["from_session"], json!(b.session));
        assert_eq!(m["data"], json!({"hi":"alice"}));
        assert_eq!(m["seq"], 1);
        assert!(m.get("group").is_none());
        assert!(m["ts"].as_u64().unwrap() > 1_600_000_000_000);
    }
    // alice to alice: the other alice session only.
    a1.ok(json!({"type":"send","id":"x","to":"alice","data":1}))
        .await;
    assert_eq!(a2.message().await["data"], 1);
    a1.silent(100).await;
    s.stop().await;
}

#[tokio::test]
async fn send_to_a_session_reaches_exactly_it_even_the_senders_own() {
    let s = start(config()).await;
    let mut a1 = Client::connect(&s, "alice").await;
    let mut a2 = Client::connect(&s, "alice").await;
    let target = a2.session.clone();
    a1.ok(json!({"type":"send","id":1,"session":target,"data":"one"}))
        .await;
    assert_eq!(a2.message().await["data"], "one");
    let own = a1.session.clone();
    a1.send(json!({"type":"send","id":2,"session":own,"data":"self"}))
        .await;
    // The ok and the delivery may come in either order.
    let mut got = [a1.recv().await, a1.recv().await];
    got.sort_by_key(|v| v["type"].as_str().unwrap().to_owned());
    assert_eq!(got[0]["data"], "self");
    assert_eq!(got[1], json!({"type":"ok","id":2}));
    s.stop().await;
}

#[tokio::test]
async fn unknown_user_and_session_are_not_found() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let e = a
        .request(json!({"type":"send","id":7,"to":"nobody","data":1}))
        .await;
    assert_eq!(
        (e["code"].as_str(), &e["id"]),
        (Some("not_found"), &json!(7))
    );
    let e = a
        .request(json!({"type":"send","id":8,"session":"s_0000","data":1}))
        .await;
    assert_eq!(e["code"], "not_found");
    // Without an id the failure is still reported, without an id.
    a.send(json!({"type":"send","to":"nobody","data":1})).await;
    let e = a.error("not_found").await;
    assert!(e.get("id").is_none());
    s.stop().await;
}

#[tokio::test]
async fn requests_without_id_get_no_ok() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    b.send(json!({"type":"join","group":"g"})).await;
    b.send(json!({"type":"send","to":"alice","data":"quiet"}))
        .await;
    assert_eq!(a.message().await["data"], "quiet");
    a.send(json!({"type":"publish","group":"g","data":2})).await;
    assert_eq!(b.message().await["data"], 2);
    b.silent(100).await;
    a.silent(50).await;
    s.stop().await;
}

#[tokio::test]
async fn publish_reaches_members_only_and_echo_is_opt_in() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    let mut c = Client::connect(&s, "carol").await;
    a.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    b.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    // Joining twice is fine.
    b.ok(json!({"type":"join","id":2,"group":"room-1"})).await;
    a.ok(json!({"type":"publish","id":2,"group":"room-1","data":{"n":1}}))
        .await;
    let m = b.message().await;
    assert_eq!(
        (m["kind"].as_str(), m["group"].as_str(), m["from"].as_str()),
        (Some("group"), Some("room-1"), Some("alice"))
    );
    a.silent(100).await;
    c.silent(0).await;
    // A non-member may publish; echo delivers to the publisher too.
    c.ok(json!({"type":"publish","id":3,"group":"room-1","data":"from carol"}))
        .await;
    assert_eq!(a.message().await["data"], "from carol");
    assert_eq!(b.message().await["data"], "from carol");
    a.send(json!({"type":"publish","id":4,"group":"room-1","data":"echo","echo":true}))
        .await;
    let mut got = [a.recv().await, a.recv().await];
    got.sort_by_key(|v| v["type"].as_str().unwrap().to_owned());
    assert_eq!(got[0]["data"], "echo");
    assert_eq!(b.message().await["data"], "echo");
    // Leaving stops deliveries; leaving again is fine.
    b.ok(json!({"type":"leave","id":5,"group":"room-1"})).await;
    b.ok(json!({"type":"leave","id":6,"group":"room-1"})).await;
    c.ok(json!({"type":"publish","id":7,"group":"room-1","data":"after"}))
        .await;
    assert_eq!(a.message().await["data"], "after");
    b.silent(100).await;
    assert_eq!(
        s.relay.groups(),
        vec![zerorelay::GroupInfo {
            name: "room-1".into(),
            members: 1
        }]
    );
    s.stop().await;
}

#[tokio::test]
async fn broadcast_reaches_everyone_but_the_sender_unless_echo() {
    let mut cfg = config();
    cfg.features.client_broadcast = true;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    let mut anon = Client::raw(&s).await;
    anon.hello(json!({"type":"hello","v":1})).await;
    a.ok(json!({"type":"broadcast","id":1,"data":"all"})).await;
    for c in [&mut b, &mut anon] {
        let m = c.message().await;
        assert_eq!(
            (m["kind"].as_str(), m["data"].as_str()),
            (Some("broadcast"), Some("all"))
        );
    }
    a.silent(100).await;
    anon.ok(json!({"type":"broadcast","id":2,"data":"anon","echo":true}))
        .await;
    let m = anon.message().await;
    assert_eq!(m["from"], json!(null));
    assert_eq!(a.message().await["data"], "anon");
    s.stop().await;
}

#[tokio::test]
async fn client_broadcast_is_off_by_default_and_send_to_session_can_be_disabled() {
    let mut cfg = config();
    cfg.features.send_to_session = false;
    let s = start(cfg).await;
    let mut a = Client::connect(&s, "alice").await;
    let e = a.request(json!({"type":"broadcast","id":1,"data":1})).await;
    assert_eq!(e["code"], "forbidden");
    let own = a.session.clone();
    let e = a
        .request(json!({"type":"send","id":2,"session":own,"data":1}))
        .await;
    assert_eq!(e["code"], "forbidden");
    // The host may still broadcast.
    assert_eq!(s.relay.broadcast(&"host").unwrap(), 1);
    assert_eq!(a.message().await["data"], "host");
    s.stop().await;
}

#[tokio::test]
async fn seqs_are_contiguous_and_one_senders_order_is_kept() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut b = Client::connect(&s, "bob").await;
    b.ok(json!({"type":"join","id":0,"group":"g"})).await;
    for i in 0..200 {
        a.send(json!({"type":"publish","group":"g","data":i})).await;
        if i % 50 == 0 {
            s.relay.send_to_user("bob", &json!({"host": i})).unwrap();
        }
    }
    let mut seq = 0;
    let mut last = -1;
    for _ in 0..204 {
        let m = b.message().await;
        seq += 1;
        assert_eq!(m["seq"], seq);
        if let Some(i) = m["data"].as_i64() {
            assert_eq!(i, last + 1);
            last = i;
        }
    }
    assert_eq!(last, 199);
    s.stop().await;
}

#[tokio::test]
async fn ping_is_answered_with_pong_echoing_the_id() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    assert_eq!(
        a.request(json!({"type":"ping","id":"p"})).await,
        json!({"type":"pong","id":"p"})
    );
    assert_eq!(
        a.request(json!({"type":"ping"})).await,
        json!({"type":"pong"})
    );
    s.stop().await;
}

#[tokio::test]
async fn string_and_integer_ids_are_echoed_as_sent() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let long = "x".repeat(64);
    for id in [
        json!(0),
        json!(-5),
        json!(i64::MAX),
        json!("1"),
        json!(long),
    ] {
        a.ok(json!({"type":"join","id":id,"group":"g"})).await;
    }
    s.stop().await;
}

fn rpc_relay() -> zerorelay::RelayBuilder {
    Relay::builder(config())
        .rpc("echo", |ctx, data| async move {
            Ok(json!({"data": data, "user": ctx.user, "session": ctx.session}))
        })
        .rpc("fail", |_, _| async move {
            Err(ProtocolError::new(ErrorCode::Forbidden, "not for you"))
        })
        .rpc("count", {
            let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            move |_, _| {
                let n = n.clone();
                async move {
                    Ok(json!(
                        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
                    ))
                }
            }
        })
        .rpc("panic", |_, _| async move {
            if true {
                panic!("handler bug");
            }
            Ok(Value::Null)
        })
}

#[tokio::test]
async fn rpc_returns_the_handler_result_or_its_error() {
    let s = start_with(rpc_relay()).await;
    let mut a = Client::connect(&s, "alice").await;
    let r = a
        .request(json!({"type":"rpc","id":1,"method":"echo","data":[1,2]}))
        .await;
    assert_eq!(
        r,
        json!({"type":"result","id":1,"data":{"data":[1,2],"user":"alice","session":a.session}})
    );
    let r = a
        .request(json!({"type":"rpc","id":2,"method":"echo"}))
        .await;
    assert_eq!(r["data"]["data"], json!(null));
    let e = a
        .request(json!({"type":"rpc","id":3,"method":"fail"}))
        .await;
    assert_eq!(
        e,
        json!({"type":"error","id":3,"code":"forbidden","message":"not for you"})
    );
    let e = a
        .request(json!({"type":"rpc","id":4,"method":"nope"}))
        .await;
    assert_eq!(
        (e["code"].as_str(), &e["id"]),
        (Some("not_found"), &json!(4))
    );
    let e = a
        .request(json!({"type":"rpc","id":5,"method":"panic"}))
        .await;
    assert_eq!(e["code"], "internal");
    // The connection survives a panicking handler.
    let r = a
        .request(json!({"type":"rpc","id":6,"method":"count"}))
        .await;
    assert_eq!(r["data"], 1);
    s.stop().await;
}

#[tokio::test]
async fn a_repeated_rpc_id_is_answered_from_memory_without_calling_again() {
    let s = start_with(rpc_relay()).await;
    let mut a = Client::connect(&s, "alice").await;
    let first = a
        .request(json!({"type":"rpc","id":"c1","method":"count"}))
        .await;
    let again = a
        .request(json!({"type":"rpc","id":"c1","method":"count"}))
        .await;
    assert_eq!(first, again);
    let next = a
        .request(json!({"type":"rpc","id":"c2","method":"count"}))
        .await;
    assert_eq!(next["data"], 2);
    s.stop().await;
}

#[tokio::test]
async fn a_custom_authorizer_can_forbid_actions() {
    use zerorelay::auth::{Action, AuthRequest, Authenticator, BoxFuture};
    use zerorelay::Identity;
    struct AdminsOnly;
    impl Authenticator for AdminsOnly {
        fn authenticate<'a>(
            &'a self,
            r: AuthRequest<'a>,
        ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
            let user = r.user.map(str::to_owned);
            Box::pin(async move {
                Ok(Identity {
                    user,
                    ..Identity::default()
                })
            })
        }
        fn authorize(&self, who: &Identity, action: &Action<'_>) -> Result<(), ProtocolError> {
            let admin = who.user.as_deref() == Some("root");
            match action {
                Action::Join { group } | Action::Publish { group }
                    if group.starts_with("admin/") && !admin =>
                {
                    Err(ProtocolError::new(ErrorCode::Forbidden, "admins only"))
                }
                _ => Ok(()),
            }
        }
    }
    let s = start_with(Relay::builder(config()).authenticator(AdminsOnly)).await;
    let mut a = Client::connect(&s, "alice").await;
    let mut root = Client::connect(&s, "root").await;
    let e = a
        .request(json!({"type":"join","id":1,"group":"admin/ops"}))
        .await;
    assert_eq!(e["code"], "forbidden");
    root.ok(json!({"type":"join","id":1,"group":"admin/ops"}))
        .await;
    let e = a
        .request(json!({"type":"publish","id":2,"group":"admin/ops","data":1}))
        .await;
    assert_eq!(e["code"], "forbidden");
    root.silent(100).await;
    s.stop().await;
}

#[tokio::test]
async fn host_api_publishes_sends_and_lists() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    a.ok(json!({"type":"join","id":1,"group":"news"})).await;
    assert_eq!(s.relay.publish("news", &json!({"h":1})).unwrap(), 1);
    let m = a.message().await;
    assert_eq!(
        (
            m["from"].clone(),
            m["from_session"].clone(),
            m["group"].as_str()
        ),
        (json!(null), json!(null), Some("news"))
    );
    assert_eq!(s.relay.send_to_user("alice", &"direct").unwrap(), 1);
    assert_eq!(a.message().await["data"], "direct");
    s.relay.send_to_session(&a.session, &"mine").unwrap();
    assert_eq!(a.message().await["data"], "mine");
    assert_eq!(
        s.relay.send_to_user("ghost", &1).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        s.relay.send_to_session("s_ghost", &1).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        s.relay.publish("bad name", &1).unwrap_err().code(),
        ErrorCode::BadRequest
    );
    let sessions = s.relay.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].user.as_deref(), Some("alice"));
    assert_eq!(sessions[0].groups, vec!["news".to_owned()]);
    assert!(sessions[0].connected);
    assert_eq!(sessions[0].last_seq, 3);
    assert_eq!(sessions[0].unacked, 3);
    a.ack(3).await;
    let pong = a.request(json!({"type":"ping","id":1})).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(s.relay.sessions()[0].unacked, 0);
    let stats = s.relay.stats();
    assert_eq!(
        (stats.sessions, stats.deliveries, stats.connections_open),
        (1, 3, 1)
    );
    s.stop().await;
}

#[tokio::test]
async fn host_disconnect_ends_the_session_with_4005() {
    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    let session = a.session.clone();
    assert!(s.relay.disconnect(&session));
    assert_eq!(a.closed().await.0, 4005);
    assert!(s.relay.sessions().is_empty());
    let (_c, w) = Client::resume(&s, "alice", &session, 0).await;
    assert_eq!(w["resumed"], false);
    assert!(!s.relay.disconnect("s_nope"));
    s.stop().await;
}

/// The relay writes deliveries itself and leaves pongs to tungstenite: a
/// client pinging while a stream of deliveries (small and large) arrives
/// gets every pong and every message intact, in order.
#[tokio::test]
async fn pongs_and_a_stream_of_deliveries_do_not_interleave() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let s = start(config()).await;
    let mut c = Client::connect(&s, "alice").await;
    c.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let relay = s.relay.clone();
    let publisher = tokio::spawn(async move {
        for n in 0..400u32 {
            // Every tenth message is over 64 KiB (an 8-byte length header).
            let pad = if n % 10 == 0 { 70_000 } else { 10 };
            relay
                .publish("g", &json!({"n": n, "pad": "x".repeat(pad)}))
                .expect("published");
            if n % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let (mut pings, mut pongs, mut next) = (0u32, 0u32, 0u64);
    while next < 400 {
        if pings < 50 {
            pings += 1;
            c.ws.send(Message::Ping(pings.to_be_bytes().to_vec().into()))
                .await
                .expect("ping sent");
        }
        let m = tokio::time::timeout(common::WAIT, c.ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("a valid frame");
        match m {
            Message::Pong(p) => {
                pongs += 1;
                assert_eq!(&p[..], &pongs.to_be_bytes()[..], "pongs in order");
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("intact JSON");
                assert_eq!(v["data"]["n"], next, "deliveries in order");
                next += 1;
            }
            Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    publisher.await.expect("publisher");
    while pongs < pings {
        match tokio::time::timeout(common::WAIT, c.ws.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
            Ok(Some(Ok(_))) => {}
            other => panic!("want the remaining pongs, got {other:?}"),
        }
    }
    s.stop().await;
}
