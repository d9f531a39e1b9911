//! Presence (protocol §16a): user-level joins and leaves across tabs and
//! users, the `presence` query, throttled notices in large groups, its
//! permission, and the client engine's presence events.

mod common;

use std::time::Duration;

use common::{config, start, Client};
use serde_json::{json, Value};

/// The next frame that is a presence notice (skipping anything else).
async fn notice(c: &mut Client) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "presence_change" || f["type"] == "presence_summary" {
            return f;
        }
    }
}

/// Reads `presence_summary` notices until `done(joined, left)` holds for
/// their sums; returns the sums and the last `present`.
async fn summed(w: &mut Client, done: impl Fn(u64, u64) -> bool) -> (u64, u64, u64) {
    let (mut joined, mut left) = (0, 0);
    loop {
        let n = notice(w).await;
        assert_eq!(n["type"], "presence_summary", "{n}");
        assert_eq!(n["group"], "big");
        joined += n["joined"].as_u64().unwrap();
        left += n["left"].as_u64().unwrap();
        if done(joined, left) {
            return (joined, left, n["present"].as_u64().unwrap());
        }
    }
}

async fn join(c: &mut Client, group: &str, presence: bool) {
    c.ok(json!({"type":"join","id":"j","group":group,"presence":presence}))
        .await;
}

/// A close with 1000: the client is done with its session.
async fn close_clean(mut c: Client) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    c.ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .await
    .unwrap();
    while let Some(Ok(_)) = c.ws.next().await {}
}

#[tokio::test]
async fn a_user_joins_with_their_first_tab_and_leaves_with_their_last() {
    let s = start(config()).await;
    let mut w = Client::connect(&s, "watcher").await;
    join(&mut w, "room", true).await;
    let mut tab1 = Client::connect(&s, "alice").await;
    join(&mut tab1, "room", false).await;
    assert_eq!(
        notice(&mut w).await,
        json!({"type":"presence_change","group":"room","user":"alice","change":"join"})
    );
    // A second tab of the same user: no notice.
    let mut tab2 = Client::connect(&s, "alice").await;
    join(&mut tab2, "room", false).await;
    let mut bob = Client::connect(&s, "bob").await;
    join(&mut bob, "room", false).await;
    assert_eq!(notice(&mut w).await["user"], "bob");

    let list = w
        .request(json!({"type":"presence","id":9,"group":"room"}))
        .await;
    assert_eq!(
        list,
        json!({"type":"result","id":9,"data":{"group":"room","members":[
            {"user":"alice","sessions":2},{"user":"bob","sessions":1},{"user":"watcher","sessions":1}
        ],"anonymous":0}})
    );

    // One tab leaves, then the other ends its session: one leave.
    tab1.ok(json!({"type":"leave","id":1,"group":"room"})).await;
    close_clean(tab2).await;
    assert_eq!(
        notice(&mut w).await,
        json!({"type":"presence_change","group":"room","user":"alice","change":"leave"})
    );
    // Bob's connection drops: his session is resumable, so he is still present.
    let bob_session = bob.session.clone();
    bob.cut();
    s.wait_detached(&bob_session).await;
    w.silent(200).await;
    let users: Vec<Value> = s
        .relay
        .presence("room")
        .unwrap()
        .members
        .iter()
        .map(|m| json!(m.user))
        .collect();
    assert_eq!(users, [json!("bob"), json!("watcher")]);
    // The host ends his session: now he leaves.
    assert!(s.relay.disconnect(&bob_session));
    assert_eq!(
        notice(&mut w).await,
        json!({"type":"presence_change","group":"room","user":"bob","change":"leave"})
    );
    // A group nobody is in has no members, not an error.
    let empty = w
        .request(json!({"type":"presence","id":10,"group":"nowhere"}))
        .await;
    assert_eq!(
        empty["data"],
        json!({"group":"nowhere","members":[],"anonymous":0})
    );
    // A presence request needs an id; one without gets bad_request.
    w.send(json!({"type":"presence","group":"room"})).await;
    w.error("bad_request").await;
    s.stop().await;
}

#[tokio::test]
async fn large_groups_get_one_summary_per_interval_instead_of_a_notice_per_join() {
    let mut c = config();
    c.presence.max_notify_members = 3;
    c.presence.notify_ms = 200;
    let s = start(c).await;
    let mut w = Client::connect(&s, "watcher").await;
    join(&mut w, "big", true).await;
    let mut users = Vec::new();
    for i in 0..6 {
        let mut u = Client::connect(&s, &format!("u{i}")).await;
        join(&mut u, "big", false).await;
        users.push(u);
    }
    // Two notices while at most 3 are present (the watcher and u0, u1) ...
    assert_eq!(notice(&mut w).await["user"], "u0");
    assert_eq!(notice(&mut w).await["user"], "u1");
    // ... then summaries for the other four (one per presence.notify_ms:
    // usually one, two if an interval ended between the joins).
    let (joined, left, present) = summed(&mut w, |j, _| j == 4).await;
    assert_eq!((joined, left, present), (4, 0, 7));
    // Leaves are summed too.
    for u in users.drain(..2) {
        close_clean(u).await;
    }
    let (joined, left, present) = summed(&mut w, |_, l| l == 2).await;
    assert_eq!((joined, left, present), (0, 2, 5));
    w.silent(400).await;
    s.stop().await;
}

#[tokio::test]
async fn presence_needs_its_permission_once_roles_are_configured() {
    let mut c = config();
    c.auth.tokens = [
        ("t-member".to_owned(), "alice".to_owned()),
        ("t-mod".to_owned(), "mod".to_owned()),
    ]
    .into();
    let member = zerorelay::config::RoleConfig {
        allow: vec!["join:room-*".into()],
    };
    let moderator = zerorelay::config::RoleConfig {
        allow: vec!["join:room-*".into(), "presence:room-*".into()],
    };
    c.auth.roles = [
        ("member".to_owned(), member),
        ("moderator".to_owned(), moderator),
    ]
    .into();
    c.auth.default_roles = vec!["member".into()];
    let s = start(c).await;
    let mut a = Client::raw(&s).await;
    assert_eq!(
        a.hello(json!({"type":"hello","v":1,"token":"t-member"}))
            .await["type"],
        "welcome"
    );
    a.send(json!({"type":"join","id":1,"group":"room-1","presence":true}))
        .await;
    let e = a.error("forbidden").await;
    assert!(e["message"].as_str().unwrap().contains("presence"), "{e}");
    a.send(json!({"type":"presence","id":2,"group":"room-1"}))
        .await;
    a.error("forbidden").await;
    // Joining without notices is still allowed.
    a.ok(json!({"type":"join","id":3,"group":"room-1"})).await;
    s.stop().await;
}

#[tokio::test]
async fn the_client_engine_reports_presence_and_answers_the_query() {
    use zerorelay::client::{Client as Engine, ClientOptions, Event};
    let s = start(config()).await;
    let opts = |user: &str| ClientOptions {
        user: Some(user.into()),
        ..ClientOptions::default()
    };
    let (w, mut events) = Engine::connect(&s.url(), opts("watcher")).await.unwrap();
    w.join_with_presence("room").await.unwrap();
    let (a, _a_events) = Engine::connect(&s.url(), opts("alice")).await.unwrap();
    a.join("room").await.unwrap();
    let change = loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::PresenceChange(_) = e {
            break e;
        }
    };
    assert_eq!(
        serde_json::to_value(&change).unwrap(),
        json!({"type":"presence_change","group":"room","user":"alice","change":"join"})
    );
    let list = a.presence("room").await.unwrap();
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
    assert_eq!(list["members"][0], json!({"user":"alice","sessions":1}));
    w.close().await;
    a.close().await;
    s.stop().await;
}
