//! The Rust client (engine + tokio driver) against a real relay.
#![cfg(feature = "client")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::proxy::Proxy;
use common::{config, start};
use serde_json::{json, Value};
use zerorelay::client::{Client, ClientError, ClientOptions, Event, Events, FullPolicy, Status};
use zerorelay::ErrorCode;

fn opts(user: &str) -> ClientOptions {
    let mut o = ClientOptions {
        user: Some(user.into()),
        seed: Some(7),
        ..ClientOptions::default()
    };
    o.reconnect.base_ms = 20;
    o.reconnect.cap_ms = 200;
    o.connect_timeout_ms = 5_000;
    o
}

/// The next message event, skipping lifecycle events.
async fn next_message(ev: &mut Events) -> zerorelay::protocol::server::MessageFrame {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.recv())
            .await
            .expect("an event in time")
        {
            Some(Event::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("events ended"),
        }
    }
}

/// Waits for an event matching `f`, returning it.
async fn wait_for(ev: &mut Events, f: impl Fn(&Event) -> bool) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), ev.recv())
            .await
            .expect("an event in time")
            .expect("events open");
        if f(&e) {
            return e;
        }
    }
}

fn data(m: &zerorelay::protocol::server::MessageFrame) -> Value {
    serde_json::from_str(m.data.get()).unwrap()
}

#[tokio::test]
async fn clients_exchange_direct_group_broadcast_and_rpc() {
    let mut cfg = config();
    cfg.features.client_broadcast = true;
    let s = common::start_with(
        zerorelay::Relay::builder(cfg).rpc("add", |_, v| async move {
            Ok(json!(
                v[0].as_i64().unwrap_or(0) + v[1].as_i64().unwrap_or(0)
            ))
        }),
    )
    .await;
    let (alice, mut aev) = Client::connect(&s.url(), opts("alice")).await.unwrap();
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    assert!(matches!(alice.status(), Status::Connected(_)));
    bob.join("room").await.unwrap();
    alice.publish("room", &json!({"n": 1})).await.unwrap();
    let m = next_message(&mut bev).await;
    assert_eq!(
        (m.from.as_deref(), m.group.as_deref(), data(&m)),
        (Some("alice"), Some("room"), json!({"n": 1}))
    );
    bob.send_to_user("alice", &"direct").await.unwrap();
    assert_eq!(data(&next_message(&mut aev).await), json!("direct"));
    alice.broadcast(&"all").await.unwrap();
    assert_eq!(data(&next_message(&mut bev).await), json!("all"));
    assert_eq!(alice.rpc("add", &json!([2, 3])).await.unwrap(), json!(5));
    let e = alice.send_to_user("nobody", &1).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Server {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        alice.rpc("nope", &()).await.unwrap_err().code(),
        "not_found"
    );
    let e = alice.join("bad name").await.unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    alice.close().await;
    bob.close().await;
    s.stop().await;
}

#[tokio::test]
async fn closing_ends_the_event_stream_and_the_session() {
    let s = start(config()).await;
    let (c, mut ev) = Client::connect(&s.url(), opts("alice")).await.unwrap();
    assert_eq!(s.relay.sessions().len(), 1);
    c.close().await;
    let mut saw_closed = false;
    while let Some(e) = tokio::time::timeout(Duration::from_secs(5), ev.recv())
        .await
        .unwrap()
    {
        saw_closed |= matches!(e, Event::Closed { .. });
    }
    assert!(saw_closed);
    assert_eq!(c.join("g").await.unwrap_err(), ClientError::Closed);
    s.wait_gone(
        &s.relay
            .sessions()
            .first()
            .map(|x| x.id.clone())
            .unwrap_or_default(),
    )
    .await;
    assert!(
        s.relay.sessions().is_empty(),
        "a clean close ends the session"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_and_nothing_is_lost_or_repeated() {
    let s = start(config()).await;
    let (c, mut ev) = Client::connect(&s.url(), opts("alice")).await.unwrap();
    c.join("feed").await.unwrap();
    s.relay.publish("feed", &1).unwrap();
    assert_eq!(data(&next_message(&mut ev).await), json!(1));
    let session = s.relay.sessions()[0].id.clone();
    assert!(s.relay.drop_connection(&session));
    // Published while the client is away or reconnecting.
    for i in 2..=5 {
        s.relay.publish("feed", &i).unwrap();
    }
    let mut got = vec![];
    while got.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(10), ev.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Message(m) => got.push((m.seq, data(&m))),
            Event::Connected {
                resumed,
                session: sid,
                ..
            } => {
                assert!(resumed);
                assert_eq!(sid, session);
            }
            _ => {}
        }
    }
    assert_eq!(got, (2..=5).map(|i| (i, json!(i))).collect::<Vec<_>>());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next_message(&mut ev))
            .await
            .is_err()
    );
    c.close().await;
    s.stop().await;
}

#[tokio::test]
async fn an_auth_refusal_fails_connect_with_the_servers_reason() {
    let mut cfg = config();
    cfg.auth.tokens.insert("good".into(), "alice".into());
    let s = start(cfg).await;
    let mut o = opts("alice");
    o.token = Some("bad".into());
    let e = Client::connect(&s.url(), o).await.unwrap_err();
    assert!(
        matches!(
            &e,
            ClientError::Server {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.code(), "unauthorized");
    let mut o = opts("ignored");
    o.token = Some("good".into());
    let (c, mut ev) = Client::connect(&s.url(), o).await.unwrap();
    let e = wait_for(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
    assert!(matches!(e, Event::Connected { user: Some(u), .. } if u == "alice"));
    c.close().await;
    s.stop().await;
}

#[tokio::test]
async fn a_token_provider_is_asked_on_every_connection() {
    let mut cfg = config();
    cfg.auth.tokens.insert("t1".into(), "alice".into());
    cfg.auth.tokens.insert("t2".into(), "alice".into());
    let s = start(cfg).await;
    let asked = Arc::new(AtomicU32::new(0));
    let a = asked.clone();
    let provider: zerorelay::client::TokenProvider = Arc::new(move || {
        let n = a.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { Ok((format!("t{}", n.min(2)), None)) })
    });
    let (c, mut ev) = Client::connect_with(&s.url(), opts("alice"), Some(provider))
        .await
        .unwrap();
    let session = s.relay.sessions()[0].id.clone();
    s.relay.drop_connection(&session);
    wait_for(&mut ev, |e| {
        matches!(e, Event::Connected { resumed: true, .. })
    })
    .await;
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    c.close().await;
    s.stop().await;
}

#[tokio::test]
async fn requests_made_while_offline_are_queued_and_flushed_on_reconnect() {
    let s = start(config()).await;
    let proxy = Proxy::start(s.addr).await;
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    bob.join("g").await.unwrap();
    let (alice, mut aev) = Client::connect(&proxy.url(), opts("alice")).await.unwrap();
    proxy.down();
    wait_for(&mut aev, |e| {
        matches!(
            e,
            Event::Disconnected {
                will_retry: true,
                ..
            }
        )
    })
    .await;
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let a = alice.clone();
            tokio::spawn(async move { a.publish("g", &i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), next_message(&mut bev))
            .await
            .is_err(),
        "nothing while offline"
    );
    proxy.up();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    let mut got: Vec<i64> = vec![];
    for _ in 0..20 {
        got.push(data(&next_message(&mut bev).await).as_i64().unwrap());
    }
    got.sort();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    alice.close().await;
    bob.close().await;
    s.stop().await;
}

#[tokio::test]
async fn a_full_offline_queue_fails_fast_or_drops_the_oldest() {
    let s = start(config()).await;
    let proxy = Proxy::start(s.addr).await;
    let mut o = opts("alice");
    o.queue.max_messages = 2;
    let (c, mut ev) = Client::connect(&proxy.url(), o.clone()).await.unwrap();
    proxy.down();
    wait_for(&mut ev, |e| matches!(e, Event::Disconnected { .. })).await;
    let c1 = c.clone();
    let first = tokio::spawn(async move { c1.join("a").await });
    let c2 = c.clone();
    let second = tokio::spawn(async move { c2.join("b").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.join("c").await.unwrap_err(), ClientError::QueueFull);
    proxy.up();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    c.close().await;

    o.queue.full = FullPolicy::DropOldest;
    let (c, mut ev) = Client::connect(&proxy.url(), o).await.unwrap();
    proxy.down();
    wait_for(&mut ev, |e| matches!(e, Event::Disconnected { .. })).await;
    let c1 = c.clone();
    let oldest = tokio::spawn(async move { c1.join("a").await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c2 = c.clone();
    let kept = tokio::spawn(async move { c2.join("b").await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c3 = c.clone();
    let newest = tokio::spawn(async move { c3.join("c").await });
    assert_eq!(
        oldest.await.unwrap().unwrap_err(),
        ClientError::QueueFull,
        "the caller learns of the drop"
    );
    proxy.up();
    kept.await.unwrap().unwrap();
    newest.await.unwrap().unwrap();
    c.close().await;
    s.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_request_means_it_is_never_sent() {
    let s = start(config()).await;
    let proxy = Proxy::start(s.addr).await;
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    let (alice, mut aev) = Client::connect(&proxy.url(), opts("alice")).await.unwrap();
    proxy.down();
    wait_for(&mut aev, |e| matches!(e, Event::Disconnected { .. })).await;
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        alice.send_to_user("bob", &"cancelled"),
    )
    .await;
    assert!(cancelled.is_err(), "still queued when the caller gave up");
    let a = alice.clone();
    let kept = tokio::spawn(async move { a.send_to_user("bob", &"kept").await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    proxy.up();
    kept.await.unwrap().unwrap();
    assert_eq!(data(&next_message(&mut bev).await), json!("kept"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next_message(&mut bev))
            .await
            .is_err()
    );
    alice.close().await;
    bob.close().await;
    s.stop().await;
}

#[tokio::test]
async fn an_expired_session_is_replaced_and_groups_are_rejoined() {
    let mut cfg = config();
    cfg.session.ttl_ms = 100;
    let s = start(cfg).await;
    let proxy = Proxy::start(s.addr).await;
    let (c, mut ev) = Client::connect(&proxy.url(), opts("alice")).await.unwrap();
    c.join("room").await.unwrap();
    let old = s.relay.sessions()[0].id.clone();
    proxy.down();
    s.wait_gone(&old).await;
    proxy.up();
    let e = wait_for(&mut ev, |e| {
        matches!(
            e,
            Event::Connected {
                lost_session: Some(_),
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(&e, Event::Connected { resumed: false, lost_session: Some(l), .. } if *l == old),
        "{e:?}"
    );
    let e = wait_for(&mut ev, |e| matches!(e, Event::Rejoined { .. })).await;
    assert!(matches!(&e, Event::Rejoined { groups } if groups == &["room".to_owned()]));
    // The re-join reaches the server.
    for _ in 0..200 {
        if s.relay.groups().iter().any(|g| g.name == "room") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.relay.publish("room", &"after").unwrap();
    let m = next_message(&mut ev).await;
    assert_eq!((m.seq, data(&m)), (1, json!("after")));
    c.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_sends_what_it_accepted_while_offline() {
    let s = start(config()).await;
    let proxy = Proxy::start(s.addr).await;
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    let dir = std::env::temp_dir().join(format!("zerorelay-persist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("alice.json");
    let mut o = opts("alice");
    o.persist_path = Some(path.to_str().unwrap().to_owned());
    let url = proxy.url();

    // The first process: connects, goes offline, accepts two sends, dies.
    let (o1, url1, p1) = (o.clone(), url.clone(), proxy.clone());
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (alice, mut ev) = Client::connect(&url1, o1).await.unwrap();
            p1.down();
            wait_for(&mut ev, |e| matches!(e, Event::Disconnected { .. })).await;
            for text in ["one", "two"] {
                let a = alice.clone();
                tokio::spawn(async move { a.send_to_user("bob", &text).await });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        // Dropping the runtime kills the driver mid-flight, like a crash.
    })
    .await
    .unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(saved["pending"].as_array().unwrap().len(), 2);
    // The session can be resumed only with its key, so the file keeps it.
    let key = saved["resume_key"]
        .as_str()
        .expect("the state file keeps the resume key");
    assert!(
        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the key: {mode:o}");
    }

    // The second process starts from the file.
    proxy.up();
    let (alice, mut ev) = Client::connect(&url, o).await.unwrap();
    let e = wait_for(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
    assert!(
        matches!(e, Event::Connected { resumed: true, .. }),
        "the persisted session resumes: {e:?}"
    );
    let got: Vec<Value> = vec![
        data(&next_message(&mut bev).await),
        data(&next_message(&mut bev).await),
    ];
    assert_eq!(got, [json!("one"), json!("two")]);
    alice.close().await;
    assert!(!path.exists(), "a clean close removes the state file");
    bob.close().await;
    std::fs::remove_dir_all(dir).unwrap();
    s.stop().await;
}

/// Several clients exchange thousands of messages while the network is cut,
/// stalled and delayed at random: every message arrives exactly once, in
/// each sender's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_loss_no_duplicates_and_order_kept_under_random_faults() {
    const CLIENTS: usize = 3;
    const PER_CLIENT: i64 = 1_000;
    let s = start(config()).await;
    let proxy = Proxy::start(s.addr).await;
    let mut clients = vec![];
    for i in 0..CLIENTS {
        let (c, ev) = Client::connect(&proxy.url(), opts(&format!("user{i}")))
            .await
            .unwrap();
        c.join("room").await.unwrap();
        clients.push((c, ev));
    }
    // Faults: bounded in count and time.
    let chaos = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let mut rng = zerorelay::client::backoff::Rng::seeded(2026);
            for round in 0..30u64 {
                tokio::time::sleep(Duration::from_millis(20 + rng.below_or_eq(80))).await;
                match round % 5 {
                    0..=2 => proxy.cut(),
                    3 => {
                        proxy.stall(true);
                        tokio::time::sleep(Duration::from_millis(rng.below_or_eq(150))).await;
                        proxy.stall(false);
                    }
                    _ => {
                        proxy.delay(rng.below_or_eq(20));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        proxy.delay(0);
                    }
                }
            }
        })
    };
    let mut tasks = vec![];
    for (i, (c, mut ev)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let sender = {
                let c = c.clone();
                tokio::spawn(async move {
                    for n in 0..PER_CLIENT {
                        // In windows of 25 concurrent publishes.
                        if n % 25 == 0 {
                            tokio::task::yield_now().await;
                        }
                        c.publish("room", &json!({"from": i, "n": n}))
                            .await
                            .unwrap();
                    }
                })
            };
            let mut next: HashMap<i64, i64> = HashMap::new();
            let expected = (CLIENTS as i64 - 1) * PER_CLIENT;
            let mut got = 0;
            let mut last_seq = 0;
            while got < expected {
                let e = tokio::time::timeout(Duration::from_secs(30), ev.recv())
                    .await
                    .expect("progress within 30 s")
                    .expect("events open");
                match e {
                    Event::Message(m) => {
                        assert!(m.seq > last_seq, "seq order");
                        last_seq = m.seq;
                        let d = data(&m);
                        let (from, n) = (d["from"].as_i64().unwrap(), d["n"].as_i64().unwrap());
                        assert_ne!(from, i as i64, "no echo");
                        let want = next.entry(from).or_insert(0);
                        assert_eq!(n, *want, "client {i}: from {from} expected {want}, got {n}");
                        *want += 1;
                        got += 1;
                    }
                    Event::Loss { .. } => panic!("client {i}: loss reported"),
                    _ => {}
                }
            }
            sender.await.unwrap();
            (c, got)
        }));
    }
    let mut done = vec![];
    for t in tasks {
        done.push(t.await.unwrap());
    }
    chaos.await.unwrap();
    assert!(
        proxy.connections() > CLIENTS as u64,
        "the faults forced reconnects"
    );
    for (c, got) in done {
        assert_eq!(got, (CLIENTS as i64 - 1) * PER_CLIENT);
        c.close().await;
    }
    assert_eq!(s.relay.stats().dropped, 0);
    s.stop().await;
}

/// A relay behind TLS terminated by the host app, with a certificate made
/// now; the client trusts it through `ca_file`.
#[tokio::test]
async fn wss_with_a_self_signed_certificate_and_an_extra_ca() {
    use tokio_rustls::rustls;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("zerorelay-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();

    let relay = zerorelay::Relay::builder(config()).build().unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = relay.clone();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let (acceptor, r) = (acceptor.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(tls, Some(r.websocket_config()))
                        .await
                else {
                    return;
                };
                r.accept_websocket(ws, Some(peer)).await;
            });
        }
    });
    let url = format!("wss://localhost:{port}/ws");

    // Without the extra CA the certificate is not trusted.
    let mut o = opts("alice");
    o.reconnect.max_attempts = Some(0);
    let e = Client::connect(&url, o.clone()).await.unwrap_err();
    assert_eq!(e.code(), "connection", "{e}");

    o.ca_file = Some(ca.to_str().unwrap().to_owned());
    o.headers.insert("x-app".into(), "test".into());
    let (c, _ev) = Client::connect(&url, o).await.unwrap();
    c.join("secure").await.unwrap();
    assert_eq!(relay.groups()[0].name, "secure");
    c.close().await;

    // A CA file that is not a certificate is refused up front.
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut o = opts("alice");
    o.ca_file = Some(bad.to_str().unwrap().to_owned());
    assert_eq!(
        Client::connect(&url, o).await.unwrap_err().code(),
        "invalid_argument"
    );
    relay.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_urls_and_options_are_refused_with_a_clear_error() {
    for url in ["http://127.0.0.1:1/ws", "not a url", ""] {
        let e = Client::connect(url, opts("a")).await.unwrap_err();
        assert_eq!(e.code(), "invalid_argument", "{url}: {e}");
    }
    assert!(ClientOptions::from_json(r#"{"reconect":{}}"#)
        .unwrap_err()
        .to_string()
        .contains("reconect"));
    assert!(ClientOptions::from_json(r#"{"ack":{"batch":0}}"#)
        .unwrap_err()
        .to_string()
        .contains("ack.batch"));
    assert!(ClientOptions::from_json(r#"{"user":"a b"}"#).is_err());
    // Absurd durations are refused by name instead of overflowing a timer.
    for (json, key) in [
        (
            r#"{"request_timeout_ms":18446744073709551615}"#,
            "request_timeout_ms",
        ),
        (r#"{"connect_timeout_ms":86400001}"#, "connect_timeout_ms"),
        (
            r#"{"ack":{"interval_ms":1000000000000}}"#,
            "ack.interval_ms",
        ),
        (
            r#"{"reconnect":{"base_ms":1,"cap_ms":99999999999}}"#,
            "reconnect.cap_ms",
        ),
        (r#"{"refresh_margin_ms":99999999999}"#, "refresh_margin_ms"),
    ] {
        let e = ClientOptions::from_json(json).unwrap_err();
        assert!(e.to_string().contains(key), "{json}: {e}");
        assert_eq!(e.code(), "invalid_argument");
    }
    let o = ClientOptions::from_json(r#"{"user":"alice","queue":{"full":"drop_oldest"}}"#).unwrap();
    assert_eq!(o.queue.full, FullPolicy::DropOldest);
}

#[tokio::test]
async fn close_gets_through_when_the_application_stopped_reading_events() {
    let mut c = config();
    c.session.outbox_messages = 100_000;
    c.session.outbox_bytes = 1 << 26;
    let server = start(c).await;
    let (client, _events) = Client::connect(&server.url(), opts("a")).await.unwrap();
    client.join("g").await.unwrap();
    // More than the event buffer holds; nobody reads `_events`.
    for i in 0..20_000 {
        server.relay.publish("g", &i).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(5), client.close())
        .await
        .expect("close returns although the event buffer is full");
    assert!(matches!(client.status(), Status::Closed(_)));
}

#[tokio::test]
async fn the_host_hears_sessions_connect_disconnect_resume_and_end() {
    use zerorelay::server::HostEvent;
    let mut c = config();
    c.session.ttl_ms = 200;
    let server = start(c).await;
    let mut host = server.relay.events();
    macro_rules! next {
        () => {
            tokio::time::timeout(Duration::from_secs(5), host.recv())
                .await
                .expect("a host event in time")
                .expect("no lag")
        };
    }

    let (a, mut ev) = Client::connect(&server.url(), opts("alice")).await.unwrap();
    let HostEvent::Connected {
        session,
        resumed,
        user,
        remote,
        ..
    } = next!()
    else {
        panic!("want connected");
    };
    assert_eq!((user.as_deref(), resumed), (Some("alice"), false));
    assert!(remote.unwrap().starts_with("127.0.0.1:"));

    // A cut connection: disconnected, then the client resumes.
    server.relay.drop_connection(&session);
    assert!(matches!(next!(), HostEvent::Disconnected { session: s, .. } if s == session));
    assert!(
        matches!(next!(), HostEvent::Connected { session: s, resumed: true, .. } if s == session)
    );
    wait_for(&mut ev, |e| {
        matches!(e, Event::Connected { resumed: true, .. })
    })
    .await;

    // A clean close: disconnected, then the session ends.
    a.close().await;
    assert!(
        matches!(next!(), HostEvent::Disconnected { reason, .. } if reason == "closed by the client (1000)")
    );
    assert!(
        matches!(next!(), HostEvent::Ended { session: s, reason, .. } if s == session && reason == "session closed")
    );

    // Ended by the host, and expired after the TTL.
    let (_b, _) = Client::connect(&server.url(), opts("bob")).await.unwrap();
    let HostEvent::Connected { session: bob, .. } = next!() else {
        panic!("want connected");
    };
    server.relay.disconnect(&bob);
    let mut got = vec![next!(), next!()];
    got.sort_by_key(|e| matches!(e, HostEvent::Ended { .. }));
    assert!(
        matches!(&got[0], HostEvent::Disconnected { reason, .. } if reason.contains("4005")),
        "{got:?}"
    );
    assert!(
        matches!(&got[1], HostEvent::Ended { reason, .. } if reason == "disconnected by the host")
    );

    let mut o = opts("carol");
    o.reconnect.enabled = false;
    let (_c, _) = Client::connect(&server.url(), o).await.unwrap();
    let HostEvent::Connected { session: carol, .. } = next!() else {
        panic!("want connected");
    };
    server.relay.drop_connection(&carol);
    assert!(matches!(next!(), HostEvent::Disconnected { .. }));
    assert!(
        matches!(next!(), HostEvent::Ended { session: s, reason, .. } if s == carol && reason == "expired")
    );
}

#[tokio::test]
async fn a_connect_that_runs_out_of_time_says_why_the_last_attempt_failed() {
    // Bind and drop: a port on which nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = opts("alice");
    o.connect_timeout_ms = 300;
    o.reconnect.base_ms = 20;
    o.reconnect.cap_ms = 50;
    let e = Client::connect(&format!("ws://127.0.0.1:{port}/ws"), o)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "connection");
    let m = e.to_string();
    assert!(
        m.contains("not connected within connect_timeout_ms (300 ms); last attempt: ")
            && m.contains("refused"),
        "{m}"
    );
}

#[tokio::test]
async fn a_payload_too_deep_to_decode_is_reported_for_its_seq_and_the_stream_goes_on() {
    let mut c = config();
    c.limits.max_json_depth = 100_000;
    let s = start(c).await;
    let (alice, _aev) = Client::connect(&s.url(), opts("alice")).await.unwrap();
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    // Deeper than serde_json's default recursion limit of 128.
    let deep = format!("{}{}", "[".repeat(1_000), "]".repeat(1_000));
    let deep = serde_json::value::RawValue::from_string(deep).unwrap();
    alice.send_to_user("bob", &1).await.unwrap();
    alice.send_to_user("bob", &deep).await.unwrap();
    alice.send_to_user("bob", &3).await.unwrap();
    // The engine never decodes payloads: all three arrive, in order, the
    // deep one byte for byte; decoding it is the application's, and fails
    // for that one message with its seq.
    let got = [
        next_message(&mut bev).await,
        next_message(&mut bev).await,
        next_message(&mut bev).await,
    ];
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(got[0].decode::<Value>(), Ok(json!(1)));
    assert_eq!(got[1].data.get(), deep.get());
    match got[1].decode::<Value>() {
        Err(e @ ClientError::Undecodable { seq: 2, .. }) => {
            assert_eq!(e.code(), "undecodable");
            assert!(e.to_string().contains("recursion limit"), "{e}");
        }
        other => panic!("want undecodable for seq 2, got {other:?}"),
    }
    assert_eq!(got[2].decode::<Value>(), Ok(json!(3)));
    // Still connected, still acknowledging, still able to publish.
    assert!(matches!(bob.status(), Status::Connected(_)));
    bob.send_to_user("alice", &"after").await.unwrap();
    alice.close().await;
    bob.close().await;
}
